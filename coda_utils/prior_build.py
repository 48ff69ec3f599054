"""The embedded prior's build: train it stage by stage (resumable), save it, measure its VAE.

Training runs in stages (tokenizer -> VAE -> pool latents -> UNet -> offset-noise fine-tuning ->
decoder -> pipeline), each of which checkpoints into the output directory and resumes after an
interruption. A checkpoint made with other settings is refused, never silently reused.

:func:`train_prior` runs every stage and saves the pipeline; with ``base_prior`` it takes a finished
prior's networks and runs the fine-tuning alone (how the shipped prior was made from the second); :func:`train_autoencoder` runs the VAE stages alone; :func:`vae_reconstruction_psnr`
measures a VAE. The model they train is :mod:`coda_utils.prior_model`.
"""
from __future__ import annotations

import dataclasses
import json
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
                          build_tokenizer, build_unet, build_vae, config_from_report, count_parameters, load_prior,
                          make_captions, web_transform)
from .vae import resolve_model_path

__all__ = [
    "StaleCheckpointError",
    "STAGE_FIELDS",
    "STAGE_DEPENDS",
    "train_vae",
    "encode_pool_latents",
    "train_unet",
    "finetune_unet",
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
    "finetune": ["finetune_steps", "finetune_batch", "finetune_lr", "finetune_noise_offset",
                 "finetune_background_caption_p"],
    "decoder": ["decoder_steps", "decoder_lr"],
}


#: the stages whose settings each stage's result depends on (the decoder is fine-tuned from
#: the VAE alone, so more UNet steps leave a finished decoder valid)
STAGE_DEPENDS = {"vae": ["vae"], "latents": ["vae", "latents"], "unet": ["vae", "latents", "unet"],
                 "finetune": ["vae", "latents", "unet", "finetune"], "decoder": ["vae", "decoder"]}


#: fields added after checkpoints were made, at the value those checkpoints were trained with: a
#: fingerprint names them only when they differ, so that such a checkpoint stays valid
_ADDED_FIELDS = {"noise_offset": 0.0}


def _stage_fingerprint(cfg: PriorConfig, stage: str, base: str | None = None) -> dict:
    """The settings that decide ``stage``: its own fields and those of the stages it depends
    on (:data:`STAGE_DEPENDS`), so that changing another stage never invalidates it; with
    ``base`` (a finished prior's hash, :func:`_prior_hash`) also the networks it starts from."""
    d = cfg.to_dict()
    fields = [f for st in STAGE_DEPENDS[stage] for f in STAGE_FIELDS[st]]
    fp = {"stage": stage, **{f: d[f] for f in fields if f not in _ADDED_FIELDS or d[f] != _ADDED_FIELDS[f]}}
    return {**fp, "base": base} if base is not None else fp


def _prior_hash(path: Path) -> str:
    """The sha256 of a saved prior's weights (every ``*.safetensors`` under it, in path order)."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(path.rglob("*.safetensors")):
        h.update(f.relative_to(path).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


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


def _optimizer_step(loss: torch.Tensor, opt, sched=None, clip_params: list | None = None) -> None:
    """One training step of every stage's loop: back-propagate ``loss``, clip the gradients of
    ``clip_params`` to norm 1 (``None``: no clipping), step the optimizer, then ``sched`` if given."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip_params is not None:
        torch.nn.utils.clip_grad_norm_(clip_params, 1.0)
    opt.step()
    if sched is not None:
        sched.step()


def _log_running_loss(running: float | None, loss: torch.Tensor, step: int, log: list, bar,
                      weights: tuple[float, float]) -> float:
    """The denoising loops' loss readout: the running mean ``weights[0] * running + weights[1] *
    loss`` (the loss itself at the first step), a step of the progress bar, and every 50 steps a
    ``{"step", "loss"}`` entry in ``log`` and the bar's postfix. Returns the running mean."""
    value = loss.item()
    running = value if running is None else weights[0] * running + weights[1] * value
    bar.update(1)
    if step % 50 == 0:
        log.append({"step": step, "loss": running})
        bar.set_postfix(loss=f"{running:.4f}")
    return running


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
        _optimizer_step(loss, opt, sched)
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
                        progress: bool = True, base: str | None = None) -> dict[str, torch.Tensor]:
    """Encode ``latent_passes`` web-transformed passes over the pool once (posterior mean and
    std, unscaled; where ``vae`` is, kept on the CPU); the UNet then trains on this cache instead
    of running the VAE each step. Also holds the VAE's ``scaling_factor``: SD's convention of
    unit-variance latents, rounded (as SD's 0.18215) and stored, since its last digit can differ
    between devices. ``base``: the hash of the finished prior whose VAE ``vae`` is (``train_prior``'s
    ``base_prior``), part of the cache's fingerprint."""
    path = work / "checkpoints" / "pool_latents.pt"
    fp = _stage_fingerprint(cfg, "latents", base)
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


