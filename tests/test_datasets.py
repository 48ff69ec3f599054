import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from coda_utils import datasets as ds
from coda_utils import images


def test_fashion_mnist_split_sizes_and_disjointness():
    pool, target, test = (ds.load_fashion_mnist(s) for s in ("pool", "target", "test"))
    assert (len(pool), len(target), len(test)) == (50_000, 10_000, 10_000)
    assert set(pool.source_indices).isdisjoint(target.source_indices)
    assert target.source_indices[0] == 50_000 and target.source_indices[-1] == 59_999
    assert target.num_classes == 10 and target.counts().sum() == 10_000
    assert target.counts().min() > 900  # every class is well represented
    x = target.load([0, 5])
    assert x.shape == (2, 1, 28, 28) and x.dtype == torch.uint8
    assert target.load([0], 32, "pad").shape == (1, 1, 32, 32)
    assert target.prompts[0] == "T-shirt/top" and target.prompts[9] == "Ankle boot"


def test_model_selection_splits_partition_target():
    target, fit, val = (ds.load_fashion_mnist(s) for s in ("target", "target_fit", "target_val"))
    assert (len(fit), len(val)) == (8_000, 2_000)
    assert set(fit.source_indices).isdisjoint(val.source_indices)
    assert np.array_equal(np.concatenate([fit.source_indices, val.source_indices]), target.source_indices)
    assert val.counts().min() > 150  # every class is represented in the held-out part


