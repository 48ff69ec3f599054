"""The stage figures: 01 reconstructions, 02 discovery, 03 guidance (drawn by those notebooks and 06).

Part of :mod:`coda_utils.plots`, which re-exports every name here (notebooks use ``plots.<name>``);
the style they follow is :mod:`coda_utils.plots_style`'s.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from .plots_style import _METHOD_COLORS, OKABE_ITO, _palette, image_grid

if TYPE_CHECKING:  # annotations only: the stage modules do not import plots at module level
    from .alignment import GuidanceState
    from .datasets import LabeledImages
    from .discovery import ClassDiscovery, Discovery
    from .encoding import LatentCache

__all__ = ["reconstruction_grid", "plot_class_embedding", "plot_standardize", "plot_clusters", "plot_exactly_ipc",
           "plot_exactly_ipc_step", "plot_cluster_sizes", "selection_grid", "trajectory_figure", "distance_figure",
           "guidance_scale_figure", "guidance_step_figure"]


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


def plot_exactly_ipc_step(xy: np.ndarray, hdbscan_labels: np.ndarray, result=None, title: str | None = None,
                          axis_names: Sequence[str] = ("UMAP 1", "UMAP 2")):
    """One picture of discovery step 5 (exactly IPC clusters): the points in 2-D coloured by
    HDBSCAN's clusters (``result`` None), or by the final clusters of ``result`` (the
    :class:`~coda_utils.discovery.ExactlyIPC` of ``make_exactly_ipc``) with each representative
    marked by the strategy that produced it; HDBSCAN's noise hollow, points left in no final
    cluster grey. ``axis_names``: the coordinates (a 2-D toy's own, or a 2-D view of UMAP's)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    hl = np.asarray(hdbscan_labels)
    fig, ax = plt.subplots(figsize=(6.6, 4.2))
    if result is None:
        handles = _draw_clusters(ax, xy, hl, hl < 0)
    else:
        handles = _draw_clusters(ax, xy, result.labels, hl < 0, result.representatives, result.strategies)
        if ((np.asarray(result.labels) < 0) & (hl >= 0)).any():  # clusters dropped (more than IPC)
            handles.insert(2, Line2D([], [], ls="", marker="o", ms=4, color=(0.75, 0.75, 0.75),
                                     label="in no final cluster"))
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title or "", fontsize=10)
    fig.tight_layout()
    return fig


def plot_cluster_sizes(disc: "Discovery", title: str | None = None):
    """Per class: the sizes of the IPC clusters behind the representatives (one dot each,
    coloured by strategy), with M (clusters HDBSCAN found) and the noise share above."""
    import matplotlib.pyplot as plt

    from .discovery import STRATEGIES

    fig, ax = plt.subplots(figsize=(2.5 + 0.8 * len(disc.per_class), 4.0))
    colors = {s: OKABE_ITO[i % len(OKABE_ITO)] for i, s in enumerate(STRATEGIES)}
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
    note = f"first {k} of {ipc} images per class" if k < ipc else f"all {ipc} images per class"
    fig = image_grid(torch.cat(tiles), rows=len(classes), row_labels=[data.class_names[c] for c in classes],
                     col_labels=cols, title=f"{title} ({note})" if title else note)
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
                    sp.set_color(OKABE_ITO[3]); sp.set_linewidth(2)
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
        color = _METHOD_COLORS.get(name, OKABE_ITO[k % len(OKABE_ITO)])  # a method's own colour when it is one
        ax.plot(st.steps, d.mean(1), color=color, label=name, lw=2)
        ax.fill_between(st.steps, d.min(1).values, d.max(1).values, color=color, alpha=0.15)
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


def guidance_scale_figure(states: dict[str, "GuidanceState"], z_rep: torch.Tensor, pulls: dict[str, Sequence[float]],
                          title: str | None = None):
    """What the guidance scale does over the denoising steps, one line per run (e.g. gamma 0, the
    study's gamma and a large one, same samples and noise). Left: the CFG'd pull ``w * gamma * s_i``
    of every guided step (``pulls[name]``, one value per step; 1: the CFG'd x0 lands on the
    representative, above 1: it is thrown past it). Right: the RMS distance between the UNet's own
    prediction x0 (before the pull) and the representative latent, median over the samples with
    their range. Both axes are logarithmic, so that a run that converges and one that diverges
    can be read on one figure; a run without pull (gamma 0) has no line on the left."""
    import matplotlib.pyplot as plt

    fig, (ax_p, ax_d) = plt.subplots(1, 2, figsize=(10.0, 3.4))
    z = z_rep.float()
    for k, (name, st) in enumerate(states.items()):
        color = OKABE_ITO[k % len(OKABE_ITO)]
        p = np.asarray(pulls.get(name, []), dtype=float)
        if len(p) and (p > 0).any():
            steps = np.arange(len(p))
            ax_p.plot(steps[p > 0], p[p > 0], "-o", ms=3, color=color, label=name, lw=1.8)
        d = torch.stack([(x - z).flatten(1).pow(2).mean(1).sqrt() for x in st.x0_before])  # steps x samples
        ax_d.plot(st.steps, d.median(1).values, color=color, label=name, lw=2)
        ax_d.fill_between(st.steps, d.min(1).values, d.max(1).values, color=color, alpha=0.15)
    ax_p.axhline(1.0, color="0.3", ls="--", lw=1)
    ax_p.text(0.98, 1.0, "pull = 1: lands on the representative", transform=ax_p.get_yaxis_transform(),
              ha="right", va="bottom", fontsize=7.5, color="0.3")
    ax_p.set_yscale("log")
    ax_p.set_xlabel("denoising step")
    ax_p.set_ylabel("CFG'd pull w * gamma * s_i")
    ax_p.set_title("how far each guided step moves x0 toward the representative", fontsize=9)
    ax_d.set_yscale("log")
    ax_d.set_xlabel("denoising step")
    ax_d.set_ylabel("RMS distance of predicted x0\nto the representative")
    ax_d.set_title(f"where the sample is ({len(z)} samples: median and range)", fontsize=9)
    for ax, where in ((ax_p, "upper right"), (ax_d, "upper left")):  # the right panel's middle is a diverging run's
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc=where)
    if title:
        fig.suptitle(title, fontsize=10)
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
