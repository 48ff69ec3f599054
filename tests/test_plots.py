"""Figures: what they draw, checked on the matplotlib objects (no image comparison)."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba

from coda_utils import plots, stats


def _rows(spec):
    """Network rows from {(method, ipc): [acc per selection seed]}."""
    return pd.DataFrame([{"method": m, "ipc": ipc, "arch": "convnet3", "protocol": "dc", "epochs": 5,
                          "precision": "fp32", "selection_seed": s, "seed": 1000 * s, "acc": a}
                         for (m, ipc), accs in spec.items() for s, a in enumerate(accs)])


def _bar_colors(ax):
    return {ax.get_xticklabels()[int(round(p.get_x() + p.get_width() / 2))].get_text(): p.get_facecolor()[:3]
            for p in ax.patches}


def test_plot_seeds_one_colour_per_method_in_every_panel():
    # the ranking differs between the panels: positions change, colours must not
    df = _rows({("a", 1): [50, 52, 51], ("b", 1): [60, 61, 59], ("a", 10): [80, 81, 79],
                ("b", 10): [70, 71, 72], ("c", 10): [75, 74, 76]})
    fig = plots.plot_seeds(df)
    left, right = (_bar_colors(ax) for ax in fig.axes)
    plt.close(fig)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["b", "a"]
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["a", "c", "b"]
    assert left["a"] == right["a"] and left["b"] == right["b"]
    assert len({right["a"], right["b"], right["c"]}) == 3


def test_plot_seeds_draws_every_seed():
    df = _rows({("a", 10): [80, 81, 79, 78, 82], ("b", 10): [70, 71]})
    fig = plots.plot_seeds(df)
    points = sum(len(c.get_offsets()) for c in fig.axes[0].collections if isinstance(c, PathCollection))
    plt.close(fig)
    assert points == 7


def test_plot_contrasts_marks_intervals_that_cover_zero_grey():
    df = _rows({("coda_g", 10): [70, 71, 72, 73, 74], ("unguided", 10): [50, 52, 51, 53, 50],
                ("coda_r", 10): [70, 73, 71, 74, 72]})
    table = stats.contrasts(df)
    fig = plots.plot_contrasts(table)
    colors = [tuple(np.round(line.get_color() if isinstance(line.get_color(), tuple) else to_rgba(line.get_color()), 3))
              for line in fig.axes[0].lines if len(line.get_xdata()) == 2]
    plt.close(fig)
    verdicts = dict(zip(table["contrast"], table["verdict"]))
    assert verdicts["coda_g - unguided"] == "coda_g higher"
    assert verdicts["coda_g - coda_r"] == "not distinguishable"
    grey = tuple(np.round(to_rgba("0.5"), 3))
    assert grey in colors and any(c != grey for c in colors)


@pytest.mark.parametrize("n", [1, 3])
def test_plot_overlap_one_panel_per_method(n):
    overlaps = {f"m{i}": np.eye(3) * 100 for i in range(n)}
    fig = plots.plot_overlap(overlaps, seeds=[0, 1, 2])
    assert len([ax for ax in fig.axes if ax.get_title()]) == n
    plt.close(fig)


def test_plot_contrasts_labels_every_row_when_panels_differ():
    # IPC 1 has all three methods, IPC 50 lacks unguided: the labels stay those of all contrasts
    df = _rows({("coda_g", 1): [50, 52, 51], ("unguided", 1): [30, 33, 31], ("coda_r", 1): [50, 51, 53],
                ("coda_g", 50): [75, 76, 74], ("coda_r", 50): [83, 82, 84]})
    table = stats.contrasts(df)
    fig = plots.plot_contrasts(table)
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    plt.close(fig)
    assert set(table["contrast"]) <= set(labels)
    assert "coda_g - unguided" in labels


@pytest.mark.parametrize("n, title", [(1, "Sneaker: 1 sample, gamma 0.5"), (3, "Sneaker: 3 samples, gamma 0.5")])
def test_distance_figure_title_counts_its_samples(n, title):
    import torch

    from coda_utils import alignment

    z = torch.zeros(n, 4, 2, 2)
    st = alignment.GuidanceState(record=True, steps=[0, 1], guided=[True, False], x0_after=[z + 1, z])
    fig = plots.distance_figure({"CoDA": st}, z, label="Sneaker", gamma=0.5)
    assert fig.axes[0].get_title() == title
    plt.close(fig)


def test_accuracy_curve_marks_the_last_and_the_best_epoch():
    fig = plots.plot_accuracy_curve([(5, 60.0), (10, 71.5), (15, 69.0)])
    marks = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    assert [tuple(c.get_offsets()[0]) for c in marks] == [(15, 69.0), (10, 71.5)]  # acc (last), acc_best (max)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "acc (after the last epoch): 69.0" in labels and "acc_best (max, epoch 10): 71.5" in labels
    plt.close(fig)


def test_exactly_ipc_figure_marks_every_representative():
    from coda_utils import discovery

    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(0, 0.1, (30, 2)), rng.normal(3, 0.1, (30, 2)), rng.normal(6, 3.0, (10, 2))])
    labels = np.array([0] * 30 + [1] * 30 + [-1] * 10)
    res = discovery.make_exactly_ipc(emb, labels, np.ones(70), ipc=3, min_cluster_size=5)
    fig = plots.plot_exactly_ipc(emb, labels, res)
    left, right = fig.axes[:2]
    assert "2 clusters" in left.get_title() and "exactly 3 clusters" in right.get_title()
    # the right panel: members, noise, then one marker collection per strategy, 3 representatives in all
    reps = sum(len(c.get_offsets()) for c in right.collections[2:])
    assert reps == 3
    plt.close(fig)


def test_standardize_figure_shows_unit_std_after():
    from coda_utils import discovery

    lat = np.random.default_rng(1).normal(2.0, 5.0, (50, 4, 2, 2)).astype(np.float32)
    fig = plots.plot_standardize(lat, discovery.standardize(lat))
    after = fig.axes[1].collections[0].get_offsets()
    assert np.allclose(after[:, 1], 1.0, atol=1e-3) and np.allclose(after[:, 0], 0.0, atol=1e-3)
    plt.close(fig)
