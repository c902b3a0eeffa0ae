"""The coded vocabulary shared by the DICOM SR and FHIR writers: one place that says which code means what.

Every code comes from DICOM PS3.16 as shipped in pydicom's code tables (`pydicom.sr.codedict.codes`), so the SR
and the FHIR bundle use the concepts the DICOM standard itself uses for the same job:

- laterality  CID 244 "Laterality": left SCT 7771000, right SCT 24028007, bilateral SCT 51440002.
- sites       CID 7151/9514 anatomic structures: frontal lobe SCT 83251001, parietal lobe SCT 16630005,
              temporal lobe SCT 78277001, occipital lobe SCT 31065004; cerebral hemisphere SCT 372073000 (a side
              without a lobe); brain SCT 12738006 (no side, no lobe).
- finding     TID 1501 finding type: lesion SCT 52988006 (the model reads FLAIR alone; "lesion" claims no
              histology), normal SCT 17621005 (CID 242) for a report that asserts no pathology.
- evaluations edema SCT 79654002 and necrosis SCT 6574001 (both from CID 7168/7169, the brain lesion segmentation
              types); compression SCT 71173004 (CID 3805, the ventricular compression of the report's fourth part).
              Enhancement: SNOMED CT has no contrast-enhancement concept in the DICOM SNOMED subset that pydicom
              carries, and none could be verified elsewhere, so no SNOMED number is made up: DICOM's own CID 7169
              uses NCIt C113842 "Enhancing Lesion" for exactly this, and so does brain3d.
- values      CID 240 "Present-Absent": present SCT 52101004, absent SCT 272519000, and undetermined SCT 373068000
              for a finding the input's sequences cannot show (`brain3d.vocabulary.assessable`: enhancement needs a
              post-contrast T1). CID 240 is the Present-Absent set of which CID 241 "Present-Absent Only" is the
              subset without "undetermined"; its reason rides along as a TEXT "Comment" (DCM 121106) by HAS
              PROPERTIES. In FHIR the same finding has no value but `dataAbsentReason` "not-performed" (the
              procedure that shows it, a post-contrast scan, was not read), with the reason as its text.
- procedure   LOINC 24590-2 "Brain MRI" (CID 646), in the SR (procedure reported) and as DiagnosticReport.code.

Present means the report asserts the finding; absent means the report negates it ("no necrosis"); a finding the
report does not mention gets no evaluation at all, because silence is not a negative finding. A finding the input
cannot show is undetermined whatever the report says, and always written, so a receiving system knows that the
study (as read) cannot answer it.
"""

from __future__ import annotations

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from brain3d.vocabulary import FINDINGS, mentions

SIDE_CODES: dict[str, Code] = {"left": codes.SCT.Left, "right": codes.SCT.Right, "bilateral": codes.SCT.Bilateral}
LOBE_CODES: dict[str, Code] = {
    "frontal": codes.SCT.FrontalLobe, "parietal": codes.SCT.ParietalLobe,
    "temporal": codes.SCT.TemporalLobe, "occipital": codes.SCT.OccipitalLobe,
}
HEMISPHERE = codes.SCT.CerebralHemisphere
BRAIN = codes.SCT.Brain
LESION = codes.SCT.Lesion
NORMAL = codes.SCT.Normal
FINDING_CODES: dict[str, Code] = {
    "edema": codes.SCT.Edema, "necrosis": codes.SCT.Necrosis,
    "enhancement": codes.NCIt.EnhancingLesion, "compression": codes.SCT.Compression,
}
PRESENT = codes.SCT.Present
ABSENT = codes.SCT.Absent
UNDETERMINED = codes.SCT.Undetermined
COMMENT = codes.DCM.Comment
LATERALITY = codes.SCT.Laterality
FINDING_SITE = codes.SCT.FindingSite
FINDING = codes.DCM.Finding
PROCEDURE = codes.LN.BrainMRI

# FHIR system URIs of the coding schemes above (HL7 terminology registry).
FHIR_SYSTEMS: dict[str, str] = {
    "SCT": "http://snomed.info/sct",
    "DCM": "http://dicom.nema.org/resources/ontology/DCM",
    "NCIt": "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl",
    "LN": "http://loinc.org",
}
DATA_ABSENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
NOT_PERFORMED = {"system": DATA_ABSENT_SYSTEM, "code": "not-performed", "display": "Not Performed"}


def same(a, b) -> bool:
    """Whether two codes (pydicom Code or highdicom CodedConcept) are the same concept (scheme + value)."""
    return (a.scheme_designator, a.value) == (b.scheme_designator, b.value)


def evaluations(findings: dict, text: str) -> dict[str, bool | None]:
    """Finding -> True (asserted), False (negated in `text`) or None (not assessable on the input: always listed);
    assessable findings the report does not mention are left out.

    `findings` is the record's negation-aware extraction (a `Findings` dump, where null means not assessable);
    the negated mentions come from the same extractor."""
    negated = {m.keyword for m in mentions(text) if m.negated}
    out: dict[str, bool | None] = {}
    for f in FINDINGS:
        if f in findings and findings[f] is None:
            out[f] = None
        elif findings.get(f) or f in negated:
            out[f] = bool(findings.get(f))
    return out


def reasons(findings: dict) -> dict[str, str]:
    """Finding -> why it is not assessable, from a `Findings` dump's `not_assessable` list."""
    return {n["finding"]: n["reason"] for n in findings.get("not_assessable") or []}
