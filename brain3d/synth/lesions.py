"""Tumour phantoms in MNI space: shape, tissue components, mass effect, and the truth derived from them.

A lesion is an irregular ellipsoid (`Lesion`), described by level functions of MNI position q:
    r(q)      = |R^T (q − c) / radii|                       (1 on the ellipsoid)
    whole(q)  = r · exp(irr · n1(q))                        < 1: whole tumour (edema + core)
    core(q)   = r / core_frac · exp(0.6 · irr · n2(q))      < 1: tumour core
    necro(q)  = r / (core_frac · necrosis_frac) · exp(0.5 · irr · n2(q))   < 1: necrotic centre
with n1, n2 smooth unit-variance noise fields, so borders are irregular. The core shell (core minus
necrosis) is the enhancing rim when the lesion enhances, otherwise solid non-enhancing tumour.
Labels follow BraTS: 1 necrosis / non-enhancing core, 2 edema, 4 enhancing tumour (whole tumour = > 0).

Mass effect is a smooth displacement u(q) = S · U(t) · exp(−ρ² / 2w²) · n along the unit vector n from
the lesion centre c towards the centroid of the lateral ventricles (of the lesion's side), where
t = (q − c)·n and ρ is the distance from that axis. U is 1 at the lesion's edge (t = size), falls
with a cosine to 0 at a "wall" 12 mm beyond the ventricles (tissue in between, ventricles included,
is squeezed against it) and tapers gently behind the lesion (so the map stays invertible). Anatomy is
sampled at q − u(q). S = 0.4 × size × size / 24 mm: the push grows faster than the lesion.

Truth (`derive_truth`) is measured on the MNI atlas grid from these same functions, never assumed:
side from the lesion's voxels on each side of x = 0 (`anatomy.rules`), lobes from `anatomy.lobes.locations_of`, compression
from the loss of ventricle volume on either side under the displacement.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi

from brain3d.data.manifest import Truth
from brain3d.anatomy.atlas import Atlas
from brain3d.anatomy.lobes import locations_of, supratentorial
from brain3d.anatomy.rules import (
    BRATS_EDEMA,
    BRATS_ENHANCING,
    BRATS_NECROTIC,
    COMPRESSION_MIN_LOSS,
    MIN_FINDING_MM3,
    side_from_shares,
)

SIDE_WEIGHTS = {"left": 42.5, "right": 40.7, "bilateral": 14.6}  # paper's proportions, renormalised
MIDLINE_MARGIN_MM = 2.0  # a one-sided lesion keeps this far from x = 0
MIN_LESION_MM3 = 2500.0
EDEMA_FEATHER = 2.5  # the outer (edema) border blends over this many voxels
EDEMA_GM_SPARING = 0.6  # edema level × (1 + this × GM probability)
PUSH_WALL_MM = 12.0  # the mass effect squeezes tissue up to this far beyond the ventricles
SIZE_MM = (14.0, 34.0)  # range of the mean whole-tumour radius
_NOISE_CELL_MM = 4.0


@dataclass(frozen=True)
class Lesion:
    centre: tuple[float, float, float]  # MNI mm
    radii: tuple[float, float, float]  # whole-tumour ellipsoid semi-axes, mm
    angles: tuple[float, float, float]  # ellipsoid orientation, radians (x, y, z Euler)
    hemisphere: int  # -1 left only, +1 right only, 0 free to cross the midline
    edema: bool
    core_frac: float  # core radius / whole radius (1.0 without edema)
    necrosis_frac: float  # necrotic radius / core radius (0.0 without necrosis)
    enhancing: bool
    irregularity: float
    mass_effect: float  # S: the push at the lesion's edge, mm
    push_target: tuple[float, float, float]  # MNI mm the push points to (ventricle centroid)
    seed: int

    @property
    def reach_mm(self) -> float:
        """Radius of a sphere that surely holds the whole tumour: whole < 1 needs r < exp(−irr · n1), and
        n1 never exceeds the extremes of its grid (trilinear interpolation)."""
        field, _ = _noise_grid(self)
        return float(max(self.radii) * np.exp(self.irregularity * float(-field[0].min())) + 2.0)

    def soft_reach_mm(self, voxel_mm: float) -> float:
        """Like `reach_mm`, including the feathered edema border (whole < 1 + EDEMA_FEATHER · voxel / 2 size)."""
        feather = 0.5 * EDEMA_FEATHER * voxel_mm / float(np.mean(self.radii))
        return self.reach_mm * (1.0 + feather) + voxel_mm


@dataclass(frozen=True)
class LesionMaps:
    """Soft component weights (for intensities) and hard BraTS labels (for the mask), flat arrays."""

    edema: np.ndarray
    solid: np.ndarray  # non-enhancing core
    rim: np.ndarray  # enhancing core shell
    necrosis: np.ndarray
    labels: np.ndarray  # uint8, BraTS labels

    @property
    def whole(self) -> np.ndarray:
        return self.edema + self.solid + self.rim + self.necrosis


def rotation(angles: tuple[float, float, float]) -> np.ndarray:
    """3×3 rotation from x, y, z Euler angles (radians)."""
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def displacement(lesions: tuple[Lesion, ...], q: np.ndarray) -> np.ndarray:
    """Mass-effect displacement u(q), (N, 3) mm, summed over lesions; zero for no lesion (the healthy case)."""
    u = np.zeros_like(q, dtype=np.float32)
    for les in lesions:
        if les.mass_effect <= 0:
            continue
        c = np.asarray(les.centre, np.float32)
        n = np.asarray(les.push_target, np.float32) - c
        dist = float(np.linalg.norm(n))
        n /= np.float32(max(dist, 1e-6))
        size = float(np.mean(les.radii))
        wall = max(dist + PUSH_WALL_MM, size + 10.0)
        taper = 2.0 * size + 2.0 * les.mass_effect
        width2 = 2.0 * (1.2 * size) ** 2
        # only points between the taper's end and the wall, within 3 widths of the axis, move by more than ~1e-3 mm
        reach2 = max(wall, size + taper) ** 2 + 9.0 * width2
        d = q - c
        near = np.flatnonzero((d * d).sum(axis=1) < reach2)
        d = d[near]
        t = d @ n  # (M,) position along the push axis
        perp2 = np.maximum((d * d).sum(axis=1) - t * t, 0.0)
        ahead = np.clip((t - size) / (wall - size), 0.0, 1.0)
        behind = np.clip((size - t) / taper, 0.0, 1.0)
        ramp = 0.5 * (1.0 + np.cos(np.pi * np.where(t >= size, ahead, behind)))
        mag = np.float32(les.mass_effect) * ramp * np.exp(-perp2 / np.float32(width2))
        u[near] += mag.astype(np.float32)[:, None] * n[None, :]
    return u


def lesion_maps(
    lesions: tuple[Lesion, ...], q: np.ndarray, brain: np.ndarray, gm: np.ndarray, voxel_mm: float
) -> LesionMaps:
    """Component weights and labels at MNI points q (N, 3); `brain`, `gm`: (deformed) tissue probabilities at q.

    Edema spreads along white matter and spares the cortex (its level grows with grey matter), which makes
    its outline finger-like rather than ellipsoidal.
    Borders are anti-aliased over about one voxel of size `voxel_mm`. No lesion → all zeros.
    """
    n = len(q)
    comp = {k: np.zeros(n, np.float32) for k in ("edema", "solid", "rim", "necrosis")}
    labels = np.zeros(n, np.uint8)
    if not lesions:
        return LesionMaps(**comp, labels=labels)
    for les in lesions:
        reach2 = les.soft_reach_mm(voxel_mm) ** 2
        near = np.flatnonzero(((q - np.asarray(les.centre, np.float32)) ** 2).sum(axis=1) < reach2)
        if near.size == 0:
            continue
        qn = q[near]
        whole, core, necro = _levels(les, qn)
        if les.edema:
            whole = whole * (1.0 + EDEMA_GM_SPARING * gm[near])
        allowed = np.clip((brain[near] - 0.25) * 2.0, 0.0, 1.0) * supratentorial(qn)
        if les.hemisphere:
            allowed = allowed * np.clip((les.hemisphere * qn[:, 0] - MIDLINE_MARGIN_MM) / voxel_mm + 0.5, 0.0, 1.0)
        scale = float(np.mean(les.radii)) / voxel_mm
        w_whole = np.clip(0.5 + (1.0 - whole) * scale / EDEMA_FEATHER, 0.0, 1.0)  # edema fades out
        w_core = np.minimum(np.clip(0.5 + (1.0 - core) * scale * les.core_frac, 0.0, 1.0), w_whole)
        nec_scale = scale * les.core_frac * max(les.necrosis_frac, 1e-3)
        w_nec = np.minimum(np.clip(0.5 + (1.0 - necro) * nec_scale, 0.0, 1.0), w_core)
        parts = {
            "edema": (w_whole - w_core),
            "necrosis": w_nec,
            ("rim" if les.enhancing else "solid"): (w_core - w_nec),
        }
        for k, w in parts.items():
            comp[k][near] = np.maximum(comp[k][near], (w * allowed).astype(np.float32))
        hard = allowed > 0.5
        lab = np.where(
            necro < 1, BRATS_NECROTIC, np.where(core < 1, BRATS_ENHANCING if les.enhancing else BRATS_NECROTIC,
                                                np.where(whole < 1, BRATS_EDEMA, 0))
        ).astype(np.uint8) * hard
        labels[near] = np.where(labels[near] > 0, labels[near], lab)
    total = sum(comp.values())
    over = total > 1.0
    if over.any():
        for w in comp.values():
            w[over] /= total[over]
    return LesionMaps(**comp, labels=labels)


@dataclass(frozen=True)
class Measured:
    """What the atlas-grid measurement of a lesion set found (kept for tests and the bench)."""

    truth: Truth | None  # None: the lesion set is not acceptable (ambiguous side, too small)
    volume_mm3: float
    left_fraction: float
    ventricle_loss: float
    points: np.ndarray | None = None  # (M, 3) MNI mm of the lesion's atlas-grid voxels


def derive_truth(lesions: tuple[Lesion, ...], atlas: Atlas) -> Measured:
    """Measure side, locations and findings of a lesion set on the MNI atlas grid."""
    mm = _grid(atlas)
    box = _box(lesions, atlas)
    sub = mm[box]  # (x, y, z, 3)
    inside = np.zeros(sub.shape[:3], dtype=bool)  # atlas voxels within some lesion's reach
    for les in lesions:
        inside |= ((sub - np.asarray(les.centre, np.float32)) ** 2).sum(axis=-1) < les.reach_mm**2
    q = sub[inside]  # (M, 3)
    brain, gm = _tissue_at(lesions, q, atlas, ("brain", "gm"))
    maps = lesion_maps(lesions, q, brain, gm, atlas.spacing)
    mask = maps.labels > 0
    vox = atlas.spacing**3
    volume = float(mask.sum()) * vox
    if volume < MIN_LESION_MM3:
        return Measured(None, volume, 0.0, 0.0)
    x = q[mask, 0]
    left, right = float((x < 0).mean()), float((x > 0).mean())
    side = side_from_shares(left, right)
    if side != "bilateral" and min(left, right) > 0.0:  # a one-sided phantom stays wholly on its side
        return Measured(None, volume, left, 0.0)
    full = np.zeros(atlas.gm.shape, dtype=bool)
    full_box = np.zeros(sub.shape[:3], dtype=bool)
    full_box[inside] = mask
    full[box] = full_box
    loss = ventricle_loss(lesions, atlas)
    findings = {
        "edema": bool((maps.labels == BRATS_EDEMA).sum() * vox >= MIN_FINDING_MM3),
        "necrosis": bool((maps.necrosis > 0.5).sum() * vox >= MIN_FINDING_MM3),
        "enhancement": bool((maps.rim > 0.5).sum() * vox >= MIN_FINDING_MM3),
        "compression": bool(loss >= COMPRESSION_MIN_LOSS),
    }
    truth = Truth(side=side, lobes=locations_of(full, mm, atlas), findings=findings)
    return Measured(truth, volume, left, loss, points=q[mask])


def ventricle_loss(lesions: tuple[Lesion, ...], atlas: Atlas) -> float:
    """Largest fraction of lateral-ventricle volume lost on one side (displacement + lesion replacing it)."""
    q, before = _ventricle_points(atlas)
    if not lesions:
        return 0.0
    after, brain, gm = _tissue_at(lesions, q, atlas, ("ventricles", "brain", "gm"))
    after = after * (1.0 - np.clip(lesion_maps(lesions, q, brain, gm, atlas.spacing).whole, 0.0, 1.0))
    losses = []
    for side in (q[:, 0] < 0, q[:, 0] > 0):
        b = float(before[side].sum())
        losses.append(1.0 - float(after[side].sum()) / b if b > 0 else 0.0)
    return max(losses)


def _tissue_at(lesions: tuple[Lesion, ...], q: np.ndarray, atlas: Atlas, names: tuple[str, ...]) -> list[np.ndarray]:
    """Atlas maps sampled at the displaced positions of MNI points q."""
    qd = q - displacement(lesions, q)
    return [atlas.sample(name, qd) for name in names]


def sample_lesions(rng: np.random.Generator, side: str, atlas: Atlas) -> tuple[Lesion, ...]:
    """Draw a lesion set for the requested side (one lesion, or for 'bilateral' a butterfly or a pair)."""
    if side in ("left", "right"):
        h = -1 if side == "left" else 1
        return (_sample_one(rng, atlas, side, h),)
    if rng.random() < 0.5:
        return (_sample_one(rng, atlas, "midline", 0, stretch_x=1.6),)
    first = _sample_one(rng, atlas, "left", -1)
    second = _sample_one(rng, atlas, "right", 1, size_scale=0.8)
    return (first, second) if rng.random() < 0.5 else (second, first)


def _sample_one(
    rng: np.random.Generator, atlas: Atlas, where: str, hemisphere: int, stretch_x: float = 1.0, size_scale: float = 1.0
) -> Lesion:
    edema = bool(rng.random() < 0.9)
    # mean whole-tumour radius, mm; a tumour without edema is its solid core alone, hence smaller
    size = float(rng.uniform(SIZE_MM[0], SIZE_MM[1])) * size_scale * (1.0 if edema else 0.6)
    radii = size * (1.0 + 0.2 * rng.uniform(-1.0, 1.0, 3))
    radii[0] *= stretch_x
    angles = tuple(float(v) for v in rng.uniform(-np.pi, np.pi, 3))
    centres = _candidates(atlas, where)
    if hemisphere:
        # keep a one-sided lesion mostly off the midline: its centre at least its x half-extent (− 6 mm) lateral
        half_x = float(np.sqrt(((rotation(angles)[0] * radii) ** 2).sum()))
        lateral = hemisphere * centres[:, 0]
        ok = lateral >= min(half_x - 6.0, float(np.quantile(lateral, 0.9)))
        centres = centres[ok]
    centre = centres[rng.integers(len(centres))] + rng.uniform(-1.0, 1.0, 3)
    t = float(np.clip((size - SIZE_MM[0]) / (SIZE_MM[1] - SIZE_MM[0]), 0.0, 1.0))  # 0 small … 1 large
    necrotic = bool(rng.random() < 0.25 + 0.5 * t)
    enhancing = bool(rng.random() < (0.85 if necrotic else 0.45))
    return Lesion(
        centre=tuple(float(v) for v in centre),
        radii=tuple(float(v) for v in radii),
        angles=angles,
        hemisphere=hemisphere,
        edema=edema,
        core_frac=float(rng.uniform(0.35, 0.6)) if edema else 1.0,
        necrosis_frac=float(rng.uniform(0.5, 0.8)) if necrotic else 0.0,
        enhancing=enhancing,
        irregularity=float(rng.uniform(0.12, 0.3)),
        mass_effect=float(0.4 * size * (size / 24.0) * rng.uniform(0.85, 1.15)),  # grows faster than size
        push_target=_ventricle_centre(atlas, where),
        seed=int(rng.integers(2**31)),
    )


def _levels(les: Lesion, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(whole, core, necro) level values at q (N, 3); < 1 means inside."""
    c = np.asarray(les.centre, np.float32)
    local = (q - c) @ rotation(les.angles).astype(np.float32)  # (N, 3) in the lesion frame
    r = np.sqrt(((local / np.asarray(les.radii, np.float32)) ** 2).sum(axis=1))
    n1, n2 = _noise_at(les, q)
    irr = np.float32(les.irregularity)
    whole = r * np.exp(irr * n1)
    core = r / np.float32(les.core_frac) * np.exp(0.6 * irr * n2) if les.edema else whole
    if les.necrosis_frac > 0:
        necro = r / np.float32(les.core_frac * les.necrosis_frac) * np.exp(0.5 * irr * n2)
    else:
        necro = np.full_like(r, np.inf)
    return whole, core, necro


