"""MR DICOM series written with pydicom, with the patient/study headers a PACS export carries (test helper)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, PYDICOM_IMPLEMENTATION_UID

PATIENT = {"PatientName": "Doe^Jane", "PatientID": "PAT-0042", "PatientBirthDate": "19700101", "PatientSex": "F",
           "IssuerOfPatientID": "HOSP"}
STUDY_UID = "1.2.826.0.1.3680043.8.498.4242"


def write_mr_series(data_ijk: np.ndarray, affine_ras: np.ndarray, folder: Path, series_uid: str,
                    study_uid: str = STUDY_UID, series_number: int = 3) -> list[str]:
    """Write an (i, j, k) array as one MR file per k slice with the RAS affine's geometry; returns SOP UIDs."""
    folder.mkdir(parents=True, exist_ok=True)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_ras
    spacing = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
    direction = lps[:3, :3] / spacing
    values = np.round(data_ijk).astype(np.int16)
    uids = []
    for k in range(values.shape[2]):
        sop_uid = f"{series_uid}.{k + 1}"
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        for key, value in PATIENT.items():
            setattr(ds, key, value)
        ds.StudyInstanceUID, ds.StudyID, ds.AccessionNumber = study_uid, "S1", "ACC-7"
        ds.StudyDate, ds.StudyTime, ds.ReferringPhysicianName = "20250102", "101500", ""
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = series_uid, series_number, "AX FLAIR"
        ds.Modality, ds.Manufacturer, ds.ManufacturerModelName = "MR", "ACME", "Scanner 3T"
        ds.SOPClassUID, ds.SOPInstanceUID, ds.InstanceNumber = MRImageStorage, sop_uid, k + 1
        ds.FrameOfReferenceUID = f"{study_uid}.9"
        ds.ImagePositionPatient = [float(v) for v in lps[:3, :3] @ np.array([0, 0, k]) + lps[:3, 3]]
        ds.ImageOrientationPatient = [float(v) for v in (*direction[:, 0], *direction[:, 1])]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]  # row spacing (along j), column spacing (along i)
        ds.SliceThickness = float(spacing[2])
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = values.shape[1], values.shape[0]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = np.ascontiguousarray(values[:, :, k].T).tobytes()  # (rows = j, columns = i)
        ds.save_as(folder / f"IM{series_uid.rsplit('.', 1)[-1]}_{k:04d}", enforce_file_format=True)
        uids.append(sop_uid)
    return uids
