import math

import numpy as np
import pytest
import torch

from coda_utils import alignment as al
from coda_utils.tiny_pipelines import tiny_sd_pipeline, tiny_sdxl_pipeline


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    return tiny_sd_pipeline(tmp_path_factory.mktemp("sd"))


def test_correction_matches_hand_computed_case():
    # a scheduler whose noise level at step 0 is s_i = 0.75: alpha_t = 1 / sqrt(1 + s_i^2) = 0.8, sigma_t = 0.6
    from types import SimpleNamespace

    sched = SimpleNamespace(sigmas=torch.tensor([0.75]))
    assert al.scheduler_coefficients(sched, 0) == pytest.approx((0.8, 0.6, 0.75))
    # x0 = (1 - 0.6 * 0.5) / 0.8 = 0.875; d = -(0.8 / 0.6) * 0.1 * 0.75 * (2 - 0.875) = -0.1125
    d = al.coda_correction(torch.tensor(1.0), torch.tensor(0.5), torch.tensor(2.0), sched, 0, gamma=0.1)
    assert float(d) == pytest.approx(-0.1125)
    # normalized variant: the CFG'd pull 1 - exp(-w gamma s) instead of w gamma s
    w = 5.0
    dn = al.coda_correction(torch.tensor(1.0), torch.tensor(0.5), torch.tensor(2.0), sched, 0, gamma=0.1, cfg_scale=w,
                            variant="normalized")
    assert float(dn) * w == pytest.approx(-(0.8 / 0.6) * (1 - math.exp(-w * 0.1 * 0.75)) * 1.125)
    with pytest.raises(ValueError):
        al.GuidanceConfig(variant="other")


def test_gamma_zero_reproduces_the_stock_pipeline(sd):
    g = [torch.Generator().manual_seed(s) for s in (3, 4)]
    stock = sd(["a bag", "a coat"], num_inference_steps=6, guidance_scale=5.0, generator=g, output_type="pt").images
    stock = (stock.clamp(0, 1) * 255).round().to(torch.uint8)
    ours, state = al.generate(sd, ["a bag", "a coat"], [3, 4], torch.randn(2, 4, 8, 8), al.GuidanceConfig(gamma=0.0),
                              5.0, 6)
    assert torch.equal(ours, stock) and state.calls == 0
    recorded, state = al.generate(sd, ["a bag", "a coat"], [3, 4], torch.randn(2, 4, 8, 8),
                                  al.GuidanceConfig(gamma=0.0), 5.0, 6, record=True)
    assert torch.equal(recorded, stock) and len(state.x0_before) == 6 and state.calls == 0


def test_hook_pulls_x0_by_gamma_times_sigma_only_in_the_guided_fraction(sd):
    z = torch.randn(2, 4, 8, 8)
    cfg = al.GuidanceConfig(gamma=0.2, guide_fraction=0.5)
    _, st = al.generate(sd, ["a bag", "a coat"], [0, 1], z, cfg, 5.0, 8, record=True)
    assert st.steps == list(range(8)) and st.guided == [True] * 4 + [False] * 4 and st.calls == 4
    sigmas = sd.scheduler.sigmas
    for i, before, after in zip(st.steps, st.x0_before, st.x0_after):
        # conditional x0 moves toward z by gamma * s_i (the CFG'd one by w * gamma * s_i); not at all after
        pull = 0.2 * float(sigmas[i]) if i < 4 else 0.0
        assert torch.allclose(after - before, pull * (z - before), atol=1e-4)


def test_v_prediction_is_handled_through_x0(tmp_path):
    pipe = tiny_sd_pipeline(tmp_path, prediction_type="v_prediction")
    z = torch.randn(1, 4, 8, 8)
    _, st = al.generate(pipe, ["a bag"], [0], z, al.GuidanceConfig(gamma=0.2), 5.0, 5, record=True)
    s0 = float(pipe.scheduler.sigmas[0])
    assert torch.allclose(st.x0_after[0] - st.x0_before[0], 0.2 * s0 * (z - st.x0_before[0]), atol=1e-3)
    pipe.scheduler.register_to_config(prediction_type="sample")
    with pytest.raises(ValueError, match="epsilon and v-prediction"):
        al.generate(pipe, ["a bag"], [0], z, al.GuidanceConfig(gamma=0.2), 5.0, 3)


def _final_latents(pipe, z, gamma):
    gens = [torch.Generator().manual_seed(i) for i in range(len(z))]
    with al.coda_guidance(pipe, z, al.GuidanceConfig(gamma=gamma), 5.0):
        return pipe(["a bag"] * len(z), num_inference_steps=10, guidance_scale=5.0, generator=gens,
                    output_type="latent").images


