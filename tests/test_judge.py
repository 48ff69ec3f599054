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


def test_dark_background_reads_the_frame():
    import torch

    from coda_utils.judge import dark_background

    x = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)
    x[:, :, 8:20, 8:20] = 255  # a bright item: the frame stays dark
    x[1] = 255 - x[1]  # inverted: a light frame
    x[2, :, :3, :] = 255  # the top border white, the rest of the frame black: mean below half
    assert dark_background(x).tolist() == [True, False, True]
    assert dark_background(torch.cat([x, x], 1)).tolist() == [True, False, True]  # channels pooled


def test_attribute_fidelity_counts_what_each_prompt_asks_for():
    """A stand-in pipeline that draws a dark background exactly when asked for one: the black
    prompt obeys 100 %, the white prompt 100 %, the plain one has no verdict; the same seeds per prompt."""
    import math

    import torch

    from coda_utils import judge

    seen = []

    class Pipe:
        def __call__(self, prompts, num_inference_steps, guidance_scale, generator, output_type):
            seen.append([g.initial_seed() for g in generator])
            light = torch.tensor([("white" in p) for p in prompts], dtype=torch.float32)
            img = light[:, None, None, None].expand(len(prompts), 1, 8, 8).clone()
            return type("Out", (), {"images": img})()

    rows = judge.attribute_fidelity(Pipe(), ["Coat", "Bag"], cfg_scales=[1.0, 5.0], per_class=2)
    assert list(rows["prompt"]) == ["black", "black", "white", "white", "plain", "plain"]
    assert list(rows["dark_share"]) == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0] and (rows["n"] == 4).all()
    assert list(rows["obeys"][:4]) == [1.0] * 4 and all(math.isnan(v) for v in rows["obeys"][4:])
    assert all(s == [0, 1, 2, 3] for s in seen)  # the same noise for every prompt and scale
