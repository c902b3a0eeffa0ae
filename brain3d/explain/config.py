"""Settings of one explanation run (what is explained, how many perturbations, how they are fitted)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from brain3d.errors import ConfigError

FILLS = ("median", "zero")
TARGET_KINDS = ("report", "side", "lobes", "findings")


@dataclass(frozen=True)
class ExplainConfig:
    """3D LIME over SLIC supervoxels.

    target: 'report' (−NLL of the model's own greedy report, the paper's score), 'side', 'lobes', 'findings', or
    any other text = a phrase of the report. samples: perturbed volumes (the first is the scan itself); segments:
    SLIC supervoxels asked for inside the brain mask; batch: perturbed volumes per forward pass. fill: what a
    switched-off supervoxel becomes — 'median' (the brain's median intensity: "what if this looked like ordinary
    tissue"), or 'zero' (the reference code's hide colour 0). kernel_width / alpha: LIME's image defaults (an
    exponential kernel of width 0.25 on the cosine distance to the unperturbed sample; ridge alpha 1).
    lobes_from_mni: the scans' world coordinates are MNI mm (phantoms, registered scans), so a supervoxel's lobe
    can be named from its centroid; otherwise the lobe is left unknown."""

    target: str = "report"
    samples: int = 100
    segments: int = 20
    batch: int = 16
    seed: int = 42
    compactness: float = 0.1
    mask_threshold: float = 0.02
    fill: str = "median"
    kernel_width: float = 0.25
    alpha: float = 1.0
    max_new_tokens: int = 256
    top: int = 5
    lobes_from_mni: bool = False
    png: bool = True

    def __post_init__(self) -> None:
        if not self.target.strip():
            raise ConfigError("the explanation target is empty; give report, side, lobes, findings or a phrase")
        if self.samples < 2:
            raise ConfigError(f"LIME needs at least 2 samples, got {self.samples}")
        if self.segments < 2:
            raise ConfigError(f"LIME needs at least 2 supervoxels, got {self.segments}")
        if self.batch < 1:
            raise ConfigError(f"batch must be at least 1, got {self.batch}")
        if self.fill not in FILLS:
            raise ConfigError(f"fill {self.fill!r} is not one of {', '.join(FILLS)}")

    @property
    def method(self) -> str:
        """How the weights were fitted, stated in every output."""
        return (f"weighted ridge (alpha {self.alpha:g}, intercept) on binary supervoxel masks, sample weights "
                f"sqrt(exp(-d^2 / {self.kernel_width:g}^2)) of the cosine distance d to the unperturbed scan: "
                "lime.lime_base.LimeBase with LimeImageExplainer's defaults, in closed form")

    def to_dict(self) -> dict:
        return {**asdict(self), "method": self.method}
