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


def _seed_dots(ax):
    """method -> (colour, number of dots) of the per-seed (or per-network) dots on ``ax``."""
    out = {}
    for c in ax.collections:
        gid = c.get_gid() or ""
        if gid.startswith(("seeds:", "networks:")):
            out[gid.split(":", 1)[1]] = (tuple(np.round(c.get_facecolor()[0][:3], 3)), len(c.get_offsets()))
    return out


def test_plot_seeds_one_order_and_one_colour_per_method_in_every_panel():
    # the ranking differs between the panels: neither the rows nor the colours may change
    df = _rows({("kmeans", 1): [50, 52, 51], ("coda_r", 1): [60, 61, 59], ("kmeans", 10): [80, 81, 79],
                ("coda_r", 10): [70, 71, 72], ("coda_g", 10): [75, 74, 76]})
    fig = plots.plot_seeds(df)
    panels = [ax for ax in fig.axes if ax.get_title().startswith("IPC")]
    ticks = panels[0].get_yticks()
    labels = [t.get_text() for t in panels[0].get_yticklabels()]
    left, right = (_seed_dots(ax) for ax in panels)
    plt.close(fig)
    # the study's order (rundir.STUDY_METHODS) from the top, the same rows in both panels (shared y)
    assert [name for _, name in sorted(zip(ticks, labels), reverse=True)] == ["coda_r", "kmeans", "coda_g"]
    assert plots.method_order(["coda_g", "kmeans", "zeta", "coda_r", "alpha"]) == ["coda_r", "kmeans", "coda_g", "alpha", "zeta"]
    assert left["kmeans"][0] == right["kmeans"][0] and left["coda_r"][0] == right["coda_r"][0]
    assert len({right["kmeans"][0], right["coda_r"][0], right["coda_g"][0]}) == 3


def test_plot_seeds_draws_every_seed_and_no_bars():
    df = _rows({("coda_r", 10): [80, 81, 79, 78, 82], ("coda_g", 10): [70, 71]})
    fig = plots.plot_seeds(df)
    ax = fig.axes[0]
    dots, patches = _seed_dots(ax), list(ax.patches)
    plt.close(fig)
    assert dots["coda_r"][1] == 5 and dots["coda_g"][1] == 2
    assert not patches  # dots and intervals: no bar whose length would start at an arbitrary axis limit


def test_plot_seeds_shows_a_deterministic_methods_networks_hollow():
    herding = pd.DataFrame([{"method": "herding", "ipc": 10, "arch": "convnet3", "protocol": "dc", "epochs": 5,
                             "precision": "fp32", "selection_seed": 0, "seed": s, "acc": a}
                            for s, a in zip([0, 1000, 2000], [76.0, 76.5, 75.5])])
    fig = plots.plot_seeds(pd.concat([_rows({("coda_r", 10): [80, 81, 79]}), herding], ignore_index=True))
    nets = [c for c in fig.axes[0].collections if (c.get_gid() or "") == "networks:herding"]
    plt.close(fig)
    assert len(nets) == 1 and len(nets[0].get_offsets()) == 3
    assert nets[0].get_facecolor()[0][:3].tolist() == [1.0, 1.0, 1.0]  # hollow


def test_method_colours_are_distinct_and_fixed():
    colours = [plots.method_color(m) for m in plots.METHOD_ORDER]
    assert len(set(colours)) == len(colours)
    assert plots.method_color("not_a_study_method") == plots.method_color("not_a_study_method")
    assert len({plots.method_marker("coda_g"), plots.method_marker("coda_r"), plots.method_marker("vae_coda_r")}) == 3


def test_labels_are_human():
    assert plots.label("psnr_db") == "reconstruction PSNR (dB)"
    assert "_" not in plots.label("some_new_key")


def test_plot_contrasts_verdicts_by_colour_and_marker_with_a_legend():
    df = _rows({("coda_g", 10): [70, 71, 72, 73, 74], ("unguided", 10): [50, 52, 51, 53, 50],
                ("coda_r", 10): [70, 73, 71, 74, 72]})
    table = stats.contrasts(df)
    fig = plots.plot_contrasts(table)
    ax = fig.axes[0]
    colors = {tuple(np.round(to_rgba(line.get_color()), 3)) for line in ax.lines
              if len(line.get_xdata()) == 2 and line.get_xdata()[0] != line.get_xdata()[1]}
    legend = [t.get_text() for a in fig.axes if a.get_legend() for t in a.get_legend().get_texts()]
    plt.close(fig)
    verdicts = dict(zip(table["contrast"], table["verdict"]))
    assert verdicts["coda_g - unguided"] == "coda_g higher"
    assert verdicts["coda_g - coda_r"] == "not distinguishable"
    higher = plots.verdict_style("coda_g higher", "coda_g", "unguided")
    none = plots.verdict_style("not distinguishable", "coda_g", "coda_r")
    assert higher["color"] != none["color"] and (higher["marker"], higher["filled"]) != (none["marker"], none["filled"])
    assert {tuple(np.round(to_rgba(s["color"]), 3)) for s in (higher, none)} <= colors
    assert any("not distinguishable" in t for t in legend) and any("A higher" in t for t in legend)


