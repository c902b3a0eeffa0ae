"""Read and preprocess scans in worker processes while the model generates: a prefetching, order-keeping stream.

Reading a scan (header checks, orientation, resampling, intensity scaling) needs only the CPU; generating needs
the model. A torch `DataLoader` over an iterable dataset runs the reading in `workers` processes, each taking every
`workers`-th item, and hands the results back in input order, at most `prefetch` items per worker ahead of the
consumer: memory is bounded by a few batches of volumes however long the input is. A scan that cannot be read
comes back as its one-sentence error, and the stream goes on. `workers=0` reads in this process, item by item,
exactly when the consumer asks (the plain loop, used where the items are already in memory).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import time
from dataclasses import dataclass
from typing import Callable, Generic, Iterable, Iterator, TypeVar

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from brain3d.errors import Brain3DError
from brain3d.ranks import World

T = TypeVar("T")
V = TypeVar("V")


@dataclass
class Loaded(Generic[T, V]):
    """One item and what reading it gave: `value`, or the `error` sentence; `seconds` spent reading it."""

    item: T
    value: V | None
    error: str | None
    seconds: float


def load_one(item: T, load: Callable[[T], V]) -> Loaded[T, V]:
    """Read one item; a Brain3DError (a bad file, named in its message) becomes the item's error."""
    t0 = time.perf_counter()
    try:
        return Loaded(item, load(item), None, time.perf_counter() - t0)
    except Brain3DError as exc:
        return Loaded(item, None, str(exc), time.perf_counter() - t0)


class _Reading(IterableDataset):
    """The items, each worker reading its own every-`n`-th one (so the loader's round-robin keeps input order)."""

    def __init__(self, items: Iterable, load: Callable) -> None:
        self.items, self.load = items, load

    def __iter__(self) -> Iterator[Loaded]:
        info = get_worker_info()
        n, k = (info.num_workers, info.id) if info is not None else (1, 0)
        for i, item in enumerate(self.items):
            if i % n == k:
                yield load_one(item, self.load)


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # readers are many small numpy/torch ops: threads would only fight the generator


def _as_is(x):
    return x


_CONTEXT: multiprocessing.context.BaseContext | None = None


def _context(load: Callable) -> multiprocessing.context.BaseContext:
    """Readers start from a fork server, never by forking this process: a fork copies whatever lock another
    thread holds at that instant (a progress bar's refresh thread, a web server's), and a reader that then
    touches it waits forever. The server imports torch, the preprocessing and the loader's module once, so a
    reader starts in milliseconds."""
    global _CONTEXT
    if _CONTEXT is None:
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload(["torch", "brain3d.preprocess", "brain3d.data.dataset",
                                        getattr(load, "__module__", None) or "brain3d.data.stream"])
        _CONTEXT = ctx
    return _CONTEXT


def prefetched(items: Iterable[T], load: Callable[[T], V], workers: int = 0,
               prefetch: int = 2) -> Iterator[Loaded[T, V]]:
    """`load(item)` for every item, in order, read by `workers` processes up to `prefetch` items each ahead.

    `items` (a list or another picklable iterable, iterated once per worker) and `load` (a module-level function,
    a picklable callable object or a bound method of one) travel to the readers by pickle."""
    if workers <= 0:
        for item in items:
            yield load_one(item, load)
        return
    loader = DataLoader(_Reading(items, load), batch_size=None, num_workers=workers, prefetch_factor=prefetch,
                        worker_init_fn=_one_thread, collate_fn=_as_is, persistent_workers=False,
                        multiprocessing_context=_context(load))
    it = iter(loader)
    try:
        yield from it
    finally:  # a consumer that stops early (an error, a full disk) must not leave its readers behind
        it._shutdown_workers()


def batched(stream: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` (the last one shorter)."""
    batch: list[T] = []
    for x in stream:
        batch.append(x)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def default_workers(world: World) -> int:
    """Reader processes per rank: the CPU cores this rank may use, less the one that drives the model (1 at least,
    4 at most: past that the generator, not reading, is the bound)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if world.distributed else 1
    return max(1, min(4, cores // max(1, local) - 1))
