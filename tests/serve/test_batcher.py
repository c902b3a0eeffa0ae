"""The batching queue on its own: batches fill up to the limit, keys never mix, errors reach every caller."""

from __future__ import annotations

import threading
import time

import pytest

from brain3d.serve.batcher import Batcher, QueueFull, ShuttingDown


def _batcher(run, batch=4, capacity=8, wait=0.2):
    b = Batcher(run, batch=batch, capacity=capacity, max_wait_s=wait)
    b.start()
    return b


def test_concurrent_requests_are_batched_up_to_the_limit_and_keys_never_mix():
    seen: list[list[tuple[str, int]]] = []
    gate = threading.Event()

    def run(payloads):
        gate.wait(5)  # hold the first batch so the others queue up behind it
        seen.append(list(payloads))
        return [p[1] * 10 for p in payloads]

    b = _batcher(run)
    with_places = [b.admission() for _ in range(8)]
    for cm in with_places:
        cm.__enter__()
    futures = [b.submit(key, (key, i)) for i, key in enumerate("aabababa")]
    time.sleep(0.05)
    gate.set()
    assert [f.result(5) for f in futures] == [i * 10 for i in range(8)]  # each caller gets its own answer
    for cm in with_places:
        cm.__exit__(None, None, None)
    b.stop()
    assert all(len({k for k, _ in batch}) == 1 for batch in seen)  # one key per batch
    assert max(len(batch) for batch in seen) == 4 and sum(len(batch) for batch in seen) == 8
    firsts = [batch[0][1] for batch in seen]
    assert firsts[0] == 0  # oldest first


def test_lone_request_does_not_wait_for_a_batch():
    b = _batcher(lambda ps: ps, wait=5.0)
    with b.admission():
        t0 = time.perf_counter()
        assert b.submit("k", 1).result(5) == 1
    b.stop()
    assert time.perf_counter() - t0 < 1.0  # nobody else admitted: no 5 s wait


def test_errors_reach_every_caller_and_the_worker_goes_on():
    calls = []

    def run(payloads):
        calls.append(payloads)
        if "boom" in payloads:
            raise RuntimeError("model failed")
        return payloads

    b = _batcher(run, wait=0.0)
    f = b.submit("k", "boom")
    with pytest.raises(RuntimeError, match="model failed"):
        f.result(5)
    assert b.submit("k", "ok").result(5) == "ok"
    b.stop()


def test_admission_is_bounded_and_retry_after_is_positive():
    b = Batcher(lambda ps: ps, batch=2, capacity=2, max_wait_s=0.0)
    with b.admission(), b.admission():
        with pytest.raises(QueueFull) as exc:
            with b.admission():
                pass
        assert exc.value.retry_after >= 1 and b.admitted == 2
    assert b.admitted == 0
    with b.admission():  # places come back
        pass


def test_stop_fails_jobs_still_waiting():
    b = Batcher(lambda ps: ps, batch=2, capacity=2, max_wait_s=0.0)  # never started
    f = b.submit("k", 1)
    b.stop()
    with pytest.raises(ShuttingDown, match="the service stopped before this request was finished"):
        f.result(1)


def test_abort_answers_the_running_batch_and_the_queue_and_the_late_result_is_dropped():
    started, release = threading.Event(), threading.Event()

    def run(payloads):
        started.set()
        release.wait(5)
        return payloads

    b = _batcher(run, batch=1, wait=0.0)
    running, queued = b.submit("k", 1), b.submit("k", 2)
    assert started.wait(5) and b.running == 1 and b.waiting == 1
    assert b.abort(ShuttingDown(admitted=True)) == 2
    for f in (running, queued):
        with pytest.raises(ShuttingDown):
            f.result(1)
    release.set()  # the worker finishes its batch: the result has nowhere to go and the worker goes on
    assert b.submit("k", 3).result(5) == 3
    b.stop()


def test_the_named_queue_says_so_and_its_worker_runs_at_lower_priority():
    import os

    seen = {}

    def run(payloads):
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        return payloads

    b = Batcher(run, batch=1, capacity=1, max_wait_s=0.0, name="explanation", nice=5, max_retry_after=600)
    b.start()
    assert b.submit("k", 1).result(5) == 1
    b.stop()
    assert seen["nice"] == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 5)  # the worker thread only, not the process
    with b.admission():
        with pytest.raises(QueueFull, match="^the explanation queue is full; retry in"):
            with b.admission():
                pass