def test_plot_sweep_one_dimensional_is_a_line_with_error_bars():
    pts = pd.DataFrame([{"sweep": "gamma", "gamma": g, "selection_seed": s, "acc": 50 + 40 * g + s}
                        for g in (0.0, 0.05, 0.2, 0.5, 1.0) for s in range(3)])
    fig = plots.plot_sweep(pts, "gamma")
    ax = fig.axes[0]
    bars = [c for c in ax.containers if c.__class__.__name__ == "ErrorbarContainer"]
    xlabel, ticks = ax.get_xlabel(), [t.get_text() for t in ax.get_xticklabels()]
    plt.close(fig)
    assert len(bars) == 1 and len(bars[0].lines[0].get_xdata()) == 5  # one line through the five means
    assert xlabel.startswith("guidance scale gamma") and ticks == ["0", "0.05", "0.2", "0.5", "1"]


def test_plot_sweep_two_parameters_one_line_each():
    pts = pd.DataFrame([{"sweep": "variant", "variant": v, "gamma": g, "selection_seed": s, "acc": 70 + s}
                        for v in ("reference", "normalized") for g in (0.5, 1.0, 2.0) for s in range(3)])
    fig = plots.plot_sweep(pts, "variant", "gamma")  # categorical x, numeric hue: drawn along gamma
    ax = fig.axes[0]
    bars = [c for c in ax.containers if c.__class__.__name__ == "ErrorbarContainer"]
    xlabel = ax.get_xlabel()
    plt.close(fig)
    assert len(bars) == 2 and xlabel.startswith("guidance scale gamma")


def test_set_comparison_grid_says_how_many_images_it_shows():
    import torch

    cols = {m: torch.zeros(2 * 4, 1, 4, 4, dtype=torch.uint8) for m in ("coda_r", "coda_g")}
    fig = plots.set_comparison_grid(cols, num_classes=2, ipc=4, row_labels=["a", "b"], shown=3, title="sets")
    ax = fig.axes[0]
    title, rows = ax.get_title(), [t.get_text() for t in ax.get_yticklabels()]
    width = ax.images[0].get_array().shape[1]
    plt.close(fig)
    assert title == "sets (first 3 of 4 images per class)" and rows == ["a", "b"]
    assert width == 7 * 4 + 6 * 2  # 3 + 3 images and a blank between the two sets, 2-pixel gaps


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
    labels = [t.get_text().split("\n")[0] for ax in fig.axes for t in ax.get_yticklabels()]  # contrast, then question
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


def test_exactly_ipc_step_figure_one_picture_per_idea():
    """Notebook 02's step-5 pictures: HDBSCAN's view alone, then a result with its representatives
    marked and, when clusters were dropped (M > IPC), the grey "in no final cluster" explained."""
    from coda_utils import discovery

    points, _ = discovery.toy_blobs()
    labels, probs = discovery.run_hdbscan(points, 40, 3)
    fig = plots.plot_exactly_ipc_step(points, labels, title="toy", axis_names=("x", "y"))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "x" and len(ax.collections) == 2  # members and noise, no representative
    plt.close(fig)
    res = discovery.make_exactly_ipc(points, labels, probs, 2, 40, 3, 0)  # keep the 2 largest of 4
    fig = plots.plot_exactly_ipc_step(points, labels, res)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "in no final cluster" in texts and "representative: hdbscan (2)" in texts and ax.get_xlabel() == "UMAP 1"
    assert sum(len(c.get_offsets()) for c in ax.collections[2:]) == 2
    plt.close(fig)


def test_guidance_scale_figure_pull_and_distance_on_log_axes():
    import torch

    from coda_utils.alignment import GuidanceState

    z = torch.zeros(2, 1, 2, 2)
    steps = [0, 1, 2]

    def state(offsets):  # the UNet's x0 at each step: z + offset everywhere
        return GuidanceState(record=True, steps=steps, guided=[True, True, False],
                             x0_before=[z + o for o in offsets], x0_after=[z + o for o in offsets])

    states = {"gamma 0": state([1.0, 1.0, 1.0]), "gamma 1": state([1.0, -10.0, 100.0])}
    pulls = {"gamma 0": [0.0, 0.0, 0.0], "gamma 1": [5.0, 2.0, 0.0]}
    fig = plots.guidance_scale_figure(states, z, pulls)
    left, right = fig.axes[:2]
    assert left.get_yscale() == right.get_yscale() == "log"
    assert [l.get_label() for l in left.get_lines() if not l.get_label().startswith("_")] == ["gamma 1"]  # no pull, no line
    assert list(left.get_lines()[0].get_ydata()) == [5.0, 2.0]  # the guided steps only
    dist = {l.get_label(): list(l.get_ydata()) for l in right.get_lines()}
    assert dist["gamma 1"] == pytest.approx([1.0, 10.0, 100.0]) and dist["gamma 0"] == pytest.approx([1.0] * 3)
    plt.close(fig)


def test_standardize_figure_shows_unit_std_after():
    from coda_utils import discovery

    lat = np.random.default_rng(1).normal(2.0, 5.0, (50, 4, 2, 2)).astype(np.float32)
    fig = plots.plot_standardize(lat, discovery.standardize(lat))
    after = fig.axes[1].collections[0].get_offsets()
    assert np.allclose(after[:, 1], 1.0, atol=1e-3) and np.allclose(after[:, 0], 0.0, atol=1e-3)
    plt.close(fig)
