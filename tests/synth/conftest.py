"""A tiny synthetic cohort shared by the synth tests (coarse 4 mm grids keep it to a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

COHORT_ARGS = dict(n_pathological=7, n_healthy=2, seed=7, sequences=("flair", "t1ce"), voxel_mm=4.0)


@pytest.fixture(scope="session")
def synth_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from brain3d.synth.cohort import make_cohort

    return make_cohort(tmp_path_factory.mktemp("synth") / "cohort", workers=1, progress=False, **COHORT_ARGS)
