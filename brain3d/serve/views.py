"""What the page shows of a reported scan, kept in memory (never on disk) and dropped oldest-first.

A view holds the scan in model axes at its own resolution as 8-bit grey (what a screen shows), its world affine,
and optionally an attribution overlay on the same grid. Slices are rendered on request as PNGs in the neurological
convention of `brain3d.viz` (patient left on the left), stretched to true millimetre proportions; the whole
volume (and overlay) is served as RAS NIfTI for an interactive viewer.
"""

from __future__ import annotations

import io
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from brain3d.io import Volume, nifti_bytes, resample_array
from brain3d.viz import PLANES, plane_aspect, plane_slice

MIN_SIDE_PX = 256  # small grids (a 2 mm phantom) are enlarged to at least this many pixels along their long side


@dataclass
class View:
    """One scan as the page sees it: grey (D, H, W) uint8, affine (model index → world RAS mm), spacing (mm),
    overlay (D, H, W) float32 in [-1, 1] or None (positive: supports the explained words; negative: against)."""

    grey: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    orientation: str
    overlay: np.ndarray | None = None

    def info(self) -> dict:
        d, h, w = self.grey.shape
        return {"shape": [d, h, w], "spacing": [round(s, 4) for s in self.spacing], "orientation": self.orientation,
                "centre": {"axial": d // 2, "coronal": h // 2, "sagittal": w // 2},
                "planes": {name: {"axis": axis, "size": self.grey.shape[axis], "labels": dict(zip(
                    ("left", "right", "bottom", "top"), labels))} for name, (axis, labels) in PLANES.items()},
                "overlay": self.overlay is not None}


def grey_of(data: np.ndarray) -> np.ndarray:
    """A (D, H, W) or (C, D, H, W) volume's first channel windowed at its 0.5/99.5 percentiles to uint8."""
    x = data[0] if data.ndim == 4 else data
    lo, hi = np.percentile(x, [0.5, 99.5])
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.clip((x - lo) * scale, 0, 255).astype(np.uint8)


def view_of(volume: Volume) -> View:
    return View(grey_of(volume.data), np.asarray(volume.affine, dtype=np.float64), tuple(volume.spacing),
                "".join(volume.orientation))


def overlay_on(view: View, weights: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """An attribution map on another grid (e.g. the model's) resampled onto the view's grid, scaled to [-1, 1]."""
    mapped = resample_array(weights, affine, view.affine, view.grey.shape, order=0)  # supervoxel weights: keep edges
    peak = float(np.abs(mapped).max())
    return (mapped / peak).astype(np.float32) if peak > 0 else mapped


def slice_png(view: View, plane: str, index: int, overlay: bool = True) -> bytes:
    """One slice as PNG: top row = superior/anterior edge, left column = the plane's left label; with the overlay,
    supporting regions red and opposing ones blue."""
    from PIL import Image

    grey = np.flipud(plane_slice(view.grey, plane, index))  # row 0 at the top for an image
    rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    if overlay and view.overlay is not None:
        ov = np.flipud(plane_slice(view.overlay, plane, index))
        alpha = np.clip(np.abs(ov), 0, 1)[..., None] * 0.6
        colour = np.where(ov[..., None] >= 0, np.array([255.0, 40.0, 0.0]), np.array([0.0, 90.0, 255.0]))
        rgb = rgb * (1 - alpha) + colour * alpha
    rows, cols = grey.shape
    aspect = plane_aspect(view.spacing, plane)  # mm per row / mm per column
    width, height = cols, rows * aspect
    zoom = max(1.0, MIN_SIDE_PX / max(width, height))
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    img = img.resize((max(1, round(width * zoom)), max(1, round(height * zoom))), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def volume_nifti(view: View, overlay: bool = False) -> bytes:
    """The view's grey volume (or its overlay) as a gzip RAS NIfTI."""
    data = view.overlay if overlay else view.grey.astype(np.float32)
    return nifti_bytes(data, view.affine, gz=True)


class ViewStore:
    """At most `capacity` views, by unguessable id; the oldest is dropped when a new one comes."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._views: OrderedDict[str, View] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, view: View) -> str:
        view_id = secrets.token_urlsafe(12)
        with self._lock:
            self._views[view_id] = view
            while len(self._views) > self.capacity:
                self._views.popitem(last=False)
        return view_id

    def get(self, view_id: str) -> View | None:
        with self._lock:
            return self._views.get(view_id)

    def __len__(self) -> int:
        return len(self._views)
