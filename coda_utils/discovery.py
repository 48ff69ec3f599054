"""Stage 2 of CoDA: Distribution Discovery, per class (``docs/method.md`` section 2).

For one class with latents ``n x C x h x w``:

1. flatten to ``X`` (n x d) and standardize every dimension (constant dimensions become 0);
2. optionally PCA to ``pca_dims`` dimensions (off by default: the reference path has no PCA);
3. UMAP to 50 dimensions (``min_dist=0.0``, euclidean, fixed ``random_state``);
4. HDBSCAN (``min_cluster_size``, ``min_samples=3``, excess of mass); label -1 is noise;
5. :func:`make_exactly_ipc` turns the clusters into exactly IPC clusters and representatives
   (keep the largest / split / fill from noise / forced split / fallback), recording which
   strategy produced each representative.

The representatives' **original, unstandardized latents** are returned with their positions;
their images form the set R. The procedure always returns exactly IPC distinct real samples:
IPC = class size returns the whole class, degenerate classes (all latents identical) and tiny
classes are handled, and IPC > class size is a ``ValueError``.

All classes run in one process (:func:`discover`), so numba compiles UMAP once (50-70 s on a
slow CPU); everything is deterministic for a seed.
"""
from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass, field
from itertools import combinations
from typing import Sequence

import numpy as np

from .datasets import check_ipc
from .discovery_teaching import noise_fill_table, toy_blobs  # notebook 02's teaching aids

__all__ = [
    "REFERENCE",
    "Cluster",
    "ExactlyIPC",
    "ClassDiscovery",
    "Discovery",
    "standardize",
    "scaled_hyperparameters",
    "noise_factor",
    "run_umap",
    "run_hdbscan",
    "make_exactly_ipc",
    "class_settings",
    "discover_class",
    "load_discovery",
    "load_arrays",
    "discover",
    "umap_2d",
    "toy_blobs",
    "noise_fill_table",
]

#: the reference script's settings, for ~1,300 images per class (ImageNet)
REFERENCE = {"n_neighbors": 85, "min_cluster_size": 55, "min_samples": 3, "n_components": 50, "min_dist": 0.0,
             "class_size": 1300}

STRATEGIES = ("hdbscan", "split", "noise_fill", "forced_split", "fallback_kmeans", "fallback_split", "all", "degenerate")


# --------------------------------------------------------------------------------------
# Small pieces
# --------------------------------------------------------------------------------------
def standardize(x: np.ndarray) -> np.ndarray:
    """Flatten to ``n x d`` float32 and standardize each dimension (zero mean, unit variance).

    Dimensions with (numerically) zero variance become 0 instead of dividing by zero.
    """
    x = np.asarray(x)
    x = x.reshape(len(x), -1)
    mean = x.mean(0, dtype=np.float64)
    std = x.std(0, dtype=np.float64)
    const = std <= 1e-8 * np.maximum(1.0, np.abs(mean))
    std[const] = 1.0
    out = ((x.astype(np.float32) - mean.astype(np.float32)) / std.astype(np.float32)).astype(np.float32, copy=False)
    if const.any():
        out[:, const] = 0.0
    return out


def scaled_hyperparameters(class_size: float, n_neighbors: int = REFERENCE["n_neighbors"],
                           min_cluster_size: int = REFERENCE["min_cluster_size"],
                           reference_size: int = REFERENCE["class_size"]) -> dict[str, int]:
    """Scale the reference ``n_neighbors`` and ``min_cluster_size`` (tuned for ~1,300 images per
    class) linearly to another class size: ~1,000 per class (Fashion-MNIST ``target``) gives 65
    and 42. Both are at least 2."""
    r = float(class_size) / reference_size
    return {"n_neighbors": max(2, int(round(n_neighbors * r))), "min_cluster_size": max(2, int(round(min_cluster_size * r)))}


def noise_factor(ipc: int) -> int:
    """How many noise points per missing cluster the noise fill needs (5 / 3 / 1)."""
    return 5 if ipc <= 10 else 3 if ipc <= 50 else 1


def _distinct_rows(x: np.ndarray) -> int:
    import hashlib

    return len({hashlib.sha1(r).digest() for r in np.ascontiguousarray(x)})


