"""Figures shared by the notebooks: image grids and accuracy plots, saved atomically."""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from .io import atomic_write

if TYPE_CHECKING:  # annotations only: the stage modules do not import plots at module level
    from .alignment import GuidanceState
    from .datasets import LabeledImages
    from .discovery import ClassDiscovery, Discovery
    from .encoding import LatentCache

__all__ = ["image_grid", "set_comparison_grid", "plot_seeds", "plot_contrasts", "plot_overlap", "plot_heatmap",
           "save_figure", "plot_training_curves", "reconstruction_grid", "plot_class_embedding", "plot_cluster_sizes",
           "selection_grid", "trajectory_figure", "distance_figure", "plot_standardize", "plot_clusters", "plot_exactly_ipc",
           "guidance_step_figure", "plot_accuracy_curve"]


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

# --------------------------------------------------------------------------------------------
# Stage figures: 01 reconstructions, 02 discovery, 03 guidance (drawn by those notebooks and 06)
# --------------------------------------------------------------------------------------------
def reconstruction_grid(data: "LabeledImages", cache: "LatentCache", vae_or_pipe: Any, per_class: int = 6,
                        title: str | None = None):
    """One row per class: the first ``per_class`` images as the VAE saw them (resized), a blank,
    then the same images decoded from the cached latents. A check that the cache is in the
    VAE's latent space and of what the VAE keeps."""
    from .encoding import decode_latents, get_vae

    vae = get_vae(vae_or_pipe)
    size, resize = tuple(cache.meta["size"]), cache.meta["resize"]
    per_class = min(per_class, min(cache.counts))
    rows, tiles = [], []
    for c in range(cache.num_classes):
        pos = cache.indices(c)[:per_class]
        orig = data.load(pos, size, resize)
        rec = decode_latents(vae, cache.latents(c)[:per_class])
        if orig.shape[1] != rec.shape[1]:
            orig = orig.expand(-1, rec.shape[1], -1, -1) if orig.shape[1] == 1 else orig
            rec = rec.expand(-1, orig.shape[1], -1, -1) if rec.shape[1] == 1 else rec
        tiles += [orig, torch.full_like(orig[:1], 255), rec]
        rows.append(cache.class_names[c])
    k = len(pos)
    cols = ["" if i != k // 2 else "input" for i in range(k)] + [""] + ["" if i != k // 2 else "decoded latent" for i in range(k)]
    return image_grid(torch.cat(tiles), rows=len(rows), row_labels=rows, col_labels=cols, title=title)


def _palette(k: int) -> list:
    """Distinct cluster colours without grey (grey marks points in no cluster)."""
    import matplotlib.pyplot as plt

    if k <= 9:
        cols = [plt.get_cmap("tab10")(i) for i in range(10) if i != 7]
    else:
        cols = [plt.get_cmap("tab20")(i) for i in range(20) if i not in (14, 15)]
    return cols


def _draw_clusters(ax, xy: np.ndarray, labels: np.ndarray, noise: np.ndarray, positions: np.ndarray | None = None,
                   strategies: Sequence[str] | None = None) -> list:
    """Points of one class on ``ax`` coloured by ``labels`` (grey: -1), ``noise`` points hollow,
    and the representatives ``positions`` marked by their ``strategies``; returns legend handles."""
    from matplotlib.lines import Line2D

    from .discovery import STRATEGIES

    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if (labels >= 0).any() else 1
    palette = _palette(k)
    col = np.array([palette[int(l) % len(palette)] if l >= 0 else (0.75, 0.75, 0.75, 1.0) for l in labels])
    noise = np.asarray(noise, dtype=bool)
    ax.scatter(xy[~noise, 0], xy[~noise, 1], s=8, c=col[~noise], lw=0)
    ax.scatter(xy[noise, 0], xy[noise, 1], s=10, facecolors="none", edgecolors=col[noise], lw=0.6)
    handles = [Line2D([], [], ls="", marker="o", ms=4, color="0.3", label="member of a cluster"),
               Line2D([], [], ls="", marker="o", ms=4, mfc="none", mec="0.3", label="HDBSCAN noise")]
    if positions is not None:
        marks = {"hdbscan": ("*", 200), "split": ("P", 90), "forced_split": ("X", 90), "noise_fill": ("D", 60)}
        for s in [s for s in STRATEGIES if s in strategies]:
            j = [i for i, t in enumerate(strategies) if t == s]
            m, size = marks.get(s, ("o", 60))
            p = np.asarray(positions)[j]
            ax.scatter(xy[p, 0], xy[p, 1], s=size, marker=m, c=[palette[int(labels[q]) % len(palette)] for q in p],
                       edgecolors="black", linewidths=1.1, zorder=5)
            handles.append(Line2D([], [], ls="", marker=m, ms=9 if m == "*" else 7, mfc="white", mec="black",
                                  label=f"representative: {s} ({len(j)})"))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    return handles


def plot_class_embedding(xy: np.ndarray, d: "ClassDiscovery", title: str | None = None):
    """A class in 2-D, coloured by final cluster (grey: in no cluster), HDBSCAN's noise points
    hollow, representatives marked by strategy (star: HDBSCAN's most probable member)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    handles = _draw_clusters(ax, xy, d.labels, np.asarray(d.hdbscan_labels) < 0, d.positions, d.strategies)
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title or f"{len(d.positions)} representatives; {d.n_found} HDBSCAN clusters, {d.noise_fraction:.0%} noise",
                 fontsize=10)
    fig.tight_layout()
    return fig


def plot_standardize(latents: np.ndarray, standardized: np.ndarray, title: str | None = None):
    """Discovery step 1: the mean and standard deviation of every latent dimension of one class,
    before and after standardizing (after: every dimension has mean 0 and std 1, so no
    dimension dominates UMAP's euclidean distances)."""
    import matplotlib.pyplot as plt

    raw = np.asarray(latents, dtype=np.float64).reshape(len(latents), -1)
    std = np.asarray(standardized, dtype=np.float64).reshape(len(standardized), -1)
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 2.8), sharex=True, sharey=True)  # same axes: after is one point
    for ax, (name, x) in zip(axes, {"latents": raw, "standardized": std}.items()):
        ax.scatter(x.mean(0), x.std(0), s=9, alpha=0.7)
        ax.set_xlabel("mean of a dimension")
        ax.set_ylabel("std of a dimension")
        ax.set_title(f"{name}: {x.shape[1]} dimensions", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(0, None)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_clusters(xy: np.ndarray, labels: np.ndarray, title: str | None = None):
    """Discovery steps 2-3: one class's points in 2-D coloured by cluster label (-1, noise: grey
    and hollow; all -1 shows the embedding before clustering)."""
    import matplotlib.pyplot as plt

    labels = np.asarray(labels)
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    handles = _draw_clusters(ax, xy, labels, labels < 0)
    if (labels >= 0).any():
        ax.legend(handles=handles, fontsize=8, loc="best", frameon=False)
    ax.set_title(title or "", fontsize=10)
    fig.tight_layout()
    return fig


def plot_exactly_ipc(xy: np.ndarray, hdbscan_labels: np.ndarray, result, title: str | None = None):
    """Discovery step 4: HDBSCAN's clusters (left) and the exactly-IPC clusters made from them
    (right), each representative marked by the strategy that produced it (``result``: the
    :class:`~coda_utils.discovery.ExactlyIPC` of ``make_exactly_ipc``)."""
    import matplotlib.pyplot as plt

    hl = np.asarray(hdbscan_labels)
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.3))
    _draw_clusters(axes[0], xy, hl, hl < 0)
    axes[0].set_title(f"HDBSCAN: {result.n_found} clusters, {result.noise_fraction:.0%} noise", fontsize=10)
    handles = _draw_clusters(axes[1], xy, result.labels, hl < 0, result.representatives, result.strategies)
    axes[1].set_title(f"exactly {len(result.representatives)} clusters and their representatives", fontsize=10)
    axes[1].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_cluster_sizes(disc: "Discovery", title: str | None = None):
    """Per class: the sizes of the IPC clusters behind the representatives (one dot each,
    coloured by strategy), with M (clusters HDBSCAN found) and the noise share above."""
    import matplotlib.pyplot as plt

    from .discovery import STRATEGIES

    fig, ax = plt.subplots(figsize=(2.5 + 0.8 * len(disc.per_class), 4.0))
    colors = {s: f"C{i}" for i, s in enumerate(STRATEGIES)}
    seen = set()
    rng = np.random.default_rng(0)
    top = max(max(d.cluster_sizes) for d in disc.per_class)
    for c, d in enumerate(disc.per_class):
        sizes = np.asarray(d.cluster_sizes)
        jitter = rng.uniform(-0.22, 0.22, len(sizes)) if len(sizes) > 1 else np.zeros(1)
        for s in [s for s in STRATEGIES if s in d.strategies]:
            j = np.array([i for i, t in enumerate(d.strategies) if t == s])
            ax.scatter(c + jitter[j], sizes[j], s=22, color=colors[s], edgecolors="black", linewidths=0.3,
                       label=s if s not in seen else None, zorder=3)
            seen.add(s)
        ax.text(c, top * 1.08, f"M={d.n_found}\n{d.noise_fraction:.0%} noise", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(disc.per_class)))
    ax.set_xticklabels(disc.class_names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("cluster size (images)")
    ax.set_ylim(0, top * 1.3)
    ax.grid(axis="y", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: STRATEGIES.index(labels[i]))
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=8, title="representative from",
              title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              frameon=False)
    ax.set_title(title or f"Clusters behind the representatives (IPC {disc.ipc})", fontsize=11)
    fig.tight_layout()
    return fig


