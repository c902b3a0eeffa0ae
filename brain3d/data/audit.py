"""The shortcut audit: can healthy and pathological scans be told apart by things that are not the lesion?

If a classifier separates the classes from background statistics, brain size and shape, the intensity
histogram of the hemisphere without lesion, or header fields (spacing, shape, orientation, datatype), a
report model can learn the class from the acquisition instead of the anatomy (the reference code's
path-dependent preprocessing made exactly such a shortcut). Image features are measured on the tensor the
model sees (`preprocess_volume` with the run config's settings), plus the raw background level.

Classifier: a random forest (100 trees, seeded; one decisive feature among many noisy ones is found, where a
regularised linear model dilutes it — measured), stratified 5-fold cross-validation (seeded), AUROC of the
out-of-fold scores with a 95% percentile-bootstrap CI (1000 resamples). Above WARN_AUROC the audit warns
and names the strongest feature (highest single-feature AUROC, direction-free).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from brain3d.data.manifest import Record
from brain3d.errors import ManifestError
from brain3d.fsutil import stable_int
from brain3d.preprocess import PreprocessConfig

WARN_AUROC = 0.7
FOLDS = 5
BOOTSTRAP = 1000
TREES = 100
HIST_BINS = 8
IMAGE_FEATURES = (
    "background_level", "background_std", "tensor_background_mean", "brain_ml", "brain_extent_x_mm",
    "brain_extent_y_mm", "brain_extent_z_mm", "brain_fraction_of_tensor", "brain_centre_d", "brain_centre_h",
    "brain_centre_w", *(f"hemisphere_hist_{i}" for i in range(HIST_BINS)),
)
HEADER_FEATURES = ("spacing_min_mm", "spacing_max_mm", "voxels", "fov_d_mm", "fov_h_mm", "fov_w_mm")


@dataclass
class Measured:
    """One subject's features and the descriptive fields of the per-source tables."""

    id: str
    healthy: bool
    source: str
    numeric: dict[str, float]
    orientation: str
    dtype: str
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    intensity: tuple[float, float, float, float]  # raw min, p1, p99, max
    extra: dict = field(default_factory=dict)


