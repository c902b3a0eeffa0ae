"""A report as a DICOM Comprehensive 3D SR (TID 1500 Measurement Report) in the source scan's own study.

Structure (IHE AI Results style), one SR per scan:

    Imaging Measurement Report (TID 1500)
      language, observer = the model as a device (TID 1004: its checkpoint-derived UID), procedure = Brain MRI
      Image Library: every source instance (so the evidence is exactly the series the model read)
      Imaging Measurements
        Measurement Group (TID 1501): finding = lesion | normal, finding sites (lobes, each with laterality),
          qualitative evaluations edema / necrosis / enhancement / compression = present | absent, or
            undetermined with a Comment saying why when the input's sequences cannot show the finding,
          algorithm identification (TID 4019; its parameters name the sequences the model read)
      Findings (TID 2000-style section) > Finding: the report text

The narrative lives in the same object, not in a second SR: then the structured findings and the words they were
read from cannot be separated, archived or deleted apart, and one SOP Instance UID cites both. TID 1500 is an
extensible template, so the extra section at the root keeps the document conformant; a viewer that renders only
TID 2000 still shows it as a text item.

The extractor yields one side and one set of lobes per report, so a report asserting pathology gives one
measurement group (a bilateral lesion: laterality "bilateral" on each site). No segmentation exists, so the
group carries no volume. Codes and their sources: `brain3d.reporting.codes`.
"""

from __future__ import annotations

import datetime as dt
from io import BytesIO
from typing import Sequence

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.sr.codedict import codes as pcodes

from brain3d.errors import ExportError
from brain3d.vocabulary import FINDINGS, LOBES
from brain3d.vocabulary.assessable import needs
from brain3d.reporting import codes as C
from brain3d.reporting.device import Device, derived_uid
from brain3d.reporting.schema import Findings, NotAssessable, ReportRecord

SERIES_NUMBER = 9901  # far above scanner series numbers, so the AI series sorts last in a viewer
SERIES_DESCRIPTION = "RESEARCH USE ONLY brain3d AI draft report UNVERIFIED"
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "StudyDate",
          "StudyTime", "ReferringPhysicianName")


def build_sr(record: ReportRecord | dict, headers: Sequence[Dataset], device: Device, *,
             created: dt.datetime | None = None) -> hd.sr.Comprehensive3DSR:
    """The SR of one report (pure: same record, headers, device and time give the same object and UIDs)."""
    rec = ReportRecord.model_validate(record) if isinstance(record, dict) else record
    if rec.error is not None or rec.findings is None:
        raise ExportError(f"has no report to encode (the scan failed: {rec.error})", rec.id)
    if not headers:
        raise ExportError("has no DICOM source headers to put an SR in", rec.id)
    created = created or dt.datetime.now()
    evidence = [_with_type2(headers[0]), *headers[1:]]
    study_uid = str(headers[0].StudyInstanceUID)
    source_series = sorted({str(h.SeriesInstanceUID) for h in headers})
    series_uid = _uid("sr-series", device.uid, study_uid)
    instance_uid = _uid("sr-instance", device.uid, *source_series, rec.report)

    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
            observer_type=pcodes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=device.uid, name=device.name, manufacturer_name=device.manufacturer,
                model_name=device.model_name))),
        procedure_reported=C.PROCEDURE,
        imaging_measurements=[_group(rec, device, instance_uid)],
        referenced_images=list(headers),
    )
    report[0].ContentSequence.append(_narrative(rec.report))
    equipment = hd.ContributingEquipment(
        manufacturer=device.manufacturer, purpose_of_reference=pcodes.DCM.ProcessingEquipment,
        manufacturer_model_name=device.model_name, software_versions=device.software_versions,
        contribution_datetime=created, contribution_description=f"{device.name}: AI draft report, research use only",
    )
    equipment.DeviceUID = device.uid
    return hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report[0], series_instance_uid=series_uid, series_number=SERIES_NUMBER,
        sop_instance_uid=instance_uid, instance_number=1, manufacturer=device.manufacturer,
        is_complete=False, is_final=False, is_verified=False, contributing_equipment=[equipment],
        series_description=SERIES_DESCRIPTION, manufacturer_model_name=device.model_name,
        software_versions=device.software_versions, content_date=created.date(), content_time=created.time(),
        series_date=created.date(), series_time=created.time(), specific_character_set="ISO_IR 192",
    )


def sr_bytes(sr: Dataset) -> bytes:
    """The SR as a DICOM Part 10 file."""
    buf = BytesIO()
    dcmwrite(buf, sr, enforce_file_format=True)
    return buf.getvalue()