@contextlib.contextmanager
def _quiet():
    """Silence the warnings that the clustering libraries raise on tiny or duplicate data."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _kmeans(points: np.ndarray, init: np.ndarray | int, seed: int, n_init: int = 1):
    """sklearn k-means, single-threaded (bit-reproducible), warnings silenced."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    with _quiet(), threadpool_limits(1):
        k = init if isinstance(init, int) else len(init)
        return KMeans(n_clusters=k, init="k-means++" if isinstance(init, int) else init, n_init=n_init,
                      random_state=seed).fit(points)


def run_umap(x: np.ndarray, n_neighbors: int, n_components: int = 50, min_dist: float = 0.0, seed: int = 0) -> np.ndarray:
    """UMAP as the reference runs it (euclidean, fixed ``random_state``, so single-threaded).

    Inside ``threadpool_limits(1)``: umap-learn's first run (numba's OpenMP layer loading) sets
    the OpenMP pool that PyTorch shares to one thread per core, and every later torch call of the
    process (notebook 05 generates and trains right after discovery) then ran on two threads
    beside the other processes of a run, several times slower; the limit restores the process's
    own count afterwards (UMAP itself runs single-threaded either way: the same embedding)."""
    import umap
    from threadpoolctl import threadpool_limits

    with _quiet(), threadpool_limits(1):
        return umap.UMAP(n_components=n_components, n_neighbors=n_neighbors, min_dist=min_dist, metric="euclidean",
                         random_state=seed).fit_transform(x).astype(np.float32)


def run_hdbscan(points: np.ndarray, min_cluster_size: int, min_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """HDBSCAN labels and membership probabilities; all noise if the library fails (e.g. on
    duplicate points). ``min_cluster_size`` and ``min_samples`` are clamped to what ``points``
    allows."""
    import hdbscan

    n = len(points)
    if n < 3:
        return np.full(n, -1), np.zeros(n)
    mcs = max(2, min(int(min_cluster_size), n))
    ms = max(1, min(int(min_samples), n - 1))
    try:
        with _quiet():
            h = hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=ms, metric="euclidean",
                                cluster_selection_method="eom").fit(np.asarray(points, dtype=np.float64))
        return np.asarray(h.labels_), np.nan_to_num(np.asarray(h.probabilities_, dtype=np.float64))
    except Exception:  # noqa: BLE001 - a failed sub-clustering is "no split", not an error
        return np.full(n, -1), np.zeros(n)


# --------------------------------------------------------------------------------------
# Post-processing: exactly IPC clusters (pure: embedding + HDBSCAN output in, no UMAP)
# --------------------------------------------------------------------------------------
@dataclass(eq=False)
class Cluster:
    """A cluster of a class: member positions (within the class), its representative, and
    the strategy that made it."""

    members: np.ndarray
    rep: int
    strategy: str
    failed_levels: set = field(default_factory=set, repr=False)

    @property
    def size(self) -> int:
        return len(self.members)


@dataclass
class ExactlyIPC:
    """The result of :func:`make_exactly_ipc`; clusters are ordered by size (largest first)."""

    representatives: np.ndarray
    strategies: list[str]
    cluster_sizes: list[int]
    labels: np.ndarray  #: final cluster (0..ipc-1) of every point, -1 if in none
    n_found: int  #: M, clusters HDBSCAN found
    noise_fraction: float
    log: list[str]


def _nearest_member(emb: np.ndarray, members: np.ndarray, centre: np.ndarray) -> int:
    d = ((emb[members] - centre) ** 2).sum(1)
    return int(members[int(np.argmin(d))])


def _two_halves(emb: np.ndarray, members: np.ndarray, km) -> list[tuple[np.ndarray, int]] | None:
    halves = []
    for j in range(2):
        m = members[km.labels_ == j]
        if len(m) == 0:
            return None
        halves.append((m, _nearest_member(emb, m, km.cluster_centers_[j])))
    return halves


def _split(emb: np.ndarray, members: np.ndarray, mcs: int, min_samples: int, seed: int):
    """The reference split: sub-HDBSCAN, then the best-inertia 2-means seeded by pairs of the
    highest-probability points of the (up to) 3 largest sub-clusters. ``None`` if no split."""
    pts = emb[members]
    sub, prob = run_hdbscan(pts, mcs, min_samples)
    ids = [int(l) for l in np.unique(sub) if l >= 0]
    if len(ids) < 2:
        return None
    ids.sort(key=lambda l: (-int((sub == l).sum()), l))
    seeds = []
    for l in ids[:3]:
        m = np.flatnonzero(sub == l)
        seeds.append(int(m[int(np.argmax(prob[m]))]))
    best = None
    for a, b in combinations(seeds, 2):
        if np.array_equal(pts[a], pts[b]):
            continue
        km = _kmeans(pts, pts[[a, b]].astype(np.float64), seed)
        halves = _two_halves(emb, members, km)
        if halves is not None and (best is None or km.inertia_ < best[0]):
            best = (km.inertia_, halves)
    return None if best is None else best[1]


