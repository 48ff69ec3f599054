"""Notebook 05's ablation sweeps as tables and figures, and the sweeps' names for notebooks 05 and 06.

The sweeps themselves (the runner, its points, the fit / val cut, :func:`collect`) are
:mod:`coda_utils.sweeps`, re-exported here. This module draws on them: :func:`sweep_table` (a
sweep as rows x columns of the mean over selection seeds), :func:`choice_table` (each point's
mean ± std over seeds and the best point's paired contrast with the runner-up, so a chosen
default comes with its interval, and no choice from fewer than :data:`MIN_SEEDS_TO_CHOOSE` seeds)
and :func:`selection_table` (the ``selection`` sweep: every way of making set R against
discovery and against random real, paired over seeds, and which explanation of discovery's
place the intervals support), and :func:`sweep_figures` (a line with error bars per sweep, :func:`coda_utils.plots.plot_sweep`). It sits with the presentation (``docs/layout.md``): the figures are why.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import rundir
from .sweeps import (CHOICES, SELECTION_POINTS, SWEEPS, AblationRunner, ArrayFeatures, PixelFeatures, collect, fit_and_val,
                     make_runner, prepare, sweep_points)

__all__ = [
    "MIN_SEEDS_TO_CHOOSE",
    "sweep_table",
    "choice_table",
    "sweep_figures",
    "selection_table",
    "SELECTION_REFERENCES",
    # re-exported from coda_utils.sweeps
    "SWEEPS",
    "CHOICES",
    "SELECTION_POINTS",
    "ArrayFeatures",
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
    if sweep == "selection":
        return selection_table(points)
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


#: the ``selection`` sweep's references: every point is contrasted with both, paired over seeds
SELECTION_REFERENCES = ("discovery", "random_real")
#: the explanations of discovery's place that the ``selection`` sweep's points test, each by
#: one change of discovery (:data:`coda_utils.sweeps.SELECTION_POINTS`)
_EXPLANATIONS = {"discovery_no_noise_fill": "the exactly-IPC fill from HDBSCAN's noise",
                 "discovery_pixels": "the feature space (pixels instead of VAE latents)",
                 "discovery_pca": "the feature space (a 50-d PCA of the latents)",
                 "discovery_judge": "the feature space (a classifier's features)",
                 "discovery_unscaled": "the hyperparameters scaled to the class size (the reference's unscaled)"}
_STRATEGY_COLUMNS = {"strategy_hdbscan": "HDBSCAN", "strategy_split": "split", "strategy_noise_fill": "noise fill",
                     "strategy_forced_split": "forced split"}


def _contrast_cell(c: dict) -> str:
    if np.isnan(c["low"]):
        return f"{c['diff']:+.1f} (-)"
    return f"{c['diff']:+.1f} [{c['low']:+.1f}, {c['high']:+.1f}]"


def selection_table(points: pd.DataFrame) -> tuple[str, str]:
    """The ``selection`` sweep (notebook 05; ``notebooks/params/ipc50.yaml``) as a markdown table
    and a sentence. A row per way of making set R (in :data:`~coda_utils.sweeps.SELECTION_POINTS`'
    order): its ``target_val`` accuracy (mean ± std over selection seeds), where discovery's
    representatives came from (mean over seeds of the count per exactly-IPC strategy, every
    class), and its paired contrasts (95 % t interval over the shared seeds,
    :func:`coda_utils.stats.contrast`) with each of
    :data:`SELECTION_REFERENCES`. The sentence says whether discovery is below random real on this
    cut and which explanations the intervals support: a one-change variant of discovery whose
    interval against discovery is above 0."""
    from .stats import contrast

    order = [n for n in SELECTION_POINTS if n in set(points["selection"])]
    order += sorted(set(points["selection"]) - set(order))
    by_seed = {n: part.set_index("selection_seed")["acc"] for n, part in points.groupby("selection")}
    strategies = [c for c in _STRATEGY_COLUMNS if c in points and points[c].fillna(0).sum() > 0]
    refs = [r for r in SELECTION_REFERENCES if r in by_seed]
    head = (["set R made by", "target_val acc (%), mean ± std over seeds", "seeds"]
            + ([f"representatives: {' / '.join(_STRATEGY_COLUMNS[c] for c in strategies)}"] if strategies else [])
            + [f"- {r}, 95 % interval" for r in refs])
    lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|" + "---:|" * (len(head) - 3)]
    contrasts = {}
    for n in order:
        acc = by_seed[n]
        cells = [n, f"{acc.mean():.1f}" + ("" if len(acc) < 2 else f" ± {acc.std(ddof=1):.1f}"), str(len(acc))]
        if strategies:
            part = points[points["selection"] == n]
            cells.append("-" if part[strategies].isna().all().all()
                         else " / ".join(f"{part[c].mean():.0f}" for c in strategies))
        for r in refs:
            if r == n:
                cells.append("")
                continue
            contrasts[n, r] = c = contrast(acc, by_seed[r], a_name=n, b_name=r)
            cells.append(_contrast_cell(c))
        lines.append("| " + " | ".join(cells) + " |")
    ipc = _join_ints(points["ipc"]) if "ipc" in points else "?"
    said = []
    if ("discovery", "random_real") in contrasts:
        c = contrasts["discovery", "random_real"]
        said.append(f"At IPC {ipc} discovery minus random real is {c['diff']:+.1f} points "
                    f"({_interval(c)}, {c['n_pairs'] or min(c['n_a'], c['n_b'])} seeds: {c['verdict']})")
    gap = ("discovery", "random_real") in contrasts and contrasts["discovery", "random_real"]["high"] < 0
    if ("discovery", "random_real") in contrasts and not gap:
        said.append("so this cut shows no gap below random real for a change of discovery to close")
    tested = {n: contrasts[n, "discovery"] for n in _EXPLANATIONS if (n, "discovery") in contrasts}
    if tested and any(np.isnan(c["low"]) for c in tested.values()):
        said.append("too few paired seeds for an interval: no explanation is tested")
    elif tested and not gap and not any(c["low"] > 0 or c["high"] < 0 for c in tested.values()):
        said.append("no one-change variant moves it beyond its interval (" + ", ".join(
            f"{n} {c['diff']:+.1f} [{c['low']:+.1f}, {c['high']:+.1f}]" for n, c in tested.items()) + ")")
    elif tested:
        helps = [n for n, c in tested.items() if c["low"] > 0]
        for n in helps:
            said.append(f"{n} is above discovery by {tested[n]['diff']:+.1f} ({_interval(tested[n])}): "
                        f"the intervals support {_EXPLANATIONS[n]} as a cause")
        rest = [n for n in tested if n not in helps]
        if rest:
            lower = [n for n in rest if tested[n]["high"] < 0]
            said.append(", ".join(rest) + " " + ("is" if len(rest) == 1 else "are") + " not above discovery"
                        + (f" ({', '.join(lower)} below it)" if lower else "")
                        + ": the intervals do not support " + "; nor ".join(dict.fromkeys(_EXPLANATIONS[n] for n in rest))
                        + " as a cause")
    above = [n for n in order if (n, "random_real") in contrasts and contrasts[n, "random_real"]["low"] > 0]
    if "random_real" in by_seed and len(by_seed) > 1:
        said.append("above random real: " + (", ".join(above) if above else "none of the points"))
    note = ("; ".join(said) + ". Judged on `target_val`, never `test`.") if said else ""
    return "\n".join(lines), note[:1].upper() + note[1:]


def _interval(c: dict) -> str:
    return "no interval" if np.isnan(c["low"]) else f"95 % interval [{c['low']:+.1f}, {c['high']:+.1f}]"


def _join_ints(values) -> str:
    return ", ".join(str(int(v)) for v in sorted(pd.Series(values).dropna().unique()))
