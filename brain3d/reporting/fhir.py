"""A report as a FHIR R4B transaction Bundle: DiagnosticReport + one Observation per finding + the model's Device.

Why R4B, not R5: the FHIR APIs hospitals run today (and US Core, IHE and most national guides) are R4, and R4B
left DiagnosticReport, Observation, Device and Bundle exactly as R4 had them, so this JSON is accepted by an R4
server; R5 renames DiagnosticReport.imagingStudy to `study` and few EHRs take R5 yet. fhir.resources ships R4B
(no plain R4), which is also what validates the bundle here.

Contents: DiagnosticReport (status preliminary, category RAD, LOINC 24590-2 "Brain MRI", conclusion and a
text/plain presentedForm holding the report, `result` -> the Observations, `imagingStudy` -> the source study
when the input is DICOM); Observations: "Finding" = lesion | normal, "Laterality" = left | right | bilateral,
one "Finding site" per lobe, and edema / necrosis / enhancement / compression = present | absent (only those the
report asserts or negates; codes in `brain3d.reporting.codes`). A finding the input's sequences cannot show (e.g.
enhancement for a FLAIR-only model) is an Observation without a value: `dataAbsentReason` "not-performed" — the
observation procedure that shows it (reading a post-contrast scan) was not performed — with the reason as its text
and as a note, whether or not the report mentions it ("unknown" would claim a value exists that is merely not
known; "asked-unknown" is for a person asked). A Device for the model, identified by its
checkpoint-derived UID. The patient and the imaging study are referenced by identifier (logical references):
the report must attach to the records the hospital already has and never create a patient.
A transaction bundle can be POSTed to a FHIR server's base URL as it is.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Sequence

from fhir.resources.R4B.bundle import Bundle
from pydicom.dataset import Dataset

from brain3d.errors import ExportError
from brain3d.vocabulary import FINDINGS, LOBES
from brain3d.vocabulary.assessable import needs
from brain3d.reporting import codes as C
from brain3d.reporting.device import Device
from brain3d.reporting.schema import Findings, NotAssessable, ReportRecord

FHIR_VERSION = "4.3.0"  # R4B
DICOM_UID_SYSTEM = "urn:dicom:uid"
_NAMESPACE = uuid.UUID("6f7c0e0a-3b1e-5d8e-9a57-b3a1d0c4e2f1")
_RADIOLOGY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD",
                          "display": "Radiology"}]}
_IMAGING = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "imaging",
                        "display": "Imaging"}]}
TITLE = "brain3d AI draft report (research use only, not verified by a physician)"


def build_bundle(record: ReportRecord | dict, device: Device, headers: Sequence[Dataset] | None = None, *,
                 created: dt.datetime | None = None) -> Bundle:
    """The FHIR bundle of one report (pure: same inputs, same bundle). `headers`: the DICOM source, if any."""
    rec = ReportRecord.model_validate(record) if isinstance(record, dict) else record
    if rec.error is not None or rec.findings is None:
        raise ExportError(f"has no report to encode (the scan failed: {rec.error})", rec.id)
    issued = (created or dt.datetime.now()).astimezone().isoformat(timespec="seconds")
    seed = (device.uid, rec.id, rec.report)
    first = headers[0] if headers else None
    context: dict = {}
    if first is not None:
        context["subject"] = _patient(first)
        if first.get("StudyDate"):
            d = str(first.StudyDate)
            context["effectiveDateTime"] = f"{d[:4]}-{d[4:6]}-{d[6:8]}"
    study = _study(first) if first is not None else None
    device_url = _url("device", device.uid)
    observations = [_observation(code, value, device_url, study, issued, context)
                    for code, value in _observation_values(rec)]  # value: a code, or the reason it is absent
    obs_urls = [_url("observation", *seed, str(i)) for i in range(len(observations))]
    text = rec.report.strip()
    report = {
        "resourceType": "DiagnosticReport", "status": "preliminary", "category": [_RADIOLOGY],
        "code": _concept(C.PROCEDURE), **context, "issued": issued,
        "result": [{"reference": u} for u in obs_urls], "conclusion": text,
        "presentedForm": [{"contentType": "text/plain; charset=utf-8", "language": "en", "title": TITLE,
                           "data": base64.b64encode(text.encode("utf-8")).decode("ascii")}],
    }
    if study is not None:
        report["imagingStudy"] = [study]
    entries = [_entry(device_url, _device(device), "Device",
                      if_none_exist=f"identifier={DICOM_UID_SYSTEM}|urn:oid:{device.uid}")]
    entries += [_entry(u, o, "Observation") for u, o in zip(obs_urls, observations)]
    entries.append(_entry(_url("report", *seed), report, "DiagnosticReport"))
    return Bundle.model_validate({"resourceType": "Bundle", "type": "transaction", "timestamp": issued,
                                  "entry": entries})


def bundle_json(bundle: Bundle) -> str:
    """FHIR JSON of a bundle (empty elements left out, as FHIR requires)."""
    return json.dumps(json.loads(bundle.model_dump_json(exclude_none=True)), indent=2) + "\n"


def bundle_findings(bundle: Bundle | dict | str) -> Findings:
    """Read the findings back from the bundle's Observations (what a receiving EHR would store)."""
    if isinstance(bundle, str):
        bundle = json.loads(bundle)
    b = bundle if isinstance(bundle, Bundle) else Bundle.model_validate(bundle)
    side, lobes, values, pathology = None, set(), {}, False
    hidden: list[NotAssessable] = []
    for entry in b.entry or []:
        res = entry.resource
        if res.get_resource_type() != "Observation":
            continue
        code, value = _first(res.code), _first(res.valueCodeableConcept)
        absent = _first(res.dataAbsentReason)
        if absent is not None and (absent.system, absent.code) == (C.DATA_ABSENT_SYSTEM, C.NOT_PERFORMED["code"]):
            name = next((f for f, c in C.FINDING_CODES.items() if _is(code, c)), None)
            if name is not None:
                values[name] = None
                why = res.note[0].text if res.note else (res.dataAbsentReason.text or "")
                hidden.append(NotAssessable(finding=name, needs=list(needs(name)), reason=why))
        elif _is(code, C.FINDING):
            pathology = _is(value, C.LESION)
        elif _is(code, C.LATERALITY):
            side = next((s for s, c in C.SIDE_CODES.items() if _is(value, c)), None)
        elif _is(code, C.FINDING_SITE):
            lobes |= {lo for lo, c in C.LOBE_CODES.items() if _is(value, c)}
        else:
            name = next((f for f, c in C.FINDING_CODES.items() if _is(code, c)), None)
            if name is not None:
                values[name] = _is(value, C.PRESENT)
    return Findings(side=side, lobes=[lo for lo in LOBES if lo in lobes], pathology=pathology, **values,
                    not_assessable=sorted(hidden, key=lambda n: FINDINGS.index(n.finding)))