def test_fashion_mnist_missing_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(ds, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(ds, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    monkeypatch.delenv("CODA_DATA_DIR", raising=False)
    with pytest.raises(ds.DatasetNotFoundError) as err:
        ds.load_fashion_mnist("target", data_dir=tmp_path / "mine")
    msg = str(err.value)
    assert str(tmp_path / "mine") in msg and "nowhere" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "curl" in msg


def test_unknown_split():
    with pytest.raises(ValueError, match="unknown Fashion-MNIST split"):
        ds.load_fashion_mnist("validation")


def _write_tree(root, classes, n=3, size=(20, 30)):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            arr = np.random.default_rng(i).integers(0, 255, (*size, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.png")


def test_image_folder_skips_corrupt_images_and_counts(tmp_path):
    _write_tree(tmp_path, ["cat", "dog"])
    (tmp_path / "cat" / "broken.jpg").write_bytes(b"this is not a jpeg")
    good = (tmp_path / "dog" / "0.png").read_bytes()
    (tmp_path / "dog" / "truncated.png").write_bytes(good[: len(good) // 2])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        data = ds.load_image_folder(tmp_path)
    assert len(data) == 6 and data.classes == ["cat", "dog"]
    assert len(data.skipped) == 2
    assert any("skipped 2 unreadable" in str(x.message) for x in w)
    x = data.load(size=16)
    assert x.shape == (6, 3, 16, 16)
    assert data.load(size=(8, 12), resize="squash").shape == (6, 3, 8, 12)


def test_image_folder_errors(tmp_path):
    with pytest.raises(ds.DatasetNotFoundError, match="does not exist"):
        ds.load_image_folder(tmp_path / "missing")
    (tmp_path / "empty_class").mkdir()
    (tmp_path / "empty_class" / "junk.jpg").write_bytes(b"junk")
    with pytest.raises(ds.DatasetNotFoundError, match="no readable image"):
        ds.load_image_folder(tmp_path)


def test_imagenet_subsets_by_name(tmp_path):
    wnids = ds.imagenet_subset("imagenette")
    assert len(wnids) == 10 and wnids[0] == "n01440764"
    assert len(ds.imagenet_subset("imagenet-100")) == 100
    assert len(ds.imagenet_subset("imagenet-1k")) == 1000
    for name in ds.IMAGENET_SUBSETS:
        assert set(ds.imagenet_subset(name)) <= set(ds.imagenet_class_names())
    with pytest.raises(ValueError, match="unknown ImageNet subset"):
        ds.imagenet_subset("imagenet-z")
    _write_tree(tmp_path, wnids, n=1)
    (tmp_path / "n99999999").mkdir()  # a folder outside the subset is ignored
    data = ds.load_dataset("imagenette", root=tmp_path)
    assert data.classes == wnids and data.prompts[0] == "tench"
    assert data.class_names[0].startswith("tench, Tinca tinca")
    woof = ds.imagenet_subset("imagewoof")
    with pytest.raises(ds.DatasetNotFoundError, match="lacks 10 of the 10 class folders"):
        ds.load_image_folder(tmp_path, subset="imagewoof")
    assert woof[0] not in wnids


def test_resize_modes():
    x = torch.arange(2 * 3 * 10 * 20, dtype=torch.float32).reshape(2, 3, 10, 20).to(torch.uint8)
    assert images.resize_images(x, (5, 5), "center_crop").shape == (2, 3, 5, 5)
    assert images.resize_images(x, (12, 22), "pad").shape == (2, 3, 12, 22)
    with pytest.raises(ValueError):
        images.resize_images(x, (5, 5), "pad")
    with pytest.raises(ValueError, match="resize must be"):
        images.resize_images(x, (5, 5), "stretch")


def test_unknown_dataset_is_named_before_asking_for_a_root():
    with pytest.raises(ValueError, match="unknown dataset 'foo'; choose one of fashion-mnist, folder, imagenette"):
        ds.load_dataset("foo", "train")
    with pytest.raises(ValueError, match="parameter `data_root`"):
        ds.load_dataset("imagenette", "train")


def test_imagenet_like_tree_is_read_whole(imagenet_like):
    root, info = imagenet_like
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = ds.load_dataset("imagenette", "train", root / "train")
    assert len(data) == info["images"] and sorted(data.skipped) == sorted(str(p) for p in info["skipped"])
    assert info["nested"] in data.paths  # nested folders belong to their class, as in torchvision
    assert data.native_size is None and data.sizes.shape == (len(data), 2)
    assert data.sizes[:, 0].min() == 64 and data.sizes[:, 1].max() == 500
    with pytest.raises(ValueError, match="mixed sizes .*resize policy"):
        data.load([0])
    x = data.load(np.arange(len(data)), 48, "squash")  # grayscale, RGBA and CMYK all come out RGB
    assert x.shape == (len(data), 3, 48, 48) and x.dtype == torch.uint8


def test_resize_policy_is_decided_from_every_image(imagenet_like):
    root, info = imagenet_like
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = ds.load_dataset("imagenette", "train", root / "train")
    policy = images.decide_resize(data, 64)
    assert policy.mode == "squash" and policy.native is None and policy.export_size == (64, 64)  # the reference's choice
    assert policy.sizes["images"] == len(data) and policy.sizes["max_aspect_ratio"] == pytest.approx(500 / 64, rel=1e-3)
    with pytest.raises(ValueError, match=r"resize='pad' cannot fit .*\(\d+x\d+, HxW\) into 64x64 .*parameter `resize`"):
        images.decide_resize(data, 64, "pad")
    with pytest.raises(ValueError, match="not a resize mode"):
        images.decide_resize(data, 64, "stretch")
    crop = images.decide_resize(data, 64, "center_crop")
    i = data.paths.index(info["extreme"])
    assert data.with_policy(crop).load([i]).shape == (1, 3, 64, 64)  # a 64x500 strip: cropped, not blown up
    assert images.ResizePolicy.from_dict(policy.to_dict()) == policy
    fashion = ds.load_fashion_mnist("target")
    fp = images.decide_resize(fashion, 32)
    assert (fp.mode, fp.native, fp.export_size) == ("pad", (28, 28), (28, 28))  # every pixel kept, exported at 28
    assert fashion.with_policy(fp).load([0]).shape == (1, 1, 28, 28)


def test_center_crop_keeps_the_aspect_ratio_and_is_cheap():
    strip = torch.zeros(1, 3, 50, 2000, dtype=torch.uint8)
    strip[..., 975:1025] = 255  # the centre of the strip is white
    out = images.resize_images(strip, (32, 32), "center_crop")
    assert out.shape == (1, 3, 32, 32) and int(out.float().mean()) == 255
    x = torch.arange(4 * 6, dtype=torch.uint8).reshape(1, 1, 4, 6)
    assert torch.equal(images.resize_images(x, (4, 4), "center_crop"), x[..., 1:5])


def test_a_grayscale_tree_loads_as_one_channel(tmp_path, imagenet_like):
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(2):
            Image.fromarray(np.full((20, 30), 40 * i + 10, np.uint8)).save(tmp_path / c / f"{i}.png")
    data = ds.load_image_folder(tmp_path)
    assert data.gray and data.channels == 1 and data.load(size=16).shape == (4, 1, 16, 16)
    root, _ = imagenet_like  # grayscale files among colour ones: every image loads as RGB
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mixed = ds.load_dataset("imagenette", "train", root / "train")
    assert not mixed.gray and mixed.channels == 3


def test_holdout_split_is_fixed_disjoint_and_recorded(imagenet_like):
    import numpy as np

    from coda_utils.datasets import holdout_split, load_dataset

    root, info = imagenet_like
    data = load_dataset("imagenette", "train", root / "train")
    fit, val, record = holdout_split(data, 0.25, seed=0)
    fit2, val2, record2 = holdout_split(data, 0.25, seed=0)
    assert record == record2 and list(val.source_indices) == list(val2.source_indices)
    assert not set(fit.source_indices) & set(val.source_indices)
    assert len(fit) + len(val) == len(data) and (val.counts() >= 1).all() and (fit.counts() >= 1).all()
    assert record["val_counts"] == [int(n) for n in val.counts()]
    assert holdout_split(data, 0.25, seed=1)[2]["val_source_indices_sha256"] != record["val_source_indices_sha256"]
    with pytest.raises(ValueError, match="holdout_fraction"):
        holdout_split(data, 1.0)
    assert np.all(np.isin(val.labels, np.arange(data.num_classes)))


def test_evaluation_data_is_what_notebook_04_trains_and_tests_with(imagenet_like, tmp_path):
    from coda_utils.datasets import evaluation_data

    target, size, test_x, test_y = evaluation_data("fashion-mnist", test_limit=50, latents=tmp_path / "no-cache")
    assert target.name.endswith("target") and size == (28, 28) and tuple(test_x.shape) == (50, 1, 28, 28) and len(test_y) == 50
    root, _ = imagenet_like
    with pytest.raises(ValueError, match="image_size"):  # mixed sizes and no size to train at (nor a cache's policy)
        evaluation_data("imagenette", root / "train", test_root=root / "val", latents=tmp_path / "no-cache")
    target, size, test_x, _ = evaluation_data("imagenette", root / "train", test_root=root / "val", image_size=32,
                                              latents=tmp_path / "no-cache")
    assert size == (32, 32) and test_x.shape[-2:] == (32, 32) and target.policy is not None


def _tree(root, sizes):
    """``root/<a|b>/<i>.png``: one gray image of each (H, W) in ``sizes`` per class."""
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            Image.fromarray(np.full((h, w), 60 + 40 * i, np.uint8), "L").save(root / c / f"{i}.png")
    return ds.load_image_folder(root)


def test_default_resize_squashes_same_size_images_larger_than_the_model_and_exports_them_at_their_size(tmp_path):
    data = _tree(tmp_path, [(40, 48)] * 3)
    policy = images.decide_resize(data, 32)
    assert (policy.mode, policy.size, policy.native, policy.export_size) == ("squash", (32, 32), (40, 48), (40, 48))
    assert data.load([0], policy.size, policy.mode).shape == (1, 1, 32, 32)
    assert data.with_policy(policy).load([0]).shape == (1, 1, 40, 48)  # sets are exported at the dataset's size


def test_default_resize_squashes_mixed_sizes_even_when_all_fit(tmp_path):
    data = _tree(tmp_path, [(20, 20), (24, 30), (32, 16)])
    policy = images.decide_resize(data, 32)
    assert (policy.mode, policy.native, policy.export_size) == ("squash", None, (32, 32))  # no one size to pad back to
    assert policy.sizes["distinct"] == 3 and policy.sizes["images"] == 6
    assert data.with_policy(policy).load(np.arange(6)).shape == (6, 1, 32, 32)
