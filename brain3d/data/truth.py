"""Ground truth of a real scan from its lesion mask: side, lobes and volumes, measured rather than assumed.

- Side: the whole tumour's voxels are split by the brain's midsagittal plane, estimated from the image as
  the plane of best left-right mirror symmetry (lesion excluded), not a fixed column: heads are rarely
  centred or straight in the field of view. The rule is the phantoms' own (`anatomy.rules.side_from_shares`):
  bilateral when each side holds at least BILATERAL_MIN_FRACTION of the lesion, otherwise the side holding most.
- Lobes: the MNI lobe map of `anatomy.lobes` is brought onto the scan by affine registration
  (`data.register`, SimpleITK) and the lesion is named with `lobes.locations_of`, as for a phantom.
- Volumes: ml per BraTS label — 1 necrosis / non-enhancing core, 2 edema, 4 enhancing (3 also read as
  enhancing, the BraTS 2023 numbering) — and the whole tumour.
- Findings: edema and enhancement, when their label covers at least MIN_FINDING_MM3. Necrosis is not set:
  label 1 mixes necrosis with solid non-enhancing tumour, so the mask cannot tell it; compression is not
  set either (it needs the ventricles, not the lesion). Absent findings are simply not scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import minimize

from brain3d.data.manifest import Truth
from brain3d.errors import VolumeError
from brain3d.io import Volume
from brain3d.orientation import index_to_world
from brain3d.anatomy.atlas import Atlas
from brain3d.anatomy.lobes import locations_of
from brain3d.anatomy.rules import LABELS, MIN_FINDING_MM3, side_from_shares

MAX_TILT_DEG = 20.0
MAX_POINTS = 15_000


@dataclass(frozen=True)
class Plane:
    """The set of world points p with normal · p = offset; the normal points to the patient's right."""

    normal: np.ndarray  # (3,) unit, world RAS
    offset: float  # mm
    symmetry: float  # correlation of the brain with its mirror image across the plane

    def signed_mm(self, world: np.ndarray) -> np.ndarray:
        """Distance (mm) of (N, 3) world points from the plane: negative on the left, positive on the right."""
        return world @ self.normal - self.offset


def lesion_labels(seg: Volume) -> np.ndarray:
    """The seg as integer labels (D, H, W); a label BraTS does not use is refused."""
    labels = np.rint(seg.data if seg.data.ndim == 3 else seg.data[0]).astype(np.int16)
    unknown = sorted(set(np.unique(labels).tolist()) - {0, *LABELS})
    if unknown:
        raise VolumeError(f"has labels {unknown} that are not BraTS tumour labels (1, 2, 4)", seg.source)
    return labels


