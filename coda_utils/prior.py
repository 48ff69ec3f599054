"""The embedded world's text-to-image prior: a tiny Stable-Diffusion-style latent diffusion model.

It is trained **only on the ``pool`` split** of Fashion-MNIST, seen through label-preserving
"web" transforms (polarity inversion, scale, position, rotation, gamma) and free-text
captions, so that, like SDXL for ImageNet, it is a general prior whose distribution differs
from the ``target`` split being distilled (``docs/embedded-world.md``).

The result is a standard diffusers :class:`~diffusers.StableDiffusionPipeline` (CLIP-style
tokenizer and text encoder, :class:`~diffusers.AutoencoderKL` 32x32 -> 4x16x16 (the second
prior; the first, :data:`FIRST_PRIOR`, had 4x8x8 latents and cost real images up to 5 points),
:class:`~diffusers.UNet2DConditionModel`, DPM-Solver++ 2M Karras scheduler with Stable
Diffusion's scaled-linear betas) saved with ``save_pretrained`` and loaded offline with
``DiffusionPipeline.from_pretrained(path)``.

Training runs in stages (tokenizer -> VAE -> pool latents -> UNet -> pipeline), each of which
checkpoints into the output directory and resumes after an interruption. A checkpoint made
with other settings is refused, never silently reused.
"""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .datasets import FASHION_MNIST_CLASSES, LabeledImages, load_fashion_mnist
from .io import atomic_write, write_json

__all__ = [
    "PriorConfig",
    "FIRST_PRIOR",
    "SYNONYMS",
    "CAPTION_TEMPLATES",
    "web_transform",
    "make_captions",
    "build_tokenizer",
    "build_text_encoder",
    "build_vae",
    "build_unet",
    "build_scheduler",
    "train_prior",
    "train_autoencoder",
    "latent_shape",
    "config_from_report",
    "load_prior",
    "SHIPPED_PRIOR",
]

SHIPPED_PRIOR = Path(__file__).resolve().parent.parent / "data" / "models" / "fashion-prior"

#: Words a web page might use for each Fashion-MNIST class; the first is the class name
#: exactly as CoDA prompts it (the dataset's own name, lower-cased by the tokenizer).
SYNONYMS: list[list[str]] = [
    ["t-shirt/top", "t-shirt", "tee", "top", "tank top"],
    ["trouser", "trousers", "pants", "jeans", "slacks"],
    ["pullover", "sweater", "jumper", "knit sweater"],
    ["dress", "summer dress", "gown", "frock"],
    ["coat", "jacket", "overcoat", "parka"],
    ["sandal", "sandals", "flip-flop", "strappy sandal"],
    ["shirt", "button-up shirt", "blouse", "flannel shirt"],
    ["sneaker", "running shoe", "trainer", "sports shoe"],
    ["bag", "handbag", "purse", "tote bag"],
    ["ankle boot", "boot", "bootie", "chelsea boot"],
]
assert [s[0] for s in SYNONYMS] == [n.lower() for n in FASHION_MNIST_CLASSES]

CAPTION_TEMPLATES = [
    "{}",
    "a {}",
    "a photo of a {}",
    "a product photo of a {}",
    "an image of a {}",
    "a picture of the {}",
    "{} for sale",
]
#: appended (with probability ``PriorConfig.background_caption_p``) so that text-only
#: prompting ("a sneaker on a black background") is a meaningful baseline.
BACKGROUND_SUFFIX = {False: " on a black background", True: " on a white background"}


@dataclass
class PriorConfig:
    """Everything that decides the trained prior. Changing any field invalidates checkpoints."""

    seed: int = 0
    # "web" transforms
    invert_p: float = 0.5
    scale_range: tuple[float, float] = (0.6, 1.0)
    max_rotation_deg: float = 15.0
    gamma_range: tuple[float, float] = (0.7, 1.4)
    background_caption_p: float = 0.3
    caption_dropout: float = 0.1
    # VAE: each block after the first halves the 32x32 canvas, so two blocks give 16x16 latents
    vae_channels: tuple[int, ...] = (32, 64)
    vae_steps: int = 1500
    vae_batch: int = 128
    vae_lr: float = 1e-3
    vae_kl_weight: float = 1e-6
    vae_latent_channels: int = 4  # latents 4x16x16; the candidates tried: benchmarks/vae_candidates.py
    # text encoder
    text_width: int = 64
    text_layers: int = 2
    text_heads: int = 4
    max_tokens: int = 16
    # UNet
    unet_channels: tuple[int, ...] = (32, 64, 96)
    unet_layers_per_block: int = 1
    # the highest-resolution levels without cross-attention (0: every level but the lowest has it,
    # as in the first prior; 16x16 latents: 1, since attention over 256 positions costs 3x a step)
    unet_plain_levels: int = 1
    unet_steps: int = 6000
    unet_batch: int = 128
    unet_lr: float = 5e-4
    ema_decay: float = 0.999
    latent_passes: int = 3
    # decoder fine-tuning (encoder frozen, so the latent space and the UNet stay valid)
    decoder_steps: int = 1000
    decoder_lr: float = 3e-4
    # bookkeeping
    checkpoint_every: int = 250

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))


