"""How long does ``make prior`` take on this machine? Each training stage of the embedded prior,
timed for a few steps with the build's own code, projected to the build's step counts.

For each configuration this script runs :func:`coda_utils.prior.train_prior` with every stage cut
to ``--steps`` steps (the same networks, batch sizes and data path as the build; checkpoints in a
temporary folder) on the first ``--pool`` pool images, then projects each stage to its full
length: seconds per step x the build's steps (the first step, which pays one-time costs, is not
counted), and the pool encoding per image x 50,000 (the second run encodes ``--pool`` more images). It prints one table with the projected
minutes per stage and the total against the 2-hour budget of a CPU build (issue 13).

Configurations (:data:`CONFIGS`): ``v1`` (the first prior: 4x8x8 latents, UNet 48-96-96 with
cross-attention at 8x8 and 4x4), ``v2-naive`` (4x16x16 latents, VAE 32-64, the first prior's UNet
as it is, so cross-attention over 16x16) and ``v2`` (the same latents, UNet 32-64-96 with a plain
16x16 level), ``v3`` (the shipped prior: ``v2`` and its offset-noise fine-tuning). Timings on a shared
machine are upper bounds; run it alone for the number.

    OMP_NUM_THREADS=2 python benchmarks/bench_prior.py --threads 2 --steps 6
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from coda_utils import datasets, prior

#: the prior configurations timed (everything else as PriorConfig's defaults, the second prior's)
CONFIGS = {
    "v1": prior.FIRST_PRIOR,
    # the first prior's UNet moved to 16x16 latents as it is: cross-attention over 256 positions
    "v2-naive": {**prior.SECOND_PRIOR, "unet_channels": (48, 96, 96), "unet_plain_levels": 0},
    "v2": prior.SECOND_PRIOR,
    # the shipped prior: the second with its offset-noise fine-tuning
    "v3": {},
}
BUDGET_MIN = 120.0
#: the stages a build times (train_prior's report: "<stage>_seconds")
STAGES = ("vae", "unet", "finetune", "decoder")


def time_config(name: str, steps: int, pool_n: int, device: str) -> dict:
    full = prior.PriorConfig(**CONFIGS[name])
    rows = {}
    # two runs: 1 step per stage on pool_n images, then steps + 1 on 2 x pool_n. The stages draw
    # batches from the pool whatever its size, so their difference is `steps` steps; the rest
    # (pool encoding, tokenizer, saving) differs by the encoding of pool_n images.
    for n, images in ((1, pool_n), (steps + 1, 2 * pool_n)):
        cfg = dataclasses.replace(full, vae_steps=n, unet_steps=n, decoder_steps=n, checkpoint_every=10 ** 6,
                                  finetune_steps=n if full.finetune_steps else 0)
        pool = datasets.load_fashion_mnist("pool").subset(np.arange(images))
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            report = prior.train_prior(cfg, Path(tmp) / "out", pool=pool, progress=False, device=device,
                                       tokenizer_dir=prior.SHIPPED_PRIOR / "tokenizer")
            wall = time.perf_counter() - t0
        rows[n] = {k: report[f"{k}_seconds"] for k in STAGES}
        rows[n]["rest"] = wall - sum(rows[n].values())
    per_step = {k: (rows[steps + 1][k] - rows[1][k]) / steps for k in STAGES}
    encode_per_image = max(rows[steps + 1]["rest"] - rows[1]["rest"], 0.0) / pool_n
    minutes = {
        "vae": per_step["vae"] * full.vae_steps / 60,
        "unet": per_step["unet"] * full.unet_steps / 60,
        "finetune": per_step["finetune"] * full.finetune_steps / 60,
        "decoder": per_step["decoder"] * full.decoder_steps / 60,
        "encode pool": encode_per_image * 50_000 / 60,  # the 50,000 pool images, latent_passes times each
        "other": max(rows[1]["rest"] - encode_per_image * pool_n, 0.0) / 60,  # tokenizer, saving, loading
    }
    return {"config": name, "latents": "x".join(map(str, prior.latent_shape(full))),
            **{f"{k} s/step": round(v, 3) for k, v in per_step.items()},
            **{f"{k} min": round(v, 1) for k, v in minutes.items()}, "total min": round(sum(minutes.values()), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--steps", type=int, default=6, help="timed steps per stage (after one untimed step)")
    ap.add_argument("--pool", type=int, default=2000, help="pool images of the timing runs")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import pandas as pd

    table = pd.DataFrame([time_config(c, args.steps, args.pool, args.device) for c in args.configs])
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"torch threads {torch.get_num_threads()}, device {args.device}, {args.steps} timed steps per stage")
        print(table.to_string(index=False))
    for r in table.to_dict("records"):
        verdict = "within" if r["total min"] <= BUDGET_MIN else "over"
        print(f"{r['config']}: projected build {r['total min']:.0f} min, {verdict} the {BUDGET_MIN:.0f}-minute budget")


if __name__ == "__main__":
    main()
