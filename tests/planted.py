"""Tiny planted stand-ins for a Brain3D model whose behaviour is known by construction (shared by several test
modules): one reads the lesion's side from the image, one reads only whether there is a lesion, one ignores its
image. They have the surface the report runner, evaluation, the image-reliance diagnostics and the service use
(`generate`, `encode_volume`, `visual_tokens`, `device`, `config`, `checkpoint_extra`), so a test can tell what a
correct pipeline must produce without trusting any of the code under test.

A side reader calls the patient's left what the model-axes convention says is left (low W, `orientation.py`): a
scan whose bright blob lies at world x < 0 (read through the file's own affine) must come back "left", and its
left-right mirror "right". Every volume a model is handed is kept in `seen`, so a test can compare it with the
preprocessing it expects.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

LEFT_REPORT = "A lesion in the left frontal lobe with surrounding edema."
RIGHT_REPORT = "A lesion in the right frontal lobe with surrounding edema."
MIDLINE_REPORT = "A lesion crossing the midline."
NORMAL_REPORT = "No abnormality is seen."


class Planted(torch.nn.Module):
    """The common surface; subclasses decide the report from the features of `encode_volume`."""

    def __init__(self, image_size=(16, 32, 32), sequences=("flair",), extra: dict | None = None) -> None:
        super().__init__()
        self.config = SimpleNamespace(image_size=list(image_size), sequences=list(sequences), num_tokens=2,
                                      max_report_tokens=48)
        self.checkpoint_extra = extra or {}
        self.seen: list[torch.Tensor] = []

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def encode_volume(self, volumes: torch.Tensor) -> torch.Tensor:
        """(B, C, D, H, W) -> (B, 2, 1): the number of bright voxels (>= 90% of the volume's maximum, first channel)
        in the low-W half (patient's left) and in the high-W half."""
        self.seen.extend(v.detach().cpu().clone() for v in volumes)
        x = volumes[:, 0].float()  # (B, D, H, W)
        peak = x.flatten(1).max(dim=1).values.view(-1, 1, 1, 1)
        bright = (x >= 0.9 * peak).float()
        half = x.shape[-1] // 2
        left, right = bright[..., :half].flatten(1).sum(1), bright[..., x.shape[-1] - half:].flatten(1).sum(1)
        return torch.stack([left, right], dim=1)[..., None]  # (B, 2, 1)

    def visual_tokens(self, features: torch.Tensor) -> torch.Tensor:
        return features.float()  # (B, K=2, 1)

    def report(self, left: float, right: float) -> str:
        raise NotImplementedError

    @torch.no_grad()
    def generate(self, volumes: torch.Tensor | None = None, features: torch.Tensor | None = None,
                 profile: str = "greedy", max_new_tokens: int = 256, min_new_tokens: int = 10,
                 seed: int | None = None) -> list[str]:
        feats = self.encode_volume(volumes) if features is None else features
        return [self.report(float(f[0, 0]), float(f[1, 0])) for f in feats]


class SideReader(Planted):
    """Names the side holding at least two thirds of the bright voxels; an even spread reads as no lesion."""

    def report(self, left: float, right: float) -> str:
        share = left / (left + right) if left + right else 0.5
        if share >= 2 / 3:
            return LEFT_REPORT
        if share <= 1 / 3:
            return RIGHT_REPORT
        return NORMAL_REPORT


class PresenceReader(Planted):
    """Reads whether its image has a compact bright spot, but always calls it left: it uses the image, not the side."""

    def report(self, left: float, right: float) -> str:
        return LEFT_REPORT if 0 < left + right < 0.1 * self.voxels else NORMAL_REPORT

    def encode_volume(self, volumes: torch.Tensor) -> torch.Tensor:
        self.voxels = float(volumes[0, 0].numel())
        return super().encode_volume(volumes)


class ImageBlind(Planted):
    """Writes one template whatever it is shown: the failure the image-reliance diagnostics exist to catch."""

    def report(self, left: float, right: float) -> str:
        return LEFT_REPORT
