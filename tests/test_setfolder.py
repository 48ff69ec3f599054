"""The set folder (coda_utils.setfolder): one writer, one reader, one channel rule.

The end-to-end tests run the stage functions notebooks 01 -> 04 call on a tiny ImageFolder of
grayscale PNGs (three images a class, so discovery takes its no-UMAP path and the whole run
takes seconds): every set of the run (R, k-means, herding, random real, G, the VAE round trips)
has the channels of the run's VAE input, R and G stack for the comparison figure, and the
evaluation runs on test images loaded at the training set's channels.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from coda_utils import setfolder

CLASSES = ["bag", "coat"]


def _grayscale_tree(root: Path, per_class: int, seed: int, rgb_every: int | None) -> None:
    """``root/<class>/<i>.png``: grayscale pictures, as converters write them: 8-bit gray PNGs
    (mode L), every ``rgb_every``-th one (if given) a 24-bit PNG whose three channels are equal."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            a = np.clip(rng.normal(60 + 120 * c, 30, (28, 28)), 0, 255).astype(np.uint8)
            im = Image.fromarray(a, "L")
            (im.convert("RGB") if rgb_every and i % rgb_every == rgb_every - 1 else im).save(root / name / f"{i}.png")


def _run_01_to_04(pipe, model_id: str, tmp_path: Path, rgb_every: int | None) -> dict:
    """The stage functions of notebooks 01-04 on the tiny grayscale tree; returns every set's
    images (as 04 loads them), R as 03 loads it, the test images and the evaluation rows."""
    from coda_utils import alignment, baselines, datasets, discovery, encoding, evaluation, images

    ipc, data = 2, tmp_path / "data"
    _grayscale_tree(data / "train", per_class=3, seed=0, rgb_every=rgb_every)
    _grayscale_tree(data / "val", per_class=3, seed=1, rgb_every=rgb_every)
    run = tmp_path / "run"
    # 01: the latent cache
    target = datasets.load_dataset("folder", "train", data / "train")
    encoding.encode_dataset(target, pipe, run / "latents", encoder_id=model_id, progress=False)
    # 02: discovery, R and the latent-space baselines
    cache = encoding.LatentCache.load(run / "latents")
    target = target.with_policy(cache.policy)
    disc = discovery.discover(cache, ipc, progress=False)
    sets = {"coda_r": baselines.export_selection(target, disc.positions, run / "sets" / "coda_r", "coda_r", ipc),
            "kmeans": baselines.export_selection(target, baselines.select_per_class(cache, baselines.kmeans_nearest_real, ipc),
                                                 run / "sets" / "kmeans", "kmeans", ipc),
            "herding": baselines.export_selection(target, baselines.select_per_class(cache, baselines.herding, ipc),
                                                  run / "sets" / "herding", "herding", ipc)}
    # 03: G, and the comparison's R column
    z_reps = [d.latents for d in disc.per_class]
    sets["coda_g"] = alignment.generate_set(pipe, run / "sets" / "coda_g", target.classes, target.prompts, ipc, z_reps=z_reps,
                                            guidance=alignment.GuidanceConfig(gamma=0.5), steps=2, batch_size=4,
                                            native_size=cache.policy.native, resize=cache.policy.mode, progress=False)
    r_column = target.load(disc.positions)
    comparison = torch.cat([r_column, setfolder.read_set(sets["coda_g"], classes=target.classes).images])
    # 04: random real drawn on first use, the ceilings through the run's VAE, the evaluation
    target = datasets.load_dataset("folder", "train", data / "train").with_policy(images.run_policy(run / "latents", target))
    sets["random_real"] = baselines.random_real_set(target, ipc, 0, run / "sets" / "random_real")
    vae = encoding.load_vae(cache.encoder_id) if not hasattr(pipe, "vae") else pipe.vae
    for method, source in baselines.ROUND_TRIP.items():
        sets[method] = baselines.vae_round_trip(sets[source], run / "sets" / method, vae, method)
    test = datasets.load_dataset("folder", "val", data / "val")
    test_x, test_y = test.load(None, target.native_size), test.labels
    loaded = {m: setfolder.read_set(p, classes=target.classes)[:2] for m, p in sets.items()}
    rows = {m: evaluation.evaluate(m, x, y, test_x, test_y, ipc=ipc, repeats=1, epochs=2, progress=False)
            for m, (x, y) in loaded.items() if m in ("coda_r", "coda_g", "vae_random_real")}
    return {"sets": sets, "images": {m: x for m, (x, _) in loaded.items()}, "r_column": r_column, "comparison": comparison,
            "rows": rows, "policy": cache.policy}


