"""One JSONL output (reports.jsonl, predictions.jsonl) written by several ranks at once, and merged in input order.

Each rank appends its finished rows to its own part file beside the output (`reports.part-00001.jsonl`), so no two
processes ever write one file; one process writes straight into the output, as it always has. At the start of a
run the main rank folds whatever an interrupted run left (parts, a torn last line) into the output, then every
rank reads the same set of finished ids before anyone writes; at the end the main rank merges the parts into the
output in input order and removes them. A rank killed at any moment therefore loses at most the row it was
writing, and a rerun (with any number of ranks) finds every finished id exactly once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from brain3d.fsutil import append_jsonl_rows, atomic_write_jsonl, read_jsonl
from brain3d.ranks import World


def _failed(row: dict) -> bool:
    return bool(row.get("error"))


class ShardedJsonl:
    """The rows of `final` (keyed by "id") as written by the ranks of `world`."""

    def __init__(self, final: str | Path, world: World) -> None:
        self.final = Path(final)
        self.world = world
        self.part = self.part_path(world.rank) if world.distributed else self.final

    def part_path(self, rank: int) -> Path:
        """Where rank `rank` appends (beside the output, named after it)."""
        return self.final.with_name(f"{self.final.stem}.part-{rank:05d}.jsonl")

    def parts(self) -> list[Path]:
        """Part files now present, of any earlier world size."""
        return sorted(self.final.parent.glob(f"{self.final.stem}.part-*.jsonl"))

    def rows(self) -> dict[str, dict]:
        """Every row written so far, one per id: the output's, then the parts' (later files and lines are newer);
        a finished row is never replaced by a failed attempt at the same id."""
        out: dict[str, dict] = {}
        for path in [self.final, *self.parts()]:
            if not path.is_file():
                continue
            for row in read_jsonl(path):
                old = out.get(row["id"])
                if old is None or not _failed(row) or _failed(old):
                    out[row["id"]] = row
        return out

    def start(self, order: Sequence[str]) -> dict[str, dict]:
        """Fold an interrupted run's leftovers into the output (main rank), then return what every rank agrees is
        already written. Collective: every rank calls it before any of them appends."""
        self.world.barrier()
        if self.world.main and (self.parts() or _torn(self.final)):
            self._write(order)
        self.world.barrier()
        rows = self.rows()
        self.world.barrier()  # nobody appends before everyone has read
        return rows

    def append(self, rows: Iterable[dict]) -> None:
        """Append finished rows to this rank's part (flushed: they survive a kill)."""
        rows = list(rows)
        if rows:
            append_jsonl_rows(self.part, rows)

    def finish(self, order: Sequence[str]) -> dict[str, dict] | None:
        """Wait for every rank, then (main rank) merge everything into the output in input `order` and return the
        rows; other ranks return None. Collective."""
        self.world.barrier()
        if not self.world.main:
            return None
        return self._write(order)

    def _write(self, order: Sequence[str]) -> dict[str, dict]:
        rows = self.rows()
        ordered = [rows[i] for i in order if i in rows]
        listed = set(order)
        ordered += [r for i, r in rows.items() if i not in listed]  # ids of earlier runs on other inputs stay
        atomic_write_jsonl(self.final, ordered)
        for part in self.parts():
            part.unlink(missing_ok=True)
        return {r["id"]: r for r in ordered}


def _torn(path: Path) -> bool:
    """Whether a file ends inside a line (a process was killed while appending to it)."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb") as fh:
        fh.seek(-1, 2)
        return fh.read(1) != b"\n"
