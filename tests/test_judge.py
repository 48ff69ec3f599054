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


class _NoisePipe:
    """A stand-in text-to-image pipeline that draws each sample's initial latent as diffusers does
    (``randn`` of its own generator) and paints the background from it (``by="noise"``: dark when
    the first channel's mean is negative) or from the prompt (``by="prompt"``)."""

    def __init__(self, by):
        self.by = by
        self.unet = type("U", (), {"config": type("C", (), {"in_channels": 4, "sample_size": 4})()})()

    def __call__(self, prompts, num_inference_steps, guidance_scale, generator, output_type):
        z = torch.cat([torch.randn((1, 4, 4, 4), generator=g) for g in generator])
        light = (z[:, 0].mean((1, 2)) > 0) if self.by == "noise" else torch.tensor(["white" in p for p in prompts])
        return type("Out", (), {"images": light.float()[:, None, None, None].expand(len(prompts), 1, 8, 8).clone()})()


def test_noise_decides_background_tells_a_noise_painted_background_from_a_prompted_one():
    from coda_utils import judge

    by_noise = judge.noise_decides_background(_NoisePipe("noise"), ["Coat", "Bag"], per_class=40)
    assert by_noise["same_background"] == 1.0 and by_noise["n"] == 80
    assert by_noise["from_noise_means"] >= 0.9 > by_noise["chance"]  # read back off the noise it reconstructs
    by_prompt = judge.noise_decides_background(_NoisePipe("prompt"), ["Coat", "Bag"], per_class=40)
    assert by_prompt["same_background"] == 0.0 and by_prompt["dark_share"] == {"black": 1.0, "white": 0.0}


def test_noise_decides_background_reads_the_noise_the_pipeline_starts_from(tmp_path):
    """The latents it reconstructs (``randn`` of each sample's generator) are those the pipeline
    starts from: given them as ``latents``, the pipeline draws the same images."""
    from coda_utils.tiny_pipelines import tiny_sd_pipeline

    pipe = tiny_sd_pipeline(tmp_path)
    c, s = pipe.unet.config.in_channels, pipe.unet.config.sample_size
    gens = [torch.Generator().manual_seed(7 + i) for i in range(2)]
    a = pipe(["a coat", "a bag"], num_inference_steps=2, guidance_scale=5.0, generator=gens, output_type="pt").images
    z = torch.stack([torch.randn((c, s, s), generator=torch.Generator().manual_seed(7 + i)) for i in range(2)])
    b = pipe(["a coat", "a bag"], num_inference_steps=2, guidance_scale=5.0, latents=z, output_type="pt").images
    assert torch.equal(a, b)


def test_background_leak_reads_the_shipped_priors_background_off_its_noisy_latents():
    """The shipped prior's noisy latents tell the background at t = 800 (its schedule keeps
    signal there) and nearly nothing would be left at a timestep whose signal were zero."""
    from coda_utils import judge, prior

    pipe = prior.load_prior()
    out = judge.background_leak(pipe, load_fashion_mnist("pool"), n=200, timesteps=(999, 800, 0))
    assert set(out["accuracy"]) == {999, 800, 0} and 0.5 <= out["chance"] < 0.7
    assert out["accuracy"][0] >= 0.95 and out["accuracy"][800] >= 0.9
    a = pipe.scheduler.alphas_cumprod[999].float()
    assert out["signal"][999] == pytest.approx(float((a / (1 - a)).sqrt()))


def test_set_backgrounds_reads_each_sets_frame_beside_the_same_seeds_unguided_set(tmp_path):
    """One row per generated set with its dark share and its difference from the unguided set of
    the same seed; a set without an unguided partner is skipped; the renderer quotes the text-prompt
    sets' range against the 90 % goal; sets of other shapes are refused."""
    from coda_utils.rundir import RunDir
    from coda_utils.report_tables import set_background_table
    from coda_utils.setfolder import write_set

    run = RunDir(tmp_path / "run")
    dark = np.zeros((4, 1, 28, 28), np.uint8)
    light = np.full((4, 1, 28, 28), 255, np.uint8)
    for seed, (ungu, text) in enumerate([(light, dark), (dark, dark)]):
        write_set(run.set_dir("unguided", 10, seed), ungu, [0, 0, 1, 1], ["a", "b"])
        write_set(run.set_dir("text_prompt", 10, seed), text, [0, 0, 1, 1], ["a", "b"])
    write_set(run.set_dir("text_prompt", 10, 7), dark, [0, 0, 1, 1], ["a", "b"])  # no unguided seed 7
    df = judge_lib.set_backgrounds(run.root, 10, ["unguided", "text_prompt"])
    assert list(zip(df["method"], df["selection_seed"])) == [("unguided", 0), ("unguided", 1), ("text_prompt", 0),
                                                              ("text_prompt", 1)]
    assert df["dark_share"].tolist() == [0.0, 1.0, 1.0, 1.0]
    assert df["diff_to_unguided"].tolist() == [0.0, 0.0, 255.0, 0.0]
    text = set_background_table(df, "results/set_backgrounds.csv")
    assert "| text_prompt | 100.0 ± 0.0 % | 100-100 % | 127.5 | 2 |" in text
    assert "at or above the goal of 90 % in every set" in text
    assert "below the goal of 90 % in 1 of 2 sets" in set_background_table(
        df.assign(dark_share=[0.0, 1.0, 0.5, 1.0]), "x.csv")
    write_set(run.set_dir("text_prompt", 10, 1), dark[:2], [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="differ in shape"):
        judge_lib.set_backgrounds(run.root, 10, ["text_prompt"])