def test_guided_samples_end_closer_to_their_representatives(sd):
    z = torch.randn(4, 4, 8, 8)
    unguided = (_final_latents(sd, z, 0.0) - z).flatten(1).norm(dim=1)
    guided = (_final_latents(sd, z, 0.1) - z).flatten(1).norm(dim=1)
    assert torch.all(guided < 0.5 * unguided)


def test_recorded_trajectories_round_trip(sd, tmp_path):
    z = torch.randn(2, 4, 8, 8)
    states = {name: al.generate(sd, ["a bag"] * 2, [1, 2], z, al.GuidanceConfig(gamma=g), 5.0, 4, record=True)[1]
              for name, g in {"unguided": 0.0, "CoDA": 0.1}.items()}
    path = al.save_trajectories(tmp_path / "t.npz", states, z, {"class": "bag"})
    back, z_back, meta = al.load_trajectories(path)
    assert list(back) == ["unguided", "CoDA"] and meta == {"class": "bag"} and torch.equal(z_back, z)
    for name in states:
        assert back[name].steps == states[name].steps and back[name].guided == states[name].guided
        assert all(torch.equal(a, b) for a, b in zip(back[name].x0_after, states[name].x0_after))
    assert any(back["CoDA"].guided) and not any(back["unguided"].guided)


def test_seeds_do_not_depend_on_batch_size_and_generation_resumes(sd, tmp_path):
    z = [np.random.default_rng(c).normal(size=(3, 4, 8, 8)).astype(np.float32) for c in range(2)]
    kw = dict(class_ids=["bag", "coat"], prompts=["a bag", "a coat"], ipc=3, z_reps=z, steps=4, progress=False,
              native_size=(28, 28), resize="pad")
    from PIL import Image

    def pixels(path):
        return np.asarray(Image.open(path), dtype=np.int16)

    a = al.generate_set(sd, tmp_path / "a", batch_size=1, **kw)
    b = al.generate_set(sd, tmp_path / "b", batch_size=5, **kw)
    # the same images whatever the batch size: CPU kernels may round a batch of 5 differently
    # from a batch of 1 in the last bit, so at most one grey level of difference is allowed
    # (another seed gives a completely different image)
    for f in sorted((tmp_path / "a").rglob("*.png")):
        assert np.abs(pixels(f) - pixels(b / f.relative_to(a))).max() <= 1
    assert np.abs(pixels(a / "bag" / "0000.png") - pixels(a / "bag" / "0001.png")).mean() > 5
    assert pixels(a / "bag" / "0000.png").shape == (28, 28)
    assert al.sample_seed(0, 1, 2) == al.sample_seed(0, 1, 2) != al.sample_seed(0, 2, 1)
    # an interrupted run resumes: only the missing image is generated again
    keep = (a / "coat" / "0001.png").stat().st_mtime_ns
    (a / "bag" / "0002.png").unlink()
    al.generate_set(sd, a, batch_size=2, **kw)
    assert np.abs(pixels(a / "bag" / "0002.png") - pixels(b / "bag" / "0002.png")).max() <= 1
    assert (a / "coat" / "0001.png").stat().st_mtime_ns == keep
    import json

    m = json.loads((a / "manifest.json").read_text())
    assert m["images"][4]["prompt"] == "a coat" and m["parameters"]["gamma"] == 0.05 and len(m["files"]) == 6


def test_a_set_made_with_other_settings_or_another_model_is_refused(sd, tmp_path):
    z = [np.zeros((2, 4, 8, 8), np.float32)]
    kw = dict(class_ids=["bag"], prompts=["a bag"], ipc=2, z_reps=z, steps=3, progress=False)
    out = al.generate_set(sd, tmp_path / "s", **kw)
    al.generate_set(sd, out, **kw)  # same settings: resumes (nothing to do)
    with pytest.raises(al.StaleSetError, match="gamma|parameters"):
        al.generate_set(sd, out, guidance=al.GuidanceConfig(gamma=0.3), **kw)
    other = tiny_sd_pipeline(tmp_path / "other", seed=1)
    assert al.model_fingerprint(other) != al.model_fingerprint(sd)
    with pytest.raises(al.StaleSetError, match="model"):
        al.generate_set(other, out, **kw)
    legacy = tmp_path / "legacy" / "bag"
    legacy.mkdir(parents=True)
    (out / "bag" / "0000.png").rename(legacy / "0000.png")
    with pytest.raises(al.StaleSetError, match="no record"):
        al.generate_set(sd, legacy.parent, **kw)


