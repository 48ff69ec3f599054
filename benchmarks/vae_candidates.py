"""Which latent space for the embedded prior? The VAE round trip of real sets, per candidate.

For each candidate latent shape this script

1. trains the VAE stages of the prior alone (VAE, then decoder fine-tuning; the same code and
   checkpoints as ``make prior``, resumable, in ``<work>/<candidate>``) on ``pool``;
2. measures its reconstruction PSNR on ``target`` (posterior mean, the 28x28 image area);
3. passes real sets of an existing run (CoDA R and random real, several selection seeds)
   through it and back (:func:`coda_utils.baselines.vae_round_trip`);
4. trains ConvNet-3 networks (dc protocol) on the round-trip sets with the same network seeds
   as the run's own evaluations of the untouched sets, and reports the round-trip cost as a
   paired contrast over selection seeds (``vae_coda_r - coda_r``, ``vae_random_real -
   random_real``) with its 95 % interval.

The candidate ``v1`` is the first shipped prior's VAE (4x8x8): rebuilt from its config, or taken
from a saved copy of that prior with ``--copy-from``.

Usage (one process per candidate shares the two cores; ``--stage train`` first)::

    python benchmarks/vae_candidates.py --candidates c16 --stage train
    python benchmarks/vae_candidates.py --candidates c16 --stage evaluate --ipc 10 --seeds 0 1 2
    python benchmarks/vae_candidates.py --stage report --out results/vae_round_trip.csv
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from coda_utils import baselines, datasets, evaluation, prior, rundir, setfolder, stats
from coda_utils.io import read_json, write_json

#: the latent shapes tried (everything else as the first prior, prior.FIRST_PRIOR)
CANDIDATES = {
    "v1": {"vae_latent_channels": 4, "decoder_steps": 1000},   # 4x8x8, the first shipped prior
    "c8": {"vae_latent_channels": 8, "decoder_steps": 1000},   # 8x8x8
    "c16": {"vae_latent_channels": 16, "decoder_steps": 0},  # 16x8x8 (as SD3 and FLUX: 4 -> 16 channels), VAE stage alone
    "v2": {"vae_latent_channels": 16, "decoder_steps": 5000},  # c16's encoder, its decoder fine-tuned 5x longer
    # a finer latent grid instead of more channels: 4x16x16 (the same 1024 numbers as 16x8x8, downsampling 2)
    "f2": {"vae_channels": (32, 64), "vae_latent_channels": 4, "decoder_steps": 0},
    # f2's encoder, its decoder fine-tuned as in the first prior: the second (shipped) prior's latent space
    "f2d": {"vae_channels": (32, 64), "vae_latent_channels": 4, "decoder_steps": 1000},
}
CONTRASTS = (stats.Contrast("vae_coda_r", "coda_r", "what does the VAE cost R?"),
             stats.Contrast("vae_random_real", "random_real", "what does the VAE cost random real?"))


def candidate_config(name: str) -> prior.PriorConfig:
    if name not in CANDIDATES:
        raise SystemExit(f"--candidates: unknown candidate {name!r}; choose from {sorted(CANDIDATES)}")
    return prior.PriorConfig(**{**prior.FIRST_PRIOR, **CANDIDATES[name]})


def train(name: str, work: Path, copy_from: Path | None = None) -> None:
    """Train a candidate's VAE stages (or, with ``copy_from``, take the VAE of that saved prior,
    e.g. the first shipped prior for ``v1``) and measure its PSNR on ``target``."""
    from diffusers import AutoencoderKL

    cfg = candidate_config(name)
    if copy_from is not None:
        vae = AutoencoderKL.from_pretrained(copy_from, subfolder="vae").eval()
        if vae.config.latent_channels != cfg.vae_latent_channels:
            raise SystemExit(f"--copy-from {copy_from}: its VAE has {vae.config.latent_channels} latent channels, "
                             f"candidate {name} {cfg.vae_latent_channels}")
        report = read_json(copy_from / "training_report.json")
        info = {k: report[k] for k in ("vae_seconds", "decoder_seconds")}
    else:
        vae, info = prior.train_autoencoder(cfg, work / name, progress=False)
    psnr = prior.vae_reconstruction_psnr(vae, datasets.load_fashion_mnist("target").load())
    vae.save_pretrained(work / name / "vae")
    write_json(work / name / "quality.json", {"candidate": name, "latent_shape": prior.latent_shape(cfg),
                                               "parameters": prior.count_parameters(vae), **psnr,
                                               "vae_seconds": info["vae_seconds"],
                                               "decoder_seconds": info["decoder_seconds"]})
    print(f"{name}: latents {prior.latent_shape(cfg)}, PSNR {psnr['mean_image_psnr_db']:.2f} dB "
          f"(VAE {info['vae_seconds']:.0f} s, decoder {info['decoder_seconds']:.0f} s)", flush=True)


def evaluate(name: str, work: Path, run: rundir.RunDir, ipc: int, seeds: list[int], epochs: int, precision: str) -> None:
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(work / name / "vae").eval()
    target = datasets.load_fashion_mnist("target")
    test = datasets.load_fashion_mnist("test")
    test_x, test_y = test.load(), test.labels
    for seed in seeds:
        for method, source in baselines.ROUND_TRIP.items():
            src = run.set_dir(source, ipc, seed)
            if source == "random_real":
                baselines.random_real_set(target, ipc, seed, src)
            out = baselines.vae_round_trip(src, work / name / "sets" / run.set_dir(method, ipc, seed).name, vae, method)
            x, y, _ = setfolder.read_set(out, classes=target.classes)
            t0 = time.perf_counter()
            evaluation.evaluate(method, x, y, test_x, test_y, ipc=ipc, repeats=1, selection_seed=seed, epochs=epochs,
                                precision=precision, out_csv=work / name / "results.csv", progress=False)
            print(f"{name} {method} ipc {ipc} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)


def report(work: Path, run: rundir.RunDir, out: Path | None) -> pd.DataFrame:
    base = pd.concat([evaluation.read_results(run.results(m, ipc)) for m in ("coda_r", "random_real")
                      for ipc in (1, 10, 50) if run.results(m, ipc).is_file()], ignore_index=True)
    rows = []
    for qfile in sorted(work.glob("*/quality.json")):
        q = read_json(qfile)
        res_file = qfile.parent / "results.csv"
        row = {"candidate": q["candidate"], "latent_shape": "x".join(map(str, q["latent_shape"])),
               "psnr_db": q["mean_image_psnr_db"], "vae_parameters": q["parameters"]}
        if not res_file.is_file():
            rows.append(row)
            continue
        ours = evaluation.read_results(res_file)
        # the untouched set's networks of the same selection seeds and IPC (a paired contrast)
        keys = ours.assign(method=ours["method"].map(baselines.ROUND_TRIP))[["method", "ipc", "selection_seed", "epochs"]]
        same = base.merge(keys.drop_duplicates(), on=["method", "ipc", "selection_seed", "epochs"])
        both = pd.concat([ours, same], ignore_index=True)
        table = stats.contrasts(both, CONTRASTS)
        for r in table.to_dict("records"):
            rows.append({**row, "ipc": r["ipc"], "epochs": r["epochs"], "contrast": r["contrast"], "seeds": r["n_pairs"],
                         "cost": r["diff"], "low": r["low"], "high": r["high"]})
    df = pd.DataFrame(rows)
    if out is not None and len(df):
        out.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(out, index=False, float_format="%.4f")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidates", nargs="+", default=list(CANDIDATES))
    ap.add_argument("--stage", choices=["train", "evaluate", "report"], required=True)
    ap.add_argument("--work", type=Path, default=Path("runs/prior-candidates"))
    ap.add_argument("--run", type=Path, default=Path("runs/full"),
                    help="the run whose R and random-real sets (and their evaluations, the baseline) are used")
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="report: write the table as CSV")
    ap.add_argument("--copy-from", type=Path, default=None, help="train: take the VAE of this saved prior instead")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run = rundir.RunDir(args.run)
    if args.stage == "report":
        report(args.work, run, args.out)
        return
    for name in args.candidates:
        if args.stage == "train":
            train(name, args.work, args.copy_from)
        else:
            evaluate(name, args.work, run, args.ipc, args.seeds, args.epochs, args.precision)


if __name__ == "__main__":
    main()
