
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from coda_utils import prior, prior_build
from coda_utils.datasets import load_fashion_mnist

TINY = dict(vae_steps=3, unet_steps=4, vae_batch=8, unet_batch=8, vae_channels=(8, 8, 8), unet_channels=(16, 16, 16),
            text_width=16, latent_passes=1, decoder_steps=3, checkpoint_every=2, finetune_steps=3, finetune_batch=8)


@pytest.fixture(scope="module")
def small_pool():
    return load_fashion_mnist("pool").subset(np.arange(200))


def test_web_transform_shapes_range_and_determinism(small_pool):
    x = small_pool.load(np.arange(64))
    a, inv_a = prior.web_transform(x, torch.Generator().manual_seed(0))
    b, inv_b = prior.web_transform(x, torch.Generator().manual_seed(0))
    assert a.shape == (64, 1, 32, 32) and torch.equal(a, b) and torch.equal(inv_a, inv_b)
    assert a.min() >= -1 and a.max() <= 1
    assert 0.2 < inv_a.float().mean() < 0.8
    # an inverted image has a light background: its corner pixel is white
    assert torch.all(a[inv_a][:, 0, 0, 0] > 0.9) and torch.all(a[~inv_a][:, 0, 0, 0] < -0.9)


def test_captions_and_tokenizer_cover_every_word(tmp_path):
    tok = prior.build_tokenizer(tmp_path / "tok")
    unk = tok.unk_token_id
    corpus = prior.caption_corpus()
    assert all(unk not in tok(c).input_ids[1:-1] for c in corpus)
    ids = tok("a photo of a sneaker").input_ids
    assert tok.convert_ids_to_tokens(ids)[1:-1] == ["a</w>", "photo</w>", "of</w>", "a</w>", "sneaker</w>"]
    # unseen words still encode (character fallback), free text is accepted
    assert len(tok("a zebra").input_ids) > 3
    rng = np.random.default_rng(0)
    caps = prior.make_captions([7] * 200, [True] * 200, rng)
    assert sum(c == "" for c in caps) > 5
    assert any("white background" in c for c in caps) and not any("black background" in c for c in caps)
    assert any("sneaker" in c for c in caps) and any("running shoe" in c or "trainer" in c for c in caps)


def test_tiny_training_resumes_and_refuses_stale_checkpoints(tmp_path, small_pool):
    cfg = prior.PriorConfig(**TINY)
    out = tmp_path / "model"
    report = prior.train_prior(cfg, out, work_dir=tmp_path / "work", pool=small_pool, progress=False)
    assert report["parameters"]["unet"] > 0 and (out / "model_index.json").exists()
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").exists()
    # the shipped tokenizer is the one made for the run, not one left with training's padding state
    assert (out / "tokenizer" / "tokenizer.json").read_bytes() == (tmp_path / "work" / "tokenizer" / "tokenizer.json").read_bytes()
    # a second run finds every stage finished and trains nothing more
    again = prior.train_prior(cfg, out, work_dir=tmp_path / "work", pool=small_pool, progress=False)
    assert again["unet_seconds"] == report["unet_seconds"] and again["vae_log"] == report["vae_log"]
    other = prior.PriorConfig(**{**TINY, "unet_lr": 1e-4})
    with pytest.raises(prior.StaleCheckpointError, match="other settings"):
        prior.train_prior(other, out, work_dir=tmp_path / "work", pool=small_pool, progress=False)
    # the tokenizer is made once per work directory: a resumed run uses the same token ids
    assert (out / "tokenizer" / "tokenizer.json").read_bytes() == (tmp_path / "work" / "tokenizer" / "tokenizer.json").read_bytes()
    pipe = prior.load_prior(out)
    images = pipe(["a bag"], num_inference_steps=3, guidance_scale=5.0, output_type="np").images
    assert images.shape == (1, 32, 32, 1)


