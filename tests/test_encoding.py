"""Stage 1: encoding into the VAE's latent space and the per-class latent cache."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from coda_utils import encoding, plots
from coda_utils.images import decide_resize
from coda_utils.encoding import LatentCache, NonFiniteLatentError, StaleCacheError, encode_dataset, encode_images, limit_dataset


@pytest.fixture(scope="module")
def vae():
    from coda_utils.prior import PriorConfig, build_vae

    torch.manual_seed(0)
    return build_vae(PriorConfig(vae_channels=(8, 8, 8), vae_latent_channels=4)).eval()


@pytest.fixture(scope="module")
def vae3():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8, sample_size=16).eval()


@pytest.fixture(scope="module")
def small(target):
    """3 classes x 20 images of Fashion-MNIST target."""
    return encoding.limit_dataset(target, class_limit=3, per_class_limit=20)


def test_latent_is_scaled_posterior_mean_of_padded_image(vae, small):
    x = small.load([0, 1])
    z = encode_images(vae, x)
    pad = torch.nn.functional.pad(x.float() / 127.5 - 1, (2, 2, 2, 2), value=-1.0)  # black border
    with torch.no_grad():
        ref = vae.encode(pad).latent_dist.mean * vae.config.scaling_factor
    assert z.shape == (2, 4, 8, 8) and z.dtype == torch.float32
    assert torch.allclose(z, ref, atol=1e-6)
    assert torch.equal(z, encode_images(vae, x))  # the mean, never a sample


def test_preprocess_and_resize_policy(small, vae, vae3):
    x = small.load([0])
    p = encoding.preprocess(x, 3)
    assert p.shape == (1, 3, 28, 28) and p.min() >= -1 and p.max() <= 1 and torch.equal(p[:, 0], p[:, 2])
    assert decide_resize(small, encoding.native_size(vae)).mode == "pad"  # 28 -> 32
    assert decide_resize(small, encoding.native_size(vae3)).mode == "squash"  # 28 -> 16
    rgb = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    assert encoding.preprocess(rgb, 1).shape == (2, 1, 8, 8)


def test_cache_roundtrip_3_channel_vae(vae3, small, tmp_path):
    cache = encode_dataset(small, vae3, tmp_path / "c", encoder_id="tiny3", progress=False)
    meta = json.loads((tmp_path / "c" / "cache.json").read_text())
    assert meta["size"] == [16, 16] and meta["resize"] == "squash" and meta["encoder"]["id"] == "tiny3"
    assert cache.policy.mode == "squash" and cache.policy.native == (28, 28) and cache.policy.sizes["images"] == len(small)
    assert meta["counts"] == [20, 20, 20] and meta["done"] == [0, 1, 2] and meta["store_dtype"] == "float32"
    assert set(meta["encoder"]) >= {"config_sha256", "weights_sha256", "scaling_factor"}
    for c in range(3):
        pos = small.class_indices(c)
        assert np.array_equal(cache.indices(c), pos)
        assert np.array_equal(cache.source_indices(c), small.source_indices[pos])
        z = encode_images(vae3, small.load(pos[:3], (16, 16), "squash"))
        np.testing.assert_allclose(cache.latents(c)[:3], z.numpy(), atol=1e-6)
    assert cache.latent_shape == (4, 8, 8) and "squash" in cache.summary()
    threaded = encode_dataset(small, vae3, tmp_path / "t", encoder_id="tiny3", progress=False, batch_size=7, num_workers=2)
    for c in range(3):  # loading ahead in threads changes nothing
        np.testing.assert_allclose(threaded.latents(c), cache.latents(c), atol=1e-5)
        assert np.array_equal(threaded.indices(c), cache.indices(c))


def test_interrupted_run_resumes_at_first_unfinished_class(vae, small, tmp_path, monkeypatch):
    full = encode_dataset(small, vae, tmp_path / "full", encoder_id="tiny", progress=False, batch_size=7)
    calls = []
    real = encoding.encode_images

    def flaky(v, images, *a, **k):
        calls.append(len(images))
        if len(calls) == 1 + 2 * 3 + 1:  # probe + two classes of 3 batches, then fail in class 2
            raise KeyboardInterrupt
        return real(v, images, *a, **k)

    monkeypatch.setattr(encoding, "encode_images", flaky)
    with pytest.raises(KeyboardInterrupt):
        encode_dataset(small, vae, tmp_path / "c", encoder_id="tiny", progress=False, batch_size=7)
    meta = json.loads((tmp_path / "c" / "cache.json").read_text())
    assert meta["done"] == [0, 1]
    assert not list((tmp_path / "c").glob("*.tmp")) and not (tmp_path / "c" / "class_0002.npy").exists()
    with pytest.raises(RuntimeError, match="unfinished"):
        LatentCache.load(tmp_path / "c")
    calls.clear()
    monkeypatch.setattr(encoding, "encode_images", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    cache = encode_dataset(small, vae, tmp_path / "c", encoder_id="tiny", progress=False, batch_size=7)
    assert len(calls) == 1 + 3  # the probe, then only class 2
    for c in range(3):  # same batches as the uninterrupted run
        assert np.array_equal(cache.latents(c), full.latents(c))


def test_stale_cache_is_refused_with_how_to_rebuild(vae, small, tmp_path):
    encode_dataset(small, vae, tmp_path / "c", encoder_id="tiny", progress=False)
    with pytest.raises(StaleCacheError, match=r"differs in: resize.*rm -r .*rebuild=True"):
        encode_dataset(small, vae, tmp_path / "c", encoder_id="tiny", resize="squash", progress=False)
    other = type(vae).from_config(vae.config)  # same config, other weights (a retrained VAE)
    with pytest.raises(StaleCacheError, match="encoder"):
        encode_dataset(small, other, tmp_path / "c", encoder_id="tiny", progress=False)
    fewer = encoding.limit_dataset(small, per_class_limit=10)
    with pytest.raises(StaleCacheError, match="counts"):
        encode_dataset(fewer, vae, tmp_path / "c", encoder_id="tiny", progress=False)
    with pytest.raises(StaleCacheError, match="another dataset"):
        LatentCache.load(tmp_path / "c").check_dataset(fewer)
    with pytest.raises(StaleCacheError, match="encoder"):
        LatentCache.load(tmp_path / "c").check_encoder("another-model")
    (tmp_path / "c" / "keep.txt").write_text("not part of the cache")
    cache = encode_dataset(fewer, vae, tmp_path / "c", encoder_id="tiny", rebuild=True, progress=False)
    assert cache.counts == [10, 10, 10] and (tmp_path / "c" / "keep.txt").exists()


def _nan_for_white_images(vae):
    real = vae.encode

    def encode(x):
        out = real(x)
        white = (x.flatten(1) > 0.99).all(1)
        mean = out.latent_dist.mean.clone()
        mean[white] = float("nan")
        return SimpleNamespace(latent_dist=SimpleNamespace(mean=mean))

    return encode


def test_nan_latent_names_the_image(small, tmp_path, monkeypatch):
    from coda_utils.prior import PriorConfig, build_vae

    vae = build_vae(PriorConfig(vae_channels=(8, 8, 8), vae_latent_channels=4))
    monkeypatch.setattr(vae, "encode", _nan_for_white_images(vae))
    data = small.subset(np.arange(len(small)))
    data.classes, data.class_names = small.classes, small.class_names
    k = int(data.class_indices(1)[4])
    data._pixels[k] = 255
    with pytest.raises(NonFiniteLatentError, match=f"source index {int(data.source_indices[k])} "):
        encode_dataset(data, vae, tmp_path / "c", encoder_id="x", progress=False, resize="squash", size=32)
    # an ImageFolder names the file
    from PIL import Image

    from coda_utils.datasets import load_image_folder

    for cls in ("a", "b"):
        (tmp_path / "folder" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((20, 20, 3), 40 * i, np.uint8)).save(tmp_path / "folder" / cls / f"{i}.png")
    Image.fromarray(np.full((20, 20, 3), 255, np.uint8)).save(tmp_path / "folder" / "b" / "white.png")
    folder = load_image_folder(tmp_path / "folder")
    with pytest.raises(NonFiniteLatentError, match=r"folder/b/white\.png"):
        encode_dataset(folder, vae, tmp_path / "f", encoder_id="x", progress=False, resize="squash")


def test_load_vae_from_pipeline_or_bare_directory(vae, tmp_path):
    vae.save_pretrained(tmp_path / "bare")
    vae.save_pretrained(tmp_path / "pipe" / "vae")
    for path in (tmp_path / "bare", tmp_path / "pipe"):
        loaded = encoding.load_vae(path)
        assert encoding.vae_fingerprint(loaded) == encoding.vae_fingerprint(vae)
    with pytest.raises(FileNotFoundError, match="neither a pipeline"):
        encoding.load_vae(tmp_path)


def test_limit_dataset_and_reconstruction_grid(vae, small, tmp_path):
    sub = encoding.limit_dataset(small, class_limit=2, per_class_limit=4)
    assert sub.num_classes == 2 and list(sub.counts()) == [4, 4]
    cache = encode_dataset(sub, vae, tmp_path / "c", encoder_id="tiny", progress=False)
    fig = plots.reconstruction_grid(sub, cache, vae, per_class=3)
    assert len(fig.axes) == 1
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_model_paths_resolve_from_any_working_directory(tmp_path, monkeypatch):
    from coda_utils.prior import SHIPPED_PRIOR

    monkeypatch.chdir(tmp_path)  # as under nbval, which runs a notebook in its own directory
    with pytest.raises(FileNotFoundError, match="not found"):
        encoding.load_vae("data/models/no-such-prior")
    if not (SHIPPED_PRIOR / "model_index.json").is_file():
        pytest.skip("the shipped prior is not built")
    vae = encoding.load_vae("data/models/fashion-prior")
    unet = json.loads((SHIPPED_PRIOR / "unet" / "config.json").read_text())
    assert vae.config.in_channels == 1 and encoding.native_size(vae) == (32, 32)
    assert vae.config.latent_channels == unet["in_channels"]


def test_a_policy_that_cannot_handle_an_image_names_it_and_writes_nothing(vae, imagenet_like, tmp_path):
    import warnings

    from coda_utils.datasets import load_dataset

    root, info = imagenet_like
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = limit_dataset(load_dataset("imagenette", "train", root / "train"), class_limit=2)
    with pytest.raises(ValueError, match=r"resize='pad' cannot fit .*n01440764.*parameter `resize`"):
        encode_dataset(data, vae, tmp_path / "c", encoder_id="tiny", resize="pad", progress=False)
    assert not (tmp_path / "c").exists()  # nothing half-done
    cache = encode_dataset(data, vae, tmp_path / "c", encoder_id="tiny", progress=False)  # mixed sizes: squash
    assert cache.policy.mode == "squash" and cache.policy.export_size == (32, 32) and cache.policy.native is None


def test_a_second_encoder_of_one_cache_is_refused(vae, small, tmp_path):
    from coda_utils.io import exclusive

    with exclusive(tmp_path / "c", "cache"):  # as another process would hold it
        import subprocess
        import sys

        code = ("from coda_utils.io import exclusive; import sys\n"
                "try:\n    exclusive(sys.argv[1], 'cache').__enter__()\nexcept Exception as e:\n    print(type(e).__name__, e)")
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "c")], capture_output=True, text=True).stdout
    assert out.startswith("FolderBusyError") and f"pid {__import__('os').getpid()}" in out
    with exclusive(tmp_path / "c", "cache"):
        pass  # released: the next run takes it


def test_a_cache_made_before_policies_were_recorded_is_upgraded_not_reencoded(vae, small, tmp_path):
    encode_dataset(small, vae, tmp_path / "c", encoder_id="tiny", progress=False)
    meta = json.loads((tmp_path / "c" / "cache.json").read_text())
    del meta["resize_policy"]
    (tmp_path / "c" / "cache.json").write_text(json.dumps(meta))
    with pytest.raises(StaleCacheError, match="run notebook 01 again"):
        LatentCache.load(tmp_path / "c").policy
    before = (tmp_path / "c" / "class_0000.npy").stat().st_mtime_ns
    cache = encode_dataset(small, vae, tmp_path / "c", encoder_id="tiny", progress=False)
    assert cache.policy.mode == "pad" and (tmp_path / "c" / "class_0000.npy").stat().st_mtime_ns == before


def test_encode_dataset_refuses_a_cache_another_process_is_writing(vae, small, tmp_path, held_lock):
    from coda_utils.io import FolderBusyError

    data = encoding.limit_dataset(small, class_limit=2, per_class_limit=2)
    with held_lock(tmp_path / "c", "cache") as pid:
        with pytest.raises(FolderBusyError, match=f"pid {pid} "):
            encode_dataset(data, vae, tmp_path / "c", encoder_id="tiny", progress=False)
    assert not list((tmp_path / "c").glob("*.npy")) and not (tmp_path / "c" / "cache.json").exists()
    assert encode_dataset(data, vae, tmp_path / "c", encoder_id="tiny", progress=False).complete
