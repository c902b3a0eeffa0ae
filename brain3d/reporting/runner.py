"""Batched report generation with an optional left-right mirror self-check and resumable output."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

from brain3d.errors import Brain3DError
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
from brain3d.fsutil import append_jsonl, atomic_write_json, atomic_write_text, ensure_dir, read_jsonl
from brain3d.preprocess import ModelVolume, PreprocessConfig, load_for_model
from brain3d.reporting.inputs import ScanInput, safe_name
from brain3d.reporting.schema import Findings, NotAssessable, ReportRecord


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


def read_scan(scan: ScanInput, preprocess: PreprocessConfig) -> ModelVolume:
    """A scan's model tensor read from its files (the default loader of `generate_records`)."""
    return load_for_model(scan.paths, preprocess, series_uid=scan.meta.get("series_uid"))


def generate_records(model, scans: Sequence[ScanInput], opts: ReportOptions, preprocess: PreprocessConfig,
                     on_record: Callable[[ReportRecord], None] | None = None,
                     loader: Callable[[ScanInput, PreprocessConfig], ModelVolume] = read_scan) -> Iterator[ReportRecord]:
    """Yield one ReportRecord per scan; unreadable scans yield an error record and the others go on.

    `loader` lets a caller that already holds the volumes in memory (the web service) skip reading them again.
    Without `opts.sequences` the records judge what is assessable by the model's own input channels."""
    if opts.sequences is None:
        opts = replace(opts, sequences=tuple(model.config.sequences))
    for start in range(0, len(scans), opts.batch_size):
        batch = scans[start:start + opts.batch_size]
        loaded, tensors, records = [], [], []
        for scan in batch:
            t0 = time.perf_counter()
            try:
                mv = loader(scan, preprocess)
            except Brain3DError as exc:
                records.append(_record(scan, opts, error=str(exc), seconds=time.perf_counter() - t0))
                continue
            loaded.append((scan, "".join(mv.orientation), time.perf_counter() - t0))
            tensors.append(mv.tensor)
        if tensors:
            t0 = time.perf_counter()
            volumes = torch.stack(tensors)  # (B, C, D, H, W)
            texts, mirrored = generate_pair(model, volumes.to(model.device), opts.profile, opts.max_new_tokens,
                                            opts.seed, opts.mirror_check)
            share = (time.perf_counter() - t0) / len(tensors)
            for (scan, orient, load_s), text, mtext in zip(loaded, texts, mirrored):
                rec = _record(scan, opts, report=text, orientation=orient, seconds=load_s + share)
                if mtext is not None:
                    m_side = side_of(mtext)
                    rec.mirrored_report, rec.mirrored_side = mtext, m_side
                    rec.laterality_consistent = m_side == mirrored_side(rec.findings.side)
                records.append(rec)
        order = {s.id: i for i, s in enumerate(batch)}
        for rec in sorted(records, key=lambda r: order[r.id]):
            if on_record is not None:
                on_record(rec)
            yield rec


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
    """Writes `<id>.txt`, `<id>.json` and appends `reports.jsonl` as each scan finishes (resumable)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = ensure_dir(out_dir)
        self.jsonl = self.out_dir / "reports.jsonl"

    def done_ids(self) -> set[str]:
        """Ids already reported successfully by an earlier (possibly interrupted) run."""
        if not self.jsonl.exists():
            return set()
        return {r["id"] for r in read_jsonl(self.jsonl) if not r.get("error")}

    def path(self, rec_id: str, suffix: str) -> Path:
        """Where the output `suffix` (".txt", ".json", ".sr.dcm", ...) of a scan goes."""
        return self.out_dir / f"{safe_name(rec_id)}{suffix}"

    def __call__(self, rec: ReportRecord) -> None:
        if rec.error is None:
            atomic_write_text(self.path(rec.id, ".txt"), rec.report.strip() + "\n")
        atomic_write_json(self.path(rec.id, ".json"), rec.model_dump())
        append_jsonl(self.jsonl, rec.model_dump())

    def compact(self) -> None:
        """Keep one row per id in reports.jsonl (the latest), e.g. a retried scan that failed before."""
        if not self.jsonl.exists():
            return
        latest = {r["id"]: r for r in read_jsonl(self.jsonl)}
        atomic_write_text(self.jsonl, "".join(json.dumps(r) + "\n" for r in latest.values()))
