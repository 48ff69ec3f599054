"""The evaluation harness: protocols, augmentations, training, result files and tables."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from coda_utils import evaluation as ev
from coda_utils.datasets import load_fashion_mnist
from coda_utils.io import export_image_folder

torch.set_num_threads(1)


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fmnist():
    """(target, test) Fashion-MNIST splits (make test installs the data; a missing dataset fails)."""
    return load_fashion_mnist("target"), load_fashion_mnist("test")


def _subset(target, ipc: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(target.class_indices(c), ipc, replace=False) for c in range(10)])
    return target.load(idx), target.labels[idx]


@pytest.fixture(scope="module")
def tiny(fmnist):
    """IPC 2 from target and 200 test images."""
    target, test = fmnist
    x, y = _subset(target, 2)
    return x, y, test.load(np.arange(200)), test.labels[:200]


# --------------------------------------------------------------------------------------
# Protocols
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("ipc, epochs", [(1, 3000), (2, 2000), (10, 2000), (11, 1500), (50, 1500),
                                         (200, 1000), (500, 500), (1000, 300)])
def test_idc_epochs_by_ipc(ipc: int, epochs: int) -> None:
    assert ev.epochs_for_ipc("idc", ipc) == epochs
    assert ev.get_protocol("idc", ipc).epochs == epochs


def test_dc_dsa_epochs_do_not_depend_on_ipc() -> None:
    assert {ev.epochs_for_ipc("dc", i) for i in (1, 10, 50)} == {300}
    assert {ev.epochs_for_ipc("dsa", i) for i in (1, 10, 50)} == {1000}


def test_lr_milestones() -> None:
    assert ev.lr_milestones("dc", 300) == [150]
    assert ev.lr_milestones("dsa", 1000) == [500]
    assert ev.lr_milestones("idc", 1500) == [1000, 1250]
    assert ev.lr_milestones("idc", 2000) == [1333, 1666]
    assert ev.get_protocol("dc", 10).milestones == [150]
    assert ev.get_protocol("idc", 10).milestones == [1333, 1666]


def test_epochs_override_scales_milestones() -> None:
    dc = ev.get_protocol("dc", 10, epochs=20)
    idc = ev.get_protocol("IDC", 1, epochs=60)
    assert (dc.epochs, dc.milestones, dc.lr_gamma, dc.batch_size) == (20, [10], 0.1, 256)
    assert (idc.epochs, idc.milestones, idc.lr_gamma, idc.batch_size) == (60, [40, 50], 0.2, 64)
    assert idc.cutmix_beta == 1.0 and idc.cutmix_prob == 1.0


def test_unknown_protocol() -> None:
    with pytest.raises(ValueError, match="unknown protocol 'mtt'"):
        ev.get_protocol("mtt", 10)
    with pytest.raises(ValueError, match="epochs"):
        ev.get_protocol("dc", 10, epochs=0)


def test_normalization_for() -> None:
    assert ev.normalization_for("fashion-mnist-target", 1) == ((0.2861,), (0.3530,))
    assert ev.normalization_for("imagenette", 3) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    with pytest.raises(ValueError, match="grayscale"):
        ev.normalization_for("imagenette", 1)


# --------------------------------------------------------------------------------------
# Augmentations
# --------------------------------------------------------------------------------------
def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


AUGMENTS = [(f"dsa-{f}", lambda x, g, f=f: ev.dsa_augment(x, g, strategy=f))
            for f in ("color", "crop", "cutout", "flip", "scale", "rotate")]
AUGMENTS += [("dsa-all", ev.dsa_augment), ("idc", ev.idc_augment)]


@pytest.mark.parametrize("name, fn", AUGMENTS, ids=[a[0] for a in AUGMENTS])
@pytest.mark.parametrize("channels", [1, 3])
def test_augmentation_shape_dtype_determinism(name, fn, channels: int) -> None:
    x = torch.rand(8, channels, 28, 28, generator=_gen(123))
    a, b, c = fn(x, _gen(0)), fn(x, _gen(0)), fn(x, _gen(1))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, x)


def test_dsa_bad_strategy() -> None:
    with pytest.raises(ValueError, match="bad DSA strategy"):
        ev.dsa_augment(torch.zeros(2, 1, 8, 8), _gen(0), strategy="color_jpeg")


def test_cutmix_weights_sum_to_one_and_match_pasted_area() -> None:
    n = 16
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 32, 32).contiguous()
    y = torch.arange(n)  # image i has the constant value i and class i
    for seed in range(5):
        mixed, t = ev.cutmix(x, y, n, _gen(seed))
        assert mixed.shape == x.shape and t.shape == (n, n)
        torch.testing.assert_close(t.sum(1), torch.ones(n))
        assert (t >= 0).all()
        own = (mixed[:, 0] == y.view(n, 1, 1)).float().mean(dim=(1, 2))
        for i in range(n):  # where the partner is another image, the weight is the kept share
            if t[i, i] < 1:
                assert t[i, i].item() == pytest.approx(own[i].item())


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------
def test_input_errors(tiny) -> None:
    x, y, tx, ty = tiny
    with pytest.raises(ValueError, match="20 images but labels"):
        ev.train_and_evaluate(x, y[:-1], tx, ty, "convnet3", "dc", 0, progress=False)
    with pytest.raises(ValueError, match="uint8"):
        ev.train_and_evaluate(x.float(), y, tx, ty, "convnet3", "dc", 0, progress=False)
    with pytest.raises(ValueError, match="test images"):
        ev.train_and_evaluate(x, y, tx[:, :, :14, :14], ty, "convnet3", "dc", 0, progress=False)
    with pytest.raises(ValueError, match="ipc=1"):
        ev.evaluate("random", x, y, tx, ty, ipc=1, epochs=1, progress=False)


def test_deterministic_for_a_seed(tiny) -> None:
    x, y, tx, ty = tiny
    proto = ev.get_protocol("dsa", 2, epochs=2)
    torch.manual_seed(42)
    state = torch.get_rng_state()
    runs = [ev.train_and_evaluate(x, y, tx, ty, "convnet3", proto, seed, progress=False) for seed in (7, 7, 8)]
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
    assert runs[0]["train_loss"] == runs[1]["train_loss"] and runs[0]["acc"] == runs[1]["acc"]
    assert runs[0]["train_loss"] != runs[2]["train_loss"]


def test_evaluate_csv_and_resume(tiny, tmp_path: Path, monkeypatch) -> None:
    x, y, tx, ty = tiny
    csv = tmp_path / "results.csv"
    df = ev.evaluate("random", x, y, tx, ty, ipc=2, repeats=2, epochs=3, out_csv=csv, progress=False)
    assert list(df.columns[:8]) == ev.RESULT_COLUMNS
    assert list(df["seed"]) == [0, 1] and (df["epochs"] == 3).all()
    assert df["acc"].between(0, 100).all() and df["acc_best"].between(0, 100).all()
    assert (df["acc_best"] >= df["acc"]).all() and (df["train_seconds"] > 0).all()
    on_disk = pd.read_csv(csv)
    assert list(on_disk.columns) == ev.RESULT_COLUMNS + ["epochs"]
    assert len(on_disk) == 2

    calls = []
    real = ev.train_and_evaluate

    def counting(*args, **kwargs):
        calls.append(args[6])  # the seed
        return real(*args, **kwargs)

    monkeypatch.setattr(ev, "train_and_evaluate", counting)
    df3 = ev.evaluate("random", x, y, tx, ty, ipc=2, repeats=3, epochs=3, out_csv=csv, progress=False)
    assert calls == [2]  # seeds 0 and 1 were found in the file
    pd.testing.assert_frame_equal(df3.iloc[:2].reset_index(drop=True), df.reset_index(drop=True))
    assert len(pd.read_csv(csv)) == 3
    ev.evaluate("random", x, y, tx, ty, ipc=2, repeats=1, epochs=2, out_csv=csv, progress=False)
    assert calls == [2, 0]  # another epoch count is another experiment
    assert len(pd.read_csv(csv)) == 4


@pytest.mark.slow
def test_training_beats_chance(fmnist) -> None:
    """100 target images, 20 epochs: far above the 10 % of guessing (typically ~65 %)."""
    target, test = fmnist
    x, y = _subset(target, 10, seed=1)
    res = ev.train_and_evaluate(x, y, test.load(np.arange(200)), test.labels[:200], "convnet3",
                                ev.get_protocol("dc", 10, epochs=20), seed=0, eval_every=10, progress=False)
    assert res["acc"] > 40.0
    assert res["acc_best"] >= res["acc"]


# --------------------------------------------------------------------------------------
# Tables and exported sets
# --------------------------------------------------------------------------------------
def test_summarize_and_format_table() -> None:
    df = pd.DataFrame({"method": ["a", "a", "b"], "ipc": [10, 10, 10], "arch": ["convnet3"] * 3,
                       "protocol": ["dc"] * 3, "seed": [0, 1, 0], "acc": [80.0, 82.0, 70.0],
                       "acc_best": [81.0, 83.0, 71.0], "train_seconds": [1.0, 1.0, 1.0], "epochs": [300] * 3})
    s = ev.summarize(df)
    assert list(s.columns) == ["method", "ipc", "arch", "protocol", "epochs",
                               "acc_mean", "acc_std", "acc_best_mean", "acc_best_std", "n"]
    a = s[s["method"] == "a"].iloc[0]
    assert a["acc_mean"] == 81.0 and a["acc_std"] == pytest.approx(np.sqrt(2)) and a["n"] == 2
    table = ev.format_table(s)
    assert "acc (final)" in table and "acc_best (secondary, selected on test)" in table
    assert "81.0 ± 1.4" in table and "| b |" in table


def test_load_image_folder_tensors_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 1, 28, 28), dtype=np.uint8)
    labels = np.array([2, 0, 1, 2, 0, 1])
    classes = ["zeta", "alpha", "mu"]  # not sorted: the manifest must decide the order
    export_image_folder(tmp_path / "set", images, labels, classes)
    x, y = ev.load_image_folder_tensors(tmp_path / "set")
    assert x.dtype == torch.uint8 and x.shape == (6, 1, 28, 28)
    order = np.argsort(labels, kind="stable")
    assert np.array_equal(y, labels[order])
    assert torch.equal(x, torch.from_numpy(images[order]))
    x32, _ = ev.load_image_folder_tensors(tmp_path / "set", size=32)
    assert x32.shape == (6, 1, 32, 32)