def volumes_ml(labels: np.ndarray, spacing: tuple[float, float, float]) -> dict[str, float]:
    """ml per named label plus the whole tumour."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    counts = np.bincount(labels.reshape(-1).clip(0), minlength=5)
    out = {name: 0.0 for name in ("necrosis", "edema", "enhancing")}
    for label, name in LABELS.items():
        out[name] += float(counts[label]) * voxel_ml
    out["whole"] = float(counts[1:].sum()) * voxel_ml
    return {k: round(v, 3) for k, v in out.items()}


def midsagittal_plane(image: Volume, exclude: np.ndarray | None = None, seed: int = 0) -> Plane:
    """The plane of best mirror symmetry of the brain (nonzero voxels), the `exclude` region left out.

    Search: offsets ±30 mm around the brain's centroid with the plane upright, then a Powell refinement of
    offset and two tilts (at most MAX_TILT_DEG). Similarity: correlation of the smoothed image with itself
    reflected across the plane, over brain voxels whose mirror is brain and neither is excluded.
    """
    data = image.data if image.data.ndim == 3 else image.data[0]
    brain = data > 0
    keep = brain.copy()
    if exclude is not None:
        keep &= ~ndi.binary_dilation(exclude, iterations=2)
    idx = np.argwhere(keep)
    if len(idx) < 500:
        raise VolumeError("has too little brain outside the lesion to find the midsagittal plane", image.source)
    rng = np.random.default_rng(seed)
    if len(idx) > MAX_POINTS:
        idx = idx[rng.choice(len(idx), MAX_POINTS, replace=False)]
    smooth = ndi.gaussian_filter(np.where(brain, data, 0.0).astype(np.float32), sigma=1.0)
    usable = ndi.binary_erosion(keep, iterations=1).astype(np.float32)
    world = index_to_world(image.affine, idx.astype(np.float64))
    values = smooth[tuple(idx.T)]
    inv = np.linalg.inv(image.affine)

    def similarity(params: np.ndarray) -> float:
        normal = _normal(params[1], params[2])
        s = world @ normal - params[0]
        mirrored = world - 2.0 * s[:, None] * normal[None, :]
        mi = (mirrored @ inv[:3, :3].T + inv[:3, 3]).T
        ok = ndi.map_coordinates(usable, mi, order=0, mode="constant", cval=0.0) > 0.5
        if ok.sum() < 100:
            return -1.0
        other = ndi.map_coordinates(smooth, mi[:, ok], order=1, mode="constant", cval=0.0)
        a, b = values[ok], other
        return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else -1.0

    centre = float(world[:, 0].mean())
    grid = [np.array([centre + d, 0.0, 0.0]) for d in np.arange(-30.0, 30.5, 3.0)]
    start = max(grid, key=similarity)
    limit = np.deg2rad(MAX_TILT_DEG)
    res = minimize(lambda p: -similarity(p), start, method="Powell",
                   bounds=[(start[0] - 10, start[0] + 10), (-limit, limit), (-limit, limit)],
                   options={"xtol": 1e-2, "ftol": 1e-4})
    best = res.x if -res.fun >= similarity(start) else start
    return Plane(normal=_normal(best[1], best[2]), offset=float(best[0]), symmetry=float(similarity(best)))


def side_of(lesion: np.ndarray, image: Volume, plane: Plane) -> tuple[str | None, float]:
    """('left' | 'right' | 'bilateral', share of the lesion on the left); (None, 0) without a lesion."""
    idx = np.argwhere(lesion)
    if len(idx) == 0:
        return None, 0.0
    s = plane.signed_mm(index_to_world(image.affine, idx.astype(np.float64)))
    left, right = float((s < 0).mean()), float((s > 0).mean())
    return side_from_shares(left, right), left


def lobes_of(lesion: np.ndarray, image: Volume, atlas: Atlas, sequence: str = "flair") -> list[str]:
    """Lobes (and 'periventricular') of the lesion by the phantoms' rule, after registering the atlas."""
    from brain3d.data.register import mask_on_atlas, register_atlas

    if not lesion.any():
        return []
    reg = register_atlas(image, atlas, sequence, exclude=lesion)
    on_atlas = mask_on_atlas(lesion, image, reg, atlas)
    if not on_atlas.any():  # a lesion smaller than an atlas voxel: take the voxel nearest its centroid
        centre = index_to_world(image.affine, np.argwhere(lesion).mean(axis=0))
        mni = np.linalg.solve(reg.matrix, np.append(centre, 1.0))[:3]
        ijk = np.rint(np.linalg.solve(atlas.affine, np.append(mni, 1.0))[:3]).astype(int)
        ijk = np.clip(ijk, 0, np.array(atlas.gm.shape) - 1)
        on_atlas[tuple(ijk)] = True
    return locations_of(on_atlas, atlas.mm_grid(), atlas)


def truth_from_mask(image: Volume, seg: Volume, atlas: Atlas, sequence: str = "flair") -> Truth:
    """Side, lobes, findings and volumes of the lesion in `seg` (same grid as `image`, model axes)."""
    if seg.shape != image.shape or not np.allclose(seg.affine, image.affine, atol=1e-3):
        raise VolumeError(f"is not on the grid of {image.source} (shape {seg.shape} vs {image.shape})", seg.source)
    labels = lesion_labels(seg)
    lesion = labels > 0
    vols = volumes_ml(labels, seg.spacing)
    if not lesion.any():
        return Truth(side=None, lobes=[], findings={}, volumes_ml=vols)
    plane = midsagittal_plane(image, exclude=lesion)
    side, _ = side_of(lesion, image, plane)
    min_ml = MIN_FINDING_MM3 / 1000.0
    findings = {"edema": vols["edema"] >= min_ml, "enhancement": vols["enhancing"] >= min_ml}
    return Truth(side=side, lobes=lobes_of(lesion, image, atlas, sequence), findings=findings, volumes_ml=vols)


def _normal(yaw: float, roll: float) -> np.ndarray:
    """Unit normal near +x (patient right), tilted by `yaw` towards +y and `roll` towards +z."""
    n = np.array([1.0, np.tan(yaw), np.tan(roll)])
    return n / np.linalg.norm(n)