def _fallback_split(emb: np.ndarray, members: np.ndarray, seed: int) -> list[tuple[np.ndarray, int]]:
    """Always splits a cluster of >= 2 members: 2-means seeded by a far-apart pair, or (when
    all members coincide) the first and second half of the members."""
    pts = emb[members].astype(np.float64)
    a = int(np.argmax(((pts - pts.mean(0)) ** 2).sum(1)))
    b = int(np.argmax(((pts - pts[a]) ** 2).sum(1)))
    if not np.array_equal(pts[a], pts[b]):
        halves = _two_halves(emb, members, _kmeans(pts, pts[[a, b]], seed))
        if halves is not None:
            return halves
    h = len(members) // 2
    return [(members[:h], int(members[0])), (members[h:], int(members[h]))]


def _kmeans_groups(emb: np.ndarray, pool: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, int]]:
    """k-means with ``k`` clusters (fewer if ``pool`` has fewer distinct points) on
    ``emb[pool]``; each non-empty cluster with its member nearest to the centre."""
    pts = emb[pool].astype(np.float64)
    k = min(k, _distinct_rows(pts))
    if k <= 1:
        centre = pts.mean(0)
        return [(pool, _nearest_member(emb, pool, centre))]
    km = _kmeans(pts, k, seed, n_init=3)
    out = []
    for j in range(k):
        m = pool[km.labels_ == j]
        if len(m):
            out.append((m, _nearest_member(emb, m, km.cluster_centers_[j])))
    return out


