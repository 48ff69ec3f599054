"""Where the prior's background words are lost: does the UNet's prediction move with them at all?

``benchmarks/prior_attributes.py`` measures that the shipped prior's samples do not follow "on a
black / white background" (issue 27). This probe asks the UNet directly, without the sampler: for
the same noisy latents at a few timesteps, the x0 it predicts under each prompt (decoded, the
brightness of the image's 3-pixel frame, and the share of dark frames), so a prompt the UNet
ignores gives the same numbers as the class name alone. It also samples with a negative prompt
(the opposite background), the prompt engineering an SD user would try next. Run it after a
rebuilt prior (``make prior``) to see whether the words reach the UNet before re-running the study.

It then measures why they do not (:func:`coda_utils.judge.background_leak`,
:func:`coda_utils.judge.noise_decides_background`): how well the background can be read off a
noisy training latent's per-channel means at the schedule's first timesteps (where the sampler
decides it), and whether, sampled from the same initial noise, "on a black background" and "on a
white background" give the same background, and how well the initial noise's per-channel means
predict it. ``--out`` writes every number (the README's ``prior-text-probe`` block reads it).

    python benchmarks/prior_text_probe.py [--model data/models/fashion-prior] [--n 64] [--per-class 5]
    python benchmarks/prior_text_probe.py --out results/prior_text_probe.json   # ~6 min on 2 cores
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import coda_utils  # noqa: F401  (first: the portable CPU code paths)
import numpy as np
import torch

from coda_utils import datasets, io
from coda_utils.judge import background_leak, dark_background, generate_unguided, noise_decides_background
from coda_utils.prior_model import SECOND_PRIOR, PriorConfig, config_from_report

FRAME = 3


def _frame(images: torch.Tensor) -> torch.Tensor:
    mask = torch.ones(images.shape[-2:], dtype=torch.bool)
    mask[FRAME:-FRAME, FRAME:-FRAME] = False
    return images[..., mask].mean(dim=(1, 2))


def _pure_noise(pipe, n: int, seed: int) -> torch.Tensor:
    """``n`` unit-Gaussian latents of the UNet's shape (no particular image in them)."""
    c, s = pipe.unet.config.in_channels, pipe.unet.config.sample_size
    return torch.randn(n, c, s, s, generator=torch.Generator().manual_seed(seed))


def _predict(pipe, zt: torch.Tensor, t: int, text: str) -> torch.Tensor:
    """The UNet's output for ``zt`` at timestep ``t`` under the prompt ``text`` (the pipeline's own
    prompt encoding, no classifier-free guidance)."""
    cond, _ = pipe.encode_prompt([text] * len(zt), zt.device, 1, False)
    return pipe.unet(zt, torch.full((len(zt),), t), encoder_hidden_states=cond).sample


@torch.no_grad()
def x0_predictions(pipe, prompts: dict[str, str], n: int, timesteps=(999, 800, 500), seed: int = 0) -> list[dict]:
    """The frame brightness of the decoded x0 the UNet predicts from the same ``n`` noisy latents
    (unit Gaussian noise: the marginal of unit-variance latents at every timestep, no particular
    image in it), one row per (timestep, prompt)."""
    vae = pipe.vae
    zt = _pure_noise(pipe, n, seed)
    acp = pipe.scheduler.alphas_cumprod
    rows = []
    for t in timesteps:
        a = acp[t].float()
        for name, text in prompts.items():
            out = _predict(pipe, zt, t, text)
            if pipe.scheduler.config.prediction_type == "v_prediction":
                x0 = a.sqrt() * zt - (1 - a).sqrt() * out
            else:
                x0 = (zt - (1 - a).sqrt() * out) / a.sqrt()
            img = vae.decode(x0 / vae.config.scaling_factor).sample.clamp(-1, 1)
            f = _frame(img)
            rows.append({"t": t, "prompt": name, "frame": float(f.mean()), "dark": float((f < 0).float().mean())})
    return rows