def test_a_failed_generation_leaves_no_manifest_and_resumes(sd, tmp_path, monkeypatch):
    kw = dict(class_ids=["bag", "coat"], prompts=["a bag", "a coat"], ipc=2, steps=2, batch_size=1, progress=False)
    with pytest.raises(ValueError, match="parameter `steps`"):
        al.generate_set(sd, tmp_path / "s", steps=0, **{k: v for k, v in kw.items() if k != "steps"})
    out = al.generate_set(sd, tmp_path / "s", **kw)
    assert (out / "manifest.json").is_file()
    (out / "coat" / "0001.png").unlink()  # an image lost: the set is incomplete again
    written = []
    from coda_utils import setfolder

    real = setfolder.write_image

    def failing(path, img, channels=None):
        written.append(path)
        raise OSError("disk full")

    monkeypatch.setattr(setfolder, "write_image", failing)
    with pytest.raises(OSError, match="disk full"):
        al.generate_set(sd, out, **kw)
    assert written and not (out / "manifest.json").exists()  # never "looks done" with an image missing
    monkeypatch.setattr(setfolder, "write_image", real)
    al.generate_set(sd, out, **kw)
    assert (out / "manifest.json").is_file() and len(list(out.rglob("*.png"))) == 4


def test_a_second_process_generating_into_one_set_is_refused(sd, tmp_path):
    from coda_utils.io import FolderBusyError, exclusive

    with exclusive(tmp_path / "s"):
        import subprocess
        import sys

        code = ("from coda_utils.io import exclusive; import sys\n"
                "try:\n    exclusive(sys.argv[1]).__enter__()\nexcept Exception as e:\n    print(type(e).__name__, e)")
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")], capture_output=True, text=True).stdout
        assert out.startswith("FolderBusyError") and "is being written by pid" in out
    assert FolderBusyError.__mro__[1] is RuntimeError


def test_nan_representatives_are_refused(sd, tmp_path):
    z = [np.full((1, 4, 8, 8), np.nan, np.float32)]
    with pytest.raises(ValueError, match="NaN"):
        al.generate_set(sd, tmp_path, ["bag"], ["a bag"], 1, z_reps=z, steps=2, progress=False)


def test_tiny_sdxl_guided_generation_with_refiner_handoff(tmp_path):
    base, refiner = tiny_sdxl_pipeline(tmp_path, refiner=True)
    z = torch.randn(2, 4, 16, 16)
    imgs, st = al.generate(base, ["a tench", "a goldfish"], [0, 1], z, al.GuidanceConfig(gamma=0.1), 5.0, 6,
                           record=True)
    assert imgs.shape == (2, 3, 64, 64) and st.guided == [True] * 5 + [False]
    imgs, st = al.generate(base, ["a tench", "a goldfish"], [0, 1], z, al.GuidanceConfig(gamma=0.1), 5.0, 6,
                           record=True, refiner=refiner, refiner_start=0.5)
    # the base runs the first half (guided), the refiner the rest without guidance
    assert imgs.shape == (2, 3, 64, 64) and st.steps == [0, 1, 2] and st.calls == 3


def _captured_run(pipe, z, config, cfg_scale, steps):
    """Generate with CoDA guidance while a hook registered before the guidance's records the raw
    UNet output, one registered after it records what the pipeline gets, and the scheduler's
    ``step`` records the model output it receives (after the pipeline's CFG)."""
    import functools

    raw, written, received = [], [], []

    def grab(store):
        def hook(module, args, kwargs, output):
            x = args[0] if args else kwargs["sample"]
            store.append((x.detach().clone(), (output[0] if isinstance(output, tuple) else output.sample).detach().clone()))
        return hook

    step = pipe.scheduler.step

    @functools.wraps(step)
    def recording_step(model_output, *args, **kwargs):
        received.append(model_output.detach().clone())
        return step(model_output, *args, **kwargs)

    first = pipe.unet.register_forward_hook(grab(raw), with_kwargs=True)
    pipe.scheduler.step = recording_step
    try:
        gens = [torch.Generator().manual_seed(i) for i in range(len(z))]
        with al.coda_guidance(pipe, z, config, cfg_scale):
            last = pipe.unet.register_forward_hook(grab(written), with_kwargs=True)
            try:
                pipe(["a bag", "a coat"][:len(z)], num_inference_steps=steps, guidance_scale=cfg_scale, generator=gens,
                     output_type="latent")
            finally:
                last.remove()
    finally:
        first.remove()
        del pipe.scheduler.step
    return raw, written, received


@pytest.mark.parametrize("prediction_type,variant", [("epsilon", "reference"), ("v_prediction", "reference"),
                                                     ("epsilon", "normalized")])
