"""The local linear model of LIME: a kernel-weighted ridge regression of the scores on the on/off masks.

Equal, in closed form, to `lime.lime_base.LimeBase.explain_instance_with_data` as `LimeImageExplainer` calls it
(cosine distance to the unperturbed sample, kernel sqrt(exp(-d²/w²)) with w = 0.25, sklearn Ridge(alpha=1) with
an intercept, every feature kept, R² weighted); tests/explain/test_fit.py checks it against the lime package."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LinearFit:
    """coef (S,) per supervoxel; intercept; r2: weighted R² of the fit on its own samples; local_pred: the fit's
    value at the unperturbed scan (all on)."""

    coef: np.ndarray
    intercept: float
    r2: float
    local_pred: float


def kernel_weights(masks: np.ndarray, kernel_width: float = 0.25) -> np.ndarray:
    """(N,) LIME sample weights from the cosine distance of each mask (N, S) to the all-ones row."""
    x = np.asarray(masks, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1) * np.sqrt(x.shape[1])
    cos = np.divide(x.sum(axis=1), norms, out=np.zeros(len(x)), where=norms > 0)  # an all-off mask: distance 1
    d = 1.0 - cos
    return np.sqrt(np.exp(-(d**2) / kernel_width**2))


def weighted_ridge(x: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float = 1.0) -> LinearFit:
    """argmin_{β,b} Σ w_i (y_i − x_i·β − b)² + α|β|², as sklearn's Ridge with sample weights (intercept not
    penalised): centre x and y by their weighted means, solve the normal equations."""
    x, y, w = (np.asarray(a, dtype=np.float64) for a in (x, y, w))
    sw = w / w.sum()
    x_mean, y_mean = sw @ x, float(sw @ y)  # (S,), scalar
    xc, yc = x - x_mean, y - y_mean  # (N, S), (N,)
    gram = xc.T @ (w[:, None] * xc) + alpha * np.eye(x.shape[1])  # (S, S)
    coef = np.linalg.solve(gram, xc.T @ (w * yc))  # (S,)
    intercept = y_mean - float(x_mean @ coef)
    pred = x @ coef + intercept
    total = float(w @ (y - y_mean) ** 2)
    r2 = 1.0 - float(w @ (y - pred) ** 2) / total if total > 0 else 0.0
    return LinearFit(coef, intercept, r2, float(np.ones(x.shape[1]) @ coef + intercept))
