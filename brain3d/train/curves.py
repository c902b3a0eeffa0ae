"""PNG loss curves of a phase from the run's metrics rows (train loss per optimizer step, val loss per epoch, and the
validation grounding score per epoch on a second axis when the phase selects by it)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable

from brain3d.fsutil import atomic_write_bytes


def phase_series(rows: Iterable[dict], phase: str) -> dict[str, list[tuple[float, float]]]:
    """{"train": [(step, loss)], "val": [(step, loss)], "grounding": [(step, score)]} of one phase from metrics rows."""
    out: dict[str, list[tuple[float, float]]] = {"train": [], "val": [], "grounding": []}
    for r in rows:
        if r.get("phase") != phase:
            continue
        if r.get("kind") == "step" and r.get("loss") is not None:
            out["train"].append((r["step"], r["loss"]))
        elif r.get("kind") == "epoch":
            if r.get("val_loss") is not None:
                out["val"].append((r["step"], r["val_loss"]))
            if (r.get("val_grounding") or {}).get("score") is not None:
                out["grounding"].append((r["step"], r["val_grounding"]["score"]))
    return out


def save_loss_curve(rows: Iterable[dict], phase: str, path: str | Path, title: str | None = None) -> Path:
    """Write the phase's loss curve as a PNG (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = phase_series(rows, phase)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if s["train"]:
        x, y = zip(*s["train"])
        ax.plot(x, y, lw=1, alpha=0.5, color="tab:blue", label="train (per step)")
        if len(y) >= 5:
            k = max(2, len(y) // 20)
            smooth = [sum(y[max(0, i - k + 1):i + 1]) / len(y[max(0, i - k + 1):i + 1]) for i in range(len(y))]
            ax.plot(x, smooth, lw=2, color="tab:blue", label=f"train (mean of {k})")
    if s["val"]:
        x, y = zip(*s["val"])
        ax.plot(x, y, "o-", lw=2, color="tab:orange", label="validation (per epoch)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title(title or f"phase {phase}")
    ax.grid(alpha=0.3)
    if s["train"] or s["val"]:
        ax.legend(fontsize=8, loc="upper left")
    if s["grounding"]:
        x, y = zip(*s["grounding"])
        ax2 = ax.twinx()
        ax2.plot(x, y, "s--", lw=1.5, color="tab:green", label="validation grounding (twins won)")
        ax2.set_ylim(0.0, 1.02)
        ax2.set_ylabel("grounding score")
        ax2.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
