"""The rules that turn a lesion mask into what a report states: side, finding thresholds, BraTS labels.

One set of rules for phantoms (`synth.lesions`, measured on the MNI grid) and real scans (`data.truth`,
measured on the scan), so a phantom's truth and a BraTS subject's truth mean the same thing.
"""

from __future__ import annotations

BILATERAL_MIN_FRACTION = 0.15  # each side holds at least this share of a bilateral lesion
MIN_FINDING_MM3 = 40.0  # a necrotic / enhancing component smaller than this is not a finding
COMPRESSION_MIN_LOSS = 0.20  # ventricle volume lost on one side for "compression"

# BraTS label values (3 is the BraTS 2023 number of enhancing tumour, read as enhancing)
BRATS_NECROTIC, BRATS_EDEMA, BRATS_ENHANCING = 1, 2, 4
LABELS = {BRATS_NECROTIC: "necrosis", BRATS_EDEMA: "edema", BRATS_ENHANCING: "enhancing", 3: "enhancing"}
UNKNOWN_LABEL = 255  # a voxel whose tissue is not known (a lesion subject without a mask): no loss is taken there


def side_from_shares(left: float, right: float) -> str:
    """'bilateral' when each side holds at least BILATERAL_MIN_FRACTION of the lesion, else the side holding most
    (`left`, `right`: shares of the lesion's voxels on the patient's left / right of the midsagittal plane)."""
    if min(left, right) >= BILATERAL_MIN_FRACTION:
        return "bilateral"
    return "left" if left > right else "right"
