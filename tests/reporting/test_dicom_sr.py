"""DICOM SR of a report: placed in the source study, citing exactly the source instances, coded right, and
reading back to the same findings; on DICOM series the tests write themselves in several orientations."""

from __future__ import annotations

import datetime as dt
from io import BytesIO
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.uid import Comprehensive3DSRStorage

from brain3d.errors import ExportError
from brain3d.vocabulary import FINDINGS, LOBES
from brain3d.io import read_volume
from brain3d.reporting import codes as C
from brain3d.reporting.device import Device, checkpoint_digest, device_for
from brain3d.reporting.dicom_source import read_source_headers, require_dicom_series
from brain3d.reporting.dicom_sr import build_sr, sr_bytes, sr_findings, sr_narrative
from brain3d.reporting.export import render
from brain3d.reporting.fhir import bundle_findings
from brain3d.reporting.runner import findings
from brain3d.reporting.schema import ReportRecord
from tests.reporting.dicom_series import PATIENT, STUDY_UID, write_mr_series
from tests.reporting.stub_model import FLAIR_ONLY, FLAIR_T1CE, TEXTBRATS_STYLE, record_for
from tests.volumes import ras_grid, reoriented, save_nifti

ORIENTATIONS = ("LPS", "PIR", "LIP")  # axial, sagittal, coronal (slice axis = row × column, as DICOM sorts)
DEVICE = Device(uid="2.25.123456789", name="brain3d test", version="0.1.0", checkpoint_sha256="ab" * 32)
WHEN = dt.datetime(2025, 1, 2, 12, 0, 0)


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> dict[str, tuple[Path, list[str]]]:
    """orientation -> (folder, SOP instance UIDs); each folder also holds a decoy series of the same study."""
    root = tmp_path_factory.mktemp("dicom")
    data, affine = ras_grid((24, 28, 20), (7.0, 7.0, 7.0))
    out = {}
    for n, codes in enumerate(ORIENTATIONS):
        folder = root / codes
        uids = write_mr_series(*reoriented(data, affine, codes), folder, f"1.2.826.0.1.3680043.8.498.50{n}")
        write_mr_series(data[:, :, :3], affine, folder, f"1.2.826.0.1.3680043.8.498.70{n}", series_number=9)
        out[codes] = (folder, uids)
    return out


def _record(text: str, path: str = "scan") -> ReportRecord:
    return ReportRecord(id="scan", input=[path], checkpoint="ckpt", profile="greedy", report=text,
                        findings=findings(text))


def _sr(rec: ReportRecord, headers) -> pydicom.Dataset:
    return pydicom.dcmread(BytesIO(render(rec, "dicom-sr", DEVICE, headers, created=WHEN)))


def _group(ds: pydicom.Dataset):
    groups = hd.sr.Comprehensive3DSR.from_dataset(ds).content.get_image_measurement_groups()
    assert len(groups) == 1
    return groups[0]


@pytest.mark.parametrize("codes", ORIENTATIONS)
def test_sr_lives_in_the_source_study_and_cites_exactly_its_instances(series, codes):
    folder, uids = series[codes]
    series_uid = uids[0].rsplit(".", 1)[0]
    assert "".join(read_volume(folder, series_uid=series_uid).orientation) == codes
    headers = read_source_headers([folder], series_uid)
    ds = _sr(_record("Left frontal lesion with edema.", str(folder)), headers)

    assert ds.SOPClassUID == Comprehensive3DSRStorage and ds.Modality == "SR"
    for key in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        assert str(ds[key].value) == PATIENT[key]
    assert ds.StudyInstanceUID == STUDY_UID and ds.AccessionNumber == "ACC-7"
    assert ds.SeriesInstanceUID != series_uid and ds.SOPInstanceUID not in uids
    evidence = ds.CurrentRequestedProcedureEvidenceSequence
    assert [e.StudyInstanceUID for e in evidence] == [STUDY_UID]
    [ref_series] = evidence[0].ReferencedSeriesSequence
    assert ref_series.SeriesInstanceUID == series_uid  # the decoy series in the same folder is not cited
    assert sorted(r.ReferencedSOPInstanceUID for r in ref_series.ReferencedSOPSequence) == sorted(uids)
    assert "PertinentOtherEvidenceSequence" not in ds
    assert (ds.CompletionFlag, ds.VerificationFlag, ds.PreliminaryFlag) == ("PARTIAL", "UNVERIFIED", "PRELIMINARY")
    assert "RESEARCH USE" in ds.SeriesDescription
    [ours] = [e for e in ds.ContributingEquipmentSequence if e.Manufacturer == DEVICE.manufacturer]
    assert ours.DeviceUID == DEVICE.uid and ours.ManufacturerModelName == DEVICE.model_name
    assert list(ours.SoftwareVersions) == DEVICE.software_versions
    assert ours.PurposeOfReferenceCodeSequence[0].CodeValue == "109102"  # Processing Equipment
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert C.same(_code(ds.ConceptNameCodeSequence[0]), hd.sr.CodedConcept("126000", "DCM", "x"))
    assert sr_narrative(ds) == "Left frontal lesion with edema."


