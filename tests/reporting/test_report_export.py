"""`brain3d report --dicom-sr --fhir` end to end, with a checkpoint from a tiny training run, on DICOM series
written by the test in three orientations (and refused, with one sentence, for NIfTI)."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from fhir.resources.R4B.bundle import Bundle

from brain3d.cli import main
from brain3d.reporting import codes as C
from brain3d.reporting.device import device_for
from brain3d.reporting.dicom_sr import sr_findings, sr_narrative
from brain3d.reporting.fhir import bundle_findings
from brain3d.reporting.schema import Findings, NotAssessable
from brain3d.vocabulary.assessable import reason
from tests.reporting.dicom_series import PATIENT, STUDY_UID, write_mr_series
from tests.train.conftest import blob_volume
from tests.volumes import reoriented, save_nifti

ORIENTATIONS = ("LPS", "PIR", "LIP")
ARGS = ["--max-new-tokens", "12", "--device", "cpu"]


@pytest.fixture(scope="module")
def checkpoint(trained_checkpoint) -> Path:
    return trained_checkpoint


@pytest.fixture(scope="module")
def pacs(tmp_path_factory) -> dict[str, list[str]]:
    """One left-lesion head, exported as three series (axial, sagittal, coronal) of one study: folder -> SOP UIDs."""
    root = tmp_path_factory.mktemp("pacs")
    ras = np.transpose(blob_volume("left", 5), (2, 1, 0)) * 1000  # model (D, H, W) -> stored RAS (x, y, z)
    return {str(root / c): write_mr_series(*reoriented(ras, np.eye(4), c), root / c, f"1.2.826.0.1.3680043.8.498.8{n}")
            for n, c in enumerate(ORIENTATIONS)}


def _side_code(ds: pydicom.Dataset) -> str | None:
    [group] = hd.sr.Comprehensive3DSR.from_dataset(ds).content.get_image_measurement_groups()
    sides = {s.laterality.value for s in group.finding_sites if s.laterality is not None}
    assert len(sides) <= 1
    return next(iter(sides), None)


SCRIPTED = "Bilateral frontal lesion with edema; no necrosis."


@pytest.mark.parametrize("scripted", [False, True], ids=["model", "scripted-report"])
def test_sr_and_fhir_next_to_each_report(checkpoint, pacs, tmp_path, capsys, monkeypatch, scripted):
    """With the tiny model's own words, and with a scripted report that names a side, lobe and negation."""
    if scripted:
        import brain3d.reporting.runner as runner

        monkeypatch.setattr(runner, "generate_pair", lambda model, volumes, *a: ([SCRIPTED] * len(volumes),
                                                                                 [None] * len(volumes)))
    out = tmp_path / "out"
    assert main(["report", *pacs, "-c", str(checkpoint), "--out", str(out), "--dicom-sr", "--fhir", *ARGS]) == 0
    device = device_for(checkpoint)
    reports = set()
    for folder, uids in pacs.items():
        sid = Path(folder).name
        rec = json.loads((out / f"{sid}.json").read_text(encoding="utf-8"))
        expected = Findings.model_validate(rec["findings"])
        reports.add(rec["report"])

        ds = pydicom.dcmread(out / f"{sid}.sr.dcm")
        assert ds.StudyInstanceUID == STUDY_UID and ds.PatientID == PATIENT["PatientID"]
        cited = [r.ReferencedSOPInstanceUID for e in ds.CurrentRequestedProcedureEvidenceSequence
                 for s in e.ReferencedSeriesSequence for r in s.ReferencedSOPSequence]
        assert sorted(cited) == sorted(uids)
        side = expected.side
        assert _side_code(ds) == (C.SIDE_CODES[side].value if side else None)  # laterality code = JSON side
        assert sr_findings(ds) == expected and sr_narrative(ds) == rec["report"].strip()
        [ours] = [e for e in ds.ContributingEquipmentSequence if e.Manufacturer == "brain3d"]
        assert ours.DeviceUID == device.uid

        raw = (out / f"{sid}.fhir.json").read_text(encoding="utf-8")
        Bundle.model_validate_json(raw)
        assert bundle_findings(raw) == expected
    assert len(reports) == 1  # one physical scan, three orientations, one report
    if scripted:  # the checkpoint reads FLAIR alone: enhancement is not assessable, in the JSON, SR and FHIR alike
        hidden = NotAssessable(finding="enhancement", needs=["t1ce"], reason=reason("enhancement", ["flair"]))
        assert expected == Findings(side="bilateral", lobes=["frontal"], edema=True, enhancement=None,
                                    pathology=True, not_assessable=[hidden])


def test_nifti_input_is_refused_with_one_sentence(checkpoint, tmp_path, capsys):
    nifti = save_nifti(np.transpose(blob_volume("left", 5), (2, 1, 0)), np.eye(4), tmp_path / "scan.nii.gz")
    code = main(["report", str(nifti), "-c", str(checkpoint), "--out", str(tmp_path / "out"), "--dicom-sr", *ARGS])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == (f"error: {nifti}: is not a DICOM series folder, so --dicom-sr has no patient, study or source "
                   "images to put a DICOM SR in (NIfTI and other volume files carry no DICOM headers)")
    assert not (tmp_path / "out").exists()
    # FHIR needs no DICOM headers: the bundle is written, without patient or study
    assert main(["report", str(nifti), "-c", str(checkpoint), "--out", str(tmp_path / "out"), "--fhir", *ARGS]) == 0
    bundle = json.loads((tmp_path / "out" / "scan.fhir.json").read_text(encoding="utf-8"))
    [report] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"]
    assert "imagingStudy" not in report and "subject" not in report


def test_a_resumed_run_exports_earlier_reports(checkpoint, pacs, tmp_path, capsys):
    out = tmp_path / "out"
    folder = next(iter(pacs))
    assert main(["report", folder, "-c", str(checkpoint), "--out", str(out), *ARGS]) == 0
    assert not list(out.glob("*.sr.dcm"))
    assert main(["report", folder, "-c", str(checkpoint), "--out", str(out), "--dicom-sr", *ARGS]) == 0
    assert "resuming: 1 scans already reported" in capsys.readouterr().err
    assert (out / f"{Path(folder).name}.sr.dcm").is_file()


def test_export_flags_need_out(checkpoint, pacs, capsys):
    assert main(["report", next(iter(pacs)), "-c", str(checkpoint), "--fhir", *ARGS]) == 2
    assert "give --out" in capsys.readouterr().err
