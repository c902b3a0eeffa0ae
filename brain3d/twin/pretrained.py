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


def make_pretrained_twin(folder: str | Path, seed: int, image_size: tuple[int, int, int] = (32, 64, 64),
                         kernel_depth: int = 2, depth_stride: int = 2, recipe: TwinRecipe = TwinRecipe(),
                         progress: bool = False) -> dict[str, Path]:
    """Write the tiny twin into FOLDER/vision and FOLDER/language and warm both up; a folder whose warm-up
    finished earlier is kept (so an interrupted demo resumes). The vision warm-up runs on the grid the 3D
    model will use (`image_size`, `kernel_depth`, `depth_stride`). Returns {"vision": path, "language": path}."""
    from brain3d.synth.reports import report_corpus
    from brain3d.twin.lm_pretrain import pretrain_language_model
    from brain3d.twin.tiny import make_tiny_models
    from brain3d.twin.vision_volume import pretrain_vision_volumes

    folder = Path(folder)
    paths = {"vision": folder / "vision", "language": folder / "language"}
    if not all((p / "config.json").is_file() for p in paths.values()):
        paths = make_tiny_models(folder, seed=seed)
    if not (paths["language"] / DONE).is_file():
        # text only, random truths: never the cohort's own reports, so nothing about a test subject leaks
        pretrain_language_model(paths["language"], report_corpus(recipe.lm_corpus, seed=seed + 1000),
                                steps=recipe.lm_steps, seed=seed, progress=progress, prefix=recipe.lm_prefix)
    if recipe.vision is not None and not (paths["vision"] / DONE).is_file():
        vision = dataclasses.replace(recipe.vision, seed=stable_int("twin-vision", seed) % 2**31,
                                     image_size=tuple(image_size), kernel_depth=kernel_depth, depth_stride=depth_stride)
        pretrain_vision_volumes(paths["vision"], vision, progress=progress)
    return paths
