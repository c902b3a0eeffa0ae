"""`brain3d report`: write reports for scans with a trained checkpoint."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path
from typing import Optional

import typer

from brain3d.errors import Brain3DError, CheckpointError

DEMO_CHECKPOINT = Path("demo_out") / "run" / "phase2b"


def resolve_checkpoint(checkpoint: Path | None) -> tuple[Path, bool]:
    """The checkpoint to use and whether it is the demo's default; a clear error when there is none."""
    if checkpoint is not None:
        return checkpoint, False  # load_model checks that it is a checkpoint
    if (DEMO_CHECKPOINT / "config.json").is_file():
        return DEMO_CHECKPOINT, True
    raise CheckpointError(
        "no --checkpoint given and no demo checkpoint found; train one with `brain3d train` or run `make demo` "
        "(it writes demo_out/run/phase2b)", DEMO_CHECKPOINT)


def register(app: typer.Typer) -> None:
    @app.command()
    def report(
        ctx: typer.Context,
        inputs: list[str] = typer.Argument(..., help="NIfTI files, DICOM series folders, folders of scans, "
                                                     "manifests (.jsonl), or comma-joined sequence files."),
        checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="Trained checkpoint folder."),
        vision_model: Optional[Path] = typer.Option(None, help="Override the vision base-model folder."),
        language_model: Optional[Path] = typer.Option(None, help="Override the language base-model folder."),
        out: Optional[Path] = typer.Option(None, "--out", help="Write <id>.txt, <id>.json and reports.jsonl here."),
        json_lines: bool = typer.Option(False, "--json", help="Print one JSON record per scan to stdout."),
        profile: str = typer.Option("greedy", help="Decoding: greedy (deterministic) or paper (sampling)."),
        batch_size: int = typer.Option(4, min=1, help="Scans generated together."),
        device: str = typer.Option("auto", help="auto, cpu or cuda."),
        load_4bit: bool = typer.Option(False, "--load-4bit", help="Load the language model in 4-bit NF4."),
        precision: str = typer.Option("auto", "--precision", help="Base-model weights: auto (bf16 on GPU, fp32 on "
                                                                  "CPU), bf16 (half the memory, also on CPU) or fp32."),
        sequences: Optional[str] = typer.Option(None, help="Comma list; default: the checkpoint's sequences."),
        mirror_check: bool = typer.Option(False, "--mirror-check", help="Also report the left-right mirrored scan "
                                                                        "and flag reports whose side does not flip."),
        series_uid: Optional[str] = typer.Option(None, "--series-uid", help="DICOM series to read from a folder."),
        max_new_tokens: int = typer.Option(256, help="Longest report, in tokens."),
        dicom_sr: bool = typer.Option(False, "--dicom-sr", help="Also write <id>.sr.dcm: a DICOM Comprehensive 3D "
                                                                "SR (TID 1500) in the scan's own study (DICOM "
                                                                "series inputs only; needs --out)."),
        fhir: bool = typer.Option(False, "--fhir", help="Also write <id>.fhir.json: a FHIR R4B Bundle with a "
                                                        "DiagnosticReport and its Observations (needs --out)."),
        schema: bool = typer.Option(False, "--schema", help="Print the JSON schema of a record and exit."),
        explain: bool = typer.Option(False, "--explain", help="Also explain each report's side with 3D LIME (why "
                                                               "left and not right?): top supporting regions in its "
                                                               "JSON, and with --out <id>_lime.nii.gz/.png/.json."),
        explain_samples: int = typer.Option(100, "--explain-samples", min=2, help="LIME samples per scan."),
        workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Processes that read and preprocess "
                                              "scans while the model generates (default: from the CPU count; 0: "
                                              "read between batches)."),
        processes: int = typer.Option(1, "--processes", min=1, help="Report in this many local processes (as "
                                      "torchrun --nproc_per_node N: one per GPU, or per CPU core); each takes its "
                                      "share of the scans, one reports.jsonl at the end."),
    ) -> None:
        """Report on scans: one report text and one structured JSON record per scan."""
        from brain3d.reporting.schema import ReportRecord

        if schema:
            typer.echo(json.dumps(ReportRecord.model_json_schema(), indent=2))
            return
        if profile not in ("greedy", "paper"):
            raise typer.BadParameter("profile must be greedy or paper")
        if (dicom_sr or fhir) and out is None:
            raise typer.BadParameter("--dicom-sr and --fhir write files next to each report's JSON; give --out")
        from brain3d.commands.processes import rank_exit, relaunch
        from brain3d.ranks import under_launcher, world

        if processes > 1 and not under_launcher():
            code = relaunch(ctx, processes)
            if code:
                raise typer.Exit(code=code)
            return
        here = world()
        ckpt, is_demo = resolve_checkpoint(checkpoint)
        if is_demo and here.main:
            typer.echo(f"using the demo checkpoint {ckpt} (pass --checkpoint to choose another)", err=True)
        summary = run_report(inputs, ckpt, vision_model=vision_model, language_model=language_model, out=out,
                             json_lines=json_lines, profile=profile, batch_size=batch_size, device=device,
                             load_4bit=load_4bit, sequences=sequences, mirror_check=mirror_check,
                             series_uid=series_uid, max_new_tokens=max_new_tokens, dicom_sr=dicom_sr, fhir=fhir,
                             explain_samples=explain_samples if explain else None, precision=precision,
                             workers=workers)
        here.close()
        code = rank_exit(3 if summary["failed"] or summary["export_failed"] else 0, here.main)
        if code:
            raise typer.Exit(code=code)


