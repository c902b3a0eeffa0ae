"""A bounded queue that feeds the model batches: many concurrent requests, one model, one worker thread.

Admission is counted from the moment a request arrives (before its upload is read) to the moment it is
answered, so the number of scans held in memory is bounded by `capacity`; one more gets `QueueFull` with a
Retry-After estimate from the measured batch time. The worker takes the oldest job and, for at most `max_wait_s`
while more admitted requests are on their way, adds compatible jobs (same key, e.g. mirror check on) up to
`batch`; jobs with another key wait at the head of the line for the next batch.

The service runs two: reports (batched) and explanations (one at a time, minutes each on the real model, on a
worker of lower CPU priority), so a slow explanation never holds up a plain report. `abort` answers every job not
yet finished (a drain that ran out of time) instead of leaving its caller waiting.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator, Sequence


class QueueFull(Exception):
    """Too many requests are in one queue of the service; try again after `retry_after` seconds."""

    def __init__(self, retry_after: int, queue: str = "report") -> None:
        self.retry_after, self.queue = retry_after, queue
        super().__init__(f"the {queue} queue is full; retry in {retry_after} s")


class ShuttingDown(Exception):
    """The service is draining before it stops: it admits nothing new, or stopped before this job was done."""

    def __init__(self, retry_after: int = 5, admitted: bool = False) -> None:
        self.retry_after = retry_after
        super().__init__("the service stopped before this request was finished; retry in "
                         f"{retry_after} s" if admitted else f"the service is shutting down; retry in {retry_after} s")


@dataclass
class Job:
    key: Hashable
    payload: Any
    future: Future = field(default_factory=Future)


class Batcher:
    """Runs `run(payloads) -> results` (same order) on batches of submitted payloads in one worker thread.

    name: what the queue is called in its 503 sentence; nice: added to the worker thread's CPU niceness (Linux
    threads have their own), so it yields the processor to the other workers; max_retry_after: cap on the
    Retry-After estimate, in seconds."""

    def __init__(self, run: Callable[[list[Any]], Sequence[Any]], batch: int, capacity: int, max_wait_s: float,
                 on_batch: Callable[[int, float], None] | None = None, name: str = "report", nice: int = 0,
                 max_retry_after: int = 60) -> None:
        self.run, self.batch, self.capacity, self.max_wait_s = run, batch, capacity, max_wait_s
        self.on_batch, self.name, self.nice, self.max_retry_after = on_batch, name, nice, max_retry_after
        self._jobs: queue.Queue[Job] = queue.Queue()
        self._held: deque[Job] = deque()
        self._running: list[Job] = []
        self._lock = threading.Lock()
        self._admitted = 0
        self._batch_s: float | None = None  # moving average of one batch's time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def admitted(self) -> int:
        return self._admitted

    @property
    def waiting(self) -> int:
        """Jobs queued and not yet running."""
        return self._jobs.qsize() + len(self._held)

    @property
    def running(self) -> int:
        return len(self._running)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"brain3d-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, join_s: float = 30.0) -> None:
        """Stop the worker after its batch (waiting at most `join_s`); jobs still queued are answered ShuttingDown."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=join_s)
        self.abort(ShuttingDown(admitted=True), running=False)

    def abort(self, exc: BaseException, running: bool = True) -> int:
        """Answer every job not yet finished with `exc` (the queued ones, and with `running` those in the batch
        being computed, whose results are then dropped); returns how many were answered."""
        jobs = [*self._held, *iter_queue(self._jobs), *(self._running if running else [])]
        self._held.clear()
        return sum(_settle(job.future, exc=exc) for job in jobs)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the batches ahead times the measured batch time."""
        per_batch = self._batch_s if self._batch_s is not None else 1.0
        return max(1, min(self.max_retry_after, math.ceil(per_batch * (self._admitted / self.batch + 1))))

    @contextlib.contextmanager
    def admission(self) -> Iterator[None]:
        """Hold one of the `capacity` places for the whole request, or raise QueueFull at once."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise QueueFull(self.retry_after(), self.name)
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
        if self.nice and hasattr(os, "setpriority"):
            with contextlib.suppress(OSError):  # Linux: a thread's own niceness; elsewhere it may not apply
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
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
        batch = [j for j in batch if not j.future.done()]  # answered meanwhile (aborted by a drain)
        if not batch:
            return
        self._running = batch
        t0 = time.perf_counter()
        try:
            results = self.run([j.payload for j in batch])
        except BaseException as exc:  # the requests get the error; the worker goes on
            for job in batch:
                _settle(job.future, exc=exc)
            return
        finally:
            self._running = []
            seconds = time.perf_counter() - t0
            self._batch_s = seconds if self._batch_s is None else 0.7 * self._batch_s + 0.3 * seconds
            if self.on_batch is not None:
                self.on_batch(len(batch), seconds)
        for job, result in zip(batch, results):
            _settle(job.future, result)


def _settle(future: Future, result: Any = None, exc: BaseException | None = None) -> bool:
    """Set a future's outcome unless it already has one (an aborted job finishing late); True if this set it."""
    try:
        future.set_exception(exc) if exc is not None else future.set_result(result)
    except Exception:  # concurrent.futures.InvalidStateError: answered already
        return False
    return True


def iter_queue(q: queue.Queue) -> Iterator[Job]:
    while True:
        try:
            yield q.get_nowait()
        except queue.Empty:
            return