def test_stage_fingerprints_depend_only_on_what_each_stage_uses(tmp_path, small_pool):
    base, more_unet = prior.PriorConfig(**TINY), prior.PriorConfig(**{**TINY, "unet_steps": 9})
    assert prior_build._stage_fingerprint(base, "decoder") == prior_build._stage_fingerprint(more_unet, "decoder")
    assert prior_build._stage_fingerprint(base, "unet") != prior_build._stage_fingerprint(more_unet, "unet")
    assert prior_build._stage_fingerprint(base, "vae") != prior_build._stage_fingerprint(prior.PriorConfig(**{**TINY, "vae_lr": 1e-4}), "vae")
    # other UNet settings need the UNet retrained (its checkpoint is refused, then deleted), but
    # the finished VAE, latents and decoder checkpoints are reused
    work = tmp_path / "work"
    first = prior.train_prior(base, tmp_path / "a", work_dir=work, pool=small_pool, progress=False)
    with pytest.raises(prior.StaleCheckpointError):
        prior.train_prior(more_unet, tmp_path / "b", work_dir=work, pool=small_pool, progress=False)
    (work / "checkpoints" / "unet.pt").unlink()
    with pytest.raises(prior.StaleCheckpointError, match="finetune.pt"):  # fine-tuned from the old UNet
        prior.train_prior(more_unet, tmp_path / "b", work_dir=work, pool=small_pool, progress=False)
    (work / "checkpoints" / "finetune.pt").unlink()
    second = prior.train_prior(more_unet, tmp_path / "b", work_dir=work, pool=small_pool, progress=False)
    assert second["decoder_log"] == first["decoder_log"] and second["vae_log"] == first["vae_log"]
    assert len(second["unet_log"]) >= len(first["unet_log"]) and second["trained_on"]["unet"] == "cpu"
    latents = torch.load(work / "checkpoints" / "pool_latents.pt", weights_only=False)
    assert second["scaling_factor"] == latents["scaling_factor"] == float(f"{latents['scaling_factor']:.4g}")


def test_tokenizer_is_copied_from_tokenizer_dir(tmp_path):
    tok = prior.prepare_tokenizer(tmp_path, prior.PriorConfig(), "data/models/fashion-prior/tokenizer")
    shipped = (prior.SHIPPED_PRIOR / "tokenizer" / "tokenizer.json").read_bytes()
    assert (tmp_path / "tokenizer" / "tokenizer.json").read_bytes() == shipped
    assert tok("a photo of a sneaker").input_ids == prior.load_prior().tokenizer("a photo of a sneaker").input_ids
    with pytest.raises(FileNotFoundError, match="holds no tokenizer"):
        prior.prepare_tokenizer(tmp_path / "other", prior.PriorConfig(), tmp_path / "nothing")


def test_never_overwrites_the_shipped_prior(tmp_path, small_pool):
    with pytest.raises(PermissionError, match="shipped prior"):
        prior.train_prior(prior.PriorConfig(**TINY), prior.SHIPPED_PRIOR, work_dir=tmp_path, pool=small_pool)


def test_missing_model_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        prior.load_prior(tmp_path)


