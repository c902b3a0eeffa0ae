"""The lobe map: a simple, documented partition of the cerebrum in MNI mm (RAS+, symmetric in x).

Every point is classified from its MNI coordinates (x, y, z) alone:

  infratentorial  (z < −10 and y < −42)            cerebellum
                  or (|x| < 14, z < −8, y < −8)     brainstem / midbrain
                  — no lesion is placed here, so "cerebellum" never occurs in a synthetic truth
  occipital       y < −70
  temporal        −70 ≤ y < 10, z < 5, |x| ≥ 22     (below the Sylvian fissure, lateral to the deep nuclei)
  frontal         y ≥ −18 (not temporal)            (in front of a coronal plane near the central sulcus)
  parietal        −70 ≤ y < −18 (not temporal)

Periventricular is a location on top of the lobes: within PERIVENTRICULAR_MM of the lateral
ventricles (`anatomy.atlas.Atlas.ventricles` > 0.5).

A lesion is reported in a lobe when at least LOBE_MIN_FRACTION of its voxels (on the MNI grid) fall in
it (the lobe holding most of it is always reported), and as periventricular when at least
LOBE_MIN_FRACTION of its voxels lie in the periventricular band. The planes are coarse on purpose:
they make the truth reproducible from the mask alone; they are not a neuroanatomical atlas.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from brain3d.anatomy.atlas import Atlas
from brain3d.vocabulary import LOBES

PERIVENTRICULAR_MM = 8.0
LOBE_MIN_FRACTION = 0.10
INFRATENTORIAL = 0  # label 0 in `lobe_labels`; labels 1..4 follow LOBES


def lobe_labels(mm: np.ndarray) -> np.ndarray:
    """(..., 3) MNI mm → (...) uint8 label: 0 infratentorial, 1 frontal, 2 parietal, 3 temporal, 4 occipital."""
    x, y, z = mm[..., 0], mm[..., 1], mm[..., 2]
    infra = ((z < -10) & (y < -42)) | ((np.abs(x) < 14) & (z < -8) & (y < -8))
    temporal = (y >= -70) & (y < 10) & (z < 5) & (np.abs(x) >= 22)
    out = np.where(y < -70, 4, np.where(temporal, 3, np.where(y >= -18, 1, 2))).astype(np.uint8)
    out[infra] = INFRATENTORIAL
    return out


def supratentorial(mm: np.ndarray) -> np.ndarray:
    """Boolean: the point lies in the cerebrum (where lesions may grow)."""
    return lobe_labels(mm) != INFRATENTORIAL


_BANDS: dict[int, np.ndarray] = {}


def periventricular_band(atlas: Atlas) -> np.ndarray:
    """Boolean map on the atlas grid: within PERIVENTRICULAR_MM of the lateral ventricles (cached per atlas)."""
    key = id(atlas.ventricles)
    if key not in _BANDS:
        dist = ndi.distance_transform_edt(atlas.ventricles <= 0.5, sampling=atlas.spacing)
        _BANDS[key] = dist <= PERIVENTRICULAR_MM
    return _BANDS[key]


def locations_of(mask: np.ndarray, mm: np.ndarray, atlas: Atlas) -> list[str]:
    """Lobes (in LOBES order) and 'periventricular' of a lesion given as atlas-grid voxels.

    mask: (X, Y, Z) bool on the atlas grid; mm: matching (X, Y, Z, 3) MNI coordinates.
    """
    n = int(mask.sum())
    if n == 0:
        return []
    labels = lobe_labels(mm[mask])
    counts = np.bincount(labels, minlength=len(LOBES) + 1)[1:]
    chosen = {i for i, c in enumerate(counts) if c >= LOBE_MIN_FRACTION * n}
    chosen.add(int(np.argmax(counts)))
    out = [LOBES[i] for i in sorted(chosen)]
    if periventricular_band(atlas)[mask].sum() >= LOBE_MIN_FRACTION * n:
        out.append("periventricular")
    return out
