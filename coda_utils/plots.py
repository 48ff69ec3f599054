"""Figures shared by the notebooks: image grids and accuracy plots, saved atomically."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .io import atomic_write

__all__ = ["image_grid", "set_comparison_grid", "plot_accuracy", "plot_heatmap", "save_figure", "plot_training_curves"]


def save_figure(fig, path: str | Path, dpi: int = 150) -> Path:
    """Save a matplotlib figure as PNG, atomically, creating the directory."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    with atomic_write(path, "wb") as fh:
        fh.write(buf.getvalue())
    return Path(path)


def image_grid(images: torch.Tensor | np.ndarray, rows: int, row_labels: Sequence[str] | None = None,
               col_labels: Sequence[str] | None = None, title: str | None = None, cell: float = 0.9,
               gap: int = 2):
    """Show ``uint8`` images ``N x C x H x W`` (row-major, ``rows`` rows) as one grid figure.

    Images are tiled into a single array with a thin gray gap (visible on white and black backgrounds), so the figure stays crisp for
    hundreds of small images. Row labels go on the left, column labels on top.
    """
    import matplotlib.pyplot as plt

    x = torch.as_tensor(np.asarray(images))
    if x.ndim == 3:
        x = x[:, None]
    n, c, h, w = x.shape
    cols = int(np.ceil(n / rows))
    canvas = torch.full((c, rows * (h + gap) - gap, cols * (w + gap) - gap), 128, dtype=torch.uint8)  # mid-gray gaps
    for i in range(n):
        r, k = divmod(i, cols)
        canvas[:, r * (h + gap):r * (h + gap) + h, k * (w + gap):k * (w + gap) + w] = x[i]
    fig, ax = plt.subplots(figsize=(max(2.0, cols * cell) + (1.4 if row_labels else 0), max(1.0, rows * cell) + 0.4))
    arr = canvas.permute(1, 2, 0).numpy()
    ax.imshow(arr[..., 0] if c == 1 else arr, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([k * (w + gap) + w / 2 for k in range(cols)] if col_labels else [])
    if col_labels:
        ax.set_xticklabels(col_labels, fontsize=8)
        ax.xaxis.tick_top()
    ax.set_yticks([r * (h + gap) + h / 2 for r in range(rows)] if row_labels else [])
    if row_labels:
        ax.set_yticklabels(row_labels, fontsize=9)
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    if title:
        ax.set_title(title, fontsize=11, pad=14 if col_labels else 6)
    fig.tight_layout()
    return fig


def set_comparison_grid(columns: dict[str, torch.Tensor], num_classes: int, ipc: int, row_labels: Sequence[str],
                        shown: int = 5, title: str | None = None):
    """Several distilled sets side by side: one row per class, the first ``shown`` images of each
    set (``columns[name]``: ``uint8`` images in class order, ``ipc`` per class)."""
    shown = min(shown, ipc)
    grid = torch.cat([torch.stack([columns[k][c * ipc + j] for k in columns for j in range(shown)])
                      for c in range(num_classes)])
    return image_grid(grid, rows=num_classes, row_labels=row_labels,
                      col_labels=[k if j == 0 else "" for k in columns for j in range(shown)], title=title)


def plot_heatmap(table, title: str | None = None, fmt: str = ".1f", label: str = "accuracy (%)"):
    """A 2-D sweep (a pandas pivot table: rows x columns -> value) as an annotated heatmap."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(2.0 + 1.0 * table.shape[1], 1.6 + 0.6 * table.shape[0]))
    sns.heatmap(table, annot=True, fmt=fmt, cmap="viridis", cbar_kws={"label": label}, ax=ax)
    ax.tick_params(axis="y", rotation=0)  # row labels readable, also for a one-row (1-D) sweep
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_accuracy(df, title: str | None = None, reference: dict[str, Sequence[float]] | None = None):
    """Test accuracy (final epoch, the headline) per method and IPC: bars of the mean with the
    standard deviation, and every repeat as a dot. ``reference`` adds published numbers
    (name -> values per IPC, in the order of the IPCs in ``df``) as dashed markers."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    ipcs = sorted(df["ipc"].unique())
    fig, ax = plt.subplots(figsize=(1.2 + 1.6 * len(ipcs) * max(1, df["method"].nunique()) ** 0.5, 3.8))
    sns.barplot(data=df, x="ipc", y="acc", hue="method", errorbar="sd", ax=ax, alpha=0.8, capsize=0.1, order=ipcs)
    sns.stripplot(data=df, x="ipc", y="acc", hue="method", dodge=True, ax=ax, palette="dark:black", size=3, legend=False,
                  order=ipcs)
    if reference:
        for k, (name, vals) in enumerate(reference.items()):
            ax.scatter(range(len(vals)), vals, marker="_", s=600, linewidths=2, color=f"C{k + 3}", label=name, zorder=5)
    ax.set_xlabel("images per class (IPC)")
    ax.set_ylabel("test accuracy (%), final epoch")
    lo = max(0.0, float(df["acc"].min()) - 15)
    ax.set_ylim(lo, min(100.0, float(df["acc"].max()) + 8))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # outside: never hides a bar
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_training_curves(logs: dict[str, list[dict]], keys: dict[str, str]):
    """One panel per training stage: ``logs[name]`` is a list of ``{"step": ..., key: ...}``."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(logs), figsize=(4.2 * len(logs), 3.0))
    axes = np.atleast_1d(axes)
    for ax, (name, log) in zip(axes, logs.items()):
        key = keys[name]
        ax.plot([r["step"] for r in log], [r[key] for r in log], lw=1.5)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
