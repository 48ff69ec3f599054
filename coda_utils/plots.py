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
from .plots_style import (_FAMILY_MARKERS, _METHOD_COLORS, _VERDICTS, COLUMN_WIDTH, FULL_WIDTH, LABELS, METHOD_ORDER,
                          NEUTRAL, OKABE_ITO, PALETTE, PAPER_STYLE, SEQUENTIAL_CMAP, _palette, image_grid, label,
                          legend_below, method_color, method_marker, method_order, paper_style, save_figure,
                          set_comparison_grid, text_size, verdict_handles, verdict_style)

__all__ = ["image_grid", "set_comparison_grid", "plot_seeds", "plot_contrasts", "plot_overlap",
           "save_figure", "plot_training_curves", "reconstruction_grid", "plot_class_embedding", "plot_cluster_sizes",
           "selection_grid", "trajectory_figure", "distance_figure", "plot_standardize", "plot_clusters", "plot_exactly_ipc",
           "guidance_step_figure", "plot_accuracy_curve", "METHOD_ORDER", "PALETTE", "method_order", "method_color",
           "method_marker", "label", "verdict_style", "verdict_handles", "plot_sweep", "guidance_scale_figure",
           "plot_exactly_ipc_step", "paper_figures", "paper_style", "COLUMN_WIDTH", "FULL_WIDTH", "SEQUENTIAL_CMAP"]