def _check_one_channel_count(out: dict, channels: int) -> None:
    images = out["images"]
    assert {m: tuple(x.shape[1:]) for m, x in images.items()} == {m: (channels, 28, 28) for m in images}
    r, g = out["r_column"], images["coda_g"]
    assert out["comparison"].shape == torch.cat([r, g]).shape == (8, channels, 28, 28)  # 03's comparison: R next to G
    assert torch.stack([r[0], g[0], images["coda_r"][0]]).shape == (3, channels, 28, 28)
    assert torch.equal(r, images["coda_r"])  # R as 03 loads it is R as 02 exported it
    for m, path in out["sets"].items():
        assert json.loads((path / "manifest.json").read_text())["channels"] == channels, m
        with Image.open(next(path.rglob("*.png"))) as im:
            assert im.mode == ("L" if channels == 1 else "RGB"), m
    for m, rows in out["rows"].items():
        assert len(rows) == 1 and 0 <= rows["acc"].iloc[0] <= 100, m


def test_a_grayscale_image_folder_gives_one_channel_sets_from_01_to_04(tmp_path):
    """The embedded prior (1-channel VAE) on a folder of grayscale PNGs, some stored as RGB:
    every set is 1-channel and the test images (also partly RGB files) are read as 1 channel."""
    from coda_utils import alignment
    from coda_utils.prior import SHIPPED_PRIOR

    pipe = alignment.load_pipeline(SHIPPED_PRIOR)
    out = _run_01_to_04(pipe, str(SHIPPED_PRIOR), tmp_path, rgb_every=3)
    assert out["policy"].channels == 1
    _check_one_channel_count(out, 1)


def test_a_grayscale_image_folder_with_a_three_channel_vae_gives_rgb_sets(tmp_path):
    """A tree of 8-bit gray PNGs only under an SDXL-like 3-channel VAE: every set is RGB (gray
    repeated)."""
    from coda_utils.tiny_pipelines import tiny_sd_pipeline

    pipe = tiny_sd_pipeline(tmp_path / "pipe", channels=3)
    out = _run_01_to_04(pipe, "tiny-rgb", tmp_path, rgb_every=None)
    assert out["policy"].channels == 3
    _check_one_channel_count(out, 3)
    x = out["images"]["coda_r"]
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])  # gray pictures stay gray


# --------------------------------------------------------------------------------------
# The owner's parts
# --------------------------------------------------------------------------------------
def test_channel_conversion_is_pils(tmp_path):
    from coda_utils.images import read_image, to_channels

    rgb = np.random.default_rng(0).integers(0, 256, (3, 9, 7), dtype=np.uint8)
    Image.fromarray(rgb.transpose(1, 2, 0), "RGB").save(tmp_path / "c.png")
    luma = np.array(Image.open(tmp_path / "c.png").convert("L"))
    assert np.array_equal(to_channels(torch.from_numpy(rgb), 1)[0].numpy(), luma)  # in memory = decoded as L
    assert torch.equal(read_image(tmp_path / "c.png", 1)[0], torch.from_numpy(luma))
    assert read_image(tmp_path / "c.png").shape == (3, 9, 7)  # its own channels by default
    gray = torch.from_numpy(luma)[None, None]
    assert torch.equal(to_channels(gray, 3), gray.expand(-1, 3, -1, -1)) and to_channels(gray, 1) is gray
    with pytest.raises(ValueError, match="1 \\(gray\\) or 3"):
        to_channels(gray, 2)


def test_a_set_records_its_channels_and_reads_back_in_them(tmp_path):
    from coda_utils import setfolder

    rgb = np.random.default_rng(1).integers(0, 256, (4, 3, 8, 8), dtype=np.uint8)
    out = setfolder.write_set(tmp_path / "s", rgb, [1, 0, 1, 0], ["b", "a"], {"method": "x"}, channels=1)
    assert setfolder.is_finished(out) and setfolder.read_manifest(out)["channels"] == 1
    assert {Image.open(p).mode for p in out.rglob("*.png")} == {"L"}
    x, y, classes = setfolder.read_set(out)
    assert x.shape == (4, 1, 8, 8) and y.tolist() == [0, 0, 1, 1] and classes == ["b", "a"]  # the manifest's order
    assert setfolder.read_set(out, channels=3).images.shape == (4, 3, 8, 8)  # converted when asked
    # a set written before manifests recorded channels: 1 when every file is gray, 3 otherwise
    legacy = tmp_path / "legacy"
    for i, arr in enumerate(rgb):
        (legacy / "a").mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr[0]).save(legacy / "a" / f"{i}.png")
    assert setfolder.read_set(legacy).images.shape[1] == 1 and not setfolder.is_finished(legacy)
    Image.fromarray(rgb[0].transpose(1, 2, 0)).save(legacy / "a" / "9.png")
    assert setfolder.read_set(legacy).images.shape[1] == 3
    with pytest.raises(FileNotFoundError, match="not a finished set"):
        setfolder.read_manifest(legacy)


