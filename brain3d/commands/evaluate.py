"""`brain3d score`, `compare`, `evaluate` and `ablate`: score predictions, compare systems, evaluate checkpoints."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

if TYPE_CHECKING:  # imported where used: a usage error or --help should not wait for torch
    from brain3d.eval.nlg import NLGOptions
    from brain3d.eval.scoring import ScoreOptions


def read_predictions(path: Path) -> list[dict]:
    """Rows of a predictions JSONL file; a malformed line is a PredictionsError naming the line."""
    from brain3d.eval.scoring import PredictionsError

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
    from brain3d.eval.nlg import METEOR_BACKENDS, NLGOptions

    if meteor_backend not in METEOR_BACKENDS:
        raise typer.BadParameter(f"expected one of {METEOR_BACKENDS}", param_hint="--meteor-backend")
    return NLGOptions(meteor=not no_meteor, meteor_backend=meteor_backend, bertscore=not no_bertscore,
                      bertscore_model=str(bertscore_model) if bertscore_model else None,
                      bertscore_layers=bertscore_layers, device=device)


# Scoring options shared by score / evaluate / ablate (one definition, reused as defaults).
BERTSCORE_MODEL = typer.Option(None, "--bertscore-model", help="Local model folder (default: packaged all-MiniLM-L6-v2).")
BERTSCORE_LAYERS = typer.Option(None, "--bertscore-layers", help="Layer to score with (default: the model's last).")
NO_BERTSCORE = typer.Option(False, "--no-bertscore", help="Skip BERTScore.")
NO_METEOR = typer.Option(False, "--no-meteor", help="Skip METEOR (saves the Java start-up).")
METEOR_BACKEND = typer.Option("auto", "--meteor-backend", help="auto | java | nltk.")
N_BOOT = typer.Option(1000, "--n-boot", help="Bootstrap resamples.")
BOOT_SEED = typer.Option(42, "--boot-seed", help="Bootstrap seed.")
# Generation options shared by evaluate / ablate.
MANIFEST = typer.Option(..., "--manifest", "-m", help="Manifest (JSONL) naming scans, reports and truth.")
SPLIT = typer.Option("test", "--split", help="Split to evaluate: train, val, test or all.")
PROFILE = typer.Option("greedy", "--profile", help="Decoding: greedy (deterministic) or paper (sampling).")
BATCH_SIZE = typer.Option(4, "--batch-size", min=1, help="Scans generated together.")
MAX_NEW_TOKENS = typer.Option(256, "--max-new-tokens", min=1, help="Longest report, in tokens.")
MIRROR = typer.Option(False, "--mirror", help="Also generate for the left-right mirrored scans (mirror test).")
LIMIT = typer.Option(None, "--limit", min=1, help="Only the first N subjects of the split (smoke runs).")
DEVICE = typer.Option("auto", "--device", help="auto, cpu or cuda (generation and BERTScore).")
VISION_MODEL = typer.Option(None, "--vision-model", help="Override the vision base-model folder.")
LANGUAGE_MODEL = typer.Option(None, "--language-model", help="Override the language base-model folder.")
LOAD_4BIT = typer.Option(False, "--load-4bit", help="Load the language model in 4-bit NF4.")
GEN_SEED = typer.Option(0, "--seed", help="Sampling seed (paper profile).")


def score_options(system: str, bertscore_model, bertscore_layers, no_bertscore, no_meteor, meteor_backend,
                  n_boot, boot_seed, device) -> ScoreOptions:
    from brain3d.eval.scoring import ScoreOptions

    dev = device
    if device == "auto":
        import torch

        dev = "cuda" if torch.cuda.is_available() else "cpu"
    return ScoreOptions(nlg=nlg_options(bertscore_model, bertscore_layers, no_bertscore, no_meteor, meteor_backend,
                                        dev), n_boot=n_boot, seed=boot_seed, system=system)


def evaluate_options(split, profile, batch_size, max_new_tokens, mirror, limit, device, vision_model,
                     language_model, load_4bit, seed, score: ScoreOptions):
    from brain3d.eval.evaluate import PROFILES, EvaluateOptions

    if profile not in PROFILES:
        raise typer.BadParameter(f"expected one of {PROFILES}", param_hint="--profile")
    return EvaluateOptions(split=None if split == "all" else split, profile=profile, batch_size=batch_size,
                           max_new_tokens=max_new_tokens, mirror=mirror, seed=seed, limit=limit, device=device,
                           vision_model=str(vision_model) if vision_model else None,
                           language_model=str(language_model) if language_model else None,
                           load_4bit=load_4bit or None, score=score)


def register(app: typer.Typer) -> None:
    @app.command()
    def score(
        predictions: Path = typer.Argument(..., help="JSONL: id, reference, generated [, healthy, truth, generated_mirror]."),
        out: Path = typer.Option(..., "--out", help="Folder for metrics.json, metrics.md, per_sample.csv."),
        system: Optional[str] = typer.Option(None, "--system", help="Row name in the table (default: file stem)."),
        bertscore_model: Optional[Path] = BERTSCORE_MODEL,
        bertscore_layers: Optional[int] = BERTSCORE_LAYERS,
        no_bertscore: bool = NO_BERTSCORE,
        no_meteor: bool = NO_METEOR,
        meteor_backend: str = METEOR_BACKEND,
        n_boot: int = N_BOOT,
        boot_seed: int = BOOT_SEED,
        device: str = typer.Option("cpu", "--device", help="Device for BERTScore."),
    ) -> None:
        """Score a predictions file: NLG + clinical metrics with 95% bootstrap CIs, per subgroup."""
        from brain3d.eval.scoring import score_predictions

        t0 = time.perf_counter()
        rows = read_predictions(predictions)
        opts = score_options(system or predictions.stem, bertscore_model, bertscore_layers, no_bertscore, no_meteor,
                             meteor_backend, n_boot, boot_seed, device)
        score_predictions(rows, out, opts, source=predictions)
        typer.echo((out / "metrics.md").read_text(encoding="utf-8"))
        typer.echo(f"scored {len(rows)} predictions in {time.perf_counter() - t0:.1f} s -> {out}")

    @app.command()
    def evaluate(
        ctx: typer.Context,
        checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="Checkpoint folder (any phase)."),
        manifest: Path = MANIFEST,
        out: Path = typer.Option(..., "--out", help="Folder for predictions.jsonl and the metrics."),
        split: str = SPLIT, profile: str = PROFILE, batch_size: int = BATCH_SIZE,
        max_new_tokens: int = MAX_NEW_TOKENS, mirror: bool = MIRROR, limit: Optional[int] = LIMIT,
        device: str = DEVICE, vision_model: Optional[Path] = VISION_MODEL,
        language_model: Optional[Path] = LANGUAGE_MODEL, load_4bit: bool = LOAD_4BIT, seed: int = GEN_SEED,
        system: Optional[str] = typer.Option(None, "--system", help="Row name in the table (default: folder name)."),
        bertscore_model: Optional[Path] = BERTSCORE_MODEL, bertscore_layers: Optional[int] = BERTSCORE_LAYERS,
        no_bertscore: bool = NO_BERTSCORE, no_meteor: bool = NO_METEOR, meteor_backend: str = METEOR_BACKEND,
        n_boot: int = N_BOOT, boot_seed: int = BOOT_SEED,
        workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Processes that read and preprocess "
                                              "scans while the model generates (default: from the CPU count; 0: "
                                              "read between batches)."),
        processes: int = typer.Option(1, "--processes", min=1, help="Generate in this many local processes (as "
                                      "torchrun --nproc_per_node N); the first merges and scores."),
    ) -> None:
        """Generate reports for a manifest split (resumable) and score them against references and truth.
        Under torchrun (or with --processes) every rank generates its share; the main rank merges and scores."""
        from brain3d.commands.processes import rank_exit, relaunch
        from brain3d.eval.evaluate import evaluate_checkpoint
        from brain3d.ranks import under_launcher, world
        from brain3d.data.stream import default_workers

        if processes > 1 and not under_launcher():
            code = relaunch(ctx, processes)
            if code:
                raise typer.Exit(code=code)
            return
        t0 = time.perf_counter()
        so = score_options(system or checkpoint.name, bertscore_model, bertscore_layers, no_bertscore, no_meteor,
                           meteor_backend, n_boot, boot_seed, device)
        opts = evaluate_options(split, profile, batch_size, max_new_tokens, mirror, limit, device, vision_model,
                                language_model, load_4bit, seed, so)
        here = world()
        opts.workers = default_workers(here) if workers is None else workers
        result = evaluate_checkpoint(checkpoint, manifest, out, opts, system=so.system)
        if result is not None:
            typer.echo((out / "metrics.md").read_text(encoding="utf-8"))
            typer.echo(f"evaluated {result['n']} subjects in {time.perf_counter() - t0:.1f} s"
                       + (f" ({here.size} processes)" if here.distributed else "") + f" -> {out}")
        here.close()
        rank_exit(0, here.main)

    @app.command()
    def ablate(
        run_dir: Path = typer.Argument(..., help="Training run folder with phase1/ phase2a/ phase2b/."),
        manifest: Path = MANIFEST,
        out: Path = typer.Option(..., "--out", help="Folder for one evaluation per phase and table.md."),
        split: str = SPLIT, profile: str = PROFILE, batch_size: int = BATCH_SIZE,
        max_new_tokens: int = MAX_NEW_TOKENS, mirror: bool = MIRROR, limit: Optional[int] = LIMIT,
        device: str = DEVICE, vision_model: Optional[Path] = VISION_MODEL,
        language_model: Optional[Path] = LANGUAGE_MODEL, load_4bit: bool = LOAD_4BIT, seed: int = GEN_SEED,
        bertscore_model: Optional[Path] = BERTSCORE_MODEL, bertscore_layers: Optional[int] = BERTSCORE_LAYERS,
        no_bertscore: bool = NO_BERTSCORE, no_meteor: bool = NO_METEOR, meteor_backend: str = METEOR_BACKEND,
        n_boot: int = N_BOOT, boot_seed: int = BOOT_SEED,
    ) -> None:
        """Evaluate every phase checkpoint of a run on the same subjects; write the paper's Table I layout."""
        from brain3d.eval.ablate import ablate as run_ablation

        t0 = time.perf_counter()
        so = score_options("", bertscore_model, bertscore_layers, no_bertscore, no_meteor, meteor_backend, n_boot,
                           boot_seed, device)
        opts = evaluate_options(split, profile, batch_size, max_new_tokens, mirror, limit, device, vision_model,
                                language_model, load_4bit, seed, so)
        summary = run_ablation(run_dir, manifest, out, opts)
        typer.echo((out / "table.md").read_text(encoding="utf-8"))
        typer.echo(f"ablation over {len(summary['phases'])} phases, {summary['n_subjects']} subjects, "
                   f"in {time.perf_counter() - t0:.1f} s -> {out}")

    @app.command()
    def compare(
        dir_a: Path = typer.Argument(..., help="Folder written by `brain3d score`/`evaluate` (system A)."),
        dir_b: Path = typer.Argument(..., help="Folder of system B."),
        out: Optional[Path] = typer.Option(None, "--out", help="Also write the comparison as JSON here."),
        n_boot: int = N_BOOT,
        boot_seed: int = BOOT_SEED,
    ) -> None:
        """Paired bootstrap differences (A − B) per metric over the subjects both folders scored."""
        from brain3d.eval.compare import compare_dirs, comparison_markdown
        from brain3d.fsutil import atomic_write_json

        result = compare_dirs(dir_a, dir_b, n_boot, boot_seed)
        if out is not None:
            atomic_write_json(out, result)
        typer.echo(comparison_markdown(result))
