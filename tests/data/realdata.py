"""Fixtures in the real data sets' exact layouts, filled with coarse phantoms whose truth is known.

BraTS2020 (+ TextBraTS):
    MICCAI_BraTS2020_TrainingData/BraTS20_Training_001/BraTS20_Training_001_{flair,t1,t1ce,t2,seg}.nii.gz
    MICCAI_BraTS2020_TrainingData/BraTS20_Training_002/..._{...}.nii       (plain .nii, as the Kaggle copy)
    flat/BraTS20_Training_003_{...}.nii.gz                                  (files flat in one folder)
    BraTS20_Training_00N/BraTS20_Training_00N_flair_text.txt               (TextBraTS report, one paragraph)
BIDS (OpenNeuro ds000221): dataset_description.json, participants.tsv,
    sub-010001/ses-01/anat/sub-010001_ses-01_acq-lowres_FLAIR.nii.gz (+ .json sidecar), sessions, T1w beside.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from brain3d.anatomy.atlas import load_atlas
from brain3d.synth.phantom import SubjectSpec, render, sample_subject
from brain3d.synth.skull import add_head
from brain3d.synth.storage import write_nifti_gz

SEED = 5
VOXEL_MM = 2.0
REPORT = ("The lesion is located in the {side} frontal lobe, showing heterogeneous hyperintense signal on FLAIR. "
          "Surrounding edema is evident. No necrosis is seen. There is compression of the {side} lateral ventricle.")


@lru_cache(maxsize=64)
def phantom(index: int, side: str | None, voxel_mm: float = VOXEL_MM, seed: int = SEED):
    """(spec, rendered flair+t1) of one coarse phantom; cached across tests."""
    atlas = load_atlas(2)
    spec = sample_subject(seed, index, side, atlas, voxel_mm)
    return spec, render(spec, atlas, ("flair", "t1"))


def write_nii(data: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    """A .nii.gz (byte-stable) or plain .nii file, by the path's suffix."""
    if path.name.endswith(".gz"):
        return write_nifti_gz(data, affine, path)
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def write_brats_subject(folder: Path, sid: str, index: int, side: str, ext: str = ".nii.gz",
                        seg: bool = True, report: str | None = "default") -> SubjectSpec:
    """One BraTS subject (four sequences; t1ce/t2 reuse the T1/FLAIR phantom) and, optionally, its seg/report."""
    spec, r = phantom(index, side)
    images = {"flair": r.images["flair"], "t1": r.images["t1"], "t1ce": r.images["t1"], "t2": r.images["flair"]}
    for kind, data in images.items():
        write_nii(data, r.affine, folder / f"{sid}_{kind}{ext}")
    if seg:
        write_nii(r.labels, r.affine, folder / f"{sid}_seg{ext}")
    if report is not None:
        text = REPORT.format(side=side) if report == "default" else report
        (folder / f"{sid}_flair_text.txt").write_text(text + "\n", encoding="utf-8")
    return spec


def brats_tree(root: Path) -> dict[str, SubjectSpec | None]:
    """A BraTS2020 training tree: nested .nii.gz and .nii subjects, a flat one, one without report, one without seg.

    Returns id → spec (truth known) for the subjects with a seg, None for the one without.
    """
    top = root / "MICCAI_BraTS2020_TrainingData"
    out: dict[str, SubjectSpec | None] = {}
    out["BraTS20_Training_001"] = write_brats_subject(top / "BraTS20_Training_001", "BraTS20_Training_001", 0, "left")
    out["BraTS20_Training_002"] = write_brats_subject(top / "BraTS20_Training_002", "BraTS20_Training_002", 1, "right",
                                                      ext=".nii")
    out["BraTS20_Training_003"] = write_brats_subject(root / "flat", "BraTS20_Training_003", 2, "bilateral")
    out["BraTS20_Training_004"] = write_brats_subject(top / "BraTS20_Training_004", "BraTS20_Training_004", 3, "right",
                                                      report=None)
    write_brats_subject(top / "BraTS20_Training_005", "BraTS20_Training_005", 4, "left", seg=False)
    out["BraTS20_Training_005"] = None
    (top / "name_mapping.csv").write_text("BraTS_2020_subject_ID\nBraTS20_Training_001\n", encoding="utf-8")
    return out


def head_scan(index: int, sequence: str = "flair", voxel_mm: float = VOXEL_MM) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(raw head image with skull and scalp, true brain mask, affine), stored order, of a healthy phantom."""
    _, r = phantom(index, None, voxel_mm)
    head = add_head(r.images[sequence].astype(np.float32), r.affine, sequence, seed=index)
    return head.image, head.brain, r.affine


def bids_tree(root: Path, n: int = 2) -> dict[str, Path]:
    """A ds000221-like BIDS tree of `n` raw (not stripped) FLAIR subjects; returns subject → true brain mask file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "MPI-Leipzig_Mind-Brain-Body",
                                                               "BIDSVersion": "1.0.2"}), encoding="utf-8")
    (root / "participants.tsv").write_text("participant_id\tgender\tage\n"
                                           + "".join(f"sub-01000{i + 1}\tF\t25-30\n" for i in range(n)), encoding="utf-8")
    truth = {}
    for i in range(n):
        sub = f"sub-01000{i + 1}"
        img, brain, affine = head_scan(20 + i)
        for ses in ("ses-01", "ses-02") if i == 0 else ("ses-01",):
            anat = root / sub / ses / "anat"
            ext = ".nii.gz" if i % 2 == 0 else ".nii"
            write_nii(img.astype(np.int16), affine, anat / f"{sub}_{ses}_acq-lowres_FLAIR{ext}")
            (anat / f"{sub}_{ses}_acq-lowres_FLAIR.json").write_text('{"RepetitionTime": 5.0}', encoding="utf-8")
            write_nii(img.astype(np.int16), affine, anat / f"{sub}_{ses}_acq-mp2rage_T1w.nii.gz")
        truth[sub] = write_nii(brain.astype(np.uint8), affine, root.parent / "brain_truth" / f"{sub}.nii.gz")
    return truth
