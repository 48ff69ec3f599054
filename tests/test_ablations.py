import numpy as np
import pandas as pd
import pytest

from coda_utils import ablations, discovery, evaluation
from coda_utils.datasets import load_fashion_mnist
from coda_utils.encoding import limit_dataset


@pytest.fixture(scope="module")
def fit_val():
    return (limit_dataset(load_fashion_mnist("target_fit"), class_limit=2, per_class_limit=40),
            limit_dataset(load_fashion_mnist("target_val"), class_limit=2, per_class_limit=30))


def test_pixel_features_behave_like_a_latent_cache(fit_val):
    fit, _ = fit_val
    px = ablations.PixelFeatures(fit)
    assert px.num_classes == 2 and px.counts == [40, 40] and px.class_names[:2] == fit.class_names[:2]
    assert px.latents(1).shape == (40, 1, 28, 28) and 0 <= px.latents(1).min() and px.latents(1).max() <= 1
    disc = discovery.discover(px, 3, progress=False)
    assert len(np.unique(disc.positions)) == 6 and set(fit.labels[disc.positions]) == {0, 1}


def test_runner_points_are_judged_on_val_over_seeds_resume_and_collect(fit_val, tmp_path, monkeypatch):
    fit, val = fit_val
    runner = ablations.AblationRunner(
        fit, val, ablations.PixelFeatures(fit), tmp_path, "unused", selection_seeds=[0, 1], epochs=1, repeats=1,
        precision="fp32", progress=False,
        defaults=dict(ipc=2, gamma=0.05, guide_fraction=0.9, n_neighbors=None, min_cluster_size=None, min_samples=3,
                      features="vae", steps=2, cfg_scale=5.0))
    with pytest.raises(ValueError, match="unknown sweep"):
        runner.run("colour")
    a = runner.run("discovery", n_neighbors=5, min_cluster_size=4)
    b = runner.run("discovery", n_neighbors=5, min_cluster_size=6)
    calls = []
    real = evaluation.train_and_evaluate
    monkeypatch.setattr(evaluation, "train_and_evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = runner.run("discovery", n_neighbors=5, min_cluster_size=4)  # resumed from its results.csv
    assert calls == [] and again["acc"] == a["acc"] and 0 <= a["acc"] <= 100 and a["seeds"] == 2
    point = tmp_path / "discovery" / "n_neighbors5_min_cluster_size4"
    assert (point / "point.json").is_file()
    assert (point / "seed0" / "manifest.json").is_file() and (point / "seed1" / "manifest.json").is_file()
    res = pd.read_csv(point / "results.csv")
    assert list(res["selection_seed"]) == [0, 1] and list(res["seed"]) == [0, 1000]
    points = ablations.collect(tmp_path)
    assert len(points) == 4 and set(points.min_cluster_size) == {4, 6} and set(points.selection_seed) == {0, 1}
    table = ablations.sweep_table(points)
    assert table.shape == (2, 1) and list(table.index) == [4, 6] and table.loc[6, 5] == pytest.approx(b["acc"])
    text, note = ablations.choice_table(points)
    assert "mean ± std over seeds" in text and "min_cluster_size 4, n_neighbors 5" in text
    # two seeds: the table reports the highest point and its interval, and says it is not a choice
    assert note.startswith("Highest here: ") and "95 % interval" in note and "paired t, 2 seeds" in note
    assert "Not a choice" in note and f"at least {ablations.MIN_SEEDS_TO_CHOOSE}" in note
    three = pd.DataFrame([{"sweep": "gamma", "gamma": g, "selection_seed": s, "acc": 50.0 + 10 * g + s + 0.1 * s * g}
                          for g in (0.0, 1.0) for s in range(3)])
    assert ablations.choice_table(three)[1].startswith("Best: **gamma 1")
    one_d = ablations.sweep_table(pd.DataFrame([{"sweep": "gamma", "gamma": g, "acc": 50.0 + g} for g in (0.0, 0.1)]))
    assert one_d.shape == (1, 2)
    variant = ablations.sweep_table(pd.DataFrame([{"sweep": "variant", "variant": v, "gamma": g, "acc": a}
                                                  for v, g, a in [("reference", 0.5, 70.0), ("reference", 1.0, 71.0),
                                                                  ("normalized", 0.5, 60.0)]]))
    assert variant.loc["reference", 1.0] == 71.0 and np.isnan(variant.loc["normalized", 1.0])
    assert set(ablations.sweep_figures(points, tmp_path / "fig")) == {"discovery"}
    assert (tmp_path / "fig" / "ablation_discovery.png").is_file()


class TwoRanks:
    """One process of a two-process launch, for running both ranks in turn in this process
    (the barriers are no-ops: rank 1 runs first, rank 0 then merges)."""

    def __init__(self, rank: int, world: int = 2):
        self.process_index, self.num_processes = rank, world

    def wait_for_everyone(self):
        pass


def _digests(root):
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.png"))}


def test_points_shared_by_two_processes_end_as_one_process_leaves_them(fit_val, tmp_path):
    fit, val = fit_val

    def runner(out):
        return ablations.AblationRunner(
            fit, val, ablations.PixelFeatures(fit), out, "unused", selection_seeds=[0, 1, 2], epochs=1, repeats=1,
            precision="fp32", progress=False,
            defaults=dict(ipc=2, gamma=0.05, guide_fraction=0.9, n_neighbors=None, min_cluster_size=None, min_samples=3,
                          features="vae", steps=2, cfg_scale=5.0))

    points = [("discovery", dict(n_neighbors=5, min_cluster_size=4)), ("discovery", dict(n_neighbors=7, min_cluster_size=4))]
    one = runner(tmp_path / "one").run_points(points)
    assert runner(tmp_path / "two").run_points(points, TwoRanks(1)) == []  # rank 1: its 3 of the 6 (point, seed) units
    assert len(list((tmp_path / "two").rglob("results.rank1.csv"))) == 2
    assert not list((tmp_path / "two").rglob("results.csv"))
    two = runner(tmp_path / "two").run_points(points, TwoRanks(0))  # rank 0: the other 3, then the merge
    assert not list((tmp_path / "two").rglob("results.rank*.csv"))
    assert [r["acc"] for r in one] == [r["acc"] for r in two] and all(r["seeds"] == 3 for r in two)
    for folder in ("n_neighbors5_min_cluster_size4", "n_neighbors7_min_cluster_size4"):
        a, b = (pd.read_csv(tmp_path / n / "discovery" / folder / "results.csv") for n in ("one", "two"))
        assert list(a["selection_seed"]) == list(b["selection_seed"]) == [0, 1, 2]
        assert list(a["seed"]) == list(b["seed"]) and list(a["acc"]) == list(b["acc"])
    assert _digests(tmp_path / "one") == _digests(tmp_path / "two") and len(_digests(tmp_path / "one")) == 2 * 3 * 2 * 2


def test_scale_05_runs_the_notebooks_sweeps(tmp_path):
    """``accelerate launch -m coda_utils.scale 05``'s function with the notebook's parameters:
    the cut recorded, the cache encoded, the points of its sweeps judged on val."""
    from coda_utils import scale

    p = scale.notebook_parameters("05", dict(out_dir=str(tmp_path / "abl"), sweeps=["gamma"], gamma_grid=[0.0, 0.5],
                                             selection_seeds=[0], ipc=2, steps=2, epochs=1, precision="fp32",
                                             class_limit=2, per_class_limit=30))
    rows = scale.ablate(p, TwoRanks(0, 1))
    assert [r["gamma"] for r in rows] == [0.0, 0.5] and all(0 <= r["acc"] <= 100 for r in rows)
    assert (tmp_path / "abl" / "holdout.json").is_file()
    points = ablations.collect(tmp_path / "abl")
    assert len(points) == 2 and set(points["gamma"]) == {0.0, 0.5} and set(points["networks"]) == {1}


def test_the_selection_sweep_makes_every_set_r_and_contrasts_it_with_discovery_and_random_real(fit_val, tmp_path):
    """Notebook 05's ``selection`` sweep (issue 27): each point is a set R made one way, judged on
    val; collect counts discovery's representatives by strategy; the table contrasts every point
    with discovery and random real (paired over seeds) and says which explanation the intervals
    support."""
    fit, val = fit_val
    runner = ablations.AblationRunner(
        fit, val, ablations.PixelFeatures(fit), tmp_path, "unused", selection_seeds=[0, 1, 2], epochs=1, repeats=1,
        precision="fp32", progress=False,
        defaults=dict(ipc=3, gamma=0.05, guide_fraction=0.9, n_neighbors=None, min_cluster_size=None, min_samples=3,
                      features="vae", variant="reference", steps=2, cfg_scale=1.0))
    runner.feature_sources["ones"] = ablations.ArrayFeatures(fit, np.ones((len(fit), 4)))  # degenerate: no UMAP
    names = ["discovery", "discovery_no_noise_fill", "random_real", "kmeans"]
    rows = runner.run_points([("selection", {"selection": n}) for n in names])
    assert [r["selection"] for r in rows] == names and all(r["seeds"] == 3 for r in rows)
    points = ablations.collect(tmp_path)
    assert len(points) == 12 and set(points["ipc"]) == {3}
    disc = points[points["selection"] == "discovery"]
    assert (disc.filter(like="strategy_").sum(axis=1) == 3 * fit.num_classes).all()  # every representative counted
    assert points[points["selection"] == "random_real"].filter(like="strategy_").isna().all().all()
    # a feature space the runner was given, and one it was not
    d = runner.discovery(3, None, None, 3, "ones", 0)
    assert len(d.positions) == 3 * fit.num_classes
    with pytest.raises(ValueError, match="no such feature space"):
        runner.discovery(3, None, None, 3, "judge", 0)
    # the table: a row per point in SELECTION_POINTS' order, its contrasts with both references
    table, note = ablations.choice_table(points)
    lines = table.splitlines()
    assert [line.split(" | ")[0].strip("| ") for line in lines[2:]] == names
    assert "- discovery, 95 % interval" in lines[0] and "- random_real, 95 % interval" in lines[0]
    by = {n: p.set_index("selection_seed")["acc"] for n, p in points.groupby("selection")}
    from coda_utils import stats

    c = stats.contrast(by["random_real"], by["discovery"])
    assert f"{c['diff']:+.1f} [{c['low']:+.1f}, {c['high']:+.1f}]" in lines[4]
    c = stats.contrast(by["discovery"], by["random_real"])
    assert note.startswith(f"At IPC 3 discovery minus random real is {c['diff']:+.1f} points")
    assert "discovery_no_noise_fill" in note and "`target_val`, never `test`" in note


def test_the_selection_table_names_the_explanation_the_intervals_support():
    """A variant clearly above discovery is named as the cause; one that is not, is not."""
    rows = []
    for s in range(4):
        for name, acc in {"discovery": 70 + s, "discovery_pixels": 75 + s + 0.1 * s, "discovery_pca": 70 + s + (-1) ** s * 0.5,
                          "random_real": 72 + s}.items():
            rows.append({"sweep": "selection", "selection": name, "selection_seed": s, "acc": acc, "ipc": 50})
    table, note = ablations.selection_table(pd.DataFrame(rows))
    assert "discovery_pixels is above discovery by +5.1" in note and "the feature space (pixels" in note
    assert "discovery_pca is not above discovery" in note
    assert "discovery minus random real is -2.0 points" in note and "random_real higher" in note
    assert "above random real: discovery_pixels" in note


def test_the_selection_table_says_when_there_is_no_gap_to_explain():
    """Discovery not below random real on the cut, and no variant beyond its interval: the sentence
    says there is nothing to close and names no cause."""
    rows = []
    for s in range(3):
        for name, acc in {"discovery": 80 + s, "discovery_unscaled": 80 + s + (-1) ** s * 0.3,
                          "random_real": 80 + s + (-1) ** s * 0.4}.items():
            rows.append({"sweep": "selection", "selection": name, "selection_seed": s, "acc": acc, "ipc": 50})
    _, note = ablations.selection_table(pd.DataFrame(rows))
    assert "no gap below random real" in note and "no one-change variant moves it" in note and "as a cause" not in note
