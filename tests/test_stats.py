"""Contrasts over selection seeds: paired where the seeds match, Welch otherwise, scipy intervals."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from coda_utils import stats


def _rows(method, accs, ipc=10, networks=1):
    return [{"method": method, "ipc": ipc, "arch": "convnet3", "protocol": "dc", "epochs": 150, "precision": "bf16",
             "selection_seed": s, "seed": s * 1000 + r, "acc": a + 0.1 * r, "acc_best": a} for s, a in enumerate(accs)
            for r in range(networks)]


def test_paired_contrast_is_scipys_interval_of_the_differences():
    a = pd.Series([75.0, 76.5, 74.0, 77.0, 75.5])
    b = pd.Series([73.0, 76.0, 71.5, 75.0, 74.5])
    c = stats.contrast(a, b, a_name="g", b_name="r")
    d = a - b
    lo, hi = st.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=d.std(ddof=1) / np.sqrt(len(d)))
    assert c["test"] == "paired t" and c["n_pairs"] == 5
    assert c["diff"] == pytest.approx(d.mean()) and (c["low"], c["high"]) == pytest.approx((lo, hi))
    assert c["verdict"] == "g higher"  # every difference is positive


def test_unmatched_seeds_use_welch_and_an_interval_over_zero_is_not_distinguishable():
    a = pd.Series([70.0, 74.0, 72.0], index=[0, 1, 2])
    b = pd.Series([71.0, 73.0, 72.5, 70.5], index=[0, 1, 2, 3])
    c = stats.contrast(a, b)
    res = st.ttest_ind(a, b, equal_var=False)
    assert c["test"] == "Welch t" and (c["low"], c["high"]) == pytest.approx(tuple(res.confidence_interval(0.95)))
    assert c["verdict"] == "not distinguishable"
    one = stats.contrast(pd.Series([70.0]), b)
    assert one["verdict"] == "too few seeds" and np.isnan(one["low"])


def test_contrasts_average_networks_per_seed_and_cover_each_setting():
    df = pd.DataFrame(_rows("coda_g", [75, 76, 74], networks=2) + _rows("coda_r", [77, 77.5, 76], networks=2)
                      + _rows("unguided", [60, 58, 59]) + _rows("coda_g", [50, 52], ipc=1) + _rows("coda_r", [51, 50], ipc=1))
    seeds = stats.per_seed(df)
    g10 = seeds[(seeds.method == "coda_g") & (seeds.ipc == 10)]
    assert list(g10["acc"]) == pytest.approx([75.05, 76.05, 74.05]) and set(g10["networks"]) == {2}
    table = stats.contrasts(df)
    assert set(zip(table["ipc"], table["contrast"])) == {(10, "coda_g - unguided"), (10, "coda_g - coda_r"),
                                                         (1, "coda_g - coda_r")}
    row = table[(table.ipc == 10) & (table.contrast == "coda_g - coda_r")].iloc[0]
    assert row["diff"] == pytest.approx(-1.833333, abs=1e-4) and row["verdict"] == "coda_r higher"
    text = stats.format_contrasts(table)
    assert "`coda_g - unguided`" in text and "95 % interval" in text and "coda_g higher" in text
