"""The evaluation harness: protocols, augmentations, training, result files and tables."""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from coda_utils import evaluation as ev
from coda_utils.datasets import load_fashion_mnist
from coda_utils.setfolder import read_set, write_set

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
AUGMENTS += [("dsa-all", ev.dsa_augment), ("idc", ev.idc_augment), ("rded", ev.rded_augment)]


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
    assert list(df.columns[:9]) == ev.RESULT_COLUMNS
    assert list(df["seed"]) == [0, 1] and (df["epochs"] == 3).all() and (df["selection_seed"] == 0).all()
    assert (df["precision"] == "fp32").all()
    assert df["acc"].between(0, 100).all() and df["acc_best"].between(0, 100).all()
    assert (df["acc_best"] >= df["acc"]).all() and (df["train_seconds"] > 0).all()
    on_disk = pd.read_csv(csv)
    assert list(on_disk.columns) == ev.RESULT_COLUMNS + ["epochs", "precision", "teacher"]
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
    s3 = ev.evaluate("random", x, y, tx, ty, ipc=2, repeats=2, epochs=3, out_csv=csv, progress=False, selection_seed=3)
    assert calls == [2, 0, 3000, 3001]  # another selection seed: another set, its own network seeds
    assert list(s3["selection_seed"]) == [3, 3] and list(s3["seed"]) == [3000, 3001]
    ev.evaluate("random", x, y, tx, ty, ipc=2, repeats=1, epochs=3, out_csv=csv, progress=False, precision="bf16")
    assert calls[-1] == 0 and len(pd.read_csv(csv)) == 7  # another precision is another experiment


def test_evaluate_hands_back_the_curves_of_the_networks_it_trains(tiny, tmp_path: Path) -> None:
    """Notebook 04 draws its table's first network from here: trained once, tests during
    training change nothing of the row, and a network found in the file has no curve."""
    x, y, tx, ty = tiny
    csv = tmp_path / "results.csv"
    curves = {}
    row = ev.evaluate("random", x, y, tx, ty, ipc=2, repeats=1, epochs=4, out_csv=csv, progress=False, eval_every=2,
                      curves=curves).iloc[0]
    assert list(curves) == [0] and [e for e, _ in curves[0]] == [2, 4] and curves[0][-1][1] == row.acc
    plain = ev.evaluate("random", x, y, tx, ty, ipc=2, repeats=1, epochs=4, progress=False).iloc[0]
    assert plain.acc == row.acc  # the tests during training change nothing of the training
    again = {}
    ev.evaluate("random", x, y, tx, ty, ipc=2, repeats=1, epochs=4, out_csv=csv, progress=False, curves=again)
    assert again == {}  # found in the file: not trained, no curve


def test_results_files_without_seed_columns_are_read_as_one_fp32_draw(tmp_path: Path) -> None:
    old = tmp_path / "results.csv"
    old.write_text("method,ipc,arch,protocol,seed,acc,acc_best,train_seconds,epochs\nr,10,convnet3,dc,0,70.0,71.0,1.0,300\n")
    df = ev.read_results(old)
    assert list(df.columns) == ev.RESULT_COLUMNS + ["epochs", "precision", "teacher"]
    assert df.loc[0, "selection_seed"] == 0 and df.loc[0, "precision"] == "fp32" and df.loc[0, "teacher"] == "none"
    (tmp_path / "bad.csv").write_text("method,acc\nr,1\n")
    with pytest.raises(ValueError, match="lacks columns"):
        ev.read_results(tmp_path / "bad.csv")


def test_network_seeds_and_precision_choice() -> None:
    assert ev.network_seeds(0, 3) == [0, 1, 2] and ev.network_seeds(4, 2) == [4000, 4001]
    with pytest.raises(ValueError, match="repeats"):
        ev.network_seeds(1, 0)
    assert ev.resolve_precision("fp32") == "fp32" and ev.resolve_precision("BF16") == "bf16"
    assert ev.resolve_precision("auto", "cpu") in ("fp32", "bf16")
    with pytest.raises(ValueError, match="precision must be"):
        ev.resolve_precision("fp16")


