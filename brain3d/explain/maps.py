"""From supervoxel weights to maps and facts a reader can place: the model-grid map, the same map on the scan's
own grid, and per supervoxel its world centroid, hemisphere and (in MNI space) lobe."""

from __future__ import annotations

import numpy as np

from brain3d.errors import VolumeError
from brain3d.io import Volume, resample_array
from brain3d.orientation import index_to_world, spacing_of
from brain3d.explain.supervoxels import centroids


def attribution_map(labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(D, H, W) float32: each voxel carries its supervoxel's weight; background (label 0) is 0."""
    table = np.concatenate([[0.0], np.asarray(weights, dtype=np.float64)]).astype(np.float32)  # (S + 1,)
    return table[labels]


def labels_on_grid(labels: np.ndarray, model_affine: np.ndarray, affine: np.ndarray,
                   shape: tuple[int, int, int]) -> np.ndarray:
    """Supervoxel labels moved from the model grid onto another grid (the scan's own) through world coordinates,
    nearest neighbour: a voxel takes the label of the model voxel its centre falls in."""
    return np.rint(resample_array(labels.astype(np.float32), model_affine, affine, shape, order=0)).astype(np.int32)


def midline(model_volume: np.ndarray, brain: np.ndarray, affine: np.ndarray, source: str):
    """The brain's midsagittal plane (`data.truth.midsagittal_plane`: the plane of best mirror symmetry) on the
    model grid; a scan too small for it falls back to the upright plane through the brain's centroid."""
    from brain3d.data.truth import Plane, midsagittal_plane

    data = np.where(brain, np.asarray(model_volume, dtype=np.float32).max(axis=0), 0.0)  # (D, H, W)
    vol = Volume(data, affine, spacing_of(affine), ("R", "A", "S"), source)
    try:
        return midsagittal_plane(vol)
    except VolumeError:
        centre = index_to_world(affine, np.argwhere(brain).mean(axis=0))
        return Plane(normal=np.array([1.0, 0.0, 0.0]), offset=float(centre[0]), symmetry=float("nan"))


def supervoxel_table(labels: np.ndarray, weights: np.ndarray, affine: np.ndarray, plane,
                     lobes_from_mni: bool = False) -> list[dict]:
    """One dict per supervoxel 1..S: label, weight, voxels (model grid), volume_ml, centroid_mm (world RAS), side
    of the midsagittal plane, lobe (from the MNI lobe map when the world is MNI, else None)."""
    from brain3d.anatomy.lobes import lobe_labels
    from brain3d.vocabulary import LOBES

    n = len(weights)
    counts = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    world = index_to_world(affine, centroids(labels, n))  # (S, 3)
    signed = plane.signed_mm(world)  # (S,) negative = patient's left
    voxel_ml = float(np.prod(spacing_of(affine))) / 1000.0
    lobes = lobe_labels(world) if lobes_from_mni else None
    rows = []
    for s in range(n):
        lobe = None if lobes is None else ("infratentorial" if lobes[s] == 0 else LOBES[int(lobes[s]) - 1])
        rows.append({"label": s + 1, "weight": float(weights[s]), "voxels": int(counts[s]),
                     "volume_ml": round(float(counts[s]) * voxel_ml, 3),
                     "centroid_mm": [round(float(c), 2) for c in world[s]],
                     "side": "left" if signed[s] < 0 else "right", "lobe": lobe})
    return rows


def top_supporting(table: list[dict], k: int) -> list[dict]:
    """The k supervoxels with the largest positive weights, strongest first (red: they support the target)."""
    return sorted((r for r in table if r["weight"] > 0), key=lambda r: -r["weight"])[:k]
