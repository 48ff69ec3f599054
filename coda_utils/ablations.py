"""Ablation sweeps: one folder per sweep point, measured on a held-out part of ``target``.

Every point distils ``target_fit`` (train[50000:58000]) and is judged on ``target_val``
(train[58000:60000]), never on ``test``, so a sweep may be used to *choose* a setting (the
guidance scale, say) without touching the test split. A point's folder
``out_dir/<sweep>/<key>/`` holds ``point.json`` (its parameters), the distilled set, and
``results.csv`` (one row per evaluation repeat); re-running a point resumes it, and
:func:`collect` gathers all points into one table for the figures.

Sweeps (:data:`SWEEPS`): discovery (n_neighbors x min_cluster_size), gamma, guide_fraction,
the guidance variant (reference vs normalized pull, x gamma), ipc, and the discovery feature
space (VAE latents vs raw pixels). All points of one process
share one numba compile of umap-learn and one UMAP per (class, n_neighbors, feature space).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import alignment, baselines, discovery, evaluation
from .datasets import LabeledImages
from .io import read_json, write_json

__all__ = ["SWEEPS", "PixelFeatures", "AblationRunner", "collect", "sweep_table", "sweep_figures"]

#: sweep name -> (row parameter, column parameter or None)
SWEEPS: dict[str, tuple[str, str | None]] = {
    "discovery": ("min_cluster_size", "n_neighbors"),
    "gamma": ("gamma", None),
    "guide_fraction": ("guide_fraction", None),
    "variant": ("variant", "gamma"),
    "ipc": ("ipc", None),
    "features": ("features", None),
}


class PixelFeatures:
    """A stand-in for :class:`~coda_utils.encoding.LatentCache` over raw pixels (``[0, 1]``), so
    that discovery runs unchanged in pixel space for the feature-space ablation."""

    def __init__(self, data: LabeledImages):
        self.data = data
        self._idx = [data.class_indices(c) for c in range(data.num_classes)]

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def class_names(self) -> list[str]:
        return list(self.data.class_names)

    @property
    def counts(self) -> list[int]:
        return [len(i) for i in self._idx]

    def indices(self, c: int) -> np.ndarray:
        return self._idx[c]

    def latents(self, c: int) -> np.ndarray:
        return self.data.load(self._idx[c]).float().numpy() / 255.0


def _key(values: dict) -> str:
    return "_".join(f"{k}{v}" for k, v in values.items())


@dataclass
class AblationRunner:
    """Runs sweep points for one ``fit`` / ``val`` pair.

    Args:
        fit, val: the distilled data (``target_fit``) and the held-out judge (``target_val``).
        cache: ``fit``'s latent cache (notebook 01's :func:`~coda_utils.encoding.encode_dataset`).
        out_dir: where the point folders go.
        model: the text-to-image model (loaded on the first generation point).
        defaults: the reference settings every point starts from (ipc, gamma, guide_fraction,
            n_neighbors, min_cluster_size, min_samples, features, variant, steps, cfg_scale).
        epochs, repeats: the evaluation (ConvNet-3, ``dc`` protocol, ``epochs`` shortened).
    """

    fit: LabeledImages
    val: LabeledImages
    cache: Any
    out_dir: Path
    model: str
    defaults: dict
    epochs: int = 100
    repeats: int = 1
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    _pipe: Any = None
    _discoveries: dict = field(default_factory=dict)

    def pipe(self):
        if self._pipe is None:
            self._pipe = alignment.load_pipeline(self.model, self.device)
        return self._pipe

    def discovery(self, ipc: int, n_neighbors: int | None, min_cluster_size: int | None, min_samples: int,
                  features: str = "vae") -> discovery.Discovery:
        """Discovery with these settings, reusing the UMAP embeddings of an earlier call with the
        same (n_neighbors, features): only HDBSCAN and the post-processing run again."""
        source = self.cache if features == "vae" else PixelFeatures(self.fit)
        reuse = next((d for (nn, f, *_), d in self._discoveries.items() if nn == n_neighbors and f == features), None)
        key = (n_neighbors, features, ipc, min_cluster_size, min_samples)
        if key not in self._discoveries:
            self._discoveries[key] = discovery.discover(source, ipc, n_neighbors, min_cluster_size, min_samples,
                                                        self.seed, progress=False, reuse=reuse)
        return self._discoveries[key]

    def run(self, sweep: str, **values) -> dict:
        """Run (or resume) one point of ``sweep``; ``values`` override :attr:`defaults`."""
        if sweep not in SWEEPS:
            raise ValueError(f"unknown sweep {sweep!r}; choose from {', '.join(SWEEPS)}")
        p = {**self.defaults, **values}
        point = Path(self.out_dir) / sweep / _key(values)
        t0 = time.perf_counter()
        disc = self.discovery(p["ipc"], p["n_neighbors"], p["min_cluster_size"], p["min_samples"], p["features"])
        if sweep in ("gamma", "guide_fraction", "variant"):
            k = p["ipc"]
            z_reps = [disc.latents[c * k:(c + 1) * k] for c in range(self.fit.num_classes)]
            guidance = alignment.GuidanceConfig(gamma=p["gamma"], guide_fraction=p["guide_fraction"],
                                                variant=p.get("variant", "reference"))
            set_dir = alignment.generate_set(
                self.pipe(), point / "set", self.fit.classes, self.fit.prompts, p["ipc"], z_reps=z_reps if p["gamma"] else None,
                guidance=guidance, cfg_scale=p["cfg_scale"], steps=p["steps"], seed=self.seed, batch_size=50,
                native_size=self.fit.native_size, method=f"coda_g_{_key(values)}", model_id=str(self.model),
                progress=self.progress)
        else:
            set_dir = baselines.export_selection(self.fit, disc.positions, point / "set", f"coda_r_{_key(values)}",
                                                 p["ipc"], {**disc.manifest(), "features": p["features"]})
        write_json(point / "point.json", {"sweep": sweep, "values": values, "parameters": p, "epochs": self.epochs,
                                          "evaluated_on": self.val.name})
        train_x, train_y = evaluation.load_image_folder_tensors(set_dir, classes=self.fit.classes)
        res = evaluation.evaluate(_key(values), train_x, train_y, self.val.load(), self.val.labels, ipc=p["ipc"],
                                  repeats=self.repeats, seed=self.seed, epochs=self.epochs, device=self.device,
                                  out_csv=point / "results.csv", progress=False)
        return {"sweep": sweep, **values, "acc": float(res["acc"].mean()), "n": len(res),
                "seconds": round(time.perf_counter() - t0, 1)}


def collect(out_dir: str | Path) -> pd.DataFrame:
    """Every finished point under ``out_dir``: one row per point with its sweep, swept values and
    mean accuracy on ``target_val``."""
    rows = []
    for pj in sorted(Path(out_dir).glob("*/*/point.json")):
        csv = pj.parent / "results.csv"
        if not csv.is_file():
            continue
        meta = read_json(pj)
        res = pd.read_csv(csv)
        rows.append({"sweep": meta["sweep"], **meta["values"], "acc": res["acc"].mean(), "n": len(res),
                     "epochs": meta["epochs"]})
    return pd.DataFrame(rows)


def sweep_table(points: pd.DataFrame) -> pd.DataFrame:
    """One sweep's points as a table for a heatmap: rows x columns of mean accuracy (a 1-D
    sweep is one row)."""
    sweep = points["sweep"].iloc[0]
    row, col = SWEEPS[sweep]
    points = points.copy()
    for c in (row, col):  # integral values read back as floats (other sweeps leave NaN in the column)
        if c is not None and points[c].dtype.kind == "f" and (points[c] % 1 == 0).all():
            points[c] = points[c].astype(int)
    if col is None:
        return points.groupby(row)["acc"].mean().to_frame("target_val acc").T
    return points.pivot_table(index=row, columns=col, values="acc", aggfunc="mean")


def sweep_figures(points: pd.DataFrame, figures_dir: str | Path) -> dict[str, pd.DataFrame]:
    """A heatmap per sweep (``figures_dir/ablation_<sweep>.png``); returns the tables."""
    from .plots import plot_heatmap, save_figure

    tables = {}
    for sweep, part in points.groupby("sweep", sort=False):
        tables[sweep] = sweep_table(part)
        fig = plot_heatmap(tables[sweep], title=f"{sweep}: accuracy on target_val (%)")
        save_figure(fig, Path(figures_dir) / f"ablation_{sweep}.png")
    return tables
