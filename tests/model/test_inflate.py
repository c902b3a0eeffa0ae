"""Weight inflation and position tables: the 3D stem starts exactly where the 2D model is."""

import pytest
import torch
from torch import nn

from brain3d.errors import ConfigError
from brain3d.model.inflate import inflate_patch_conv, inflate_patch_weight, patch_grid
from brain3d.model.posembed import reference_pos_code, resample_pos_table, sincos_3d


def _conv2d(patch: int = 4, out: int = 8) -> nn.Conv2d:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, out, patch, stride=patch)
    nn.init.normal_(conv.weight)
    nn.init.normal_(conv.bias)
    return conv


@pytest.mark.parametrize("init", ["mean", "center"])
@pytest.mark.parametrize("channels", [1, 3])
def test_depth_constant_volume_matches_2d_stem_on_the_grey_slice(init, channels):
    conv2d = _conv2d()
    conv3d = inflate_patch_conv(conv2d, kernel_depth=2, depth_stride=2, depth_padding=0, in_channels=channels, init=init)
    grey = torch.rand(2, 1, 16, 12)  # (B, 1, H, W)
    volume = grey.unsqueeze(2).expand(2, channels, 6, 16, 12)  # (B, C, D, H, W), constant along D
    out3d = conv3d(volume)  # (B, O, Dp, Hp, Wp)
    out2d = conv2d(grey.expand(2, 3, 16, 12))  # grey image replicated into RGB
    assert out3d.shape == (2, 8, 3, 4, 3)
    for d in range(out3d.shape[2]):
        torch.testing.assert_close(out3d[:, :, d], out2d, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kd", [1, 2, 3, 4])
def test_inflated_kernel_sums_to_the_grey_2d_kernel(kd):
    w2d = torch.randn(5, 3, 4, 4)
    for init in ("mean", "center"):
        w3d = inflate_patch_weight(w2d, kd, in_channels=2, init=init)
        assert w3d.shape == (5, 2, kd, 4, 4)
        torch.testing.assert_close(w3d.sum(dim=(1, 2)), w2d.sum(dim=1))
    centre = inflate_patch_weight(w2d, kd, 1, "center")
    assert torch.count_nonzero(centre.sum(dim=(0, 1, 3, 4))) == 1


def test_unknown_init_and_bad_shape_are_config_errors():
    with pytest.raises(ConfigError):
        inflate_patch_weight(torch.randn(5, 3, 4, 4), 2, 1, "edge")
    with pytest.raises(ConfigError):
        inflate_patch_weight(torch.randn(5, 4, 4), 2, 1)


def test_patch_grid_token_counts_of_the_paper():
    assert patch_grid((64, 128, 128), 14, 2, 2, 0) == (32, 9, 9)  # 2,592 tokens
    assert patch_grid((64, 128, 128), 14, 2, 1, 1) == (65, 9, 9)  # 5,265 tokens (reference)
    with pytest.raises(ConfigError):
        patch_grid((1, 8, 8), 14, 2, 2, 0)


def test_resampling_the_table_to_its_own_grid_is_the_identity():
    table = torch.randn(16 * 16, 12)
    torch.testing.assert_close(resample_pos_table(table, (16, 16)), table, rtol=0, atol=1e-6)
    torch.testing.assert_close(resample_pos_table(table, (16, 16), antialias=False), table, rtol=0, atol=1e-6)


def test_resampled_table_keeps_orientation_and_smooth_content():
    # A table that increases along rows (H) and is constant along columns (W) keeps that after resampling.
    g = 32
    rows = torch.linspace(-1, 1, g).reshape(g, 1, 1).expand(g, g, 4).reshape(g * g, 4)
    out = resample_pos_table(rows, (9, 9)).reshape(9, 9, 4)
    assert torch.all(out[1:, :, 0] > out[:-1, :, 0])
    torch.testing.assert_close(out[:, 0], out[:, -1])
    with pytest.raises(ConfigError):
        resample_pos_table(torch.randn(10, 4), (3, 3))


def test_reference_code_and_sincos_shapes():
    code = reference_pos_code((3, 2, 2), 8)
    assert code.shape == (12, 8)
    assert code[0, 5] == -1 and code[-1, 5] == 1  # depth linspace in every channel
    s = sincos_3d((2, 3, 4), 20)
    assert s.shape == (24, 20)
    assert len({tuple(r.tolist()) for r in s}) == 24  # every position gets its own code
