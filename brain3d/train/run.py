"""`train()`: the three phases end to end on a manifest, with checkpoints, resume, logs and diagnostics.

RUN_DIR layout:
    train_config.yaml     the resolved run config (base-model folders included)
    metrics.jsonl         one row per optimizer step and per epoch (phase, epoch, step, losses, lr)
    phase1/ phase2a/ phase2b/   checkpoints, each loadable alone by `Brain3D.from_pretrained`
    curves/phase*.png     loss curves; diagnostics/phase*.json   image-reliance probe after each phase
    state/                resume state of the phase in progress (removed when the phase's checkpoint exists)
    feature-cache/        encoder features for phases 2A/2B (unless cache.dir points elsewhere)
    tiny-models/          the tiny base models, when the config asks for `tiny`
    summary.json          per-phase results and checkpoint paths (also returned by `train`)
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable, Iterable

import torch
import yaml

from brain3d.data.cache import FeatureCache, FeatureSource
from brain3d.data.dataset import FlipPolicy, ReportDataset, VolumeSource
from brain3d.data.manifest import read_manifest
from brain3d.errors import ConfigError, TrainingError
from brain3d.fsutil import atomic_write_json, atomic_write_text, read_jsonl, stable_int
from brain3d.train.config import TINY, TrainConfig
from brain3d.train.curves import save_loss_curve
from brain3d.train.diagnostics import image_reliance
from brain3d.train.features import TextBank, encoder_digest, feature_keys, fill_cache
from brain3d.train.loop import LoopContext, PhaseData, run_phase
from brain3d.train.phases import PHASE_ORDER, parse_phases, phase_dirname
from brain3d.train.state import read_state_info
from brain3d.vocabulary import FINDINGS


class RunPaths:
    """Where everything of a run lives (see the module docstring)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.config = self.root / "train_config.yaml"
        self.metrics = self.root / "metrics.jsonl"
        self.state = self.root / "state"
        self.summary = self.root / "summary.json"
        self.cache = self.root / "feature-cache"

    def phase(self, name: str) -> Path:
        return self.root / phase_dirname(name)

    def curve(self, name: str) -> Path:
        return self.root / "curves" / f"{phase_dirname(name)}.png"

    def diagnostics(self, name: str) -> Path:
        return self.root / "diagnostics" / f"{phase_dirname(name)}.json"


def train(
    config: TrainConfig,
    manifest: str | Path,
    out_dir: str | Path,
    phases: str | Iterable[str] = PHASE_ORDER,
    resume: bool = False,
    progress: bool = True,
    vision_model: str | Path | None = None,
    language_model: str | Path | None = None,
    on_epoch_end: Callable[[str, int, dict], None] | None = None,
) -> dict:
    """Train the requested phases in order and return the run summary (also RUN_DIR/summary.json):
    {"phases": {name: {"checkpoint", "best_val_loss", "best_epoch", "epochs_run", "steps", ...}}, ...}.

    Works in one process or under `torchrun --nproc_per_node N` (DDP; gloo on CPU). `vision_model` /
    `language_model` override the config's base-model folders. `on_epoch_end(phase, epoch, info)` is
    called in every process after each epoch's resume state is written."""
    trainer = Trainer(config, manifest, out_dir, progress=progress, vision_model=vision_model,
                      language_model=language_model, on_epoch_end=on_epoch_end)
    return trainer.run(phases, resume=resume)