def sr_findings(ds: Dataset) -> Findings:
    """Read the findings back from an SR written by `build_sr` (the round trip a receiving system would do)."""
    sr = hd.sr.Comprehensive3DSR.from_dataset(ds)
    groups = sr.content.get_image_measurement_groups()
    if len(groups) != 1:
        raise ExportError(f"has {len(groups)} measurement groups; a brain3d SR has exactly one",
                          str(ds.get("SOPInstanceUID", "SR")))
    group = groups[0]
    sites = group.finding_sites
    lobes = {lobe for lobe, code in C.LOBE_CODES.items() for s in sites if C.same(s.value, code)}
    sides = {side for side, code in C.SIDE_CODES.items() for s in sites if s.laterality and C.same(s.laterality, code)}
    values: dict[str, bool | None] = {}
    hidden: list[NotAssessable] = []
    for item in group[0].ContentSequence:  # the raw items: an undetermined evaluation carries its reason below it
        if item.ValueType != "CODE":
            continue
        name = next((f for f, code in C.FINDING_CODES.items() if C.same(_code(item.ConceptNameCodeSequence[0]), code)),
                    None)
        if name is None:
            continue
        value = _code(item.ConceptCodeSequence[0])
        if C.same(value, C.UNDETERMINED):
            values[name] = None
            hidden.append(NotAssessable(finding=name, needs=list(needs(name)), reason=_comment(item)))
        else:
            values[name] = C.same(value, C.PRESENT)
    return Findings(side=next(iter(sides)) if len(sides) == 1 else None, lobes=[lo for lo in LOBES if lo in lobes],
                    pathology=group.finding_type is not None and C.same(group.finding_type, C.LESION), **values,
                    not_assessable=sorted(hidden, key=lambda n: FINDINGS.index(n.finding)))


def sr_narrative(ds: Dataset) -> str:
    """The report text of an SR written by `build_sr`."""
    for item in ds.ContentSequence:
        name = item.ConceptNameCodeSequence[0]
        if item.ValueType == "CONTAINER" and C.same(_code(name), pcodes.DCM.Findings):
            return "\n".join(str(t.TextValue) for t in item.ContentSequence if t.ValueType == "TEXT")
    raise ExportError("has no Findings section with the report text", str(ds.get("SOPInstanceUID", "SR")))


def _group(rec: ReportRecord, device: Device, instance_uid: str) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    f = rec.findings
    laterality = C.SIDE_CODES.get(f.side) if f.side else None
    if f.lobes:
        sites = [hd.sr.FindingSite(C.LOBE_CODES[lobe], laterality=laterality) for lobe in f.lobes]
    elif laterality is not None:
        sites = [hd.sr.FindingSite(C.HEMISPHERE, laterality=laterality)]
    else:
        sites = [hd.sr.FindingSite(C.BRAIN)]
    dumped = f.model_dump()
    why = C.reasons(dumped)
    evaluations = [_evaluation(name, present, why.get(name))
                   for name, present in C.evaluations(dumped, rec.report).items()]
    parameters = [f"checkpoint sha256:{device.checkpoint_sha256}", f"decoding {rec.profile}"]
    if rec.sequences is not None:
        parameters.append(f"input sequences {','.join(rec.sequences)}")
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=_uid("tracking", instance_uid),
                                                     identifier="lesion 1" if f.pathology else "whole brain"),
        finding_type=C.LESION if f.pathology else C.NORMAL,
        algorithm_id=hd.sr.AlgorithmIdentification(name=device.model_name, version=device.version,
                                                    parameters=parameters),
        finding_sites=sites, qualitative_evaluations=evaluations or None,
    )


def _evaluation(name: str, present: bool | None, why: str | None) -> hd.sr.QualitativeEvaluation:
    """present / absent; None (not assessable): undetermined (CID 240), with the reason as a Comment below it."""
    if present is not None:
        return hd.sr.QualitativeEvaluation(C.FINDING_CODES[name], C.PRESENT if present else C.ABSENT)
    ev = hd.sr.QualitativeEvaluation(C.FINDING_CODES[name], C.UNDETERMINED)
    ev[0].ContentSequence = hd.sr.ContentSequence([hd.sr.TextContentItem(
        name=C.COMMENT, value=why or "not assessable on the input's sequences",
        relationship_type=hd.sr.RelationshipTypeValues.HAS_PROPERTIES)])
    return ev


def _comment(item: Dataset) -> str:
    """The Comment TEXT under a content item ('' when there is none)."""
    for child in item.get("ContentSequence", []):
        if child.ValueType == "TEXT" and C.same(_code(child.ConceptNameCodeSequence[0]), C.COMMENT):
            return str(child.TextValue)
    return ""


def _narrative(text: str) -> hd.sr.ContainerContentItem:
    section = hd.sr.ContainerContentItem(name=pcodes.DCM.Findings,
                                         relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    section.ContentSequence = hd.sr.ContentSequence([hd.sr.TextContentItem(
        name=pcodes.DCM.Finding, value=text.strip() or "(empty report)",
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)])
    return section


def _with_type2(ds: Dataset) -> Dataset:
    """A copy whose patient/study type-2 attributes exist (empty when the source left them out)."""
    out = Dataset()
    out.update(ds)
    for key in _TYPE2:
        if key not in out:
            setattr(out, key, "")
    return out


def _code(item: Dataset) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning)


def _uid(*parts: str) -> str:
    return derived_uid("sr", *parts)
