"""A process's place among torchrun's ranks: shards, devices, and the one-process world."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from brain3d.ranks import World, world


@given(n=st.integers(0, 60), size=st.integers(1, 8))
def test_shards_split_the_inputs_into_disjoint_ordered_parts(n, size):
    items = list(range(n))
    shards = [list(World(rank, size).shard(iter(items))) for rank in range(size)]
    assert sorted(x for s in shards for x in s) == items  # every item once
    assert all(s == sorted(s) for s in shards)  # each rank keeps input order
    assert max(map(len, shards)) - min(map(len, shards)) <= 1  # balanced


def test_without_torchrun_the_world_is_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    w = world()
    assert (w.rank, w.size, w.main, w.distributed) == (0, 1, True, False)
    assert w.sum({"a": 2}) == {"a": 2}
    w.barrier()
    w.agree(["x"])  # nothing to agree with


def test_a_rank_uses_its_own_gpu_or_the_cpu():
    import torch

    w = World(rank=3, size=4, local_rank=1)
    assert w.device("cpu") == "cpu"
    assert w.device("auto") == ("cuda:1" if torch.cuda.is_available() else "cpu")
