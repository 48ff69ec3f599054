"""Stage 2: Distribution Discovery and the latent-space baselines.

The post-processing (exactly IPC clusters) is property-tested on synthetic embeddings without
UMAP. The full path (UMAP + HDBSCAN) runs in module-scoped fixtures, so that numba compiles UMAP
once for this whole file.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coda_utils import baselines, discovery
from coda_utils.discovery import discover_class, make_exactly_ipc, run_hdbscan


def _mixture(n_per: list[int], dim: int = 256, spread: float = 6.0, seed: int = 0, noise: int = 0) -> np.ndarray:
    """Latents ``n x 4 x 8 x 8`` (dim 256) from a Gaussian mixture plus uniform noise points."""
    rng = np.random.default_rng(seed)
    parts = [rng.normal(size=dim) * spread + rng.normal(size=(k, dim)) for k in n_per]
    if noise:
        parts.append(rng.uniform(-3 * spread, 3 * spread, size=(noise, dim)))
    x = np.concatenate(parts).astype(np.float32)
    return x.reshape(len(x), 4, 8, 8)


def _check(res, n, ipc):
    reps = res.representatives
    assert len(reps) == ipc and len(np.unique(reps)) == ipc
    assert reps.min() >= 0 and reps.max() < n and reps.dtype.kind == "i"
    assert len(res.strategies) == ipc and len(res.cluster_sizes) == ipc
    assert all(s in discovery.STRATEGIES for s in res.strategies)
    assert list(res.cluster_sizes) == sorted(res.cluster_sizes, reverse=True)
    for k, r in enumerate(reps):  # each representative is a member of its own cluster
        assert res.labels[r] == k
    assert np.array_equal(np.bincount(res.labels[res.labels >= 0], minlength=ipc), res.cluster_sizes)


# --------------------------------------------------------------------------------------
# Post-processing, property-based (no UMAP)
# --------------------------------------------------------------------------------------
@st.composite
def cluster_structures(draw):
    kind = draw(st.sampled_from(["random", "all_noise", "one_giant", "identical", "duplicates", "blobs"]))
    n = draw(st.integers(1, 90))
    dim = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if kind == "identical":
        emb = np.zeros((n, dim))
    elif kind == "duplicates":
        distinct = draw(st.integers(1, 4))
        emb = rng.normal(size=(distinct, dim))[rng.integers(0, distinct, n)]
    elif kind == "blobs":
        k = draw(st.integers(1, 6))
        emb = rng.normal(size=(k, dim))[rng.integers(0, k, n)] * 10 + rng.normal(size=(n, dim))
    else:
        emb = rng.normal(size=(n, dim)) * rng.uniform(0.1, 10)
    if kind == "all_noise":
        labels = np.full(n, -1)
    elif kind == "one_giant":
        labels = np.where(rng.random(n) < draw(st.floats(0, 0.5)), -1, 0)
    else:
        m = draw(st.integers(0, 12))
        labels = rng.integers(-1, m, n) if m else np.full(n, -1)
    probs = rng.random(n) * (labels >= 0)
    ipc = draw(st.integers(1, n))
    mcs = draw(st.integers(2, 30))
    return emb, labels, probs, ipc, mcs, seed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster_structures())
def test_post_processing_always_returns_exactly_ipc_distinct_real_indices(case):
    emb, labels, probs, ipc, mcs, seed = case
    res = make_exactly_ipc(emb, labels, probs, ipc, mcs, 3, seed)
    _check(res, len(emb), ipc)
    m = len(np.unique(labels[labels >= 0]))
    assert res.n_found == m
    if m >= ipc:  # enough HDBSCAN clusters: the IPC largest, each with its most probable member
        assert res.strategies == ["hdbscan"] * ipc
        sizes = sorted(np.bincount(labels[labels >= 0]).tolist(), reverse=True)
        assert res.cluster_sizes == [s for s in sizes if s][:ipc]
        for r in res.representatives:
            members = labels == labels[r]
            assert probs[r] == probs[members].max()
    again = make_exactly_ipc(emb, labels, probs, ipc, mcs, 3, seed)  # deterministic
    assert np.array_equal(res.representatives, again.representatives) and res.strategies == again.strategies


def test_post_processing_strategies_on_known_structures():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 10)) * 8
    emb = np.concatenate([c + rng.normal(size=(100, 10)) for c in centres] + [rng.uniform(-20, 20, size=(60, 10))])
    labels, probs = run_hdbscan(emb, 20, 3)
    assert (labels >= 0).sum() > 550 and len(np.unique(labels[labels >= 0])) == 6
    res = make_exactly_ipc(emb, labels, probs, 4, 20, 3, 0)  # M > IPC: the 4 largest
    assert res.strategies == ["hdbscan"] * 4 and res.n_found == 6
    res = make_exactly_ipc(emb, labels, probs, 10, 20, 3, 0)  # blobs do not split: fill from noise (60 >= 4 x 5)
    assert res.strategies.count("hdbscan") == 6 and res.strategies.count("noise_fill") == 4
    # without the noise fill (the IPC-50 ablation) forced splits of the blobs make the missing 4:
    # no representative is a noise point
    res = make_exactly_ipc(emb, labels, probs, 10, 20, 3, 0, noise_fill=False)
    _check(res, len(emb), 10)
    assert "noise_fill" not in res.strategies and "forced_split" in res.strategies and (labels[res.representatives] >= 0).all()
    res = make_exactly_ipc(emb, labels, probs, 30, 20, 3, 0)  # noise < 24 x 3: forced splits (and fallbacks)
    _check(res, len(emb), 30)
    assert "noise_fill" not in res.strategies and "forced_split" in res.strategies
    # a cluster made of two blobs is split into the two blobs
    two = np.concatenate([rng.normal(size=(80, 5)), rng.normal(size=(80, 5)) + 12])
    res = make_exactly_ipc(two, np.zeros(160, int), np.linspace(0, 1, 160), 2, 20, 3, 0)
    assert res.strategies == ["split", "split"] and res.cluster_sizes == [80, 80]
    assert {int(r >= 80) for r in res.representatives} == {0, 1}
    assert discovery.noise_factor(10) == 5 and discovery.noise_factor(50) == 3 and discovery.noise_factor(51) == 1


def test_the_toy_of_notebook_02_shows_each_strategy():
    """discovery.toy_blobs (notebook 02's exactly-IPC toy): each IPC the notebook draws shows the
    strategy its text names: keep the largest, split the double blob, fill from noise, forced split."""
    points, source = discovery.toy_blobs()
    labels, probs = run_hdbscan(points, 40, 3)
    assert len(np.unique(labels[labels >= 0])) == 4 and 10 <= (labels < 0).sum() < 25  # fill at IPC 7, not at 10
    expected = {2: {"hdbscan"}, 5: {"hdbscan", "split"}, 7: {"hdbscan", "split", "noise_fill"}}
    for ipc, strategies in expected.items():
        res = make_exactly_ipc(points, labels, probs, ipc, 40, 3, 0)
        _check(res, len(points), ipc)
        assert set(res.strategies) == strategies, (ipc, res.strategies)
    res = make_exactly_ipc(points, labels, probs, 5, 40, 3, 0)
    halves = [np.bincount(source[(res.labels == k) & (source >= 0)], minlength=5)
              for k, s in enumerate(res.strategies) if s == "split"]
    assert sorted(int(h.argmax()) for h in halves) == [0, 1]  # the double blob, split into its two blobs
    assert all(h.max() >= 0.85 * h.sum() for h in halves)
    res = make_exactly_ipc(points, labels, probs, 10, 40, 3, 0)
    assert "forced_split" in res.strategies and "noise_fill" not in res.strategies


def test_noise_fill_table_counts_noise_fill_representatives():
    from types import SimpleNamespace

    disc = SimpleNamespace(class_names=["a", "b"], per_class=[SimpleNamespace(strategies=["hdbscan", "noise_fill"]),
                                                             SimpleNamespace(strategies=["noise_fill", "noise_fill"])])
    table = discovery.noise_fill_table({"IPC 2": disc})
    assert table["IPC 2"].to_dict() == {"a": 1, "b": 2, "all classes": 3}


def test_post_processing_rejects_bad_ipc():
    emb = np.zeros((5, 2))
    with pytest.raises(ValueError, match="larger than the class"):
        make_exactly_ipc(emb, np.full(5, -1), np.zeros(5), 6, 5)
    with pytest.raises(ValueError, match="positive integer"):
        make_exactly_ipc(emb, np.full(5, -1), np.zeros(5), 0, 5)


def test_standardize_and_scaled_hyperparameters():
    x = np.zeros((4, 3), np.float32)
    x[:, 0] = [1, 2, 3, 4]
    x[:, 1] = 7.0  # constant: 0, not a division by zero
    s = discovery.standardize(x)
    assert np.isfinite(s).all() and np.allclose(s[:, 1:], 0) and abs(s[:, 0].std() - 1) < 1e-6
    assert discovery.scaled_hyperparameters(1300) == {"n_neighbors": 85, "min_cluster_size": 55}
    assert discovery.scaled_hyperparameters(1000) == {"n_neighbors": 65, "min_cluster_size": 42}
    assert discovery.scaled_hyperparameters(10) == {"n_neighbors": 2, "min_cluster_size": 2}


# --------------------------------------------------------------------------------------
# The full path (UMAP compiled once for the module)
# --------------------------------------------------------------------------------------
MAIN = _mixture([120, 90, 60, 40], noise=30, seed=1)  # 340 latents 4x8x8


@pytest.fixture(scope="module")
def runs():
    """Every full-path discovery the tests look at, computed once."""
    out = {}
    kw = dict(n_neighbors=30, min_cluster_size=15, seed=0)
    out["main"] = discover_class(MAIN, 10, **kw)
    out["main_again"] = discover_class(MAIN, 10, **kw)
    out["main_seed1"] = discover_class(MAIN, 10, n_neighbors=30, min_cluster_size=15, seed=1)
    out["ipc1"] = discover_class(MAIN, 1, **kw)
    out["pca"] = discover_class(MAIN, 10, pca_dims=32, **kw)
    small = _mixture([20, 12], seed=2)
    out["ipc_n"] = discover_class(small, len(small))
    out["tiny"] = discover_class(_mixture([4, 3], seed=3), 5)  # 7 points; reference n_neighbors 85 / mcs 55
    out["tiny_ipc_all_but_one"] = discover_class(small, len(small) - 1)
    out["class_of_40"] = discover_class(_mixture([25, 15], seed=4), 10)  # < n_neighbors and < 52 points
    out["identical"] = discover_class(np.ones((50, 4, 8, 8), np.float32), 5)
    three = np.repeat(_mixture([1, 1, 1], seed=5), [20, 20, 20], axis=0)
    out["three_distinct"] = discover_class(three, 10)
    return out


@pytest.mark.parametrize("name,ipc,n", [("main", 10, 340), ("ipc1", 1, 340), ("pca", 10, 340), ("ipc_n", 32, 32),
                                        ("tiny", 5, 7), ("tiny_ipc_all_but_one", 31, 32), ("class_of_40", 10, 40),
                                        ("identical", 5, 50), ("three_distinct", 10, 60)])
def test_full_path_returns_exactly_ipc_distinct_real_samples(runs, name, ipc, n):
    d = runs[name]
    assert len(d.positions) == ipc and len(np.unique(d.positions)) == ipc
    assert d.positions.min() >= 0 and d.positions.max() < n
    assert d.latents.shape == (ipc, 4, 8, 8) and len(d.strategies) == ipc
    assert np.array_equal(d.labels[d.positions], np.arange(ipc))


def test_full_path_details(runs):
    main = runs["main"]
    assert np.array_equal(main.positions, runs["main_again"].positions)  # deterministic for a seed
    assert main.strategies == runs["main_again"].strategies
    assert np.array_equal(main.embedding, runs["main_again"].embedding)
    assert not np.array_equal(main.embedding, runs["main_seed1"].embedding)
    assert main.embedding.shape == (340, 50) and main.params["path"] == "umap"
    np.testing.assert_array_equal(main.latents, MAIN[main.positions])  # original, unstandardized latents
    assert main.n_found >= 3 and 0 <= main.noise_fraction < 0.5
    assert {"standardize", "umap", "hdbscan", "postprocess"} <= set(main.timings)
    assert runs["ipc1"].strategies == ["hdbscan"]
    assert "pca" in runs["pca"].timings and runs["pca"].params["pca_dims"] == 32
    assert runs["ipc_n"].strategies == ["all"] * 32 and sorted(runs["ipc_n"].positions) == list(range(32))
    tiny = runs["tiny"]
    assert tiny.params["n_neighbors"] == 6 and tiny.params["n_components"] == 5 and tiny.params["min_cluster_size"] == 3
    assert runs["class_of_40"].params["n_components"] == 38
    assert runs["identical"].strategies == ["degenerate"] * 5 and runs["identical"].params["path"] == "degenerate"
    assert runs["three_distinct"].params["path"] == "few_distinct"
    # ten picks among three distinct latents: the three distinct values are all represented
    three = runs["three_distinct"]
    assert len({tuple(z.ravel()[:3]) for z in three.latents}) == 3
    diag = main.diagnostics()
    assert diag["clusters_found"] == main.n_found and len(diag["labels"]) == 340


def test_ipc_larger_than_class_is_a_value_error():
    with pytest.raises(ValueError, match="ipc=8 is larger than the class"):
        discover_class(_mixture([4, 3]), 8)


# --------------------------------------------------------------------------------------
# All classes of a latent cache, baselines, export
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cache(tmp_path_factory, target):
    import torch

    from coda_utils.encoding import encode_dataset, limit_dataset
    from coda_utils.prior import PriorConfig, build_vae

    torch.manual_seed(0)
    vae = build_vae(PriorConfig(vae_channels=(8, 8, 8), vae_latent_channels=4))
    data = limit_dataset(target, class_limit=3, per_class_limit=60)
    return data, encode_dataset(data, vae, tmp_path_factory.mktemp("latents"), encoder_id="tiny", progress=False)


def test_discover_all_classes_and_export(cache, tmp_path):
    import json

    data, c = cache
    disc = discovery.discover(c, 4, progress=False)
    assert disc.params["n_neighbors"] == 4 and disc.params["min_cluster_size"] == 3  # scaled to 60 per class
    pos = disc.positions
    assert len(pos) == 12 and len(np.unique(pos)) == 12
    assert np.array_equal(data.labels[pos], np.repeat([0, 1, 2], 4))
    assert disc.latents.shape == (12, 4, 8, 8)
    np.testing.assert_array_equal(disc.latents[5], c.latents(1)[disc.per_class[1].positions[1]])
    assert sum(disc.strategy_counts().values()) == 12 and "Trouser" in disc.table()
    disc.save(tmp_path / "d.json")
    saved = np.load(tmp_path / "d.npz")
    assert np.array_equal(saved["positions"], pos) and saved["embedding_0"].shape == (60, 50)
    assert json.loads((tmp_path / "d.json").read_text())["classes"]["Pullover"]["dataset_positions"] == pos[8:].tolist()
    back = discovery.load_discovery(tmp_path / "d.json")  # what figures and later stages read
    assert np.array_equal(back.positions, pos) and np.array_equal(back.latents, disc.latents)
    assert back.class_names == disc.class_names and back.params == disc.params
    assert back.per_class[1].strategies == disc.per_class[1].strategies
    assert np.array_equal(back.per_class[2].labels, disc.per_class[2].labels)
    assert np.array_equal(back.per_class[0].embedding, disc.per_class[0].embedding)
    out = baselines.export_selection(data, pos, tmp_path / "r", "coda_r", 4, disc.manifest())
    manifest = json.loads((out / "manifest.json").read_text())
    per_class = manifest["discovery"]["per_class"]
    assert [len(p["strategies"]) for p in per_class] == [4, 4, 4] and manifest["discovery"]["seed"] == 0
    assert len(manifest["files"]) == 12 and "versions" in manifest
    with pytest.raises(ValueError, match="ipc=61 is larger than 3 class"):
        discovery.discover(c, 61, progress=False)
    # an IPC sweep reuses the embeddings (no UMAP) and gives what a fresh run gives
    fresh, reused = discovery.discover(c, 2, progress=False), discovery.discover(c, 2, progress=False, reuse=disc)
    assert np.array_equal(fresh.positions, reused.positions) and fresh.strategy_counts() == reused.strategy_counts()
    assert reused.per_class[0].params["path"] == "umap (reused)" and "umap" not in reused.per_class[0].timings
    other = discovery.discover(c, 2, n_neighbors=5, progress=False, reuse=disc)  # other UMAP settings: not reused
    assert other.per_class[0].params["path"] == "umap"
    # one class's embedding computed by the caller (notebook 02's walk-through) replaces its UMAP
    x = discovery.standardize(c.latents(1))
    s = discovery.class_settings(x, disc.params["n_neighbors"], disc.params["min_cluster_size"])
    emb = discovery.run_umap(x, s["n_neighbors"], s["n_components"], 0.0, 0)
    given = discovery.discover(c, 2, progress=False, embeddings={1: emb})
    assert np.array_equal(fresh.positions, given.positions) and fresh.strategy_counts() == given.strategy_counts()
    assert [d.params["path"] for d in given.per_class] == ["umap", "umap (reused)", "umap"]


def test_kmeans_nearest_real_and_herding(cache):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 4, 8, 8)).astype(np.float32)
    x[7] = x.mean(0)  # closest to the mean, in raw and in standardized coordinates
    for ipc in (1, 5, 80):
        k = baselines.kmeans_nearest_real(x, ipc, seed=0)
        h = baselines.herding(x, ipc)
        assert len(np.unique(k)) == ipc == len(np.unique(h)) and k.max() < 80 and h.max() < 80
    assert baselines.herding(x, 3)[0] == 7
    assert np.array_equal(baselines.kmeans_nearest_real(x, 6, seed=1), baselines.kmeans_nearest_real(x, 6, seed=1))
    dup = np.repeat(x[:2], 10, axis=0)  # 2 distinct points, 6 picks: still distinct positions
    assert len(np.unique(baselines.kmeans_nearest_real(dup, 6))) == 6 == len(np.unique(baselines.herding(dup, 6)))
    # herding's mean of the picks tracks the class mean better than a random pick's
    s = discovery.standardize(x)
    herd_err = np.linalg.norm(s[baselines.herding(x, 10)].mean(0) - s.mean(0))
    rand_err = np.mean([np.linalg.norm(s[rng.choice(80, 10, replace=False)].mean(0) - s.mean(0)) for _ in range(20)])
    assert herd_err < rand_err
    with pytest.raises(ValueError, match="larger than the class"):
        baselines.herding(x, 81)
    data, c = cache
    for sel in (baselines.kmeans_nearest_real, baselines.herding):
        pos = baselines.select_per_class(c, sel, 5)
        assert len(np.unique(pos)) == 15 and np.array_equal(data.labels[pos], np.repeat([0, 1, 2], 5))
    with pytest.raises(ValueError, match="ipc=61 is larger than 3 class"):
        baselines.select_per_class(c, baselines.herding, 61)