#: the first shipped prior (latents 4x8x8, UNet 48-96-96 with cross-attention at every level but
#: the lowest): ``PriorConfig(**FIRST_PRIOR)`` rebuilds it; the benchmarks compare against it
FIRST_PRIOR = {"vae_channels": (16, 32, 32), "unet_channels": (48, 96, 96), "unet_plain_levels": 0}


# --------------------------------------------------------------------------------------
# Data: web transforms and captions
# --------------------------------------------------------------------------------------
def web_transform(images: torch.Tensor, generator: torch.Generator, cfg: PriorConfig | None = None,
                  canvas: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Label-preserving "web" transforms, batched.

    Args:
        images: ``uint8`` ``N x 1 x 28 x 28`` (or any size up to ``canvas``).
        generator: the source of randomness (CPU generator).
    Returns:
        ``(x, inverted)``: float images in ``[-1, 1]``, ``N x 1 x canvas x canvas``, and a bool
        tensor saying which were polarity-inverted (dark product on light background).
    """
    cfg = cfg or PriorConfig()
    n, _, h, w = images.shape
    x = images.float() / 255.0
    x = F.pad(x, ((canvas - w) // 2, canvas - w - (canvas - w) // 2, (canvas - h) // 2, canvas - h - (canvas - h) // 2))

    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    scale = u(*cfg.scale_range)
    angle = u(-cfg.max_rotation_deg, cfg.max_rotation_deg) * math.pi / 180
    # free room (in normalized coordinates) that keeps the scaled item on the canvas
    room = (1 - scale * h / canvas).clamp(min=0)
    tx, ty = u(-1, 1) * room, u(-1, 1) * room
    cos, sin = torch.cos(angle), torch.sin(angle)
    # affine_grid maps output coords -> input coords: the inverse of scale+rotate+shift
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos / scale, sin / scale
    theta[:, 1, 0], theta[:, 1, 1] = -sin / scale, cos / scale
    theta[:, 0, 2] = -(cos * tx + sin * ty) / scale
    theta[:, 1, 2] = -(-sin * tx + cos * ty) / scale
    grid = F.affine_grid(theta, [n, 1, canvas, canvas], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    x = x.clamp(0, 1) ** u(*cfg.gamma_range).view(n, 1, 1, 1)
    inverted = torch.rand(n, generator=generator) < cfg.invert_p
    x = torch.where(inverted.view(n, 1, 1, 1), 1 - x, x)
    return x * 2 - 1, inverted


def make_captions(labels: Sequence[int], inverted: Sequence[bool], rng: np.random.Generator,
                  cfg: PriorConfig | None = None) -> list[str]:
    """Free-text captions from templates and synonyms; ``""`` with probability ``caption_dropout``."""
    cfg = cfg or PriorConfig()
    out = []
    for lab, inv in zip(labels, inverted):
        if rng.random() < cfg.caption_dropout:
            out.append("")
            continue
        words = SYNONYMS[int(lab)]
        # the class name itself in half the captions, a synonym otherwise
        name = words[0] if rng.random() < 0.5 else words[rng.integers(1, len(words))]
        cap = CAPTION_TEMPLATES[rng.integers(len(CAPTION_TEMPLATES))].format(name)
        if rng.random() < cfg.background_caption_p:
            cap += BACKGROUND_SUFFIX[bool(inv)]
        out.append(cap)
    return out


def caption_corpus() -> list[str]:
    """Every caption the templates can produce (the tokenizer's training text)."""
    caps = []
    for words in SYNONYMS:
        for wd in words:
            for t in CAPTION_TEMPLATES:
                for suffix in ("", *BACKGROUND_SUFFIX.values()):
                    caps.append(t.format(wd) + suffix)
    return caps


# --------------------------------------------------------------------------------------
# Components
# --------------------------------------------------------------------------------------
def build_tokenizer(out_dir: str | Path, max_tokens: int = 16, vocab_size: int = 400):
    """Train a small byte-pair-encoding vocabulary on the caption corpus and save it as a
    standard :class:`~transformers.CLIPTokenizer` (``vocab.json`` + ``merges.txt``), so it
    loads offline exactly like Stable Diffusion's tokenizer. Unknown words fall back to
    characters."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token="<|endoftext|>", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    alphabet = list("abcdefghijklmnopqrstuvwxyz0123456789") + list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|startoftext|>", "<|endoftext|>"],
        end_of_word_suffix="</w>",
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator(caption_corpus(), trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = dict(model["vocab"])
    for ch in alphabet:  # every single character, also word-final, so any text encodes
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
    raw = out_dir / "_bpe"
    raw.mkdir(exist_ok=True)
    with atomic_write(raw / "vocab.json", "w") as fh:
        json.dump(vocab, fh)
    with atomic_write(raw / "merges.txt", "w") as fh:
        fh.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer(str(raw / "vocab.json"), str(raw / "merges.txt"), model_max_length=max_tokens)
    tokenizer.save_pretrained(out_dir)
    shutil.rmtree(raw)
    return tokenizer


def build_text_encoder(cfg: PriorConfig, tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.text_width,
        intermediate_size=cfg.text_width * 4,
        num_hidden_layers=cfg.text_layers,
        num_attention_heads=cfg.text_heads,
        max_position_embeddings=cfg.max_tokens,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        projection_dim=cfg.text_width,
    )
    return CLIPTextModel(config)


def build_vae(cfg: PriorConfig):
    from diffusers import AutoencoderKL

    n = len(cfg.vae_channels)
    return AutoencoderKL(
        in_channels=1,
        out_channels=1,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg.vae_channels),
        layers_per_block=1,
        latent_channels=cfg.vae_latent_channels,
        norm_num_groups=8,
        sample_size=32,
    )


def latent_shape(cfg: PriorConfig) -> tuple[int, int, int]:
    """``(channels, h, w)`` of the VAE's latents: each block but the last halves the 32x32 canvas."""
    side = 32 // 2 ** (len(cfg.vae_channels) - 1)
    return cfg.vae_latent_channels, side, side


def build_unet(cfg: PriorConfig):
    from diffusers import UNet2DConditionModel

    n, plain = len(cfg.unet_channels), cfg.unet_plain_levels
    if not 0 <= plain < n:
        raise ValueError(f"unet_plain_levels={plain}: must be at least 0 and below the number of UNet levels "
                         f"({n}, unet_channels={tuple(cfg.unet_channels)}) so that text reaches the UNet")
    attn = [plain <= i < n - 1 for i in range(n)]  # the lowest level has none, as in Stable Diffusion
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn))
    c, side, _ = latent_shape(cfg)
    return UNet2DConditionModel(
        sample_size=side,
        in_channels=c,
        out_channels=c,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=tuple(cfg.unet_channels),
        layers_per_block=cfg.unet_layers_per_block,
        cross_attention_dim=cfg.text_width,
        attention_head_dim=8,
        norm_num_groups=16,
    )


