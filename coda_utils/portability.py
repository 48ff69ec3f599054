"""Does this CPU compute the study's bits? One hash per stage and per library, on fixed inputs.

:mod:`coda_utils.numerics` pins every library's code path to one portable level, so that the same
lock and seed give the same bytes on any x86-64 CPU. Emulating an older CPU on one machine
(``tests/test_numerics.py``) cannot show what depends on the CPU's vendor or caches: an Intel Xeon
(AVX-512, AMX) and an AMD EPYC (AVX2) once found other UMAP embeddings from the same lock, because
MKL honours only its ``COMPATIBLE`` branch on non-Intel CPUs (the pin named another). This module
is the check that runs on real machines: :func:`fingerprint` hashes

1. ``latents``: the shipped prior's VAE encodes classes 0 and 1 of ``target`` (notebook 01), class 0 goes on;
2. ``standardized``: :func:`coda_utils.discovery.standardize` (step 1 of discovery);
3. ``distances``: the pairwise euclidean distances UMAP computes for a class this small
   (scikit-learn, numpy's BLAS);
4. ``knn``: UMAP's nearest neighbours of those distances (numba);
5. ``graph``: UMAP's fuzzy simplicial set (numba);
6. ``spectral``: UMAP's spectral initialisation of that graph (scipy's ARPACK, scipy's BLAS);
7. ``embedding``: :func:`coda_utils.discovery.run_umap`, the whole of step 2;
8. ``embedding_random_init``: UMAP from a random start (no spectral step: the SGD alone);
9. ``hdbscan``: HDBSCAN's labels of the embedding (step 3), with the cluster sizes (notebook 02's
   settings and class: its stored outputs print the same summary);

then one probe per library on fixed inputs, independent of the chain (:func:`library_probes`):
``numpy_blas`` (OpenBLAS, a matrix product), ``scipy_arpack`` (``eigsh`` of a fixed sparse
Laplacian), ``numpy_math`` (numpy's own exp / log / sin / tanh loops), ``numba_kernels``
(pynndescent's and umap-learn's compiled distance and kNN-smoothing kernels), ``mkl_sgemm``
(PyTorch's matrix products: MKL), ``torch_math`` (PyTorch's exp / sin / log / tanh / erf: ATen and
MKL's vector math), ``onednn_conv`` (PyTorch's convolutions forward and backward: oneDNN's direct
and gemm kernels); and, with ``training=True``, ``train_ipc1`` / ``train_ipc10`` (ConvNet-3 under
the dc protocol, shortened, on the first 1 / 10 real images per class of ``target``: the trained
weights and the accuracy on 1,000 test images).

``results/numerics_fingerprint.csv`` keeps one block of rows per CPU
(``python benchmarks/numerics_fingerprint.py --out results/numerics_fingerprint.csv``);
:func:`differences` compares this machine's rows with it, and ``tests/test_numerics.py`` requires
none, so ``make test`` on a new CPU names the first stage, hence the library, whose bits differ.
"""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np

from coda_utils import io, numerics

__all__ = ["REFERENCE", "fingerprint", "discovery_chain", "library_probes", "training_probes", "machine",
           "read_reference", "differences"]

ROOT = Path(__file__).resolve().parent.parent
#: the committed fingerprints, one block of rows per CPU
REFERENCE = ROOT / "results" / "numerics_fingerprint.csv"
#: the columns that name the machine and the settings of a block of rows
MACHINE_COLUMNS = ("cpu", "flags", "mode", "openblas_core", "mkl_branch")


def _sha(*arrays) -> str:
    """One hash of several arrays: :func:`coda_utils.io.array_sha256` of each, hashed together."""
    if len(arrays) == 1:
        return io.array_sha256(arrays[0])
    return hashlib.sha256(" ".join(io.array_sha256(a) for a in arrays).encode()).hexdigest()[:16]


def _row(stage: str, sha: str, summary: str = "") -> dict:
    return {"stage": stage, "sha256": sha, "summary": summary}


def machine() -> dict:
    """This machine's block columns: CPU model, its instruction-set flags, the numerics mode, the
    OpenBLAS core and the branch MKL runs."""
    s = numerics.settings()
    return {"cpu": s["cpu"].get("model", ""), "flags": " ".join(s["cpu"].get("isa_flags", [])), "mode": s["mode"],
            "openblas_core": s["variables"].get("OPENBLAS_CORETYPE") or "",
            "mkl_branch": numerics.mkl_cnr_branch() or ""}