def _denoising_loss(unet, text_encoder, tokenizer, latents: dict, scaling_factor: float, cfg: PriorConfig, batch: int,
                    offset: float, gen: torch.Generator, rng: np.random.Generator, noise_sched, device) -> torch.Tensor:
    """One training batch's epsilon loss, as the UNet stage and the fine-tuning draw it: latents
    sampled from the pool cache's posteriors, the build's captions (``cfg.background_caption_p``),
    :func:`training_noise` with ``offset``, uniform timesteps; drawn on the CPU, run on ``device``."""
    mean, std = latents["mean"], latents["std"]
    idx = torch.randint(len(mean), (batch,), generator=gen)
    z0 = (mean[idx].float() + std[idx].float() * torch.randn(mean[idx].shape, generator=gen)) * scaling_factor
    caps = make_captions(latents["labels"][idx].tolist(), latents["inverted"][idx].tolist(), rng, cfg)
    ids = tokenizer(caps, padding="max_length", max_length=cfg.max_tokens, truncation=True, return_tensors="pt").input_ids
    noise = training_noise(z0.shape, gen, offset)
    t = torch.randint(0, noise_sched.config.num_train_timesteps, (len(z0),), generator=gen)
    zt = noise_sched.add_noise(z0, noise, t).to(device)
    cond = text_encoder(ids.to(device))[0]
    pred = unet(zt, t.to(device), encoder_hidden_states=cond).sample
    return F.mse_loss(pred, noise.to(device))


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
    unet.train(); text_encoder.train()
    bar = _progress(cfg.unet_steps, step, "UNet", progress)
    t0 = time.perf_counter()
    running = None
    while step < cfg.unet_steps:
        loss = _denoising_loss(unet, text_encoder, tokenizer, latents, scaling_factor, cfg, cfg.unet_batch,
                               cfg.noise_offset, gen, rng, noise_sched, device)
        _optimizer_step(loss, opt, sched, clip_params=params)
        ema_unet.step(unet.parameters()); ema_text.step(text_encoder.parameters())
        step += 1
        running = _log_running_loss(running, loss, step, log, bar, (0.98, 0.02))
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


