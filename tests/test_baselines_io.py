import json

import numpy as np
import pytest

from coda_utils.baselines import export_selection, random_real
from coda_utils.datasets import check_ipc
from coda_utils.io import atomic_write, write_json


def test_random_real_is_seeded_and_per_class(target):
    a, b, c = random_real(target, 10, seed=0), random_real(target, 10, seed=0), random_real(target, 10, seed=1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(np.unique(a)) == 100
    assert np.array_equal(np.bincount(target.labels[a], minlength=10), np.full(10, 10))


def test_ipc_larger_than_class_is_a_clear_error(target):
    small = target.subset(np.concatenate([target.class_indices(c)[:5] for c in range(10)]))
    with pytest.raises(ValueError, match="ipc=6 is larger than 10 class"):
        check_ipc(6, small.counts(), small.class_names, small.name)
    with pytest.raises(ValueError, match="positive integer"):
        random_real(small, 0)
    assert len(random_real(small, 5)) == 50


def test_export_selection_roundtrip(target, tmp_path):
    idx = random_real(target, 2, seed=3)
    out = export_selection(target, idx, tmp_path / "rr", "random_real", 2)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"] == "random_real" and len(manifest["files"]) == 20
    assert manifest["source_indices"] == target.source_indices[idx].tolist()
    from PIL import Image

    img = np.asarray(Image.open(out / manifest["files"][0]))
    assert img.shape == (28, 28) and np.array_equal(img, target.load(idx[:1]).numpy()[0, 0])


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    p = tmp_path / "x.json"
    write_json(p, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_write(p, "w") as fh:
            fh.write("partial")
            raise RuntimeError("interrupted")
    assert json.loads(p.read_text()) == {"a": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["x.json"]


def test_selection_overlap():
    from coda_utils.baselines import selection_overlap

    m = selection_overlap([np.array([1, 2, 3, 4]), np.array([3, 4, 5, 6]), np.array([1, 2, 3, 4])])
    assert m.shape == (3, 3) and np.allclose(np.diag(m), 1)
    assert m[0, 1] == 0.5 and m[0, 2] == 1.0 and m[1, 2] == 0.5


def test_kmeans_selection_depends_on_its_seed_not_on_threads():
    from threadpoolctl import threadpool_limits

    from coda_utils.baselines import kmeans_nearest_real

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, 1.0, size=(60, 4, 2, 2)) for c in range(4)]).astype(np.float32)
    a = kmeans_nearest_real(x, 6, seed=0)
    with threadpool_limits(2):
        b = kmeans_nearest_real(x, 6, seed=0)
    assert np.array_equal(a, b) and len(np.unique(a)) == 6
    others = [kmeans_nearest_real(x, 6, seed=s) for s in range(1, 6)]
    assert any(not np.array_equal(np.sort(a), np.sort(o)) for o in others)  # another seed is another draw


def test_merge_json_keeps_other_keys(tmp_path):
    from coda_utils.io import merge_json, read_json

    p = tmp_path / "frechet.json"
    merge_json(p, {"R": 1.0, "unguided": 2.0, "coda_g": 3.0})
    merge_json(p, {"coda_g": 4.0})  # a partial rerun of one method
    assert read_json(p) == {"R": 1.0, "unguided": 2.0, "coda_g": 4.0}
    p.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not hold a JSON object"):
        merge_json(p, {"a": 1})


def test_reexport_is_complete_or_absent(tmp_path, monkeypatch):
    from coda_utils import setfolder as cio

    images = np.zeros((4, 1, 8, 8), np.uint8)
    out = cio.write_set(tmp_path / "set", images, [0, 0, 1, 1], ["a", "b"], {"method": "x"})
    assert sorted(json.loads((out / "manifest.json").read_text())["files"]) == ["a/0000.png", "a/0001.png", "b/0000.png",
                                                                                  "b/0001.png"]
    calls = []
    real = cio.write_image

    def failing(path, img, channels=None):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(path, img, channels)

    monkeypatch.setattr(cio, "write_image", failing)
    with pytest.raises(OSError):
        cio.write_set(out, images, [0, 0, 1, 1], ["a", "b"], {"method": "y"})
    assert not cio.is_finished(out)  # the half-rewritten folder does not look finished
    monkeypatch.setattr(cio, "write_image", real)
    cio.write_set(out, images[:2], [0, 1], ["a", "b"], {"method": "z"})
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == ["a/0000.png", "b/0000.png"]  # no stale images


def test_vae_round_trip_set_is_the_vae_reconstruction_and_refuses_another_source(target, tmp_path):
    import torch

    from coda_utils import baselines, encoding
    from coda_utils.setfolder import read_set
    from coda_utils.prior import PriorConfig, build_vae

    torch.manual_seed(0)
    vae = build_vae(PriorConfig(vae_channels=(8, 8, 8), vae_latent_channels=16)).eval()
    src = export_selection(target, random_real(target, 2, seed=3), tmp_path / "rr", "random_real", 2)
    out = baselines.vae_round_trip(src, tmp_path / "vae_rr", vae, "vae_random_real")
    x, y, _ = read_set(src)
    rx, ry, _ = read_set(out)
    # padded 28 -> 32, encoded to the posterior mean, decoded, centre-cropped back to 28
    expected = encoding.decode_latents(vae, encoding.encode_images(vae, x, resize="pad"))[..., 2:30, 2:30]
    assert rx.shape == x.shape == (20, 1, 28, 28) and torch.equal(ry, y) and torch.equal(rx, expected)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"] == "vae_random_real" and manifest["source_method"] == "random_real"
    assert manifest["vae"] == encoding.vae_fingerprint(vae) and manifest["source_indices"] == json.loads(
        (src / "manifest.json").read_text())["source_indices"]
    # made again from the same set by the same VAE: kept; from another set or VAE: refused
    assert baselines.vae_round_trip(src, out, vae, "vae_random_real") == out
    other = export_selection(target, random_real(target, 2, seed=4), tmp_path / "rr4", "random_real", 2)
    with pytest.raises(baselines.StaleRoundTripError, match="delete"):
        baselines.vae_round_trip(other, out, vae, "vae_random_real")
    with torch.no_grad():
        vae.decoder.conv_out.bias.add_(0.1)
    with pytest.raises(baselines.StaleRoundTripError, match="another source set or VAE"):
        baselines.vae_round_trip(src, out, vae, "vae_random_real")
    with pytest.raises(FileNotFoundError, match="not a finished set"):
        baselines.vae_round_trip(tmp_path / "nothing", tmp_path / "x", vae, "vae_coda_r")