def discovery_chain(seed: int = 0) -> list[dict]:
    """Stages 1-9 (module docstring): encoding, then discovery's steps, each on the previous
    stage's output of this machine."""
    import torch
    from sklearn.metrics import pairwise_distances
    from sklearn.utils import check_random_state

    from coda_utils import alignment, datasets, discovery, encoding

    torch.set_num_threads(1)
    rows = []
    # 1. encode classes 0 and 1 of target with the shipped prior (class 0 goes on)
    target = datasets.load_fashion_mnist("target")
    data = encoding.limit_dataset(target, class_limit=2)
    pipe = alignment.load_pipeline(ROOT / "data" / "models" / "fashion-prior")
    with tempfile.TemporaryDirectory() as tmp:
        cache = encoding.encode_dataset(data, pipe, Path(tmp) / "latents", progress=False)
        lat = cache.latents(0, dtype="float32")
    rows.append(_row("latents", _sha(lat), f"{lat.shape}"))
    # 2. standardize, with the hyperparameters scaled to target's mean class size as notebook 02 runs them
    x = discovery.standardize(lat)
    hp = discovery.scaled_hyperparameters(float(np.bincount(target.labels).mean()))
    s = discovery.class_settings(x, hp["n_neighbors"], hp["min_cluster_size"])
    rows.append(_row("standardized", _sha(x), f"n_neighbors {s['n_neighbors']}, n_components {s['n_components']}"))
    # 3.-6. UMAP's stages for a small class, as umap-learn runs them
    from umap.spectral import spectral_layout
    from umap.umap_ import fuzzy_simplicial_set, nearest_neighbors

    dmat = pairwise_distances(x, metric="euclidean")
    rows.append(_row("distances", _sha(dmat), f"{dmat.dtype}"))
    knn_i, knn_d, _ = nearest_neighbors(dmat, s["n_neighbors"], "precomputed", {}, False, check_random_state(seed))
    rows.append(_row("knn", _sha(knn_i, knn_d)))
    graph, _, _ = fuzzy_simplicial_set(dmat, s["n_neighbors"], check_random_state(seed), "precomputed",
                                       knn_indices=knn_i, knn_dists=knn_d)
    graph = graph.tocsr()
    graph.sort_indices()
    rows.append(_row("graph", _sha(graph.data, graph.indices, graph.indptr), f"{graph.nnz} edges"))
    init = spectral_layout(x, graph, s["n_components"], check_random_state(seed))
    rows.append(_row("spectral", _sha(init)))
    # 7.-8. the whole UMAP, from the spectral start and from a random one
    emb = discovery.run_umap(x, s["n_neighbors"], s["n_components"], 0.0, seed)
    rows.append(_row("embedding", _sha(emb)))
    import umap

    with discovery._quiet():
        emb_r = umap.UMAP(n_components=s["n_components"], n_neighbors=s["n_neighbors"], min_dist=0.0,
                          metric="euclidean", init="random", random_state=seed).fit_transform(x)
    rows.append(_row("embedding_random_init", _sha(emb_r)))
    # 9. HDBSCAN
    labels, _ = discovery.run_hdbscan(emb, s["min_cluster_size"], 3)
    sizes = sorted(np.bincount(labels[labels >= 0]).tolist(), reverse=True) if (labels >= 0).any() else []
    rows.append(_row("hdbscan", _sha(labels), f"clusters {sizes}, noise {float(np.mean(labels < 0)):.3f}"))
    return rows


