"""Training-free selections of real images from the ``target`` split.

Each selection returns positions into the dataset (exactly ``ipc`` per class) and can be
exported as a set folder with :func:`export_selection` (written by :mod:`coda_utils.setfolder`,
in the run's channels).

The latent-space selections (:func:`kmeans_nearest_real`, :func:`herding`) work on one class's
latents (``n x ...``, as cached by :mod:`coda_utils.encoding`), flattened and standardized
exactly as Distribution Discovery does, and return positions within the class;
:func:`select_per_class` runs one over every class of a latent cache and returns dataset
positions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from . import setfolder
from .datasets import LabeledImages, check_ipc
from .discovery import standardize
from .io import array_sha256

__all__ = ["random_real", "random_real_set", "export_selection", "kmeans_nearest_real", "herding", "select_per_class",
           "selection_overlap", "ROUND_TRIP", "vae_round_trip", "StaleRoundTripError", "method_set"]

#: the ceiling methods: another method's real set passed through the prior's VAE and back
#: (posterior mean, decoded, brought back to the set's size). A generator working in this latent
#: space cannot do better than its own VAE's reconstructions of the images it aims at.
ROUND_TRIP = {"vae_coda_r": "coda_r", "vae_random_real": "random_real"}


class StaleRoundTripError(RuntimeError):
    """A round-trip set was made by another VAE or from another source set."""


def random_real(data: LabeledImages, ipc: int, seed: int = 0) -> np.ndarray:
    """A seeded random subset of ``ipc`` images per class (positions into ``data``).

    Class ``c`` draws from its own generator seeded by ``(seed, c)``, so a class's pick does not
    depend on the other classes.
    """
    check_ipc(ipc, data.counts(), data.class_names, data.name)
    picks = []
    for c in range(data.num_classes):
        rng = np.random.default_rng([seed, c])
        picks.append(np.sort(rng.choice(data.class_indices(c), size=ipc, replace=False)))
    return np.concatenate(picks)


def random_real_set(data: LabeledImages, ipc: int, seed: int, out_dir: str | Path) -> Path:
    """The random-real set of selection seed ``seed`` in ``out_dir``: drawn (:func:`random_real`)
    and exported (:func:`export_selection`) unless a finished one is there already."""
    out_dir = Path(out_dir)
    if not setfolder.is_finished(out_dir):
        export_selection(data, random_real(data, ipc, seed=seed), out_dir, "random_real", ipc, {"selection_seed": seed})
    return out_dir


def export_selection(data: LabeledImages, indices: np.ndarray, out_dir: str | Path, method: str,
                     ipc: int, extra: dict | None = None) -> Path:
    """Write the selected real images as the set folder ``out_dir/<class>/<k>.png`` with a
    ``manifest.json`` (method, ipc, source indices, classes, the resize policy, channels).

    Images are written at ``data``'s export size: the native size when all images share one
    (Fashion-MNIST: 28x28), else the size of ``data``'s resize policy, and in ``data``'s
    channels: the policy's (the run's VAE input channels) when it names them. Attach the latent
    cache's policy with ``data.with_policy(cache.policy)``, so that R and the generated sets of
    one run have the same size and channels."""
    indices = np.asarray(indices)
    images = data.load(indices).numpy()
    manifest = {
        "method": method,
        "ipc": int(ipc),
        "dataset": data.name,
        "class_names": data.class_names,
        "source_indices": data.source_indices[indices].tolist(),
        "image_size": list(images.shape[-2:]),
        "resize_policy": None if data.policy is None else data.policy.to_dict(),
        **(extra or {}),
    }
    return setfolder.write_set(out_dir, images, data.labels[indices], data.classes, manifest, channels=data.channels)


# --------------------------------------------------------------------------------------
# Selections in the diffusion model's latent space (one class at a time)
# --------------------------------------------------------------------------------------
def _features(latents: np.ndarray, standardized: bool) -> np.ndarray:
    x = np.asarray(latents)
    return standardize(x) if standardized else x.reshape(len(x), -1).astype(np.float32)


def kmeans_nearest_real(latents: np.ndarray, ipc: int, seed: int = 0, n_init: int = 3,
                        standardized: bool = True) -> np.ndarray:
    """D4M-style selection: k-means with k = ``ipc`` on the standardized, flattened latents,
    then for each centroid a real image near it, all distinct.

    ``seed`` is the selection seed: it draws the k-means++ initialisations (``n_init`` of them,
    the best kept), so another seed is another draw of the selection.

    The centroid -> image matching minimises the total squared distance over distinct images
    (Hungarian assignment); when the nearest images of all centroids differ, as is usual, that
    is exactly each centroid's nearest real image. Returns positions within the class, in
    centroid order (largest k-means cluster first).
    """
    from scipy.optimize import linear_sum_assignment
    from sklearn.cluster import KMeans

    x = _features(latents, standardized)
    n = len(x)
    check_ipc(ipc, n)
    if ipc == n:
        return np.arange(n)
    import warnings

    from threadpoolctl import threadpool_limits

    # one thread: sklearn's k-means reduces in another order with more threads, and the pick
    # must not depend on the machine's core count
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # fewer distinct points than k: sklearn warns, we still match distinctly
        km = KMeans(n_clusters=ipc, n_init=n_init, random_state=seed).fit(x)
    order = np.argsort(-np.bincount(km.labels_, minlength=ipc), kind="stable")
    c = km.cluster_centers_[order].astype(np.float64)
    xx = x.astype(np.float64)
    d = (c ** 2).sum(1)[:, None] - 2 * c @ xx.T + (xx ** 2).sum(1)[None, :]
    rows, cols = linear_sum_assignment(d)
    out = np.empty(ipc, dtype=np.int64)
    out[rows] = cols
    return out


def herding(latents: np.ndarray, ipc: int, standardized: bool = True) -> np.ndarray:
    """Welling's herding on the feature mean, greedy and without repeats: pick t chooses the
    image that brings the mean of the t picks closest to the class mean. The first pick is the
    image closest to the mean. Returns positions within the class, in pick order."""
    x = _features(latents, standardized).astype(np.float64)
    n = len(x)
    check_ipc(ipc, n)
    mu = x.mean(0)
    sq = (x ** 2).sum(1)
    total = np.zeros_like(mu)
    taken = np.zeros(n, bool)
    out = np.empty(ipc, dtype=np.int64)
    for t in range(1, ipc + 1):
        target = t * mu - total  # || target - x ||^2 = || t mu - (total + x) ||^2
        score = sq - 2 * (x @ target)
        score[taken] = np.inf
        i = int(np.argmin(score))
        out[t - 1], taken[i] = i, True
        total += x[i]
    return out


def select_per_class(cache, selector: Callable[..., np.ndarray], ipc: int, **kwargs) -> np.ndarray:
    """Run a per-class selector (``selector(latents, ipc, **kwargs)`` -> positions within the
    class) over every class of a :class:`~coda_utils.encoding.LatentCache`; returns dataset
    positions, class by class, ``ipc`` each."""
    check_ipc(ipc, cache.counts, cache.class_names, "the latent cache")
    return np.concatenate([cache.indices(c)[selector(cache.latents(c), ipc, **kwargs)] for c in range(cache.num_classes)])


def selection_overlap(selections) -> np.ndarray:
    """``m[i, j]``: the share of selection ``i``'s positions that selection ``j`` also picked
    (1 on the diagonal), for a list of position arrays (e.g. one per selection seed)."""
    sets = [np.unique(np.asarray(p)) for p in selections]
    m = np.empty((len(sets), len(sets)))
    for i, a in enumerate(sets):
        for j, b in enumerate(sets):
            m[i, j] = len(np.intersect1d(a, b)) / max(1, len(a))
    return m


# --------------------------------------------------------------------------------------
# The VAE's ceiling: real sets passed through the latent space and back
# --------------------------------------------------------------------------------------
def vae_round_trip(src_dir: str | Path, out_dir: str | Path, vae_or_pipe, method: str, batch_size: int = 256) -> Path:
    """Write ``src_dir``'s set (an exported ImageFolder with ``manifest.json``) passed through
    the VAE and back as a new set ``out_dir`` named ``method``.

    Each image is brought to the VAE's size with the resize mode the set was exported with (its
    manifest's ``resize_policy``; Fashion-MNIST: padded 28 -> 32), encoded to its posterior mean,
    decoded, and brought back to the set's size (the inverse of that mode), exactly as a
    generated image reaches a set, and written in the source set's channels. The manifest
    records the source set, its files' hash and the VAE's fingerprint; an existing ``out_dir``
    made from the same source by the same VAE is kept, one made otherwise raises
    :class:`StaleRoundTripError` (delete it to redo it).

    Returns:
        ``out_dir``.
    """
    from .alignment import latents_to_native
    from .vae import decode_latents, encode_images, get_vae, native_size, vae_fingerprint

    src, out = Path(src_dir), Path(out_dir)
    if not setfolder.is_finished(src):
        raise FileNotFoundError(f"{src} is not a finished set (no manifest.json): make the set {method} is a round trip "
                                "of first (notebook 02 for coda_r, notebook 04 for random_real)")
    manifest = setfolder.read_manifest(src)
    vae = get_vae(vae_or_pipe)
    x, y, classes = setfolder.read_set(src)
    origin = {"source_set": str(src), "source_method": manifest.get("method"),
              "source_sha256": array_sha256(x),
              "vae": vae_fingerprint(vae)}
    if setfolder.is_finished(out):  # the same images through the same VAE (wherever the run moved)
        old = setfolder.read_manifest(out)
        if all(old.get(k) == _as_json(origin[k]) for k in ("source_sha256", "vae")):
            return out
        raise StaleRoundTripError(f"{out} was not made from {src} by this VAE (its manifest names another source "
                                  f"set or VAE); delete {out} to make it again")
    policy = manifest.get("resize_policy") or {}
    size = native_size(vae)
    mode = policy.get("mode") or ("pad" if x.shape[-2] <= size[0] and x.shape[-1] <= size[1] else "squash")
    rec = decode_latents(vae, encode_images(vae, x, batch_size=batch_size, device=vae.device, resize=mode), batch_size)
    rec = latents_to_native(rec, tuple(x.shape[-2:]), mode)
    meta = {k: v for k, v in manifest.items() if k not in ("files", "versions", "method", "channels")}
    meta.update({"method": method, **origin})
    return setfolder.write_set(out, rec, y.numpy(), classes, meta, channels=x.shape[1])


def method_set(run, method: str, ipc: int, selection_seed: int, target: LabeledImages, *, image_size: int | None = None,
               vae=None, distilled: str | Path | None = None):
    """The training images and labels of one method's set for one selection seed (notebook 04).

    Args:
        run: the :class:`~coda_utils.rundir.RunDir` whose sets are read.
        method: a method name; ``"full"`` is all of ``target`` (the upper bound).
        ipc: images per class of the set.
        selection_seed: the seed that made the set (ignored for deterministic methods).
        target: the split being distilled (for ``full``, for the random-real draw and for the
            class order of the set).
        image_size: bring every image to this square size; ``None``: the set's own size.
        vae: the run's VAE (or pipeline), needed only by the ceiling methods of
            :data:`ROUND_TRIP`, whose set is made here from its source set on first use.
        distilled: the path of one exported set folder to read instead of the run's sets.

    Returns:
        ``(images, labels)``: uint8 ``N x C x H x W`` and int64 labels.
    """
    if method == "full":
        size = (image_size, image_size) if image_size else target.native_size
        return target.load(None, size), target.labels
    if distilled is not None:
        set_dir = Path(distilled)
    else:
        set_dir = run.set_dir(method, ipc, selection_seed)
        source_method = ROUND_TRIP.get(method, method)
        source = run.set_dir(source_method, ipc, selection_seed)
        if source_method == "random_real":  # drawn on first use
            random_real_set(target, ipc, selection_seed, source)
        if method in ROUND_TRIP:  # the ceiling: the source set through the run's VAE and back
            if vae is None:
                raise ValueError(f"{method} passes {source_method}'s set through the run's VAE: pass vae=")
            vae_round_trip(source, set_dir, vae, method)
    if not setfolder.is_finished(set_dir):
        raise FileNotFoundError(f"{set_dir} is not a finished set (no manifest.json): run notebook 02 (selections) or 03 "
                                f"(generated sets) for selection seed {selection_seed} first, or pass distilled=<folder>")
    return setfolder.read_set(set_dir, size=image_size, classes=target.classes)[:2]


def _as_json(obj):
    """``obj`` as it reads back from JSON (tuples become lists), for comparing with a manifest."""
    import json

    return json.loads(json.dumps(obj))