def run_report(inputs, ckpt: Path, *, vision_model=None, language_model=None, out: Path | None = None,
               json_lines: bool = False, profile: str = "greedy", batch_size: int = 4, device: str = "auto",
               load_4bit: bool = False, sequences: str | None = None, mirror_check: bool = False,
               series_uid: str | None = None, max_new_tokens: int = 256, progress: bool = True,
               dicom_sr: bool = False, fhir: bool = False, explain_samples: int | None = None,
               precision: str = "auto", workers: int | None = None) -> dict:
    """Load the model once, report on every scan, write outputs as each finishes; returns counts (over all ranks).
    `explain_samples`: explain each report's side with that many LIME samples (None: no explanation).

    Under torchrun every rank reports its share of the scans not yet done (`brain3d.ranks`), into its own part
    of reports.jsonl that the main rank merges in input order at the end (`brain3d.shards`); one process is the
    world of one."""
    from rich.progress import Progress

    from brain3d.eval.evaluate import EvaluateOptions, preprocess_for
    from brain3d.ranks import world as current_world
    from brain3d.reporting.dicom_source import require_dicom_series
    from brain3d.reporting.inputs import discover
    from brain3d.data.stream import default_workers
    from brain3d.reporting.runner import ReportOptions, ReportWriter, generate_records
    from brain3d.reporting.schema import ReportRecord

    world = current_world()
    say = (lambda msg: typer.echo(msg, err=True)) if world.main else (lambda msg: None)
    if dicom_sr:  # refuse volume files before the model loads; folders are checked once their scans are known
        require_dicom_series([i for i in inputs if not Path(str(i)).is_dir()])
    model, seqs = load_with_sequences(ckpt, EvaluateOptions(device=world.device(device), vision_model=vision_model,
                                                            language_model=language_model, load_4bit=load_4bit or None,
                                                            precision=precision),
                                      sequences)
    scans = discover(inputs, seqs, series_uid=series_uid)
    order = [s.id for s in scans]
    world.agree(order)
    if dicom_sr:
        require_dicom_series([p for s in scans for p in s.paths])
    writer = ReportWriter(out, world) if out is not None else None
    exporter = _exporter(out, ckpt, dicom_sr, fhir)
    counts = {"reported": 0, "failed": 0, "inconsistent": 0, "export_failed": 0}
    if writer is not None:
        done = writer.start(order)
        if done:
            say(f"resuming: {len(done)} scans already reported in {out}")
        for scan in world.shard(s for s in scans if s.id in done):  # earlier reports still get the formats asked now
            if exporter is not None and exporter.missing(scan.id):
                rec = ReportRecord.model_validate_json(writer.path(scan.id, ".json").read_text(encoding="utf-8"))
                counts["export_failed"] += not _export(exporter, rec, scan)
        scans = [s for s in scans if s.id not in done]
    mine = list(world.shard(scans))
    opts = ReportOptions(checkpoint=str(ckpt), profile=profile, batch_size=batch_size, mirror_check=mirror_check,
                         max_new_tokens=max_new_tokens)
    pre = preprocess_for(model)
    with Progress(disable=not progress or not world.main, transient=True) as bar:
        task = bar.add_task("reporting", total=len(mine))
        records = generate_records(model, mine, opts, pre, workers=default_workers(world) if workers is None else workers)
        with closing(records):  # on any error its reader processes end with it
            for rec, scan in zip(records, mine):
                if explain_samples is not None and rec.error is None:
                    rec.explanation = side_explanation(model, scan, rec.report, explain_samples, out)
                if writer is not None:
                    writer(rec)
                counts["failed" if rec.error else "reported"] += 1
                if rec.laterality_consistent is False:
                    counts["inconsistent"] += 1
                    typer.echo(f"warning: {rec.id}: the reported side did not flip when the scan was mirrored "
                               f"({rec.findings.side} → {rec.mirrored_side}); check laterality", err=True)
                if rec.error:
                    typer.echo(f"error: {rec.error}", err=True)
                elif exporter is not None:
                    counts["export_failed"] += not _export(exporter, rec, scan)
                if json_lines:
                    typer.echo(rec.model_dump_json())
                elif rec.error is None and writer is None:
                    typer.echo(f"── {rec.id} ({rec.orientation})\n{rec.report.strip()}\n")
                bar.advance(task)
    if writer is not None:
        writer.finish(order)
    counts = world.sum(counts)
    say(f"{counts['reported']} reported, {counts['failed']} failed"
        + (f", {counts['inconsistent']} laterality-inconsistent" if mirror_check else "")
        + (f", {counts['export_failed']} not exported" if counts["export_failed"] else "")
        + (f" ({world.size} processes)" if world.distributed else ""))
    return counts


