"""One phantom subject: its random description (`SubjectSpec`) and its rendering to stored volumes.

There is one code path for every subject: a healthy subject is a spec whose lesion tuple is empty, and
`render` has no branch on health — the mass-effect displacement and lesion weights are simply zero.
The acquisition (head pose, storage grid, bias fields, gains, noise, contrast jitter) is drawn from a
random stream that does not depend on the subject's class, so class cannot be read from acquisition.

Rendering, for every stored voxel:
    world mm ──head pose⁻¹──▶ MNI mm q ──mass effect──▶ q − u(q) ──▶ tissue probabilities (GM, WM, CSF)
    intensity = Σ tissue · contrast  (lesion components replace tissue)  × bias field  → Rician noise
              → skull-stripped (zero outside the brain) → × gain → int16
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from brain3d.data.manifest import Truth
from brain3d.fsutil import stable_int
from brain3d.anatomy.atlas import Atlas
from brain3d.synth.lesions import Lesion, derive_truth, displacement, lesion_maps, rotation, sample_lesions
from brain3d.synth.storage import ORIENTATIONS, SPACING_PROFILES, storage_grid, world_coordinates

SEQUENCES = ("flair", "t1", "t1ce", "t2")
TISSUES = ("csf", "gm", "wm", "edema", "solid", "rim", "necrosis")
# Mean intensity of each tissue per sequence (before bias, noise and gain). FLAIR: CSF dark, GM > WM,
# edema bright, necrosis dark; T1ce: the enhancing rim is bright; T2: CSF and necrosis bright.
CONTRAST = {
    "flair": (0.10, 0.70, 0.52, 1.00, 0.86, 0.82, 0.28),
    "t1": (0.20, 0.52, 0.78, 0.42, 0.45, 0.50, 0.22),
    "t1ce": (0.20, 0.54, 0.78, 0.44, 0.47, 1.15, 0.22),
    "t2": (1.00, 0.58, 0.40, 0.88, 0.72, 0.70, 1.05),
}
BASE_FOV = (-100.0, -136.0, -90.0, 100.0, 100.0, 106.0)  # world mm box that holds any posed head
SIDE_MARGIN_MM = 8.0  # a one-sided lesion's world centroid is at least this far from x = 0
MAX_LESION_TRIES = 50
_BIAS_TERMS = 9


@dataclass(frozen=True)
class SubjectSpec:
    """Everything random about one subject; `render` is a pure function of it."""

    subject_id: str
    lesions: tuple[Lesion, ...]
    truth: Truth | None  # None for a healthy subject
    rotation_deg: tuple[float, float, float]
    scale: tuple[float, float, float]
    shift_mm: tuple[float, float, float]
    orientation: str
    spacing: tuple[float, float, float]
    fov: tuple[float, float, float, float, float, float]
    bias: tuple[tuple[float, ...], ...]  # per SEQUENCES: polynomial coefficients
    gain: tuple[float, ...]  # per SEQUENCES
    noise: tuple[float, ...]  # per SEQUENCES: Rician σ as a fraction of white-matter intensity
    contrast_jitter: tuple[tuple[float, ...], ...]  # per SEQUENCES × TISSUES multipliers
    noise_seed: int
    extras: dict = field(default_factory=dict, compare=False)  # measurements kept for tests / bench

    @property
    def healthy(self) -> bool:
        return not self.lesions

    def pose(self) -> np.ndarray:
        """4×4 map from MNI mm (the subject's anatomy) to world mm (the scanner)."""
        m = np.eye(4)
        m[:3, :3] = rotation(tuple(np.deg2rad(self.rotation_deg))) @ np.diag(self.scale)
        m[:3, 3] = self.shift_mm
        return m


@dataclass(frozen=True)
class Rendered:
    images: dict[str, np.ndarray]  # sequence → stored-order int16 array
    labels: np.ndarray  # stored-order uint8 BraTS labels (0 background)
    affine: np.ndarray  # stored index → world RAS mm


def sample_subject(seed: int, index: int, side: str | None, atlas: Atlas, voxel_mm: float = 2.0) -> SubjectSpec:
    """Draw subject `index` of cohort `seed`; side None makes a healthy subject (no lesion)."""
    subject_id = subject_name(index)
    acq = np.random.default_rng(stable_int("synth-acquisition", seed, index))
    rot = tuple(float(v) for v in acq.uniform(-5.0, 5.0, 3))
    scale = tuple(float(v) for v in acq.uniform(0.93, 1.07, 3))
    shift = tuple(float(v) for v in acq.uniform([-3.0, -8.0, -8.0], [3.0, 8.0, 8.0]))
    orientation = ORIENTATIONS[int(acq.integers(len(ORIENTATIONS)))]
    probs = np.array([p[3] for p in SPACING_PROFILES])
    _, inplane, thick, _ = SPACING_PROFILES[int(acq.choice(len(SPACING_PROFILES), p=probs / probs.sum()))]
    spacing = (voxel_mm * inplane, voxel_mm * inplane, voxel_mm * thick)
    jitter = acq.uniform(0.0, 6.0, 6)
    fov = tuple(float(b + (j if i < 3 else -j)) for i, (b, j) in enumerate(zip(BASE_FOV, jitter)))
    n = len(SEQUENCES)
    bias = tuple(tuple(float(v) for v in acq.normal(0.0, 0.12, _BIAS_TERMS)) for _ in range(n))
    gain = tuple(float(v) for v in acq.uniform(400.0, 2500.0, n))
    noise = tuple(float(v) for v in acq.uniform(0.01, 0.05, n))
    jit = tuple(tuple(float(v) for v in acq.normal(1.0, 0.04, len(TISSUES))) for _ in range(n))
    spec = SubjectSpec(
        subject_id=subject_id, lesions=(), truth=None, rotation_deg=rot, scale=scale, shift_mm=shift,
        orientation=orientation, spacing=spacing, fov=fov, bias=bias, gain=gain, noise=noise,
        contrast_jitter=jit, noise_seed=int(acq.integers(2**62)),
    )
    if side is None:
        return spec
    les_rng = np.random.default_rng(stable_int("synth-lesion", seed, index))
    pose = spec.pose()
    for _ in range(MAX_LESION_TRIES):
        lesions = sample_lesions(les_rng, side, atlas)
        measured = derive_truth(lesions, atlas)
        if measured.truth is None or measured.truth.side != side:
            continue
        world_x = measured.points @ pose[0, :3] + pose[0, 3]
        if _world_side_ok(side, world_x):
            extras = {"volume_mm3": measured.volume_mm3, "ventricle_loss": measured.ventricle_loss}
            return replace(spec, lesions=lesions, truth=measured.truth, extras=extras)
    raise RuntimeError(f"could not place a {side} lesion for subject {subject_id} in {MAX_LESION_TRIES} tries")


def subject_name(index: int) -> str:
    return f"sub-{index + 1:04d}"


def render(spec: SubjectSpec, atlas: Atlas, sequences: tuple[str, ...] = ("flair",)) -> Rendered:
    """Stored volumes of a subject (pure function of the spec; healthy and pathological alike)."""
    affine, shape = storage_grid(spec.orientation, spec.spacing, spec.fov)
    pose = spec.pose()
    q_all = world_coordinates(np.linalg.inv(pose) @ affine, shape)  # (N, 3) MNI mm of every stored voxel
    roi = np.flatnonzero(_in_brain_box(q_all, atlas))
    q = q_all[roi]
    qd = q - displacement(spec.lesions, q)  # anatomy is sampled where the mass effect moved it from
    brain = atlas.sample("brain", qd)
    keep = brain > 0.35  # skull-stripped: exact zeros outside the brain
    roi, q, qd, brain = roi[keep], q[keep], qd[keep], brain[keep]
    tissue = {"brain": brain, "gm": atlas.sample("gm", qd), "wm": atlas.sample("wm", qd)}
    tissue["csf"] = np.clip(brain - tissue["gm"] - tissue["wm"], 0.0, 1.0)
    maps = lesion_maps(spec.lesions, q, brain, tissue["gm"], min(spec.spacing))
    whole = np.clip(maps.whole, 0.0, 1.0)
    xyz = (q @ pose[:3, :3].T.astype(np.float32) + pose[:3, 3].astype(np.float32)) / np.float32(100.0)  # world / 100 mm
    n_vox = int(np.prod(shape))
    images = {}
    for name in sequences:
        s = SEQUENCES.index(name)
        mu = np.asarray(CONTRAST[name], np.float32) * np.asarray(spec.contrast_jitter[s], np.float32)
        img = (tissue["csf"] * mu[0] + tissue["gm"] * mu[1] + tissue["wm"] * mu[2]) * (1.0 - whole)
        for k, comp in enumerate((maps.edema, maps.solid, maps.rim, maps.necrosis)):
            img += comp * mu[3 + k]
        img *= _bias_field(spec.bias[s], xyz)
        rng = np.random.default_rng(stable_int(spec.noise_seed, name))
        sigma = np.float32(spec.noise[s] * mu[2])
        n1 = rng.standard_normal(img.shape, dtype=np.float32) * sigma
        n2 = rng.standard_normal(img.shape, dtype=np.float32) * sigma
        img = np.sqrt((img + n1) ** 2 + n2**2)
        out = np.zeros(n_vox, np.int16)
        out[roi] = np.clip(np.rint(img * np.float32(spec.gain[s])), 0, 32767).astype(np.int16)
        images[name] = out.reshape(shape)
    labels = np.zeros(n_vox, np.uint8)
    labels[roi] = maps.labels
    return Rendered(images=images, labels=labels.reshape(shape), affine=affine)


def _bias_field(coef: tuple[float, ...], xyz: np.ndarray) -> np.ndarray:
    """Smooth multiplicative field exp(quadratic polynomial of world position / 100 mm)."""
    x, y, z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    c = np.asarray(coef, np.float32)  # x, y, z, x², y², z², xy, xz, yz
    log = x * (c[0] + c[3] * x + c[6] * y + c[7] * z) + y * (c[1] + c[4] * y + c[8] * z) + z * (c[2] + c[5] * z)
    return np.exp(log)


def _in_brain_box(q: np.ndarray, atlas: Atlas) -> np.ndarray:
    lo, hi = _brain_box(atlas)
    x, y, z = q[:, 0], q[:, 1], q[:, 2]
    return (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]) & (z >= lo[2]) & (z <= hi[2])


_BOXES: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _brain_box(atlas: Atlas) -> tuple[np.ndarray, np.ndarray]:
    key = id(atlas.brain)
    if key not in _BOXES:
        idx = np.argwhere(atlas.brain > 0.05)
        lo = atlas.origin + atlas.spacing * idx.min(axis=0) - 2 * atlas.spacing
        hi = atlas.origin + atlas.spacing * idx.max(axis=0) + 2 * atlas.spacing
        _BOXES[key] = (lo.astype(np.float32), hi.astype(np.float32))
    return _BOXES[key]


def _world_side_ok(side: str, world_x: np.ndarray) -> bool:
    """The lesion's side must also be plain in world coordinates (centroid margin / both sides held)."""
    if side == "bilateral":
        return min(float((world_x < 0).mean()), float((world_x > 0).mean())) >= 0.1
    centroid = float(world_x.mean())
    return centroid <= -SIDE_MARGIN_MM if side == "left" else centroid >= SIDE_MARGIN_MM
