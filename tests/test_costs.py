"""The cost table (issue 26): results/costs.csv as benchmarks/bench_costs.py writes it, rendered."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coda_utils import report_costs

ROOT = Path(__file__).resolve().parent.parent


def _rows(stage, method, sizes, ipcs, kn, ki):
    """One row per (class size, IPC) of a benchmark's grid (the sizes at the middle IPC, the IPCs
    at the largest size), seconds = 0.01 n**kn ipc**ki (``None`` sizes or IPCs: not a variable)."""
    grid = ([(n, ipcs[len(ipcs) // 2] if ipcs else None) for n in sizes or [None]]
            + [(sizes[-1] if sizes else None, i) for i in ipcs or []])
    return [{"stage": stage, "method": method, "n_per_class": np.nan if n is None else n, "ipc": np.nan if i is None else i,
             "seconds": 0.01 * (n or 1) ** kn * (i or 1) ** ki} for n, i in dict.fromkeys(grid)]


def test_growth_recovers_the_exponent_of_each_stage_and_variable():
    df = pd.DataFrame(_rows("umap", "coda_r", [250, 500, 950], None, 1.4, 0)
                      + _rows("selection", "kmeans", [250, 500, 950], [1, 10, 50], 0.9, 0.5)
                      + _rows("evaluation", "convnet3", None, [1, 10, 50], 0, 1.0)
                      + [{"stage": "imports", "method": "x", "n_per_class": np.nan, "ipc": np.nan, "seconds": 0.0}])
    g = report_costs.growth(df).set_index(["stage", "method", "variable"])
    assert g.loc[("umap", "coda_r", "n_per_class"), "exponent"] == pytest.approx(1.4)
    assert g.loc[("selection", "kmeans", "n_per_class"), "exponent"] == pytest.approx(0.9)
    assert g.loc[("selection", "kmeans", "ipc"), "exponent"] == pytest.approx(0.5)
    assert g.loc[("selection", "kmeans", "ipc"), "at"] == 950 and g.loc[("selection", "kmeans", "n_per_class"), "at"] == 10
    assert g.loc[("evaluation", "convnet3", "ipc"), "exponent"] == pytest.approx(1.0)
    assert ("umap", "coda_r", "ipc") not in g.index and "imports" not in g.index.get_level_values(0)


def test_the_published_cost_table_covers_every_stage_and_three_sizes():
    """results/costs.csv: every stage and method of the issue, at three class sizes and three IPCs
    at least, each with its seconds and peak memory; the table names the machine and its source."""
    df = pd.read_csv(ROOT / "results" / "costs.csv")
    measured = set(zip(df["stage"], df["method"]))
    for pair in [("encoding", "vae"), ("umap", "coda_r"), ("hdbscan", "coda_r"), ("postprocess", "coda_r"),
                 ("selection", "kmeans"), ("selection", "herding"), ("selection", "random_real"),
                 ("generation", "coda_g"), ("generation", "unguided"), ("evaluation", "convnet3")]:
        assert pair in measured, pair
    work = df[df["stage"] != "imports"]
    assert work["seconds"].gt(0).all() and work["peak_rss_mb"].gt(0).all()
    assert df[df["stage"] == "umap"]["n_per_class"].nunique() >= 3
    assert df[df["stage"] == "generation"]["ipc"].nunique() >= 3
    text = report_costs.cost_table(df, "results/costs.csv")
    assert str(df["cpu"].iloc[0]) in text and "Source: `results/costs.csv`" in text
    assert "CoDA-G: guided generation" in text and "relative to training one network" in text
