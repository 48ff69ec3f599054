"""Where Distribution Discovery spends its time, and how well the faster PCA option agrees.

Two workloads, each run per class exactly as :func:`coda_utils.discovery.discover_class` does
(standardize -> [PCA] -> UMAP 50-d -> HDBSCAN -> exactly-IPC post-processing):

* ``embedded``: Fashion-MNIST ``target`` encoded with the shipped prior's VAE (10 classes x ~1,000
  latents of 4x16x16 = 1,024 numbers), reference hyperparameters scaled to the class size;
* ``imagenet``: one synthetic ImageNet-sized class, 1,300 latents of 4x128x128 = 65,536 numbers
  (SDXL at 1024 px) stored as float16, drawn from a mixture of 12 Gaussians of unequal sizes on
  32-dimensional subspaces plus isotropic noise; reference hyperparameters (85 / 55).

The numba compile of UMAP is timed separately, on a first UMAP call with 200 points, in this
fresh process. Agreement of the PCA option with the reference path (same seed) is the adjusted
Rand index (ARI) of HDBSCAN's labels (noise as its own label) and of the final IPC clusters, and
the share of representatives both paths pick. For scale, the same numbers are given for the
reference path with another UMAP seed (how much the seed alone moves the result).

Usage::

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/bench_discovery.py [--skip-imagenet]
        [--model data/models/fashion-prior] [--ipc 10] [--classes 10] [--embedded-pca 64] [--imagenet-pca 256]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(fn, *a, **k):
    t0 = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t0


def compile_umap() -> float:
    """Seconds of the first UMAP call in this process (dominated by numba's compile)."""
    from coda_utils.discovery import run_umap

    x = np.random.default_rng(0).normal(size=(200, 256)).astype(np.float32)
    return timed(run_umap, x, 15, 50, 0.0, 0)[1]


def agreement(ref, other) -> dict:
    from sklearn.metrics import adjusted_rand_score

    return {"ari_hdbscan": adjusted_rand_score(ref.hdbscan_labels, other.hdbscan_labels),
            "ari_final": adjusted_rand_score(ref.labels, other.labels),
            "rep_overlap": len(np.intersect1d(ref.positions, other.positions)) / len(ref.positions)}


def run_variants(latents: list[np.ndarray], ipc: int, nn: int, mcs: int, pca_dims: int) -> dict:
    """Reference path, PCA path and reference with seed 1 on every class; per-stage seconds."""
    from coda_utils.discovery import discover_class

    out = {"reference": [], f"pca{pca_dims}": [], "seed1": []}
    for z in latents:
        out["reference"].append(discover_class(z, ipc, nn, mcs, 3, seed=0))
        out[f"pca{pca_dims}"].append(discover_class(z, ipc, nn, mcs, 3, seed=0, pca_dims=pca_dims))
        out["seed1"].append(discover_class(z, ipc, nn, mcs, 3, seed=1))
    return out


def stage_rows(name: str, runs: dict, n_classes: int) -> list[str]:
    rows = []
    for variant, ds in runs.items():
        if variant == "seed1":
            continue
        t = {k: sum(d.timings.get(k, 0.0) for d in ds) for k in ("standardize", "pca", "umap", "hdbscan", "postprocess")}
        total = sum(t.values())
        rows.append(f"{name:<10} {variant:<10} {n_classes:>3} {t['standardize']:>8.2f} {t['pca']:>7.2f} {t['umap']:>8.2f} "
                    f"{t['hdbscan']:>8.2f} {t['postprocess']:>8.2f} {total:>8.2f} {total / n_classes:>9.2f}")
    return rows


def agreement_rows(name: str, runs: dict, truth: list[np.ndarray] | None = None) -> list[str]:
    from sklearn.metrics import adjusted_rand_score

    rows = []
    ref = runs["reference"]
    for variant, ds in runs.items():
        if variant == "reference":
            continue
        a = [agreement(r, d) for r, d in zip(ref, ds)]
        mean = {k: float(np.mean([x[k] for x in a])) for k in a[0]}
        rows.append(f"{name:<10} {variant + ' vs ref':<16} {mean['ari_hdbscan']:>11.3f} {mean['ari_final']:>9.3f} "
                    f"{mean['rep_overlap']:>11.1%}")
    if truth is not None:  # the mixture's components (final clusters: IPC of them, so splits lower the ARI)
        for variant, ds in runs.items():
            ari_h = np.mean([adjusted_rand_score(t, d.hdbscan_labels) for t, d in zip(truth, ds)])
            ari_f = np.mean([adjusted_rand_score(t, d.labels) for t, d in zip(truth, ds)])
            rows.append(f"{name:<10} {variant + ' vs truth':<16} {ari_h:>11.3f} {ari_f:>9.3f} {'':>11}")
    return rows


def embedded_latents(model: str, n_classes: int) -> list[np.ndarray]:
    from coda_utils.datasets import load_fashion_mnist
    from coda_utils.encoding import encode_dataset, limit_dataset, load_vae

    data = limit_dataset(load_fashion_mnist("target"), class_limit=n_classes)
    with tempfile.TemporaryDirectory() as tmp:
        cache = encode_dataset(data, load_vae(model), Path(tmp) / "latents", encoder_id=model, progress=False)
        return [cache.latents(c).copy() for c in range(cache.num_classes)]


def imagenet_class(n: int = 1300, dim: int = 65536, k: int = 12, rank: int = 32, seed: int = 0):
    """A synthetic SDXL-sized class: float16 latents n x 4 x 128 x 128 and the true components."""
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.full(k, 2.0))
    sizes = np.maximum(20, np.round(w * n).astype(int))
    sizes[0] += n - sizes.sum()
    truth = np.repeat(np.arange(k), sizes)
    x = np.empty((n, dim), np.float16)
    row = 0
    for j, m in enumerate(sizes):
        mu = rng.normal(size=dim).astype(np.float32) * 0.6
        basis = rng.normal(size=(rank, dim)).astype(np.float32) / np.sqrt(rank)
        z = rng.normal(size=(m, rank)).astype(np.float32) @ basis + rng.normal(size=(m, dim)).astype(np.float32) * 0.5
        x[row:row + m] = (mu + z).astype(np.float16)
        row += m
    return x.reshape(n, 4, 128, 128), truth


