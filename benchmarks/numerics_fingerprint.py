"""Where do two CPUs stop computing the same bits? One fingerprint per stage, per CPU.

On an Intel Xeon (AVX-512, AMX) the pinned code paths of ``coda_utils.numerics`` give the same VAE
reconstructions as on the AMD EPYC that stored the notebooks, and the same networks trained on one
real image per class, but other UMAP embeddings and, on ten images per class, networks that differ
in the hundredths of a point (README, "The same numbers on any x86-64 CPU"). Emulating another CPU
on one machine does not show either, so this script runs the stages one at a time on fixed inputs
and prints a hash of each stage's output; run on two machines, the first stage whose hash differs
is where the unpinned difference enters. Discovery's stages take the previous stage's output of
the same machine:

1. ``latents``: the shipped prior's VAE encodes classes 0 and 1 of ``target`` (notebook 01's encoding), class 0 goes on;
2. ``standardized``: :func:`coda_utils.discovery.standardize` (step 1 of discovery);
3. ``distances``: the pairwise euclidean distances UMAP computes for a class this small
   (scikit-learn, numpy's BLAS);
4. ``knn``: UMAP's nearest neighbours of those distances (numba);
5. ``graph``: UMAP's fuzzy simplicial set (numba);
6. ``spectral``: UMAP's spectral initialisation of that graph (scipy's ARPACK, scipy's BLAS);
7. ``embedding``: :func:`coda_utils.discovery.run_umap`, the whole of step 2;
8. ``embedding_random_init``: UMAP from a random start (no spectral step: the SGD alone);
9. ``hdbscan``: HDBSCAN's labels of the embedding (step 3), with the cluster sizes (notebook 02's
   settings and class, so its stored outputs name this summary for the machine that stored them);

plus probes on fixed inputs, independent of the chain: ``numpy_blas`` (a matrix product),
``scipy_arpack`` (``eigsh`` of a fixed sparse Laplacian), and ``train_ipc1`` / ``train_ipc10``
(ConvNet-3 under the dc protocol, shortened, on the first 1 / 10 real images per class of
``target``: the trained weights and the accuracy on 1,000 test images; PyTorch, oneDNN, MKL).

Usage (about two minutes, one thread; ``--out`` keeps one block of rows per CPU model)::

    python benchmarks/numerics_fingerprint.py --out results/numerics_fingerprint.csv
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import coda_utils  # noqa: E402,F401  first: pins the portable code paths (coda_utils.numerics) before torch loads


def _sha(*arrays) -> str:
    """One hash of several arrays: :func:`coda_utils.io.array_sha256` of each, hashed together."""
    from coda_utils import io

    if len(arrays) == 1:
        return io.array_sha256(arrays[0])
    return hashlib.sha256(" ".join(io.array_sha256(a) for a in arrays).encode()).hexdigest()[:16]


def fingerprint(seed: int = 0) -> list[dict]:
    """The stages' hashes on this machine, in order (module docstring)."""
    import numpy as np
    import scipy.sparse
    import scipy.sparse.linalg
    import torch
    from sklearn.metrics import pairwise_distances
    from sklearn.utils import check_random_state

    from coda_utils import alignment, datasets, discovery, encoding

    torch.set_num_threads(1)
    rows = []

    def add(stage, sha, summary=""):
        rows.append({"stage": stage, "sha256": sha, "summary": summary})
        print(f"{stage:24s} {sha}  {summary}", flush=True)

    # 1. encode classes 0 and 1 of target with the shipped prior (class 0 goes on)
    target = datasets.load_fashion_mnist("target")
    data = encoding.limit_dataset(target, class_limit=2)
    pipe = alignment.load_pipeline(ROOT / "data" / "models" / "fashion-prior")
    with tempfile.TemporaryDirectory() as tmp:
        cache = encoding.encode_dataset(data, pipe, Path(tmp) / "latents", progress=False)
        lat = cache.latents(0, dtype="float32")
    add("latents", _sha(lat), f"{lat.shape}")
    # 2. standardize
    x = discovery.standardize(lat)
    # the hyperparameters scaled to target's mean class size, as notebook 02 runs them (its stored
    # outputs print this class's HDBSCAN clusters: compare the last stage's summary with them)
    hp = discovery.scaled_hyperparameters(float(np.bincount(target.labels).mean()))
    s = discovery.class_settings(x, hp["n_neighbors"], hp["min_cluster_size"])
    add("standardized", _sha(x), f"n_neighbors {s['n_neighbors']}, n_components {s['n_components']}")
    # 3.-6. UMAP's stages for a small class, as umap-learn runs them
    from umap.spectral import spectral_layout
    from umap.umap_ import fuzzy_simplicial_set, nearest_neighbors

    dmat = pairwise_distances(x, metric="euclidean")
    add("distances", _sha(dmat), f"{dmat.dtype}")
    knn_i, knn_d, _ = nearest_neighbors(dmat, s["n_neighbors"], "precomputed", {}, False, check_random_state(seed))
    add("knn", _sha(knn_i, knn_d))
    graph, _, _ = fuzzy_simplicial_set(dmat, s["n_neighbors"], check_random_state(seed), "precomputed",
                                       knn_indices=knn_i, knn_dists=knn_d)
    graph = graph.tocsr()
    graph.sort_indices()
    add("graph", _sha(graph.data, graph.indices, graph.indptr), f"{graph.nnz} edges")
    init = spectral_layout(x, graph, s["n_components"], check_random_state(seed))
    add("spectral", _sha(init))
    # 7.-8. the whole UMAP, from the spectral start and from a random one
    emb = discovery.run_umap(x, s["n_neighbors"], s["n_components"], 0.0, seed)
    add("embedding", _sha(emb))
    import umap

    with discovery._quiet():
        emb_r = umap.UMAP(n_components=s["n_components"], n_neighbors=s["n_neighbors"], min_dist=0.0,
                          metric="euclidean", init="random", random_state=seed).fit_transform(x)
    add("embedding_random_init", _sha(emb_r))
    # 9. HDBSCAN
    labels, _ = discovery.run_hdbscan(emb, s["min_cluster_size"], 3)
    sizes = sorted(np.bincount(labels[labels >= 0]).tolist(), reverse=True) if (labels >= 0).any() else []
    add("hdbscan", _sha(labels), f"clusters {sizes}, noise {float(np.mean(labels < 0)):.3f}")
    # BLAS probes on fixed inputs
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 200))
    add("numpy_blas", _sha(a @ a.T))
    w = scipy.sparse.random(400, 400, density=0.05, random_state=0, format="csr")
    w = w + w.T
    d = scipy.sparse.diags(1 / np.sqrt(np.asarray(w.sum(1)).ravel() + 1))
    lap = scipy.sparse.eye(400) - d @ w @ d
    vals, vecs = scipy.sparse.linalg.eigsh(lap, 6, which="SM", ncv=30, tol=1e-4, v0=np.ones(400), maxiter=2000)
    add("scipy_arpack", _sha(vals, vecs))
    # training on real images: one and ten per class of target, a short dc protocol
    from coda_utils import evaluation

    test = datasets.load_fashion_mnist("test")
    test_x, test_y = test.load(np.arange(1000)), test.labels[:1000]
    for ipc, epochs in ((1, 30), (10, 15)):
        pick = np.concatenate([np.flatnonzero(target.labels == c)[:ipc] for c in range(target.num_classes)])
        r = evaluation.train_and_evaluate(target.load(pick), target.labels[pick], test_x, test_y, "convnet3",
                                          evaluation.get_protocol("dc", ipc, epochs=epochs), seed=0,
                                          progress=False, return_model=True)
        add(f"train_ipc{ipc}", _sha(*[p.detach() for p in r["model"].parameters()]),
            f"{epochs} epochs, acc {r['acc']:.2f}")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None,
                    help="CSV to update (e.g. results/numerics_fingerprint.csv): this CPU's rows replace its earlier ones")
    args = ap.parse_args(argv)

    import pandas as pd

    from coda_utils import io, numerics

    s = numerics.settings()
    cpu = s["cpu"]
    head = {"cpu": cpu.get("model", ""), "flags": " ".join(cpu.get("isa_flags", [])), "mode": s["mode"],
            "openblas_core": s["variables"].get("OPENBLAS_CORETYPE") or ""}
    print(f"{head['cpu']} ({head['flags']}), numerics {head['mode']}, OpenBLAS core {head['openblas_core']}")
    df = pd.DataFrame([{**head, **r} for r in fingerprint(args.seed)])
    if args.out is not None:
        if args.out.exists():
            old = pd.read_csv(args.out, keep_default_na=False)
            df = pd.concat([old[(old["cpu"] != head["cpu"]) | (old["flags"] != head["flags"])], df], ignore_index=True)
        with io.atomic_write(args.out, "w") as fh:
            df.to_csv(fh, index=False)
        wide = df.pivot_table(index="stage", columns="cpu", values="sha256", aggfunc="first", sort=False)
        print(f"\nwrote {args.out}\n{wide.to_string()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
