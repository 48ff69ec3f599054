"""The embedded prior's model card: the ``README.md`` of a saved prior (:func:`write_model_card`).

It renders the build's report and measured quality, and the latent-space candidates' round-trip
table as the README shows it (:func:`coda_utils.report.round_trip_table`), which is why the card
sits with the presentation, apart from the build (:mod:`coda_utils.prior_build`).
"""
from __future__ import annotations

from pathlib import Path

from .io import atomic_write
from .prior_model import CAPTION_TEMPLATES, config_from_report, latent_shape

__all__ = ["write_model_card"]


def write_model_card(model_dir: str | Path, report: dict, quality: dict, round_trip: str | Path | None = None,
                     attributes: str | Path | None = None) -> Path:
    """Write ``README.md`` (the model card) into a saved prior's directory.

    ``round_trip``: the latent-space candidates' results (``benchmarks/vae_candidates.py
    --stage report --out``), shown as the card's round-trip table when the file exists.
    ``attributes``: whether the prior follows its prompt's background words
    (``benchmarks/prior_attributes.py --out``), shown as the card's attribute table when the file
    exists."""
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
        *([f"- Offset-noise fine-tuning of the text encoder + UNet: {cfg['finetune_steps']} steps, batch {cfg['finetune_batch']}, "
           f"AdamW lr {cfg['finetune_lr']} (constant, no EMA),",
           f"  training noise plus a per-image, per-channel constant of std {cfg['finetune_noise_offset']}, the background "
           f"named in {cfg['finetune_background_caption_p']:.0%} of the captions; {report.get('finetune_seconds', 0) / 60:.1f} min.",
           "  Without it the noisy latent of the first timesteps tells the background, and the prior ignored its",
           "  background words (`benchmarks/prior_text_probe.py`)."] if cfg.get("finetune_steps") else []),
        f"- Decoder fine-tuning (encoder frozen, so latents and UNet stay valid): {cfg['decoder_steps']} steps, AdamW lr {cfg['decoder_lr']},",
        f"  L1 + MSE on posterior means; {report.get('decoder_seconds', 0) / 60:.1f} min.",
        *([f"- The VAE, UNet and decoder stages are the second prior's (sha256 {report['base_prior']['sha256'][:12]}, "
           "`git show 654a04d:data/models/fashion-prior`),",
           "  which the fine-tuning started from (`make prior PRIOR_BASE=...`); their times are that build's."]
          if "base_prior" in report else []),
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
    if attributes is not None and Path(attributes).is_file():
        import pandas as pd

        from .report import attribute_table

        lines += ["", "## Attribute fidelity: does it follow the words beside the class name?", "",
                  "The study's text-prompt baseline asks for \"a {class} on a black background\" (every Fashion-MNIST "
                  "image has one); the captions name the background for a share of the images (above). Measured by "
                  "`benchmarks/prior_attributes.py` (`coda_utils.judge.attribute_fidelity`):", "",
                  attribute_table(pd.read_csv(attributes), "results/attribute_fidelity.csv")]
    path = model_dir / "README.md"
    with atomic_write(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path