def test_one_ipc_check():
    from coda_utils.datasets import check_ipc

    assert check_ipc(3) == 3 and check_ipc(np.int64(2), 5) == 2 and check_ipc(2, [2, 4], ["a", "b"]) == 2
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="positive integer"):
            check_ipc(bad)
    with pytest.raises(ValueError, match="ipc=6 is larger than the class \\(5 images\\); choose ipc <= 5"):
        check_ipc(6, 5)
    with pytest.raises(ValueError, match="ipc=4 is larger than 1 class\\(es\\) of x \\(smallest: 'a' has 3 images\\)"):
        check_ipc(4, [3, 9], ["a", "b"], "x")


def test_a_cache_made_before_policies_named_channels_keeps_working(tmp_path):
    """A latent cache (and its run's sets) from before this rule: its policy gets the encoder's
    input channels, and encoding again resumes it instead of refusing it as stale."""
    from coda_utils import encoding, images
    from coda_utils.datasets import load_fashion_mnist
    from coda_utils.prior import PriorConfig, build_vae

    torch.manual_seed(0)
    vae = build_vae(PriorConfig(vae_channels=(8, 8, 8), vae_latent_channels=4)).eval()
    data = encoding.limit_dataset(load_fashion_mnist("target"), class_limit=2, per_class_limit=3)
    encoding.encode_dataset(data, vae, tmp_path / "c", encoder_id="tiny", progress=False)
    meta = json.loads((tmp_path / "c" / "cache.json").read_text())
    assert meta["resize_policy"]["channels"] == 1
    del meta["resize_policy"]["channels"]
    (tmp_path / "c" / "cache.json").write_text(json.dumps(meta))
    assert encoding.LatentCache.load(tmp_path / "c").policy.channels == 1
    assert images.run_policy(tmp_path / "c", data).channels == 1
    before = (tmp_path / "c" / "class_0000.npy").stat().st_mtime_ns
    encoding.encode_dataset(data, vae, tmp_path / "c", encoder_id="tiny", progress=False)
    assert (tmp_path / "c" / "class_0000.npy").stat().st_mtime_ns == before


def test_generated_sets_take_the_vaes_channels_and_old_sets_resume(tmp_path):
    from coda_utils import alignment, setfolder
    from coda_utils.tiny_pipelines import tiny_sd_pipeline

    pipe = tiny_sd_pipeline(tmp_path / "pipe")  # 1-channel VAE
    kw = dict(class_ids=["bag"], prompts=["a bag"], ipc=2, steps=2, progress=False)
    out = alignment.generate_set(pipe, tmp_path / "g", **kw)
    assert setfolder.read_manifest(out)["channels"] == 1 and Image.open(out / "bag" / "0000.png").mode == "L"
    settings = json.loads((out / ".settings.json").read_text())
    del settings["channels"]  # a set generated before channels were recorded
    (out / ".settings.json").write_text(json.dumps(settings))
    (out / "bag" / "0001.png").unlink()
    alignment.generate_set(pipe, out, **kw)  # resumes: made with the VAE's channels
    assert setfolder.is_finished(out)
    with pytest.raises(alignment.StaleSetError, match="channels"):
        alignment.generate_set(pipe, out, channels=3, **kw)
    rgb = alignment.generate_set(pipe, tmp_path / "rgb", channels=3, **kw)
    x = setfolder.read_set(rgb).images
    assert x.shape == (2, 3, 32, 32) and torch.equal(x[:, 0], x[:, 2])
    with pytest.raises(ValueError, match="positive integer"):
        alignment.generate_set(pipe, tmp_path / "bad", **{**kw, "ipc": 0})


def test_the_set_writer_refuses_a_folder_another_process_is_writing(tmp_path, held_lock):
    from coda_utils.io import FolderBusyError

    first = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
    out = setfolder.write_set(tmp_path / "s", first, [0, 1], CLASSES, {"method": "first"})
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    with held_lock(out, "folder") as pid:
        with pytest.raises(FolderBusyError, match=f"pid {pid} "):
            setfolder.write_set(out, torch.full((3, 1, 8, 8), 200, dtype=torch.uint8), [0, 0, 1], CLASSES,
                                {"method": "second"})
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before  # the first set, untouched
    setfolder.write_set(out, torch.full((3, 1, 8, 8), 200, dtype=torch.uint8), [0, 0, 1], CLASSES, {"method": "second"})
    assert setfolder.read_manifest(out)["method"] == "second"
