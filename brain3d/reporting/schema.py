"""The documented record `brain3d report` writes per scan (JSON; schema in docs/report.schema.json)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

SCHEMA_VERSION = 1


class Findings(BaseModel):
    """What the generated report asserts, read by the evaluation's negation-aware extractor."""

    side: Literal["left", "right", "bilateral"] | None = Field(None, description="Lesion side stated in the report.")
    lobes: list[str] = Field(default_factory=list, description="Lobes named (frontal/parietal/temporal/occipital).")
    edema: bool = False
    necrosis: bool = False
    enhancement: bool = False
    compression: bool = False
    pathology: bool = Field(False, description="Whether the report asserts any pathology at all.")


class ReportRecord(BaseModel):
    """One scan's result. `error` is set (and `report` empty) when the scan could not be read or reported."""

    schema_version: int = SCHEMA_VERSION
    id: str
    input: list[str] = Field(description="Sequence files or DICOM folder, in the checkpoint's sequence order.")
    orientation: str | None = Field(None, description="Axis codes stored in the input header, e.g. LPS.")
    checkpoint: str
    profile: Literal["greedy", "paper"]
    report: str = ""
    findings: Findings | None = None
    laterality_consistent: bool | None = Field(
        None, description="With --mirror-check: whether the side flips when the scan is mirrored left-right.")
    mirrored_report: str | None = None
    mirrored_side: Literal["left", "right", "bilateral"] | None = None
    reference: str | None = Field(None, description="Reference report, when the input was a manifest.")
    seconds: float = Field(0.0, description="Wall time for this scan (reading, preprocessing, its share of generation).")
    error: str | None = None
