import numpy as np
import pytest
import torch

from coda_utils import judge as judge_lib
from coda_utils.datasets import load_fashion_mnist


def test_frechet_distance_of_known_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    b = rng.normal(size=(4000, 3)) + np.array([2.0, 0, 0])
    assert judge_lib.frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    # same covariance, means 2 apart: distance = 4 (up to sampling noise)
    assert judge_lib.frechet_distance(a, b) == pytest.approx(4.0, abs=0.2)
    c = rng.normal(size=(4000, 3)) * 2  # N(0, 4I) vs N(0, I): 3 * (1 + 4 - 2*2) = 3
    assert judge_lib.frechet_distance(a, c) == pytest.approx(3.0, abs=0.3)
    with pytest.raises(ValueError):
        judge_lib.frechet_distance(a[:1], b)


def test_judge_trains_saves_and_loads(tmp_path):
    pool = load_fashion_mnist("pool").subset(np.arange(600))
    judge, report = judge_lib.train_judge(pool, steps=40, batch_size=64, holdout=200, progress=False)
    assert report["heldout_web_pool_accuracy"] > 0.3  # chance is 0.1
    judge.save(tmp_path / "j", report)
    again = judge_lib.Judge.load(tmp_path / "j")
    x = load_fashion_mnist("target").load(np.arange(16))
    la, fa = judge.logits_and_features(x)
    lb, fb = again.logits_and_features(x)
    assert fa.shape == (16, 64) and np.allclose(la, lb) and np.allclose(fa, fb)
    fid = judge_lib.prompt_fidelity(judge, x, load_fashion_mnist("target").labels[:16])
    assert 0 <= fid["fidelity"] <= 1 and fid["n"] == 16


def test_to_canvas_pads_and_grays():
    x = torch.randint(0, 255, (2, 3, 28, 28), dtype=torch.uint8)
    y = judge_lib.to_canvas(x)
    assert y.shape == (2, 1, 32, 32) and y[:, :, :2].sum() == 0
