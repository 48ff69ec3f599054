"""The embedded prior's model: its settings, its training data's "web" view, its components, loading it.

:class:`PriorConfig` decides everything about a build; :func:`web_transform` and :func:`make_captions`
are the "web" images and free-text captions it learns from; ``build_*`` make its diffusers and
transformers components from a config (random weights); :func:`load_prior` loads a saved one.
The build that trains them is :mod:`coda_utils.prior_build`; the overview is :mod:`coda_utils.prior`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .datasets import FASHION_MNIST_CLASSES
from .io import atomic_write

__all__ = [
    "PriorConfig",
    "FIRST_PRIOR",
    "SECOND_PRIOR",
    "SHIPPED_PRIOR",
    "SYNONYMS",
    "CAPTION_TEMPLATES",
    "BACKGROUND_SUFFIX",
    "web_transform",
    "make_captions",
    "caption_corpus",
    "build_tokenizer",
    "build_text_encoder",
    "build_vae",
    "build_unet",
    "build_scheduler",
    "build_noise_scheduler",
    "latent_shape",
    "count_parameters",
    "config_from_report",
    "load_prior",
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
    # offset noise (diffusers' train_text_to_image --noise_offset): the std of a per-image,
    # per-channel constant added to the UNet's training noise. Without it the noisy latent of the
    # first timesteps still tells the background, so the UNet never needs the background words and
    # the sampler's noise decides them (benchmarks/prior_text_probe.py). 0: the shipped prior.
    noise_offset: float = 0.0
    # offset-noise fine-tuning (after the UNet stage): the UNet and text encoder go on training from
    # their EMA weights with offset noise and the background named in finetune_background_caption_p
    # of the captions, at a constant learning rate and without an EMA (0 steps: none, the second
    # prior). The shipped prior is the second prior fine-tuned so, which teaches it its background
    # words (benchmarks/prior_text_probe.py, benchmarks/prior_attributes.py)
    finetune_steps: int = 600
    finetune_batch: int = 64
    finetune_lr: float = 3e-4
    finetune_noise_offset: float = 0.5
    finetune_background_caption_p: float = 1.0
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
FIRST_PRIOR = {"vae_channels": (16, 32, 32), "unet_channels": (48, 96, 96), "unet_plain_levels": 0, "finetune_steps": 0}

#: the second prior (latents 4x16x16, no offset-noise fine-tuning): ``PriorConfig(**SECOND_PRIOR)``;
#: the shipped prior is its weights fine-tuned (``train_prior(..., base_prior=...)``)
SECOND_PRIOR = {"finetune_steps": 0}


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