def main() -> None:
    from coda_utils.discovery import scaled_hyperparameters
    from coda_utils.prior import SHIPPED_PRIOR

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(SHIPPED_PRIOR))
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--imagenet-ipc", type=int, default=50)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--embedded-pca", type=int, default=64)
    ap.add_argument("--imagenet-pca", type=int, default=256)
    ap.add_argument("--skip-imagenet", action="store_true")
    ap.add_argument("--skip-embedded", action="store_true")
    args = ap.parse_args()

    t_compile = compile_umap()
    stage, agree = [], []
    if not args.skip_embedded:
        lat = embedded_latents(args.model, args.classes)
        hp = scaled_hyperparameters(np.mean([len(z) for z in lat]))
        print(f"embedded: {len(lat)} classes, {sum(len(z) for z in lat):,} latents {lat[0].shape[1:]}, "
              f"n_neighbors {hp['n_neighbors']}, min_cluster_size {hp['min_cluster_size']}, ipc {args.ipc}", flush=True)
        runs = run_variants(lat, args.ipc, hp["n_neighbors"], hp["min_cluster_size"], args.embedded_pca)
        stage += stage_rows("embedded", runs, len(lat))
        agree += agreement_rows("embedded", runs)
    if not args.skip_imagenet:
        (x, truth), t_gen = timed(imagenet_class)
        print(f"imagenet: 1 synthetic class, {len(x):,} latents {x.shape[1:]} float16 ({x.nbytes / 2**20:.0f} MiB, "
              f"made in {t_gen:.1f} s), {truth.max() + 1} true components, ipc {args.imagenet_ipc}", flush=True)
        runs = run_variants([x], args.imagenet_ipc, 85, 55, args.imagenet_pca)
        stage += stage_rows("imagenet", runs, 1)
        agree += agreement_rows("imagenet", runs, [truth])

    print(f"\nnumba compile (first UMAP call in the process, 200 points): {t_compile:.1f} s")
    print("\nseconds per stage (sum over classes); UMAP excludes the compile above")
    print(f"{'workload':<10} {'variant':<10} {'cls':>3} {'standard.':>8} {'pca':>7} {'umap':>8} {'hdbscan':>8} "
          f"{'postproc':>8} {'total':>8} {'per class':>9}")
    print("\n".join(stage))
    print("\nagreement with the reference path (mean over classes); 'vs truth': with the synthetic mixture's components")
    print(f"{'workload':<10} {'comparison':<16} {'ARI hdbscan':>11} {'ARI final':>9} {'shared reps':>11}")
    print("\n".join(agree))


if __name__ == "__main__":
    main()