def test_the_three_orientations_give_one_tensor(series):
    """The scans the SR tests run on really are one physical head stored three ways."""
    vols = [read_volume(series[c][0], series_uid=series[c][1][0].rsplit(".", 1)[0]).data for c in ORIENTATIONS]
    for v in vols[1:]:
        np.testing.assert_allclose(v, vols[0])


CASES = {
    # text -> (finding type, laterality, site codes, {finding: present?})
    "normal": ("No abnormality is seen. The ventricles are normal.", C.NORMAL, None, [C.BRAIN], {}),
    "normal, negated list": ("No lesion, edema, necrosis or enhancement.", C.NORMAL, None, [C.BRAIN],
                             {"edema": False, "necrosis": False, "enhancement": False}),
    "bilateral": ("Bilateral frontal and parietal tumor with surrounding edema and enhancement.", C.LESION,
                  C.SIDE_CODES["bilateral"], [C.LOBE_CODES["frontal"], C.LOBE_CODES["parietal"]],
                  {"edema": True, "enhancement": True}),
    "negations": ("A right temporal mass with edema. There is no necrosis. Enhancement is not seen.", C.LESION,
                  C.SIDE_CODES["right"], [C.LOBE_CODES["temporal"]],
                  {"edema": True, "necrosis": False, "enhancement": False}),
    "side without lobe": ("Left hemisphere lesion compressing the ventricle.", C.LESION, C.SIDE_CODES["left"],
                          [C.HEMISPHERE], {"compression": True}),
    "lobe without side": ("Occipital lesion with necrosis.", C.LESION, None, [C.LOBE_CODES["occipital"]],
                          {"necrosis": True}),
}


@pytest.mark.parametrize("case", CASES)
def test_findings_map_to_their_codes_and_read_back(series, case):
    text, finding_type, laterality, sites, evaluations = CASES[case]
    folder, uids = series["LPS"]
    rec = _record(text, str(folder))
    ds = _sr(rec, read_source_headers([folder], uids[0].rsplit(".", 1)[0]))
    group = _group(ds)
    assert C.same(group.finding_type, finding_type)
    assert [s.value.value for s in group.finding_sites] == [s.value for s in sites]
    for site in group.finding_sites:
        if laterality is None:
            assert site.laterality is None
        else:
            assert C.same(site.laterality, laterality)
            assert site.laterality.value == C.SIDE_CODES[rec.findings.side].value  # laterality code = JSON side
    got = {next(f for f, c in C.FINDING_CODES.items() if C.same(e.name, c)): e.value.value
           for e in group.get_qualitative_evaluations()}
    assert got == {f: (C.PRESENT if v else C.ABSENT).value for f, v in evaluations.items()}
    assert sr_findings(ds) == rec.findings  # SR -> findings round trip
    assert bundle_findings(render(rec, "fhir", DEVICE, None, created=WHEN).decode("utf-8")) == rec.findings


def test_enhancement_absent_code_values(series):
    """The codes the issue names, spelled out once (a wrong table entry fails here, not in a PACS)."""
    assert (C.PRESENT.value, C.ABSENT.value) == ("52101004", "272519000")
    assert {s: c.value for s, c in C.SIDE_CODES.items()} == {"left": "7771000", "right": "24028007",
                                                             "bilateral": "51440002"}
    assert {f: (c.scheme_designator, c.value) for f, c in C.FINDING_CODES.items()} == {
        "edema": ("SCT", "79654002"), "necrosis": ("SCT", "6574001"), "enhancement": ("NCIt", "C113842"),
        "compression": ("SCT", "71173004")}
    assert tuple(C.FINDING_CODES) == FINDINGS and tuple(C.LOBE_CODES) == LOBES


def test_sr_is_deterministic_and_its_uid_follows_the_report(series):
    folder, uids = series["PIR"]
    headers = read_source_headers([folder], uids[0].rsplit(".", 1)[0])
    a, b = (_sr(_record("Left frontal lesion."), headers) for _ in range(2))
    c = _sr(_record("Right frontal lesion."), headers)
    assert a.SOPInstanceUID == b.SOPInstanceUID != c.SOPInstanceUID
    assert a.SeriesInstanceUID == c.SeriesInstanceUID  # one AI series per study and device