def test_the_written_back_prediction_is_the_formula(tmp_path, prediction_type, variant):
    """What the scheduler receives, derived by hand from the raw UNet output at every step:
    x0 = (x_t - sigma eps) / alpha (v-prediction: x0 = alpha x_t - sigma v), the conditional half
    gets d_eps = -(alpha / sigma) coef (z - x0) with coef = gamma s (normalized: (1 - exp(-w gamma s)) / w),
    i.e. d_eps = gamma (x0 - z) for the reference, written back as d_eps (v-prediction: d_eps / alpha);
    the unconditional half and the unguided steps are untouched; the scheduler gets their CFG."""
    pipe = tiny_sd_pipeline(tmp_path, prediction_type=prediction_type)
    gamma, w, steps = 0.3, 4.0, 6
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    raw, written, received = _captured_run(pipe, z, al.GuidanceConfig(gamma=gamma, guide_fraction=0.5, variant=variant),
                                           w, steps)
    assert len(raw) == len(written) == len(received) == steps
    sigmas = pipe.scheduler.sigmas
    for i, ((x_in, out), (x_after, new), got) in enumerate(zip(raw, written, received)):
        assert torch.equal(x_after, x_in) and x_in.shape[0] == 4  # [uncond, cond] of two images
        torch.testing.assert_close(new[:2], out[:2], rtol=0, atol=0)  # the unconditional half: untouched
        s = float(sigmas[i])
        alpha = 1 / math.sqrt(1 + s * s)
        sigma = s * alpha
        x_t, o = x_in[2:].double(), out[2:].double()
        x0 = (x_t - sigma * o) / alpha if prediction_type == "epsilon" else alpha * x_t - sigma * o
        coef = gamma * s if variant == "reference" else -math.expm1(-w * gamma * s) / w
        d_eps = -(alpha / sigma) * coef * (z.double() - x0) if i < steps // 2 else torch.zeros_like(x0)
        if variant == "reference":
            torch.testing.assert_close(d_eps, gamma * (x0 - z.double()) if i < steps // 2 else d_eps)
        expected = o + (d_eps if prediction_type == "epsilon" else d_eps / alpha)
        # the hook works in float32: x0 divides by alpha, the v write-back again, so its rounding
        # grows as |x_t| / alpha^2 at the noisiest steps (at most ~1e-4 here; a wrong formula is off by ~1)
        atol = 1e-5 + 2e-6 * float(max(x_t.abs().max(), o.abs().max())) / alpha ** 2
        torch.testing.assert_close(new[2:].double(), expected, rtol=1e-4, atol=atol)
        if i < steps // 2:
            assert (new[2:] - out[2:]).abs().max() > 1e-2  # a real pull, far above the tolerance
        else:
            assert torch.equal(new, out)
        # the pipeline's CFG of the written-back halves is what the scheduler gets
        torch.testing.assert_close(got, new[:2] + w * (new[2:] - new[:2]), rtol=1e-5, atol=1e-5)


def test_generate_set_refuses_a_folder_another_process_is_writing(sd, tmp_path, held_lock):
    from coda_utils.io import FolderBusyError

    out = tmp_path / "s"
    kw = dict(class_ids=["bag"], prompts=["a bag"], ipc=1, steps=2, progress=False)
    with held_lock(out, "folder") as pid:
        with pytest.raises(FolderBusyError, match=f"pid {pid} "):
            al.generate_set(sd, out, **kw)
    assert not list(out.rglob("*.png")) and not (out / ".settings.json").exists()  # nothing written meanwhile
    al.generate_set(sd, out, **kw)  # released: the next run writes the set
    assert (out / "manifest.json").is_file()


def test_the_hook_applies_coda_correction(sd, monkeypatch):
    """The function notebook 03 shows is the one the hook calls: replaced by a zero correction,
    guidance changes nothing; called once per guided step with the scheduler's step index."""
    z = torch.randn(1, 4, 8, 8)
    calls = []

    def none(x_t, eps_c, z_rep, scheduler, step, t=None, gamma=0.05, cfg_scale=1.0, variant="reference"):
        calls.append(step)
        return torch.zeros_like(eps_c)

    plain, _ = al.generate(sd, ["a bag"], [0], z, al.GuidanceConfig(gamma=0.0), 5.0, 6)
    monkeypatch.setattr(al, "coda_correction", none)
    out, st = al.generate(sd, ["a bag"], [0], z, al.GuidanceConfig(gamma=0.3, guide_fraction=0.5), 5.0, 6)
    assert calls == [0, 1, 2] and st.calls == 3 and torch.equal(out, plain)
