"""The results table: one row per trained network, the files that hold them, their summaries.

Every evaluation of the study (notebook 04, the ablation sweeps, ``coda_utils.scale 04``) appends
one row per trained network to a ``results.csv`` (:func:`coda_utils.evaluation.evaluate`). This
module owns that table: its columns, reading a file (:func:`read_results`) and appending to it
(:func:`append_results`), the summary over selection seeds (:func:`summarize`) and its markdown
(:func:`format_table`), and which protocols' rows carry a teacher's soft labels
(:data:`SOFT_LABEL_PROTOCOLS`: they never share a table with the others, nor an evaluation folder,
:meth:`coda_utils.rundir.RunDir.eval_dir`). It belongs to the base layer: the run folder, the
process group (:mod:`coda_utils.parallel` merges the per-process files) and the report read it
without importing the training code.

Results: the headline number is ``acc``, the test accuracy of the **final** network.
``acc_best`` is the best test accuracy over the evaluations made during training, i.e. a
number selected on the test set (what the CoDA reference reports); it is kept only as a
clearly labelled secondary column. Accuracies are in percent.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .io import atomic_write, read_table

__all__ = [
    "SOFT_LABEL_PROTOCOLS",
    "RESULT_COLUMNS",
    "CSV_COLUMNS",
    "KEY_COLUMNS",
    "NO_TEACHER",
    "read_results",
    "append_results",
    "GROUP_COLUMNS",
    "summarize",
    "format_table",
]

#: the protocols whose targets come from a teacher (soft labels); never in one table with the others
SOFT_LABEL_PROTOCOLS = ("rded",)
#: the columns of :func:`~coda_utils.evaluation.evaluate`'s results; ``epochs`` and ``precision`` follow them (the
#: resume key needs them)
RESULT_COLUMNS = ["method", "ipc", "arch", "protocol", "selection_seed", "seed", "acc", "acc_best", "train_seconds"]
#: the columns of a results file, in this order (extra columns follow them)
CSV_COLUMNS = RESULT_COLUMNS + ["epochs", "precision", "teacher"]
#: the columns that identify one network's row (a results file holds each once)
KEY_COLUMNS = ["method", "ipc", "arch", "protocol", "selection_seed", "seed", "epochs", "precision", "teacher"]
#: the ``teacher`` of a hard-label row
NO_TEACHER = "none"


#: defaults for the columns that results files written before they existed lack: those files
#: hold one selection (seed 0) evaluated in fp32 with hard labels
_LEGACY_DEFAULTS = {"selection_seed": 0, "precision": "fp32", "teacher": NO_TEACHER}
_DTYPES = {"method": str, "arch": str, "protocol": str, "precision": str, "teacher": str}


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """Read a results file of :func:`~coda_utils.evaluation.evaluate` (an empty table with its columns if ``path`` does
    not exist). Files written before ``selection_seed`` and ``precision`` existed get 0 and
    ``"fp32"``, which is what they measured.

    Raises:
        ValueError: ``path`` lacks a column of :func:`~coda_utils.evaluation.evaluate`'s results.
        coda_utils.io.CorruptFileError: ``path`` does not parse (the message names the fix).
    """
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=CSV_COLUMNS)
    df = read_table(path, f"restore it, or delete it (rm {path}) and run notebook 04 again with the same parameters: "
                          "it trains the networks of the deleted rows again", dtype=_DTYPES)
    for col, value in _LEGACY_DEFAULTS.items():
        if col not in df.columns:
            df[col] = value
    missing = [col for col in CSV_COLUMNS if col not in df.columns]
    if missing:
        raise ValueError(f"{path} is not a results file of evaluate(): it lacks columns {missing}")
    return df[CSV_COLUMNS + [c for c in df.columns if c not in CSV_COLUMNS]]


def append_results(path: Path, rows: pd.DataFrame) -> None:
    """Read ``path``, add ``rows``, write it back through a temporary file + ``os.replace``."""
    old = read_results(path)
    new = rows if old.empty else pd.concat([old, rows], ignore_index=True)
    with atomic_write(path, "w") as fh:
        new.to_csv(fh, index=False)



#: the columns that identify one experiment (everything but the seeds)
GROUP_COLUMNS = ["method", "ipc", "arch", "protocol", "epochs", "precision", "teacher"]


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread of each experiment, over selection seeds and, separately, over networks.

    Rows of ``df`` (one per network, as :func:`~coda_utils.evaluation.evaluate` returns or :func:`read_results`
    reads) are grouped by ``method, ipc, arch, protocol, epochs, precision, teacher`` (the last
    three when present, so runs of different lengths, precisions or teachers never mix). Within a group, each
    selection seed's networks are averaged first; then

    - ``acc_mean``, ``acc_std``: mean and sample std over selection seeds of those averages
      (the headline; NaN std for a single selection);
    - ``net_std``: the spread between networks trained on the same set, the pooled
      within-set sample std (NaN when every set has one network);
    - ``acc_best_mean``, ``acc_best_std``: the same over selection seeds for ``acc_best``;
    - ``seeds`` (selection seeds), ``networks`` (per seed, the smallest count) and ``n``
      (all networks).
    """
    base = ["method", "ipc", "arch", "protocol", "seed", "acc", "acc_best"]
    missing = [col for col in base if col not in df.columns]
    if missing:
        raise ValueError(f"summarize needs the columns of evaluate(); missing {missing}")
    df = df.copy()
    for col, value in _LEGACY_DEFAULTS.items():
        if col not in df.columns:
            df[col] = value
    keys = [c for c in GROUP_COLUMNS if c in df.columns]
    per_set = df.groupby(keys + ["selection_seed"], sort=True).agg(
        acc=("acc", "mean"), acc_best=("acc_best", "mean"), networks=("acc", "size"),
        ss=("acc", lambda a: float(((a - a.mean()) ** 2).sum())))
    g = per_set.groupby(keys, sort=True)
    dof = g["networks"].sum() - g["networks"].size()
    out = pd.DataFrame({
        "acc_mean": g["acc"].mean(),
        "acc_std": g["acc"].std(ddof=1),
        "net_std": np.sqrt(g["ss"].sum() / dof.where(dof > 0)),
        "acc_best_mean": g["acc_best"].mean(),
        "acc_best_std": g["acc_best"].std(ddof=1),
        "seeds": g["acc"].size(),
        "networks": g["networks"].min(),
        "n": g["networks"].sum(),
    })
    return out.reset_index()