def _observation_values(rec: ReportRecord) -> list[tuple]:
    f = rec.findings
    out = [(C.FINDING, C.LESION if f.pathology else C.NORMAL)]
    if f.side:
        out.append((C.LATERALITY, C.SIDE_CODES[f.side]))
    out += [(C.FINDING_SITE, C.LOBE_CODES[lobe]) for lobe in f.lobes]
    dumped = f.model_dump()
    why = C.reasons(dumped)
    for name, present in C.evaluations(dumped, rec.report).items():
        if present is None:  # not assessable: no value, the reason instead
            out.append((C.FINDING_CODES[name], why.get(name, "not assessable on the input's sequences")))
        else:
            out.append((C.FINDING_CODES[name], C.PRESENT if present else C.ABSENT))
    return out


def _observation(code, value, device_url: str, study: dict | None, issued: str, context: dict) -> dict:
    """One Observation; `value` is a code, or a string: the reason the finding has no value (not assessable)."""
    if isinstance(value, str):
        result = {"dataAbsentReason": {"coding": [dict(C.NOT_PERFORMED)], "text": value}, "note": [{"text": value}]}
    else:
        result = {"valueCodeableConcept": _concept(value)}
    obs = {"resourceType": "Observation", "status": "preliminary", "category": [_IMAGING], "code": _concept(code),
           **context, "issued": issued, **result, "device": {"reference": device_url}}
    if study is not None:
        obs["derivedFrom"] = [study]
    return obs


def _device(device: Device) -> dict:
    return {
        "resourceType": "Device", "status": "active", "manufacturer": device.manufacturer,
        "identifier": [{"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{device.uid}"}],
        "deviceName": [{"name": device.name, "type": "user-friendly-name"},
                       {"name": device.model_name, "type": "model-name"}],
        "version": [{"value": device.version},
                    {"type": {"text": "checkpoint sha256"}, "value": device.checkpoint_sha256}],
    }


def _patient(ds: Dataset) -> dict:
    ref: dict = {"type": "Patient", "identifier": {"value": str(ds.get("PatientID", "")) or "unknown"}}
    if ds.get("IssuerOfPatientID"):
        ref["identifier"]["assigner"] = {"display": str(ds.IssuerOfPatientID)}
    if ds.get("PatientName"):
        name = ds.PatientName
        ref["display"] = " ".join(p for p in (name.given_name, name.family_name) if p) or str(name)
    return ref


def _study(ds: Dataset) -> dict:
    return {"type": "ImagingStudy",
            "identifier": {"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{ds.StudyInstanceUID}"}}


def _entry(full_url: str, resource: dict, kind: str, if_none_exist: str | None = None) -> dict:
    request = {"method": "POST", "url": kind}
    if if_none_exist:
        request["ifNoneExist"] = if_none_exist
    return {"fullUrl": full_url, "resource": resource, "request": request}


def _concept(code) -> dict:
    return {"coding": [{"system": C.FHIR_SYSTEMS[code.scheme_designator], "code": code.value,
                        "display": code.meaning}], "text": code.meaning}


def _first(concept):
    return concept.coding[0] if concept is not None and concept.coding else None


def _is(coding, code) -> bool:
    return coding is not None and (coding.system, coding.code) == (C.FHIR_SYSTEMS[code.scheme_designator], code.value)


def _url(*parts: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, chr(31).join(parts))}"
