"""Figures shared by the notebooks: image grids and accuracy plots, saved atomically."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .io import atomic_write

__all__ = ["image_grid", "set_comparison_grid", "plot_seeds", "plot_contrasts", "plot_overlap", "plot_heatmap",
           "save_figure", "plot_training_curves"]


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
    channels = max(int(x.shape[1]) for x in columns.values())  # a grayscale set next to RGB ones is shown as RGB
    columns = {k: x.expand(-1, channels, -1, -1) if x.shape[1] != channels else x for k, x in columns.items()}
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


def plot_overlap(overlaps: dict[str, np.ndarray], seeds: Sequence[int], title: str | None = None):
    """One annotated heatmap per selection method: the share of seed i's picks that seed j
    picks too (:func:`coda_utils.baselines.selection_overlap`)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, len(overlaps), figsize=(0.9 + 0.75 * len(seeds) * len(overlaps) + 0.8, 0.9 + 0.6 * len(seeds)),
                             squeeze=False)
    for ax, (name, m) in zip(axes[0], overlaps.items()):
        sns.heatmap(100 * np.asarray(m), annot=True, fmt=".0f", vmin=0, vmax=100, cmap="viridis", cbar=False, ax=ax,
                    xticklabels=list(seeds), yticklabels=list(seeds), annot_kws={"fontsize": 8})
        ax.set_title(f"{name}: % of seed i's picks\nalso picked by seed j", fontsize=9)
        ax.set_xlabel("selection seed j")
        ax.set_ylabel("selection seed i")
        ax.tick_params(axis="y", rotation=0)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_seeds(df, title: str | None = None, order: Sequence[str] | None = None):
    """Test accuracy per method, one panel per IPC: every selection seed as a dot (its
    networks averaged), the mean over seeds as a bar with the std over seeds, and a deterministic
    method's networks as hollow dots.

    Args:
        df: network rows (``method, ipc, selection_seed, acc``, as
            :func:`coda_utils.evaluation.read_results` reads them).
        order: methods in drawing order (default: by mean accuracy, best first).
    """
    import matplotlib.pyplot as plt

    from .stats import per_seed

    seeds = per_seed(df)
    ipcs = sorted(seeds["ipc"].unique())
    fig, axes = plt.subplots(1, len(ipcs), figsize=(0.8 + 0.62 * seeds["method"].nunique() * len(ipcs) + 0.6, 3.9),
                             squeeze=False, sharey=False)
    # one colour per method in every panel
    ranked = order or seeds.groupby("method")["acc"].mean().sort_values(ascending=False).index
    colors = {m: f"C{i % 10}" for i, m in enumerate(ranked)}
    for ax, ipc in zip(axes[0], ipcs):
        part = seeds[seeds["ipc"] == ipc]
        means = part.groupby("method")["acc"].agg(["mean", "std", "size"])
        names = [m for m in (order or means.sort_values("mean", ascending=False).index) if m in means.index]
        rng = np.random.default_rng(0)
        for x, m in enumerate(names):
            vals = part[part["method"] == m]
            color = colors[m]
            ax.bar(x, means.loc[m, "mean"], color=color, alpha=0.35, width=0.7)
            if means.loc[m, "size"] > 1:
                ax.errorbar(x, means.loc[m, "mean"], yerr=means.loc[m, "std"], color="black", capsize=4, lw=1.2)
            ax.scatter(x + rng.uniform(-0.18, 0.18, len(vals)), vals["acc"], s=18, color=color, edgecolors="black",
                       linewidths=0.5, zorder=3)
            nets = df[(df["ipc"] == ipc) & (df["method"] == m)]
            if means.loc[m, "size"] == 1 and len(nets) > 1:  # one set: show its networks instead
                ax.scatter(x + rng.uniform(-0.18, 0.18, len(nets)), nets["acc"], s=18, facecolors="none",
                           edgecolors=color, linewidths=1.0, zorder=3)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
        ax.set_title(f"IPC {ipc}", fontsize=10)
        ax.set_ylabel("test accuracy (%), final epoch")
        lo, hi = float(df.loc[df["ipc"] == ipc, "acc"].min()), float(df.loc[df["ipc"] == ipc, "acc"].max())
        ax.set_ylim(max(0.0, lo - 0.15 * (hi - lo) - 2), min(100.0, hi + 0.1 * (hi - lo) + 1))
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_contrasts(table, title: str | None = None):
    """The contrasts of :func:`coda_utils.stats.contrasts` as a forest plot: the mean
    difference and its 95 % interval per contrast (one panel per IPC), zero marked."""
    import matplotlib.pyplot as plt

    ipcs = sorted(table["ipc"].unique())
    # one row per contrast, at the same height in every panel (a panel may lack some)
    names = list(dict.fromkeys(table["contrast"]))
    row = {name: len(names) - 1 - i for i, name in enumerate(names)}
    fig, axes = plt.subplots(1, len(ipcs), figsize=(1.8 + 3.2 * len(ipcs), 1.1 + 0.42 * len(names)), squeeze=False,
                             sharey=True)
    for ax, ipc in zip(axes[0], ipcs):
        for r in table[table["ipc"] == ipc].to_dict("records"):
            yi = row[r["contrast"]]
            color = "0.5" if r["verdict"] in ("not distinguishable", "too few seeds") else ("C2" if r["diff"] > 0 else "C3")
            if not np.isnan(r["low"]):
                ax.plot([r["low"], r["high"]], [yi, yi], color=color, lw=2.2)
            ax.plot(r["diff"], yi, "o", color=color, ms=6)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(f"IPC {ipc}", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(list(row.values()))
    axes[0][0].set_yticklabels(list(row), fontsize=8)
    axes[0][0].set_ylim(-0.6, len(names) - 0.4)
    fig.supxlabel("difference in test accuracy (points), 95 % interval", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
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
