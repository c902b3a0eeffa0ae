"""Preview figure of a cohort: a few subjects tri-planar, with L/R markers and the lesion mask outlined.

Volumes are read back from disk through `brain3d.io`, so the figure shows what the model sees (model
axes, patient's left on the image's left), whatever orientation the files were stored in.
"""

from __future__ import annotations

from pathlib import Path

from brain3d.data.manifest import Record, read_manifest


def pick_subjects(records: list[Record], n: int = 4) -> list[Record]:
    """One subject per side (left, right, bilateral), then a healthy one, then more in manifest order."""
    chosen: list[Record] = []
    for want in ("left", "right", "bilateral", None):
        for r in records:
            side = None if r.healthy or r.truth is None else r.truth.side
            if side == want and r not in chosen:
                chosen.append(r)
                break
    chosen += [r for r in records if r not in chosen]
    return chosen[:n]


def write_preview(manifest: str | Path, png: str | Path, n: int = 4, sequence: str = "flair") -> Path:
    """Write a PNG with `n` subjects of the manifest (one row each: axial, coronal, sagittal)."""
    import io

    import numpy as np

    from brain3d.fsutil import atomic_write_bytes
    from brain3d.io import read_volume
    from brain3d.viz import _mpl, draw_triplanar

    plt = _mpl()
    records = pick_subjects(read_manifest(manifest), n)
    fig, axes = plt.subplots(len(records), 3, figsize=(10, 3.2 * len(records)), squeeze=False)
    for row, rec in zip(axes, records):
        vol = read_volume(rec.image_paths([sequence])[0])
        mask = read_volume(rec.mask).data if rec.mask else None
        if mask is not None:
            centre = tuple(int(round(c)) for c in np.argwhere(mask > 0).mean(axis=0))
            label = f"{rec.truth.side}: {', '.join(rec.truth.lobes)}" if rec.truth else "lesion"
        else:
            centre = tuple(s // 2 for s in vol.shape)
            label = "healthy"
        title = f"{rec.id} · {''.join(vol.orientation)} {'×'.join(f'{s:.1f}' for s in vol.spacing)} mm · {label}"
        draw_triplanar(row, vol.data, vol.spacing, centre=centre, title=title)
        if mask is not None:  # outline, so the lesion's own signal stays visible
            d, h, w = centre
            for ax, sl in zip(row, (mask[d], mask[:, h, :], mask[:, :, w])):
                if sl.any():
                    ax.contour((sl > 0).astype(float), levels=[0.5], colors="red", linewidths=0.8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return atomic_write_bytes(png, buf.getvalue())
