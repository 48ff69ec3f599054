import numpy as np
import pandas as pd
import pytest

from coda_utils import ablations, discovery
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
    real = ablations.evaluation.train_and_evaluate
    monkeypatch.setattr(ablations.evaluation, "train_and_evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
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
    assert note.startswith("Best: **") and "95 % interval" in note and "paired t, 2 seeds" in note
    one_d = ablations.sweep_table(pd.DataFrame([{"sweep": "gamma", "gamma": g, "acc": 50.0 + g} for g in (0.0, 0.1)]))
    assert one_d.shape == (1, 2)
    variant = ablations.sweep_table(pd.DataFrame([{"sweep": "variant", "variant": v, "gamma": g, "acc": a}
                                                  for v, g, a in [("reference", 0.5, 70.0), ("reference", 1.0, 71.0),
                                                                  ("normalized", 0.5, 60.0)]]))
    assert variant.loc["reference", 1.0] == 71.0 and np.isnan(variant.loc["normalized", 1.0])
    assert set(ablations.sweep_figures(points, tmp_path / "fig")) == {"discovery"}
    assert (tmp_path / "fig" / "ablation_discovery.png").is_file()