def finetune_unet(cfg: PriorConfig, unet, text_encoder, latents: dict, scaling_factor: float, tokenizer, work: Path,
                  progress: bool = True, device: str = "cpu", base: str | None = None):
    """Offset-noise fine-tuning: the UNet and text encoder (the UNet stage's EMA weights, or a
    finished prior's: ``base`` is then its hash) go on training for ``cfg.finetune_steps`` steps
    with :func:`training_noise` at ``cfg.finetune_noise_offset`` and the background named in
    ``cfg.finetune_background_caption_p`` of the captions; AdamW at a constant ``cfg.finetune_lr``,
    gradients clipped at 1, no EMA (the fine-tuned weights are shipped). Offset noise removes what
    the noisy latent of the first timesteps tells of the background, so the background words become
    worth learning (``benchmarks/prior_text_probe.py``). Resumes from ``finetune.pt``; 0 steps
    returns the networks as they are. Returns them (in eval mode, on the CPU), the loss log and the
    training seconds (all sessions)."""
    if cfg.finetune_steps == 0:
        return unet.eval(), text_encoder.eval(), [], 0.0
    device = torch.device(device)
    unet.to(device).requires_grad_(True).train(); text_encoder.to(device).requires_grad_(True).train()
    noise_sched = build_noise_scheduler()
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.finetune_lr, weight_decay=1e-2)
    gen = torch.Generator().manual_seed(cfg.seed + 4)
    rng = np.random.default_rng(cfg.seed + 4)
    captions = dataclasses.replace(cfg, background_caption_p=cfg.finetune_background_caption_p)
    fp = _stage_fingerprint(cfg, "finetune", base)
    fp["scaling_factor"] = round(float(scaling_factor), 6)
    path = work / "checkpoints" / "finetune.pt"
    step, log, seconds = 0, [], 0.0
    ckpt = _load_checkpoint(path, fp)
    if ckpt is not None:
        unet.load_state_dict(ckpt["unet"]); text_encoder.load_state_dict(ckpt["text"]); opt.load_state_dict(ckpt["opt"])
        gen.set_state(ckpt["gen"]); rng.bit_generator.state = ckpt["rng"]
        step, log, seconds = ckpt["step"], ckpt["log"], ckpt["seconds"]
    bar = _progress(cfg.finetune_steps, step, "offset-noise fine-tuning", progress)
    t0 = time.perf_counter()
    running = None
    while step < cfg.finetune_steps:
        loss = _denoising_loss(unet, text_encoder, tokenizer, latents, scaling_factor, captions, cfg.finetune_batch,
                               cfg.finetune_noise_offset, gen, rng, noise_sched, device)
        _optimizer_step(loss, opt, clip_params=params)
        step += 1
        running = _log_running_loss(running, loss, step, log, bar, (0.95, 0.05))
        if step % cfg.checkpoint_every == 0 or step == cfg.finetune_steps:
            _save_checkpoint(path, {"fingerprint": fp, "unet": unet.state_dict(), "text": text_encoder.state_dict(),
                                    "opt": opt.state_dict(), "gen": gen.get_state(), "rng": rng.bit_generator.state,
                                    "step": step, "log": log, "seconds": seconds + time.perf_counter() - t0,
                                    "device": _device_name(device)})
    bar.close()
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    unet.cpu(); text_encoder.cpu()
    unet.load_state_dict(ckpt["unet"]); text_encoder.load_state_dict(ckpt["text"])
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
                tokenizer_dir: str | Path | None = None, device: str = "cpu",
                base_prior: str | Path | None = None) -> dict:
    """Run every stage and save the pipeline to ``out_dir`` (``save_pretrained``, safetensors).

    ``device``: where the networks train (``"cuda"`` makes the whole build a few minutes);
    batches are drawn on the CPU, so a checkpoint made on one device resumes on another.

    Checkpoints and the tokenizer live in ``work_dir`` (default ``out_dir/../<name>-work``);
    re-running resumes. ``tokenizer_dir``: see :func:`prepare_tokenizer`.
    The shipped prior (:data:`SHIPPED_PRIOR`) is only replaced with ``overwrite_shipped=True``.

    ``base_prior``: a finished prior (a directory ``train_prior`` wrote) whose VAE, tokenizer, text
    encoder and UNet stand for the stages before the fine-tuning: its settings must equal ``cfg``'s
    for those stages, and only the pool latents (with its VAE) and :func:`finetune_unet` run. The
    report then keeps the base's stage times and logs and names it (``base_prior``: its hash and
    its own report's device). It must not be ``out_dir``.
    Returns a training report (parameter counts, steps, seconds per stage, loss logs).
    """
    from diffusers import StableDiffusionPipeline

    out_dir = Path(out_dir)
    if out_dir.resolve() == SHIPPED_PRIOR.resolve() and not overwrite_shipped:
        raise PermissionError(f"out_dir {out_dir} is the shipped prior; pass overwrite_shipped=True to replace it "
                              "(make prior does), or choose another out_dir")
    work = Path(work_dir) if work_dir is not None else out_dir.parent / f"{out_dir.name}-work"
    base = _check_base_prior(cfg, base_prior, out_dir) if base_prior is not None else None
    (work / "checkpoints").mkdir(parents=True, exist_ok=True)
    write_json(work / "config.json", cfg.to_dict())
    torch.manual_seed(cfg.seed)
    pool = pool if pool is not None else load_fashion_mnist("pool")
    pool_px = pool.load()

    if base is None:
        tokenizer = prepare_tokenizer(work, cfg, tokenizer_dir)
        vae, vae_log, vae_seconds = train_vae(cfg, pool_px, work, progress, device)
        latents = encode_pool_latents(cfg, vae, pool_px, pool.labels, work, progress)
        scaling = latents["scaling_factor"]
        vae.register_to_config(scaling_factor=scaling)
        unet, text_encoder, unet_log, unet_seconds = train_unet(cfg, latents, scaling, tokenizer, work, progress, device)
        trained_on = {stage: _trained_on(work / "checkpoints" / f"{stage}.pt") for stage in ("vae", "unet")}
    else:  # the base prior's networks, its (decoder-fine-tuned) VAE's encoder being the VAE stage's
        tokenizer = prepare_tokenizer(work, cfg, base["path"] / "tokenizer")
        pipe = load_prior(base["path"])
        vae, unet, text_encoder = pipe.vae, pipe.unet, pipe.text_encoder
        latents = encode_pool_latents(cfg, vae, pool_px, pool.labels, work, progress, base["hash"])
        scaling = float(vae.config.scaling_factor)
        if scaling != latents["scaling_factor"]:
            raise StaleCheckpointError(f"base_prior {base['path']}: its VAE's scaling factor {scaling} is not the one "
                                       f"of its pool latents ({latents['scaling_factor']}); is it a train_prior build?")
        r = base["report"]
        vae_log, unet_log, decoder_log = r["vae_log"], r["unet_log"], r["decoder_log"]
        vae_seconds, unet_seconds, decoder_seconds = r["vae_seconds"], r["unet_seconds"], r["decoder_seconds"]
        trained_on = {stage: r.get("trained_on", {}).get(stage, "not recorded") for stage in ("vae", "unet")}
    unet, text_encoder, finetune_log, finetune_seconds = finetune_unet(
        cfg, unet, text_encoder, latents, scaling, tokenizer, work, progress, device, base and base["hash"])
    if cfg.finetune_steps:
        trained_on["finetune"] = _trained_on(work / "checkpoints" / "finetune.pt")
    if base is None:
        vae, decoder_log, decoder_seconds = finetune_decoder(cfg, vae, pool_px, work, progress)
        trained_on["decoder"] = _trained_on(work / "checkpoints" / "decoder.pt")
    else:
        trained_on["decoder"] = base["report"].get("trained_on", {}).get("decoder", "not recorded")
    vae = vae.cpu()

    # the tokenizer as it was made, not as training left it: a fast tokenizer called with padding
    # and truncation keeps them as its state, and save_pretrained would write them into tokenizer.json
    tokenizer = prepare_tokenizer(work, cfg, tokenizer_dir if base is None else base["path"] / "tokenizer")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=build_scheduler(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    tmp = out_dir.parent / f".{out_dir.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    pipe.save_pretrained(tmp, safe_serialization=True)
    _drop_load_paths(tmp)
    report = {
        "config": cfg.to_dict(),
        "parameters": {"vae": count_parameters(vae), "unet": count_parameters(unet),
                       "text_encoder": count_parameters(text_encoder)},
        "vocab_size": len(tokenizer),
        "scaling_factor": scaling,
        "vae_seconds": vae_seconds,
        "unet_seconds": unet_seconds,
        "decoder_seconds": decoder_seconds,
        "finetune_seconds": finetune_seconds,
        "trained_on": trained_on,
        "vae_log": vae_log,
        "unet_log": unet_log,
        "finetune_log": finetune_log,
        "decoder_log": decoder_log,
    }
    if base is not None:
        report["base_prior"] = {"sha256": base["hash"], "config": base["report"]["config"]}
    write_json(tmp / "training_report.json", report)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return report


def _drop_load_paths(folder: Path) -> None:
    """Remove ``_name_or_path`` from every component's ``config.json`` under a saved pipeline:
    diffusers writes where a component was loaded from (a base prior's folder), which says
    nothing of the model and would differ between machines."""
    for f in sorted(folder.glob("*/config.json")):
        cfg = json.loads(f.read_text())
        if cfg.pop("_name_or_path", None) is not None:
            write_json(f, cfg)


def _check_base_prior(cfg: PriorConfig, base_prior: str | Path, out_dir: Path) -> dict:
    """``train_prior``'s base prior: its path (relative paths also from the repository root), its
    hash and its report, after checking that its settings are ``cfg``'s for every stage before
    the fine-tuning and the decoder's (a base built otherwise would make the report lie)."""
    path = resolve_model_path(base_prior)
    report_file = path / "training_report.json"
    if not report_file.is_file():
        raise FileNotFoundError(f"base_prior {base_prior} has no training_report.json: pass a prior that train_prior saved")
    if path.resolve() == out_dir.resolve():
        raise ValueError(f"base_prior {base_prior} is out_dir: copy it elsewhere first (the build replaces out_dir)")
    report = json.loads(report_file.read_text())
    made, want = config_from_report(report).to_dict(), cfg.to_dict()
    fields = [f for st in ("vae", "latents", "unet", "decoder") for f in STAGE_FIELDS[st]] + ["seed"]
    differ = sorted(f for f in set(fields) if made[f] != want[f])
    if differ:
        raise ValueError(f"base_prior {base_prior} was built with other settings than this run's for "
                         + ", ".join(f"{f} ({made[f]!r}, not {want[f]!r})" for f in differ)
                         + ": pass the settings it was built with")
    return {"path": path, "hash": _prior_hash(path), "report": report}


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
