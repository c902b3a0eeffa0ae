"""Tri-planar figures with anatomical markers (neurological convention: the patient's left on the left).

Every figure is drawn from model-axes arrays (D, H, W), so it shows exactly what the model sees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_triplanar(axes: Sequence, data: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0),
                   centre: Sequence[int] | None = None, overlay: np.ndarray | None = None,
                   title: str | None = None, cmap: str = "gray") -> None:
    """Draw axial, coronal and sagittal slices of a (D, H, W) array into three matplotlib axes."""
    d, h, w = data.shape
    cd, ch, cw = centre if centre is not None else (d // 2, h // 2, w // 2)
    sd, sh, sw = spacing
    vmin, vmax = np.percentile(data, [0.5, 99.5]) if data.size else (0, 1)
    views = [
        ("axial", data[cd], None if overlay is None else overlay[cd], sh / sw, ("L", "R", "P", "A")),
        ("coronal", data[:, ch, :], None if overlay is None else overlay[:, ch, :], sd / sw, ("L", "R", "I", "S")),
        ("sagittal", data[:, :, cw], None if overlay is None else overlay[:, :, cw], sd / sh, ("P", "A", "I", "S")),
    ]
    for ax, (name, img, ov, aspect, (left, right, bottom, top)) in zip(axes, views):
        ax.imshow(img, cmap=cmap, origin="lower", aspect=aspect, vmin=vmin, vmax=vmax, interpolation="nearest")
        if ov is not None and np.any(ov):
            ax.imshow(np.ma.masked_where(ov <= 0, ov), cmap="autumn", origin="lower", aspect=aspect, alpha=0.45,
                      interpolation="nearest")
        style = dict(color="yellow", fontsize=10, fontweight="bold", transform=ax.transAxes)
        ax.text(0.02, 0.5, left, ha="left", va="center", **style)
        ax.text(0.98, 0.5, right, ha="right", va="center", **style)
        ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **style)
        ax.text(0.5, 0.98, top, ha="center", va="top", **style)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{title} · {name}" if title and name == "axial" else name, fontsize=8)


def save_triplanar_png(panels: Sequence[tuple[str, np.ndarray, Sequence[float], np.ndarray | None]],
                       path: str | Path, dpi: int = 110) -> Path:
    """One row per (title, data (D, H, W), spacing, overlay-or-None) panel; written atomically as PNG."""
    import io

    from brain3d.fsutil import atomic_write_bytes

    plt = _mpl()
    fig, axes = plt.subplots(len(panels), 3, figsize=(9, 3 * len(panels)), squeeze=False)
    for row, (title, data, spacing, overlay) in zip(axes, panels):
        centre = None
        if overlay is not None and np.any(overlay):
            centre = tuple(int(round(c)) for c in np.argwhere(overlay > 0).mean(axis=0))
        draw_triplanar(row, data, spacing, centre=centre, overlay=overlay, title=title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