def test_bf16_is_deterministic_and_close_to_fp32(tiny) -> None:
    x, y, tx, ty = tiny
    proto = ev.get_protocol("dc", 2, epochs=3)
    a, b = (ev.train_and_evaluate(x, y, tx, ty, "convnet3", proto, 5, progress=False, precision="bf16") for _ in range(2))
    f = ev.train_and_evaluate(x, y, tx, ty, "convnet3", proto, 5, progress=False, precision="fp32")
    assert a["precision"] == "bf16" and a["acc"] == b["acc"] and a["train_loss"] == b["train_loss"]
    assert a["train_loss"] != f["train_loss"] and abs(a["train_loss"] - f["train_loss"]) < 0.05


@pytest.mark.slow
def test_training_beats_chance(fmnist) -> None:
    """100 target images, 20 epochs: far above the 10 % of guessing (typically ~65 %)."""
    target, test = fmnist
    x, y = _subset(target, 10, seed=1)
    res = ev.train_and_evaluate(x, y, test.load(np.arange(200)), test.labels[:200], "convnet3",
                                ev.get_protocol("dc", 10, epochs=20), seed=0, eval_every=10, progress=False)
    assert res["acc"] > 40.0
    assert res["acc_best"] >= res["acc"]
    # the curve holds every test made: epochs 10 and 20; its last point is acc, its maximum acc_best
    assert [e for e, _ in res["curve"]] == [10, 20]
    assert res["curve"][-1][1] == res["acc"] and max(a for _, a in res["curve"]) == res["acc_best"]


# --------------------------------------------------------------------------------------
# Tables and exported sets
# --------------------------------------------------------------------------------------
def test_summarize_and_format_table() -> None:
    # a: two selection seeds with two networks each; b: one set (deterministic) with three networks
    df = pd.DataFrame({"method": ["a"] * 4 + ["b"] * 3, "ipc": [10] * 7, "arch": ["convnet3"] * 7,
                       "protocol": ["dc"] * 7, "selection_seed": [0, 0, 1, 1, 0, 0, 0], "seed": [0, 1, 1000, 1001, 0, 1, 2],
                       "acc": [80.0, 82.0, 84.0, 86.0, 70.0, 71.0, 72.0], "acc_best": [81.0, 83.0, 85.0, 87.0, 71.0, 72.0, 73.0],
                       "train_seconds": [1.0] * 7, "epochs": [300] * 7, "precision": ["bf16"] * 7})
    s = ev.summarize(df)
    assert list(s.columns) == ["method", "ipc", "arch", "protocol", "epochs", "precision", "teacher", "acc_mean", "acc_std", "net_std",
                               "acc_best_mean", "acc_best_std", "seeds", "networks", "n"]
    a = s[s["method"] == "a"].iloc[0]
    assert a["acc_mean"] == 83.0 and a["acc_std"] == pytest.approx(np.sqrt(8))  # seeds average 81 and 85
    assert a["net_std"] == pytest.approx(np.sqrt(2)) and (a["seeds"], a["networks"], a["n"]) == (2, 2, 4)
    b = s[s["method"] == "b"].iloc[0]
    assert b["acc_mean"] == 71.0 and np.isnan(b["acc_std"]) and b["net_std"] == pytest.approx(1.0) and b["seeds"] == 1
    table = ev.format_table(s)
    assert "acc (final), mean ± std over selection seeds" in table and "acc_best (secondary, selected on test)" in table
    assert "83.0 ± 2.8" in table and "| b |" in table and "| 2 x 2 |" in table and "| 71.0 | 1.0 |" in table
    assert "| 10 |" not in ev.format_table(s, settings=[])


def test_read_set_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 1, 28, 28), dtype=np.uint8)
    labels = np.array([2, 0, 1, 2, 0, 1])
    classes = ["zeta", "alpha", "mu"]  # not sorted: the manifest must decide the order
    write_set(tmp_path / "set", images, labels, classes)
    x, y, _ = read_set(tmp_path / "set")
    y = y.numpy()
    assert x.dtype == torch.uint8 and x.shape == (6, 1, 28, 28)
    order = np.argsort(labels, kind="stable")
    assert np.array_equal(y, labels[order])
    assert torch.equal(x, torch.from_numpy(images[order]))
    x32 = read_set(tmp_path / "set", size=32).images
    assert x32.shape == (6, 1, 32, 32)