def measure(rec: Record, cfg: PreprocessConfig, sequence: str | None = None) -> Measured:
    """Features of one subject (first sequence of the record unless `sequence` names one)."""
    import torch
    from scipy import ndimage as ndi

    from brain3d.io import read_volume
    from brain3d.orientation import index_to_world
    from brain3d.preprocess import preprocess_volume, resize

    path = rec.images[sequence] if sequence else next(iter(rec.images.values()))
    vol = read_volume(path)
    data = vol.data
    bg = float(np.median(_border(data)))
    brain = np.abs(data - bg) > 1e-6 * max(1.0, float(np.abs(data).max()))
    if not brain.any():
        brain = np.ones_like(data, dtype=bool)
    vals = data[brain]
    p1, p99 = (float(v) for v in np.percentile(vals, [1, 99]))
    scale = max(abs(p99 - bg), 1e-6)
    lesion = _lesion(rec, data.shape)
    model = preprocess_volume(vol, cfg).tensor[0].numpy()  # (D, H, W) in [0, 1]
    brain_t = resize(torch.from_numpy(brain.astype(np.float32))[None], cfg.size)[0].numpy() > 0.5
    lesion_t = (resize(torch.from_numpy(lesion.astype(np.float32))[None], cfg.size)[0].numpy() > 0.0
                if lesion is not None else np.zeros(cfg.size, dtype=bool))
    if lesion is not None:
        lesion_t = ndi.binary_dilation(lesion_t, iterations=2)
    idx = np.argwhere(brain)
    world = index_to_world(vol.affine, idx[:: max(1, len(idx) // 50_000)].astype(np.float64))
    extent = world.max(axis=0) - world.min(axis=0)
    centre = np.argwhere(brain_t).mean(axis=0) / np.asarray(cfg.size) if brain_t.any() else np.full(3, 0.5)
    hist = _hemisphere_hist(model, brain_t, lesion_t, rec)
    numeric = {
        "background_level": bg / scale,
        "background_std": float(np.std(_border(data))) / scale,
        "tensor_background_mean": float(model[~brain_t].mean()) if (~brain_t).any() else 0.0,
        "brain_ml": float(brain.sum()) * float(np.prod(vol.spacing)) / 1000.0,
        "brain_extent_x_mm": float(extent[0]),
        "brain_extent_y_mm": float(extent[1]),
        "brain_extent_z_mm": float(extent[2]),
        "brain_fraction_of_tensor": float(brain_t.mean()),
        "brain_centre_d": float(centre[0]),
        "brain_centre_h": float(centre[1]),
        "brain_centre_w": float(centre[2]),
        **{f"hemisphere_hist_{i}": float(h) for i, h in enumerate(hist)},
        "spacing_min_mm": float(min(vol.spacing)),
        "spacing_max_mm": float(max(vol.spacing)),
        "voxels": float(np.prod(data.shape)),
        "fov_d_mm": float(data.shape[0] * vol.spacing[0]),
        "fov_h_mm": float(data.shape[1] * vol.spacing[1]),
        "fov_w_mm": float(data.shape[2] * vol.spacing[2]),
    }
    return Measured(
        id=rec.id, healthy=rec.healthy, source=rec.source or ("healthy" if rec.healthy else "pathological"),
        numeric=numeric, orientation="".join(vol.orientation), dtype=_dtype(path), shape=tuple(data.shape),
        spacing=tuple(round(s, 3) for s in vol.spacing), intensity=(float(data.min()), p1, p99, float(data.max())),
    )


def feature_matrix(rows: list[Measured]) -> tuple[np.ndarray, list[str], list[str]]:
    """(X, names, group of each column: 'image' or 'header'); orientation and datatype one-hot."""
    names = list(IMAGE_FEATURES) + list(HEADER_FEATURES)
    groups = ["image"] * len(IMAGE_FEATURES) + ["header"] * len(HEADER_FEATURES)
    cols = [[r.numeric[n] for n in names] for r in rows]
    for attr in ("orientation", "dtype"):
        levels = sorted({getattr(r, attr) for r in rows})
        for level in levels:
            names.append(f"{attr}={level}")
            groups.append("header")
            for c, r in zip(cols, rows):
                c.append(float(getattr(r, attr) == level))
    return np.asarray(cols, dtype=np.float64), names, groups


def cv_auroc(x: np.ndarray, y: np.ndarray, seed: int = 42) -> tuple[float, float, float]:
    """Cross-validated AUROC of a random forest and its 95% bootstrap CI."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    clf = RandomForestClassifier(n_estimators=TREES, min_samples_leaf=2, random_state=seed, n_jobs=1)
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    scores = cross_val_predict(clf, x, y, cv=folds, method="predict_proba")[:, 1]
    rng = np.random.default_rng(stable_int("audit-bootstrap", seed))
    boots = []
    for _ in range(BOOTSTRAP):
        i = rng.integers(0, len(y), len(y))
        if y[i].min() != y[i].max():
            boots.append(auroc(y[i], scores[i]))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return auroc(y, scores), float(lo), float(hi)


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula, ties counted half."""
    from scipy.stats import rankdata

    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    ranks = rankdata(score)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def single_feature_auroc(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Direction-free AUROC of each column alone (0.5 = useless, 1 = separates the classes)."""
    out = np.full(x.shape[1], 0.5)
    for j in range(x.shape[1]):
        if np.ptp(x[:, j]) > 0:
            a = auroc(y, x[:, j])
            out[j] = max(a, 1.0 - a)
    return out


def run_audit(records: list[Record], cfg: PreprocessConfig, sequence: str | None = None, seed: int = 42,
              progress: Callable[[], None] | None = None) -> dict:
    """The whole audit as a JSON-ready dict (AUROCs, strongest features, warning, per-source tables)."""
    n_h = sum(r.healthy for r in records)
    if min(n_h, len(records) - n_h) < FOLDS:
        raise ManifestError(f"the audit needs at least {FOLDS} healthy and {FOLDS} pathological subjects "
                            f"(has {n_h} and {len(records) - n_h})")
    rows = []
    for rec in records:
        rows.append(measure(rec, cfg, sequence))
        if progress:
            progress()
    x, names, groups = feature_matrix(rows)
    y = np.array([0 if r.healthy else 1 for r in rows])
    auc, lo, hi = cv_auroc(x, y, seed)
    single = single_feature_auroc(x, y)
    by_group = {}
    for g in ("image", "header"):
        cols = [j for j, gg in enumerate(groups) if gg == g]
        a, l, h = cv_auroc(x[:, cols], y, seed)
        by_group[g] = {"auroc": a, "ci95": [l, h]}
    order = np.argsort(-single, kind="stable")
    strongest = [{"feature": names[j], "group": groups[j], "auroc_alone": float(single[j])} for j in order[:5]]
    warning = None
    if auc > WARN_AUROC:
        top = strongest[0]
        warning = (f"healthy and pathological scans can be told apart without the lesion (cross-validated AUROC "
                   f"{auc:.2f}, 95% CI {lo:.2f}-{hi:.2f}); strongest feature: {top['feature']} "
                   f"(AUROC {top['auroc_alone']:.2f} alone)")
    return {
        "subjects": len(rows), "healthy": n_h, "pathological": len(rows) - n_h,
        "preprocess": cfg.to_dict(), "auroc": auc, "ci95": [lo, hi], "by_group": by_group,
        "strongest": strongest, "warning": warning, "warn_above": WARN_AUROC,
        "features": {n: float(s) for n, s in zip(names, single)},
        "sources": source_tables(rows),
    }


def source_tables(rows: list[Measured]) -> dict[str, dict]:
    """Per source: counts of spacing, shape, orientation and datatype, and the raw intensity range."""
    by: dict[str, list[Measured]] = defaultdict(list)
    for r in rows:
        by[r.source].append(r)
    out = {}
    for source in sorted(by):
        rs = by[source]
        inten = np.array([r.intensity for r in rs])
        out[source] = {
            "subjects": len(rs),
            "healthy": sum(r.healthy for r in rs),
            "spacing": _counts("x".join(f"{s:g}" for s in r.spacing) for r in rs),
            "shape": _counts("x".join(str(s) for s in r.shape) for r in rs),
            "orientation": _counts(r.orientation for r in rs),
            "dtype": _counts(r.dtype for r in rs),
            "intensity": {"min": float(inten[:, 0].min()), "p1_median": float(np.median(inten[:, 1])),
                          "p99_median": float(np.median(inten[:, 2])), "max": float(inten[:, 3].max())},
        }
    return out


def markdown(result: dict) -> str:
    """A human-readable summary of `run_audit`'s result."""
    lines = ["# Shortcut audit", "",
             f"{result['subjects']} subjects ({result['healthy']} healthy, {result['pathological']} pathological); "
             f"features on the preprocessed tensor {result['preprocess']['size']} "
             f"(nonzero percentiles: {result['preprocess']['nonzero']}).", "",
             f"**Cross-validated AUROC (healthy vs pathological, no lesion features): {result['auroc']:.3f} "
             f"(95% CI {result['ci95'][0]:.3f}-{result['ci95'][1]:.3f})**", ""]
    lines.append(f"> warning: {result['warning']}" if result["warning"] else
                 f"No shortcut found: AUROC ≤ {result['warn_above']}.")
    lines += ["", "| features | AUROC | 95% CI |", "|---|---|---|"]
    for g, v in result["by_group"].items():
        lines.append(f"| {g} only | {v['auroc']:.3f} | {v['ci95'][0]:.3f}-{v['ci95'][1]:.3f} |")
    lines += ["", "Strongest single features:", "", "| feature | group | AUROC alone |", "|---|---|---|"]
    lines += [f"| {s['feature']} | {s['group']} | {s['auroc_alone']:.3f} |" for s in result["strongest"]]
    for source, t in result["sources"].items():
        lines += ["", f"## Source: {source} ({t['subjects']} subjects, {t['healthy']} healthy)", "",
                  "| field | values (count) |", "|---|---|"]
        for key, label in (("spacing", "spacing mm (D×H×W)"), ("shape", "shape (D×H×W)"),
                           ("orientation", "stored orientation"), ("dtype", "datatype")):
            lines.append(f"| {label} | {', '.join(f'{k} ({v})' for k, v in t[key].items())} |")
        i = t["intensity"]
        lines.append(f"| intensity | min {i['min']:g}, median p1 {i['p1_median']:g}, "
                     f"median p99 {i['p99_median']:g}, max {i['max']:g} |")
    return "\n".join(lines) + "\n"


def _counts(values) -> dict[str, int]:
    return dict(Counter(values).most_common(6))


def _border(data: np.ndarray) -> np.ndarray:
    """The voxels of the volume's six outer faces (where any scan holds background)."""
    return np.concatenate([data[[0, -1]].ravel(), data[:, [0, -1]].ravel(), data[:, :, [0, -1]].ravel()])


def _lesion(rec: Record, shape: tuple[int, ...]) -> np.ndarray | None:
    if not rec.mask:
        return None
    from brain3d.io import read_volume

    seg = read_volume(rec.mask)
    return seg.data > 0 if seg.data.shape == shape else None


def _hemisphere_hist(model: np.ndarray, brain: np.ndarray, lesion: np.ndarray, rec: Record) -> np.ndarray:
    """Intensity histogram (fractions) of the hemisphere without lesion, lesion voxels left out.

    The hemispheres are split at the brain's centre along W (the model's left→right axis). The side: the one
    holding less lesion (by the mask, else the truth's other side); a healthy subject's is fixed by its id.
    """
    w = np.arange(model.shape[2])[None, None, :]
    mid = np.argwhere(brain)[:, 2].mean() if brain.any() else model.shape[2] / 2
    halves = (brain & (w < mid), brain & (w >= mid))
    if lesion.any():
        pick = int((lesion & halves[1]).sum() < (lesion & halves[0]).sum())
    elif rec.truth is not None and rec.truth.side in ("left", "right"):
        pick = 1 if rec.truth.side == "left" else 0
    else:
        pick = stable_int("audit-hemisphere", rec.id) % 2
    region = halves[pick] & ~lesion
    hist, _ = np.histogram(model[region], bins=HIST_BINS, range=(0.0, 1.0))
    return hist / max(1, hist.sum())


def _dtype(path: str) -> str:
    """The stored datatype from a NIfTI header (the header only; other formats report 'n/a')."""
    if not str(path).lower().endswith((".nii", ".nii.gz")):
        return "n/a"
    import nibabel as nib

    try:
        return str(nib.load(str(path)).header.get_data_dtype())
    except Exception:  # the image itself was read fine above; a header quirk only loses this one field
        return "n/a"