def test_shipped_prior_loads_offline_and_is_deterministic(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(prior.SHIPPED_PRIOR, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler" and pipe.scheduler.config.use_karras_sigmas

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return pipe(["a photo of a sneaker", "trouser"], num_inference_steps=5, guidance_scale=5.0, generator=g,
                    output_type="pt").images

    a, b, c = run(0), run(0), run(1)
    assert a.shape == (2, 1, 32, 32) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_shipped_prior_is_what_its_training_report_says():
    import json

    report = json.loads((prior.SHIPPED_PRIOR / "training_report.json").read_text())
    cfg = prior.config_from_report(report)
    pipe = prior.load_prior()
    with torch.no_grad():
        z = pipe.vae.encode(torch.zeros(1, 1, 32, 32)).latent_dist.mean
    assert tuple(z.shape[1:]) == prior.latent_shape(cfg) and pipe.unet.config.in_channels == z.shape[1]
    assert pipe.vae.config.scaling_factor == report["scaling_factor"]


def test_shipped_prior_size_limit():
    total = sum(p.stat().st_size for p in prior.SHIPPED_PRIOR.rglob("*") if p.is_file())
    assert total < 20 * 2**20


def test_vae_psnr_is_perfect_for_an_identity_like_check():
    # a VAE that reconstructs perfectly gives infinite PSNR -> guard: a random VAE gives a low, finite PSNR
    vae = prior.build_vae(prior.PriorConfig(vae_channels=(8, 8, 8), vae_latent_channels=4))
    x = load_fashion_mnist("target").load(np.arange(8))
    r = prior.vae_reconstruction_psnr(vae, x)
    assert 0 < r["psnr_db"] < 15 and r["n"] == 8


@pytest.mark.parametrize("channels,blocks,shape", [(4, 3, (4, 8, 8)), (16, 3, (16, 8, 8)), (8, 2, (8, 16, 16))])
def test_the_latent_shape_decides_vae_and_unet(channels, blocks, shape):
    cfg = prior.PriorConfig(vae_channels=(8,) * blocks, vae_latent_channels=channels, unet_channels=(16, 16, 16))
    assert prior.latent_shape(cfg) == shape
    vae, unet = prior.build_vae(cfg).eval(), prior.build_unet(cfg)
    with torch.no_grad():
        z = vae.encode(torch.zeros(1, 1, 32, 32)).latent_dist.mean
    assert tuple(z.shape[1:]) == shape and unet.config.in_channels == channels == unet.config.out_channels
    assert unet.config.sample_size == shape[1]
    # the latent width is part of the VAE stage's fingerprint (a checkpoint of another width is refused)
    assert prior_build._stage_fingerprint(cfg, "vae")["vae_latent_channels"] == channels


@pytest.mark.parametrize("plain,down", [(0, ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")),
                                         (1, ("DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")),
                                         (2, ("DownBlock2D", "DownBlock2D", "DownBlock2D"))])
def test_plain_levels_drop_cross_attention_from_the_highest_resolutions(plain, down):
    cfg = prior.PriorConfig(vae_channels=(8, 8), unet_channels=(16, 16, 16), unet_plain_levels=plain)
    unet = prior.build_unet(cfg)
    assert unet.config.down_block_types == down
    assert unet.config.up_block_types == tuple(d.replace("Down", "Up") for d in reversed(down))
    assert prior_build._stage_fingerprint(cfg, "unet")["unet_plain_levels"] == plain
    with torch.no_grad():  # text still reaches the UNet through its middle block
        out = unet(torch.zeros(1, 4, 16, 16), 10, encoder_hidden_states=torch.zeros(1, 3, cfg.text_width)).sample
    assert out.shape == (1, 4, 16, 16)
    with pytest.raises(ValueError, match="unet_plain_levels=3"):
        prior.build_unet(prior.PriorConfig(unet_channels=(16, 16, 16), unet_plain_levels=3))


def test_train_autoencoder_is_the_vae_stages_of_train_prior(tmp_path, small_pool):
    cfg = prior.PriorConfig(**TINY)
    vae, info = prior.train_autoencoder(cfg, tmp_path / "work", pool=small_pool, progress=False)
    assert (tmp_path / "work" / "checkpoints" / "decoder.pt").exists() and info["vae_log"] == []
    report = prior.train_prior(cfg, tmp_path / "model", work_dir=tmp_path / "work", pool=small_pool, progress=False)
    assert report["vae_seconds"] == info["vae_seconds"] and report["decoder_seconds"] == info["decoder_seconds"]
    shipped = prior.load_prior(tmp_path / "model").vae
    assert all(torch.equal(a, b) for a, b in zip(vae.state_dict().values(), shipped.state_dict().values()))


@pytest.mark.slow
def test_notebook_00_trains_and_measures_a_tiny_prior(tmp_path):
    """Notebook 00 with ``train=True`` (what `make prior` runs), at tiny sizes: it trains every
    stage, loads the result back, measures it and writes the model card, all under tmp_path.
    (The stored notebook runs with ``train=False``; nbval checks that path.)"""
    import papermill as pm

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "fashion-prior"
    pm.execute_notebook(
        root / "notebooks" / "00_build_prior.ipynb", tmp_path / "00.ipynb", cwd=str(root), progress_bar=False,
        kernel_name="python3", parameters=dict(
            train=True, vae_steps=6, unet_steps=6, decoder_steps=4, vae_batch=16, unet_batch=16, vae_channels=[8, 8, 8],
            unet_channels=[16, 16, 16], text_width=16, latent_passes=1, pool_limit=500, judge_steps=5,
            fidelity_samples=20, fd_target_images=200, sampling_steps=4, out_dir=str(out), work_dir=str(tmp_path / "work"),
            judge_dir=str(tmp_path / "judge"), figures_dir=str(tmp_path / "figures"), progress=False))
    assert (out / "model_index.json").is_file() and (out / "quality.json").is_file() and (out / "README.md").is_file()
    assert (tmp_path / "judge" / "config.json").is_file() and (tmp_path / "figures" / "prior_samples.png").is_file()


def test_make_prior_builds_the_shipped_priors_settings():
    """`make prior` (notebook 00 at its defaults plus notebooks/params/prior.yaml) trains with every
    setting of the shipped prior's training report, so that a rebuild is the shipped prior's."""
    import yaml

    from coda_utils import params
    from coda_utils.io import read_json

    root = Path(__file__).resolve().parent.parent
    nb = params.notebook_defaults("00_build_prior")  # its parameters cell and its advanced settings
    nb.update(yaml.safe_load((root / "notebooks" / "params" / "prior.yaml").read_text()))
    shipped = read_json(root / "data" / "models" / "fashion-prior" / "training_report.json")["config"]
    shipped = {**prior_build._ADDED_FIELDS, **shipped}  # settings added since, at the value it was built with
    defaults = prior.PriorConfig().to_dict()
    fields = set(defaults)
    # what the notebook sets is the notebook's; every other field is PriorConfig's default
    built = {**defaults, **{k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in nb.items() if k in fields}}
    assert built == shipped, {k: (built[k], shipped.get(k)) for k in built if built[k] != shipped.get(k)}


class _PixelVAE:
    """A stand-in VAE whose latent is the padded image itself and whose decoder adds ``shift``
    on the 28x28 image area and makes the 2-pixel padding border white (the padding is black):
    the padding is reconstructed as badly as possible, so counting it would show."""

    def __init__(self, shift: float, garbage_border: bool = True):
        from types import SimpleNamespace

        self.config = SimpleNamespace(sample_size=32)
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self.shift, self.garbage_border = shift, garbage_border

    def encode(self, x):
        from types import SimpleNamespace

        return SimpleNamespace(latent_dist=SimpleNamespace(mean=x.clone()))

    def decode(self, z):
        from types import SimpleNamespace

        out = z.clone()
        out[..., 2:30, 2:30] += self.shift
        if self.garbage_border:
            inner = out[..., 2:30, 2:30].clone()
            out.fill_(1.0)
            out[..., 2:30, 2:30] = inner
        return SimpleNamespace(sample=out)


def test_vae_psnr_is_measured_on_the_image_area_in_0_1_units():
    x = torch.randint(0, 255, (6, 1, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)  # <= 254
    # a perfect reconstruction: the MSE is 0, the per-image PSNR takes its cap (MSE 1e-10: 100 dB)
    perfect = prior.vae_reconstruction_psnr(_PixelVAE(0.0, garbage_border=False), x)
    assert perfect["mean_image_psnr_db"] == pytest.approx(100.0) and perfect["psnr_db"] == math.inf
    assert prior.vae_reconstruction_psnr(_PixelVAE(0.0), x)["mean_image_psnr_db"] == pytest.approx(100.0)
    # one grey level too bright everywhere in the image (2/255 in [-1, 1]): MSE (1/255)^2, 20 log10(255) = 48.13 dB
    r = prior.vae_reconstruction_psnr(_PixelVAE(2 / 255), x, batch_size=4)
    assert r["psnr_db"] == pytest.approx(20 * math.log10(255), abs=1e-3) == pytest.approx(48.13, abs=5e-3)
    assert r["mean_image_psnr_db"] == pytest.approx(20 * math.log10(255), abs=1e-3) and r["n"] == 6


def test_offset_noise_adds_a_per_image_per_channel_constant_and_none_by_default():
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    shape = (4000, 4, 8, 8)
    # offset 0 is plain randn: the shipped prior's training noise, draw for draw
    assert torch.equal(prior_build.training_noise(shape, g()), torch.randn(shape, generator=g()))
    plain, offset = prior_build.training_noise(shape, g()), prior_build.training_noise(shape, g(), 0.5)
    # the spatial mean of each channel: variance 1/64 for plain noise, 1/64 + 0.25 with the offset
    assert plain.mean((2, 3)).var().item() == pytest.approx(1 / 64, rel=0.1)
    assert offset.mean((2, 3)).var().item() == pytest.approx(1 / 64 + 0.25, rel=0.1)
    assert torch.allclose(offset - plain, (offset - plain)[..., :1, :1].expand(shape), atol=1e-6)  # constant over the image


def test_offset_noise_is_a_unet_setting_and_leaves_checkpoints_made_before_it_valid():
    base, offset = prior.PriorConfig(**TINY), prior.PriorConfig(**{**TINY, "noise_offset": 0.5})
    assert "noise_offset" not in prior_build._stage_fingerprint(base, "unet")  # as checkpoints made before it
    assert prior_build._stage_fingerprint(offset, "unet")["noise_offset"] == 0.5
    for stage in ("vae", "latents", "decoder"):
        assert prior_build._stage_fingerprint(base, stage) == prior_build._stage_fingerprint(offset, stage)


def test_finetune_from_a_base_prior_trains_only_the_unet_and_text_encoder(tmp_path, small_pool):
    """base_prior: the base's VAE and tokenizer are kept byte for byte, the UNet and text encoder
    move, the report keeps the base's stage logs and names it; a base built with other settings,
    or the output directory itself as the base, is refused; the fine-tuning resumes."""
    second = prior.PriorConfig(**{**TINY, **prior.SECOND_PRIOR})
    base = tmp_path / "second"
    base_report = prior.train_prior(second, base, work_dir=tmp_path / "w0", pool=small_pool, progress=False)
    assert base_report["finetune_log"] == [] and base_report["finetune_seconds"] == 0.0
    cfg = prior.PriorConfig(**TINY)
    out = tmp_path / "tuned"
    report = prior.train_prior(cfg, out, work_dir=tmp_path / "w1", pool=small_pool, progress=False, base_prior=base)
    assert report["base_prior"]["sha256"] == prior_build._prior_hash(base)
    assert report["unet_log"] == base_report["unet_log"] and report["vae_seconds"] == base_report["vae_seconds"]
    assert report["finetune_seconds"] > 0 and report["trained_on"]["finetune"] == "cpu"
    assert (out / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() == \
        (base / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert (out / "tokenizer" / "tokenizer.json").read_bytes() == (base / "tokenizer" / "tokenizer.json").read_bytes()
    assert not any("_name_or_path" in f.read_text() for f in out.glob("*/config.json"))  # no path of the base
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() != \
        (base / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    again = prior.train_prior(cfg, out, work_dir=tmp_path / "w1", pool=small_pool, progress=False, base_prior=base)
    assert again["finetune_seconds"] == report["finetune_seconds"]  # resumed: nothing trained
    with pytest.raises(ValueError, match="unet_lr"):
        prior.train_prior(prior.PriorConfig(**{**TINY, "unet_lr": 1e-4}), tmp_path / "x", work_dir=tmp_path / "w2",
                          pool=small_pool, progress=False, base_prior=base)
    with pytest.raises(ValueError, match="is out_dir"):
        prior.train_prior(cfg, base, work_dir=tmp_path / "w3", pool=small_pool, progress=False, base_prior=base)
    with pytest.raises(FileNotFoundError, match="training_report"):
        prior.train_prior(cfg, tmp_path / "y", work_dir=tmp_path / "w4", pool=small_pool, progress=False,
                          base_prior=tmp_path / "w0")
