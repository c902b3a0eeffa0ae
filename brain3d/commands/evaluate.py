"""`brain3d score` and `brain3d compare`: score any predictions file, compare two scored systems."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from brain3d.eval.nlg import METEOR_BACKENDS, NLGOptions
from brain3d.eval.scoring import PredictionsError, ScoreOptions


def read_predictions(path: Path) -> list[dict]:
    """Rows of a predictions JSONL file; a malformed line is a PredictionsError naming the line."""
    if not path.is_file():
        raise PredictionsError("predictions file not found", path)
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise PredictionsError(f"line {lineno} is not valid JSON ({exc.msg})", path) from None
    return rows


def nlg_options(bertscore_model: Optional[Path], bertscore_layers: Optional[int], no_bertscore: bool,
                no_meteor: bool, meteor_backend: str, device: str) -> NLGOptions:
    if meteor_backend not in METEOR_BACKENDS:
        raise typer.BadParameter(f"expected one of {METEOR_BACKENDS}", param_hint="--meteor-backend")
    return NLGOptions(meteor=not no_meteor, meteor_backend=meteor_backend, bertscore=not no_bertscore,
                      bertscore_model=str(bertscore_model) if bertscore_model else None,
                      bertscore_layers=bertscore_layers, device=device)


def register(app: typer.Typer) -> None:
    @app.command()
    def score(
        predictions: Path = typer.Argument(..., help="JSONL: id, reference, generated [, healthy, truth, generated_mirror]."),
        out: Path = typer.Option(..., "--out", help="Folder for metrics.json, metrics.md, per_sample.csv."),
        system: Optional[str] = typer.Option(None, "--system", help="Row name in the table (default: file stem)."),
        bertscore_model: Optional[Path] = typer.Option(None, "--bertscore-model",
                                                       help="Local model folder (default: packaged all-MiniLM-L6-v2)."),
        bertscore_layers: Optional[int] = typer.Option(None, "--bertscore-layers",
                                                       help="Layer to score with (default: the model's last)."),
        no_bertscore: bool = typer.Option(False, "--no-bertscore", help="Skip BERTScore."),
        no_meteor: bool = typer.Option(False, "--no-meteor", help="Skip METEOR (saves the Java start-up)."),
        meteor_backend: str = typer.Option("auto", "--meteor-backend", help="auto | java | nltk."),
        n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap resamples."),
        seed: int = typer.Option(42, "--seed", help="Bootstrap seed."),
        device: str = typer.Option("cpu", "--device", help="Device for BERTScore."),
    ) -> None:
        """Score a predictions file: NLG + clinical metrics with 95% bootstrap CIs, per subgroup."""
        from brain3d.eval.scoring import score_predictions

        t0 = time.perf_counter()
        rows = read_predictions(predictions)
        opts = ScoreOptions(nlg=nlg_options(bertscore_model, bertscore_layers, no_bertscore, no_meteor,
                                            meteor_backend, device),
                            n_boot=n_boot, seed=seed, system=system or predictions.stem)
        score_predictions(rows, out, opts, source=predictions)
        typer.echo((out / "metrics.md").read_text())
        typer.echo(f"scored {len(rows)} predictions in {time.perf_counter() - t0:.1f} s -> {out}")

    @app.command()
    def compare(
        dir_a: Path = typer.Argument(..., help="Folder written by `brain3d score`/`evaluate` (system A)."),
        dir_b: Path = typer.Argument(..., help="Folder of system B."),
        out: Optional[Path] = typer.Option(None, "--out", help="Also write the comparison as JSON here."),
        n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap resamples."),
        seed: int = typer.Option(42, "--seed", help="Bootstrap seed."),
    ) -> None:
        """Paired bootstrap differences (A − B) per metric over the subjects both folders scored."""
        from brain3d.eval.compare import compare_dirs, comparison_markdown
        from brain3d.fsutil import atomic_write_json

        result = compare_dirs(dir_a, dir_b, n_boot, seed)
        if out is not None:
            atomic_write_json(out, result)
        typer.echo(comparison_markdown(result))
