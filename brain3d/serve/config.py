"""The service's settings, one dataclass: where it listens, who may use it, what it accepts, how it batches."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from brain3d.errors import ConfigError

MB = 1024 * 1024
TOKEN_ENV = "BRAIN3D_SERVE_TOKEN"
MIN_TOKEN_CHARS = 16
INSECURE_FLAG = "--insecure-no-token"


@dataclass(frozen=True)
class ServeConfig:
    """How `brain3d serve` runs.

    max_upload_mb: cap on one request body; MRI needs far more than web defaults (TorchServe's 6.5 MB): a
    4-sequence BraTS case is 30-100 MB. zip_factor: how much larger a zip may unpack than the cap (DICOM compresses
    2-4x); anything beyond is refused as a zip bomb. queue_size: requests admitted at once (uploading, waiting or
    generating); one more gets 503 + Retry-After, so memory stays bounded. max_wait_ms: how long the batcher waits
    to fill a batch once a request is there. explain_queue_size: `?explain=` requests admitted at once, on their own
    lane (one worker, CPU niceness raised by explain_nice) so that plain reports never wait behind an explanation.
    drain_timeout_s: after SIGTERM/SIGINT, how long admitted requests may take to finish before they are answered
    503. token: the bearer token every endpoint but the probes and the page's static files requires (never printed);
    insecure_no_token: the user's explicit choice to listen beyond loopback without one."""

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
    explain_queue_size: int = 2
    explain_nice: int = 10
    drain_timeout_s: float = 25.0
    token: str | None = field(default=None, repr=False)
    insecure_no_token: bool = False

    def __post_init__(self) -> None:
        for name in ("max_upload_mb", "batch", "queue_size", "views", "zip_factor", "max_zip_members",
                     "explain_queue_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"serve setting {name} must be at least 1")
        if not 0 <= self.explain_nice <= 19:
            raise ConfigError(f"serve setting explain_nice must be 0..19, got {self.explain_nice}")
        if self.drain_timeout_s < 0:
            raise ConfigError(f"serve setting drain_timeout_s must not be negative, got {self.drain_timeout_s}")
        if self.token is not None and len(self.token) < MIN_TOKEN_CHARS:
            raise ConfigError(f"the serve token has {len(self.token)} characters; use at least {MIN_TOKEN_CHARS} "
                              "(e.g. `openssl rand -hex 32`)")
        if not is_loopback(self.host) and self.token is None and not self.insecure_no_token:
            raise ConfigError(f"listening on {self.host} would let anyone who can reach this machine upload scans and "
                              f"read reports; give a token with --token-file or {TOKEN_ENV}, listen on 127.0.0.1 "
                              f"behind a proxy, or pass {INSECURE_FLAG} to accept that")
        if self.explain_samples < 2:
            raise ConfigError(f"LIME needs at least 2 samples, got explain_samples={self.explain_samples}")
        if self.profile not in ("greedy", "paper"):
            raise ConfigError(f"profile must be greedy or paper, not {self.profile!r}")

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * MB


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine only: 'localhost' or a loopback address (127.0.0.0/8, ::1). Any other name
    may resolve to an address others can reach."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token(path: Path) -> str:
    """The token in a file (surrounding whitespace dropped); one sentence naming the file when it cannot serve."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the token file ({getattr(exc, 'strerror', None) or type(exc).__name__})",
                          path) from None
    if not token:
        raise ConfigError("the token file is empty", path)
    if any(c.isspace() or not c.isprintable() for c in token):
        raise ConfigError("the token must be one line of printable characters without spaces", path)
    return token
