"""Small randomly initialized diffusers pipelines built from configs, for tests and benchmarks.

No hub access: tokenizers are trained locally (:func:`coda_utils.prior_model.build_tokenizer`), every
component is built from a config with random weights, as diffusers' own tests do. The SDXL
one has SDXL's structure (two text encoders, the second with a projection, size and crop
conditioning through ``text_time`` embeddings) at any latent size, so the code paths that
real SDXL runs (guidance hook, SDXL conditioning, refiner handoff) can be exercised on a CPU,
and the benchmark can run "SDXL-shaped" models of a chosen width on a GPU.
"""
from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["tiny_sd_pipeline", "tiny_sdxl_pipeline"]


def _tokenizer(work: Path):
    from .prior_model import build_tokenizer

    return build_tokenizer(work, max_tokens=16)


def tiny_sd_pipeline(work: str | Path, seed: int = 0, channels: int = 1, sample_size: int = 8,
                     prediction_type: str = "epsilon"):
    """A tiny Stable-Diffusion-1.x-style pipeline (random weights) with the prior's scheduler."""
    from diffusers import StableDiffusionPipeline

    from .prior_model import PriorConfig, build_scheduler, build_text_encoder, build_unet, build_vae

    torch.manual_seed(seed)
    cfg = PriorConfig(vae_channels=(8, 8, 8), vae_latent_channels=4, unet_channels=(16, 16, 16), text_width=16, text_heads=2)
    tok = _tokenizer(Path(work) / "tokenizer")
    vae = build_vae(cfg)
    if channels != 1:
        from diffusers import AutoencoderKL

        vae = AutoencoderKL(in_channels=channels, out_channels=channels, block_out_channels=(8, 8, 8),
                            down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                            latent_channels=4, norm_num_groups=8, sample_size=sample_size * 4)
    unet = build_unet(cfg)
    unet.register_to_config(sample_size=sample_size)
    sched = build_scheduler()
    sched.register_to_config(prediction_type=prediction_type)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=build_text_encoder(cfg, tok), tokenizer=tok, unet=unet,
                                   scheduler=sched, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_sdxl_pipeline(work: str | Path, seed: int = 0, sample_size: int = 16, width: int = 32,
                       refiner: bool = False):
    """A small SDXL-structured pipeline (random weights): two CLIP text encoders (the second with a
    projection), ``text_time`` added conditioning, a 3-channel VAE with factor 4.

    ``width`` sets the UNet's base channels (32 for CPU tests; 320 gives SDXL's widths). With
    ``refiner=True`` returns ``(base, refiner)`` where the refiner is an
    ``StableDiffusionXLImg2ImgPipeline`` sharing the second text encoder, as SDXL's does.
    """
    from diffusers import (AutoencoderKL, StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from .prior_model import build_scheduler

    torch.manual_seed(seed)
    tok = _tokenizer(Path(work) / "tokenizer")
    hid = 32

    def text_cfg():
        return CLIPTextConfig(vocab_size=len(tok), hidden_size=hid, intermediate_size=2 * hid, num_hidden_layers=2,
                              num_attention_heads=4, max_position_embeddings=16, projection_dim=hid,
                              bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)

    te1, te2 = CLIPTextModel(text_cfg()), CLIPTextModelWithProjection(text_cfg())

    def unet(cross_dim, proj_in):
        return UNet2DConditionModel(
            sample_size=sample_size, in_channels=4, out_channels=4, layers_per_block=1,
            block_out_channels=(width, 2 * width), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4), use_linear_projection=True,
            addition_embed_type="text_time", addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
            projection_class_embeddings_input_dim=proj_in, cross_attention_dim=cross_dim, norm_num_groups=8)

    vae = AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(8, 8, 8),
                        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                        latent_channels=4, norm_num_groups=8, sample_size=sample_size * 4)
    base = StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tok, tokenizer_2=tok,
                                     unet=unet(2 * hid, 6 * 8 + hid), scheduler=build_scheduler())
    base.set_progress_bar_config(disable=True)
    if not refiner:
        return base
    # the refiner conditions on the second encoder only, and on an aesthetic score (5 time ids)
    ref = StableDiffusionXLImg2ImgPipeline(vae=vae, text_encoder=None, text_encoder_2=te2, tokenizer=None,
                                           tokenizer_2=tok, unet=unet(hid, 5 * 8 + hid), scheduler=build_scheduler(),
                                           requires_aesthetics_score=True)
    ref.set_progress_bar_config(disable=True)
    return base, ref
