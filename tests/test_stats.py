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


def test_a_constant_paired_difference_gives_a_zero_width_interval_and_a_verdict():
    """Every seed's difference is the same: the sample standard deviation is 0, so the t interval
    is the point itself (scipy returns NaN there), and the verdict follows its sign."""
    b = pd.Series([70.0, 72.5, 71.0, 74.0])
    up = stats.contrast(b + 1.5, b, a_name="g", b_name="r")
    assert up["test"] == "paired t" and up["n_pairs"] == 4
    assert (up["diff"], up["low"], up["high"]) == pytest.approx((1.5, 1.5, 1.5)) and up["verdict"] == "g higher"
    assert up["p"] == 0.0
    down = stats.contrast(b - 0.25, b, a_name="g", b_name="r")
    assert (down["low"], down["high"]) == pytest.approx((-0.25, -0.25)) and down["verdict"] == "r higher"
    same = stats.contrast(b.copy(), b, a_name="g", b_name="r")
    assert (same["diff"], same["low"], same["high"], same["p"]) == (0.0, 0.0, 0.0, 1.0)
    assert same["verdict"] == "not distinguishable"
    table = pd.DataFrame([{"ipc": 10, "contrast": "g - r", "question": "?", **up}])
    assert "[+1.5, +1.5]" in stats.format_contrasts(table, settings=False)