class Trainer:
    """One run: the manifest's train/val subjects, the resolved base models, the accelerator, RUN_DIR.

    `run()` is the whole job; `load_model`, `prepare_phase` and `loop_context` are its steps, public so
    that a caller (or a test) can drive a single phase by hand."""

    def __init__(self, config: TrainConfig, manifest: str | Path, out_dir: str | Path, progress: bool = True,
                 vision_model: str | Path | None = None, language_model: str | Path | None = None,
                 on_epoch_end: Callable[[str, int, dict], None] | None = None):
        self.config = config
        self.manifest = Path(manifest)
        self.paths = RunPaths(Path(out_dir))
        self.progress = progress
        self.on_epoch_end = on_epoch_end
        self.acc = _accelerator(config)
        if config.threads:
            torch.set_num_threads(config.threads)
        records = read_manifest(manifest)
        self.train_records = [r for r in records if r.split == "train"]
        self.val_records = [r for r in records if r.split == "val"]
        if not self.train_records:
            raise TrainingError("the manifest has no subject in split 'train'", manifest)
        self.vision, self.language = _base_models(config, self.paths, self.acc, vision_model, language_model, progress)
        self.resolved = {**config.to_dict(), "vision_model": self.vision, "language_model": self.language}
        self.volumes = VolumeSource(config.preprocess(), config.sequences(), in_memory=config.data.in_memory)
        d = config.data
        self.flip = FlipPolicy(d.flip_p, config.seed) if d.flip and d.flip_p > 0 else None

    @property
    def main(self) -> bool:
        return self.acc.is_main_process

    def loop_context(self) -> LoopContext:
        c = self.config
        return LoopContext(self.acc, c.seed, self.paths.state, self.paths.metrics, c.max_grad_norm,
                           c.eval_batch_size, self.progress, self.on_epoch_end)

    def run(self, phases: str | Iterable[str] = PHASE_ORDER, resume: bool = False) -> dict:
        t_start = time.time()
        names = parse_phases(phases)
        paths, acc = self.paths, self.acc
        _check_run_dir(paths, self.resolved, names, resume)
        state = read_state_info(paths.state) if resume else None
        summary = _read_summary(paths) if resume else {}
        summary.update({"run_dir": str(paths.root), "manifest": str(self.manifest), "world_size": acc.num_processes,
                        "device": str(acc.device), "mixed_precision": acc.mixed_precision})
        summary.setdefault("phases", {})
        if self.main:
            atomic_write_text(paths.config, yaml.safe_dump(self.resolved, sort_keys=False))
            _reset_metrics(paths, state, resume)
        acc.wait_for_everyone()

        ctx = self.loop_context()
        start, model = _earlier_checkpoint(paths, names[0]), None
        for name in names:
            if resume and paths.phase(name).is_dir():
                start, model = paths.phase(name), None  # finished earlier: the next phase starts from it
                continue
            t0 = time.time()
            if model is None:
                model = self.load_model(start)
            phase = self.config.phases[name]
            data, cache_info = self.prepare_phase(name, model)
            resume_info = state if (state is not None and state.get("phase") == name) else None
            result = run_phase(ctx, name, phase, model, data, resume_info)
            entry = {**result.to_dict(), "checkpoint": str(paths.phase(name)), "seconds": round(time.time() - t0, 2),
                     "cache": cache_info}
            if self.main:
                entry.update(self._finish_phase(name, model, entry))
                shutil.rmtree(paths.state, ignore_errors=True)
            acc.wait_for_everyone()
            summary["phases"][name] = entry
            state, start = None, paths.phase(name)
            if self.main:
                atomic_write_json(paths.summary, summary)
        summary["seconds"] = round(time.time() - t_start, 2)
        if self.main:
            atomic_write_json(paths.summary, summary)
        acc.wait_for_everyone()
        return summary

    def load_model(self, start: Path | None = None):
        """The model a phase starts from: a checkpoint, or a fresh, seeded build from the base models."""
        from brain3d.model.brain3d import Brain3D

        dtype = weights_dtype(self.acc)
        if start is not None:
            return Brain3D.from_pretrained(start, vision_model=self.vision, language_model=self.language,
                                           device=self.acc.device, dtype=dtype)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stable_int(self.config.seed, "init"))
            return Brain3D.build(self.config.brain3d_config(self.vision, self.language), device=self.acc.device,
                                 dtype=dtype)

    def prepare_phase(self, name: str, model) -> tuple[PhaseData, dict | None]:
        """Make `model` ready for phase `name` (LoRA added when the phase trains it, trainable tensors float32)
        and build what the phase iterates over: volumes, or cached encoder features (filled here)."""
        config, acc, phase = self.config, self.acc, self.config.phases[name]
        if phase.lora and not model.has_lora:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(stable_int(config.seed, "lora-init"))
                model.add_lora(model.config.lora)
        _upcast_trainable(model)
        encoder_trains = {"stem", "depth_pos"} & set(phase.groups)
        if phase.inputs == "features" and encoder_trains:
            raise ConfigError(f"phase {name} trains {', '.join(sorted(encoder_trains))} so it cannot read cached "
                              "encoder features; set its inputs to volumes")
        train_recs, val_recs = self.train_records, self.val_records
        source, inputs, cache_info = self.volumes, "volumes", None
        if phase.inputs == "features" and config.cache.enabled:
            t0 = time.time()
            cache = FeatureCache(config.cache.dir or self.paths.cache)
            precision = f"{next(model.encoder.parameters()).dtype}-{acc.mixed_precision}"
            variants = {r.id: ((False, True) if self.flip else (False,)) for r in train_recs}
            variants.update({r.id: (False,) for r in val_recs})
            keys = feature_keys(train_recs + val_recs, variants, encoder_digest(model, precision), self.volumes, precision)
            computed = fill_cache(model, cache, train_recs + val_recs, keys, self.volumes, config.eval_batch_size,
                                  acc.process_index, acc.num_processes, acc.autocast,
                                  _progress_factory(self.progress and self.main))
            acc.wait_for_everyone()
            source, inputs = FeatureSource(cache, keys, in_memory=config.data.in_memory), "features"
            cache_info = {"dir": str(cache.root), "entries": len(keys), "computed_here": computed,
                          "seconds": round(time.time() - t0, 2)}
        if phase.region_weight > 0 and inputs != "volumes":
            raise ConfigError(f"phase {name} has region_weight > 0 but reads cached features; the mask loss needs "
                              "volumes (set its inputs to volumes)")
        if phase.region_weight > 0 and getattr(model, "regions", None) is None:
            raise ConfigError(f"phase {name} has region_weight > 0 but the model has no region tokens "
                              "(set model.region_tokens=true)")
        labels = self.volumes.labels if phase.region_weight > 0 else None
        data = PhaseData(
            train=ReportDataset(train_recs, source, self.flip, labels),
            val=ReportDataset(val_recs, source, None, labels) if val_recs else None,
            inputs=inputs,
        )
        if phase.objective == "contrastive":
            data.bank = TextBank.build(model, train_recs, self.flip is not None, config.eval_batch_size, acc.autocast)
            if len(val_recs) >= 2:
                data.val_bank = TextBank.build(model, val_recs, False, config.eval_batch_size, acc.autocast)
        return data, cache_info

    @torch.no_grad()
    def token_probe(self, model) -> dict:
        """Cross-validated linear probes of lesion side and presence on the compressed tokens of the train and
        validation subjects (`brain3d.train.probe`): what the vision half hands the language half after this phase."""
        from brain3d.train.probe import token_probes

        records = self.train_records + self.val_records
        was_training = model.training
        model.eval()
        try:
            def features(recs):
                x = torch.stack([self.volumes.load(r) for r in recs]).to(model.device)  # (b, C, D, H, W)
                with self.acc.autocast():
                    return model.encode_volume(x).float()  # (b, N, dv)

            return token_probes(model, records, features, batch_size=self.config.eval_batch_size)
        finally:
            model.train(was_training)

    def _finish_phase(self, name: str, model, entry: dict) -> dict:
        """Main process: diagnostics, loss curve, then the checkpoint (last, so its existence means 'phase done')."""
        config, paths = self.config, self.paths
        out: dict = {}
        if config.diagnostics.enabled:
            rec = (self.val_records or self.train_records)[0]
            diag = image_reliance(model, self.volumes.load(rec), config.diagnostics.max_new_tokens,
                                  seed=stable_int(config.seed, "probe"), autocast=self.acc.autocast)
            probe = self.token_probe(model)
            diag["token_probe"] = probe
            atomic_write_json(paths.diagnostics(name), {"phase": name, "subject": rec.id, "reference": rec.report, **diag})
            out["diagnostics"] = str(paths.diagnostics(name))
            out["ignores_image"] = diag["ignores_image"]
            out["token_probe"] = {**{k: probe[k]["accuracy"] for k in ("side", "presence")},
                                  **{k: probe[k]["balanced_accuracy"] for k in FINDINGS}}
        rows = read_jsonl(paths.metrics) if paths.metrics.exists() else []
        out["curve"] = str(save_loss_curve(rows, name, paths.curve(name), title=f"phase {name}"))
        model.save_pretrained(paths.phase(name), extra={
            "train_config": self.resolved, "phase": name, "best_val_loss": entry["best_val_loss"],
            "best_epoch": entry["best_epoch"],
        })
        return out


