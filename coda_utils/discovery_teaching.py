"""Teaching aids for discovery's step 5 (exactly IPC), used by notebook 02 and its tests: a 2-D
toy that shows each strategy, and where a discovery's representatives came from. Nothing here
is part of the method; :mod:`coda_utils.discovery` re-exports both names."""

from __future__ import annotations

import numpy as np

__all__ = ["toy_blobs", "noise_fill_table"]


def toy_blobs(seed: int = 0, n_noise: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """A 2-D toy for the exactly-IPC post-processing (notebook 02, in the style of the hdbscan
    documentation): four dense blobs of different sizes, one of them two touching sub-blobs that
    HDBSCAN reports as one cluster, and ``n_noise`` points drawn uniformly over the plane (most
    fall into a blob; the rest are HDBSCAN's noise).

    With ``min_cluster_size`` 40 and ``min_samples`` 3, :func:`~coda_utils.discovery.run_hdbscan` finds 4 clusters and
    :func:`~coda_utils.discovery.make_exactly_ipc` keeps the largest at IPC 2, splits the double blob at IPC 5, fills
    from the noise at IPC 7 and, the noise being too small for IPC 10, splits with a smaller
    ``min_cluster_size`` there (checked by ``tests/test_discovery.py`` for the default seed).

    Returns:
        ``points`` (``n x 2`` float32) and ``source`` (the blob each point was drawn from, 0-4,
        the double blob being 0 and 1; -1 for the uniform points).
    """
    rng = np.random.default_rng(seed)
    blobs = [((-3.4, 2.0), 0.5, 130), ((-1.8, 2.4), 0.5, 130),  # the double blob
             ((3.0, 2.5), 0.5, 100), ((-1.0, -2.8), 0.45, 90), ((3.2, -2.2), 0.4, 70)]
    points, source = [], []
    for k, (centre, spread, n) in enumerate(blobs):
        points.append(rng.normal(centre, spread, (n, 2)))
        source += [k] * n
    points.append(rng.uniform((-6.0, -5.0), (6.0, 5.0), (int(n_noise), 2)))
    source += [-1] * int(n_noise)
    return np.concatenate(points).astype(np.float32), np.asarray(source, dtype=np.int64)


def noise_fill_table(discoveries: dict) -> "pd.DataFrame":
    """How many representatives of each class came from the noise fill (k-means on the points
    HDBSCAN called noise), for each :class:`~coda_utils.discovery.Discovery` of ``discoveries`` (``column name ->
    Discovery``, e.g. ``{"IPC 10, seed 0": ...}``), with a last row ``all classes``; ``ipc`` per
    class is the Discovery's own."""
    import pandas as pd

    columns = {}
    for name, disc in discoveries.items():
        counts = [d.strategies.count("noise_fill") for d in disc.per_class]
        columns[name] = pd.Series(counts + [sum(counts)], index=[*disc.class_names, "all classes"])
    return pd.DataFrame(columns)
