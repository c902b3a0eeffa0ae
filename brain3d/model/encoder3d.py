"""Encoder3D: a pretrained SigLIP ViT that reads a 3D volume through an inflated tubelet stem.

The transformer blocks and the final LayerNorm are the 2D model's, unchanged (frozen in every phase);
what is new is the stem (inflated Conv3d) and the position embedding over the (Dp, Hp, Wp) token grid.
"""

from __future__ import annotations

import torch
from torch import nn

from brain3d.errors import ConfigError
from brain3d.model.inflate import inflate_patch_conv, patch_grid
from brain3d.model.posembed import reference_pos_code, resample_pos_table

# SigLIP's image processor normalises every channel with mean 0.5 and std 0.5: (x - 0.5) / 0.5.
SIGLIP_MEAN = 0.5
SIGLIP_STD = 0.5


class Encoder3D(nn.Module):
    """(B, C, D, H, W) volume in [0, 1] -> (B, N, dv) patch features, N = Dp * Hp * Wp in (d, h, w) order.

    vit: a transformers `SiglipVisionModel`; its dimensions come from its config.
    pos_embed 'pretrained': the ViT's 2D table resampled to (Hp, Wp) (a fixed buffer) + a zero-initialised
    learnable depth embedding (Dp, dv), so at initialisation each slice sees the 2D model's positions.
    pos_embed 'reference': the reference code's fixed linspace code, no parameters.
    """

    def __init__(
        self,
        vit: nn.Module,
        in_channels: int = 1,
        image_size: tuple[int, int, int] = (64, 128, 128),
        kernel_depth: int = 2,
        depth_stride: int = 2,
        depth_padding: int = 0,
        inflate_init: str = "mean",
        pos_embed: str = "pretrained",
    ) -> None:
        super().__init__()
        self.vit = vit
        emb = vit.embeddings
        self.image_size = tuple(image_size)
        self.in_channels = in_channels
        self.patch_size = int(vit.config.patch_size)
        self.dim = int(vit.config.hidden_size)
        self.grid = patch_grid(self.image_size, self.patch_size, kernel_depth, depth_stride, depth_padding)
        dp, hp, wp = self.grid
        self.stem = inflate_patch_conv(
            emb.patch_embedding, kernel_depth, depth_stride, depth_padding, in_channels, inflate_init
        )
        self.pos_embed = pos_embed
        if pos_embed == "pretrained":
            spatial = resample_pos_table(emb.position_embedding.weight.detach().float(), (hp, wp))  # (Hp*Wp, dv)
            self.register_buffer("spatial_pos", spatial, persistent=False)
            self.depth_pos = nn.Parameter(torch.zeros(dp, self.dim, device=spatial.device))  # (Dp, dv)
        elif pos_embed == "reference":
            code = reference_pos_code(self.grid, self.dim).to(emb.patch_embedding.weight.device)
            self.register_buffer("fixed_pos", code, persistent=False)  # (N, dv)
            self.depth_pos = None
        else:
            raise ConfigError(f"pos_embed {pos_embed!r} is not one of pretrained, reference")

    @property
    def num_tokens(self) -> int:
        dp, hp, wp = self.grid
        return dp * hp * wp

    def position_embedding(self) -> torch.Tensor:
        """(N, dv) float32 position embedding of the token grid."""
        if self.depth_pos is None:
            return self.fixed_pos
        dp, hp, wp = self.grid
        pos = self.depth_pos[:, None, :] + self.spatial_pos[None, :, :]  # (Dp, Hp*Wp, dv)
        return pos.reshape(dp * hp * wp, self.dim)

    def embed(self, volumes: torch.Tensor) -> torch.Tensor:
        """Stem + position: (B, C, D, H, W) in [0, 1] -> (B, N, dv) float32 tokens."""
        expected = (self.in_channels, *self.image_size)
        if volumes.dim() != 5 or tuple(volumes.shape[1:]) != expected:
            raise ConfigError(
                f"the encoder expects volumes of shape (B, {', '.join(map(str, expected))}), got {tuple(volumes.shape)}"
            )
        x = (volumes.to(self.stem.weight.device, torch.float32) - SIGLIP_MEAN) / SIGLIP_STD
        tokens = self.stem(x)  # (B, dv, Dp, Hp, Wp)
        tokens = tokens.flatten(2).transpose(1, 2)  # (B, N, dv)
        return tokens + self.position_embedding()

    def forward(self, volumes: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(volumes)  # (B, N, dv) float32
        vit_dtype = self.vit.post_layernorm.weight.dtype
        hidden = self.vit.encoder(inputs_embeds=tokens.to(vit_dtype)).last_hidden_state  # (B, N, dv)
        return self.vit.post_layernorm(hidden)