def library_probes() -> list[dict]:
    """One probe per library on fixed inputs (module docstring), each a hash of its outputs."""
    import scipy.sparse
    import scipy.sparse.linalg
    import torch

    torch.set_num_threads(1)
    rows = []
    # OpenBLAS (numpy's and scipy's BLAS)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 200))
    rows.append(_row("numpy_blas", _sha(a @ a.T)))
    w = scipy.sparse.random(400, 400, density=0.05, random_state=0, format="csr")
    w = w + w.T
    d = scipy.sparse.diags(1 / np.sqrt(np.asarray(w.sum(1)).ravel() + 1))
    lap = scipy.sparse.eye(400) - d @ w @ d
    vals, vecs = scipy.sparse.linalg.eigsh(lap, 6, which="SM", ncv=30, tol=1e-4, v0=np.ones(400), maxiter=2000)
    rows.append(_row("scipy_arpack", _sha(vals, vecs)))
    # numpy's own loops (its SIMD dispatch), float32 and float64
    t = np.linspace(-6, 6, 100_003)
    outs = [f(t.astype(dt)) for dt in (np.float32, np.float64)
            for f in (np.exp, lambda v: np.log(np.abs(v) + 1e-3), np.sin, np.tanh)]
    rows.append(_row("numpy_math", _sha(*outs)))
    # numba: pynndescent's and umap-learn's compiled kernels (fastmath reductions, exp / log)
    from pynndescent import distances as pd_distances
    from umap.umap_ import smooth_knn_dist

    u, v = rng.standard_normal((2, 200, 50)).astype(np.float32)
    dists = np.array([pd_distances.euclidean(u[i], v[i]) for i in range(200)]
                     + [pd_distances.cosine(u[i], v[i]) for i in range(200)], dtype=np.float64)
    knn = np.sort(np.abs(rng.standard_normal((300, 15))).astype(np.float32), axis=1)
    sigmas, rhos = smooth_knn_dist(knn, 15.0)
    rows.append(_row("numba_kernels", _sha(dists, sigmas, rhos)))
    # PyTorch: MKL's matrix products, ATen's and MKL's vector math, oneDNN's convolutions
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(257, 1031, generator=g), torch.randn(1031, 263, generator=g)
    lin = torch.nn.Linear(1031, 10)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(10, 1031, generator=g))
        lin.bias.zero_()
    xr = x.clone().requires_grad_(True)
    lin(xr).square().sum().backward()
    rows.append(_row("mkl_sgemm", _sha(x @ y, torch.bmm(x[None, :64, :128], y[None, :128, :96]), xr.grad,
                                       lin.weight.grad)))
    s = torch.linspace(-6, 6, 100_003)
    rows.append(_row("torch_math", _sha(torch.exp(s), torch.sin(s), torch.log(s.abs() + 1e-3), torch.tanh(s),
                                        torch.erf(s), torch.sigmoid(s), torch.rsqrt(s.abs() + 1e-3))))
    convs = [torch.nn.Conv2d(1, 128, 3, padding=3), torch.nn.Conv2d(128, 128, 3, padding=1),
             torch.nn.Conv2d(32, 32, 3, stride=2)]
    outs = []
    for conv, shape in zip(convs, [(100, 1, 28, 28), (100, 128, 8, 8), (8, 32, 33, 33)]):
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.1)
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=g) * 0.1)
        inp = torch.randn(shape, generator=g).requires_grad_(True)
        out = conv(inp)
        out.square().sum().backward()
        outs += [out.detach(), inp.grad, conv.weight.grad, conv.bias.grad]
    rows.append(_row("onednn_conv", _sha(*outs)))
    return rows


def training_probes() -> list[dict]:
    """ConvNet-3 under the dc protocol, shortened, on the first 1 and 10 real images per class of
    ``target``: the trained weights and the accuracy on the first 1,000 test images."""
    from coda_utils import datasets, evaluation

    target, test = datasets.load_fashion_mnist("target"), datasets.load_fashion_mnist("test")
    test_x, test_y = test.load(np.arange(1000)), test.labels[:1000]
    rows = []
    for ipc, epochs in ((1, 30), (10, 15)):
        pick = np.concatenate([np.flatnonzero(target.labels == c)[:ipc] for c in range(target.num_classes)])
        r = evaluation.train_and_evaluate(target.load(pick), target.labels[pick], test_x, test_y, "convnet3",
                                          evaluation.get_protocol("dc", ipc, epochs=epochs), seed=0,
                                          progress=False, return_model=True)
        rows.append(_row(f"train_ipc{ipc}", _sha(*[p.detach() for p in r["model"].parameters()]),
                         f"{epochs} epochs, acc {r['acc']:.2f}"))
    return rows


def fingerprint(seed: int = 0, training: bool = True) -> list[dict]:
    """This machine's rows, in order: :func:`discovery_chain`, :func:`library_probes` and (with
    ``training``) :func:`training_probes`, each row with :func:`machine`'s columns."""
    head = machine()
    rows = discovery_chain(seed) + library_probes() + (training_probes() if training else [])
    return [{**head, **r} for r in rows]


def read_reference(path: Path = REFERENCE):
    """The committed fingerprints (a DataFrame, one block of rows per CPU); a clear error if the
    file is missing."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no reference fingerprints; write them with "
                                f"python benchmarks/numerics_fingerprint.py --out {path}")
    return pd.read_csv(path, keep_default_na=False, dtype=str)


def differences(rows: list[dict], reference) -> list[str]:
    """Where ``rows`` (this machine's) differ from every block of ``reference`` in the portable
    mode: one line per (block, stage), in stage order, naming both machines; empty when every stage
    of every block matches. A stage a block lacks is not compared."""
    ref = reference[reference["mode"] == "portable"]
    out = []
    for _, block in ref.groupby(["cpu", "flags"], sort=False):
        have, where = dict(zip(block["stage"], block["sha256"])), block.iloc[0]
        for r in rows:
            if r["stage"] in have and have[r["stage"]] != r["sha256"]:
                out.append(f"{r['stage']}: {r['sha256']} here ({r.get('cpu', '')}, MKL {r.get('mkl_branch', '')}) "
                           f"against {have[r['stage']]} on {where['cpu']} ({where['flags']}, MKL "
                           f"{where.get('mkl_branch', '?')}) {r.get('summary', '')}".rstrip())
    return out
