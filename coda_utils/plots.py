"""Figures shared by the notebooks: image grids and accuracy plots, saved atomically.

The one module notebooks draw through (``plots.<name>``). Every figure follows one style
(:mod:`coda_utils.plots_style`, re-exported here with the image grids):

* **one method order** (:data:`METHOD_ORDER`, :func:`method_order`): the real selections, the
  prior's samples and CoDA-G, then the VAE ceilings, in every panel of every figure;
* **one colour and one marker per method** (:func:`method_color`, :func:`method_marker`) from Paul
  Tol's colour-blind-safe "muted" palette, the marker naming the method's family (circle: real
  images, square: generated, diamond: real images through the prior's VAE and back);
* **dots and intervals, never truncated bars**: every selection seed is a dot, the mean over seeds
  a bar-free mark with its spread (:func:`plot_seeds`), a one-dimensional sweep a line with error
  bars (:func:`plot_sweep`); a verdict is a colour *and* a marker, explained by a legend
  (:func:`verdict_style`);
* **human axis labels** (:func:`label`), never a raw column key;
* **image grids with gaps and class labels** that say how many of a class's images they show.

This module holds the results figures (accuracy over seeds, contrasts, sweeps, overlaps, training
and accuracy curves); the stage figures of notebooks 01-03 are :mod:`coda_utils.plots_stages`,
re-exported here too.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

# the stage figures and the style, re-exported: plots.<name> as before the split (the underscored
# names too: the style's tables and helpers, the cluster drawing)
from .plots_stages import (_draw_clusters, distance_figure, guidance_scale_figure, guidance_step_figure,
                           plot_class_embedding, plot_cluster_sizes, plot_clusters, plot_exactly_ipc,
                           plot_exactly_ipc_step, plot_standardize, reconstruction_grid, selection_grid,
                           trajectory_figure)
from .plots_style import (_FAMILY_MARKERS, _METHOD_COLORS, _VERDICTS, LABELS, METHOD_ORDER, NEUTRAL, OKABE_ITO,
                          PALETTE, _palette, image_grid, label, method_color, method_marker, method_order, save_figure,
                          set_comparison_grid, verdict_handles, verdict_style)

__all__ = ["image_grid", "set_comparison_grid", "plot_seeds", "plot_contrasts", "plot_overlap",
           "save_figure", "plot_training_curves", "reconstruction_grid", "plot_class_embedding", "plot_cluster_sizes",
           "selection_grid", "trajectory_figure", "distance_figure", "plot_standardize", "plot_clusters", "plot_exactly_ipc",
           "guidance_step_figure", "plot_accuracy_curve", "METHOD_ORDER", "PALETTE", "method_order", "method_color",
           "method_marker", "label", "verdict_style", "verdict_handles", "plot_sweep", "guidance_scale_figure",
           "plot_exactly_ipc_step"]


def _tick(v) -> str:
    """A swept value as a label: integral floats without ``.0`` (values read back from a CSV)."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def plot_sweep(points, x: str, hue: str | None = None, value: str = "acc", ylabel: str | None = None,
               title: str | None = None):
    """A sweep as lines with error bars: the mean over selection seeds of ``value`` at every
    swept ``x`` (error bar: ± std over seeds), every seed a small dot behind it, one line per
    ``hue`` value for a two-parameter sweep. A categorical ``x`` (text) is drawn as dots and
    intervals without lines (a categorical ``x`` with a numeric ``hue`` is drawn the other way
    round, so that the line runs along the numbers).

    Args:
        points: one row per (point, selection seed): the swept columns, ``selection_seed`` and
            ``value`` (:func:`coda_utils.ablations.collect` or ``results/ablations.csv``).
        ylabel: the value's axis label (default: :func:`label` of ``"val_acc"`` for ``acc``).
    """
    import matplotlib.pyplot as plt

    def numeric(col):
        return col is not None and points[col].dropna().map(lambda v: isinstance(v, (int, float, np.number))).all()

    if hue is not None and not numeric(x) and numeric(hue):
        x, hue = hue, x
    points = points.dropna(subset=[x] + ([hue] if hue else []))
    groups = [(None, points)] if hue is None else list(points.groupby(hue, sort=True))
    xs_all = sorted(points[x].unique(), key=lambda v: (isinstance(v, str), v))
    # a grid whose values crowd on a linear axis (gamma 0, 0.05, 0.2, 0.5, 1) is drawn evenly spaced, and says so
    gaps = np.diff([float(v) for v in xs_all]) if numeric(x) and len(xs_all) > 2 else np.array([1.0])
    even = bool(numeric(x) and len(xs_all) > 2 and gaps.min() < 0.08 * (float(xs_all[-1]) - float(xs_all[0])))
    pos = (lambda v: float(v)) if numeric(x) and not even else (lambda v: float(xs_all.index(v)))
    fig, ax = plt.subplots(figsize=(5.6 if hue is None else 6.4, 3.6))
    span = (max(map(pos, xs_all)) - min(map(pos, xs_all))) or 1.0
    n_groups = len(groups)
    seeds_n = int(points.groupby([x] + ([hue] if hue else []))["selection_seed"].nunique().max())
    for k, (h, part) in enumerate(groups):
        color = OKABE_ITO[k % len(OKABE_ITO)] if hue is not None else PALETTE[0]
        shift = (k - (n_groups - 1) / 2) * 0.012 * span  # lines side by side, not on top of each other
        stats_ = part.groupby(x)[value].agg(["mean", "std", "size"]).reset_index()
        stats_["p"] = stats_[x].map(pos) + shift
        stats_ = stats_.sort_values("p")
        ax.scatter(part[x].map(pos) + shift, part[value], s=12, color=color, alpha=0.45, lw=0, zorder=2)
        ax.errorbar(stats_["p"], stats_["mean"], yerr=stats_["std"].fillna(0.0), color=color, capsize=4, lw=1.6,
                    marker="o", ms=6, ls="-" if numeric(x) else "none", zorder=3,
                    label=None if hue is None else f"{label(hue).split(' (')[0]} {_tick(h)}")
    ax.set_xlabel(label(x) + (" (the swept values, evenly spaced)" if even else ""))
    ax.set_ylabel(ylabel or label("val_acc" if value == "acc" else value))
    if numeric(x):
        ax.set_xticks([pos(v) for v in xs_all])
        ax.set_xticklabels([_tick(v) for v in xs_all])
    else:
        ax.set_xticks(range(len(xs_all)))
        ax.set_xticklabels([_tick(v) for v in xs_all])
        ax.set_xlim(-0.5, len(xs_all) - 0.5)
    ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    handles, labels_ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="0.3", marker="o", ms=5, lw=1.4, label=f"mean ± std over {seeds_n} selection seeds"),
                Line2D([], [], ls="", marker="o", ms=4, color="0.3", alpha=0.45, label="one selection seed")]
    ax.legend(handles=handles, fontsize=7.5, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
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


def plot_seeds(df, title: str | None = None, order: Sequence[str] | None = None, value: str = "acc"):
    """Accuracy per method as dots and intervals, one panel per IPC, no bars.

    One row per method, in the one order of every figure (:func:`method_order`, the same rows in
    every panel; a method not run at an IPC says so). Every selection seed is a dot of the
    method's colour and marker (its networks averaged); the mean over seeds is a black tick with
    the std over seeds as a line; a deterministic method (one set, several networks) shows its
    networks as hollow dots and their mean. The axis spans the data (a dot plot needs no zero).

    Args:
        df: network rows (``method, ipc, selection_seed, acc``, as
            :func:`coda_utils.evaluation.read_results` reads them).
        order: methods in drawing order (default: :func:`method_order`).
        value: the column drawn (its axis label from :func:`label`).
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from .stats import per_seed

    seeds = per_seed(df, value)
    ipcs = sorted(seeds["ipc"].unique())
    names = list(order) if order is not None else method_order(seeds["method"])
    row = {m: len(names) - 1 - i for i, m in enumerate(names)}  # the first method on top
    fig, axes = plt.subplots(1, len(ipcs), figsize=(3.0 + 3.8 * len(ipcs), 0.9 + 0.46 * len(names)), squeeze=False,
                             sharey=True)
    rng = np.random.default_rng(0)
    up, down = 0.14, -0.2  # the dots above the row's line, the mean and its spread below it
    for ax, ipc in zip(axes[0], ipcs):
        part = seeds[seeds["ipc"] == ipc]
        lo, hi = float(df.loc[df["ipc"] == ipc, value].min()), float(df.loc[df["ipc"] == ipc, value].max())
        for m in names:
            y, vals = row[m], part.loc[part["method"] == m, value].to_numpy(float)
            color, marker = method_color(m), method_marker(m)
            if len(vals) == 0:
                ax.text(lo, y, "not run at this IPC", fontsize=7, color="0.45", va="center")
                continue
            nets = df.loc[(df["ipc"] == ipc) & (df["method"] == m), value].to_numpy(float)
            if len(vals) == 1 and len(nets) > 1:  # one (deterministic) set: its networks instead
                ax.scatter(nets, y + up + rng.uniform(-0.1, 0.1, len(nets)), s=26, marker=marker, facecolors="white",
                           edgecolors=color, linewidths=1.2, zorder=3, gid=f"networks:{m}")
                ax.plot([nets.mean()] * 2, [y + down - 0.12, y + down + 0.12], color="black", lw=1.8, zorder=4)
                continue
            ax.scatter(vals, y + up + rng.uniform(-0.1, 0.1, len(vals)), s=28, marker=marker, color=color,
                       edgecolors="black", linewidths=0.5, zorder=3, gid=f"seeds:{m}")
            ax.plot([vals.mean()] * 2, [y + down - 0.12, y + down + 0.12], color="black", lw=1.8, zorder=4)
            if len(vals) > 1:
                sd = vals.std(ddof=1)
                ax.plot([vals.mean() - sd, vals.mean() + sd], [y + down] * 2, color="black", lw=1.2, zorder=2)
                lo, hi = min(lo, vals.mean() - sd), max(hi, vals.mean() + sd)  # the interval inside the axis
        pad = max(0.6, 0.06 * (hi - lo))
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_title(f"IPC {ipc}", fontsize=10)
        ax.set_xlabel(label(value), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        for y in range(len(names)):
            ax.axhline(y, color="0.92", lw=0.6, zorder=0)
    axes[0][0].set_yticks(list(row.values()))
    axes[0][0].set_yticklabels(list(row), fontsize=9)
    axes[0][0].set_ylim(-0.6, len(names) - 0.4)
    handles = [Line2D([], [], ls="", marker="o", ms=6, color="0.55", mec="black", mew=0.5,
                      label="one selection seed (its networks averaged)"),
               Line2D([], [], ls="", marker="o", ms=6, mfc="white", mec="0.35", label="one network (deterministic set)"),
               Line2D([], [], color="black", lw=1.0, marker="|", ms=12, mew=1.6, label="mean ± std over seeds"),
               Line2D([], [], ls="", marker="o", ms=6, color="0.7", label="circle: real images"),
               Line2D([], [], ls="", marker="s", ms=6, color="0.7", label="square: generated"),
               Line2D([], [], ls="", marker="D", ms=5, color="0.7", label="diamond: through the VAE and back")]
    axes[0][-1].legend(handles=handles, fontsize=7.5, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_contrasts(table, title: str | None = None, panel: str = "ipc"):
    """The contrasts of :func:`coda_utils.stats.contrasts` as a forest plot: the mean
    difference and its 95 % interval per contrast (one panel per IPC, every contrast on the same
    row in every panel), zero marked. The verdict is a colour and a marker, with a legend
    (:func:`verdict_style`); each row is labelled with its contrast and its question.

    ``panel``: the column whose values make the panels (default ``ipc``, titled "IPC n", sorted;
    another column's values are the titles, in the order they first appear)."""
    import matplotlib.pyplot as plt

    ipcs = sorted(table[panel].unique()) if panel == "ipc" else list(dict.fromkeys(table[panel]))
    # one row per contrast, at the same height in every panel (a panel may lack some)
    names = list(dict.fromkeys(table["contrast"]))
    questions = dict(zip(table["contrast"], table["question"])) if "question" in table else {}
    row = {name: len(names) - 1 - i for i, name in enumerate(names)}
    fig, axes = plt.subplots(1, len(ipcs), figsize=(6.0 + 3.0 * len(ipcs), 1.2 + 0.5 * len(names)), squeeze=False,
                             sharey=True)
    for ax, ipc in zip(axes[0], ipcs):
        for r in table[table[panel] == ipc].to_dict("records"):
            yi = row[r["contrast"]]
            a, b = (s.strip() for s in r["contrast"].split(" - ", 1))
            st = verdict_style(r["verdict"], a, b)
            if not np.isnan(r["low"]):
                ax.plot([r["low"], r["high"]], [yi, yi], color=st["color"], lw=2.2)
            ax.plot(r["diff"], yi, st["marker"], color=st["color"], mfc=st["color"] if st["filled"] else "white",
                    mec=st["color"], mew=1.5, ms=7)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(f"IPC {ipc}" if panel == "ipc" else str(ipc), fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        for y in range(len(names)):
            ax.axhline(y, color="0.92", lw=0.6, zorder=0)
    axes[0][0].set_yticks(list(row.values()))
    axes[0][0].set_yticklabels([f"{n}\n{questions[n]}" if n in questions else n for n in row], fontsize=7.5)
    axes[0][0].set_ylim(-0.6, len(names) - 0.4)
    fig.supxlabel("difference A - B in accuracy (points), mean and 95 % interval over selection seeds", fontsize=9)
    axes[0][-1].legend(handles=verdict_handles(), fontsize=7.5, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                       frameon=False, title="verdict", title_fontsize=8)
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
        ax.plot([r["step"] for r in log], [r[key] for r in log], lw=1.5, color=PALETTE[0])
        ax.set_title(name)
        ax.set_xlabel(label("step"))
        ax.set_ylabel(label(key))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
def plot_accuracy_curve(curve: Sequence[tuple[int, float]], title: str | None = None):
    """Test accuracy of one network over its epochs: the last point is ``acc`` (the headline),
    the highest is ``acc_best`` (chosen by looking at the test split, so never the headline)."""
    import matplotlib.pyplot as plt

    ep, acc = np.asarray([c[0] for c in curve]), np.asarray([c[1] for c in curve])
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    ax.plot(ep, acc, "-o", ms=3, color="0.45", label="test accuracy during training")
    b = int(np.argmax(acc))
    ax.scatter([ep[-1]], [acc[-1]], s=70, color=OKABE_ITO[0], zorder=5, label=f"acc (after the last epoch): {acc[-1]:.1f}")
    ax.scatter([ep[b]], [acc[b]], s=70, marker="^", color=OKABE_ITO[3], zorder=5,
               label=f"acc_best (max, epoch {ep[b]}): {acc[b]:.1f}")
    ax.set_xlabel(label("epoch"))
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