# --------------------------------------------------------------------------------------
# The soft-label protocol (rded)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("ipc, classes, batch", [(1, 10, 10), (10, 10, 50), (50, 10, 100), (10, 100, 100),
                                                 (50, 1000, 200), (2, 3, 6)])
def test_rded_protocol_is_rdeds_recipe(ipc, classes, batch) -> None:
    p = ev.get_protocol("rded", ipc, num_classes=classes)
    assert (p.epochs, p.batch_size, p.lr, p.weight_decay, p.optimizer) == (300, batch, 0.001, 0.01, "adamw")
    assert p.soft_labels and p.temperature == 20.0 and p.patch_factor == 2 and p.cutmix_prob == 1.0
    assert p.milestones == [] and not ev.get_protocol("dc", ipc).soft_labels


def test_shuffle_patches_permutes_whole_strips() -> None:
    x = torch.arange(3 * 28 * 28, dtype=torch.float32).view(3, 1, 28, 28)
    seen = set()
    for seed in range(8):
        out = ev.shuffle_patches(x, _gen(seed), 2)
        assert torch.equal(out.flatten().sort().values, x.flatten().sort().values)  # pixels moved, none changed
        for img, src in zip(out, x):
            halves = {(r, c): src[0, r * 14:(r + 1) * 14, c * 14:(c + 1) * 14] for r in (0, 1) for c in (0, 1)}
            quads = [img[0, r * 14:(r + 1) * 14, c * 14:(c + 1) * 14] for r in (0, 1) for c in (0, 1)]
            order = tuple(next(k for k, h in halves.items() if torch.equal(q, h)) for q in quads)
            seen.add(order)
    assert len(seen) == 4  # each of the 2 x 2 strip orders occurs
    assert torch.equal(ev.shuffle_patches(x, _gen(0), 1), x)


def test_rded_needs_a_teacher_and_learns_its_soft_labels(tiny, tmp_path) -> None:
    x, y, tx, ty = tiny
    proto = ev.get_protocol("rded", 2, epochs=3, num_classes=10)
    with pytest.raises(ValueError, match="teacher"):
        ev.train_and_evaluate(x, y, tx, ty, "convnet3", proto, 0, progress=False)
    teacher, meta = ev.train_teacher(x, y, tx, ty, tmp_path / "t.pt", epochs=2, precision="fp32", progress=False)
    assert meta["id"].startswith("convnet3-dc2-seed0-") and 0 <= meta["test_acc"] <= 100
    with pytest.raises(ValueError, match="hard labels"):
        ev.train_and_evaluate(x, y, tx, ty, "convnet3", ev.get_protocol("dc", 2, epochs=1), 0, progress=False,
                              teacher=teacher)
    runs = [ev.train_and_evaluate(x, y, tx, ty, "convnet3", proto, s, progress=False, teacher=teacher)
            for s in (0, 0, 1)]
    assert runs[0]["acc"] == runs[1]["acc"] and runs[0]["train_loss"] == runs[1]["train_loss"]
    assert runs[0]["train_loss"] != runs[2]["train_loss"] and runs[0]["train_loss"] >= 0  # a KL divergence
    # the labels of the set do not matter under soft labels: the teacher decides the targets
    shuffled = ev.train_and_evaluate(x, np.roll(y, 3), tx, ty, "convnet3", proto, 0, progress=False, teacher=teacher)
    assert shuffled["train_loss"] == runs[0]["train_loss"]
    # the cached teacher is loaded again; one made from other images is refused
    again, meta2 = ev.train_teacher(x, y, tx, ty, tmp_path / "t.pt", epochs=2, precision="fp32", progress=False)
    assert meta2["id"] == meta["id"] and all(torch.equal(a, b) for a, b in zip(again.state_dict().values(),
                                                                               teacher.state_dict().values()))
    with pytest.raises(ev.StaleTeacherError, match="delete it"):
        ev.train_teacher(x.flip(-1), y, tx, ty, tmp_path / "t.pt", epochs=2, precision="fp32", progress=False)


