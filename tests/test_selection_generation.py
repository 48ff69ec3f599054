"""Selection x generation (issue 27): ``coda_g_kmeans`` / ``coda_g_herding`` are CoDA-G guided by
the images of the run's k-means / herding set (coda_utils.scale.selection_latents), with the same
sampler, guidance and noise seeds as ``coda_g``: only the representatives change."""
import numpy as np
import pytest

from coda_utils import alignment, baselines, encoding, rundir, scale, setfolder, stats

IPC = 2
SMALL = {"class_limit": 3, "per_class_limit": 12}


@pytest.fixture(scope="module")
def run_with_selections(tmp_path_factory):
    """A run folder with a latent cache (3 classes x 12 images, the shipped prior's VAE) and the
    k-means (seed 0) and herding sets that notebook 02 exports."""
    root = tmp_path_factory.mktemp("selgen")
    p = scale.notebook_parameters("01", {"run_dir": str(root), "progress": False, **SMALL})
    scale.encode(p)
    run = rundir.RunDir(root)
    cache = encoding.LatentCache.load(run.latents)
    target = scale._target(p).with_policy(cache.policy)
    picks = {("kmeans", 0): baselines.select_per_class(cache, baselines.kmeans_nearest_real, IPC, seed=0),
             ("herding", None): baselines.select_per_class(cache, baselines.herding, IPC)}
    for (m, s), pos in picks.items():
        baselines.export_selection(target, pos, run.set_dir(m, IPC, s), m, IPC, {"selection_seed": s})
    return run, cache, target, picks


def test_selection_latents_are_the_cache_latents_of_the_sets_images_in_set_order(run_with_selections):
    run, cache, target, picks = run_with_selections
    for (m, s), pos in picks.items():
        got = scale.selection_latents(run, cache, m, IPC, s)
        assert [z.shape[0] for z in got] == [IPC] * cache.num_classes and all(z.dtype == np.float32 for z in got)
        for c in range(cache.num_classes):
            rows = [int(np.flatnonzero(cache.indices(c) == q)[0]) for q in pos if q in cache.indices(c)]
            np.testing.assert_array_equal(got[c], cache.latents(c)[rows].astype(np.float32))
    # herding is one set whatever the seed; a missing set names the notebook that makes it
    np.testing.assert_array_equal(scale.selection_latents(run, cache, "herding", IPC, 3)[0],
                                  scale.selection_latents(run, cache, "herding", IPC, 0)[0])
    with pytest.raises(FileNotFoundError, match="notebook 02"):
        scale.selection_latents(run, cache, "kmeans", IPC, 1)


def test_selection_latents_refuses_a_set_of_images_the_cache_lacks(run_with_selections, tmp_path):
    run, cache, target, picks = run_with_selections
    other = rundir.RunDir(tmp_path)
    pos = picks["kmeans", 0]
    baselines.export_selection(target, pos, other.set_dir("kmeans", IPC, 0), "kmeans", IPC, {})
    m = setfolder.read_manifest(other.set_dir("kmeans", IPC, 0))
    m["source_indices"][0] = 10 ** 7  # an image of another dataset
    setfolder.write_manifest(other.set_dir("kmeans", IPC, 0), m, channels=1)
    with pytest.raises(ValueError, match="not in the latent"):
        scale.selection_latents(other, cache, "kmeans", IPC, 0)


def test_coda_g_kmeans_is_coda_g_with_only_the_representatives_changed(run_with_selections):
    """Guided by the k-means set's latents, coda_g (given them as its representatives) and
    coda_g_kmeans write the same images: the sampler, the guidance and the noise are coda_g's."""
    run, cache, target, picks = run_with_selections
    p = scale.notebook_parameters("03", {"run_dir": str(run.root), "ipc": IPC, "steps": 2, "selection_seeds": [0],
                                         "methods": ["coda_g", "coda_g_kmeans", "coda_g_herding"], "judge_dir": None,
                                         "progress": False, **SMALL})
    pipe = alignment.load_pipeline(p["model"], "cpu", getattr(__import__("torch"), p["dtype"]), False, False)
    guidance = alignment.GuidanceConfig(gamma=p["gamma"], guide_fraction=p["guide_fraction"], variant=p["variant"])
    z_kmeans = scale.selection_latents(run, cache, "kmeans", IPC, 0)
    out = scale.generate_sets(run, target, cache.policy, {0: z_kmeans}, pipe, guidance, p, cache=cache)
    assert set(out) == {("coda_g", 0), ("coda_g_kmeans", 0), ("coda_g_herding", 0)}
    imgs = {m: setfolder.read_set(out[m, 0], classes=target.classes).images for m in ("coda_g", "coda_g_kmeans", "coda_g_herding")}
    assert (imgs["coda_g"] == imgs["coda_g_kmeans"]).all()
    assert not (imgs["coda_g"] == imgs["coda_g_herding"]).all()  # herding's images guide it: other pictures
    manifests = {m: setfolder.read_manifest(out[m, 0]) for m in ("coda_g", "coda_g_kmeans", "coda_g_herding")}
    assert manifests["coda_g_kmeans"]["guided_by"] == "kmeans" and manifests["coda_g_herding"]["guided_by"] == "herding"
    assert "guided_by" not in manifests["coda_g"]  # coda_g's manifest stays as it was
    assert manifests["coda_g_kmeans"]["method"] == "coda_g_kmeans"


def test_a_one_set_method_enters_a_contrast_with_its_networks_never_paired():
    import pandas as pd

    rows = [{"method": "coda_g_herding", "ipc": 10, "selection_seed": s, "acc": 60.0 + s} for s in range(5)]
    rows += [{"method": "herding", "ipc": 10, "selection_seed": 0, "acc": 55.0 + k % 2} for k in range(5)]
    t = stats.contrasts(pd.DataFrame(rows), stats.SELECTION_GENERATION_CONTRASTS)
    r = t.set_index("contrast").loc["coda_g_herding - herding"]
    assert r["test"] == "Welch t" and r["n_b"] == 5 and r["n_pairs"] == 0
    assert r["diff"] == pytest.approx(62.0 - 55.4) and r["low"] > 0