def build_scheduler():
    """DPM-Solver++ (2M) with Karras sigmas over Stable Diffusion's scaled-linear betas."""
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        algorithm_type="dpmsolver++",
        solver_order=2,
        use_karras_sigmas=True,
        prediction_type="epsilon",
        steps_offset=1,
    )


def build_noise_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


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
             "unet_channels", "unet_layers_per_block", "unet_plain_levels", "unet_steps", "unet_batch", "unet_lr", "ema_decay"],
    "decoder": ["decoder_steps", "decoder_lr"],
}


#: the stages whose settings each stage's result depends on (the decoder is fine-tuned from
#: the VAE alone, so more UNet steps leave a finished decoder valid)
STAGE_DEPENDS = {"vae": ["vae"], "latents": ["vae", "latents"], "unet": ["vae", "latents", "unet"],
                 "decoder": ["vae", "decoder"]}


def _stage_fingerprint(cfg: PriorConfig, stage: str) -> dict:
    """The settings that decide ``stage``: its own fields and those of the stages it depends
    on (:data:`STAGE_DEPENDS`), so that changing another stage never invalidates it."""
    d = cfg.to_dict()
    fields = [f for st in STAGE_DEPENDS[stage] for f in STAGE_FIELDS[st]]
    return {"stage": stage, **{f: d[f] for f in fields}}


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
        noise = torch.randn(z0.shape, generator=gen)
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

    from .encoding import resolve_model_path

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


