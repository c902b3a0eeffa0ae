"""Bring the phantoms' MNI atlas onto a scan: affine registration with SimpleITK (mutual information).

The lobe map of `brain3d.anatomy.lobes` is defined in MNI mm. To name the lobes of a real lesion, the scan is
registered to a FLAIR-like (or T1-like) image synthesised from the MNI152 tissue maps of `anatomy.atlas`,
and the lesion mask is resampled onto the atlas grid, where `lobes.locations_of` applies the same rule
the phantoms' truth uses. Why affine only: the lobe map is a set of coarse planes; a 12-parameter fit
places them within a few mm on brains of any size, and it cannot fold a lesion into another lobe the way
a poorly constrained deformable fit can next to a large tumour.

Both images live in world RAS mm (each voxel grid placed by its own affine); SimpleITK only ever sees
that one physical space, so no LPS conversion is needed. The metric ignores the lesion (a moving-image
mask of brain minus dilated lesion) and samples only inside the template's brain. Sampling is seeded and single-threaded, so a rerun gives the same
transform (to floating-point rounding).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from brain3d.errors import VolumeError
from brain3d.io import Volume
from brain3d.orientation import spacing_of
from brain3d.anatomy.atlas import Atlas

# Mean intensity of CSF, GM, WM per sequence in the synthetic template (the phantoms' own contrasts).
TEMPLATE_CONTRAST = {
    "flair": (0.10, 0.70, 0.52),
    "t1": (0.20, 0.52, 0.78),
    "t1ce": (0.20, 0.54, 0.78),
    "t2": (1.00, 0.58, 0.40),
}
WORK_MM = 3.0  # the scan is resampled to about this voxel size before registering
SEED = 42


@dataclass(frozen=True)
class Registration:
    """An affine map from atlas (MNI) mm to scan world mm, and how well the images agree after it."""

    matrix: np.ndarray  # (4, 4): MNI mm → world RAS mm
    metric: float  # final Mattes mutual information (more negative = better)


def template_image(atlas: Atlas, sequence: str) -> np.ndarray:
    """A synthetic MNI image with the contrast of `sequence` (unknown names get FLAIR's)."""
    csf, gm, wm = TEMPLATE_CONTRAST.get(sequence, TEMPLATE_CONTRAST["flair"])
    return (atlas.csf * csf + atlas.gm * gm + atlas.wm * wm).astype(np.float32)


def register_atlas(vol: Volume, atlas: Atlas, sequence: str = "flair", exclude: np.ndarray | None = None) -> Registration:
    """Affine registration of the atlas template to a (skull-stripped) scan in model axes (D, H, W).

    exclude: optional boolean (D, H, W) region (the lesion) that the metric must not use.
    """
    import SimpleITK as sitk

    data = vol.data if vol.data.ndim == 3 else vol.data[0]
    brain = data > 0
    if exclude is not None:
        brain &= ~ndi.binary_dilation(exclude, iterations=2)
    if brain.sum() < 1000:
        raise VolumeError("has too little brain outside the lesion to register the atlas", vol.source)
    moving, moving_mask = _work_grid(data, brain, vol.affine)
    fixed = _sitk_image(template_image(atlas, sequence), atlas.affine)
    fixed_mask = _sitk_image((atlas.brain > 0.5).astype(np.uint8), atlas.affine)
    init = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.AffineTransform(3), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.2, SEED)
    reg.SetMetricFixedMask(fixed_mask)  # samples inside the template's brain only (measured: more robust)
    reg.SetMetricMovingMask(moving_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-3, numberOfIterations=300, relaxationFactor=0.6
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2])  # 8 then 4 mm on the 2 mm atlas: the lobe planes are coarser still
    reg.SetSmoothingSigmasPerLevel([2.0, 1.0])
    reg.SetInitialTransform(init, inPlace=False)
    reg.SetNumberOfThreads(1)
    try:
        tx = reg.Execute(fixed, moving)
    except RuntimeError as exc:
        raise VolumeError(f"atlas registration failed ({str(exc).strip().splitlines()[-1][:160]})", vol.source) from None
    return Registration(matrix=_affine_of(tx), metric=float(reg.GetMetricValue()))


