"""Phantom generation: one code path for every subject, measured truth, lobe map, class plan."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from brain3d.anatomy.atlas import load_atlas
from brain3d.synth.cohort import plan_classes
from brain3d.anatomy.rules import COMPRESSION_MIN_LOSS
from brain3d.synth.lesions import derive_truth, displacement
from brain3d.synth.phantom import SubjectSpec, render, sample_subject

VOXEL_MM = 6.0


@pytest.fixture(scope="module")
def atlas():
    return load_atlas(2)


def _acquisition(spec: SubjectSpec) -> SubjectSpec:
    return replace(spec, lesions=(), truth=None)


@pytest.mark.parametrize("side", ["left", "right", "bilateral"])
def test_acquisition_does_not_depend_on_the_class(atlas, side: str) -> None:
    sick = sample_subject(3, 5, side, atlas, VOXEL_MM)
    healthy = sample_subject(3, 5, None, atlas, VOXEL_MM)
    assert sick.lesions and sick.truth is not None and sick.truth.side == side
    assert not healthy.lesions and healthy.truth is None
    assert _acquisition(sick) == healthy


def test_healthy_and_pathological_share_one_rendering_path(atlas) -> None:
    """Removing the lesion from a pathological spec renders exactly the healthy subject, and the two
    differ only near the lesion: same anatomy, bias, noise and storage everywhere else."""
    sick = sample_subject(11, 2, "left", atlas, VOXEL_MM)
    healthy = sample_subject(11, 2, None, atlas, VOXEL_MM)
    seqs = ("flair", "t1", "t1ce", "t2")
    a, b = render(sick, atlas, seqs), render(healthy, atlas, seqs)
    c = render(_acquisition(sick), atlas, seqs)
    np.testing.assert_array_equal(a.affine, b.affine)
    assert not b.labels.any() and a.labels.any()
    for s in seqs:
        np.testing.assert_array_equal(b.images[s], c.images[s])
        differs = a.images[s] != b.images[s]
        assert differs.any()
        assert differs.mean() < 0.5  # the rest of the head is bit-identical
    # the lesion is bright on FLAIR and its rim (when enhancing) brighter on T1ce than on T1
    lesion = a.labels > 0
    brain = b.images["flair"] > 0
    assert a.images["flair"][lesion].mean() > 1.2 * np.median(b.images["flair"][brain])
    rim = a.labels == 4
    if rim.sum() > 3:
        ratio = a.images["t1ce"][rim].mean() / a.images["t1"][rim].mean()
        base = b.images["t1ce"][brain].mean() / b.images["t1"][brain].mean()
        assert ratio > 1.3 * base


def test_truth_is_measured_and_deterministic(atlas) -> None:
    spec = sample_subject(5, 1, "right", atlas, VOXEL_MM)
    again = derive_truth(spec.lesions, atlas)
    assert again.truth == spec.truth
    assert again.left_fraction == 0.0  # a one-sided lesion never crosses the midline
    assert spec.truth.findings["compression"] == (again.ventricle_loss >= COMPRESSION_MIN_LOSS)
    assert spec.truth.lobes and set(spec.truth.findings) == {"edema", "necrosis", "enhancement", "compression"}


def test_mass_effect_is_zero_without_a_lesion_and_grows_with_size(atlas) -> None:
    q = np.random.default_rng(0).uniform(-60, 60, (500, 3)).astype(np.float32)
    assert not displacement((), q).any()
    spec = sample_subject(2, 0, "left", atlas, VOXEL_MM)
    les = spec.lesions[0]
    small = replace(les, radii=tuple(r * 0.6 for r in les.radii), mass_effect=les.mass_effect * 0.6)
    big = np.abs(displacement((les,), q)).max()
    assert 0 < np.abs(displacement((small,), q)).max() < big


def test_class_plan_follows_the_paper_proportions() -> None:
    plan = plan_classes(1000, 250, seed=1)
    counts = Counter(plan)
    assert counts[None] == 250
    total = 42.5 + 40.7 + 14.6
    for side, w in (("left", 42.5), ("right", 40.7), ("bilateral", 14.6)):
        assert abs(counts[side] - 1000 * w / total) <= 1
    small = plan_classes(8, 2, seed=1)
    assert {"left", "right", "bilateral", None} == set(small) and len(small) == 10
    assert plan_classes(8, 2, seed=1) == small and plan_classes(8, 2, seed=2) != small