def load_with_sequences(ckpt: Path, opts, sequences: str | None):
    """The checkpoint's model and the sequence names to read (its own, or a comma list of as many)."""
    from brain3d.eval.evaluate import load_model

    model = load_model(ckpt, opts)
    seqs = tuple(sequences.split(",")) if sequences else tuple(model.config.sequences)
    if len(seqs) != len(model.config.sequences):
        raise CheckpointError(f"was trained on {len(model.config.sequences)} sequences "
                              f"({', '.join(model.config.sequences)}), not {len(seqs)}", ckpt)
    return model, seqs


def side_explanation(model, scan, report: str, samples: int, out: Path | None):
    """The report's side explained (3D LIME, `brain3d.explain`); its files go into `out` when given. A report
    without a side, or a failure, is stated in the explanation's `error` and the report stands."""
    from brain3d.explain import ExplainConfig, explain_scan
    from brain3d.reporting.schema import SideExplanation

    try:
        exp = explain_scan(model, scan, ExplainConfig(target="side", samples=samples), out=out, report=report)
    except Brain3DError as exc:
        return SideExplanation(error=str(exc))
    return SideExplanation.of(exp)


def _exporter(out: Path | None, ckpt: Path, dicom_sr: bool, fhir: bool):
    """The DICOM SR / FHIR writer for this run, or None when neither format was asked for."""
    if out is None or not (dicom_sr or fhir):
        return None
    from brain3d.reporting.device import device_for
    from brain3d.reporting.export import Exporter

    return Exporter(out, [f for f, on in (("dicom-sr", dicom_sr), ("fhir", fhir)) if on], device_for(ckpt))


def _export(exporter, rec, scan) -> bool:
    """Write one record's hospital formats; a failure is reported for this scan only and the run goes on."""
    try:
        exporter(rec, scan)
        return True
    except Brain3DError as exc:
        typer.echo(f"error: {exc}", err=True)
        return False
