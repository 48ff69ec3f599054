"""The model side of stage 1: a text-to-image model's VAE, and its map between images and UNet latents.

The feature of an image is exactly what the UNet denoises: the VAE posterior **mean** (no
sampling) times ``vae.config.scaling_factor`` (minus ``shift_factor`` first, for the VAEs of
SD3 / Flux that declare one; SD 1.x, SDXL and the embedded prior do not). For SDXL at
1024x1024 that is 4x128x128 = 65,536 numbers per image; for the embedded prior (32x32) 4x16x16.

:func:`load_vae` loads a model's VAE offline (:func:`resolve_model_path`: a shipped model from any
working directory); :func:`encode_images` and :func:`decode_latents` map ``uint8`` images to UNet
latents and back at the VAE's native size (:func:`native_size`); :func:`vae_fingerprint` names a
VAE by its config and weights (a retrained VAE is another latent space). The per-class latent
cache of a whole dataset, built on these, is :mod:`coda_utils.encoding`.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .datasets import REPO_ROOT
from .images import resize_images

__all__ = [
    "get_vae",
    "load_vae",
    "resolve_model_path",
    "vae_fingerprint",
    "native_size",
    "preprocess",
    "encode_images",
    "decode_latents",
]


def get_vae(vae_or_pipe: Any):
    """The ``AutoencoderKL`` of a diffusers pipeline (anything with ``.vae``), or the VAE itself."""
    vae = getattr(vae_or_pipe, "vae", vae_or_pipe)
    if not hasattr(vae, "encode") or not hasattr(vae, "config"):
        raise TypeError(f"expected a diffusers pipeline or an AutoencoderKL, got {type(vae_or_pipe).__name__}")
    return vae


def load_vae(model: str | os.PathLike, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """Load only the VAE of a model, offline when it is a local path.

    ``model`` is a diffusers pipeline directory or hub id (its ``vae/`` subfolder is used, e.g.
    ``data/models/fashion-prior`` or ``stabilityai/stable-diffusion-xl-base-1.0``) or a bare VAE
    (a directory with the VAE's ``config.json``, or a hub id such as
    ``madebyollin/sdxl-vae-fp16-fix``).
    """
    from diffusers import AutoencoderKL

    p = resolve_model_path(model)
    if p.exists():
        if (p / "vae" / "config.json").is_file():
            vae = AutoencoderKL.from_pretrained(p, subfolder="vae", local_files_only=True, torch_dtype=dtype,
                                                low_cpu_mem_usage=False)
        elif (p / "config.json").is_file():
            vae = AutoencoderKL.from_pretrained(p, local_files_only=True, torch_dtype=dtype,
                                                low_cpu_mem_usage=False)
        else:
            raise FileNotFoundError(
                f"{p} holds neither a pipeline (vae/config.json) nor a VAE (config.json). The embedded prior "
                "ships at data/models/fashion-prior; rebuild it with notebooks/00_build_prior.ipynb"
            )
    elif p.is_absolute() or str(model).startswith(".") or str(model).count("/") > 1:
        raise FileNotFoundError(f"model {model} not found (looked in {Path.cwd()} and {REPO_ROOT}); the embedded prior "
                                "ships at data/models/fashion-prior, rebuild it with notebooks/00_build_prior.ipynb")
    else:
        try:
            vae = AutoencoderKL.from_pretrained(str(model), subfolder="vae", torch_dtype=dtype, low_cpu_mem_usage=False)
        except (OSError, EnvironmentError):
            vae = AutoencoderKL.from_pretrained(str(model), torch_dtype=dtype, low_cpu_mem_usage=False)
    return _to(vae, device, dtype).eval()


def resolve_model_path(model: str | os.PathLike) -> Path:
    """``model`` as a path: as given if it exists, else relative to the repository root (so that
    ``data/models/fashion-prior`` works from any working directory, e.g. under nbval); a hub id
    that exists nowhere locally comes back unchanged."""
    p = Path(model)
    if p.exists() or p.is_absolute():
        return p
    q = REPO_ROOT / p
    return q if q.exists() else p


def _config_dict(module) -> dict:
    """A diffusers or transformers model's config without library versions and paths."""
    cfg = module.config
    cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    return {k: v for k, v in cfg.items() if not k.startswith("_") and k != "transformers_version"}


