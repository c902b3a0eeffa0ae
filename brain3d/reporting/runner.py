"""Batched report generation with an optional left-right mirror self-check and resumable output."""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from functools import partial
from typing import Callable, Iterable, Iterator, Sequence

import torch

from brain3d.data.stream import batched, prefetched
from brain3d.vocabulary import (
    canonical_sequence,
    extract_extended,
    findings_of,
    lobes_of,
    side_of,
    unassessable_findings,
    unassessable_statements,
)
from brain3d.vocabulary.assessable import needs, reason
from brain3d.eval.diagnostics import mirrored_side
from brain3d.eval.evaluate import generate_pair
from brain3d.fsutil import atomic_write_json, atomic_write_text, ensure_dir
from brain3d.preprocess import ModelVolume, PreprocessConfig, load_for_model
from brain3d.reporting.inputs import ScanInput, safe_name
from brain3d.ranks import World
from brain3d.reporting.schema import Findings, NotAssessable, ReportRecord
from brain3d.shards import ShardedJsonl


@dataclass(frozen=True)
class ReportOptions:
    """How to report. `sequences`: what the model reads (its checkpoint's input channels); findings those cannot
    show are marked not assessable in each record (None: unknown, nothing is marked)."""

    checkpoint: str
    profile: str = "greedy"
    batch_size: int = 4
    mirror_check: bool = False
    max_new_tokens: int = 256
    seed: int = 0
    sequences: tuple[str, ...] | None = None


def findings(text: str, sequences: Sequence[str] | None = None) -> Findings:
    """Structured findings of a report (negation-aware extraction shared with the evaluation), limited to what an
    input of `sequences` can show: the others are null and listed in `not_assessable`. `sequences=None`: unknown
    input, every finding is read as the text states it (records before schema 2)."""
    values: dict[str, bool | None] = dict(findings_of(text))
    hidden = unassessable_findings(sequences) if sequences is not None else ()
    for f in hidden:
        values[f] = None
    pathology = bool(extract_extended(text)["pathology"] - set(hidden))  # "enhancement" alone on FLAIR is no lesion
    return Findings(side=side_of(text), lobes=lobes_of(text), pathology=pathology, **values,
                    not_assessable=[NotAssessable(finding=f, needs=list(needs(f)), reason=reason(f, sequences))
                                    for f in hidden])


def unassessable_fields(text: str, sequences: Sequence[str] | None) -> dict[str, list[str]]:
    """The record's `asserts_unassessable` / `negates_unassessable`: what the text says about findings the input
    cannot show (empty when the input is unknown)."""
    said = unassessable_statements(text, sequences) if sequences is not None else {}
    return {"asserts_unassessable": [f for f, v in said.items() if v == "present"],
            "negates_unassessable": [f for f, v in said.items() if v == "absent"]}


class ScanReader:
    """Reads a scan's model tensor from its files with one preprocessing (the default loader of `generate_records`;
    an object rather than a closure so that reader processes can be handed it)."""

    def __init__(self, preprocess: PreprocessConfig) -> None:
        self.preprocess = preprocess

    def __call__(self, scan: ScanInput) -> ModelVolume:
        return read_scan(scan, self.preprocess)


def read_scan(scan: ScanInput, preprocess: PreprocessConfig) -> ModelVolume:
    """A scan's model tensor read from its files."""
    return load_for_model(scan.paths, preprocess, series_uid=scan.meta.get("series_uid"))


