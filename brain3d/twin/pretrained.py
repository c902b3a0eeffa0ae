"""The tiny twin as the demo and `brain3d train` (base models `tiny`) use it: random tiny checkpoints of the real
classes, then warmed up to arrive the way the real base models do — MedGemma as a vision-language model that
writes reports and reads a prefix of image embeddings (`lm_pretrain`), MedSigLIP as a tower whose patch tokens
say where abnormal tissue is, in the 3D setting Brain3D uses it in (`vision_volume`). Both warm-ups draw their
own data (random synthetic reports; phantoms with a seed derived from, never equal to, the run's seed), so no
cohort subject is seen before phase 1."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from brain3d.fsutil import stable_int
from brain3d.twin.lm_pretrain import FindingsPrefix
from brain3d.twin.vision_volume import VolumeWarmup
from brain3d.twin.warmup import DONE


@dataclass(frozen=True)
class TwinRecipe:
    """How much warm-up each tower gets; `vision=None` leaves the tower random (the landed behaviour)."""

    lm_steps: int = 1000
    lm_corpus: int = 2000
    lm_prefix: FindingsPrefix | None = field(default_factory=FindingsPrefix)
    vision: VolumeWarmup | None = field(default_factory=VolumeWarmup)

    @classmethod
    def quick(cls) -> "TwinRecipe":
        """CI-sized: seconds, not minutes (wiring only)."""
        return cls(lm_steps=40, lm_corpus=300, vision=VolumeWarmup(subjects=8, steps=4, batch_size=2, voxel_mm=6.0))


def warmup_specs(seed: int, image_size: tuple[int, int, int], kernel_depth: int, depth_stride: int,
                 recipe: TwinRecipe) -> dict[str, dict]:
    """Everything that determines each warm-up's result, per part: what an asset is keyed by."""
    specs: dict[str, dict] = {}
    if recipe.lm_steps > 0:
        specs["language"] = {"seed": seed, "steps": recipe.lm_steps, "corpus": recipe.lm_corpus,
                             "prefix": dataclasses.asdict(recipe.lm_prefix) if recipe.lm_prefix else None}
    if recipe.vision is not None:
        vision = dataclasses.replace(recipe.vision, seed=stable_int("twin-vision", seed) % 2**31,
                                     image_size=tuple(image_size), kernel_depth=kernel_depth, depth_stride=depth_stride)
        specs["vision"] = {"twin_seed": seed, **dataclasses.asdict(vision)}
    return specs


def make_pretrained_twin(folder: str | Path, seed: int, image_size: tuple[int, int, int] = (32, 64, 64),
                         kernel_depth: int = 2, depth_stride: int = 2, recipe: TwinRecipe = TwinRecipe(),
                         progress: bool = False, assets: Path | None = None, export: bool = False) -> dict[str, Path]:
    """Write the tiny twin into FOLDER/vision and FOLDER/language and warm both up; a folder whose warm-up
    finished earlier is kept (so an interrupted demo resumes). The vision warm-up runs on the grid the 3D
    model will use (`image_size`, `kernel_depth`, `depth_stride`). A warm-up whose weights are shipped in
    `assets` (default: the package's, see `brain3d.twin.assets`) is loaded instead of recomputed; `export` writes
    the weights of each warm-up computed here into `assets`. Returns {"vision": path, "language": path}."""
    from brain3d.synth.reports import report_corpus
    from brain3d.twin import assets as shipped
    from brain3d.twin.lm_pretrain import pretrain_language_model
    from brain3d.twin.tiny import make_tiny_models
    from brain3d.twin.vision_volume import pretrain_vision_volumes

    folder, store = Path(folder), Path(assets) if assets is not None else shipped.ASSET_DIR
    paths = {"vision": folder / "vision", "language": folder / "language"}
    if not all((p / "config.json").is_file() for p in paths.values()):
        paths = make_tiny_models(folder, seed=seed)
    specs = warmup_specs(seed, image_size, kernel_depth, depth_stride, recipe)
    steps: dict[str, tuple[dict, object]] = {}
    if "language" in specs:
        # text only, random truths: never the cohort's own reports, so nothing about a test subject leaks
        steps["language"] = (specs["language"], lambda: pretrain_language_model(
            paths["language"], report_corpus(recipe.lm_corpus, seed=seed + 1000), steps=recipe.lm_steps, seed=seed,
            progress=progress, prefix=recipe.lm_prefix))
    if "vision" in specs:
        vision = VolumeWarmup(**{k: v for k, v in specs["vision"].items() if k != "twin_seed"})
        steps["vision"] = (specs["vision"], lambda: pretrain_vision_volumes(paths["vision"], vision, progress=progress))
    for part, (spec, warm) in steps.items():
        if (paths[part] / DONE).is_file() or shipped.load_asset(paths[part], part, spec, store) is not None:
            continue
        summary = warm()
        if export:
            shipped.save_asset(paths[part], part, spec, summary, store)
    return paths