def _accelerator(config: TrainConfig):
    from accelerate import Accelerator

    cuda = torch.cuda.is_available()
    bf16 = config.precision == "bf16" or (config.precision == "auto" and cuda)
    from accelerate.utils import DistributedDataParallelKwargs

    # No buffer broadcast every forward: the frozen towers' buffers never change, and the projector's running
    # feature statistics are all-reduced by the model itself, so replicas agree without it.
    ddp = DistributedDataParallelKwargs(broadcast_buffers=False)
    # each run chooses its own precision: accelerate keeps the first Accelerator's mixed precision for the whole
    # process and refuses another, so a second run in one process (a notebook, the test suite) starts afresh; the
    # process group (PartialState) is kept
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(cpu=not cuda, mixed_precision="bf16" if bf16 else "no", kwargs_handlers=[ddp])


def weights_dtype(acc) -> torch.dtype:
    """The frozen towers' dtype follows the run's precision: bf16 runs hold them in bf16 (on a GPU as on CPU,
    half the memory of float32), fp32 runs in float32; trained brain3d tensors stay float32 either way."""
    return torch.bfloat16 if acc.mixed_precision == "bf16" else torch.float32


def _base_models(config: TrainConfig, paths: RunPaths, acc, vision: str | Path | None,
                 language: str | Path | None, progress: bool = False) -> tuple[str, str]:
    """Resolve the base-model folders: arguments, then config; `tiny` writes the tiny twin into the run."""
    vision = str(vision) if vision is not None else config.vision_model
    language = str(language) if language is not None else config.language_model
    for what, value in (("vision_model", vision), ("language_model", language)):
        if not value:
            raise ConfigError(f"no {what} folder given; pass --{what.replace('_', '-')} DIR or set {what} in the config")
    if TINY in (vision, language):
        tiny_dir = paths.root / "tiny-models"
        if acc.is_main_process:
            _make_tiny_models(tiny_dir, config, progress)
        acc.wait_for_everyone()
        vision = str((tiny_dir / "vision").resolve()) if vision == TINY else vision
        language = str((tiny_dir / "language").resolve()) if language == TINY else language
    return str(Path(vision).resolve()), str(Path(language).resolve())