def make_exactly_ipc(embedding: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, ipc: int,
                     min_cluster_size: int, min_samples: int = 3, seed: int = 0, noise_fill: bool = True) -> ExactlyIPC:
    """Turn HDBSCAN's clusters on ``embedding`` into exactly ``ipc`` clusters and representatives.

    Args:
        embedding: ``n x k`` (the 50-d UMAP embedding of the class).
        labels, probabilities: HDBSCAN's output on ``embedding`` (-1 = noise).
        ipc: representatives wanted; ``1 <= ipc <= n``.
        min_cluster_size, min_samples: HDBSCAN's settings, reused for the splits.
        noise_fill: the reference's fill from HDBSCAN's noise (``False``: skipped, so the missing
            representatives come from forced splits of the clusters; an ablation, not the method).
    Steps (``docs/method.md`` section 2, step 5), each representative tagged with its strategy:
        ``hdbscan`` (M >= IPC: the IPC largest clusters, representative = highest membership
        probability), ``split`` (the largest cluster with >= 2 x min_cluster_size members is
        split by sub-HDBSCAN + best-inertia 2-means), ``noise_fill`` (k-means on the noise when
        it has >= missing x f points), ``forced_split`` (splits with min_cluster_size shrunk by
        x0.75 per failed round, floor 2), then the guaranteed fallbacks ``fallback_kmeans``
        (k-means on the points in no cluster, when there are enough of them) and
        ``fallback_split`` (2-means split of the largest cluster). Representatives of k-means
        clusters are the members nearest the k-means centre.
    Returns:
        :class:`ExactlyIPC` with exactly ``ipc`` distinct representatives.
    """
    emb = np.asarray(embedding, dtype=np.float64)
    if emb.ndim == 1:
        emb = emb[:, None]
    n = len(emb)
    check_ipc(ipc, n)
    labels = np.asarray(labels).astype(np.int64)
    probs = np.nan_to_num(np.asarray(probabilities, dtype=np.float64))
    if labels.shape != (n,) or probs.shape != (n,):
        raise ValueError(f"labels and probabilities must have one entry per point ({n})")
    mcs = max(2, int(min_cluster_size))
    log: list[str] = []

    clusters = []
    for l in np.unique(labels[labels >= 0]):
        m = np.flatnonzero(labels == l)
        clusters.append(Cluster(m, int(m[int(np.argmax(probs[m]))]), "hdbscan"))
    n_found = len(clusters)
    noise = np.flatnonzero(labels < 0)

    def by_size(cs):
        return sorted(cs, key=lambda c: (-c.size, c.rep))

    def replace(parent, halves, strategy):
        i = next(i for i, c in enumerate(clusters) if c is parent)
        clusters[i:i + 1] = [Cluster(m, r, strategy) for m, r in halves]

    if n_found > ipc:
        clusters = by_size(clusters)[:ipc]
        log.append(f"kept the {ipc} largest of {n_found} clusters")
    # split: the largest cluster with >= 2 x min_cluster_size members, again and again
    while len(clusters) < ipc:
        cands = [c for c in by_size(clusters) if c.size >= 2 * mcs and mcs not in c.failed_levels]
        if not cands:
            break
        parent = cands[0]
        halves = _split(emb, parent.members, mcs, min_samples, seed)
        if halves is None:
            parent.failed_levels.add(mcs)
            continue
        replace(parent, halves, "split")
        log.append(f"split a cluster of {parent.size} into {halves[0][0].size} + {halves[1][0].size}")
    # fill from noise
    missing = ipc - len(clusters)
    if missing > 0 and not noise_fill:
        log.append("noise fill skipped (noise_fill=False)")
    elif missing > 0:
        f = noise_factor(ipc)
        if len(noise) >= missing * f:
            groups = _kmeans_groups(emb, noise, missing, seed)
            clusters += [Cluster(m, r, "noise_fill") for m, r in groups]
            log.append(f"filled {len(groups)} cluster(s) from {len(noise)} noise points")
        else:
            log.append(f"noise pool too small to fill ({len(noise)} < {missing} x {f})")
    # forced split: shrink min_cluster_size by x0.75 per failed round, floor 2
    cur = mcs
    while len(clusters) < ipc:
        done = False
        for c in [c for c in by_size(clusters) if c.size >= 2 * cur and cur not in c.failed_levels]:
            halves = _split(emb, c.members, cur, min_samples, seed)
            if halves is not None:
                replace(c, halves, "forced_split")
                log.append(f"forced split (min_cluster_size {cur}) of a cluster of {c.size}")
                done = True
                break
            c.failed_levels.add(cur)
        if not done:
            if cur <= 2:
                break
            cur = max(2, int(cur * 0.75))
    # guaranteed fallback: k-means on the points in no cluster, else split the largest cluster
    while len(clusters) < ipc:
        missing = ipc - len(clusters)
        taken = np.zeros(n, bool)
        for c in clusters:
            taken[c.members] = True
        free = np.flatnonzero(~taken)
        if len(free) >= missing:
            groups = _kmeans_groups(emb, free, missing, seed)
            clusters += [Cluster(m, r, "fallback_kmeans") for m, r in groups]
            log.append(f"fallback: k-means on {len(free)} unclustered points -> {len(groups)} cluster(s)")
        else:
            parent = next(c for c in by_size(clusters) if c.size >= 2)  # exists: see the proof below
            replace(parent, _fallback_split(emb, parent.members, seed), "fallback_split")
            log.append(f"fallback: split a cluster of {parent.size}")
        # progress is guaranteed: k-means adds >= 1 cluster; otherwise free < missing means the
        # clusters hold n - free > ipc - missing = len(clusters) points, so one has >= 2 members.

    clusters = by_size(clusters)
    reps = np.array([c.rep for c in clusters], dtype=np.int64)
    assert len(reps) == ipc and len(np.unique(reps)) == ipc, "internal error: representatives not distinct"
    final = np.full(n, -1, dtype=np.int64)
    for k, c in enumerate(clusters):
        final[c.members] = k
    return ExactlyIPC(reps, [c.strategy for c in clusters], [c.size for c in clusters], final, n_found,
                      float(len(noise) / n) if n else 0.0, log)


