"""`brain3d inspect` and `brain3d preprocess`: how a user checks that a scan is read the right way round.

The scan readers (torch, nibabel, SimpleITK) are imported inside the commands, so that `--help` and usage
errors answer at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from brain3d.errors import VolumeError


def inspect_volume(path: Path, series_uid: str | None = None, volume_index: int | None = None) -> dict:
    """Header and intensity facts of a scan, as read into model axes."""
    import numpy as np

    from brain3d.io import read_volume

    vol = read_volume(path, series_uid=series_uid, volume_index=volume_index)
    x = vol.data
    centre_world = (vol.affine @ np.array([*(np.array(vol.shape) - 1) / 2.0, 1.0]))[:3]
    return {
        "source": vol.source,
        "stored_orientation": "".join(vol.orientation),
        "model_axes": "D=inferior→superior, H=posterior→anterior, W=left→right",
        "shape_dhw": list(vol.shape),
        "spacing_mm_dhw": [round(s, 4) for s in vol.spacing],
        "extent_mm_dhw": [round(s * n, 2) for s, n in zip(vol.spacing, vol.shape)],
        "centre_world_ras_mm": [round(float(c), 2) for c in centre_world],
        "intensity": {
            "min": float(x.min()), "max": float(x.max()), "mean": float(x.mean()), "std": float(x.std()),
            "p1": float(np.percentile(x, 1)), "p99": float(np.percentile(x, 99)),
            "nonzero_fraction": float(np.count_nonzero(x) / x.size),
        },
    }


def register(app: typer.Typer) -> None:
    @app.command()
    def inspect(
        volume: Path = typer.Argument(..., help="NIfTI file, DICOM series folder, NRRD or MHA file."),
        json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
        png: Optional[Path] = typer.Option(None, "--png", help="Write a tri-planar preview with L/R/A/P/S/I markers."),
        series_uid: Optional[str] = typer.Option(None, "--series-uid", help="DICOM series to read from a folder."),
        volume_index: Optional[int] = typer.Option(None, "--volume-index", help="Volume of a 4D file."),
    ) -> None:
        """Show shape, spacing, stored orientation and intensity statistics of a scan."""
        info = inspect_volume(volume, series_uid, volume_index)
        if png is not None:
            from brain3d.io import read_volume
            from brain3d.viz import save_triplanar_png

            vol = read_volume(volume, series_uid=series_uid, volume_index=volume_index)
            save_triplanar_png([(volume.name, vol.data, vol.spacing, None)], png)
            info["png"] = str(png)
        if json_out:
            typer.echo(json.dumps(info, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"brain3d inspect · {volume}", show_header=False)
        for key, value in info.items():
            if key == "intensity":
                value = ", ".join(f"{k}={v:.4g}" for k, v in value.items())
            table.add_row(key, str(value))
        Console().print(table)

    @app.command()
    def preprocess(
        volumes: list[Path] = typer.Argument(..., help="One file per sequence (e.g. FLAIR T1 T1ce T2) of ONE subject."),
        out: Path = typer.Option(..., "--out", help="Output NIfTI (.nii or .nii.gz), RAS affine."),
        size: tuple[int, int, int] = typer.Option((64, 128, 128), "--size", help="Target D H W."),
        low: float = typer.Option(1.0, help="Lower percentile mapped to 0."),
        high: float = typer.Option(99.0, help="Upper percentile mapped to 1."),
        nonzero: bool = typer.Option(False, help="Compute percentiles over nonzero voxels only."),
        scaling: str = typer.Option("percentile", help="Intensity scaling: percentile (low/high -> 0/1) or median "
                                                        "(the median -> 0.5, clipped)."),
        series_uid: Optional[str] = typer.Option(None, "--series-uid"),
        volume_index: Optional[int] = typer.Option(None, "--volume-index"),
    ) -> None:
        """Write the model-space volume (what the model sees) as NIfTI, to open in Slicer / ITK-SNAP."""
        from brain3d.io import write_nifti
        from brain3d.preprocess import PreprocessConfig, load_for_model

        if not out.name.endswith((".nii", ".nii.gz")):
            raise VolumeError("output must end in .nii or .nii.gz", out)
        cfg = PreprocessConfig(size=tuple(size), low=low, high=high, nonzero=nonzero, scaling=scaling)
        mv = load_for_model(volumes, cfg, series_uid=series_uid, volume_index=volume_index)
        data = mv.tensor.numpy()
        write_nifti(data[0] if data.shape[0] == 1 else data, mv.affine, out)
        typer.echo(f"wrote {out}  shape (C,D,H,W)={tuple(data.shape)}  stored orientation {''.join(mv.orientation)} → RAS")
