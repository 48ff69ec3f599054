"""Can the shipped prior learn its background words at all? A short fine-tune as the test.

The shipped prior ignores "on a black / white background" (``benchmarks/prior_text_probe.py``:
the UNet's x0 prediction is the same under either word), although 30 % of its training captions
named the background (``PriorConfig.background_caption_p``). Before a rebuild (hours on a CPU),
this asks whether the words can reach the UNet through its text conditioning at all: it continues
training a copy of the shipped UNet and text encoder for ``--steps`` steps on web-transformed
``pool`` images (the build's own ``web_transform`` and ``make_captions``) with the background named
in ``--background-p`` of the captions, then runs the probe's x0 prediction on the copy. Nothing is
saved or shipped: the copy lives in this process.

    python benchmarks/prior_caption_finetune.py [--steps 300] [--batch 64] [--background-p 1.0] [--images 5000]
    python benchmarks/prior_caption_finetune.py --background-p 0.3 --noise-offset 0.3   # the offset-noise test
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import coda_utils  # noqa: F401  (first: the portable CPU code paths)
import numpy as np
import torch
import torch.nn.functional as F

from coda_utils import datasets
from coda_utils.judge import attribute_fidelity
from coda_utils.vae import encode_images
from coda_utils.prior_build import training_noise
from coda_utils.prior_model import PriorConfig, build_noise_scheduler, make_captions, web_transform
from prior_text_probe import x0_predictions


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(datasets.REPO_ROOT / "data" / "models" / "fashion-prior"))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--background-p", type=float, default=1.0, help="share of captions that name the background")
    ap.add_argument("--images", type=int, default=5000, help="pool images encoded for the fine-tune")
    ap.add_argument("--noise-offset", type=float, default=0.0,
                    help="offset noise (PriorConfig.noise_offset; diffusers' train_text_to_image --noise_offset): a "
                         "per-image, per-channel constant of this std added to the training noise, so the noisy "
                         "latent's mean no longer tells the background at the first timesteps")
    ap.add_argument("--v-prediction", action="store_true",
                    help="train the copy to predict v (SD 2's objective, which weighs the clean image's error at the "
                         "first timesteps far more than epsilon does) and sample it as a v-prediction model")
    ap.add_argument("--per-class", type=int, default=10, help="samples per class for the attribute check")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    from diffusers import DiffusionPipeline

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    pipe = DiffusionPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    cfg = dataclasses.replace(PriorConfig(), background_caption_p=args.background_p)
    prompts = {"black": "a sneaker on a black background", "white": "a sneaker on a white background",
               "class": "a sneaker"}
    before = {(r["t"], r["prompt"]): r for r in x0_predictions(pipe, prompts, 64)}
    names = datasets.load_fashion_mnist("target").prompts
    before_samples = attribute_fidelity(pipe, names, cfg_scales=(5.0,), per_class=args.per_class)

    # 1. the fine-tune's latents: web-transformed pool images, their polarity, their labels
    pool = datasets.load_fashion_mnist("pool")
    pos = np.random.default_rng(0).permutation(len(pool))[:args.images]
    gen = torch.Generator().manual_seed(1)
    t0 = time.perf_counter()
    with torch.no_grad():
        x, inverted = web_transform(pool.load(pos), gen, cfg)
        z = encode_images(pipe, x, batch_size=500, preprocessed=True)
    labels = pool.labels[pos]
    print(f"encoded {len(z)} pool images in {time.perf_counter() - t0:.0f} s; {float(inverted.float().mean()):.0%} inverted")

    # 2. continue training the UNet and the text encoder (epsilon objective, the build's captions)
    unet, te, tok = pipe.unet, pipe.text_encoder, pipe.tokenizer
    noise_sched = build_noise_scheduler()
    params = list(unet.parameters()) + list(te.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-2)
    rng = np.random.default_rng(2)
    unet.train(); te.train()
    t0, running = time.perf_counter(), None
    for step in range(1, args.steps + 1):
        idx = torch.randint(len(z), (args.batch,), generator=gen)
        caps = make_captions(labels[idx.numpy()].tolist(), inverted[idx].tolist(), rng, cfg)
        ids = tok(caps, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
        noise = training_noise(z[idx].shape, gen, args.noise_offset)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (len(idx),), generator=gen)
        pred = unet(noise_sched.add_noise(z[idx], noise, t), t, encoder_hidden_states=te(ids)[0]).sample
        target = noise_sched.get_velocity(z[idx], noise, t) if args.v_prediction else noise
        loss = F.mse_loss(pred, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        if step % 50 == 0 or step == args.steps:
            print(f"step {step}: loss {running:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    unet.eval(); te.eval()
    if args.v_prediction:
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, prediction_type="v_prediction")

    # 3. the probe on the fine-tuned copy, beside the shipped prior's
    after = {(r["t"], r["prompt"]): r for r in x0_predictions(pipe, prompts, 64)}
    print(f"\nx0 from pure noise, frame brightness (-1 black, +1 white); background named in "
          f"{args.background_p:.0%} of the captions, {args.steps} steps:")
    print(f"{'t':>4}  {'prompt':<6} {'shipped':>8} {'fine-tuned':>10}")
    for key in before:
        print(f"{key[0]:>4}  {key[1]:<6} {before[key]['frame']:+8.3f} {after[key]['frame']:+10.3f}")
    after_samples = attribute_fidelity(pipe, names, cfg_scales=(5.0,), per_class=args.per_class)
    print(f"\nsamples at CFG 5 ({args.per_class} per class, the same noise for every prompt): share that obeys / dark share")
    print(f"{'prompt':<8} {'shipped':>16} {'fine-tuned':>16}")
    for (_, b), (_, a) in zip(before_samples.iterrows(), after_samples.iterrows()):
        print(f"{b['prompt']:<8} {b['obeys']:>7.0%} / {b['dark_share']:>4.0%}   {a['obeys']:>7.0%} / {a['dark_share']:>4.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
