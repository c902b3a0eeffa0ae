"""The service's settings, one dataclass: where it listens, what it accepts, how it batches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from brain3d.errors import ConfigError

MB = 1024 * 1024


@dataclass(frozen=True)
class ServeConfig:
    """How `brain3d serve` runs.

    max_upload_mb: cap on one request body; MRI needs far more than web defaults (TorchServe's 6.5 MB): a
    4-sequence BraTS case is 30-100 MB. zip_factor: how much larger a zip may unpack than the cap (DICOM compresses
    2-4x); anything beyond is refused as a zip bomb. queue_size: requests admitted at once (uploading, waiting or
    generating); one more gets 503 + Retry-After, so memory stays bounded. max_wait_ms: how long the batcher waits
    to fill a batch once a request is there."""

    checkpoint: Path
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_mb: int = 512
    zip_factor: int = 4
    max_zip_members: int = 5000
    batch: int = 8
    queue_size: int = 32
    max_wait_ms: int = 25
    device: str = "auto"
    profile: str = "greedy"
    max_new_tokens: int = 256
    vision_model: Path | None = None
    language_model: Path | None = None
    load_4bit: bool = False
    explain_samples: int = 100  # LIME samples per `?explain=side` request (each one a model run)
    phantoms: Path | None = None  # a manifest whose scans the page offers as ready-made examples
    views: int = 8  # page views (slices, volume, overlay) kept in memory, oldest dropped first
    tmp_root: Path | None = None  # parent of the private upload folder (default: the system's temp folder)

    def __post_init__(self) -> None:
        for name in ("max_upload_mb", "batch", "queue_size", "views", "zip_factor", "max_zip_members"):
            if getattr(self, name) < 1:
                raise ConfigError(f"serve setting {name} must be at least 1")
        if self.explain_samples < 2:
            raise ConfigError(f"LIME needs at least 2 samples, got explain_samples={self.explain_samples}")
        if self.profile not in ("greedy", "paper"):
            raise ConfigError(f"profile must be greedy or paper, not {self.profile!r}")

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * MB
