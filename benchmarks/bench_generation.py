"""Guided generation throughput: images/second at several batch sizes, and the ratio to batch 1.

Usage::

    python benchmarks/bench_generation.py                      # the embedded prior on this CPU
    python benchmarks/bench_generation.py --model sdxl-shaped --device cuda --dtype float16 \
        --batch-sizes 1 8 32 --images 64                         # an SDXL-shaped random model on a GPU
    python benchmarks/bench_generation.py --model stabilityai/stable-diffusion-xl-base-1.0 --device cuda

Every image is CoDA-guided (gamma 0.05, 90 % of 25 DPM-Solver++ steps, CFG 5) toward a random
representative latent; seeds depend only on the image index, so every batch size generates
the same images. The first batch of each size is a warm-up and is not timed.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from coda_utils.alignment import GuidanceConfig, generate, sample_seed


def load(model: str, device: str, dtype: torch.dtype):
    if model == "sdxl-shaped":
        from coda_utils.tiny_pipelines import tiny_sdxl_pipeline

        pipe = tiny_sdxl_pipeline(tempfile.mkdtemp(), sample_size=128, width=320)
    else:
        from coda_utils.prior import SHIPPED_PRIOR, load_prior

        pipe = load_prior(SHIPPED_PRIOR if model == "embedded" else model)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device, dtype)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded", help="embedded | sdxl-shaped | a diffusers directory or hub id")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--images", type=int, default=64, help="timed images per batch size")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = load(args.model, args.device, getattr(torch, args.dtype))
    size = pipe.unet.config.sample_size
    g = torch.Generator().manual_seed(0)
    z_all = torch.randn(args.images + max(args.batch_sizes), 4, size, size, generator=g)
    cfg = GuidanceConfig()
    print(f"model {args.model}, {args.device}, {args.dtype}, latents 4x{size}x{size}, {args.steps} steps, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'batch':>6} {'images':>7} {'seconds':>8} {'img/s':>8} {'vs batch 1':>11}")
    base = None
    for bs in args.batch_sizes:
        warm = list(range(bs))
        generate(pipe, ["a photo"] * bs, [sample_seed(0, 0, i) for i in warm], z_all[:bs], cfg, 5.0, args.steps)
        n = (args.images // bs) * bs or bs
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(0, n, bs):
            generate(pipe, ["a photo"] * bs, [sample_seed(0, 0, j) for j in range(i, i + bs)], z_all[i:i + bs], cfg,
                     5.0, args.steps)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        rate = n / dt
        base = base or rate
        print(f"{bs:>6} {n:>7} {dt:>8.2f} {rate:>8.2f} {rate / base:>10.2f}x")


if __name__ == "__main__":
    main()
