"""A four-subject phantom cohort shared by the baseline tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="package")
def cohort(tmp_path_factory) -> Path:
    from brain3d.synth.cohort import make_cohort

    return make_cohort(tmp_path_factory.mktemp("baseline-cohort") / "c", n_pathological=3, n_healthy=1, seed=3,
                       voxel_mm=6.0, progress=False)
