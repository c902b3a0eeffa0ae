"""Read and preprocess scans in worker processes while the model generates: a prefetching, order-keeping stream.

Reading a scan (header checks, orientation, resampling, intensity scaling) needs only the CPU; generating needs
the model. A torch `DataLoader` over an iterable dataset runs the reading in `workers` processes, each taking every
`workers`-th item, and hands the results back in input order, a bounded number of items (two batches) ahead of
the consumer: memory is bounded by a few batches of volumes however long the input is. A scan that cannot be read
comes back as its one-sentence error, and the stream goes on. `workers=0` reads in this process, item by item,
exactly when the consumer asks (the plain loop, used where the items are already in memory).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import multiprocessing.context
import os
import time
from dataclasses import dataclass
from typing import Callable, Generic, Iterable, Iterator, TypeVar

import numpy as np
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


@dataclass
class _Array:
    """A tensor on its way from a reader: as a numpy array it is pickled through the pipe in one copy, which costs
    the consumer half of what torch's shared-memory hand-over of a tensor does."""

    array: np.ndarray


def _travel(value, out: bool):
    """`value` with its tensors (itself, or a dataclass's tensor fields) as `_Array`s (`out`), or back."""
    if out and isinstance(value, torch.Tensor):
        return _Array(value.numpy())
    if not out and isinstance(value, _Array):
        return torch.from_numpy(value.array)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        kind = torch.Tensor if out else _Array
        changes = {f.name: _travel(getattr(value, f.name), out) for f in dataclasses.fields(value)
                   if isinstance(getattr(value, f.name), kind)}
        return dataclasses.replace(value, **changes) if changes else value
    return value


class _Reading(IterableDataset):
    """The items, each worker reading its own every-`n`-th one (so the loader's round-robin keeps input order)."""

    def __init__(self, items: Iterable, load: Callable) -> None:
        self.items, self.load = items, load

    def __iter__(self) -> Iterator[Loaded]:
        info = get_worker_info()
        n, k = (info.num_workers, info.id) if info is not None else (1, 0)
        for i, item in enumerate(self.items):
            if i % n == k:
                x = load_one(item, self.load)
                yield Loaded(x.item, _travel(x.value, out=True), x.error, x.seconds)


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # readers are many small numpy/torch ops: threads would only fight the generator
    if hasattr(os, "nice"):
        os.nice(10)  # ...and they take the CPU the generator leaves idle, not the generator's own


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
               ahead: int = 8) -> Iterator[Loaded[T, V]]:
    """`load(item)` for every item, in order, read by `workers` processes keeping about `ahead` items ready.

    Give `ahead` two batches' worth: the consumer takes a whole batch at once, and whatever is not ready by then it
    waits for, which is exactly the reading time the readers were meant to hide.

    `items` (a list or another picklable iterable, iterated once per worker) and `load` (a module-level function,
    a picklable callable object or a bound method of one) travel to the readers by pickle."""
    if workers <= 0:
        for item in items:
            yield load_one(item, load)
        return
    per_worker = max(2, -(-ahead // workers))  # ceil
    loader = DataLoader(_Reading(items, load), batch_size=None, num_workers=workers, prefetch_factor=per_worker,
                        worker_init_fn=_one_thread, collate_fn=_as_is, persistent_workers=False,
                        multiprocessing_context=_context(load))
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, generator_threads(World(), workers)))  # leave the readers their cores
    it = iter(loader)
    try:
        for x in it:
            yield Loaded(x.item, _travel(x.value, out=False), x.error, x.seconds)
    finally:  # a consumer that stops early (an error, a full disk) must not leave its readers behind
        it._shutdown_workers()
        torch.set_num_threads(threads)


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
    return max(1, min(4, _rank_cores(world) - 1))


def generator_threads(world: World, workers: int) -> int:
    """Intra-op threads for the process that consumes the stream (the model) beside `workers` readers: the rank's
    cores less the readers' (at least 1). On the CPU, generating on every core while readers run makes both wait
    for each other; `prefetched` lowers this process's threads to it while its readers run."""
    return max(1, _rank_cores(world) - workers)


def _rank_cores(world: World) -> int:
    """The CPU cores this process may use, shared evenly by the ranks on its machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if world.distributed else 1
    return max(1, cores // max(1, local))