@torch.no_grad()
def unet_sensitivity(pipe, pairs: dict[str, tuple[str, str]], n: int = 8, timesteps=(999, 600), seed: int = 0) -> list[dict]:
    """How far the UNet's noise prediction moves when one prompt is swapped for another (L2 norm
    of the difference over ``n`` unit-Gaussian latents), one row per (timestep, pair): a word the
    UNet ignores moves it as little as nothing."""
    zt = _pure_noise(pipe, n, seed)
    return [{"t": t, "pair": name, "moves": float((_predict(pipe, zt, t, a) - _predict(pipe, zt, t, b)).norm())}
            for t in timesteps for name, (a, b) in pairs.items()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(datasets.REPO_ROOT / "data" / "models" / "fashion-prior"))
    ap.add_argument("--n", type=int, default=64, help="noisy latents per timestep (x0 probe)")
    ap.add_argument("--per-class", type=int, default=5, help="samples per class (negative-prompt sampling)")
    ap.add_argument("--cfg", type=float, nargs="+", default=[5.0, 10.0])
    ap.add_argument("--leak-n", type=int, default=2000, help="pool images for the noisy-latent readout")
    ap.add_argument("--same-noise-per-class", type=int, default=20,
                    help="samples per class under both opposite prompts, from the same noise")
    ap.add_argument("--out", type=Path, default=None, help="write every number here (JSON), e.g. results/prior_text_probe.json")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    from diffusers import DiffusionPipeline

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    found = {"model": Path(args.model).name}
    pipe = DiffusionPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    name = "sneaker"
    prompts = {"black": f"a {name} on a black background", "white": f"a {name} on a white background",
               "class": f"a {name}", "empty": ""}
    print(f"x0 predicted from pure noise ({args.n} latents), frame of the decoded image (-1 black, +1 white):")
    print(f"{'t':>4}  {'prompt':<6} {'frame':>7} {'dark share':>10}")
    found["x0"] = x0_predictions(pipe, prompts, args.n)
    for r in found["x0"]:
        print(f"{r['t']:>4}  {r['prompt']:<6} {r['frame']:+7.3f} {r['dark']:>10.2f}")
    pairs = {"black vs white": (prompts["black"], prompts["white"]), "black vs class": (prompts["black"], prompts["class"]),
             "sneaker vs sandal": ("a sneaker", "a sandal")}
    print("\nhow far the UNet's noise prediction moves when the prompt changes (L2 over 8 latents):")
    found["sensitivity"] = unet_sensitivity(pipe, pairs)
    for r in found["sensitivity"]:
        print(f"  t {r['t']:>4}  {r['pair']:<18} {r['moves']:.3f}")
    classes = datasets.load_fashion_mnist("target").class_names
    labels = np.repeat(np.arange(len(classes)), args.per_class)
    black = [f"a {classes[c]} on a black background" for c in labels]
    white = [f"a {classes[c]} on a white background" for c in labels]
    print(f"\nsamples ({len(labels)}: {args.per_class} per class, 25 steps, the same noise), dark-background share:")
    found["negative_prompt"] = []
    for cfg in args.cfg:
        plain = dark_background(generate_unguided(pipe, black, guidance_scale=cfg, progress=False)).mean()
        neg = []
        for i in range(0, len(labels)):  # one at a time: the negative prompt is per image
            img = pipe([black[i]], negative_prompt=[white[i]], num_inference_steps=25, guidance_scale=cfg,
                       generator=[torch.Generator().manual_seed(i)], output_type="pt").images
            neg.append((img.clamp(0, 1) * 255).round().to(torch.uint8)[:, :1])
        negative = dark_background(torch.cat(neg)).mean()
        found["negative_prompt"].append({"cfg": cfg, "dark_plain": float(plain), "dark_negative": float(negative), "n": len(labels)})
        print(f"  CFG {cfg:g}: 'on a black background' {plain:.0%}; with negative prompt 'on a white background' "
              f"{negative:.0%}")

    # why: the noisy latent tells the background by itself at the first timesteps, and the sampler's noise decides it
    report = Path(args.model) / "training_report.json"
    built = config_from_report(io.read_json(report)) if report.is_file() else PriorConfig(**SECOND_PRIOR)
    offset = built.finetune_noise_offset if built.finetune_steps else built.noise_offset  # its last training noise
    leak = background_leak(pipe, datasets.load_fashion_mnist("pool"), n=args.leak_n, noise_offset=offset)
    found["leak"] = leak
    print(f"\nthe background (polarity) read off a noisy training latent's 4 channel means (offset noise {offset:g}; "
          f"{leak['n']} web images, "
          f"5-fold logistic regression, chance {leak['chance']:.0%}):")
    for t, acc in leak["accuracy"].items():
        print(f"  t {t:>4}: {acc:.1%}")
    same = noise_decides_background(pipe, classes, per_class=args.same_noise_per_class)
    found["same_noise"] = same
    print(f"\n{same['n']} samples from the same initial noise under 'on a black background' and 'on a white background' "
          f"(CFG {same['cfg']:g}): the same background in {same['same_background']:.0%}; dark shares "
          f"{same['dark_share']['black']:.0%} / {same['dark_share']['white']:.0%}; the background read off the initial "
          f"noise's 4 channel means: {same['from_noise_means']:.0%} (chance {same['chance']:.0%})")
    found["seconds"] = round(time.perf_counter() - t0, 1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        io.write_json(args.out, found)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
