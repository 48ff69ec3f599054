"""Ablation sweeps: one folder per sweep point, each point over several selection seeds,
measured on a held-out part of ``target``.

Every point distils ``target_fit`` (train[50000:58000]) and is judged on ``target_val``
(train[58000:60000]), never on ``test``, so a sweep may be used to *choose* a setting (the
guidance scale, say) without touching the test split. On an ImageFolder tree (ImageNette,
ImageWoof, ...) a fixed, seeded part of every class of the train split is held out instead
(:func:`fit_and_val`, recorded in ``holdout.json``), and the points are evaluated under any
protocol of :mod:`coda_utils.evaluation` (``idc`` with ResNet-AP-10, ``rded`` with a teacher
trained on ``fit``). A point is one draw per selection seed
(discovery's UMAP seed, the generator's noise), exactly as in the study: its folder
``out_dir/<sweep>/<key>/`` holds ``point.json`` (its parameters), one distilled set per seed
(``seed<S>/``) and ``results.csv`` (one row per network, with its ``selection_seed``);
re-running a point resumes it, and :func:`collect` gathers all points into one table (one row
per point and seed). Their tables and figures are :mod:`coda_utils.ablations` (notebook 05's module,
which re-exports this one's names): :func:`~coda_utils.ablations.choice_table` reports each point's
mean ± std over seeds and the best point's paired contrast with the runner-up, so a chosen default
comes with its interval.

Sweeps (:data:`SWEEPS`): discovery (n_neighbors x min_cluster_size), gamma, guide_fraction,
the guidance variant (reference vs normalized pull, x gamma), ipc, the discovery feature
space (VAE latents vs raw pixels), and ``selection``: how set R is made at one IPC (variants of
discovery, one change each, against random real, k-means and herding; :data:`SELECTION_POINTS`),
the question of why discovery falls below random real at IPC 50. All points of one process share one numba compile of
umap-learn and one UMAP per (class, n_neighbors, feature space, seed).

Cost on this project's 2-core CPU (one thread, ConvNet-3 100 epochs in bf16, 3 seeds): a point
at IPC 10 is ~1.5-2.5 min (3 x (generation ~12 s + training ~35 s)); a new n_neighbors or
feature space adds ~30 s of UMAP per seed; an IPC-50 point ~8 min. The default grid (29 points)
is about 70 minutes on one core.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import alignment, baselines, discovery, evaluation, parallel, rundir, setfolder
from .datasets import LabeledImages
from .io import read_json, write_json

__all__ = ["SWEEPS", "CHOICES", "SELECTION_POINTS", "ArrayFeatures", "PixelFeatures", "AblationRunner", "sweep_points", "prepare", "make_runner", "fit_and_val",
           "collect"]

#: sweep name -> (row parameter, column parameter or None)
SWEEPS: dict[str, tuple[str, str | None]] = {
    "discovery": ("min_cluster_size", "n_neighbors"),
    "gamma": ("gamma", None),
    "guide_fraction": ("guide_fraction", None),
    "variant": ("variant", "gamma"),
    "ipc": ("ipc", None),
    "features": ("features", None),
    "selection": ("selection", None),
}
#: sweeps whose best point is a choice (more images per class is not a setting to choose)
CHOICES = ("discovery", "gamma", "guide_fraction", "variant", "features")


class ArrayFeatures:
    """A stand-in for :class:`~coda_utils.encoding.LatentCache` over any per-image features
    (``features[i]`` of image ``i`` of ``data``), so that discovery runs unchanged in another
    feature space (the feature-space ablations: pixels, a classifier's features)."""

    def __init__(self, data: LabeledImages, features: np.ndarray | None = None):
        self.data = data
        self._idx = [data.class_indices(c) for c in range(data.num_classes)]
        if features is not None and len(features) != len(data):
            raise ValueError(f"{len(features)} feature rows for the {len(data)} images of {data.name}")
        self._features = features

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
        return np.asarray(self._features[self._idx[c]])


class PixelFeatures(ArrayFeatures):
    """:class:`ArrayFeatures` over raw pixels (``[0, 1]``), loaded per class."""

    def latents(self, c: int) -> np.ndarray:
        return self.data.load(self._idx[c]).float().numpy() / 255.0


#: the ``selection`` sweep: how set R is made at one IPC, against the other selections of real
#: images, on the same ``fit`` / ``val`` cut. ``discovery`` is the study's discovery (VAE latents,
#: the reference hyperparameters scaled to the class size, the reference exactly-IPC step); each
#: ``discovery_*`` point changes one thing of it; the last three are the baselines.
SELECTION_POINTS: dict[str, dict] = {
    "discovery": {},
    "discovery_no_noise_fill": {"noise_fill": False},
    "discovery_pixels": {"features": "pixels"},
    "discovery_pca": {"pca_dims": 50},
    "discovery_judge": {"features": "judge"},
    "discovery_unscaled": {"n_neighbors": discovery.REFERENCE["n_neighbors"],
                           "min_cluster_size": discovery.REFERENCE["min_cluster_size"]},
    "random_real": {},
    "kmeans": {},
    "herding": {},
}
_BASELINE_SELECTIONS = ("random_real", "kmeans", "herding")


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
        selection_seeds: every point is distilled and judged once per seed.
        epochs, repeats, precision: the evaluation (``epochs`` of the protocol, ``None`` for
            its own; ``repeats`` networks per seed).
        arch, protocol: the evaluation network and protocol (default ConvNet-3, ``dc``; an
            ImageNet subset: ``resnet_ap10``, ``idc``; soft labels: ``rded`` with ``teacher``).
        teacher, teacher_id: the soft-label protocol's teacher (:func:`~coda_utils.teachers.load_teacher`).
        image_size: train and judge at this square size (ImageFolder trees of mixed sizes);
            ``None``: the sets' own size.

    The sets are exported and generated with the resize policy of ``cache`` (as notebooks
    02-03 do), so mixed-size ImageFolder trees work as in the study.
    """

    fit: LabeledImages
    val: LabeledImages
    cache: Any
    out_dir: Path
    model: str
    defaults: dict
    selection_seeds: list = field(default_factory=lambda: [0, 1, 2])
    epochs: int | None = 100
    repeats: int = 1
    precision: str = "fp32"
    device: str = "cpu"
    progress: bool = True
    arch: str = "convnet3"
    protocol: str = "dc"
    teacher: Any = None
    teacher_id: str | None = None
    image_size: int | None = None
    #: feature spaces beyond ``vae`` and ``pixels`` (``{"judge": ArrayFeatures(fit, ...)}``: the
    #: caller computes them, since the judge belongs to the embedded prior, above this module)
    feature_sources: dict = field(default_factory=dict)
    _pipe: Any = None
    _discoveries: dict = field(default_factory=dict)
    _val: Any = None

    def __post_init__(self):
        self.selection_seeds = rundir.selection_seeds(self.selection_seeds)

    def pipe(self):
        if self._pipe is None:
            self._pipe = alignment.load_pipeline(self.model, self.device)
        return self._pipe

    def _features(self, features: str):
        if features == "vae":
            return self.cache
        if features == "pixels":
            return PixelFeatures(self.fit)
        if features not in self.feature_sources:
            raise ValueError(f"features {features!r}: this runner has no such feature space (vae, pixels"
                             f"{''.join(', ' + f for f in self.feature_sources)}); notebook 05 adds the judge's features "
                             "(runner.feature_sources['judge'])")
        return self.feature_sources[features]

    def discovery(self, ipc: int, n_neighbors: int | None, min_cluster_size: int | None, min_samples: int,
                  features: str = "vae", seed: int = 0, pca_dims: int | None = None,
                  noise_fill: bool = True) -> discovery.Discovery:
        """Discovery with these settings, reusing the UMAP embeddings of an earlier call with the
        same (n_neighbors, features, seed, pca_dims): only HDBSCAN and the post-processing run again."""
        source = self._features(features)
        reuse = next((d for (nn, f, s, pd_, *_), d in self._discoveries.items()
                      if nn == n_neighbors and f == features and s == seed and pd_ == pca_dims), None)
        key = (n_neighbors, features, seed, pca_dims, ipc, min_cluster_size, min_samples, noise_fill)
        if key not in self._discoveries:
            self._discoveries[key] = discovery.discover(source, ipc, n_neighbors, min_cluster_size, min_samples,
                                                        seed, pca_dims=pca_dims, progress=False, reuse=reuse,
                                                        noise_fill=noise_fill)
        return self._discoveries[key]

    def _selection(self, name: str, p: dict, seed: int) -> tuple[np.ndarray, dict]:
        """The ``selection`` sweep's set for one seed: positions into ``fit`` and what its
        manifest records."""
        if name not in SELECTION_POINTS:
            raise ValueError(f"unknown selection {name!r}; choose from {', '.join(SELECTION_POINTS)}")
        ipc = p["ipc"]
        if name == "random_real":
            return baselines.random_real(self.fit, ipc, seed=seed), {"selection_seed": seed}
        if name == "kmeans":
            return (baselines.select_per_class(self.cache, baselines.kmeans_nearest_real, ipc, seed=seed),
                    {"selection_seed": seed})
        if name == "herding":
            return baselines.select_per_class(self.cache, baselines.herding, ipc), {"selection_seed": seed}
        q = {**p, "features": "vae", "pca_dims": None, "noise_fill": True, **SELECTION_POINTS[name]}
        disc = self.discovery(ipc, q["n_neighbors"], q["min_cluster_size"], q["min_samples"], q["features"], seed,
                              q["pca_dims"], q["noise_fill"])
        return disc.positions, {**disc.manifest(), "features": q["features"], "selection_seed": seed}

    def _point(self, sweep: str, values: dict) -> tuple[dict, rundir.AblationDir, Path, int]:
        """A point's parameters, folder and epochs (an unknown sweep stops here)."""
        if sweep not in SWEEPS:
            raise ValueError(f"unknown sweep {sweep!r}; choose from {', '.join(SWEEPS)}")
        p = {**self.defaults, **values}
        folder = rundir.AblationDir(self.out_dir)
        point = folder.point(sweep, _key(values))
        epochs = evaluation.get_protocol(self.protocol, p["ipc"], self.epochs, self.fit.num_classes).epochs
        return p, folder, point, epochs

    def _declare(self, sweep: str, values: dict) -> None:
        """Write a point's ``point.json`` (its parameters), before any of its seeds runs."""
        p, folder, point, epochs = self._point(sweep, values)
        write_json(folder.point_json(point), {"sweep": sweep, "values": values, "parameters": p, "epochs": epochs,
                                              "arch": self.arch, "protocol": self.protocol, "teacher": self.teacher_id,
                                              "selection_seeds": self.selection_seeds, "evaluated_on": self.val.name})

    def run_seed(self, sweep: str, values: dict, seed: int, processes: Any = None) -> float:
        """One point of ``sweep`` for one selection seed (the unit of work): its set (discovery,
        then export or generation) and its networks, judged on ``val``; a finished seed is read
        back. ``processes``: the rows go to this process's file (:func:`coda_utils.parallel.rank_results`).
        Returns the mean accuracy of the seed's networks."""
        p, folder, point, epochs = self._point(sweep, values)
        size = (self.image_size, self.image_size) if self.image_size else self.val.native_size
        if size is None:
            raise ValueError(f"{self.val.name} has images of mixed sizes: pass image_size (the size to train and judge at)")
        finished = parallel.results_so_far(folder.results(point))
        rows = finished[(finished["selection_seed"] == seed) & (finished["epochs"] == epochs)
                        & (finished["protocol"] == self.protocol) & (finished["arch"] == self.arch.lower())]
        if len(rows) >= self.repeats and setfolder.is_finished(folder.set_dir(point, seed)):
            return float(rows["acc"].iloc[:self.repeats].mean())  # finished: no discovery, no generation
        if self._val is None:
            self._val = (self.val.load(None, size), self.val.labels)
        policy = self.cache.policy if hasattr(self.cache, "policy") else None
        if sweep == "selection":
            positions, record = self._selection(p["selection"], p, seed)
            set_dir = baselines.export_selection(self.fit, positions, folder.set_dir(point, seed), p["selection"],
                                                 p["ipc"], record)
            return self._evaluate(values, p, seed, set_dir, folder, point, processes)
        disc = self.discovery(p["ipc"], p["n_neighbors"], p["min_cluster_size"], p["min_samples"], p["features"], seed)
        if sweep in ("gamma", "guide_fraction", "variant"):
            k = p["ipc"]
            z_reps = [disc.latents[c * k:(c + 1) * k] for c in range(self.fit.num_classes)]
            guidance = alignment.GuidanceConfig(gamma=p["gamma"], guide_fraction=p["guide_fraction"],
                                                variant=p.get("variant", "reference"))
            set_dir = alignment.generate_set(
                self.pipe(), folder.set_dir(point, seed), self.fit.classes, self.fit.prompts, p["ipc"],
                z_reps=z_reps if p["gamma"] else None, guidance=guidance, cfg_scale=p["cfg_scale"], steps=p["steps"],
                seed=seed, batch_size=50, native_size=policy.native if policy else self.fit.native_size,
                resize=policy.mode if policy else "pad", method=f"coda_g_{_key(values)}",
                model_id=str(self.model), progress=self.progress, extra={"selection_seed": seed})
        else:
            set_dir = baselines.export_selection(self.fit, disc.positions, folder.set_dir(point, seed), f"coda_r_{_key(values)}",
                                                 p["ipc"], {**disc.manifest(), "features": p["features"],
                                                            "selection_seed": seed})
        return self._evaluate(values, p, seed, set_dir, folder, point, processes)

    def _evaluate(self, values: dict, p: dict, seed: int, set_dir: Path, folder, point: Path, processes: Any) -> float:
        """Train the point's networks on its set of one seed, judged on ``val``."""
        train_x, train_y, _ = setfolder.read_set(set_dir, size=self.image_size, classes=self.fit.classes)
        res = evaluation.evaluate(_key(values), train_x, train_y, *self._val, ipc=p["ipc"], arch=self.arch,
                                  protocol=self.protocol, repeats=self.repeats, selection_seed=seed, epochs=self.epochs,
                                  device=self.device, precision=self.precision,
                                  out_csv=parallel.rank_results(folder.results(point), processes),
                                  progress=False, teacher=self.teacher, teacher_id=self.teacher_id)
        return float(res["acc"].mean())

    def run(self, sweep: str, **values) -> dict:
        """Run (or resume) one point of ``sweep`` for every selection seed; ``values`` override
        :attr:`defaults`. Returns the point's mean and std over seeds on ``target_val``."""
        t0 = time.perf_counter()
        self._declare(sweep, values)
        per_seed = [self.run_seed(sweep, values, s) for s in self.selection_seeds]
        return {"sweep": sweep, **values, "acc": float(np.mean(per_seed)),
                "acc_std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else float("nan"),
                "seeds": len(per_seed), "seconds": round(time.perf_counter() - t0, 1)}

    def run_points(self, points: list[tuple[str, dict]], processes: Any = None) -> list[dict]:
        """Every ``(sweep, values)`` point for every selection seed, as :meth:`run` runs them one
        after the other. With ``processes`` (an ``accelerate launch`` job, :mod:`coda_utils.parallel`)
        the (point, seed) units are shared round robin; each process appends its networks to its
        own file beside the point's ``results.csv`` and the first process merges them in the
        one-process order, so the folder ends as one process leaves it (a killed job resumes with
        any number of processes). Returns :meth:`run`'s summary of every point (read back; on the
        first process only, the others return ``[]``)."""
        if processes is None:
            return [self.run(sweep, **values) for sweep, values in points]
        folder = rundir.AblationDir(self.out_dir)
        for sweep, values in points:
            self._declare(sweep, values)  # every sweep known before any work starts
        paths = [folder.results(folder.point(sweep, _key(values))) for sweep, values in points]
        parallel.start_rank_results(paths, processes)
        units = [(sweep, values, s) for sweep, values in points for s in self.selection_seeds]
        t0 = time.perf_counter()
        for sweep, values, s in parallel.share(units, processes):
            self.run_seed(sweep, values, s, processes)
        seconds = round(time.perf_counter() - t0, 1)
        parallel.merge_rank_results(paths, processes, lambda rows: list(zip(rows["selection_seed"], rows["seed"])))
        if not parallel.is_main(processes):
            return []
        return [{**self.run(sweep, **values), "seconds": seconds / max(len(points), 1)} for sweep, values in points]


def sweep_points(p: dict) -> list[tuple[str, dict]]:
    """The points of the sweeps ``p["sweeps"]`` from notebook 05's grid parameters
    (``n_neighbors_grid`` x ``min_cluster_size_grid``, ``gamma_grid``, ``guide_fraction_grid``,
    ``variant_grid`` x ``variant_gamma_grid``, ``ipc_grid``, ``features_grid``, ``selection_grid``), in order."""
    grids = {
        "discovery": [dict(n_neighbors=a, min_cluster_size=b) for a in p["n_neighbors_grid"] for b in p["min_cluster_size_grid"]],
        "gamma": [dict(gamma=g) for g in p["gamma_grid"]],
        "guide_fraction": [dict(guide_fraction=f) for f in p["guide_fraction_grid"]],
        "variant": [dict(variant=v, gamma=g) for v in p["variant_grid"] for g in p["variant_gamma_grid"]],
        "ipc": [dict(ipc=i) for i in p["ipc_grid"]],
        "features": [dict(features=f) for f in p["features_grid"]],
        "selection": [dict(selection=s) for s in p["selection_grid"]],
    }
    return [(sweep, values) for sweep in p["sweeps"] for values in grids[sweep]]


def prepare(p: dict, processes: Any = None) -> tuple[LabeledImages, LabeledImages, Any, dict]:
    """Notebook 05's data from its parameters ``p``: ``fit`` and ``val`` (:func:`fit_and_val`,
    recorded in the folder's ``holdout.json``) and ``fit``'s latent cache (encoded once into the
    folder, shared by ``processes`` as in notebook 01). ``fit`` comes back with the cache's resize
    policy, so points export and generate at the size and channels of the cache, as 02-03.
    Returns ``(fit, val, cache, holdout record)``."""
    from . import encoding

    folder = rundir.AblationDir(p["out_dir"])
    fit, val, holdout = fit_and_val(p["dataset"], p["data_root"], p["holdout_fraction"], p["class_limit"],
                                    p["per_class_limit"], record_to=folder.holdout)
    cache = encoding.encode_dataset(fit, encoding.load_vae(p["model"], p["device"]), folder.latents, encoder_id=p["model"],
                                    device=p["device"], progress=p["progress"] and parallel.is_main(processes),
                                    processes=processes)
    return fit.with_policy(cache.policy), val, cache, holdout


def make_runner(p: dict, fit: LabeledImages, val: LabeledImages, cache: Any, processes: Any = None) -> AblationRunner:
    """The :class:`AblationRunner` of notebook 05's parameters ``p``. Under a soft-label
    protocol its teacher is ``p["teacher"]`` or, with ``None``, ``p["arch"]`` trained once on
    ``fit`` (never on the held-out images it judges on) and cached in the folder; with
    ``processes`` the first process trains it and the others load it."""
    folder = rundir.AblationDir(p["out_dir"])
    model, teacher_id = None, None
    if p["protocol"] in evaluation.SOFT_LABEL_PROTOCOLS:
        size = (p["image_size"], p["image_size"]) if p["image_size"] else fit.native_size

        def teacher():
            return evaluation.teacher_for(p["protocol"], p["teacher"], folder.teacher(p["arch"], p["teacher_epochs"]), fit,
                                          size, val.load(None, size), val.labels, arch=p["arch"], epochs=p["teacher_epochs"],
                                          device=p["device"], precision=p["precision"],
                                          progress=p["progress"] and parallel.is_main(processes))

        if parallel.is_main(processes):  # the first process trains (or loads) it, then the others load it
            model, teacher_id, _ = teacher()
        parallel.barrier(processes)
        if not parallel.is_main(processes):
            model, teacher_id, _ = teacher()
    return AblationRunner(
        fit, val, cache, p["out_dir"], p["model"], selection_seeds=p["selection_seeds"], epochs=p["epochs"],
        repeats=p["repeats"], precision=p["precision"], device=p["device"], progress=p["progress"] and parallel.is_main(processes),
        arch=p["arch"], protocol=p["protocol"], teacher=model, teacher_id=teacher_id, image_size=p["image_size"],
        defaults=dict(ipc=p["ipc"], gamma=p["gamma"], guide_fraction=p["guide_fraction"], n_neighbors=p["n_neighbors"],
                      min_cluster_size=p["min_cluster_size"], min_samples=p["min_samples"], features="vae",
                      variant="reference", steps=p["steps"], cfg_scale=p["cfg_scale"]))


def fit_and_val(dataset: str = "fashion-mnist", data_root: str | Path | None = None, holdout_fraction: float = 0.2,
                class_limit: int | None = None, per_class_limit: int | None = None,
                record_to: str | Path | None = None) -> tuple[LabeledImages, LabeledImages, dict]:
    """The part of the train split a sweep distils (``fit``) and the held-out part it is judged
    on (``val``); never the test / val split of the dataset.

    Fashion-MNIST: the fixed ``target_fit`` / ``target_val``. An ImageFolder tree (``dataset``
    an ImageNet subset, ``data_root`` its train split): a fixed, seeded ``holdout_fraction`` of
    every class (:func:`~coda_utils.datasets.holdout_split`). ``class_limit`` /
    ``per_class_limit`` cut ``fit`` (and ``val`` to the same classes) for quick runs. The cut is
    written to ``record_to`` (``AblationDir.holdout``) when given; a folder whose record names
    another cut is refused, so the points of one folder are always judged on the same images.
    """
    from . import datasets, encoding

    if str(dataset).lower() in ("fashion-mnist", "fashion_mnist", "fmnist"):
        fit, val = datasets.load_fashion_mnist("target_fit"), datasets.load_fashion_mnist("target_val")
        record = {"dataset": "fashion-mnist", "fit": "target_fit (train[50000:58000])",
                  "val": "target_val (train[58000:60000])"}
    else:
        fit, val, record = datasets.holdout_split(datasets.load_dataset(dataset, "train", data_root), holdout_fraction)
    fit = encoding.limit_dataset(fit, class_limit, per_class_limit)
    val = encoding.limit_dataset(val, class_limit, None)
    record = {**record, "class_limit": class_limit, "per_class_limit": per_class_limit}
    if record_to is not None:
        record_to = Path(record_to)
        if record_to.is_file() and read_json(record_to) != record:
            raise ValueError(f"{record_to} records another fit / val cut ({read_json(record_to)}); its points were judged "
                             f"on other images: choose another out_dir, or delete {record_to.parent} to start again")
        write_json(record_to, record)
    return fit, val, record


def collect(out_dir: str | Path) -> pd.DataFrame:
    """Every finished point under ``out_dir``: one row per (point, selection seed) with its
    sweep, swept values, accuracy on ``target_val`` (its networks averaged) and ``networks``; a
    ``selection`` point's rows also give its ``ipc`` and count its representatives by strategy
    (``strategy_<name>``)."""
    rows = []
    folder = rundir.AblationDir(out_dir)
    for point in folder.points():
        csv = folder.results(point)
        if not csv.is_file():
            continue
        meta = read_json(folder.point_json(point))
        res = evaluation.read_results(csv)
        for s, part in res.groupby("selection_seed", sort=True):
            rows.append({"sweep": meta["sweep"], **meta["values"], "selection_seed": int(s), "acc": part["acc"].mean(),
                         "networks": len(part), "epochs": int(part["epochs"].iloc[0]),
                         "precision": str(part["precision"].iloc[0]),
                         **({"ipc": int(meta["parameters"]["ipc"]), **_strategies(folder.set_dir(point, int(s)))}
                            if meta["sweep"] == "selection" else {})})
    return pd.DataFrame(rows)


def _strategies(set_dir: Path) -> dict:
    """How a ``selection`` point's set R got its representatives: ``strategy_<name>`` = how many
    (every class) came from each exactly-IPC strategy (:data:`coda_utils.discovery.STRATEGIES`),
    read from the set's manifest; ``{}`` for a set no discovery made (random, k-means, herding)."""
    manifest = setfolder.read_manifest(set_dir) if (Path(set_dir) / "manifest.json").is_file() else {}
    every = [s for c in manifest.get("discovery", {}).get("per_class", []) for s in c["strategies"]]
    return {f"strategy_{s}": every.count(s) for s in discovery.STRATEGIES if every}