def _tick(v) -> str:
    """A swept value as a label: integral floats without ``.0`` (values read back from a CSV)."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def plot_sweep(points, x: str, hue: str | None = None, value: str = "acc", ylabel: str | None = None,
               title: str | None = None, width: float | None = None):
    """A sweep as lines with error bars: the mean over selection seeds of ``value`` at every
    swept ``x`` (error bar: ± std over seeds), every seed a small dot behind it, one line per
    ``hue`` value for a two-parameter sweep. A categorical ``x`` (text) is drawn as dots and
    intervals without lines (a categorical ``x`` with a numeric ``hue`` is drawn the other way
    round, so that the line runs along the numbers).

    Args:
        points: one row per (point, selection seed): the swept columns, ``selection_seed`` and
            ``value`` (:func:`coda_utils.ablations.collect` or ``results/ablations.csv``).
        ylabel: the value's axis label (default: :func:`label` of ``"val_acc"`` for ``acc``).
        width: the figure's width in inches (a paper's, :data:`COLUMN_WIDTH`), its legend under
            the panel; default: the notebooks' size, the legend on the right.
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
    fig, ax = plt.subplots(figsize=(5.6 if hue is None else 6.4, 3.6) if width is None else (width, 0.62 * width + 0.5))
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
        ax.errorbar(stats_["p"], stats_["mean"], yerr=stats_["std"].fillna(0.0), color=color,
                    capsize=4 if width is None else 2.5, lw=1.6 if width is None else 1.1, marker="o",
                    ms=6 if width is None else 4, ls="-" if numeric(x) else "none", zorder=3,
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
    handles += [Line2D([], [], color="0.3", marker="o", ms=text_size(5), lw=text_size(1.4),
                       label=f"mean ± std over {seeds_n} selection seeds"),
                Line2D([], [], ls="", marker="o", ms=text_size(4), color="0.3", alpha=0.45, label="one selection seed")]
    if title:
        ax.set_title(title, fontsize=text_size(10))
    if width is None:
        ax.legend(handles=handles, fontsize=7.5, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
        fig.tight_layout()
    else:
        legend_below(fig, handles, ncol=2)
    return fig


def plot_overlap(overlaps: dict[str, np.ndarray], seeds: Sequence[int], title: str | None = None,
                 width: float | None = None):
    """One annotated heatmap per selection method: the share of seed i's picks that seed j
    picks too (:func:`coda_utils.baselines.selection_overlap`), in :data:`SEQUENTIAL_CMAP`.
    ``width``: the figure's width in inches (a paper's), default the notebooks' size."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    figsize = ((0.9 + 0.75 * len(seeds) * len(overlaps) + 0.8, 0.9 + 0.6 * len(seeds)) if width is None else
               (width, 0.75 + (width - 0.4 * len(overlaps)) / len(overlaps) * 0.8))
    fig, axes = plt.subplots(1, len(overlaps), figsize=figsize, squeeze=False)
    for ax, (name, m) in zip(axes[0], overlaps.items()):
        sns.heatmap(100 * np.asarray(m), annot=True, fmt=".0f", vmin=0, vmax=100, cmap=SEQUENTIAL_CMAP, cbar=False, ax=ax,
                    xticklabels=list(seeds), yticklabels=list(seeds), annot_kws={"fontsize": text_size(8)})
        ax.set_title(f"{name}: % of seed i's picks\nalso picked by seed j", fontsize=text_size(9))
        ax.set_xlabel("selection seed j")
        ax.set_ylabel("selection seed i")
        ax.tick_params(axis="y", rotation=0)
    if title:
        fig.suptitle(title, fontsize=text_size(10))
    fig.tight_layout()
    return fig


def plot_seeds(df, title: str | None = None, order: Sequence[str] | None = None, value: str = "acc",
               width: float | None = None):
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
        width: the figure's width in inches (a paper's, :data:`COLUMN_WIDTH` or :data:`FULL_WIDTH`),
            the legend under the panels; default: the notebooks' size, the legend on the right.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from .stats import per_seed

    seeds = per_seed(df, value)
    ipcs = sorted(seeds["ipc"].unique())
    names = list(order) if order is not None else method_order(seeds["method"])
    row = {m: len(names) - 1 - i for i, m in enumerate(names)}  # the first method on top
    figsize = (3.0 + 3.8 * len(ipcs), 0.9 + 0.46 * len(names)) if width is None else (width, 0.5 + 0.22 * len(names))
    fig, axes = plt.subplots(1, len(ipcs), figsize=figsize, squeeze=False, sharey=True)
    small = width is not None  # the paper's sizes: smaller marks
    s_dot, lw_mean = (28, 1.8) if not small else (13, 1.2)
    rng = np.random.default_rng(0)
    up, down = 0.14, -0.2  # the dots above the row's line, the mean and its spread below it
    for ax, ipc in zip(axes[0], ipcs):
        part = seeds[seeds["ipc"] == ipc]
        lo, hi = float(df.loc[df["ipc"] == ipc, value].min()), float(df.loc[df["ipc"] == ipc, value].max())
        for m in names:
            y, vals = row[m], part.loc[part["method"] == m, value].to_numpy(float)
            color, marker = method_color(m), method_marker(m)
            if len(vals) == 0:
                ax.text(lo, y, "not run at this IPC", fontsize=text_size(7), color="0.45", va="center")
                continue
            nets = df.loc[(df["ipc"] == ipc) & (df["method"] == m), value].to_numpy(float)
            if len(vals) == 1 and len(nets) > 1:  # one (deterministic) set: its networks instead
                ax.scatter(nets, y + up + rng.uniform(-0.1, 0.1, len(nets)), s=s_dot - 2, marker=marker,
                           facecolors="white", edgecolors=color, linewidths=1.2 if not small else 0.8, zorder=3,
                           gid=f"networks:{m}")
                ax.plot([nets.mean()] * 2, [y + down - 0.12, y + down + 0.12], color="black", lw=lw_mean, zorder=4)
                continue
            ax.scatter(vals, y + up + rng.uniform(-0.1, 0.1, len(vals)), s=s_dot, marker=marker, color=color,
                       edgecolors="black", linewidths=0.5 if not small else 0.35, zorder=3, gid=f"seeds:{m}")
            ax.plot([vals.mean()] * 2, [y + down - 0.12, y + down + 0.12], color="black", lw=lw_mean, zorder=4)
            if len(vals) > 1:
                sd = vals.std(ddof=1)
                ax.plot([vals.mean() - sd, vals.mean() + sd], [y + down] * 2, color="black", lw=1.2 if not small else 0.8,
                        zorder=2)
                lo, hi = min(lo, vals.mean() - sd), max(hi, vals.mean() + sd)  # the interval inside the axis
        pad = max(0.6, 0.06 * (hi - lo))
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_title(f"IPC {ipc}", fontsize=text_size(10))
        if width is None or ax is axes[0][len(ipcs) // 2]:  # a paper's narrow panels: one label, under the middle one
            ax.set_xlabel(label(value), fontsize=text_size(9))
        ax.grid(axis="x", alpha=0.3)
        for y in range(len(names)):
            ax.axhline(y, color="0.92", lw=0.6, zorder=0)
    axes[0][0].set_yticks(list(row.values()))
    axes[0][0].set_yticklabels(list(row), fontsize=text_size(9))
    axes[0][0].set_ylim(-0.6, len(names) - 0.4)
    ms = text_size(6)  # the marks' sizes follow the style's text (the paper's: smaller)
    handles = [Line2D([], [], ls="", marker="o", ms=ms, color="0.55", mec="black", mew=0.5,
                      label="one selection seed (its networks averaged)"),
               Line2D([], [], ls="", marker="o", ms=ms, mfc="white", mec="0.35", label="one network (deterministic set)"),
               Line2D([], [], color="black", lw=1.0, marker="|", ms=2 * ms, mew=text_size(1.6), label="mean ± std over seeds"),
               Line2D([], [], ls="", marker="o", ms=ms, color="0.7", label="circle: real images"),
               Line2D([], [], ls="", marker="s", ms=ms, color="0.7", label="square: generated"),
               Line2D([], [], ls="", marker="D", ms=text_size(5), color="0.7", label="diamond: through the VAE and back")]
    if title:
        fig.suptitle(title, fontsize=text_size(10))
    if width is None:
        axes[0][-1].legend(handles=handles, fontsize=7.5, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
        fig.tight_layout()
    else:
        legend_below(fig, handles, ncol=2 if len(ipcs) == 1 else 3)
    return fig


def plot_contrasts(table, title: str | None = None, panel: str = "ipc", width: float | None = None):
    """The contrasts of :func:`coda_utils.stats.contrasts` as a forest plot: the mean
    difference and its 95 % interval per contrast (one panel per IPC, every contrast on the same
    row in every panel), zero marked. The verdict is a colour and a marker, with a legend
    (:func:`verdict_style`); each row is labelled with its contrast and its question.

    ``panel``: the column whose values make the panels (default ``ipc``, titled "IPC n", sorted;
    another column's values are the titles, in the order they first appear). ``width``: the
    figure's width in inches (a paper's, :data:`FULL_WIDTH`), the legend under the panels;
    default: the notebooks' size, the legend on the right."""
    import matplotlib.pyplot as plt

    ipcs = sorted(table[panel].unique()) if panel == "ipc" else list(dict.fromkeys(table[panel]))
    # one row per contrast, at the same height in every panel (a panel may lack some)
    names = list(dict.fromkeys(table["contrast"]))
    questions = dict(zip(table["contrast"], table["question"])) if "question" in table else {}
    row = {name: len(names) - 1 - i for i, name in enumerate(names)}
    figsize = (6.0 + 3.0 * len(ipcs), 1.2 + 0.5 * len(names)) if width is None else (width, 0.9 + 0.34 * len(names))
    fig, axes = plt.subplots(1, len(ipcs), figsize=figsize, squeeze=False, sharey=True)
    lw, ms = (2.2, 7) if width is None else (1.4, 4.5)
    for ax, ipc in zip(axes[0], ipcs):
        for r in table[table[panel] == ipc].to_dict("records"):
            yi = row[r["contrast"]]
            a, b = (s.strip() for s in r["contrast"].split(" - ", 1))
            st = verdict_style(r["verdict"], a, b)
            if not np.isnan(r["low"]):
                ax.plot([r["low"], r["high"]], [yi, yi], color=st["color"], lw=lw)
            ax.plot(r["diff"], yi, st["marker"], color=st["color"], mfc=st["color"] if st["filled"] else "white",
                    mec=st["color"], mew=1.5 if width is None else 1.0, ms=ms)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(f"IPC {ipc}" if panel == "ipc" else str(ipc), fontsize=text_size(10))
        ax.grid(axis="x", alpha=0.3)
        for y in range(len(names)):
            ax.axhline(y, color="0.92", lw=0.6, zorder=0)
    axes[0][0].set_yticks(list(row.values()))
    axes[0][0].set_yticklabels([f"{n}\n{questions[n]}" if n in questions else n for n in row], fontsize=text_size(7.5))
    axes[0][0].set_ylim(-0.6, len(names) - 0.4)
    xlabel = "difference A - B in accuracy (points), mean and 95 % interval over selection seeds"
    if title:
        fig.suptitle(title, fontsize=text_size(10))
    if width is None:
        fig.supxlabel(xlabel, fontsize=9)
        axes[0][-1].legend(handles=verdict_handles(), fontsize=7.5, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                           frameon=False, title="verdict", title_fontsize=8)
        fig.tight_layout()
    else:  # the label under the middle panel, the legend under the label
        axes[0][len(ipcs) // 2].set_xlabel(xlabel)
        legend_below(fig, verdict_handles(), ncol=3)
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


# --------------------------------------------------------------------------------------------
# The paper's figures: the results figures redrawn from the published result files
# --------------------------------------------------------------------------------------------
def paper_figures(out_dir="figures/paper", results_dir="results", run_dir=None, ipc: int = 10,
                  selection_seed: int | None = None, dpi: int = 300, log=print) -> list:
    """Redraw the study's results figures for a two-column paper into ``out_dir``, each a PDF
    (vector, TrueType fonts) and a PNG (``dpi``) by :func:`save_figure`, in the paper style
    (:func:`paper_style`) at a column's width (:data:`COLUMN_WIDTH`) or the full text's
    (:data:`FULL_WIDTH`), without titles (a paper's caption says what a figure shows):

    * from ``results_dir`` (the published files, in a fresh clone): ``results_study`` and
      ``contrasts_study`` (``study.csv``), ``results_full_protocol`` and
      ``contrasts_full_protocol`` (``full_protocol.csv``), ``ablation_<sweep>`` (``ablations.csv``);
    * from the run folder ``run_dir`` (``make study``'s ``runs/study``), when it exists: the sets
      side by side (``sets_ipc<ipc>``, the first ``selection_seed`` found) and the picks shared
      between selection seeds (``discovery_seed_overlap_ipc<ipc>``).

    A figure whose source is missing is skipped with a line (``log``) saying why. Returns the
    PNGs written."""
    from pathlib import Path

    import matplotlib.pyplot as plt
    import pandas as pd

    from . import stats
    from .results import read_results
    from .sweeps import SWEEPS

    out_dir, results_dir = Path(out_dir), Path(results_dir)
    written = []

    def save(fig, name):
        written.append(save_figure(fig, out_dir / f"{name}.png", dpi=dpi))
        plt.close(fig)
        log(f"wrote {written[-1]} and {written[-1].with_suffix('.pdf').name}")

    with paper_style():
        for stem, width in (("study", COLUMN_WIDTH), ("full_protocol", FULL_WIDTH)):
            source = results_dir / f"{stem}.csv"
            if not source.is_file():
                log(f"skipped results_{stem}, contrasts_{stem}: {source} does not exist")
                continue
            df = read_results(source)
            save(plot_seeds(df, width=width), f"results_{stem}")
            table = stats.contrasts(df)
            if table.empty:
                log(f"skipped contrasts_{stem}: no pair of the study's methods in {source}")
            else:
                save(plot_contrasts(table, width=FULL_WIDTH), f"contrasts_{stem}")
        source = results_dir / "ablations.csv"
        if not source.is_file():
            log(f"skipped ablation_<sweep>: {source} does not exist")
        else:
            points = pd.read_csv(source)
            for sweep, part in points.groupby("sweep", sort=False):
                row, col = SWEEPS[sweep]
                save(plot_sweep(part, row, col, width=COLUMN_WIDTH), f"ablation_{sweep}")
        _run_figures(run_dir, ipc, selection_seed, save, log)
    return written


def _run_figures(run_dir, ipc: int, selection_seed: int | None, save, log) -> None:
    """The paper's figures drawn from a run folder's sets (``save(fig, name)``,
    :func:`paper_figures`), or a line saying why not."""
    from pathlib import Path

    from . import rundir, setfolder

    names = f"sets_ipc{ipc}, discovery_seed_overlap_ipc{ipc}"
    if run_dir is None or not Path(run_dir).is_dir():
        log(f"skipped {names}: " + (f"no run folder {run_dir} (a fresh clone has only results/; make study writes it)"
                                    if run_dir is not None else "no run folder given"))
        return
    run = rundir.RunDir(run_dir)
    found = run.discoveries(ipc)
    seed = selection_seed if selection_seed is not None else (found[0] if found else 0)
    sets = {m: run.set_dir(m, ipc, seed) for m in method_order(rundir.STUDY_METHODS)}
    sets = {m: path for m, path in sets.items() if setfolder.is_finished(path)}
    if not sets:
        log(f"skipped sets_ipc{ipc}: no finished set at IPC {ipc}, selection seed {seed} in {run.root}")
    else:
        columns = {m: setfolder.read_set(path).images for m, path in sets.items()}
        manifest = setfolder.read_manifest(next(iter(sets.values())))
        class_names = manifest.get("class_names") or manifest["classes"]
        n_classes = min(len(x) for x in columns.values()) // ipc
        save(set_comparison_grid(columns, n_classes, ipc, class_names[:n_classes], shown=3, width=FULL_WIDTH),
             f"sets_ipc{ipc}")
    from .baselines import selection_overlap

    picks = {}
    for m in ("coda_r", "kmeans"):
        dirs = [run.set_dir(m, ipc, s) for s in run.discoveries(ipc)]  # one set per seed, no variants
        dirs = [d for d in dirs if setfolder.is_finished(d)]
        manifests = [setfolder.read_manifest(d) for d in dirs]
        manifests = sorted((x for x in manifests if "source_indices" in x and "selection_seed" in x),
                           key=lambda x: int(x["selection_seed"]))
        if len(manifests) > 1:
            picks[m] = manifests
    if not picks:
        log(f"skipped discovery_seed_overlap_ipc{ipc}: fewer than two selection seeds of coda_r or kmeans in {run.root}")
        return
    seeds = sorted(set.intersection(*({int(x["selection_seed"]) for x in ms} for ms in picks.values())))
    overlaps = {m: selection_overlap([x["source_indices"] for x in ms if int(x["selection_seed"]) in seeds])
                for m, ms in picks.items()}
    save(plot_overlap(overlaps, seeds, width=COLUMN_WIDTH), f"discovery_seed_overlap_ipc{ipc}")
