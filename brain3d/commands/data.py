"""`brain3d data brats|healthy|merge|audit`: downloaded folders → one manifest, one split, one shortcut check.

The heavy libraries (torch, SimpleITK, scikit-learn) are imported inside the commands, so that `--help`
answers at once.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, List, Optional

import typer

from brain3d.errors import Brain3DError


@contextlib.contextmanager
def _bar(label: str, total: int, quiet: bool) -> Iterator:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), disable=quiet)
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)


def _side_counts(records) -> str:
    from collections import Counter

    c = Counter((r.truth.side or "none") if r.truth else "no truth" for r in records if not r.healthy)
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items()))


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(help="Real data: BraTS2020 + TextBraTS, healthy BIDS controls, merge/split, shortcut audit.",
                           no_args_is_help=True)
    app.add_typer(data_app, name="data")

    @data_app.command("brats")
    def brats(
        root: Path = typer.Argument(..., help="BraTS2020 training folder (subject folders nested or flat)."),
        out: Path = typer.Option(..., "--out", help="Manifest JSONL to write."),
        reports: Optional[Path] = typer.Option(None, "--reports", help="TextBraTS folder (default: ROOT itself)."),
        sequences: str = typer.Option("flair", "--sequences", help="Comma-separated subset of flair,t1,t1ce,t2."),
        require_report: bool = typer.Option(False, "--require-report", help="Leave out subjects without a report."),
        skip_bad: bool = typer.Option(False, "--skip-bad", help="Leave out unreadable subjects instead of stopping."),
        workers: int = typer.Option(1, "--workers", help="Processes (truth needs ~3-10 s per subject)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ) -> None:
        """BraTS subjects + TextBraTS reports → manifest, truth (side, lobes, volumes) measured on each seg."""
        from brain3d.data import brats as b
        from brain3d.data.manifest import write_manifest

        seqs = tuple(s.strip().lower() for s in sequences.split(",") if s.strip())
        subjects = b.find_subjects(root)
        n_reports = b.attach_reports(subjects, reports or root)
        chosen = [s for s in subjects.values() if s.report or not require_report]
        with _bar("brats", len(chosen), quiet) as tick:
            outcomes = b.build_records(chosen, seqs, skip_bad, max(1, workers), tick)
        records = [o.record for o in outcomes if o.record is not None]
        if not records:
            raise Brain3DError("no subject could be read; nothing written", root)
        write_manifest(records, out)
        typer.echo(f"wrote {len(records)} BraTS subjects to {out}")
        typer.echo(f"  reports: {n_reports} of {len(subjects)} subjects have a TextBraTS report; "
                   f"{len(subjects) - n_reports} have none"
                   + (" (left out)" if require_report else " (kept with an empty report)"))
        no_seg = sum(r.mask is None for r in records)
        if no_seg:
            typer.echo(f"  {no_seg} subject(s) have no seg file: kept without truth")
        typer.echo(f"  sides from the masks: {_side_counts(records)}")
        for o in outcomes:
            if o.problem:
                typer.echo(f"  left out {o.id}: {o.problem}", err=True)

    @data_app.command("healthy")
    def healthy(
        bids_root: Path = typer.Argument(..., help="BIDS tree of healthy controls (e.g. OpenNeuro ds000221)."),
        out: Path = typer.Option(..., "--out", help="Manifest JSONL to write."),
        modality: str = typer.Option("FLAIR", "--modality", help="BIDS suffix of the scans: FLAIR, T1w, T2w."),
        scans_dir: Optional[Path] = typer.Option(None, "--scans-dir",
                                                 help="Folder for the stripped scans (default: OUT's stem + _brain)."),
        device: str = typer.Option("cpu", "--device", help="Torch device for the skull-stripping network."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ) -> None:
        """Find, skull-strip (deepbet network, offline) and report healthy scans → manifest."""
        from brain3d.data import healthy as h
        from brain3d.data.manifest import write_manifest
        from brain3d.fsutil import atomic_dir, atomic_write_json

        scans = h.find_scans(bids_root, modality)
        scans_dir = scans_dir or out.with_name(out.name.split(".")[0] + "_brain")
        h.check_replaceable(scans_dir)
        with atomic_dir(scans_dir) as tmp, _bar("healthy", len(scans), quiet) as tick:
            records = h.build_records(scans, tmp, scans_dir, modality, device, tick)
            atomic_write_json(tmp / h.MARKER, {"generator": "brain3d data healthy", "source": str(bids_root),
                                               "modality": modality, "skull_strip": "deepbet 1.0.2 network",
                                               "subjects": [r.id for r in records]})
            write_manifest(records, out)
        typer.echo(f"wrote {len(records)} healthy subjects to {out} (stripped scans in {scans_dir})")

    @data_app.command("merge")
    def merge(
        manifests: List[Path] = typer.Argument(..., help="Manifests to merge (e.g. brats.jsonl healthy.jsonl)."),
        out: Path = typer.Option(..., "--out", help="Merged manifest JSONL to write."),
        split: str = typer.Option("paper", "--split", help="paper (70/10/20 by class and side) or textbrats."),
        textbrats: Optional[Path] = typer.Option(None, "--textbrats", help="Folder with TextBraTS' Train.json/Test.json."),
        seed: int = typer.Option(42, "--seed", help="Seed of the split."),
    ) -> None:
        """Merge manifests and assign train/val/test splits."""
        from collections import Counter

        from brain3d.data import split as sp
        from brain3d.data.manifest import write_manifest

        records = sp.merge(list(manifests))
        if split == "paper":
            records = sp.paper_split(records, seed)
        elif split == "textbrats":
            if textbrats is None:
                raise Brain3DError("--split textbrats needs --textbrats DIR (the folder with Train.json and Test.json)")
            records = sp.textbrats_split(records, sp.read_textbrats_split(textbrats), seed)
        else:
            raise Brain3DError(f"unknown split {split!r}; expected paper or textbrats")
        write_manifest(records, out)
        c = Counter(r.split for r in records)
        typer.echo(f"wrote {len(records)} subjects to {out} ({split} split, seed {seed}): "
                   + ", ".join(f"{k} {c.get(k, 0)}" for k in ("train", "val", "test")))

    @data_app.command("audit")
    def audit(
        manifest: Path = typer.Argument(..., help="Manifest JSONL (healthy and pathological subjects)."),
        config: str = typer.Option("paper", "--config", help="Profile or YAML whose preprocessing the model uses."),
        set_: List[str] = typer.Option([], "--set", help="Override a config setting, e.g. --set data.nonzero=true."),
        out: Optional[Path] = typer.Option(None, "--out", help="Folder for audit.json / audit.md "
                                                                 "(default: MANIFEST's stem + _audit)."),
        seed: int = typer.Option(42, "--seed", help="Seed of the folds and the bootstrap."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ) -> None:
        """Shortcut check: can a classifier tell healthy from pathological without the lesion?"""
        from brain3d.data.audit import markdown, run_audit
        from brain3d.data.manifest import read_manifest
        from brain3d.fsutil import atomic_write_json, atomic_write_text
        from brain3d.train.config import load_config

        cfg = load_config(config, set_)
        records = read_manifest(manifest)
        sequence = cfg.sequences()[0]
        if any(sequence not in r.images for r in records):
            sequence = None  # fall back to each record's first sequence
        with _bar("audit", len(records), quiet) as tick:
            result = run_audit(records, cfg.preprocess(), sequence, seed, tick)
        out = out or manifest.with_name(manifest.name.split(".")[0] + "_audit")
        atomic_write_json(out / "audit.json", result)
        atomic_write_text(out / "audit.md", markdown(result))
        typer.echo(f"shortcut audit: AUROC {result['auroc']:.3f} (95% CI {result['ci95'][0]:.3f}-"
                   f"{result['ci95'][1]:.3f}); image features {result['by_group']['image']['auroc']:.3f}, "
                   f"header fields {result['by_group']['header']['auroc']:.3f}; report in {out}")
        if result["warning"]:
            typer.echo(f"warning: {result['warning']}", err=True)

