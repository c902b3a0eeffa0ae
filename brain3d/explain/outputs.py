"""What an explanation leaves on disk, per scan: `<id>_lime.nii.gz` (the map on the scan's own stored grid and
affine: it opens over the original scan in 3D Slicer / ITK-SNAP / nilearn, left stays left), `<id>_lime.png`
(tri-planar red/blue overlay on a symmetric scale, L/R/A/P/S/I marked as `brain3d inspect` marks them),
`<id>_lime.json` (weights, supervoxels, fit, settings) and one line of `explanations.jsonl`.

All three files are rendered in memory first and each is written atomically; the jsonl line is appended only after
them, so an interrupted or failed scan leaves no half-written output and a rerun redoes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brain3d.fsutil import append_jsonl, atomic_write_bytes, atomic_write_json, atomic_write_jsonl, read_jsonl
from brain3d.io import Volume, nifti_bytes
from brain3d.orientation import world_to_index
from brain3d.explain.explanation import Explanation
from brain3d.explain.maps import attribution_map, labels_on_grid
from brain3d.reporting.inputs import safe_name

JSONL = "explanations.jsonl"
SUFFIXES = {"nifti": "_lime.nii.gz", "png": "_lime.png", "json": "_lime.json"}


def native_map(exp: "Explanation", vol: Volume) -> np.ndarray:
    """The attribution map on the scan's own grid, in model axes (D, H, W) at the scan's resolution."""
    return attribution_map(labels_on_grid(exp.labels, exp.model_affine, vol.affine, vol.shape), exp.weights)


def render_png(exp: "Explanation", vol: Volume, amap: np.ndarray, dpi: int = 100) -> bytes:
    """Tri-planar PNG of the scan (first sequence) with the signed map, cut through the top supervoxel."""
    from brain3d.viz import _mpl, draw_triplanar, figure_png

    background = vol.data if vol.data.ndim == 3 else vol.data[0]  # (D, H, W)
    focus = exp.top[0] if exp.top else max(exp.supervoxels, key=lambda r: abs(r["weight"]))
    centre = np.clip(np.rint(world_to_index(vol.affine, np.asarray(focus["centroid_mm"]))).astype(int), 0,
                     np.asarray(vol.shape) - 1)
    limit = float(np.max(np.abs(exp.weights))) or 1.0
    plt = _mpl()
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
    shown = draw_triplanar(axes, background, vol.spacing, centre=tuple(centre), overlay=amap,
                           title=f"{exp.id} · LIME {exp.target}" + (f" ({', '.join(exp.words[:3])})"
                                                                if exp.words and exp.words != (exp.target,) else ""),
                           overlay_limit=limit)
    if shown is not None:
        bar = fig.colorbar(shown, ax=list(axes), fraction=0.025, pad=0.02)
        bar.set_label("red: supports · blue: against", fontsize=7)
    fig.text(0.01, 0.01, f"R² {exp.r2:.2f} · {exp.settings.get('samples')} samples · "
                         f"{len(exp.weights)} supervoxels · stored {exp.orientation}", fontsize=7)
    return figure_png(fig, dpi)


def output_paths(out: Path, scan_id: str) -> dict[str, Path]:
    return {k: Path(out) / f"{safe_name(scan_id)}{suffix}" for k, suffix in SUFFIXES.items()}


def write_outputs(exp: "Explanation", vol: Volume, out: Path, png: bool = True) -> dict[str, Path]:
    """Write the NIfTI map (the scan's stored grid and affine), the PNG (when `png`) and the JSON of one scan."""
    paths = output_paths(out, exp.id)
    amap = native_map(exp, vol)  # (D, H, W) model axes, scan resolution
    blobs = {"nifti": nifti_bytes(amap, vol.affine, gz=True, stored_as=vol.orientation)}
    if png:
        blobs["png"] = render_png(exp, vol, amap)
    files = {k: paths[k] for k in blobs} | {"json": paths["json"]}
    exp.files = files
    for key, blob in blobs.items():
        atomic_write_bytes(paths[key], blob)
    atomic_write_json(paths["json"], exp.to_dict())
    return files


class ExplanationLog:
    """`explanations.jsonl` of an output folder: one line per explained (or failed) scan, resumable."""

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / JSONL

    def rows(self) -> list[dict]:
        return read_jsonl(self.path) if self.path.is_file() else []

    def done(self, target: str) -> dict[str, dict]:
        """Rows of scans already explained successfully for `target` (the latest per id)."""
        return {r["id"]: r for r in self.rows() if not r.get("error") and r.get("target") == target}

    def append(self, exp: "Explanation") -> None:
        append_jsonl(self.path, exp.row())

    def compact(self) -> None:
        """One line per (id, target), the latest (a retried scan that failed before)."""
        rows = self.rows()
        if rows:
            latest = {(r["id"], r.get("target")): r for r in rows}
            atomic_write_jsonl(self.path, list(latest.values()))