def _make_tiny_models(folder: Path, config: TrainConfig, progress: bool = False) -> None:
    """The warmed-up tiny twin, as `brain3d demo` builds it, on this run's grid (finished folders are kept)."""
    from brain3d.twin.pretrained import make_pretrained_twin

    model = config.brain3d_config("tiny", "tiny")
    make_pretrained_twin(folder, config.seed, model.image_size, model.kernel_depth, model.depth_stride,
                         progress=progress)


def _check_run_dir(paths: RunPaths, resolved: dict, names: tuple[str, ...], resume: bool) -> None:
    if not resume:
        done = [n for n in names if paths.phase(n).exists()]
        if done or paths.state.exists():
            what = f"a {phase_dirname(done[0])} checkpoint" if done else "an interrupted run (state/)"
            raise ConfigError(f"already holds {what}; pass --resume to continue it or choose another --out", paths.root)
        return
    if paths.config.is_file():
        saved = yaml.safe_load(paths.config.read_text(encoding="utf-8"))
        diff = sorted(k for k in set(saved) | set(resolved) if saved.get(k) != resolved.get(k))
        if diff:
            raise ConfigError(f"--resume with a different config (changed: {', '.join(diff)}); "
                              "resume with the run's own train_config.yaml", paths.root)


def _earlier_checkpoint(paths: RunPaths, first: str) -> Path | None:
    """The latest existing checkpoint of a phase before `first` (e.g. phase1 when only 2a,2b are asked for)."""
    for name in reversed(PHASE_ORDER[:PHASE_ORDER.index(first)]):
        if paths.phase(name).is_dir():
            return paths.phase(name)
    return None


def _upcast_trainable(model) -> None:
    """Trainable brain3d tensors stay float32 (master weights) even when the towers load in bf16 on GPU."""
    for params in model.param_groups().values():
        for p in params:
            if p.is_floating_point() and p.dtype != torch.float32:
                p.data = p.data.float()


def _read_summary(paths: RunPaths) -> dict:
    import json

    if paths.summary.is_file():
        try:
            return json.loads(paths.summary.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return {}
    return {}


def _reset_metrics(paths: RunPaths, state: dict | None, resume: bool) -> None:
    """A new run starts an empty log; a resumed one drops the rows written after the state it resumes
    (the interrupted epoch), keeping those of finished phases."""
    if not paths.metrics.exists():
        return
    if not resume:
        paths.metrics.unlink()
        return
    done = {n for n in PHASE_ORDER if paths.phase(n).is_dir()}

    def keep(r: dict) -> bool:
        if r.get("phase") in done:
            return True
        return state is not None and r.get("phase") == state["phase"] and r.get("epoch", -1) <= state["epoch"]

    from brain3d.fsutil import atomic_write_jsonl

    atomic_write_jsonl(paths.metrics, [r for r in read_jsonl(paths.metrics) if keep(r)])


def _progress_factory(enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return lambda total, desc: tqdm(total=total, desc=desc, unit="volume", leave=False, dynamic_ncols=True)
