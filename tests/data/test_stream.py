"""Reading in reader processes while the consumer works: order, errors as items, bounded read-ahead, clean stop."""

from __future__ import annotations

import os

import psutil
import pytest

from brain3d.data.stream import batched, default_workers, prefetched
from brain3d.ranks import World
from tests.data.stream_items import reader_pid, volume, volume_or_none


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_items_come_back_in_input_order_and_a_bad_one_is_its_error(workers):
    got = list(prefetched(list(range(10)), volume, workers=workers))
    assert [x.item for x in got] == list(range(10))
    assert [x.value[0, 0, 0, 0].item() for x in got if x.error is None] == [i for i in range(10) if i != 3]
    bad = got[3]
    assert bad.value is None and bad.error == "scan3.nii.gz: is truncated or corrupt"
    assert all(x.seconds >= 0 for x in got)


def test_workers_read_in_other_processes():
    pids = {x.value for x in prefetched(list(range(6)), reader_pid, workers=2)}
    assert len(pids) == 2 and os.getpid() not in pids


def test_a_consumer_that_stops_early_leaves_no_reader_behind():
    me = psutil.Process()
    stream = prefetched(list(range(50)), reader_pid, workers=2)
    readers = {next(stream).value, next(stream).value}
    stream.close()
    alive = [p.pid for p in me.children(recursive=True) if p.pid in readers and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == []


def test_batches_keep_order_and_the_last_is_shorter():
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 3)) == []


def test_default_workers_leave_a_core_to_the_model(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(8)), raising=False)
    assert default_workers(World()) == 4  # capped
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert default_workers(World(rank=0, size=4)) == 1  # 8 cores / 4 ranks, less the model's
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0}, raising=False)
    assert default_workers(World()) == 1  # at least one


def test_the_consumer_leaves_the_readers_their_cores_while_they_run(monkeypatch):
    import torch

    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1}, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        inside = [torch.get_num_threads() for _ in prefetched(list(range(3)), volume_or_none, workers=1)]
        assert inside == [1, 1, 1] and torch.get_num_threads() == 2  # lowered while reading, restored after
    finally:
        torch.set_num_threads(before)
