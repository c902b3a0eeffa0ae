"""A bounded queue that feeds the model batches: many concurrent requests, one model, one worker thread.

Admission is counted from the moment a request arrives (before its upload is read) to the moment it is
answered, so the number of scans held in memory is bounded by `capacity`; one more gets `QueueFull` with a
Retry-After estimate from the measured batch time. The worker takes the oldest job and, for at most `max_wait_s`
while more admitted requests are on their way, adds compatible jobs (same key, e.g. mirror check on) up to
`batch`; jobs with another key wait at the head of the line for the next batch.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator, Sequence


class QueueFull(Exception):
    """Too many requests are in the service; try again after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"the report queue is full; retry in {retry_after} s")


@dataclass
class Job:
    key: Hashable
    payload: Any
    future: Future = field(default_factory=Future)


class Batcher:
    """Runs `run(payloads) -> results` (same order) on batches of submitted payloads in one worker thread."""

    def __init__(self, run: Callable[[list[Any]], Sequence[Any]], batch: int, capacity: int, max_wait_s: float,
                 on_batch: Callable[[int, float], None] | None = None) -> None:
        self.run, self.batch, self.capacity, self.max_wait_s = run, batch, capacity, max_wait_s
        self.on_batch = on_batch
        self._jobs: queue.Queue[Job] = queue.Queue()
        self._held: deque[Job] = deque()
        self._lock = threading.Lock()
        self._admitted = 0
        self._batch_s: float | None = None  # moving average of one batch's time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def admitted(self) -> int:
        return self._admitted

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="brain3d-batcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for job in [*self._held, *iter_queue(self._jobs)]:
            job.future.set_exception(RuntimeError("the service is shutting down"))

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the batches ahead times the measured batch time."""
        per_batch = self._batch_s if self._batch_s is not None else 1.0
        return max(1, min(60, math.ceil(per_batch * (self._admitted / self.batch + 1))))

    @contextlib.contextmanager
    def admission(self) -> Iterator[None]:
        """Hold one of the `capacity` places for the whole request, or raise QueueFull at once."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise QueueFull(self.retry_after())
            self._admitted += 1
        try:
            yield
        finally:
            with self._lock:
                self._admitted -= 1

    def submit(self, key: Hashable, payload: Any) -> Future:
        job = Job(key, payload)
        self._jobs.put(job)
        return job.future

    def _next(self, timeout: float) -> Job | None:
        try:
            return self._jobs.get(timeout=timeout) if timeout > 0 else self._jobs.get_nowait()
        except queue.Empty:
            return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            first = self._held.popleft() if self._held else self._next(0.1)
            if first is None:
                continue
            batch = [first]
            for job in list(self._held):  # compatible jobs that waited behind another key go first
                if len(batch) < self.batch and job.key == first.key:
                    self._held.remove(job)
                    batch.append(job)
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.batch:
                more_coming = self._admitted > len(batch) + len(self._held)
                job = self._next(deadline - time.monotonic() if more_coming else 0)
                if job is None:
                    break
                (batch if job.key == first.key else self._held).append(job)
            self._run(batch)

    def _run(self, batch: list[Job]) -> None:
        t0 = time.perf_counter()
        try:
            results = self.run([j.payload for j in batch])
        except BaseException as exc:  # the requests get the error; the worker goes on
            for job in batch:
                job.future.set_exception(exc)
            return
        finally:
            seconds = time.perf_counter() - t0
            self._batch_s = seconds if self._batch_s is None else 0.7 * self._batch_s + 0.3 * seconds
            if self.on_batch is not None:
                self.on_batch(len(batch), seconds)
        for job, result in zip(batch, results):
            job.future.set_result(result)


def iter_queue(q: queue.Queue) -> Iterator[Job]:
    while True:
        try:
            yield q.get_nowait()
        except queue.Empty:
            return