def test_device_uid_follows_checkpoint_contents(tmp_path):
    ckpt = tmp_path / "phase2b"
    (ckpt / "adapter").mkdir(parents=True)
    (ckpt / "config.json").write_text("{}")
    (ckpt / "adapter" / "w.bin").write_bytes(b"\x00" * 10)
    first = device_for(ckpt)
    moved = tmp_path / "elsewhere" / "phase2b"
    moved.parent.mkdir()
    ckpt.rename(moved)
    assert device_for(moved).uid == first.uid  # the path does not matter
    (moved / "adapter" / "w.bin").write_bytes(b"\x00" * 9 + b"\x01")
    changed = device_for(moved)
    assert changed.uid != first.uid and changed.checkpoint_sha256 == checkpoint_digest(moved)
    assert first.uid.startswith("2.25.") and len(first.uid) <= 64


def test_nifti_and_failed_records_are_refused(tmp_path, series):
    nifti = save_nifti(np.random.rand(4, 4, 4).astype(np.float32), np.eye(4), tmp_path / "scan.nii.gz")
    with pytest.raises(ExportError, match=r"scan\.nii\.gz: is not a DICOM series folder, so --dicom-sr has no "
                                          r"patient, study or source images"):
        require_dicom_series([nifti])
    failed = ReportRecord(id="bad", input=["x"], checkpoint="c", profile="greedy", error="x: unreadable")
    folder, uids = series["LPS"]
    with pytest.raises(ExportError, match="bad: has no report to encode"):
        build_sr(failed, read_source_headers([folder], uids[0].rsplit(".", 1)[0]), DEVICE)
    with pytest.raises(ExportError, match="has no DICOM source headers"):
        build_sr(_record("Left lesion."), [], DEVICE)


def test_sr_file_reads_back_with_highdicom(tmp_path, series):
    folder, uids = series["LIP"]
    rec = _record("Right parietal lesion with edema, no enhancement.")
    sr = build_sr(rec, read_source_headers([folder], uids[0].rsplit(".", 1)[0]), DEVICE, created=WHEN)
    path = tmp_path / "x.sr.dcm"
    path.write_bytes(sr_bytes(sr))
    back = hd.sr.srread(path)
    assert isinstance(back, hd.sr.Comprehensive3DSR)
    assert sr_findings(back) == rec.findings
    assert back.ContentDate == "20250102"


def _code(item):
    return hd.sr.CodedConcept(item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning)


# ---------------------------------------------------------------- only what the input can show
def _evaluations(ds) -> dict[str, tuple[str, list[str]]]:
    """finding -> (value code, texts of the items below its evaluation) from the SR's raw measurement group."""
    out = {}
    for item in _group(ds)[0].ContentSequence:
        if item.ValueType != "CODE":
            continue
        name = next((f for f, c in C.FINDING_CODES.items() if C.same(_code(item.ConceptNameCodeSequence[0]), c)), None)
        if name is not None:
            out[name] = (item.ConceptCodeSequence[0].CodeValue,
                         [str(c.TextValue) for c in item.get("ContentSequence", []) if c.ValueType == "TEXT"])
    return out


@pytest.mark.parametrize("text", [TEXTBRATS_STYLE, "Right parietal lesion with edema.", "No lesion, no enhancement."])
def test_flair_only_sr_writes_enhancement_as_undetermined_and_reads_it_back(series, text):
    folder, uids = series["LPS"]
    rec = record_for(FLAIR_ONLY, text, path=str(folder))
    ds = _sr(rec, read_source_headers([folder], uids[0].rsplit(".", 1)[0]))
    value, notes = _evaluations(ds)["enhancement"]  # written whether or not the report mentions it
    assert value == C.UNDETERMINED.value == "373068000"
    assert notes == [rec.findings.not_assessable[0].reason]
    assert all(v != C.UNDETERMINED.value for f, (v, _) in _evaluations(ds).items() if f != "enhancement")
    back = sr_findings(ds)
    assert back == rec.findings and back.enhancement is None
    assert sr_narrative(ds) == text  # the text as the model wrote it
    texts = [str(e.value) for e in ds.iterall() if e.keyword == "TextValue"]
    assert "input sequences flair" in texts  # an algorithm parameter (TID 4019): what the model read


def test_flair_t1ce_sr_writes_enhancement_present(series):
    folder, uids = series["LPS"]
    rec = record_for(FLAIR_T1CE, TEXTBRATS_STYLE, path=str(folder))
    ds = _sr(rec, read_source_headers([folder], uids[0].rsplit(".", 1)[0]))
    assert _evaluations(ds) == {"edema": (C.PRESENT.value, []), "necrosis": (C.ABSENT.value, []),
                                "enhancement": (C.PRESENT.value, [])}
    assert sr_findings(ds) == rec.findings and rec.findings.enhancement is True


def test_undetermined_is_the_present_absent_context_groups_third_value():
    from pydicom.sr.codedict import codes

    cid240 = codes.cid240  # CID 240 "Present-Absent"
    assert {cid240.Present.value, cid240.Absent.value, cid240.Undetermined.value} == {
        C.PRESENT.value, C.ABSENT.value, C.UNDETERMINED.value}
