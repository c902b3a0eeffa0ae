"""FHIR R4B bundle of a report: validates, its Observations are the report's findings, the study is referenced."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from fhir.resources.R4B.bundle import Bundle

from brain3d.reporting import codes as C
from brain3d.reporting.device import Device
from brain3d.reporting.dicom_source import read_source_headers
from brain3d.reporting.export import render
from brain3d.reporting.fhir import DICOM_UID_SYSTEM, bundle_findings
from brain3d.reporting.runner import findings
from brain3d.reporting.schema import ReportRecord
from tests.reporting.dicom_series import STUDY_UID, write_mr_series
from tests.reporting.stub_model import FLAIR_ONLY, FLAIR_T1CE, TEXTBRATS_STYLE, record_for
from tests.volumes import ras_grid

DEVICE = Device(uid="2.25.987654321", name="brain3d test", version="0.1.0", checkpoint_sha256="cd" * 32)
WHEN = dt.datetime(2025, 1, 2, 12, 0, 0, tzinfo=dt.timezone.utc)
TEXT = "Bilateral frontal lesion with edema. No necrosis is seen."


@pytest.fixture(scope="module")
def headers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fhir") / "series"
    write_mr_series(*ras_grid((12, 14, 10), (12.0, 12.0, 12.0)), folder, "1.2.826.0.1.3680043.8.498.91")
    return read_source_headers([folder])


def _record(text: str = TEXT) -> ReportRecord:
    return ReportRecord(id="s1", input=["x"], checkpoint="c", profile="greedy", report=text, findings=findings(text))


def _bundle(rec: ReportRecord, headers=None) -> dict:
    raw = render(rec, "fhir", DEVICE, headers, created=WHEN).decode("utf-8")
    Bundle.model_validate_json(raw)  # validates against the R4B models
    return json.loads(raw)


def _resources(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_diagnostic_report_with_its_observations_and_study(headers):
    rec = _record()
    bundle = _bundle(rec, headers)
    assert bundle["type"] == "transaction" and all(e["request"]["method"] == "POST" for e in bundle["entry"])
    [report] = _resources(bundle, "DiagnosticReport")
    assert report["status"] == "preliminary"
    assert report["category"][0]["coding"][0]["code"] == "RAD"
    assert report["code"]["coding"][0] == {"system": "http://loinc.org", "code": "24590-2", "display": "Brain MRI"}
    assert report["conclusion"] == TEXT
    form = report["presentedForm"][0]
    assert form["contentType"].startswith("text/plain") and base64.b64decode(form["data"]).decode() == TEXT
    study = {"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{STUDY_UID}"}
    assert report["imagingStudy"] == [{"type": "ImagingStudy", "identifier": study}]
    assert report["subject"]["identifier"]["value"] == "PAT-0042" and report["subject"]["display"] == "Jane Doe"
    assert report["effectiveDateTime"] == "2025-01-02"
    urls = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    results = [urls[r["reference"]] for r in report["result"]]
    assert results == _resources(bundle, "Observation")  # every Observation is a result, none dangles
    [device] = _resources(bundle, "Device")
    assert device["identifier"][0]["value"] == f"urn:oid:{DEVICE.uid}"
    for obs in results:
        assert obs["status"] == "preliminary" and urls[obs["device"]["reference"]] == device
        assert obs["derivedFrom"] == [{"type": "ImagingStudy", "identifier": study}]
    assert bundle_findings(bundle) == rec.findings


def _values(bundle: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for obs in _resources(bundle, "Observation"):
        out.setdefault(obs["code"]["coding"][0]["code"], []).append(obs["valueCodeableConcept"]["coding"][0]["code"])
    return out


@pytest.mark.parametrize("text, expected", [
    ("The brain is normal. No lesion is identified.", {C.FINDING.value: [C.NORMAL.value]}),
    (TEXT, {C.FINDING.value: [C.LESION.value], C.LATERALITY.value: [C.SIDE_CODES["bilateral"].value],
            C.FINDING_SITE.value: [C.LOBE_CODES["frontal"].value], C.FINDING_CODES["edema"].value: [C.PRESENT.value],
            C.FINDING_CODES["necrosis"].value: [C.ABSENT.value]}),
    ("Left parietal and temporal mass, without enhancement.",
     {C.FINDING.value: [C.LESION.value], C.LATERALITY.value: [C.SIDE_CODES["left"].value],
      C.FINDING_SITE.value: [C.LOBE_CODES["parietal"].value, C.LOBE_CODES["temporal"].value],
      C.FINDING_CODES["enhancement"].value: [C.ABSENT.value]}),
])
def test_observations_equal_the_findings(text, expected):
    rec = _record(text)
    bundle = _bundle(rec)
    assert _values(bundle) == expected
    assert bundle_findings(bundle) == rec.findings


def test_nifti_input_has_no_patient_or_study_and_output_is_deterministic():
    rec = _record()
    bundle = _bundle(rec)
    [report] = _resources(bundle, "DiagnosticReport")
    assert "imagingStudy" not in report and "subject" not in report
    assert render(rec, "fhir", DEVICE, None, created=WHEN) == render(rec, "fhir", DEVICE, None, created=WHEN)


# ---------------------------------------------------------------- only what the input can show
def _finding_observation(bundle: dict, finding: str) -> dict:
    [obs] = [o for o in _resources(bundle, "Observation")
             if o["code"]["coding"][0]["code"] == C.FINDING_CODES[finding].value]
    return obs


@pytest.mark.parametrize("text", [TEXTBRATS_STYLE, "Right parietal lesion with edema.", "No lesion, no enhancement."])
def test_flair_only_bundle_gives_enhancement_no_value_but_a_reason(text):
    rec = record_for(FLAIR_ONLY, text)
    bundle = _bundle(rec)  # validates against the R4B models
    obs = _finding_observation(bundle, "enhancement")  # present whether or not the report mentions it
    assert not any(k.startswith("value") for k in obs)  # obs-6, which fhir.resources does not check
    reason = rec.findings.not_assessable[0].reason
    assert obs["dataAbsentReason"] == {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                                   "code": "not-performed", "display": "Not Performed"}],
                                       "text": reason}
    assert obs["note"] == [{"text": reason}]
    back = bundle_findings(bundle)
    assert back == rec.findings and back.enhancement is None
    [report] = _resources(bundle, "DiagnosticReport")
    assert report["conclusion"] == text  # the text as the model wrote it


def test_flair_t1ce_bundle_gives_enhancement_its_value():
    rec = record_for(FLAIR_T1CE, TEXTBRATS_STYLE)
    bundle = _bundle(rec)
    obs = _finding_observation(bundle, "enhancement")
    assert "dataAbsentReason" not in obs and obs["valueCodeableConcept"]["coding"][0]["code"] == C.PRESENT.value
    assert bundle_findings(bundle) == rec.findings and rec.findings.enhancement is True