# --------------------------------------------------------------------------------------
# One class, all classes
# --------------------------------------------------------------------------------------
@dataclass
class ClassDiscovery:
    """Discovery on one class; ``positions`` are within the class (0..n-1)."""

    positions: np.ndarray
    latents: np.ndarray  #: original, unstandardized latents of the representatives
    strategies: list[str]
    cluster_sizes: list[int]
    n_found: int
    noise_fraction: float
    hdbscan_labels: np.ndarray
    labels: np.ndarray  #: final cluster (0..ipc-1) per point, -1 if in none
    embedding: np.ndarray | None
    params: dict
    timings: dict
    log: list[str]

    def diagnostics(self) -> dict:
        return {
            "positions": self.positions.tolist(), "strategies": self.strategies, "cluster_sizes": self.cluster_sizes,
            "clusters_found": self.n_found, "noise_fraction": round(self.noise_fraction, 6),
            "strategy_counts": {s: self.strategies.count(s) for s in STRATEGIES if s in self.strategies},
            "params": self.params, "timings_s": {k: round(v, 3) for k, v in self.timings.items()}, "log": self.log,
            "hdbscan_labels": self.hdbscan_labels.tolist(), "labels": self.labels.tolist(),
        }


def class_settings(x: np.ndarray, n_neighbors: int, min_cluster_size: int,
                   n_components: int = REFERENCE["n_components"]) -> dict:
    """The settings steps 3-5 use on one class's standardized latents ``x`` (``n x d``):
    ``n_neighbors``, ``n_components`` and ``min_cluster_size`` clamped for a small class
    (n_components <= n - 2, n_neighbors <= n - 1, min_cluster_size <= n / 2), and ``umap``:
    whether the class has enough distinct latents for UMAP and HDBSCAN (else every point is
    noise and step 5 works on ``x`` itself)."""
    n = len(x)
    nc = min(int(n_components), n - 2)
    return {"n_neighbors": max(2, min(int(n_neighbors), n - 1)), "n_components": nc,
            "min_cluster_size": max(2, min(int(min_cluster_size), n // 2)),
            "umap": nc >= 1 and _distinct_rows(x) >= max(4, nc + 2)}


def discover_class(latents: np.ndarray, ipc: int, n_neighbors: int = REFERENCE["n_neighbors"],
                   min_cluster_size: int = REFERENCE["min_cluster_size"], min_samples: int = REFERENCE["min_samples"],
                   seed: int = 0, pca_dims: int | None = None, n_components: int = REFERENCE["n_components"],
                   min_dist: float = REFERENCE["min_dist"], keep_embedding: bool = True,
                   embedding: np.ndarray | None = None, noise_fill: bool = True) -> ClassDiscovery:
    """Distribution Discovery on one class's latents (``n x ...``); see the module docstring.

    UMAP's ``n_components`` and ``n_neighbors`` and HDBSCAN's ``min_cluster_size`` are clamped
    for classes too small for them (n_components <= n - 2, n_neighbors <= n - 1,
    min_cluster_size <= n / 2); the values used are in ``params``. Classes with all latents
    identical skip UMAP (strategy ``degenerate``); classes with fewer distinct latents than
    UMAP can embed skip it too and go straight to the post-processing on the standardized
    latents with every point as noise. ``noise_fill=False`` skips step 5's fill from noise
    (:func:`make_exactly_ipc`; an ablation of the IPC-50 question, recorded in ``params``).
    """
    lat = np.asarray(latents)
    n = len(lat)
    check_ipc(ipc, n)
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    x = standardize(lat)
    t["standardize"] = time.perf_counter() - t0
    settings = class_settings(x, n_neighbors, min_cluster_size, n_components)
    nn, nc, mcs = settings["n_neighbors"], settings["n_components"], settings["min_cluster_size"]
    params = {"n_neighbors": nn, "n_components": nc, "min_dist": min_dist, "min_cluster_size": mcs,
              "min_samples": int(min_samples), "seed": int(seed), "pca_dims": pca_dims, "path": "umap"}
    if not noise_fill:
        params["noise_fill"] = False
    distinct = _distinct_rows(x)

    def result(res: ExactlyIPC, hl, emb, log_extra=()):
        pos = res.representatives
        return ClassDiscovery(pos, np.array(lat[pos], dtype=np.float32), res.strategies, res.cluster_sizes, res.n_found,
                              res.noise_fraction, hl, res.labels, emb if keep_embedding else None, params, t,
                              list(log_extra) + res.log)

    if ipc == n or distinct == 1:
        # every image (ipc = n), or any ipc of identical images: no clustering to do
        params["path"] = "all" if ipc == n else "degenerate"
        groups = np.array_split(np.arange(n), ipc)
        res = ExactlyIPC(np.array([g[0] for g in groups], dtype=np.int64), [params["path"]] * ipc,
                         [len(g) for g in groups], np.repeat(np.arange(ipc), [len(g) for g in groups]), 0, 0.0,
                         ["all latents identical"] if distinct == 1 and ipc < n else [])
        return result(res, np.full(n, -1), None)

    feats = x
    extra: list[str] = []
    cluster = True  # run HDBSCAN on ``emb`` (False: every point is noise)
    if embedding is not None and distinct >= max(4, nc + 2):
        emb = np.asarray(embedding, dtype=np.float32)
        if len(emb) != n:
            raise ValueError(f"embedding has {len(emb)} rows for {n} latents")
        params["path"] = "umap (reused)"
    else:
        if pca_dims is not None and x.shape[1] > pca_dims:
            t0 = time.perf_counter()
            feats = _pca(x, int(pca_dims), seed)
            t["pca"] = time.perf_counter() - t0
        if nc < 1 or distinct < max(4, nc + 2):
            params["path"] = "few_distinct"
            emb, cluster = feats, False
            extra = [f"only {distinct} distinct latents: UMAP and HDBSCAN skipped"]
        else:
            t0 = time.perf_counter()
            try:
                emb = run_umap(feats, nn, nc, min_dist, seed)
            except Exception as e:  # noqa: BLE001 - UMAP failing on odd data must not stop discovery
                params["path"] = "umap_failed"
                emb = feats
                extra = [f"UMAP failed ({type(e).__name__}: {e}); clustering the standardized latents"]
            t["umap"] = time.perf_counter() - t0
    if cluster:
        t0 = time.perf_counter()
        labels, probs = run_hdbscan(emb, mcs, min_samples)
        t["hdbscan"] = time.perf_counter() - t0
    else:
        labels, probs = np.full(n, -1), np.zeros(n)
    t0 = time.perf_counter()
    res = make_exactly_ipc(emb, labels, probs, ipc, mcs, min_samples, seed, noise_fill)
    t["postprocess"] = time.perf_counter() - t0
    return result(res, np.asarray(labels), emb, extra)


def _pca(x: np.ndarray, dims: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    k = min(dims, x.shape[0], x.shape[1])
    return PCA(n_components=k, svd_solver="randomized", random_state=seed).fit_transform(x).astype(np.float32)


@dataclass
class Discovery:
    """Discovery over all classes of a latent cache; ``positions`` are dataset positions,
    class by class, ``ipc`` each (representative k of class c at ``positions[c * ipc + k]``)."""

    ipc: int
    params: dict
    per_class: list[ClassDiscovery]
    class_positions: list[np.ndarray]
    class_names: list[str]
    class_ids: list[int] = field(default_factory=list)  #: class index (into the cache) of each entry

    def __post_init__(self):
        if not self.class_ids:
            self.class_ids = list(range(len(self.per_class)))

    @property
    def positions(self) -> np.ndarray:
        return np.concatenate(self.class_positions)

    @property
    def latents(self) -> np.ndarray:
        """The representatives' original latents, ``(classes * ipc) x C x h x w``."""
        return np.concatenate([d.latents for d in self.per_class])

    def strategy_counts(self) -> dict[str, int]:
        every = [s for d in self.per_class for s in d.strategies]
        return {s: every.count(s) for s in STRATEGIES if s in every}

    def table(self) -> str:
        """A plain-text table: one row per class (clusters found, noise, strategies, sizes)."""
        w = max(len(n) for n in self.class_names)
        lines = [f"{'class':<{w}}  {'M':>4}  {'noise':>6}  {'strategies':<40}  cluster sizes (largest, smallest)"]
        for name, d in zip(self.class_names, self.per_class):
            sc = ", ".join(f"{k} {v}" for k, v in d.diagnostics()["strategy_counts"].items())
            lines.append(f"{name:<{w}}  {d.n_found:>4}  {d.noise_fraction:>6.1%}  {sc:<40}  "
                         f"{max(d.cluster_sizes)}, {min(d.cluster_sizes)}")
        return "\n".join(lines)

    def manifest(self) -> dict:
        """What an export of R records: parameters, seed, and per class the cluster sizes and
        the strategy of each representative."""
        return {
            "discovery": {"params": self.params, "seed": self.params.get("seed"),
                          "per_class": [{"class": name, "clusters_found": d.n_found,
                                         "noise_fraction": round(d.noise_fraction, 6),
                                         "cluster_sizes": d.cluster_sizes, "strategies": d.strategies,
                                         "effective_params": d.params}
                                        for name, d in zip(self.class_names, self.per_class)]},
        }

    def diagnostics(self) -> dict:
        return {"ipc": self.ipc, "params": self.params, "strategy_counts": self.strategy_counts(),
                "classes": {name: {"dataset_positions": pos.tolist(), **d.diagnostics()}
                            for name, pos, d in zip(self.class_names, self.class_positions, self.per_class)}}

    def save(self, path) -> None:
        """Write, next to ``path`` (same name, ``.npz``), the representatives' original latents
        (``latents``, class by class, IPC each, float32), their dataset positions (``positions``)
        and class indices (``labels``), and each class's 50-d embedding (``embedding_<c>``); then,
        last, the diagnostics as JSON at ``path`` with the ``.npz``'s record (size and SHA-256) under
        ``files``, which :func:`load_arrays` checks. A damaged ``.npz`` that this replaces is named."""
        from pathlib import Path

        from .io import atomic_write, file_record, write_json

        path = Path(path)
        npz = path.with_suffix(".npz")
        replaced = _npz_problem(path) if path.exists() else None  # an earlier run's file, damaged or gone
        arrays = {"latents": self.latents, "positions": self.positions,
                  "labels": np.repeat(np.asarray(self.class_ids, dtype=np.int64), self.ipc)}
        arrays.update({f"embedding_{c}": d.embedding for c, d in zip(self.class_ids, self.per_class) if d.embedding is not None})
        with atomic_write(npz, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        write_json(path, {**self.diagnostics(), "files": {npz.name: file_record(npz)}})
        if replaced:
            print(f"discovery: replaced {npz} ({replaced})", flush=True)


def _npz_problem(path) -> str | None:
    """What is wrong with the ``.npz`` beside the discovery record ``path`` (missing, or not what
    the record lists), or ``None``; a record that cannot be read counts as a problem too."""
    from pathlib import Path

    from .io import CorruptFileError, check_file, read_json

    path = Path(path)
    try:
        meta = read_json(path)
    except (OSError, CorruptFileError) as e:
        return f"its record {path.name} is unreadable ({e.__class__.__name__})"
    return check_file(path.with_suffix(".npz"), (meta.get("files") or {}).get(path.with_suffix(".npz").name))


def load_arrays(path) -> dict:
    """The arrays :meth:`Discovery.save` wrote beside the record ``path`` (``latents``,
    ``positions``, ``labels``, ``embedding_<c>``), after checking the ``.npz`` against the
    record's size and SHA-256. A damaged or missing file raises
    :class:`~coda_utils.io.CorruptFileError` naming it and what re-makes it (notebook 02 with the
    same parameters)."""
    from pathlib import Path

    from .io import CorruptFileError

    path = Path(path)
    npz = path.with_suffix(".npz")
    action = ("run notebook 02 again with the same parameters (ipc, selection seed): it makes this seed's "
              "discovery again and replaces the file")
    if not path.is_file():
        raise CorruptFileError(path, "missing (no discovery for this IPC and seed)", action)
    problem = _npz_problem(path)
    if problem:
        raise CorruptFileError(npz, f"damaged discovery file: {problem}", action)
    with np.load(npz) as arrays:
        return {k: arrays[k] for k in arrays.files}


def load_discovery(path) -> Discovery:
    """Read back what :meth:`Discovery.save` wrote (the JSON at ``path`` and the ``.npz`` beside
    it), so figures and later stages need no recomputation."""
    from pathlib import Path

    from .io import read_json

    path = Path(path)
    meta = read_json(path)
    arrays = load_arrays(path)
    labels, latents = arrays["labels"], arrays["latents"]
    class_ids = list(dict.fromkeys(int(c) for c in labels))
    per_class, positions = [], []
    for (name, info), c in zip(meta["classes"].items(), class_ids):
        key = f"embedding_{c}"
        per_class.append(ClassDiscovery(
            positions=np.asarray(info["positions"], dtype=np.int64), latents=latents[labels == c],
            strategies=list(info["strategies"]), cluster_sizes=list(info["cluster_sizes"]), n_found=int(info["clusters_found"]),
            noise_fraction=float(info["noise_fraction"]), hdbscan_labels=np.asarray(info["hdbscan_labels"]),
            labels=np.asarray(info["labels"]), embedding=arrays[key] if key in arrays else None, params=info["params"],
            timings=info["timings_s"], log=list(info["log"])))
        positions.append(np.asarray(info["dataset_positions"], dtype=np.int64))
    return Discovery(int(meta["ipc"]), meta["params"], per_class, positions, list(meta["classes"]), class_ids)


def discover(cache, ipc: int, n_neighbors: int | None = None, min_cluster_size: int | None = None,
             min_samples: int = REFERENCE["min_samples"], seed: int = 0, pca_dims: int | None = None,
             n_components: int = REFERENCE["n_components"], classes: Sequence[int] | None = None,
             keep_embedding: bool = True, progress: bool = True, reuse: Discovery | None = None,
             embeddings: dict | None = None, noise_fill: bool = True) -> Discovery:
    """Run :func:`discover_class` on every class of a :class:`~coda_utils.encoding.LatentCache`.

    ``n_neighbors`` / ``min_cluster_size`` default to the reference values scaled to the mean
    class size (:func:`scaled_hyperparameters`). Raises ``ValueError`` when ``ipc`` exceeds a
    class's size.

    ``reuse``: an earlier :class:`Discovery` on the same cache; when its UMAP settings
    (``n_neighbors``, ``n_components``, ``seed``, ``pca_dims``) equal these, its embeddings are
    reused and only HDBSCAN and the post-processing run (an IPC or ``min_cluster_size`` sweep
    costs well under a second per class instead of a UMAP each).

    ``embeddings``: ``{class index: embedding}`` that the caller computed with these very
    settings (:func:`run_umap` on the class's standardized latents with ``n_neighbors``,
    ``n_components``, ``seed``; notebook 02's walk-through), used instead of a second UMAP for
    those classes; their records say ``umap (reused)``.

    ``noise_fill=False``: the exactly-IPC step without its fill from HDBSCAN's noise (an
    ablation; :func:`make_exactly_ipc`).
    """
    classes = list(range(cache.num_classes)) if classes is None else list(classes)
    counts = cache.counts
    check_ipc(ipc, [counts[c] for c in classes], [cache.class_names[c] for c in classes], "the latent cache")
    scaled = scaled_hyperparameters(float(np.mean([counts[c] for c in classes])))
    params = {"ipc": int(ipc), "n_neighbors": scaled["n_neighbors"] if n_neighbors is None else int(n_neighbors),
              "min_cluster_size": scaled["min_cluster_size"] if min_cluster_size is None else int(min_cluster_size),
              "min_samples": int(min_samples), "n_components": int(n_components), "min_dist": REFERENCE["min_dist"],
              "seed": int(seed), "pca_dims": pca_dims}
    if not noise_fill:
        params["noise_fill"] = False
    it = classes
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(classes, desc="discovery", unit="class")
    umap_keys = ("n_neighbors", "n_components", "seed", "pca_dims")
    old = {}
    if reuse is not None and all(reuse.params.get(k) == params[k] for k in umap_keys):
        old = {name: d.embedding for name, d in zip(reuse.class_names, reuse.per_class) if d.embedding is not None}
    per_class, positions = [], []
    for c in it:
        d = discover_class(cache.latents(c), ipc, params["n_neighbors"], params["min_cluster_size"], min_samples, seed,
                           pca_dims, n_components, keep_embedding=keep_embedding,
                           embedding=old.get(cache.class_names[c], (embeddings or {}).get(c)), noise_fill=noise_fill)
        per_class.append(d)
        positions.append(cache.indices(c)[d.positions])
    return Discovery(int(ipc), params, per_class, positions, [cache.class_names[c] for c in classes], classes)


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------
def umap_2d(features: np.ndarray, n_neighbors: int, seed: int = 0, min_dist: float = 0.1) -> np.ndarray:
    """A 2-D UMAP for plots only. Pass a class's 50-d embedding (``ClassDiscovery.embedding``)
    to see the clusters HDBSCAN saw, or its latents (standardized here) for an independent view."""
    x = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    if len(x) < 6 or _distinct_rows(x) < 4:  # too few points for UMAP: the first two principal axes
        centred = x - x.mean(0)
        xy = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T if centred.any() else centred[:, :0]
        return np.pad(xy, ((0, 0), (0, 2 - xy.shape[1]))).astype(np.float32)
    return run_umap(x, max(2, min(n_neighbors, len(x) - 1)), 2, min_dist, seed)
