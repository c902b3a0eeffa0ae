import math

import numpy as np
import pytest
import torch

from brain3d.errors import TrainingError
from brain3d.train.losses import symmetric_info_nce
from brain3d.train.schedule import lr_factor, warmup_steps_for


def test_lr_factor_warms_up_linearly_then_decays_by_cosine_to_min():
    total, warm = 20, 4
    f = [lr_factor(s, total, warm, min_ratio=0.1) for s in range(total)]
    assert f[:4] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert f[4] == pytest.approx(1.0)
    assert f[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(f[4:], f[5:]))  # monotone decay after warm-up
    mid = 4 + (total - 4 - 1) / 2
    assert lr_factor(int(mid), total, warm) == pytest.approx(0.5 * (1 + math.cos(math.pi * (int(mid) - 4) / 15)))


def test_lr_factor_edge_cases():
    assert lr_factor(0, 1, 0) == 1.0
    assert lr_factor(0, 1, 5) == 1.0  # warm-up clipped to the run
    assert warmup_steps_for(100, 0.05) == 5
    assert warmup_steps_for(3, 0.05) == 1
    assert warmup_steps_for(3, 0.0) == 0
    with pytest.raises(ValueError):
        lr_factor(0, 0, 0)


def _reference_info_nce(v, t, tau):
    v = torch.nn.functional.normalize(v, dim=-1)
    t = torch.nn.functional.normalize(t, dim=-1)
    logits = v @ t.T / tau
    target = torch.arange(len(v))
    return 0.5 * (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target))


def test_info_nce_matches_clip_loss_for_distinct_reports():
    g = torch.Generator().manual_seed(0)
    v, t = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    got = symmetric_info_nce(v, t, torch.arange(5), temperature=0.07)
    assert got.item() == pytest.approx(_reference_info_nce(v, t, 0.07).item(), rel=1e-5)


def test_info_nce_with_bank_uses_every_bank_row_as_candidate():
    g = torch.Generator().manual_seed(1)
    bank = torch.randn(6, 8, generator=g)
    ids = torch.tensor([4, 1])
    v = torch.randn(2, 8, generator=g)
    got = symmetric_info_nce(v, bank[ids], ids, temperature=0.5, bank=bank)
    vn, bn = torch.nn.functional.normalize(v, dim=-1), torch.nn.functional.normalize(bank, dim=-1)
    v2t = torch.nn.functional.cross_entropy(vn @ bn.T / 0.5, ids)
    t2v = torch.nn.functional.cross_entropy(bn[ids] @ vn.T / 0.5, torch.arange(2))
    assert got.item() == pytest.approx(0.5 * (v2t + t2v).item(), rel=1e-5)


def test_identical_reports_are_not_negatives_of_each_other():
    # two volumes with the same report, perfectly aligned with it, and a third aligned with another report
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    v = t.clone()
    ids = torch.tensor([0, 0, 1])
    with_dupes = symmetric_info_nce(v, t, ids, temperature=0.01)
    assert with_dupes.item() == pytest.approx(0.0, abs=1e-4)
    naive = symmetric_info_nce(v, t, torch.arange(3), temperature=0.01)
    assert naive.item() > 0.1  # treating the twin as a negative would penalise a perfect model


def test_batch_of_one_is_refused_even_with_a_bank():
    v, t = torch.randn(1, 4), torch.randn(1, 4)
    with pytest.raises(TrainingError, match="at least 2 volumes"):
        symmetric_info_nce(v, t, torch.tensor([0]))
    with pytest.raises(TrainingError, match="at least 2 volumes"):
        symmetric_info_nce(v, t, torch.tensor([0]), bank=torch.randn(5, 4))


def test_batch_with_only_identical_reports_is_refused_without_bank():
    v, t = torch.randn(3, 4), torch.randn(3, 4)
    with pytest.raises(TrainingError, match="no negatives"):
        symmetric_info_nce(v, t, torch.tensor([2, 2, 2]))
    # with a bank the volume->text direction has negatives again
    bank = torch.randn(4, 4)
    loss = symmetric_info_nce(v, t, torch.tensor([2, 2, 2]), bank=bank)
    # by hand: the text->volume half has only positives (zero); volume->text is the cross-entropy against bank row 2
    from scipy.special import logsumexp

    vn = v.numpy() / np.linalg.norm(v.numpy(), axis=1, keepdims=True)
    bn = bank.numpy() / np.linalg.norm(bank.numpy(), axis=1, keepdims=True)
    logits = vn @ bn.T / 0.07
    assert loss.item() == pytest.approx(0.5 * float(np.mean(logsumexp(logits, axis=1) - logits[:, 2])), rel=1e-5)


def test_info_nce_gradient_flows_to_volume_embedding():
    v = torch.randn(4, 8, requires_grad=True)
    t = torch.randn(4, 8)
    symmetric_info_nce(v, t, torch.arange(4)).backward()
    assert v.grad is not None and v.grad.abs().sum() > 0
