"""The embedded world's text-to-image prior: a tiny Stable-Diffusion-style latent diffusion model.

It is trained **only on the ``pool`` split** of Fashion-MNIST, seen through label-preserving
"web" transforms (polarity inversion, scale, position, rotation, gamma) and free-text
captions, so that, like SDXL for ImageNet, it is a general prior whose distribution differs
from the ``target`` split being distilled (``docs/embedded-world.md``).

The result is a standard diffusers :class:`~diffusers.StableDiffusionPipeline` (CLIP-style
tokenizer and text encoder, :class:`~diffusers.AutoencoderKL` 32x32 -> 4x16x16 (since the second
prior, :data:`SECOND_PRIOR`; the first, :data:`FIRST_PRIOR`, had 4x8x8 latents and cost real images
up to 5 points; the shipped one is the second with its UNet and text encoder fine-tuned with offset
noise, so that it follows its background words),
:class:`~diffusers.UNet2DConditionModel`, DPM-Solver++ 2M Karras scheduler with Stable
Diffusion's scaled-linear betas) saved with ``save_pretrained`` and loaded offline with
``DiffusionPipeline.from_pretrained(path)``.

Training runs in stages (tokenizer -> VAE -> pool latents -> UNet -> offset-noise fine-tuning ->
decoder -> pipeline), each of which
checkpoints into the output directory and resumes after an interruption. A checkpoint made
with other settings is refused, never silently reused.

The prior's code is in three modules, and this one re-exports the names that notebook 00, the tests
and the benchmarks use from them:

==============================  =================================================================
:mod:`coda_utils.prior_model`   :class:`PriorConfig`, the web transforms and captions, the
                                components (``build_*``), :func:`load_prior`
:mod:`coda_utils.prior_build`   :func:`train_prior` (resumable stages), :func:`train_autoencoder`,
                                :func:`vae_reconstruction_psnr`
:mod:`coda_utils.prior_card`    :func:`write_model_card`
==============================  =================================================================

The prior stands apart from the study (``docs/layout.md``): no module of the study imports it
(they load the saved pipeline through :func:`coda_utils.alignment.load_pipeline`), and its model and
build use only the base, the data and the method's stages.
"""
from __future__ import annotations

from .prior_build import (STAGE_DEPENDS, STAGE_FIELDS, StaleCheckpointError, encode_pool_latents, finetune_decoder,
                          finetune_unet, prepare_tokenizer, train_autoencoder, train_prior, train_unet, train_vae,
                          vae_reconstruction_psnr)
from .prior_card import write_model_card
from . import prior_build, prior_card, prior_model
from .prior_model import (BACKGROUND_SUFFIX, CAPTION_TEMPLATES, FIRST_PRIOR, SECOND_PRIOR, SHIPPED_PRIOR, SYNONYMS, PriorConfig,
                          build_noise_scheduler, build_scheduler, build_text_encoder, build_tokenizer, build_unet,
                          build_vae, caption_corpus, config_from_report, count_parameters, latent_shape, load_prior,
                          make_captions, web_transform)

__all__ = [*prior_model.__all__, *prior_build.__all__, *prior_card.__all__]
