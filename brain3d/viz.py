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


# plane → (model axis it cuts, edge labels (left, right, bottom, top) when drawn with row 0 at the bottom)
PLANES: dict[str, tuple[int, tuple[str, str, str, str]]] = {
    "axial": (0, ("L", "R", "P", "A")),
    "coronal": (1, ("L", "R", "I", "S")),
    "sagittal": (2, ("P", "A", "I", "S")),
}


def plane_slice(data: np.ndarray, plane: str, index: int) -> np.ndarray:
    """The 2D cut of a (D, H, W) array at `index` along the plane's axis; row 0 is the bottom edge
    (posterior for axial, inferior otherwise), column 0 the left edge (patient left, or posterior for sagittal)."""
    axis = PLANES[plane][0]
    return np.take(data, int(np.clip(index, 0, data.shape[axis] - 1)), axis=axis)


def plane_aspect(spacing: Sequence[float], plane: str) -> float:
    """Height / width of one displayed pixel of a plane's slice (row spacing over column spacing), in mm."""
    rows, cols = [s for i, s in enumerate(spacing) if i != PLANES[plane][0]]
    return rows / cols


def signed_cmap():
    """Blue-white-red whose opacity grows with |value|: weak attributions leave the anatomy visible."""
    import matplotlib
    from matplotlib.colors import ListedColormap

    colours = matplotlib.colormaps["bwr"](np.linspace(0.0, 1.0, 256))  # (256, 4) RGBA
    colours[:, 3] = 0.85 * np.abs(np.linspace(-1.0, 1.0, 256)) ** 0.6
    return ListedColormap(colours)


def draw_triplanar(axes: Sequence, data: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0),
                   centre: Sequence[int] | None = None, overlay: np.ndarray | None = None,
                   title: str | None = None, cmap: str = "gray", overlay_limit: float | None = None):
    """Draw axial, coronal and sagittal slices of a (D, H, W) array into three matplotlib axes.

    The overlay is a mask (positive voxels in warm colours) or, with `overlay_limit`, a signed map drawn red
    (positive) / blue (negative) on the symmetric scale ±overlay_limit with zeros transparent (attribution maps).
    Returns the last overlay image drawn (for a colour bar), or None."""
    shown = None
    centre = centre if centre is not None else tuple(n // 2 for n in data.shape)
    vmin, vmax = np.percentile(data, [0.5, 99.5]) if data.size else (0, 1)
    for ax, (name, (axis, (left, right, bottom, top))) in zip(axes, PLANES.items()):
        img = plane_slice(data, name, centre[axis])
        ov = None if overlay is None else plane_slice(overlay, name, centre[axis])
        aspect = plane_aspect(spacing, name)
        ax.imshow(img, cmap=cmap, origin="lower", aspect=aspect, vmin=vmin, vmax=vmax, interpolation="nearest")
        if ov is not None and overlay_limit is not None:
            shown = ax.imshow(np.ma.masked_where(ov == 0, ov), cmap=signed_cmap(), origin="lower", aspect=aspect,
                              vmin=-overlay_limit, vmax=overlay_limit, interpolation="nearest")
        elif ov is not None and np.any(ov):
            shown = ax.imshow(np.ma.masked_where(ov <= 0, ov), cmap="autumn", origin="lower", aspect=aspect,
                              alpha=0.45, interpolation="nearest")
        style = dict(color="yellow", fontsize=10, fontweight="bold", transform=ax.transAxes)
        ax.text(0.02, 0.5, left, ha="left", va="center", **style)
        ax.text(0.98, 0.5, right, ha="right", va="center", **style)
        ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **style)
        ax.text(0.5, 0.98, top, ha="center", va="top", **style)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{title} · {name}" if title and name == "axial" else name, fontsize=8)
    return shown


def save_triplanar_png(panels: Sequence[tuple[str, np.ndarray, Sequence[float], np.ndarray | None]],
                       path: str | Path, dpi: int = 110) -> Path:
    """One row per (title, data (D, H, W), spacing, overlay-or-None) panel; written atomically as PNG."""
    from brain3d.fsutil import atomic_write_bytes

    plt = _mpl()
    fig, axes = plt.subplots(len(panels), 3, figsize=(9, 3 * len(panels)), squeeze=False)
    for row, (title, data, spacing, overlay) in zip(axes, panels):
        centre = None
        if overlay is not None and np.any(overlay):
            centre = tuple(int(round(c)) for c in np.argwhere(overlay > 0).mean(axis=0))
        draw_triplanar(row, data, spacing, centre=centre, overlay=overlay, title=title)
    fig.tight_layout()
    return atomic_write_bytes(path, figure_png(fig, dpi))


def figure_png(fig, dpi: int = 110) -> bytes:
    """A matplotlib figure as PNG bytes; the figure is closed."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    _mpl().close(fig)
    return buf.getvalue()
