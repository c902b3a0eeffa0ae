import torch

from brain3d.model.projector import Projector, RunningStandardizer


def test_standardizer_learns_statistics_in_training_only():
    torch.manual_seed(0)
    norm = RunningStandardizer(num_tokens=3, dim=4)
    data = torch.randn(400, 3, 4) * 0.1 + 5.0  # a big common part, a small spread: what encoders give
    norm.train()
    for batch in data.split(8):
        norm(batch)
    torch.testing.assert_close(norm.mean, data.mean(0), atol=0.02, rtol=0)
    torch.testing.assert_close(norm.var.sqrt(), data.std(0), atol=0.02, rtol=0.1)
    norm.eval()
    before = norm.mean.clone()
    out = norm(data[:50])
    assert torch.equal(norm.mean, before)  # eval never updates
    assert abs(float(out.mean())) < 0.3 and 0.7 < float(out.std()) < 1.3


def test_standardizer_ignores_batches_of_one_and_starts_as_identity():
    norm = RunningStandardizer(2, 3).train()
    x = torch.randn(1, 2, 3)
    torch.testing.assert_close(norm(x), x / (1 + 1e-5) ** 0.5)
    assert float(norm.count) == 0


def test_projector_standardised_tokens_separate_what_differs():
    """Two inputs that differ by 1% of their magnitude give clearly different soft tokens after training stats."""
    torch.manual_seed(0)
    proj = Projector(8, 16, feature_norm="running", num_tokens=2).train()
    base = torch.full((2, 8), 10.0)
    batch = base + 0.1 * torch.randn(64, 2, 8)
    proj(batch)
    proj.eval()
    a, b = proj(batch[:1]), proj(batch[1:2])
    plain = Projector(8, 16, feature_norm="none", num_tokens=2).eval()
    plain.load_state_dict({k: v for k, v in proj.state_dict().items() if not k.startswith("feature_norm")})
    cos = torch.nn.functional.cosine_similarity
    assert float(cos(a.flatten(), b.flatten(), dim=0)) < 0.9
    assert float(cos(plain(batch[:1]).flatten(), plain(batch[1:2]).flatten(), dim=0)) > 0.99


def test_feature_statistics_are_saved_with_the_checkpoint(tiny_models, tmp_path):
    from brain3d.model.brain3d import Brain3D
    from brain3d.twin.tiny import tiny_config

    model = Brain3D.build(tiny_config(tiny_models))
    with torch.no_grad():
        model.projector.feature_norm.mean.normal_()
        model.projector.feature_norm.var.uniform_(0.5, 2.0)
        model.projector.feature_norm.count.fill_(7)
    model.save_pretrained(tmp_path / "ckpt")
    back = Brain3D.from_pretrained(tmp_path / "ckpt")
    for name in ("mean", "var", "count"):
        assert torch.equal(getattr(back.projector.feature_norm, name), getattr(model.projector.feature_norm, name))
