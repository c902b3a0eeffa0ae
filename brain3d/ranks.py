"""Which of several processes this one is, and the few collective steps inference needs across them.

`torchrun --nproc_per_node K [--nnodes N ...] -m brain3d report|evaluate ...` starts K×N copies of one command; each
learns its place from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK). Inference needs no gradients to
synchronise, only three collective steps: agree on what is already done before anyone writes, wait for everyone
before the main rank merges their outputs, and add up the counts for the one summary line. They run on a gloo
process group (CPU tensors), which works on every machine, GPU or not, beside whatever the model itself uses.
Without torchrun the world is one process and every step here is a no-op: the command behaves as it always has.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterable, Iterator, Sequence, TypeVar

import torch

from brain3d.errors import Brain3DError

T = TypeVar("T")

# How long a finished rank waits at the final barrier for the slowest one: an archive shard can take hours.
WAIT = timedelta(hours=float(os.environ.get("BRAIN3D_RANK_WAIT_HOURS", "24")))


def under_launcher() -> bool:
    """True inside a rank started by torchrun / accelerate (their environment names a world)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


@dataclass(frozen=True)
class World:
    """This process's place: `rank` of `size` in all, `local_rank` on its machine (the GPU it uses)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def shard(self, items: Iterable[T]) -> Iterator[T]:
        """This rank's items: every `size`-th from position `rank`, lazily (deterministic for a given input
        order, so a rerun with the same world gives every rank the same shard)."""
        for i, item in enumerate(items):
            if i % self.size == self.rank:
                yield item

    def device(self, device: str) -> str:
        """The device this rank generates on: with several ranks on a GPU machine, GPU `local_rank`."""
        if device in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank}" if self.distributed else "cuda"
        return "cpu" if device == "auto" else device

    def barrier(self) -> None:
        """Wait until every rank got here (a no-op for one process)."""
        if self.distributed:
            torch.distributed.barrier()

    def close(self) -> None:
        """Leave the group together at the end of a run: a rank that exits while a peer still talks to it makes
        that peer's gloo abort. Collective; a no-op for one process."""
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()

    def sum(self, counts: dict[str, int]) -> dict[str, int]:
        """The counts added up over all ranks (every rank gets the totals)."""
        if not self.distributed:
            return dict(counts)
        keys = sorted(counts)
        t = _tensor([int(counts[k]) for k in keys])
        torch.distributed.all_reduce(t)
        return dict(zip(keys, (int(v) for v in t.cpu().tolist())))

    def agree(self, names: Sequence[str]) -> None:
        """Refuse to go on unless every rank holds the same list (e.g. the discovered inputs: ranks that saw a
        different folder would shard different lists, leaving gaps); raises on every rank alike."""
        if not self.distributed:
            return
        digest = hashlib.sha256("\0".join(names).encode("utf-8")).hexdigest()
        low = _tensor([int(digest[:15], 16)])
        high = low.clone()
        torch.distributed.all_reduce(low, op=torch.distributed.ReduceOp.MIN)
        torch.distributed.all_reduce(high, op=torch.distributed.ReduceOp.MAX)
        if int(low) != int(high):
            raise Brain3DError(f"the {self.size} processes found different inputs (rank {self.rank} has "
                               f"{len(names)}); give every machine the same paths, on a shared file system")


def world() -> World:
    """This process's world; under torchrun the gloo group is started on first use and kept for the process."""
    if not under_launcher():
        return World()
    size = int(os.environ["WORLD_SIZE"])
    w = World(rank=int(os.environ["RANK"]), size=size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo", timeout=WAIT)
    return w


def _tensor(values: list[int]) -> torch.Tensor:
    """Integers for a collective: on CPU for our gloo group, on this rank's GPU when someone else (a training run)
    already started an NCCL group in this process."""
    t = torch.tensor(values, dtype=torch.int64)
    if torch.distributed.get_backend() == "nccl":
        t = t.to(f"cuda:{torch.cuda.current_device()}")
    return t


def launch_command(processes: int, argv: Sequence[str]) -> list[str]:
    """The command line that runs `python -m brain3d <argv>` as `processes` local ranks (torchrun, standalone)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            "-m", "brain3d", *argv]


def launch(processes: int, argv: Sequence[str], threads: int = 1, env: dict[str, str] | None = None) -> int:
    """Run `brain3d <argv>` as `processes` local ranks and wait; returns torchrun's exit code. Each rank gets
    `threads` intra-op threads (torchrun's own default of 1, said explicitly so that it does not warn)."""
    full = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(launch_command(processes, argv), env=full).returncode
