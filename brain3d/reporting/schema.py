"""The documented record `brain3d report` writes per scan (JSON; schema in docs/report.schema.json)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

SCHEMA_VERSION = 2  # 2: findings may be null (not assessable on the input's sequences); sequences, not_assessable

FindingName = Literal["edema", "necrosis", "enhancement", "compression"]
_TRI_STATE = ("true: the report asserts it; false: it does not (negated or not mentioned); null: not assessable "
              "on the sequences the model read, whatever the report says (see not_assessable).")


class NotAssessable(BaseModel):
    """A finding the input cannot show (`brain3d.vocabulary.assessable`): the record states no value for it."""

    finding: FindingName
    needs: list[str] = Field(description="Sequences any one of which would make it assessable (canonical names).")
    reason: str = Field(description="One sentence for a reader, naming what the model read.")


class Findings(BaseModel):
    """What the generated report asserts, read by the evaluation's negation-aware extractor, limited to what the
    input can show: a finding whose sequence was not given is null and listed in `not_assessable`."""

    side: Literal["left", "right", "bilateral"] | None = Field(None, description="Lesion side stated in the report.")
    lobes: list[str] = Field(default_factory=list, description="Lobes named (frontal/parietal/temporal/occipital).")
    edema: bool | None = Field(False, description=_TRI_STATE)
    necrosis: bool | None = Field(False, description=_TRI_STATE)
    enhancement: bool | None = Field(False, description=_TRI_STATE)
    compression: bool | None = Field(False, description=_TRI_STATE)
    pathology: bool = Field(False, description="Whether the report asserts any pathology the input can show.")
    not_assessable: list[NotAssessable] = Field(
        default_factory=list, description="Findings the input's sequences cannot show (each null above), with why.")


class SupportingRegion(BaseModel):
    """One supervoxel of a side explanation (3D LIME; `brain3d explain`)."""

    label: int = Field(description="Supervoxel label in the explanation's map.")
    weight: float = Field(description="LIME weight: how much this region raises the score of the written side.")
    side: Literal["left", "right"] = Field(description="Hemisphere of its centroid (midsagittal plane).")
    centroid_mm: list[float] = Field(description="Centroid in world RAS mm.")
    volume_ml: float
    lobe: str | None = None


class SideExplanation(BaseModel):
    """With --explain: why the report names its side: log p(side word) − log p(mirror word), explained by 3D LIME."""

    word: str | None = Field(None, description="The side word explained (the report's first left/right).")
    score: float | None = Field(None, description="log p(word) − log p(mirror word) at that position, unperturbed.")
    r2: float | None = Field(None, description="Weighted R² of the LIME fit.")
    top_supporting: list[SupportingRegion] = Field(default_factory=list,
                                                   description="Supporting supervoxels, strongest first.")
    map: str | None = Field(None, description="File name of the attribution map (NIfTI, the scan's own grid).")
    error: str | None = Field(None, description="Why there is no explanation (e.g. the report names no side).")

    @classmethod
    def of(cls, exp) -> "SideExplanation":
        """The record's view of a side `brain3d.explain.Explanation` (shared by `report --explain` and serve)."""
        nifti = exp.files.get("nifti")
        return cls(word=exp.words[0], score=exp.score, r2=exp.r2, map=nifti.name if nifti else None,
                   top_supporting=[SupportingRegion(**{k: r[k] for k in SupportingRegion.model_fields})
                                   for r in exp.top])


class ReportRecord(BaseModel):
    """One scan's result. `error` is set (and `report` empty) when the scan could not be read or reported."""

    schema_version: int = SCHEMA_VERSION
    id: str
    input: list[str] = Field(description="Sequence files or DICOM folder, in the checkpoint's sequence order.")
    orientation: str | None = Field(None, description="Axis codes stored in the input header, e.g. LPS.")
    checkpoint: str
    sequences: list[str] | None = Field(
        None, description="MRI sequences the model read (the checkpoint's input channels, canonical names, e.g. "
                          "['flair']); null in records written before schema 2.")
    profile: Literal["greedy", "paper"]
    report: str = Field("", description="The report text exactly as the model wrote it (never edited).")
    findings: Findings | None = None
    asserts_unassessable: list[FindingName] = Field(
        default_factory=list, description="Findings the report text asserts as present although the input cannot "
                                          "show them (e.g. ['enhancement'] for a FLAIR-only model): statements to "
                                          "distrust.")
    negates_unassessable: list[FindingName] = Field(
        default_factory=list, description="Findings the report text states as absent although the input cannot show "
                                          "them ('no enhancement' on FLAIR says as little as 'enhancement').")
    laterality_consistent: bool | None = Field(
        None, description="With --mirror-check: whether the side flips when the scan is mirrored left-right.")
    mirrored_report: str | None = None
    mirrored_side: Literal["left", "right", "bilateral"] | None = None
    reference: str | None = Field(None, description="Reference report, when the input was a manifest.")
    seconds: float = Field(0.0, description="Wall time for this scan (reading, preprocessing, its share of generation).")
    explanation: SideExplanation | None = Field(None, description="With --explain: the side explanation.")
    error: str | None = None