@lru_cache(maxsize=64)
def _noise_grid(les: Lesion) -> tuple[np.ndarray, np.ndarray]:
    """Two smooth unit-variance random fields on a coarse grid around the lesion, and the grid origin (mm)."""
    rng = np.random.default_rng(les.seed)
    half = max(les.radii) * np.exp(4.0 * les.irregularity) + 2 * _NOISE_CELL_MM
    n = int(np.ceil(2 * half / _NOISE_CELL_MM)) + 1
    f = ndi.gaussian_filter(rng.standard_normal((2, n, n, n)), sigma=(0, 1.8, 1.8, 1.8), mode="wrap")
    f /= f.std(axis=(1, 2, 3), keepdims=True)
    return f.astype(np.float32), np.asarray(les.centre, np.float32) - np.float32(half)


def _noise_at(les: Lesion, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    field, origin = _noise_grid(les)
    idx = ((q - origin) / np.float32(_NOISE_CELL_MM)).T
    n1, n2 = (ndi.map_coordinates(field[i], idx, order=1, mode="nearest") for i in range(2))
    return n1, n2


_GRIDS: dict[int, np.ndarray] = {}
_CANDIDATES: dict[tuple[int, str], np.ndarray] = {}
_VENTRICLE_POINTS: dict[int, tuple[np.ndarray, np.ndarray]] = {}
_VENTRICLE_CENTRES: dict[tuple[int, str], tuple[float, ...]] = {}


def _grid(atlas: Atlas) -> np.ndarray:
    key = id(atlas.gm)
    if key not in _GRIDS:
        _GRIDS[key] = atlas.mm_grid()
    return _GRIDS[key]


def _box(lesions: tuple[Lesion, ...], atlas: Atlas) -> tuple[slice, slice, slice]:
    """Atlas-grid index box holding every lesion's reach."""
    lo = np.min([np.asarray(l.centre) - l.reach_mm for l in lesions], axis=0)
    hi = np.max([np.asarray(l.centre) + l.reach_mm for l in lesions], axis=0)
    a = np.floor((lo - atlas.origin) / atlas.spacing).astype(int)
    b = np.ceil((hi - atlas.origin) / atlas.spacing).astype(int) + 1
    shape = atlas.gm.shape
    return tuple(slice(max(0, int(a[i])), min(shape[i], int(b[i]))) for i in range(3))  # type: ignore[return-value]


def _candidates(atlas: Atlas, where: str) -> np.ndarray:
    """MNI mm of white-matter voxels where a lesion centre may sit: 'left', 'right' or 'midline'."""
    key = (id(atlas.gm), where)
    if key not in _CANDIDATES:
        mm = _grid(atlas)
        x, y, z = mm[..., 0], mm[..., 1], mm[..., 2]
        ok = (atlas.wm > 0.5) & supratentorial(mm) & (atlas.ventricles < 0.1) & (z > -30)
        if where == "left":
            ok &= (x <= -18) & (x >= -55)
        elif where == "right":
            ok &= (x >= 18) & (x <= 55)
        else:
            ok &= (np.abs(x) <= 4) & (z >= 5) & (z <= 30) & (y >= -35) & (y <= 25)
        _CANDIDATES[key] = mm[ok]
    return _CANDIDATES[key]


def _ventricle_centre(atlas: Atlas, where: str) -> tuple[float, float, float]:
    """Centroid (MNI mm) of the lateral ventricle on one side ('left'/'right') or of both ('midline')."""
    key = (id(atlas.ventricles), where)
    if key not in _VENTRICLE_CENTRES:
        mm = _grid(atlas)
        vent = atlas.ventricles > 0.5
        if where == "left":
            vent &= mm[..., 0] < 0
        elif where == "right":
            vent &= mm[..., 0] > 0
        _VENTRICLE_CENTRES[key] = tuple(float(v) for v in mm[vent].mean(axis=0))
    return _VENTRICLE_CENTRES[key]  # type: ignore[return-value]


def _ventricle_points(atlas: Atlas) -> tuple[np.ndarray, np.ndarray]:
    """MNI mm of the atlas voxels around the lateral ventricles, and the ventricle map there."""
    key = id(atlas.ventricles)
    if key not in _VENTRICLE_POINTS:
        near = ndi.binary_dilation(atlas.ventricles > 0.05, iterations=3)
        _VENTRICLE_POINTS[key] = (_grid(atlas)[near], atlas.ventricles[near])
    return _VENTRICLE_POINTS[key]