def generate_records(model, scans: Iterable[ScanInput], opts: ReportOptions, preprocess: PreprocessConfig,
                     on_record: Callable[[ReportRecord], None] | None = None,
                     loader: Callable[[ScanInput, PreprocessConfig], ModelVolume] | None = None,
                     workers: int = 0) -> Iterator[ReportRecord]:
    """Yield one ReportRecord per scan, in input order; unreadable scans yield an error record and the others go on.

    Scans are read by `workers` reader processes while the model generates (`brain3d.data.stream`; 0: read in
    this process between batches). `loader` lets a caller that already holds the volumes in memory (the web
    service) skip reading them again. Without `opts.sequences` the records judge what is assessable by the
    model's own input channels."""
    if opts.sequences is None:
        opts = replace(opts, sequences=tuple(model.config.sequences))
    load = ScanReader(preprocess) if loader is None else partial(_call_loader, loader, preprocess)
    with closing(prefetched(scans, load, workers, ahead=2 * opts.batch_size)) as stream:  # its readers end with this generator
        for batch in batched(stream, opts.batch_size):
            ok = [x for x in batch if x.error is None]
            generated: dict[int, ReportRecord] = {}
            if ok:
                t0 = time.perf_counter()
                volumes = torch.stack([x.value.tensor for x in ok])  # (B, C, D, H, W)
                texts, mirrored = generate_pair(model, volumes.to(model.device), opts.profile, opts.max_new_tokens,
                                                opts.seed, opts.mirror_check)
                share = (time.perf_counter() - t0) / len(ok)
                for x, text, mtext in zip(ok, texts, mirrored):
                    rec = _record(x.item, opts, report=text, orientation="".join(x.value.orientation),
                                  seconds=x.seconds + share)
                    if mtext is not None:
                        m_side = side_of(mtext)
                        rec.mirrored_report, rec.mirrored_side = mtext, m_side
                        rec.laterality_consistent = m_side == mirrored_side(rec.findings.side)
                    generated[id(x)] = rec
            for x in batch:
                rec = generated[id(x)] if x.error is None else _record(x.item, opts, error=x.error, seconds=x.seconds)
                if on_record is not None:
                    on_record(rec)
                yield rec


def _call_loader(loader: Callable[[ScanInput, PreprocessConfig], ModelVolume], preprocess: PreprocessConfig,
                 scan: ScanInput) -> ModelVolume:
    return loader(scan, preprocess)


def _record(scan: ScanInput, opts: ReportOptions, report: str = "", orientation: str | None = None,
            seconds: float = 0.0, error: str | None = None) -> ReportRecord:
    seqs = [canonical_sequence(s) for s in opts.sequences] if opts.sequences is not None else None
    said = unassessable_fields(report, seqs) if error is None else {}
    return ReportRecord(
        id=scan.id, input=list(scan.paths), orientation=orientation, checkpoint=opts.checkpoint, sequences=seqs,
        profile=opts.profile, report=report, findings=findings(report, seqs) if error is None else None, **said,
        reference=scan.reference, seconds=round(seconds, 4), error=error,
    )


class ReportWriter:
    """Writes `<id>.txt`, `<id>.json` as each scan finishes and its row into reports.jsonl (resumable; under
    several ranks each appends to its own part, merged in input order by `finish`)."""

    def __init__(self, out_dir: Path, world: World | None = None) -> None:
        self.out_dir = ensure_dir(out_dir)
        self.jsonl = self.out_dir / "reports.jsonl"
        self.rows = ShardedJsonl(self.jsonl, world or World())

    def start(self, order: Sequence[str]) -> set[str]:
        """Ids already reported successfully by an earlier (possibly interrupted) run, as every rank sees them.
        Collective under several ranks."""
        return {i for i, r in self.rows.start(order).items() if not r.get("error")}

    def path(self, rec_id: str, suffix: str) -> Path:
        """Where the output `suffix` (".txt", ".json", ".sr.dcm", ...) of a scan goes."""
        return self.out_dir / f"{safe_name(rec_id)}{suffix}"

    def __call__(self, rec: ReportRecord) -> None:
        if rec.error is None:
            atomic_write_text(self.path(rec.id, ".txt"), rec.report.strip() + "\n")
        atomic_write_json(self.path(rec.id, ".json"), rec.model_dump())
        self.rows.append([rec.model_dump()])

    def finish(self, order: Sequence[str]) -> None:
        """One row per id in reports.jsonl, in input `order` (a retried scan keeps its latest row, a finished one
        never loses it to a failed retry). Collective under several ranks."""
        self.rows.finish(order)