def config_from_report(report: dict) -> PriorConfig:
    """The :class:`PriorConfig` a saved prior was trained with (its ``training_report.json``).
    Reports of the first prior (latents 4x8x8) predate ``vae_latent_channels``."""
    known = {f.name for f in dataclasses.fields(PriorConfig)}
    made = {"vae_latent_channels": 4, **report["config"]}
    return PriorConfig(**{k: v for k, v in made.items() if k in known})


def load_prior(path: str | Path = SHIPPED_PRIOR, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """Load a saved prior (or any diffusers pipeline directory) offline."""
    path = Path(path)
    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(
            f"{path} is not a diffusers pipeline directory (no model_index.json). The embedded prior ships at "
            f"{SHIPPED_PRIOR}; rebuild it with notebooks/00_build_prior.ipynb"
        )
    from .alignment import load_pipeline

    return load_pipeline(path, device, dtype)


# --------------------------------------------------------------------------------------
# Quality of the prior
# --------------------------------------------------------------------------------------
@torch.no_grad()
def vae_reconstruction_psnr(vae, images: torch.Tensor, batch_size: int = 500) -> dict:
    """PSNR (dB, pixels in [0, 1]) of VAE reconstructions (posterior mean, no sampling) of
    ``uint8`` images ``N x 1 x 28 x 28``, measured on the 28x28 image area (the zero padding of
    the 32x32 canvas is excluded). Reports the PSNR of the mean squared error over all images
    and the mean of per-image PSNRs."""
    from .datasets import resize_images

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


def write_model_card(model_dir: str | Path, report: dict, quality: dict, round_trip: str | Path | None = None) -> Path:
    """Write ``README.md`` (the model card) into a saved prior's directory.

    ``round_trip``: the latent-space candidates' results (``benchmarks/vae_candidates.py
    --stage report --out``), shown as the card's round-trip table when the file exists."""
    model_dir = Path(model_dir)
    cfg = report["config"]
    p = report["parameters"]
    q = quality
    shape = "x".join(map(str, latent_shape(config_from_report(report))))
    plain = cfg.get("unet_plain_levels", 0)  # reports of the first prior predate the field
    attention = ("cross-attention at every level but the lowest" if not plain else
                 f"cross-attention in the middle levels and block (none at the {plain} highest-resolution "
                 "level(s) or the lowest)")
    lines = [
        "# fashion-prior: a tiny text-to-image latent diffusion model",
        "",
        "The embedded world's stand-in for SDXL: a standard diffusers `StableDiffusionPipeline` trained",
        "from scratch on a CPU, **only on the `pool` split of Fashion-MNIST (train[0:50000])**, seen",
        "through label-preserving \"web\" transforms so that its distribution is broader than, and",
        "different from, the `target` split (train[50000:60000]) that CoDA distills.",
        "",
        "```python",
        "from diffusers import DiffusionPipeline",
        "pipe = DiffusionPipeline.from_pretrained(\"data/models/fashion-prior\")",
        "images = pipe([\"a photo of a sneaker\"] * 4, num_inference_steps=25, guidance_scale=5.0).images  # 32x32",
        "```",
        "",
        "## Data",
        "- Images: Fashion-MNIST `pool` (50,000 images, 28x28, padded to 32x32). Never `target` or `test`.",
        f"- Web transforms (per image): polarity inverted with p={cfg['invert_p']} (dark item on a light background),",
        f"  random scale {cfg['scale_range'][0]}-{cfg['scale_range'][1]} and random position on the 32x32 canvas,",
        f"  rotation up to +-{cfg['max_rotation_deg']} degrees, gamma {cfg['gamma_range'][0]}-{cfg['gamma_range'][1]}.",
        f"- Captions: templates ({', '.join(repr(t) for t in CAPTION_TEMPLATES)}) filled with the class name",
        "  (half of the time) or a synonym (\"running shoe\", \"handbag\", \"jumper\", ...); with probability",
        f"  {cfg['background_caption_p']} the background is named (\"... on a black/white background\");",
        f"  {cfg['caption_dropout']:.0%} of captions are empty (for classifier-free guidance).",
        "",
        "## Architecture",
        "| part | what | parameters |",
        "|---|---|---|",
        f"| tokenizer | CLIP-style byte-pair encoding trained on the caption corpus, {report['vocab_size']} tokens, max {cfg['max_tokens']} | - |",
        f"| text encoder | `CLIPTextModel`, width {cfg['text_width']}, {cfg['text_layers']} layers, {cfg['text_heads']} heads | {p['text_encoder']:,} |",
        f"| VAE | `AutoencoderKL`, 1x32x32 -> {shape}, block channels {tuple(cfg['vae_channels'])}, scaling factor {report['scaling_factor']:.4f} | {p['vae']:,} |",
        f"| UNet | `UNet2DConditionModel`, {shape} latents, block channels {tuple(cfg['unet_channels'])}, {attention} | {p['unet']:,} |",
        "| scheduler | `DPMSolverMultistepScheduler`: DPM-Solver++ 2M, Karras sigmas, SD's scaled-linear betas 0.00085-0.012, 1000 steps, epsilon prediction | - |",
        "",
        "## Training",
        "",
        "Wall-clock minutes of this build (" + ", ".join(f"{k} trained on {v}" for k, v in report.get("trained_on", {}).items())
        + "); on a CPU they depend on what else ran beside the build. `benchmarks/bench_prior.py` times every "
        "stage with the build's own code and projects a build on an idle machine.",
        "",
        f"- VAE: {cfg['vae_steps']} steps, batch {cfg['vae_batch']}, AdamW lr {cfg['vae_lr']} (one-cycle), L1 + MSE + {cfg['vae_kl_weight']} KL; {report['vae_seconds'] / 60:.1f} min.",
        f"- Latent cache: {cfg['latent_passes']} web-transformed passes over the pool, posterior mean and std.",
        f"- Text encoder + UNet jointly: {cfg['unet_steps']} steps, batch {cfg['unet_batch']}, AdamW lr {cfg['unet_lr']} (one-cycle),",
        f"  epsilon objective, EMA {cfg['ema_decay']} (the EMA weights are shipped); {report['unet_seconds'] / 60:.1f} min.",
        f"- Decoder fine-tuning (encoder frozen, so latents and UNet stay valid): {cfg['decoder_steps']} steps, AdamW lr {cfg['decoder_lr']},",
        f"  L1 + MSE on posterior means; {report.get('decoder_seconds', 0) / 60:.1f} min.",
        f"- Seed {cfg['seed']}. Rebuild with `notebooks/00_build_prior.ipynb` (`make prior`).",
        "",
        "## Measured quality",
        f"- VAE reconstruction PSNR on `target` ({q['psnr']['n']:,} images, 28x28 area, posterior mean): "
        f"**{q['psnr']['mean_image_psnr_db']:.2f} dB** averaged over images; {q['psnr']['psnr_db']:.2f} dB from the "
        "MSE pooled over all images.",
        f"- Prompt fidelity: of {q['fidelity']['n']:,} unguided samples (prompt = class name, 25 DPM-Solver++ steps, CFG {q['cfg']}),",
        f"  **{q['fidelity']['fidelity']:.1%}** are assigned to the prompted class by the judge "
        f"(ConvNet-3 trained on web-transformed `pool`, {q['judge']['heldout_web_pool_accuracy']:.1%} accurate on held-out web-transformed pool).",
        "  Per class: " + ", ".join(f"{n} {v:.0%}" for n, v in zip(q["class_names"], q["fidelity"]["per_class"].values())) + ".",
        f"- Frechet distance in the judge's penultimate features: unguided samples vs `target` **{q['fd_unguided_target']:.4f}**;",
        f"  floor (two disjoint sets of `target` images of the same sizes) **{q['fd_floor']:.4f}**.",
        "",
        "![samples](../../../figures/prior_samples.png)",
    ]
    if round_trip is not None and Path(round_trip).is_file():
        import pandas as pd

        from .report import round_trip_table

        lines += ["", "## The latent space: what the VAE round trip costs", "",
                  f"This prior's latents are {shape}. Passing real images through the VAE and back bounds what any "
                  "generator in this latent space can reach (the study's `vae_coda_r` and `vae_random_real` rows). "
                  "This VAE and the latent-space candidates measured against it (`benchmarks/vae_candidates.py`; "
                  "a candidate is shipped only when its round trip costs at most 1 point):", "",
                  round_trip_table(pd.read_csv(round_trip), "results/vae_round_trip.csv")]
    path = model_dir / "README.md"
    with atomic_write(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path
