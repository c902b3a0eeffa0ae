"""The oracle grounding harness: does the *language half* learn to write what the features say?

A report generator can fail to read the image for two separate reasons: the vision half may not put the
finding into its features, or the language half (compressor, projector, LM, LoRA) may not learn to turn
features into words. This harness removes the first: encoder features are *planted*, generated from a known
truth at a controlled difficulty, and phases 2A/2B of a training profile are run on them through the one
training loop. What the model then writes on held-out planted subjects is scored per attribute.

Plants (features (N, dv) on the encoder's token grid; Gaussian noise everywhere, `signal` added where said):
  presence    channel 0 in every token when there is a lesion;
  global      presence, plus channel 1 = +signal (left) / -signal (right) in every token, channel 2 for bilateral;
  hemisphere  channel 0 only in the tokens of the lesion's hemisphere(s) (W < Wp/2 is the patient's left):
              the side is in *which* tokens are bright, nowhere in their content;
  regional    channel 0 in the lesion's hemisphere(s) *and* the coarse boxes of its lobes, finding channels
              3.. (edema, necrosis, enhancement, compression) in the same tokens.
A mirrored item (flip augmentation) is the mirrored truth with the noise mirrored along W, as for a scan.

Scores (greedy decoding, held-out subjects, none of them seen in training): side accuracy on one-sided and on
bilateral lesions, healthy specificity (a healthy subject's report asserts no pathology and no side),
presence accuracy, mirror flip rate (the mirrored features' report names the other side), lobe F1, findings
accuracy, and teacher-forced side discrimination (share of one-sided subjects whose true report has a lower
loss than its left<->right swapped twin).
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from brain3d.data.manifest import Record, Truth
from brain3d.vocabulary import FINDINGS
from brain3d.errors import ConfigError
from brain3d.fsutil import stable_int

PLANTS = ("presence", "global", "hemisphere", "regional")
# coarse lobe boxes as fractions of (D inferior->superior, H posterior->anterior): (d_lo, d_hi, h_lo, h_hi)
LOBE_BOXES = {"frontal": (0.0, 1.0, 0.55, 1.0), "occipital": (0.0, 1.0, 0.0, 0.25),
              "parietal": (0.5, 1.0, 0.25, 0.55), "temporal": (0.0, 0.5, 0.25, 0.55)}


@dataclass(frozen=True)
class GroundingConfig:
    """One harness run. `steps_2a` / `steps_2b` override the profile's epochs (None: the profile's own)."""

    plant: str = "hemisphere"
    n_train: int = 240
    n_val: int = 40
    n_test: int = 48
    healthy_share: float = 0.2
    signal: float = 1.0
    noise: float = 0.5
    seed: int = 0
    epochs_2a: int | None = None
    epochs_2b: int | None = None
    max_new_tokens: int = 64

    def __post_init__(self) -> None:
        if self.plant not in PLANTS:
            raise ConfigError(f"plant {self.plant!r} is not one of {', '.join(PLANTS)}")


def planted_records(n: int, split: str, healthy_share: float, seed: int) -> list[Record]:
    """`n` subjects with random truths (the paper's side proportions) and their synthetic reports."""
    from brain3d.synth.reports import random_truth, write_report

    rng = random.Random(stable_int("plant-records", split, seed))
    out = []
    for i in range(n):
        sid = f"plant-{split}-{seed}-{i:04d}"
        healthy = rng.random() < healthy_share
        truth = None if healthy else random_truth(rng)
        out.append(Record(id=sid, split=split, images={"flair": "planted"}, healthy=healthy,
                          truth=truth or Truth(), report=write_report(truth, healthy, sid, seed)))
    return out


class PlantedFeatures:
    """(record, mirrored) -> planted (N, dv) features on `grid` (a feature source for `ReportDataset`)."""

    def __init__(self, plant: str, grid: tuple[int, int, int], dim: int, signal: float, noise: float, seed: int):
        if dim < 3 + len(FINDINGS):
            raise ConfigError(f"planted features need at least {3 + len(FINDINGS)} channels, the encoder has {dim}")
        self.plant, self.grid, self.dim, self.signal, self.noise, self.seed = plant, grid, dim, signal, noise, seed

    def __call__(self, record: Record, mirrored: bool) -> torch.Tensor:
        from brain3d.data.dataset import mirror_truth

        gd, gh, gw = self.grid
        g = torch.Generator().manual_seed(stable_int("plant-noise", record.id, self.seed))
        x = self.noise * torch.randn(gd, gh, gw, self.dim, generator=g)  # (Dp, Hp, Wp, dv)
        if mirrored:
            x = x.flip(2)
        truth = mirror_truth(record.truth) if mirrored else record.truth
        if not record.healthy and truth is not None and truth.side:
            self._plant(x, truth)
        return x.reshape(gd * gh * gw, self.dim)  # (N, dv)

    def _plant(self, x: torch.Tensor, truth: Truth) -> None:
        gd, gh, gw = self.grid
        s = self.signal
        if self.plant in ("presence", "global"):
            x[..., 0] += s
            if self.plant == "global":
                if truth.side == "bilateral":
                    x[..., 2] += s
                else:
                    x[..., 1] += s if truth.side == "left" else -s
            return
        hemi = torch.zeros(gw, dtype=torch.bool)
        if truth.side in ("left", "bilateral"):
            hemi[: gw // 2] = True  # W index 0 = the patient's far left
        if truth.side in ("right", "bilateral"):
            hemi[gw // 2:] = True
        region = hemi[None, None, :].expand(gd, gh, gw).clone()  # (Dp, Hp, Wp)
        if self.plant == "regional":
            d = (torch.arange(gd) + 0.5) / gd
            h = (torch.arange(gh) + 0.5) / gh
            boxes = torch.zeros(gd, gh, dtype=torch.bool)
            for lobe in truth.lobes:
                if lobe in LOBE_BOXES:
                    d0, d1, h0, h1 = LOBE_BOXES[lobe]
                    boxes |= ((d >= d0) & (d < d1))[:, None] & ((h >= h0) & (h < h1))[None, :]
            region &= boxes[:, :, None]
        x[..., 0] += s * region
        if self.plant == "regional":
            for j, name in enumerate(FINDINGS):
                if truth.findings.get(name, False):
                    x[..., 3 + j] += s * region


@dataclass
class GroundingResult:
    config: dict
    profile: str
    scores: dict
    steps: dict = field(default_factory=dict)
    seconds: float = 0.0
    examples: list = field(default_factory=list)


def score_reports(records: Sequence[Record], generated: Sequence[str], mirrored: Sequence[str] | None = None) -> dict:
    """Per-attribute scores of generated reports against the records' truths (see the module docstring)."""
    from brain3d.data.dataset import mirror_truth
    from brain3d.eval.clinical import f1
    from brain3d.vocabulary import asserts_pathology, findings_of, lobes_of, side_of

    one_sided, bilateral, healthy, presence, lobes, findings, flips = [], [], [], [], [], [], []
    for i, (r, text) in enumerate(zip(records, generated)):
        side = side_of(text)
        presence.append(float(asserts_pathology(text) == (not r.healthy)))
        if r.healthy:
            healthy.append(float(side is None and not asserts_pathology(text)))
            continue
        (bilateral if r.truth.side == "bilateral" else one_sided).append(float(side == r.truth.side))
        lobes.append(f1(set(r.truth.lobes) & set(LOBE_BOXES), set(lobes_of(text))))
        said = findings_of(text)
        findings.append(sum(said[f] == bool(r.truth.findings.get(f, False)) for f in FINDINGS) / len(FINDINGS))
        if mirrored is not None and side in ("left", "right"):
            flips.append(float(side_of(mirrored[i]) == mirror_truth(Truth(side=side)).side))

    def mean(v: list[float]) -> float | None:
        return sum(v) / len(v) if v else None

    return {"side_acc_one_sided": mean(one_sided), "side_acc_bilateral": mean(bilateral),
            "healthy_specificity": mean(healthy), "presence_acc": mean(presence), "mirror_flip_rate": mean(flips),
            "lobe_f1": mean(lobes), "findings_acc": mean(findings),
            "n": {"one_sided": len(one_sided), "bilateral": len(bilateral), "healthy": len(healthy)}}


@torch.no_grad()
def side_discrimination(model, records: Sequence[Record], source: PlantedFeatures) -> float | None:
    """Share of one-sided subjects whose true report has a lower teacher-forced loss than its swapped twin."""
    from brain3d.data.dataset import swap_sides
    from brain3d.train.losses import weighted_lm_loss

    subjects = [r for r in records if not r.healthy and r.truth.side in ("left", "right")]
    if not subjects:
        return None
    wins = 0
    for r in subjects:
        feats = source(r, False)[None].expand(2, -1, -1)
        out = model([r.report, swap_sides(r.report)], features=feats)
        w = (out.labels != -100).float()
        losses = [float(weighted_lm_loss(out.logits[i:i + 1], out.labels[i:i + 1], w[i:i + 1])) for i in range(2)]
        wins += losses[0] < losses[1]
    return wins / len(subjects)


def run_grounding(profile, vision_model: str | Path, language_model: str | Path, cfg: GroundingConfig = GroundingConfig(),
                  progress: bool = False, workdir: str | Path | None = None) -> GroundingResult:
    """Train phases 2A and 2B of `profile` (a `TrainConfig`) on planted features and score the test subjects."""
    import time

    from accelerate import Accelerator

    from brain3d.data.dataset import FlipPolicy, ReportDataset
    from brain3d.model.brain3d import Brain3D
    from brain3d.train.loop import LoopContext, PhaseData, run_phase

    t0 = time.time()
    torch.manual_seed(stable_int(profile.seed, "init"))
    model = Brain3D.build(profile.brain3d_config(str(vision_model), str(language_model)))
    enc = model.encoder
    source = PlantedFeatures(cfg.plant, enc.grid, model.feature_dim, cfg.signal, cfg.noise, cfg.seed)
    train = planted_records(cfg.n_train, "train", cfg.healthy_share, cfg.seed)
    val = planted_records(cfg.n_val, "val", cfg.healthy_share, cfg.seed)
    test = planted_records(cfg.n_test, "test", cfg.healthy_share, cfg.seed)
    flip = FlipPolicy(profile.data.flip_p, profile.seed) if profile.data.flip and profile.data.flip_p > 0 else None
    steps = {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        ctx = LoopContext(Accelerator(cpu=True), profile.seed, Path(tmp) / "state", Path(tmp) / "metrics.jsonl",
                          profile.max_grad_norm, profile.eval_batch_size, progress)
        for name, epochs in (("2a", cfg.epochs_2a), ("2b", cfg.epochs_2b)):
            phase = profile.phases.get(name)
            if phase is None:
                continue
            if epochs is not None:
                if epochs == 0:
                    continue
                phase = phase.model_copy(update={"epochs": epochs})
            if phase.lora and not model.has_lora:
                torch.manual_seed(stable_int(profile.seed, "lora-init"))
                model.add_lora(model.config.lora)
            data = PhaseData(train=ReportDataset(train, source, flip), val=ReportDataset(val, source, None),
                             inputs="features")
            result = run_phase(ctx, name, phase, model, data)
            steps[name] = result.steps
    model.eval()
    feats = torch.stack([source(r, False) for r in test])  # (B, N, dv)
    mirrored = torch.stack([source(r, True) for r in test])
    generated, generated_m = [], []
    for i in range(0, len(test), 16):
        generated += model.generate(features=feats[i:i + 16], max_new_tokens=cfg.max_new_tokens)
        generated_m += model.generate(features=mirrored[i:i + 16], max_new_tokens=cfg.max_new_tokens)
    scores = score_reports(test, generated, generated_m)
    scores["teacher_forced_side"] = side_discrimination(model, test, source)
    examples = [{"id": r.id, "truth_side": r.truth.side, "healthy": r.healthy, "generated": g}
                for r, g in list(zip(test, generated))[:6]]
    return GroundingResult(asdict(cfg), profile.profile, scores, steps, round(time.time() - t0, 1), examples)
