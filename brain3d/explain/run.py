"""Explain scans: read → preprocess → (greedy report) → target → supervoxels → batched perturbation → ridge fit →
maps, tables, grounding; one `Explanation` per scan.

`explain_scan` raises the package's errors for one scan; `explain_scans` turns them into an `Explanation` with
`error` set and goes on with the others, as `brain3d report` does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch

from brain3d.errors import Brain3DError
from brain3d.explain.config import ExplainConfig
from brain3d.explain.explanation import Explanation
from brain3d.explain.fit import kernel_weights, weighted_ridge
from brain3d.explain.maps import attribution_map, midline, supervoxel_table, top_supporting
from brain3d.explain.outputs import ExplanationLog, write_outputs
from brain3d.explain.perturb import fill_values, sample_masks, score_masks
from brain3d.explain.pointing import lesion_on_model_grid, pointing_scores
from brain3d.explain.supervoxels import brain_mask, slic_supervoxels
from brain3d.explain.targets import TargetScorer, build_target
from brain3d.orientation import spacing_of
from brain3d.reporting.inputs import ScanInput


def explain_scan(model, scan: ScanInput, cfg: ExplainConfig, out: Path | None = None,
                 report: str | None = None) -> Explanation:
    """Explain one scan with a loaded model (`eval.evaluate.load_model`); `report`: the model's greedy report when
    already generated. Writes the scan's files into `out` when given. Raises `Brain3DError` for this scan."""
    from brain3d.eval.evaluate import preprocess_for
    from brain3d.io import read_sequences
    from brain3d.preprocess import preprocess_volume

    t0 = time.perf_counter()
    vol = read_sequences(scan.paths, names=tuple(model.config.sequences), series_uid=scan.meta.get("series_uid"))
    mv = preprocess_volume(vol, preprocess_for(model))
    x = mv.tensor.to(model.device)  # (C, D, H, W)
    if report is None:
        report = model.generate(volumes=x[None], profile="greedy", max_new_tokens=cfg.max_new_tokens)[0]
    source = scan.paths[0] if scan.paths else scan.source  # errors name the scan's file, not e.g. its manifest
    target = build_target(cfg.target, report, model.tokenizer, model.layout, model.config.max_report_tokens, source)
    volume = mv.tensor.numpy()  # (C, D, H, W)
    brain = brain_mask(volume, cfg.mask_threshold)  # (D, H, W)
    labels = slic_supervoxels(volume, brain, cfg.segments, spacing_of(mv.affine), cfg.compactness, source)
    n = int(labels.max())
    masks = sample_masks(cfg.samples, n, cfg.seed)  # (N, S)
    labels_t = torch.from_numpy(labels).long().to(model.device)
    fill = fill_values(x, torch.from_numpy(brain).to(model.device), cfg.fill)  # (C,)
    scores = score_masks(TargetScorer(model, target), x, labels_t, masks, fill, cfg.batch)  # (N,)
    fit = weighted_ridge(masks, scores, kernel_weights(masks, cfg.kernel_width), cfg.alpha)
    plane = midline(volume, brain, mv.affine, source)
    table = supervoxel_table(labels, fit.coef, mv.affine, plane, cfg.lobes_from_mni)
    exp = Explanation(
        id=scan.id, target=cfg.target, input=list(scan.paths), report=report, words=target.words,
        description=target.description, score=float(scores[0]), weights=fit.coef, intercept=fit.intercept,
        r2=fit.r2, local_pred=fit.local_pred, supervoxels=table, top=top_supporting(table, cfg.top), labels=labels,
        map_model=attribution_map(labels, fit.coef), model_affine=mv.affine, orientation="".join(vol.orientation),
        settings={**cfg.to_dict(), "supervoxels": n, "model_grid": list(labels.shape),
                  "brain_voxels": int(brain.sum()), "fill_values": [round(float(v), 4) for v in fill.cpu()],
                  "midline": {"normal": [round(float(v), 4) for v in plane.normal], "offset_mm": round(plane.offset, 2)}},
    )
    if scan.meta.get("mask"):
        exp.pointing = _pointing(scan, exp, mv.affine, plane, volume)
    exp.seconds = time.perf_counter() - t0
    if out is not None:
        write_outputs(exp, vol, Path(out), cfg.png)
    return exp


def _pointing(scan: ScanInput, exp: Explanation, affine: np.ndarray, plane, volume: np.ndarray) -> dict:
    """Grounding of this explanation against the scan's lesion mask; the true side from the manifest's truth, or
    measured from the mask across the midline when the truth does not say."""
    from brain3d.data.truth import side_of
    from brain3d.io import Volume

    lesion = lesion_on_model_grid(scan.meta["mask"], affine, exp.labels.shape)
    true_side = (scan.truth or {}).get("side")
    if true_side is None and lesion.any():
        true_side = side_of(lesion, Volume(volume[0], affine, spacing_of(affine), ("R", "A", "S"), scan.source),
                            plane)[0]
    return pointing_scores(exp.labels, exp.weights, [r["side"] for r in exp.supervoxels], lesion, true_side)


def explain_scans(model, scans: Sequence[ScanInput], cfg: ExplainConfig, out: Path | None = None,
                  reports: Mapping[str, str] | None = None) -> Iterator[Explanation]:
    """One Explanation per scan, in order; a scan that fails yields its error and the others go on. With `out`,
    each scan's files are written and its line appended to `explanations.jsonl` as it finishes."""

    log = ExplanationLog(Path(out)) if out is not None else None
    for scan in scans:
        t0 = time.perf_counter()
        try:
            exp = explain_scan(model, scan, cfg, out, (reports or {}).get(scan.id))
        except Brain3DError as exc:
            exp = Explanation(id=scan.id, target=cfg.target, input=list(scan.paths), error=str(exc),
                              settings=cfg.to_dict(), seconds=time.perf_counter() - t0)
        if log is not None:
            log.append(exp)
        yield exp
