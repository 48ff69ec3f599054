"""The embedded prior's build: train it stage by stage (resumable), save it, measure its VAE.

Training runs in stages (tokenizer -> VAE -> pool latents -> UNet -> pipeline), each of which
checkpoints into the output directory and resumes after an interruption. A checkpoint made
with other settings is refused, never silently reused.

:func:`train_prior` runs every stage (tokenizer -> VAE -> pool latents -> UNet -> decoder) and saves
the pipeline; :func:`train_autoencoder` runs the VAE stages alone; :func:`vae_reconstruction_psnr`
measures a VAE. The model they train is :mod:`coda_utils.prior_model`.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .datasets import LabeledImages, load_fashion_mnist
from .images import resize_images
from .io import atomic_write, write_json
from .prior_model import (SHIPPED_PRIOR, PriorConfig, build_noise_scheduler, build_scheduler, build_text_encoder,
                          build_tokenizer, build_unet, build_vae, count_parameters, make_captions, web_transform)
from .vae import resolve_model_path

__all__ = [
    "StaleCheckpointError",
    "STAGE_FIELDS",
    "STAGE_DEPENDS",
    "train_vae",
    "encode_pool_latents",
    "train_unet",
    "training_noise",
    "finetune_decoder",
    "train_autoencoder",
    "prepare_tokenizer",
    "train_prior",
    "vae_reconstruction_psnr",
]


# --------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------
class StaleCheckpointError(RuntimeError):
    pass


#: the fields each stage adds to what decides it (a stage also depends on every earlier stage)
STAGE_FIELDS = {
    "vae": ["seed", "invert_p", "scale_range", "max_rotation_deg", "gamma_range", "vae_channels", "vae_steps",
            "vae_batch", "vae_lr", "vae_kl_weight", "vae_latent_channels"],
    "latents": ["latent_passes"],
    "unet": ["background_caption_p", "caption_dropout", "text_width", "text_layers", "text_heads", "max_tokens",
             "unet_channels", "unet_layers_per_block", "unet_plain_levels", "unet_steps", "unet_batch", "unet_lr", "ema_decay",
             "noise_offset"],
    "decoder": ["decoder_steps", "decoder_lr"],
}


#: the stages whose settings each stage's result depends on (the decoder is fine-tuned from
#: the VAE alone, so more UNet steps leave a finished decoder valid)
STAGE_DEPENDS = {"vae": ["vae"], "latents": ["vae", "latents"], "unet": ["vae", "latents", "unet"],
                 "decoder": ["vae", "decoder"]}


#: fields added after checkpoints were made, at the value those checkpoints were trained with: a
#: fingerprint names them only when they differ, so that such a checkpoint stays valid
_ADDED_FIELDS = {"noise_offset": 0.0}


def _stage_fingerprint(cfg: PriorConfig, stage: str) -> dict:
    """The settings that decide ``stage``: its own fields and those of the stages it depends
    on (:data:`STAGE_DEPENDS`), so that changing another stage never invalidates it."""
    d = cfg.to_dict()
    fields = [f for st in STAGE_DEPENDS[stage] for f in STAGE_FIELDS[st]]
    return {"stage": stage, **{f: d[f] for f in fields if f not in _ADDED_FIELDS or d[f] != _ADDED_FIELDS[f]}}


def training_noise(shape, generator: torch.Generator, offset: float = 0.0) -> torch.Tensor:
    """The UNet's training noise: unit Gaussian, plus with ``offset`` a per-image, per-channel
    constant of that std (offset noise, :attr:`PriorConfig.noise_offset`; diffusers'
    ``train_text_to_image.py --noise_offset``). ``offset=0`` draws exactly ``torch.randn(shape)``."""
    noise = torch.randn(shape, generator=generator)
    if offset:
        noise = noise + offset * torch.randn(*shape[:2], 1, 1, generator=generator)
    return noise


def _load_checkpoint(path: Path, fingerprint: dict) -> dict | None:
    if not path.exists():
        return None
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if ckpt.get("fingerprint") != fingerprint:
        raise StaleCheckpointError(
            f"{path} was made with other settings than this run's; delete it (or the whole "
            f"directory {path.parent.parent}) to retrain, or pass the settings it was made with"
        )
    return ckpt


def _save_checkpoint(path: Path, payload: dict) -> None:
    with atomic_write(path, "wb") as fh:
        torch.save(payload, fh)


# --------------------------------------------------------------------------------------
# Training stages
# --------------------------------------------------------------------------------------
def _device_name(device) -> str:
    device = torch.device(device)
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else device.type


def _trained_on(path: Path) -> str:
    """Where a finished stage's checkpoint was trained (older checkpoints did not say)."""
    return torch.load(path, map_location="cpu", weights_only=False).get("device", "not recorded")


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, unit="step")


