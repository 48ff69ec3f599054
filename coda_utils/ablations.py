"""Notebook 05's ablation sweeps as tables and figures, and the sweeps' names for notebooks 05 and 06.

The sweeps themselves (the runner, its points, the fit / val cut, :func:`collect`) are
:mod:`coda_utils.sweeps`, re-exported here. This module draws on them: :func:`sweep_table` (a
sweep as rows x columns of the mean over selection seeds), :func:`choice_table` (each point's
mean ± std over seeds and the best point's paired contrast with the runner-up, so a chosen
default comes with its interval, and no choice from fewer than :data:`MIN_SEEDS_TO_CHOOSE` seeds)
and :func:`sweep_figures` (a line with error bars per sweep, :func:`coda_utils.plots.plot_sweep`). It sits with the presentation (``docs/layout.md``): the figures are why.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import rundir
from .sweeps import (CHOICES, SWEEPS, AblationRunner, PixelFeatures, collect, fit_and_val, make_runner, prepare,
                     sweep_points)

__all__ = [
    "MIN_SEEDS_TO_CHOOSE",
    "sweep_table",
    "choice_table",
    "sweep_figures",
    # re-exported from coda_utils.sweeps
    "SWEEPS",
    "CHOICES",
    "PixelFeatures",
    "AblationRunner",
    "sweep_points",
    "prepare",
    "make_runner",
    "fit_and_val",
    "collect",
]


def _integral(points: pd.DataFrame, cols) -> pd.DataFrame:
    points = points.copy()
    for c in cols:  # integral values read back as floats (other sweeps leave NaN in the column)
        if c is not None and c in points and points[c].dtype.kind == "f" and (points[c].dropna() % 1 == 0).all():
            points[c] = points[c].astype("Int64")
    return points


def sweep_table(points: pd.DataFrame) -> pd.DataFrame:
    """One sweep's points as a table: rows x columns of the mean accuracy over selection seeds
    (a 1-D sweep is one row)."""
    sweep = points["sweep"].iloc[0]
    row, col = SWEEPS[sweep]
    points = _integral(points, (row, col))
    if col is None:
        return points.groupby(row)["acc"].mean().to_frame("target_val acc").T
    return points.pivot_table(index=row, columns=col, values="acc", aggfunc="mean")


def _labels(points: pd.DataFrame, sweep: str) -> pd.Series:
    row, col = SWEEPS[sweep]
    points = _integral(points, (row, col))
    if col is None:
        return points[row].astype(str).radd(f"{row} ")
    return points[row].astype(str).radd(f"{row} ") + ", " + points[col].astype(str).radd(f"{col} ")


#: a sweep chooses a setting only from this many selection seeds per point (fewer: the table says so)
MIN_SEEDS_TO_CHOOSE = 3


def choice_table(points: pd.DataFrame) -> tuple[str, str]:
    """One sweep's points as a markdown table (mean ± std over selection seeds, seeds) and a
    sentence on the best point: its paired contrast with the runner-up (95 % t interval over
    the seeds they share), or "not a choice" for the IPC sweep and for points with fewer than
    :data:`MIN_SEEDS_TO_CHOOSE` seeds."""
    from .stats import contrast

    sweep = points["sweep"].iloc[0]
    pts = points.assign(point=_labels(points, sweep))
    g = pts.groupby("point", sort=False)["acc"]
    summary = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "seeds": g.size()}).sort_values("mean", ascending=False)
    lines = ["| point | target_val acc (%), mean ± std over seeds | seeds |", "|---|---:|---:|"]
    for name, r in summary.iterrows():
        std = "" if pd.isna(r["std"]) else f" ± {r['std']:.1f}"
        lines.append(f"| {name} | {r['mean']:.1f}{std} | {int(r['seeds'])} |")
    if sweep not in CHOICES or len(summary) < 2:
        return "\n".join(lines), "" if sweep in CHOICES else "(Not a choice: more images per class is a budget, not a setting.)"
    best, second = summary.index[0], summary.index[1]
    by_seed = {n: part.set_index("selection_seed")["acc"] for n, part in pts.groupby("point")}
    c = contrast(by_seed[best], by_seed[second], a_name=best, b_name=second)
    interval = "-" if np.isnan(c["low"]) else f"[{c['low']:+.1f}, {c['high']:+.1f}]"
    verdict = ("better than the runner-up" if c["verdict"] == f"{best} higher" else
               "not distinguishable from the runner-up" if c["verdict"] == "not distinguishable" else c["verdict"])
    n = c["n_pairs"] or min(c["n_a"], c["n_b"])
    if n < MIN_SEEDS_TO_CHOOSE:  # an interval on one degree of freedom chooses nothing
        note = (f"Highest here: {best}; against the runner-up ({second}): {c['diff']:+.1f} points, 95 % interval "
                f"{interval} ({c['test'] or 'no test'}, {n} seeds). Not a choice: {n} seeds are too few to choose a "
                f"setting, a choice needs at least {MIN_SEEDS_TO_CHOOSE}.")
        return "\n".join(lines), note
    note = (f"Best: **{best}**; against the runner-up ({second}): {c['diff']:+.1f} points, 95 % interval {interval} "
            f"({c['test'] or 'no test'}, {n} seeds): {verdict}.")
    return "\n".join(lines), note


def sweep_figures(points: pd.DataFrame, figures_dir: str | Path) -> dict[str, pd.DataFrame]:
    """A figure per sweep (``figures_dir/ablation_<sweep>.png``, :func:`coda_utils.plots.plot_sweep`:
    the mean over selection seeds with ± std error bars, every seed a dot, a line per value of a
    second swept parameter); returns the tables of mean ± std over seeds."""
    from .plots import plot_sweep, save_figure

    tables = {}
    for sweep, part in points.groupby("sweep", sort=False):
        row, col = SWEEPS[sweep]
        fig = plot_sweep(part, row, col, title=f"{sweep} sweep: accuracy on target_val, {part['selection_seed'].nunique()} "
                                               "selection seeds")
        save_figure(fig, rundir.AblationDir.figure(figures_dir, sweep))
        pts = part.assign(point=_labels(part, sweep))
        g = pts.groupby("point", sort=False)["acc"]
        tables[sweep] = pd.DataFrame({"mean": g.mean().round(2), "std over seeds": g.std(ddof=1).round(2), "seeds": g.size()})
    return tables
