"""`brain3d tiny-models`: write stand-ins of MedSigLIP and MedGemma: the tiny random twin for tests and the demo,
or random-weight folders at the real models' widths (`--widths paper`) for checking the paper profile;
`brain3d twin-assets` (hidden): rebuild the warmed-up twin weights the package ships."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

WIDTHS = ("tiny", "paper")


def register(app: typer.Typer) -> None:
    @app.command("tiny-models")
    def tiny_models(
        out_dir: Path = typer.Argument(..., help="Folder to write; gets vision/ (SiglipModel) and language/ (Gemma-3)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the random weights and of the tokenizer corpus."),
        widths: str = typer.Option(
            "tiny", "--widths",
            help="tiny: the small twin (64 wide). paper: MedSigLIP-448 and MedGemma-1.5-4B-IT as published (1152 and "
                 "2560 wide, 262,208-token vocabulary, sharded bf16 safetensors under the real key names), random "
                 "weights, --layers deep."),
        layers: Optional[int] = typer.Option(
            None, "--layers", min=1,
            help="With --widths paper: layers per tower (2 = ~2.3 GB on disk; default: the published 27 + 34, ~9 GB)."),
        warm_vision: int = typer.Option(
            0, "--warm-vision", min=0,
            help="Then warm the vision tower up for this many steps on captioned slices of separate phantoms "
                 "(brain3d.twin.vision_pretrain; ~1500 steps take 2 min on one CPU thread). 0: leave it random."),
        pretrained: bool = typer.Option(
            False, "--pretrained",
            help="Warm both up as the demo and `brain3d train` do (LM: report language + findings prefix; tower: "
                 "3D tissue read-out on phantom volumes), for the tiny profile's grid. For --seed 42 the shipped "
                 "weights are loaded (seconds); other seeds are computed (minutes)."),
    ) -> None:
        """Write random-initialised SigLIP and Gemma-3 checkpoints plus a tokenizer: tiny, or at the paper's widths."""
        from brain3d.twin.tiny import describe

        if widths not in WIDTHS:
            raise typer.BadParameter(f"--widths must be one of {', '.join(WIDTHS)}, not {widths!r}")
        if widths == "paper":
            if pretrained or warm_vision:
                raise typer.BadParameter("--pretrained and --warm-vision are for the tiny twin; --widths paper "
                                         "writes random weights")
            from brain3d.twin.paper import make_paper_models

            typer.echo(json.dumps(describe(make_paper_models(out_dir, layers=layers, seed=seed)), indent=2))
            return
        if layers is not None:
            raise typer.BadParameter("--layers is for --widths paper; the tiny twin has its own depth")
        if pretrained:
            from brain3d.train.config import load_config
            from brain3d.twin.pretrained import make_pretrained_twin

            model = load_config("tiny").brain3d_config("tiny", "tiny")
            paths = make_pretrained_twin(out_dir, seed, model.image_size, model.kernel_depth, model.depth_stride,
                                         progress=True)
        else:
            from brain3d.twin.tiny import make_tiny_models

            paths = make_tiny_models(out_dir, seed=seed)
        info = describe(paths)
        if warm_vision:
            from brain3d.twin.vision_pretrain import VisionWarmup, pretrain_vision_model

            summary = pretrain_vision_model(paths["vision"], VisionWarmup(steps=warm_vision, seed=seed), progress=True)
            info["vision"]["warm_up"] = {k: v for k, v in summary.items() if k != "config"}
        typer.echo(json.dumps(info, indent=2))

    @app.command("twin-assets", hidden=True)
    def twin_assets() -> None:
        """Maintainers: rebuild the shipped twin weights (brain3d/twin/assets/) for the tiny profile's seed and grid."""
        import shutil
        import tempfile

        import torch

        from brain3d.train.config import load_config
        from brain3d.twin.assets import ASSET_DIR
        from brain3d.twin.pretrained import TwinRecipe, make_pretrained_twin

        torch.set_num_threads(1)
        cfg = load_config("tiny")
        model = cfg.brain3d_config("tiny", "tiny")
        for old in ASSET_DIR.glob("*.safetensors"):
            old.unlink()
        with tempfile.TemporaryDirectory() as tmp:
            make_pretrained_twin(Path(tmp) / "twin", cfg.seed, model.image_size, model.kernel_depth, model.depth_stride,
                                 TwinRecipe(), progress=True, export=True)
        typer.echo("\n".join(sorted(p.name for p in ASSET_DIR.glob("*.safetensors"))))
        shutil.rmtree(ASSET_DIR / "__pycache__", ignore_errors=True)
