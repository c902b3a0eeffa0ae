import numpy as np
import pytest

from brain3d.explain.fit import kernel_weights, weighted_ridge
from brain3d.explain.perturb import sample_masks


def test_matches_the_lime_package():
    """The closed form equals lime's LimeBase as LimeImageExplainer calls it (cosine distance, width 0.25,
    Ridge(alpha=1), all features)."""
    from functools import partial

    import sklearn.metrics
    from lime.lime_base import LimeBase
    from lime.lime_image import LimeImageExplainer

    masks = sample_masks(60, 9, seed=5)
    rng = np.random.default_rng(0)
    y = masks @ rng.normal(size=9) + 0.3 * rng.normal(size=60)
    distances = sklearn.metrics.pairwise_distances(masks, masks[0].reshape(1, -1), metric="cosine").ravel()
    explainer = LimeImageExplainer(random_state=0)  # its kernel: width 0.25
    base = LimeBase(explainer.base.kernel_fn, random_state=0)
    intercept, pairs, r2, local = base.explain_instance_with_data(masks, y[:, None], distances, 0, 9,
                                                                  feature_selection="none")
    coef = np.zeros(9)
    for i, w in pairs:
        coef[i] = w
    fit = weighted_ridge(masks, y, kernel_weights(masks, 0.25), alpha=1.0)
    np.testing.assert_allclose(fit.coef, coef, rtol=1e-8, atol=1e-10)
    assert fit.intercept == pytest.approx(intercept, rel=1e-8)
    assert fit.r2 == pytest.approx(r2, rel=1e-8)
    assert fit.local_pred == pytest.approx(float(np.ravel(local)[0]), rel=1e-8)
    np.testing.assert_allclose(kernel_weights(masks, 0.25), np.sqrt(np.exp(-distances**2 / 0.25**2)), atol=1e-12)


def test_recovers_a_planted_linear_score():
    masks = sample_masks(200, 6, seed=1)
    truth = np.array([0.0, 3.0, 0.0, -2.0, 0.0, 0.5])
    fit = weighted_ridge(masks, masks @ truth + 7.0, np.ones(200), alpha=1e-6)
    np.testing.assert_allclose(fit.coef, truth, atol=1e-5)
    assert fit.intercept == pytest.approx(7.0, abs=1e-5) and fit.r2 == pytest.approx(1.0)


def test_all_off_mask_has_distance_one():
    w = kernel_weights(np.array([[1, 1], [0, 0]]), 0.25)
    assert w[0] == 1.0 and w[1] == pytest.approx(np.sqrt(np.exp(-16.0)))