def test_rded_rows_name_their_teacher_and_never_share_a_table_with_hard_labels(tiny, tmp_path) -> None:
    x, y, tx, ty = tiny
    teacher, meta = ev.train_teacher(x, y, tx, ty, tmp_path / "t.pt", epochs=1, precision="fp32", progress=False)
    csv = tmp_path / "r.csv"
    soft = ev.evaluate("random_real", x, y, tx, ty, ipc=2, protocol="rded", repeats=1, epochs=1, out_csv=csv,
                       progress=False, teacher=teacher, teacher_id=meta["id"])
    hard = ev.evaluate("random_real", x, y, tx, ty, ipc=2, protocol="dc", repeats=1, epochs=1, out_csv=csv,
                       progress=False)
    assert soft.loc[0, "teacher"] == meta["id"] and soft.loc[0, "protocol"] == "rded"
    assert hard.loc[0, "teacher"] == "none"
    with pytest.raises(ValueError, match="teacher_id"):
        ev.evaluate("random_real", x, y, tx, ty, ipc=2, protocol="rded", repeats=1, epochs=1, progress=False,
                    teacher=teacher)
    table = ev.format_table(ev.summarize(ev.read_results(csv)))
    hard_part, soft_part = table.split("Soft labels")
    assert "| dc |" in hard_part and "rded" not in hard_part
    assert "| rded |" in soft_part and meta["id"] in soft_part and "| dc |" not in soft_part


def test_teacher_for_is_none_under_hard_labels_and_trains_once_under_soft(tiny, tmp_path) -> None:
    from coda_utils.datasets import load_fashion_mnist
    from coda_utils.encoding import limit_dataset

    _, _, tx, ty = tiny
    train = limit_dataset(load_fashion_mnist("target_fit"), per_class_limit=3)
    assert ev.teacher_for("dc", None, tmp_path / "t.pt", train, (28, 28), tx, ty) == (None, None, None)
    assert not (tmp_path / "t.pt").exists()
    model, tid, meta = ev.teacher_for("rded", None, tmp_path / "t.pt", train, (28, 28), tx, ty, epochs=1,
                                      precision="fp32", progress=False)
    assert tid == meta["id"] and tid.startswith("convnet3-dc1-") and (tmp_path / "t.pt").is_file()
    again = ev.teacher_for("rded", tmp_path / "t.pt", tmp_path / "unused.pt", train, (28, 28), tx, ty)  # a checkpoint
    assert again[1] == tid and not (tmp_path / "unused.pt").exists()


def test_the_test_split_is_scored_with_its_own_labels_and_the_lr_drops_at_the_milestone(fmnist, monkeypatch) -> None:
    """Test labels shuffled among the test images: whatever the network learned, it scores chance
    on them (while its training loss falls), and the accuracy reported is the returned network's
    on the test split with the labels given; the learning rate is the protocol's until the
    milestone and lr_gamma times it after."""
    target, test = fmnist
    x, y = _subset(target, 5, seed=1)
    tx, ty = test.load(np.arange(300)), np.asarray(test.labels[:300])
    shuffled = np.random.default_rng(0).permutation(ty)
    lrs = []

    class RecordingSGD(torch.optim.SGD):
        def step(self, closure=None):
            lrs.append(self.param_groups[0]["lr"])
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "SGD", RecordingSGD)
    proto = ev.get_protocol("dc", 5, epochs=6)
    assert proto.milestones == [3] and proto.batch_size >= len(x)  # one step an epoch
    res = ev.train_and_evaluate(x, y, tx, shuffled, "convnet3", proto, seed=0, progress=False, return_model=True)
    assert lrs == pytest.approx([0.01] * 3 + [0.001] * 3)
    # the reported accuracy: the network's on the test images, against the labels passed
    model = res["model"]
    with torch.no_grad():
        pred = model(ev.normalize(tx.float() / 255, (0.2861,), (0.3530,))).argmax(1).numpy()
    assert res["acc"] == pytest.approx(100 * np.mean(pred == shuffled))
    assert res["acc"] < 20 and 100 * np.mean(pred == ty) > 35  # chance (10 %) on shuffled labels; it did learn
    assert res["train_loss"] < 0.6 * math.log(10)  # the training loss falls well below guessing's ln 10