def _pm(mean: float, std: float) -> str:
    return f"{mean:.1f}" if pd.isna(std) else f"{mean:.1f} ± {std:.1f}"


def format_table(summary: pd.DataFrame, settings: Sequence[str] | None = None) -> str:
    """A markdown table of :func:`summarize`'s output (two tables, each with its heading, when
    it holds both hard-label and soft-label protocols: they are never compared in one).

    "acc (final)" is the headline: mean ± std over selection seeds (each seed's networks
    averaged). "network std" is the spread between networks trained on one set, shown apart
    from it ("-" where each set has one network). "acc_best (secondary, selected on test)" is
    the best test accuracy seen during training, which selects on the test set and is shown
    for comparison with papers that report it. "seeds x networks" counts the evaluations.

    Args:
        settings: the setting columns to show (default ``ipc, arch, protocol, epochs,
            precision``, those present); a caller that states constant settings elsewhere
            passes fewer.
    """
    protocols = summary["protocol"].astype(str) if "protocol" in summary.columns else pd.Series([], dtype=str)
    soft = protocols.isin(SOFT_LABEL_PROTOCOLS).to_numpy()
    if soft.any() and not soft.all():  # soft and hard labels never share a table
        return "\n\n".join([
            "Hard labels (cross-entropy on the set's own labels):", format_table(summary[~soft], settings),
            "Soft labels (a teacher relabels every augmented batch; not comparable with the table above):",
            format_table(summary[soft], settings)])
    if settings is None:
        settings = [c for c in ("ipc", "arch", "protocol", "epochs", "precision") if c in summary.columns]
        if soft.any() and "teacher" in summary.columns:
            settings.append("teacher")
    headers = ["method"] + [("IPC" if c == "ipc" else c) for c in settings] + [
        "acc (final), mean ± std over selection seeds", "network std", "acc_best (secondary, selected on test)",
        "seeds x networks"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * (len(headers) - 4) + ["---:"] * 4) + "|"]
    for r in summary.to_dict("records"):
        cells = [str(r["method"])] + [str(r[c]) for c in settings]
        net = "-" if pd.isna(r.get("net_std", np.nan)) else f"{r['net_std']:.1f}"
        count = f"{r['seeds']} x {r['networks']}" if "seeds" in r else str(r["n"])
        cells += [_pm(r["acc_mean"], r["acc_std"]), net, _pm(r["acc_best_mean"], r["acc_best_std"]), count]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