def _autoencoder_stage(cfg: PriorConfig, vae, params: list, lr: float, steps: int, seed: int, pool: torch.Tensor,
                       path: Path, fp: dict, desc: str, loss_fn, progress: bool,
                       device: torch.device = torch.device("cpu")) -> tuple[list, float]:
    """The training loop the VAE and decoder stages share: AdamW with a one-cycle schedule on
    web-transformed pool batches, a PSNR log every 50 steps, checkpoints every
    ``cfg.checkpoint_every`` steps, resumption from ``path``. ``loss_fn(x, gen)`` returns
    ``(loss, reconstruction)``. Batches are drawn and transformed on the CPU (one generator,
    the same on every device) and moved to ``device``. Returns the log and the training
    seconds (all sessions)."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.05)
    gen = torch.Generator().manual_seed(seed)
    step, log, seconds = 0, [], 0.0
    ckpt = _load_checkpoint(path, fp)
    if ckpt is not None:
        vae.load_state_dict(ckpt["model"]); opt.load_state_dict(ckpt["opt"]); sched.load_state_dict(ckpt["sched"])
        gen.set_state(ckpt["gen"]); step, log, seconds = ckpt["step"], ckpt["log"], ckpt["seconds"]
    bar = _progress(steps, step, desc, progress)
    t0 = time.perf_counter()
    seconds_now = seconds
    while step < steps:
        idx = torch.randint(len(pool), (cfg.vae_batch,), generator=gen)
        x, _ = web_transform(pool[idx], gen, cfg)
        loss, rec = loss_fn(x.to(device), gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step(); sched.step()
        step += 1
        bar.update(1)
        if step % 50 == 0:
            psnr = float(10 * torch.log10(4.0 / F.mse_loss(rec.detach().cpu(), x)))
            log.append({"step": step, "loss": loss.item(), "psnr_db": psnr})
            bar.set_postfix(psnr=f"{psnr:.1f}dB")
        if step % cfg.checkpoint_every == 0 or step == steps:
            seconds_now = seconds + time.perf_counter() - t0
            _save_checkpoint(path, {"fingerprint": fp, "model": vae.state_dict(), "opt": opt.state_dict(),
                                    "sched": sched.state_dict(), "gen": gen.get_state(), "step": step, "log": log,
                                    "seconds": seconds_now, "device": _device_name(device)})
    bar.close()
    return log, seconds_now


def train_vae(cfg: PriorConfig, pool: torch.Tensor, work: Path, progress: bool = True, device: str = "cpu"):
    """Train the VAE on web-transformed pool images (L1 + MSE + a tiny KL, as SD's VAE)."""
    device = torch.device(device)
    vae = build_vae(cfg).to(device)
    vae.train()

    def loss_fn(x, gen):
        post = vae.encode(x).latent_dist
        eps = torch.randn(post.mean.shape, generator=gen).to(device)
        rec = vae.decode(post.mean + post.std * eps).sample
        return F.l1_loss(rec, x) + F.mse_loss(rec, x) + cfg.vae_kl_weight * post.kl().mean(), rec

    log, seconds = _autoencoder_stage(cfg, vae, list(vae.parameters()), cfg.vae_lr, cfg.vae_steps, cfg.seed, pool,
                                      work / "checkpoints" / "vae.pt", _stage_fingerprint(cfg, "vae"), "VAE", loss_fn,
                                      progress, device)
    vae.eval()
    return vae, log, seconds


def _rounded_scaling_factor(means: torch.Tensor) -> float:
    return float(f"{1.0 / means.float().std():.4g}")


@torch.no_grad()
def encode_pool_latents(cfg: PriorConfig, vae, pool: torch.Tensor, labels: np.ndarray, work: Path,
                        progress: bool = True) -> dict[str, torch.Tensor]:
    """Encode ``latent_passes`` web-transformed passes over the pool once (posterior mean and
    std, unscaled; where ``vae`` is, kept on the CPU); the UNet then trains on this cache instead
    of running the VAE each step. Also holds the VAE's ``scaling_factor``: SD's convention of
    unit-variance latents, rounded (as SD's 0.18215) and stored, since its last digit can differ
    between devices."""
    path = work / "checkpoints" / "pool_latents.pt"
    fp = _stage_fingerprint(cfg, "latents")
    cached = _load_checkpoint(path, fp)
    if cached is not None:
        cached.setdefault("scaling_factor", _rounded_scaling_factor(cached["mean"]))  # caches made before it was stored
        return cached
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(cfg.seed + 1)
    means, stds, labs, invs = [], [], [], []
    bs = 1000
    total = cfg.latent_passes * len(pool)
    with tqdm(total=total, desc="encode pool", disable=not progress, unit="img") as bar:
        for _ in range(cfg.latent_passes):
            for i in range(0, len(pool), bs):
                x, inv = web_transform(pool[i:i + bs], gen, cfg)
                dist = vae.encode(x.to(vae.device)).latent_dist
                means.append(dist.mean.half().cpu()); stds.append(dist.std.half().cpu())
                labs.append(torch.as_tensor(labels[i:i + bs])); invs.append(inv)
                bar.update(len(x))
    out = {"fingerprint": fp, "mean": torch.cat(means), "std": torch.cat(stds),
           "labels": torch.cat(labs), "inverted": torch.cat(invs)}
    out["scaling_factor"] = _rounded_scaling_factor(out["mean"])
    _save_checkpoint(path, out)
    return out


def train_unet(cfg: PriorConfig, latents: dict, scaling_factor: float, tokenizer, work: Path, progress: bool = True,
               device: str = "cpu"):
    """Train the text encoder and UNet jointly with the epsilon objective (DDPM, SD's betas),
    caption dropout for classifier-free guidance, and an EMA of both. Batches, noise and
    timesteps are drawn on the CPU (the same on every device) and moved to ``device``."""
    from diffusers.training_utils import EMAModel

    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    text_encoder = build_text_encoder(cfg, tokenizer).to(device)
    unet = build_unet(cfg).to(device)
    noise_sched = build_noise_scheduler()
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.unet_lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.unet_lr, total_steps=cfg.unet_steps, pct_start=0.03)
    ema_unet = EMAModel(unet.parameters(), decay=cfg.ema_decay, foreach=True)
    ema_text = EMAModel(text_encoder.parameters(), decay=cfg.ema_decay, foreach=True)
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    rng = np.random.default_rng(cfg.seed + 2)
    fp = _stage_fingerprint(cfg, "unet")
    fp["scaling_factor"] = round(float(scaling_factor), 6)
    path = work / "checkpoints" / "unet.pt"
    step, log, seconds = 0, [], 0.0
    ckpt = _load_checkpoint(path, fp)
    if ckpt is not None:
        unet.load_state_dict(ckpt["unet"]); text_encoder.load_state_dict(ckpt["text"])
        opt.load_state_dict(ckpt["opt"]); sched.load_state_dict(ckpt["sched"])
        ema_unet.load_state_dict(ckpt["ema_unet"]); ema_text.load_state_dict(ckpt["ema_text"])
        ema_unet.to(device); ema_text.to(device)
        gen.set_state(ckpt["gen"]); rng.bit_generator.state = ckpt["rng"]
        step, log, seconds = ckpt["step"], ckpt["log"], ckpt["seconds"]
    mean, std, labels, inverted = latents["mean"], latents["std"], latents["labels"], latents["inverted"]
    unet.train(); text_encoder.train()
    bar = _progress(cfg.unet_steps, step, "UNet", progress)
    t0 = time.perf_counter()
    running = None
    while step < cfg.unet_steps:
        idx = torch.randint(len(mean), (cfg.unet_batch,), generator=gen)
        z0 = (mean[idx].float() + std[idx].float() * torch.randn(mean[idx].shape, generator=gen)) * scaling_factor
        caps = make_captions(labels[idx].tolist(), inverted[idx].tolist(), rng, cfg)
        ids = tokenizer(caps, padding="max_length", max_length=cfg.max_tokens, truncation=True, return_tensors="pt").input_ids
        noise = training_noise(z0.shape, gen, cfg.noise_offset)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (len(z0),), generator=gen)
        zt = noise_sched.add_noise(z0, noise, t).to(device)
        cond = text_encoder(ids.to(device))[0]
        pred = unet(zt, t.to(device), encoder_hidden_states=cond).sample
        loss = F.mse_loss(pred, noise.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step(); sched.step()
        ema_unet.step(unet.parameters()); ema_text.step(text_encoder.parameters())
        step += 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        bar.update(1)
        if step % 50 == 0:
            log.append({"step": step, "loss": running})
            bar.set_postfix(loss=f"{running:.4f}")
        if step % cfg.checkpoint_every == 0 or step == cfg.unet_steps:
            _save_checkpoint(path, {"fingerprint": fp, "unet": unet.state_dict(), "text": text_encoder.state_dict(),
                                    "opt": opt.state_dict(), "sched": sched.state_dict(),
                                    "ema_unet": ema_unet.state_dict(), "ema_text": ema_text.state_dict(),
                                    "gen": gen.get_state(), "rng": rng.bit_generator.state, "step": step,
                                    "log": log, "seconds": seconds + time.perf_counter() - t0,
                                    "device": _device_name(device)})
    bar.close()
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    ema_unet.load_state_dict(ckpt["ema_unet"]); ema_text.load_state_dict(ckpt["ema_text"])
    unet.cpu(); text_encoder.cpu()
    ema_unet.copy_to(unet.parameters()); ema_text.copy_to(text_encoder.parameters())
    unet.eval(); text_encoder.eval()
    return unet, text_encoder, ckpt["log"], ckpt["seconds"]


def finetune_decoder(cfg: PriorConfig, vae, pool: torch.Tensor, work: Path, progress: bool = True):
    """Fine-tune the VAE decoder alone on web-transformed pool images, decoding posterior means
    (as Stable Diffusion's ft-MSE VAE): sharper reconstructions, same encoder, same latents, so
    the UNet trained on them stays valid. Runs where ``vae`` is."""
    params = list(vae.post_quant_conv.parameters()) + list(vae.decoder.parameters())
    vae.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    vae.decoder.train()

    def loss_fn(x, gen):
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mean
        rec = vae.decode(z).sample
        return F.l1_loss(rec, x) + F.mse_loss(rec, x), rec

    log, seconds = _autoencoder_stage(cfg, vae, params, cfg.decoder_lr, cfg.decoder_steps, cfg.seed + 3, pool,
                                      work / "checkpoints" / "decoder.pt", _stage_fingerprint(cfg, "decoder"),
                                      "decoder", loss_fn, progress, vae.device)
    vae.requires_grad_(True)
    vae.eval()
    return vae, log, seconds


def train_autoencoder(cfg: PriorConfig, work: str | Path, pool: LabeledImages | None = None, progress: bool = True,
                      device: str = "cpu"):
    """The VAE stages alone (train the VAE, then fine-tune its decoder), resumable in ``work``
    exactly as :func:`train_prior` runs them, so that a latent space can be judged (PSNR, the
    round-trip cost of a real set) before a UNet is trained on it; :func:`train_prior` on the
    same ``work`` directory then reuses both checkpoints. Returns the VAE (in eval mode, on the
    CPU) and ``{"vae_seconds", "decoder_seconds", "vae_log", "decoder_log"}``."""
    work = Path(work)
    (work / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    pool = pool if pool is not None else load_fashion_mnist("pool")
    pool_px = pool.load()
    vae, vae_log, vae_seconds = train_vae(cfg, pool_px, work, progress, device)
    vae, decoder_log, decoder_seconds = finetune_decoder(cfg, vae, pool_px, work, progress)
    return vae.cpu().eval(), {"vae_seconds": vae_seconds, "decoder_seconds": decoder_seconds, "vae_log": vae_log,
                              "decoder_log": decoder_log}


def prepare_tokenizer(work: Path, cfg: PriorConfig, tokenizer_dir: str | Path | None = None):
    """The run's tokenizer, made once per work directory and reused on every resume (the text
    encoder's checkpoints are only valid with the token ids they were trained with).

    On a new work directory it is copied from ``tokenizer_dir`` (e.g. the shipped prior's, which
    makes rebuilds reproducible: training a byte-pair vocabulary with ``tokenizers`` breaks ties
    differently from run to run) or, with ``tokenizer_dir=None``, trained on the caption corpus.
    """
    from transformers import CLIPTokenizer

    dest = work / "tokenizer"
    if not (dest / "tokenizer_config.json").is_file():
        if tokenizer_dir is not None:
            src = resolve_model_path(tokenizer_dir)  # relative paths also from the repository root
            if not (src / "tokenizer_config.json").is_file():
                raise FileNotFoundError(f"tokenizer_dir {tokenizer_dir} holds no tokenizer (tokenizer_config.json)")
            CLIPTokenizer.from_pretrained(src).save_pretrained(dest)
        else:
            build_tokenizer(dest, cfg.max_tokens)
    return CLIPTokenizer.from_pretrained(dest)


def train_prior(cfg: PriorConfig, out_dir: str | Path, work_dir: str | Path | None = None,
                pool: LabeledImages | None = None, progress: bool = True, overwrite_shipped: bool = False,
                tokenizer_dir: str | Path | None = None, device: str = "cpu") -> dict:
    """Run every stage and save the pipeline to ``out_dir`` (``save_pretrained``, safetensors).

    ``device``: where the networks train (``"cuda"`` makes the whole build a few minutes);
    batches are drawn on the CPU, so a checkpoint made on one device resumes on another.

    Checkpoints and the tokenizer live in ``work_dir`` (default ``out_dir/../<name>-work``);
    re-running resumes. ``tokenizer_dir``: see :func:`prepare_tokenizer`.
    The shipped prior (:data:`SHIPPED_PRIOR`) is only replaced with ``overwrite_shipped=True``.
    Returns a training report (parameter counts, steps, seconds per stage, loss logs).
    """
    from diffusers import StableDiffusionPipeline

    out_dir = Path(out_dir)
    if out_dir.resolve() == SHIPPED_PRIOR.resolve() and not overwrite_shipped:
        raise PermissionError(f"out_dir {out_dir} is the shipped prior; pass overwrite_shipped=True to replace it "
                              "(make prior does), or choose another out_dir")
    work = Path(work_dir) if work_dir is not None else out_dir.parent / f"{out_dir.name}-work"
    (work / "checkpoints").mkdir(parents=True, exist_ok=True)
    write_json(work / "config.json", cfg.to_dict())
    torch.manual_seed(cfg.seed)
    pool = pool if pool is not None else load_fashion_mnist("pool")
    pool_px = pool.load()
    tokenizer = prepare_tokenizer(work, cfg, tokenizer_dir)

    vae, vae_log, vae_seconds = train_vae(cfg, pool_px, work, progress, device)
    latents = encode_pool_latents(cfg, vae, pool_px, pool.labels, work, progress)
    scaling = latents["scaling_factor"]
    vae.register_to_config(scaling_factor=scaling)
    unet, text_encoder, unet_log, unet_seconds = train_unet(cfg, latents, scaling, tokenizer, work, progress, device)
    vae, decoder_log, decoder_seconds = finetune_decoder(cfg, vae, pool_px, work, progress)
    vae = vae.cpu()

    # the tokenizer as it was made, not as training left it: a fast tokenizer called with padding
    # and truncation keeps them as its state, and save_pretrained would write them into tokenizer.json
    tokenizer = prepare_tokenizer(work, cfg, tokenizer_dir)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=build_scheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    tmp = out_dir.parent / f".{out_dir.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    pipe.save_pretrained(tmp, safe_serialization=True)
    report = {
        "config": cfg.to_dict(),
        "parameters": {"vae": count_parameters(vae), "unet": count_parameters(unet),
                       "text_encoder": count_parameters(text_encoder)},
        "vocab_size": len(tokenizer),
        "scaling_factor": scaling,
        "vae_seconds": vae_seconds,
        "unet_seconds": unet_seconds,
        "decoder_seconds": decoder_seconds,
        "trained_on": {stage: _trained_on(work / "checkpoints" / f"{stage}.pt") for stage in ("vae", "unet", "decoder")},
        "vae_log": vae_log,
        "unet_log": unet_log,
        "decoder_log": decoder_log,
    }
    write_json(tmp / "training_report.json", report)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return report


# --------------------------------------------------------------------------------------
# Quality of the prior
# --------------------------------------------------------------------------------------
@torch.no_grad()
def vae_reconstruction_psnr(vae, images: torch.Tensor, batch_size: int = 500) -> dict:
    """PSNR (dB, pixels in [0, 1]) of VAE reconstructions (posterior mean, no sampling) of
    ``uint8`` images ``N x 1 x 28 x 28``, measured on the 28x28 image area (the zero padding of
    the 32x32 canvas is excluded). Reports the PSNR of the mean squared error over all images
    and the mean of per-image PSNRs."""
    h, w = images.shape[-2:]
    canvas = int(vae.config.sample_size)
    top, left = (canvas - h) // 2, (canvas - w) // 2
    mses = []
    for i in range(0, len(images), batch_size):
        x = resize_images(images[i:i + batch_size], (canvas, canvas), "pad").float() / 127.5 - 1
        x = x.to(vae.device, vae.dtype)
        rec = vae.decode(vae.encode(x).latent_dist.mean).sample.float().cpu().clamp(-1, 1)
        err = ((rec - x.float().cpu()) / 2)[..., top:top + h, left:left + w]
        mses.append(err.pow(2).flatten(1).mean(1))
    mse = torch.cat(mses)
    return {"psnr_db": float(10 * torch.log10(1 / mse.mean())),
            "mean_image_psnr_db": float((10 * torch.log10(1 / mse.clamp(min=1e-10))).mean()),
            "n": int(len(mse))}