def mask_on_atlas(mask: np.ndarray, vol: Volume, reg: Registration, atlas: Atlas) -> np.ndarray:
    """Resample a (D, H, W) boolean mask of the scan onto the atlas grid (X, Y, Z) through the registration.

    Only the atlas box that holds the mask's bounding box (plus two voxels) is resampled.
    """
    out = np.zeros(atlas.gm.shape, dtype=bool)
    idx = np.argwhere(mask)
    if len(idx) == 0:
        return out
    corners = np.array(list(itertools.product(*zip(idx.min(axis=0), idx.max(axis=0)))), dtype=np.float64)
    world = corners @ vol.affine[:3, :3].T + vol.affine[:3, 3]
    to_atlas = np.linalg.inv(atlas.affine) @ np.linalg.inv(reg.matrix)
    ijk = world @ to_atlas[:3, :3].T + to_atlas[:3, 3]
    lo = np.clip(np.floor(ijk.min(axis=0)).astype(int) - 2, 0, None)
    hi = np.minimum(np.ceil(ijk.max(axis=0)).astype(int) + 3, atlas.gm.shape)
    if np.any(hi <= lo):
        return out
    box = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1).reshape(-1, 3)
    mni = box @ atlas.affine[:3, :3].T + atlas.affine[:3, 3]
    world = mni @ reg.matrix[:3, :3].T + reg.matrix[:3, 3]
    inv = np.linalg.inv(vol.affine)
    src = world @ inv[:3, :3].T + inv[:3, 3]  # scan model index (d, h, w)
    frac = ndi.map_coordinates(mask.astype(np.float32), src.T, order=1, mode="constant", cval=0.0)
    out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = frac.reshape(tuple(hi - lo)) >= 0.5
    return out


def _work_grid(data: np.ndarray, brain: np.ndarray, affine: np.ndarray):
    """The scan (and metric mask) as SimpleITK images, block-averaged towards WORK_MM voxels for speed."""
    import SimpleITK as sitk

    factors = [max(1, int(round(WORK_MM / s))) for s in spacing_of(affine)]
    if any(f > 1 for f in factors):
        data = _block_mean(data, factors)
        brain = _block_mean(brain.astype(np.float32), factors) > 0.5
        scale = np.diag([*factors, 1]).astype(np.float64)
        scale[:3, 3] = [(f - 1) / 2.0 for f in factors]  # centre of the first block
        affine = affine @ scale
    image = _sitk_image(data.astype(np.float32), affine)
    mask = _sitk_image(brain.astype(np.uint8), affine)
    return image, mask


def _sitk_image(data: np.ndarray, affine: np.ndarray):
    """A SimpleITK image whose physical space is world RAS mm as given by `affine` (array index → mm).

    SimpleITK's array view is index-reversed: array axis 2 is its index i. The columns of the affine are
    taken in that order; nothing is flipped or reoriented.
    """
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(data))
    cols = np.asarray(affine, dtype=np.float64)[:3, [2, 1, 0]]
    spacing = np.linalg.norm(cols, axis=0)
    img.SetSpacing([float(s) for s in spacing])
    img.SetDirection([float(v) for v in (cols / spacing).reshape(-1)])
    img.SetOrigin([float(v) for v in affine[:3, 3]])
    return img


def _affine_of(tx) -> np.ndarray:
    """4×4 matrix of a SimpleITK transform that is affine (composite or not): fixed point → moving point."""
    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64) * 100.0
    out = np.array([tx.TransformPoint(tuple(p)) for p in pts])
    m = np.eye(4)
    m[:3, 3] = out[0]
    m[:3, :3] = (out[1:] - out[0]).T / 100.0
    return m


def _block_mean(a: np.ndarray, factors: list[int]) -> np.ndarray:
    pad = [(0, (-s) % f) for s, f in zip(a.shape, factors)]
    a = np.pad(a, pad)
    shp = []
    for s, f in zip(a.shape, factors):
        shp += [s // f, f]
    return a.reshape(shp).mean(axis=(1, 3, 5)).astype(np.float32)