def selection_grid(data, selections: dict[str, np.ndarray], ipc: int, max_per_class: int = 10, title: str | None = None):
    """Side by side, one row per class: the first ``max_per_class`` images of each selection
    (``name -> dataset positions``, ``ipc`` per class, class-major), separated by a blank column."""
    k = min(ipc, max_per_class)
    names = list(selections)
    classes = sorted({int(c) for c in data.labels[np.concatenate(list(selections.values()))]})
    tiles, cols = [], []
    blank = None
    for row, c in enumerate(classes):
        for j, name in enumerate(names):
            pos = np.asarray(selections[name])
            pos = pos[data.labels[pos] == c][:k]
            imgs = data.load(pos)
            if blank is None:
                blank = torch.full_like(imgs[:1], 255)
            if j:
                tiles.append(blank)
            tiles.append(imgs)
            if row == 0:
                cols += ([""] if j else []) + [name if i == k // 2 else "" for i in range(k)]
    fig = image_grid(torch.cat(tiles), rows=len(classes), row_labels=[data.class_names[c] for c in classes],
                     col_labels=cols, title=title)
    return fig


@torch.no_grad()
def trajectory_figure(pipe, states: dict[str, "GuidanceState"], z_rep: torch.Tensor, sample: int = 0,
                      every: int = 3, title: str | None = None):
    """The predicted clean image x0 of one sample over the steps, one row per run (e.g.
    unguided / CoDA), decoded with the pipeline's VAE, with the representative at the right."""
    import matplotlib.pyplot as plt

    from .encoding import decode_latents

    names = list(states)
    steps = states[names[0]].steps[::every] + ([states[names[0]].steps[-1]] if states[names[0]].steps[-1] % every else [])
    rows = []
    for name in names:
        st = states[name]
        x0 = torch.stack([st.x0_after[st.steps.index(i)][sample] for i in steps])
        rows.append(decode_latents(pipe, x0))
    rep = decode_latents(pipe, z_rep[sample:sample + 1].float())
    n_cols = len(steps) + 1
    fig, axes = plt.subplots(len(names), n_cols, figsize=(1.0 * n_cols + 1.2, 1.15 * len(names) + 0.5))
    axes = np.atleast_2d(axes)
    for r, (name, imgs) in enumerate(zip(names, rows)):
        for j in range(n_cols):
            ax = axes[r, j]
            img = (imgs[j] if j < len(steps) else rep[0]).permute(1, 2, 0).numpy()
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([]); ax.set_yticks([])
            if r == 0:
                ax.set_title(f"step {steps[j]}" if j < len(steps) else "representative", fontsize=8)
            if j == len(steps):
                for sp in ax.spines.values():
                    sp.set_color("C3"); sp.set_linewidth(2)
        axes[r, 0].set_ylabel(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def distance_figure(states: dict[str, "GuidanceState"], z_rep: torch.Tensor, label: str | None = None,
                    gamma: float | None = None):
    """RMS distance between the predicted x0 and each sample's representative latent over the
    steps (mean and range over the batch), one line per run; guided steps shaded. The title
    names ``label`` (the class), the number of samples and ``gamma`` when given."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    z = z_rep.float()
    for k, (name, st) in enumerate(states.items()):
        d = torch.stack([(x - z).flatten(1).pow(2).mean(1).sqrt() for x in st.x0_after])  # steps x batch
        ax.plot(st.steps, d.mean(1), color=f"C{k}", label=name, lw=2)
        ax.fill_between(st.steps, d.min(1).values, d.max(1).values, color=f"C{k}", alpha=0.15)
        if any(st.guided):
            last = max(i for i, g in zip(st.steps, st.guided) if g)
            ax.axvspan(-0.5, last + 0.5, color="0.9", zorder=0)
    ax.set_xlabel("denoising step")
    ax.set_ylabel("RMS distance of x0 to representative")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if label is not None:
        n = len(z)
        ax.set_title(f"{label}: {n} sample{'' if n == 1 else 's'}" + ("" if gamma is None else f", gamma {gamma}"),
                     fontsize=10)
    fig.tight_layout()
    return fig


@torch.no_grad()
def guidance_step_figure(pipe, state: "GuidanceState", z_rep: torch.Tensor, step: int, sample: int = 0,
                         title: str | None = None):
    """One guided denoising step of one sample: the predicted clean image x0 before CoDA's
    correction, after it, the representative it is pulled toward (all decoded by the VAE), and
    how far each latent position moved (RMS over channels of ``x0_after - x0_before``)."""
    import matplotlib.pyplot as plt

    from .encoding import decode_latents

    i = state.steps.index(step)
    before, after = state.x0_before[i][sample:sample + 1].float(), state.x0_after[i][sample:sample + 1].float()
    z = z_rep[sample:sample + 1].float()
    imgs = decode_latents(pipe, torch.cat([before, after, z]))
    moved = (after - before)[0].pow(2).mean(0).sqrt().numpy()
    dist = [float((x - z).pow(2).mean().sqrt()) for x in (before, after)]
    fig, axes = plt.subplots(1, 4, figsize=(9.2, 2.6))
    names = [f"x0 before\n(RMS to rep. {dist[0]:.2f})", f"x0 after\n(RMS to rep. {dist[1]:.2f})", "representative"]
    for ax, img, name in zip(axes, imgs, names):
        a = img.permute(1, 2, 0).numpy()
        ax.imshow(a[..., 0] if a.shape[-1] == 1 else a, cmap="gray", vmin=0, vmax=255)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([]); ax.set_yticks([])
    im = axes[3].imshow(moved, cmap="magma")
    axes[3].set_title("latent change\n(RMS over channels)", fontsize=9)
    axes[3].set_xticks([]); axes[3].set_yticks([])
    fig.colorbar(im, ax=axes[3], fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_accuracy_curve(curve: Sequence[tuple[int, float]], title: str | None = None):
    """Test accuracy of one network over its epochs: the last point is ``acc`` (the headline),
    the highest is ``acc_best`` (chosen by looking at the test split, so never the headline)."""
    import matplotlib.pyplot as plt

    ep, acc = np.asarray([c[0] for c in curve]), np.asarray([c[1] for c in curve])
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    ax.plot(ep, acc, "-o", ms=3, color="C0", label="test accuracy during training")
    b = int(np.argmax(acc))
    ax.scatter([ep[-1]], [acc[-1]], s=70, color="C2", zorder=5, label=f"acc (after the last epoch): {acc[-1]:.1f}")
    ax.scatter([ep[b]], [acc[b]], s=70, marker="^", color="C3", zorder=5,
               label=f"acc_best (max, epoch {ep[b]}): {acc[b]:.1f}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
