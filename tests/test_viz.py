"""Figures and the page's slices follow the neurological convention: the patient's left on the left of an axial or
coronal slice, posterior on the left of a sagittal one; row 0 is the bottom edge (posterior / inferior). Checked on
a head built from world coordinates (`tests.volumes.model_axes_head`), blob in the LEFT hemisphere."""

from __future__ import annotations

import numpy as np

from brain3d.viz import PLANES, plane_slice
from tests.volumes import model_axes_head


def _blob_pixel(plane: str) -> tuple[float, float]:
    x, world = model_axes_head()
    core = np.argwhere(x >= 0.9 * x.max()).mean(axis=0)  # (d, h, w) of the blob
    sl = plane_slice(x, plane, int(round(core[PLANES[plane][0]])))
    return tuple(np.argwhere(sl >= 0.9 * sl.max()).mean(axis=0))  # (row, column)


def test_axial_and_coronal_slices_show_the_patients_left_on_the_left():
    for plane in ("axial", "coronal"):
        row, col = _blob_pixel(plane)
        width = plane_slice(model_axes_head()[0], plane, 0).shape[1]
        assert col < width / 2, plane  # the blob (world x < 0) is in the left columns
        assert PLANES[plane][1][:2] == ("L", "R")


def test_rows_start_at_the_posterior_or_inferior_edge():
    x, world = model_axes_head()
    axial = plane_slice(world[..., 1], "axial", 3)  # world y of each pixel of an axial slice
    assert (np.diff(axial, axis=0) > 0).all()  # rows run posterior -> anterior
    coronal = plane_slice(world[..., 2], "coronal", 3)
    assert (np.diff(coronal, axis=0) > 0).all()  # rows run inferior -> superior
    sagittal = plane_slice(world[..., 1], "sagittal", 3)
    assert (np.diff(sagittal, axis=1) > 0).all()  # columns run posterior -> anterior
    across = plane_slice(world[..., 0], "axial", 3)
    assert (np.diff(across, axis=1) > 0).all()  # columns run the patient's left -> right
