"""Where the prior's background words are lost: does the UNet's prediction move with them at all?

``benchmarks/prior_attributes.py`` measures that the shipped prior's samples do not follow "on a
black / white background" (issue 27). This probe asks the UNet directly, without the sampler: for
the same noisy latents at a few timesteps, the x0 it predicts under each prompt (decoded, the
brightness of the image's 3-pixel frame, and the share of dark frames), so a prompt the UNet
ignores gives the same numbers as the class name alone. It also samples with a negative prompt
(the opposite background), the prompt engineering an SD user would try next. Run it after a
rebuilt prior (``make prior``) to see whether the words reach the UNet before re-running the study.

    python benchmarks/prior_text_probe.py [--model data/models/fashion-prior] [--n 64] [--per-class 5]
"""
from __future__ import annotations

import argparse

import coda_utils  # noqa: F401  (first: the portable CPU code paths)
import numpy as np
import torch

from coda_utils import datasets
from coda_utils.judge import dark_background, generate_unguided

FRAME = 3


def _frame(images: torch.Tensor) -> torch.Tensor:
    mask = torch.ones(images.shape[-2:], dtype=torch.bool)
    mask[FRAME:-FRAME, FRAME:-FRAME] = False
    return images[..., mask].mean(dim=(1, 2))


@torch.no_grad()
def x0_predictions(pipe, prompts: dict[str, str], n: int, timesteps=(999, 800, 500), seed: int = 0) -> list[dict]:
    """The frame brightness of the decoded x0 the UNet predicts from the same ``n`` noisy latents
    (unit Gaussian noise: the marginal of unit-variance latents at every timestep, no particular
    image in it), one row per (timestep, prompt)."""
    g = torch.Generator().manual_seed(seed)
    unet, vae = pipe.unet, pipe.vae
    c, s = unet.config.in_channels, unet.config.sample_size
    zt = torch.randn(n, c, s, s, generator=g)
    acp = pipe.scheduler.alphas_cumprod
    rows = []
    for t in timesteps:
        a = acp[t].float()
        for name, text in prompts.items():
            ids = pipe.tokenizer([text] * n, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                                 truncation=True, return_tensors="pt").input_ids
            e = unet(zt, torch.full((n,), t), encoder_hidden_states=pipe.text_encoder(ids)[0]).sample
            x0 = (zt - (1 - a).sqrt() * e) / a.sqrt()
            img = vae.decode(x0 / vae.config.scaling_factor).sample.clamp(-1, 1)
            f = _frame(img)
            rows.append({"t": t, "prompt": name, "frame": float(f.mean()), "dark": float((f < 0).float().mean())})
    return rows


@torch.no_grad()
def unet_sensitivity(pipe, pairs: dict[str, tuple[str, str]], n: int = 8, timesteps=(999, 600), seed: int = 0) -> list[dict]:
    """How far the UNet's noise prediction moves when one prompt is swapped for another (L2 norm
    of the difference over ``n`` unit-Gaussian latents), one row per (timestep, pair): a word the
    UNet ignores moves it as little as nothing."""
    g = torch.Generator().manual_seed(seed)
    c, s = pipe.unet.config.in_channels, pipe.unet.config.sample_size
    zt = torch.randn(n, c, s, s, generator=g)

    def eps(text, t):
        ids = pipe.tokenizer([text] * n, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        return pipe.unet(zt, torch.full((n,), t), encoder_hidden_states=pipe.text_encoder(ids)[0]).sample

    return [{"t": t, "pair": name, "moves": float((eps(a, t) - eps(b, t)).norm())}
            for t in timesteps for name, (a, b) in pairs.items()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(datasets.REPO_ROOT / "data" / "models" / "fashion-prior"))
    ap.add_argument("--n", type=int, default=64, help="noisy latents per timestep (x0 probe)")
    ap.add_argument("--per-class", type=int, default=5, help="samples per class (negative-prompt sampling)")
    ap.add_argument("--cfg", type=float, nargs="+", default=[5.0, 10.0])
    args = ap.parse_args(argv)
    from diffusers import DiffusionPipeline

    torch.set_num_threads(1)
    pipe = DiffusionPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    name = "sneaker"
    prompts = {"black": f"a {name} on a black background", "white": f"a {name} on a white background",
               "class": f"a {name}", "empty": ""}
    print(f"x0 predicted from pure noise ({args.n} latents), frame of the decoded image (-1 black, +1 white):")
    print(f"{'t':>4}  {'prompt':<6} {'frame':>7} {'dark share':>10}")
    for r in x0_predictions(pipe, prompts, args.n):
        print(f"{r['t']:>4}  {r['prompt']:<6} {r['frame']:+7.3f} {r['dark']:>10.2f}")
    pairs = {"black vs white": (prompts["black"], prompts["white"]), "black vs class": (prompts["black"], prompts["class"]),
             "sneaker vs sandal": ("a sneaker", "a sandal")}
    print("\nhow far the UNet's noise prediction moves when the prompt changes (L2 over 8 latents):")
    for r in unet_sensitivity(pipe, pairs):
        print(f"  t {r['t']:>4}  {r['pair']:<18} {r['moves']:.3f}")
    classes = datasets.load_fashion_mnist("target").class_names
    labels = np.repeat(np.arange(len(classes)), args.per_class)
    black = [f"a {classes[c]} on a black background" for c in labels]
    white = [f"a {classes[c]} on a white background" for c in labels]
    print(f"\nsamples ({len(labels)}: {args.per_class} per class, 25 steps, the same noise), dark-background share:")
    for cfg in args.cfg:
        plain = dark_background(generate_unguided(pipe, black, guidance_scale=cfg, progress=False)).mean()
        neg = []
        for i in range(0, len(labels)):  # one at a time: the negative prompt is per image
            img = pipe([black[i]], negative_prompt=[white[i]], num_inference_steps=25, guidance_scale=cfg,
                       generator=[torch.Generator().manual_seed(i)], output_type="pt").images
            neg.append((img.clamp(0, 1) * 255).round().to(torch.uint8)[:, :1])
        print(f"  CFG {cfg:g}: 'on a black background' {plain:.0%}; with negative prompt 'on a white background' "
              f"{dark_background(torch.cat(neg)).mean():.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