def vae_fingerprint(vae) -> dict:
    """Hashes of the VAE's config and weights (first 16 hex digits of SHA-256 each).

    The weights hash matters: a retrained VAE has the same config but a different latent space.
    """
    cfg = json.dumps(_config_dict(vae), sort_keys=True, default=str)
    h = hashlib.sha256()
    for name, t in sorted(vae.state_dict().items()):
        h.update(name.encode())
        t = t.detach().to("cpu").contiguous().reshape(-1)
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return {"config_sha256": hashlib.sha256(cfg.encode()).hexdigest()[:16], "weights_sha256": h.hexdigest()[:16]}


def native_size(vae) -> tuple[int, int]:
    """The pipeline's native pixel resolution: ``vae.config.sample_size`` as ``(H, W)``."""
    s = vae.config.sample_size
    if isinstance(s, (list, tuple)):
        return int(s[0]), int(s[1])
    return int(s), int(s)


def preprocess(images: torch.Tensor, in_channels: int) -> torch.Tensor:
    """``uint8`` ``N x C x H x W`` -> float in ``[-1, 1]`` with the VAE's number of channels."""
    x = images.float() / 127.5 - 1.0
    c = x.shape[1]
    if c == in_channels:
        return x
    if c == 1:
        return x.expand(-1, in_channels, -1, -1).contiguous()
    if c == 3 and in_channels == 1:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
    raise ValueError(f"cannot feed {c}-channel images to a VAE with {in_channels} input channels")


def _to(vae, device, dtype):
    """Move the VAE only when needed (diffusers warns on every dtype cast)."""
    if vae.device != torch.device(device) or vae.dtype != dtype:
        vae.to(device=device, dtype=dtype)
    return vae


def _latent_affine(vae) -> tuple[float, float]:
    scale = float(vae.config.scaling_factor)
    shift = getattr(vae.config, "shift_factor", None)
    return scale, float(shift) if shift is not None else 0.0


@torch.inference_mode()
def encode_images(vae_or_pipe: Any, images: torch.Tensor, batch_size: int = 256, device: str | torch.device = "cpu",
                  dtype: torch.dtype = torch.float32, preprocessed: bool = False,
                  resize: str | None = None) -> torch.Tensor:
    """Encode images to UNet latents: ``(posterior mean - shift) * scaling_factor``.

    Args:
        images: ``uint8`` ``N x C x H x W``, or (``preprocessed=True``) float in ``[-1, 1]`` with
            the VAE's channels at its resolution. ``uint8`` images of another size are brought to
            the VAE's native size with ``resize`` (default: ``"pad"`` if smaller, else ``"squash"``).
        device, dtype: where and in which precision the VAE runs (the VAE is moved there).
    Returns:
        float32 latents on the CPU, ``N x latent_channels x h x w``.
    """
    vae = _to(get_vae(vae_or_pipe), device, dtype)
    scale, shift = _latent_affine(vae)
    size = native_size(vae)
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size]
        if not preprocessed:
            if tuple(x.shape[-2:]) != size:
                smaller = x.shape[-2] <= size[0] and x.shape[-1] <= size[1]
                x = resize_images(x, size, resize or ("pad" if smaller else "squash"))
            x = preprocess(x, int(vae.config.in_channels))
        x = x.to(device=device, dtype=dtype)
        mean = vae.encode(x).latent_dist.mean
        out.append(((mean.float() - shift) * scale).cpu())
    return torch.cat(out) if out else torch.empty(0)


@torch.inference_mode()
def decode_latents(vae_or_pipe: Any, latents: torch.Tensor | np.ndarray, batch_size: int = 256) -> torch.Tensor:
    """Decode UNet latents (numpy or torch, any device) back to ``uint8`` images on the CPU (the
    inverse map of :func:`encode_images`)."""
    vae = get_vae(vae_or_pipe)
    scale, shift = _latent_affine(vae)
    z = latents.detach().float() if isinstance(latents, torch.Tensor) else torch.as_tensor(np.asarray(latents, dtype=np.float32))
    out = []
    for i in range(0, len(z), batch_size):
        zb = (z[i:i + batch_size] / scale + shift).to(vae.device, vae.dtype)
        x = vae.decode(zb).sample.float().cpu()
        out.append(((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))
    return torch.cat(out)


# --------------------------------------------------------------------------------------
