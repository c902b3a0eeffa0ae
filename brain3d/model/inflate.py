"""Weight surgery, as pure functions: SigLIP's 2D patch embedding becomes a 3D tubelet embedding.

Two invariants make the inflated stem start where the 2D model is:
* colour: a grey volume (all C input channels equal to g) gives the activations of the 2D model on the grey
  image replicated into RGB. The 2D response to (g, g, g) is sum_rgb(W) * g, so each of the C input channels
  gets sum_rgb(W) / C.
* depth: on a volume that is constant along D, every tubelet gives the 2D response to that slice.
  'mean' spreads the kernel over the kd frames (W / kd each); 'center' puts all of it on frame kd // 2.
"""

from __future__ import annotations

import torch
from torch import nn

from brain3d.errors import ConfigError


def inflate_patch_weight(w2d: torch.Tensor, kernel_depth: int, in_channels: int, init: str = "mean") -> torch.Tensor:
    """(O, 3, p, p) 2D patch kernel -> (O, C, kd, p, p) 3D kernel (see the module docstring for why)."""
    if w2d.dim() != 4:
        raise ConfigError(f"a 2D patch kernel has 4 dimensions (O, C, p, p), got shape {tuple(w2d.shape)}")
    if kernel_depth < 1 or in_channels < 1:
        raise ConfigError(f"kernel_depth={kernel_depth} and in_channels={in_channels} must be >= 1")
    o, _, ph, pw = w2d.shape
    grey = w2d.sum(dim=1, keepdim=True) / in_channels  # (O, 1, p, p)
    per_channel = grey.expand(o, in_channels, ph, pw)  # (O, C, p, p)
    if init == "mean":
        return per_channel.unsqueeze(2).repeat(1, 1, kernel_depth, 1, 1) / kernel_depth  # (O, C, kd, p, p)
    if init == "center":
        w3d = torch.zeros(o, in_channels, kernel_depth, ph, pw, dtype=w2d.dtype, device=w2d.device)
        w3d[:, :, kernel_depth // 2] = per_channel
        return w3d
    raise ConfigError(f"inflate init {init!r} is not one of mean, center")


def inflate_patch_conv(
    conv2d: nn.Conv2d,
    kernel_depth: int = 2,
    depth_stride: int = 2,
    depth_padding: int = 0,
    in_channels: int = 1,
    init: str = "mean",
    dtype: torch.dtype = torch.float32,
) -> nn.Conv3d:
    """A Conv3d with kernel (kd, p, p), stride (sd, p, p), padding (pd, 0, 0), initialised from `conv2d`.

    The new stem is trainable (phase 1), so it is kept in `dtype` (float32) whatever the ViT's dtype."""
    ph, pw = conv2d.kernel_size
    if tuple(conv2d.stride) != (ph, pw):
        raise ConfigError(f"the 2D patch embedding has stride {conv2d.stride}, expected its kernel size {(ph, pw)}")
    conv3d = nn.Conv3d(
        in_channels, conv2d.out_channels, kernel_size=(kernel_depth, ph, pw), stride=(depth_stride, ph, pw),
        padding=(depth_padding, 0, 0), bias=conv2d.bias is not None, device=conv2d.weight.device, dtype=dtype,
    )
    with torch.no_grad():
        conv3d.weight.copy_(inflate_patch_weight(conv2d.weight.to(dtype), kernel_depth, in_channels, init))
        if conv2d.bias is not None:
            conv3d.bias.copy_(conv2d.bias.to(dtype))
    return conv3d


def patch_grid(
    image_size: tuple[int, int, int], patch_size: int, kernel_depth: int, depth_stride: int, depth_padding: int
) -> tuple[int, int, int]:
    """(Dp, Hp, Wp) tokens of the tubelet stem on a (D, H, W) volume (trailing pixels that do not fill a
    patch are dropped, as Conv3d does: 128 px with 14-px patches gives 9 patches)."""
    d, h, w = image_size
    dp = (d + 2 * depth_padding - kernel_depth) // depth_stride + 1
    hp, wp = h // patch_size, w // patch_size
    if dp < 1 or hp < 1 or wp < 1:
        raise ConfigError(
            f"image_size {tuple(image_size)} is too small for patch {patch_size} and kernel depth {kernel_depth}"
        )
    return dp, hp, wp
