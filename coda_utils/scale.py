"""The long stages of a run on several processes: ``accelerate launch -m coda_utils.scale``.

Notebooks 01 (encoding), 03 (generation), 04 (evaluation) and 05 (ablations) run in one kernel. For ImageNet-1K
(1.28 M images to encode, 50,000 SDXL images at IPC 50, dozens of networks) their heavy step runs
first under ``accelerate launch``, with **the notebook's own parameters** (its defaults, then
``-p name value`` / ``-y yaml`` exactly as papermill takes them, checked by
:mod:`coda_utils.params`), and writes what the notebook would write into the run folder; the
notebook, run afterwards with the same parameters, finds the finished cache, sets or networks
and goes on to its tables and figures. Work is split as :mod:`coda_utils.parallel` describes:
the outputs are those of one process, and a killed job resumes when started again::

    accelerate launch --multi_gpu --num_processes 8 -m coda_utils.scale 01 -p run_dir runs/in1k \\
        -p dataset imagenet-1k -p data_root /data/imagenet/train -p model stabilityai/stable-diffusion-xl-base-1.0 \\
        -p device cuda -p dtype float16
    papermill notebooks/01_encode.ipynb runs/in1k/01_encode.ipynb -p run_dir runs/in1k ...   # the same -p

Stages: ``01`` (:func:`encode`), ``03`` (:func:`generate`: the generated sets of every seed and
method; trajectories, figures and Frechet distances stay in the notebook), ``04``
(:func:`evaluate`: every network of every method and seed, one results file per method), ``05``
(:func:`ablate`: every point of the sweeps for every selection seed, one results file per point).
Stage 2 runs in one process (UMAP is fast next to encoding and generation); :func:`discover` is
notebook 02's discovery and selections for every seed, as the ``coda`` command
(:mod:`coda_utils.cli`) runs it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import torch

from . import parallel, params
from .rundir import (ALL_REAL_METHODS, GUIDED_BY, NO_NOISE_FILL, REAL_METHODS,  # (REAL_METHODS re-exported)
                     SELECTION_GENERATION_METHODS)

__all__ = ["notebook_parameters", "encode", "discovery_inputs", "discover", "Discovered", "REAL_METHODS", "generate",
           "evaluate", "generate_sets", "selection_latents", "ablate", "main"]

STAGES = {"01": "01_encode.ipynb", "02": "02_discover.ipynb", "03": "03_generate.ipynb", "04": "04_evaluate.ipynb",
          "05": "05_ablations.ipynb"}


def notebook_parameters(stage: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters of a stage's notebook: its defaults (the ``parameters`` cell, read by
    papermill, and the advanced settings of :data:`coda_utils.params.ADVANCED`), updated with
    ``overrides`` and checked by the notebook's own checker. Unlike papermill, which injects an
    unknown name with a warning, a name the notebook does not have is an error here."""
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r}: choose one of {', '.join(STAGES)}")
    values = params.notebook_defaults(STAGES[stage])
    unknown = sorted(set(overrides or {}) - set(values))
    if unknown:
        raise params.ParameterError(f"{STAGES[stage]} has no parameter {', '.join(unknown)}; its parameters: "
                                    f"{', '.join(values)}")
    values.update(overrides or {})
    params.check(STAGES[stage].removesuffix(".ipynb"), values)
    return values


def _device(p: dict, procs) -> str:
    """Each process's device: the launch's (``cuda:<local rank>``) for a GPU run, else the CPU."""
    return str(procs.device) if p["device"] != "cpu" and procs is not None else p["device"]


def _target(p: dict):
    from . import datasets, encoding

    data = datasets.load_dataset(p["dataset"], p["split"] or ("target" if p["data_root"] is None else "train"), p["data_root"])
    return encoding.limit_dataset(data, p.get("class_limit"), p.get("per_class_limit"))


def encode(p: dict, procs=None):
    """Notebook 01's encoding (:func:`coda_utils.encoding.encode_dataset`), this process's classes."""
    from . import encoding, rundir

    run = rundir.RunDir(p["run_dir"])
    device = _device(p, procs)
    vae = encoding.load_vae(p["model"], device, getattr(torch, p["dtype"]))
    return encoding.encode_dataset(_target(p), vae, run.latents, encoder_id=p["model"], size=p["size"], resize=p["resize"],
                                   batch_size=p["batch_size"], device=device, dtype=getattr(torch, p["dtype"]),
                                   rebuild=p["rebuild"], progress=p["progress"], num_workers=p["num_workers"],
                                   processes=procs)


class Discovered(NamedTuple):
    """What :func:`discover` made (or found): ``discoveries[seed]`` (a
    :class:`~coda_utils.discovery.Discovery`), ``selections[(method, seed)]`` (dataset positions;
    herding's seed is ``None``), ``sets[(method, seed)]`` (the set folders) and ``found``: the seeds
    whose discovery was read back instead of computed."""

    discoveries: dict
    selections: dict
    sets: dict
    found: list


def discovery_inputs(p: dict):
    """Notebook 02's inputs: the split being distilled (``dataset``, ``data_root``, ``split``,
    ``class_limit``, ``per_class_limit``) and the run's latent cache, checked against each other and
    against ``model``; the split carries the cache's resize policy, so that R is exported the way
    notebook 01 encoded (R and G alike). Returns ``(target, cache)``."""
    from . import encoding, rundir

    target = _target(p)
    cache = encoding.LatentCache.load(rundir.RunDir(p["run_dir"]).latents)
    cache.check_dataset(target)
    cache.check_encoder(p["model"])
    return target.with_policy(cache.policy), cache


def _saved_discovery(path: Path, cache, p: dict):
    """The discovery saved at ``path`` when it was made with ``p``'s settings on this very cache
    (its parameters, class names, and the representatives' latents equal to the cache's at their
    positions), else ``None`` (missing, damaged or made otherwise: computed again and replaced)."""
    import numpy as np

    from . import discovery
    from .io import CorruptFileError

    if not path.is_file():
        return None
    try:
        d = discovery.load_discovery(path)
    except (CorruptFileError, OSError, KeyError, ValueError, TypeError):
        return None
    hp = discovery.scaled_hyperparameters(float(np.mean(cache.counts)))  # as discovery.discover resolves None
    want = {"ipc": int(p["ipc"]), "seed": int(p["seed"]), "noise_fill": bool(p.get("noise_fill", True)),
            "min_samples": int(p["min_samples"]), "pca_dims": p["pca_dims"],
            "n_neighbors": hp["n_neighbors"] if p["n_neighbors"] is None else int(p["n_neighbors"]),
            "min_cluster_size": hp["min_cluster_size"] if p["min_cluster_size"] is None else int(p["min_cluster_size"]),
            "n_components": discovery.REFERENCE["n_components"]}
    made = {k: d.params.get(k, True if k == "noise_fill" else None) for k in want}  # (no noise_fill key: it filled)
    if made != want or list(d.class_names) != list(cache.class_names):
        return None
    for c, cd in zip(d.class_ids, d.per_class):
        if len(cd.positions) != want["ipc"] or not np.array_equal(
                np.asarray(cd.latents, dtype=np.float32), np.asarray(cache.latents(c)[cd.positions], dtype=np.float32)):
            return None
    return d


def _export(target, positions, set_dir: Path, method: str, ipc: int, extra: dict) -> bool:
    """Export a selection as a set folder (:func:`coda_utils.baselines.export_selection`) unless a
    finished one of the same images, method and resize policy is there; returns whether it wrote."""
    from . import baselines, setfolder

    if setfolder.is_finished(set_dir):
        m = setfolder.read_manifest(set_dir)
        policy = None if target.policy is None else json.loads(json.dumps(target.policy.to_dict()))  # as the manifest reads
        if (m.get("method") == method and m.get("ipc") == int(ipc) and m.get("resize_policy") == policy
                and m.get("source_indices") == target.source_indices[positions].tolist()):
            return False
    baselines.export_selection(target, positions, set_dir, method, ipc, extra)
    return True


def discover(p: dict, methods: Sequence[str] | None = None, *, target=None, cache=None, embeddings: dict | None = None,
             resume: bool = True, log: Callable[[str], Any] | None = print) -> Discovered:
    """Notebook 02's discovery and selections (stage 2), with its parameters ``p`` (``ipc``,
    ``selection_seeds``, ``n_neighbors``, ``min_cluster_size``, ``min_samples``, ``pca_dims``,
    ``progress``, ``run_dir`` and the data's: checked by :func:`coda_utils.params.check_discover`;
    a notebook passes ``globals()``). For every selection seed: discovery on every class of the
    run's latent cache (:func:`coda_utils.discovery.discover`), saved as
    ``discovery/ipcN_seedS.json`` (+ ``.npz``: the representatives' latents that notebook 03
    guides with); then the selections of ``methods`` (of :data:`REAL_METHODS`: R from the
    discovery, k-means nearest-real seeded by the seed, herding once) exported as set folders
    ``sets/<method>_ipcN_seedS/`` (``sets/herding_ipcN/``), each with a manifest saying what made it.

    Args:
        methods: which selections to export, of :data:`~coda_utils.rundir.ALL_REAL_METHODS` (``None``: ``p["methods"]``, notebook 02's
            advanced setting, all three of :data:`REAL_METHODS` by default; ``coda distill``: R).
            ``coda_r_no_noise_fill`` runs discovery a second time per seed without the fill from
            HDBSCAN's noise (reusing the seed's UMAP embeddings), saved beside the first.
        target, cache: :func:`discovery_inputs` of ``p``, when the caller has them already.
        embeddings: ``{class index: embedding}`` computed with these very settings for the
            first selection seed (notebook 02's walk-through), used instead of a second UMAP.
        resume: read back a seed's saved discovery when it was made with these settings on this
            cache (instead of computing it again), and keep a finished set folder of the same
            images; ``False``: compute and write everything again.
        log: one line per seed and per set (``print``; ``None``: silent).

    Returns:
        a :class:`Discovered`.
    """
    import time

    from . import baselines, discovery, rundir

    methods = list(p.get("methods") or REAL_METHODS) if methods is None else list(methods)
    unknown = [m for m in methods if m not in ALL_REAL_METHODS]
    if unknown:
        raise params.ParameterError(f"methods {unknown}: stage 2 makes {', '.join(ALL_REAL_METHODS)}")
    say = log or (lambda line: None)
    run = rundir.RunDir(p["run_dir"])
    if target is None or cache is None:
        target, cache = discovery_inputs(p)
    seeds = rundir.selection_seeds(p["selection_seeds"])
    ipc = p["ipc"]
    discoveries, found = {}, []
    for s in seeds:
        t0 = time.perf_counter()
        path = run.discovery(ipc, s)
        d = _saved_discovery(path, cache, {**p, "seed": s}) if resume else None
        if d is not None:
            found.append(s)
        else:
            d = discovery.discover(cache, ipc, p["n_neighbors"], p["min_cluster_size"], p["min_samples"], s, p["pca_dims"],
                                   progress=p["progress"], embeddings=embeddings if s == seeds[0] else None)
            d.save(path)
        discoveries[s] = d
        say(f"seed {s}: " + ("found " + str(path) + " (same settings, same cache)" if s in found
                             else f"{time.perf_counter() - t0:.1f} s")
            + f", representatives by strategy {d.strategy_counts()}")
    selections, no_fill = {}, {}
    for s in seeds if NO_NOISE_FILL in methods else []:  # R without the fill from noise (beyond the paper)
        path = run.discovery(ipc, s, noise_fill=False)
        d = _saved_discovery(path, cache, {**p, "seed": s, "noise_fill": False}) if resume else None
        if d is None:
            d = discovery.discover(cache, ipc, p["n_neighbors"], p["min_cluster_size"], p["min_samples"], s, p["pca_dims"],
                                   progress=p["progress"], reuse=discoveries[s], noise_fill=False)
            d.save(path)
        no_fill[s] = d
        selections[NO_NOISE_FILL, s] = d.positions
        say(f"seed {s} without the noise fill: representatives by strategy {d.strategy_counts()}")
    if "coda_r" in methods:
        selections.update({("coda_r", s): d.positions for s, d in discoveries.items()})
    if "kmeans" in methods:
        selections.update({("kmeans", s): baselines.select_per_class(cache, baselines.kmeans_nearest_real, ipc, seed=s)
                           for s in seeds})
    if "herding" in methods:
        selections[("herding", None)] = baselines.select_per_class(cache, baselines.herding, ipc)
    encoder = cache.meta["encoder"]
    sets = {}
    for (name, s), pos in selections.items():
        extra = {"selection_seed": s, "encoder": encoder}
        if name == "coda_r":
            extra.update(discoveries[s].manifest())
        elif name == NO_NOISE_FILL:
            extra.update(no_fill[s].manifest())
        elif name == "kmeans":
            extra.update(space="standardized VAE latents", seed=s)
        else:
            extra.update(space="standardized VAE latents", deterministic=True)
        set_dir = run.set_dir(name, ipc, s)
        wrote = _export(target, pos, set_dir, name, ipc, extra) if resume else bool(
            baselines.export_selection(target, pos, set_dir, name, ipc, extra))
        sets[name, s] = set_dir
        say(f"{name} (seed {s}): {len(pos)} images -> {set_dir.relative_to(run.root)}" + ("" if wrote else " (kept)"))
    return Discovered(discoveries, selections, sets, found)


def selection_latents(run, cache, method: str, ipc: int, seed: int | None) -> list:
    """The latents of a real selection's images, class by class in the set's order (float32,
    ``IPC x C x h x w`` each): the set folder ``sets/<method>_ipcN_seedS/`` (of
    :data:`REAL_METHODS`; herding: its one set) names its images by source index, and the run's
    latent cache holds their latents. What ``coda_g_kmeans`` and ``coda_g_herding`` are guided by.

    Raises:
        FileNotFoundError: the set is not (finished) in the run folder: run notebook 02 first.
        ValueError: an image of the set is not in the latent cache, or a class has another count.
    """
    import numpy as np

    from . import setfolder

    set_dir = run.set_dir(method, ipc, seed)  # herding's one set whatever the seed
    if not setfolder.is_finished(set_dir):
        raise FileNotFoundError(f"{set_dir}: no finished {method} set at IPC {ipc}; run notebook 02 (coda discover "
                                f"--methods {method}) with these selection seeds first")
    wanted = setfolder.read_manifest(set_dir)["source_indices"]
    where = {}  # source index -> (class, row of the class's latents)
    for c in range(cache.num_classes):
        where.update((int(i), (c, r)) for r, i in enumerate(cache.source_indices(c)))
    missing = [i for i in wanted if int(i) not in where]
    if missing:
        raise ValueError(f"{set_dir}: {len(missing)} of its images (source indices {missing[:5]}) are not in the latent "
                         f"cache {cache.root}: the set was made from another dataset or limit; run notebook 02 again")
    rows = [[] for _ in range(cache.num_classes)]  # each class's rows of the cache, in the set's order
    for i in wanted:
        c, r = where[int(i)]
        rows[c].append(r)
    if any(len(r) != ipc for r in rows):
        raise ValueError(f"{set_dir}: {[len(r) for r in rows]} images per class, not IPC {ipc}; run notebook 02 again")
    return [np.asarray(cache.latents(c)[r], dtype=np.float32) for c, r in enumerate(rows)]


def generate_sets(run, target, policy, z_reps: dict, pipe, guidance, p: dict, refiner_pipe=None, procs=None,
                  cache=None) -> dict:
    """Every generated set of notebook 03 (``p["methods"]`` x selection seeds), as
    :func:`coda_utils.alignment.generate_set` makes them: ``unguided`` from the class names,
    ``text_prompt`` from ``p["prompt_template"]``, ``coda_g`` guided by the seed's
    representatives ``z_reps[seed]``, ``coda_g_kmeans`` / ``coda_g_herding`` guided by the images
    of the seed's k-means / herding set (:func:`selection_latents`, from ``cache``, the run's
    latent cache, loaded when not given): the same sampler, guidance and noise seeds as
    ``coda_g``. Returns ``{(method, seed): set folder}``."""
    from . import alignment, encoding, rundir

    if cache is None and set(p["methods"]) & set(SELECTION_GENERATION_METHODS):
        cache = encoding.LatentCache.load(run.latents)
    out = {}
    for s in rundir.selection_seeds(p["selection_seeds"]):
        guides = {m: selection_latents(run, cache, GUIDED_BY[m], p["ipc"], s) if m in SELECTION_GENERATION_METHODS
                  else z_reps[s] for m in p["methods"] if m in GUIDED_BY}
        plans = {
            "unguided": dict(prompts=target.prompts, z_reps=None),
            "text_prompt": dict(prompts=[p["prompt_template"].format(n) for n in target.prompts], z_reps=None),
            **{m: dict(prompts=target.prompts, z_reps=z) for m, z in guides.items()},
        }
        for name in p["methods"]:
            extra = {"selection_seed": s, "resize_policy": policy.to_dict()}
            if name in SELECTION_GENERATION_METHODS:  # (coda_g's manifest stays as it was)
                extra["guided_by"] = GUIDED_BY[name]
            out[name, s] = alignment.generate_set(
                pipe, run.set_dir(name, p["ipc"], s, p["set_suffix"]), target.classes, ipc=p["ipc"], guidance=guidance,
                cfg_scale=p["cfg_scale"], steps=p["steps"], seed=s, batch_size=p["batch_size"], native_size=policy.native,
                resize=policy.mode, method=name, model_id=str(p["model"]), refiner=refiner_pipe,
                refiner_start=p["refiner_start"], progress=p["progress"] and parallel.is_main(procs),
                extra=extra, processes=procs, **plans[name])
    return out


def generate(p: dict, procs=None) -> dict:
    """Notebook 03's generated sets (:func:`generate_sets`), this process's batches."""
    from . import alignment, discovery, encoding, rundir

    if p["threads"]:
        torch.set_num_threads(p["threads"])
    run = rundir.RunDir(p["run_dir"])
    target = _target(p)
    cache = encoding.LatentCache.load(run.latents)
    policy = cache.policy
    target = target.with_policy(policy)
    z_reps = {}  # the representatives of notebook 02, only for the guided sets
    for s in rundir.selection_seeds(p["selection_seeds"]) if "coda_g" in p["methods"] else []:
        r = discovery.load_arrays(run.discovery(p["ipc"], s))  # checked against 02's record
        z_reps[s] = [r["latents"][r["labels"] == c] for c in range(target.num_classes)]
    device, dtype = _device(p, procs), getattr(torch, p["dtype"])
    pipe = alignment.load_pipeline(p["model"], device, dtype, p["attention_slicing"], p["vae_tiling"])
    refiner = None if p["refiner"] is None else alignment.load_pipeline(p["refiner"], device, dtype, p["attention_slicing"],
                                                                        p["vae_tiling"])
    guidance = alignment.GuidanceConfig(gamma=p["gamma"], guide_fraction=p["guide_fraction"], variant=p["variant"])
    return generate_sets(run, target, policy, z_reps, pipe, guidance, p, refiner, procs, cache=cache)


def evaluate(p: dict, procs=None):
    """Notebook 04's networks: every network of every method and seed (round robin over the
    processes), appended to ``results.rank<i>.csv`` beside each method's results file and merged
    into it by the first process at the end (the rows of one process, in the same order). Prints a
    line per network; ``p["progress"]``: a bar over each network's epochs (the first process).
    Returns this process's rows (one per network, trained now or found in the results file)."""
    import time

    from . import baselines, datasets, encoding, evaluation, rundir

    if p["threads"]:
        torch.set_num_threads(p["threads"])
    if p["protocol"] in evaluation.SOFT_LABEL_PROTOCOLS and p["teacher"] is None:
        raise params.ParameterError("parameter `teacher` = None: under several processes pass the teacher's checkpoint "
                                    "(run notebook 04 once in one process to train and cache it, or give a torchvision one)")
    run = rundir.RunDir(p["run_dir"])
    device = _device(p, procs)
    target, _, test_x, test_y = datasets.evaluation_data(p["dataset"], p["data_root"], p["split"], p["test_root"],
                                                         p["test_split"], p["image_size"], p["test_limit"], run.latents)
    methods = params.method_list(p["methods"])
    seeds = rundir.selection_seeds(p["selection_seeds"])
    vae = (encoding.load_vae(encoding.LatentCache.load(run.latents).encoder_id)
           if any(m in baselines.ROUND_TRIP for m in methods) else None)
    teacher_model, teacher_id = None, None
    if p["protocol"] in evaluation.SOFT_LABEL_PROTOCOLS:
        teacher_model, meta = evaluation.load_teacher(p["teacher"], device)
        teacher_id = meta["id"]
    # the units: one network each, in the order one process trains them
    units = [(m, s, evaluation.network_seeds(s, n)[r]) for m in methods
             for s, n in rundir.networks_for(m, seeds, p["repeats"], one_set=p["distilled"] is not None) for r in range(n)]
    if parallel.is_main(procs):  # the sets one process would make first (random real, round trips)
        for m, s in dict.fromkeys((m, s) for m, s, _ in units):
            baselines.method_set(run, m, p["ipc"], s, target, image_size=p["image_size"], vae=vae, distilled=p["distilled"])
    parallel.barrier(procs)
    # each process appends to its own file, seeded with every row found so far (the method's
    # results and any process's file of an earlier, killed job), so that finished networks are
    # not trained again whichever process they fall to now
    paths = {m: run.results(m, p["ipc"], p["protocol"]) for m in methods}
    parallel.start_rank_results(list(paths.values()), procs)
    mine, rows = parallel.share(units, procs), []
    for i, (m, s, net) in enumerate(mine, 1):
        x, y = baselines.method_set(run, m, p["ipc"], s, target, image_size=p["image_size"], vae=vae, distilled=p["distilled"])
        t0 = time.perf_counter()
        row = evaluation.evaluate(m, x, y, test_x, test_y, ipc=int(target.counts().max()) if m == "full" else p["ipc"],
                                  arch=p["arch"], protocol=p["protocol"], repeats=1, seed=net, selection_seed=s,
                                  epochs=p["epochs"], device=device,
                                  out_csv=parallel.rank_results(paths[m], procs),
                                  eval_every=p["eval_every"], progress=p["progress"] and parallel.is_main(procs),
                                  teacher=teacher_model, teacher_id=teacher_id,
                                  **evaluation.path_options(p["precision"], p["fast"])).iloc[0]
        rows.append(row)
        # one line per network (a network found in the results file is not trained again)
        took = f"{row.train_seconds:.0f} s of training" if time.perf_counter() - t0 > row.train_seconds else "found in results"
        print(f"network {i}/{len(mine)}" + (f" (process {parallel.rank(procs)})" if parallel.world(procs) > 1 else "")
              + f": {m} ipc{p['ipc']} selection seed {s} network seed {net}: acc {row.acc:.2f} % ({took})", flush=True)
    order = {(m, s, net): i for i, (m, s, net) in enumerate(units)}
    parallel.merge_rank_results(list(paths.values()), procs, lambda rows: [order.get((m, int(a), int(b)), len(order)) for m, a, b in
                                                            zip(rows.method, rows.selection_seed, rows.seed)])
    import pandas as pd

    return pd.DataFrame(rows).reset_index(drop=True)


def ablate(p: dict, procs=None) -> list[dict]:
    """Notebook 05's sweeps: its fit / val cut and latent cache (:func:`coda_utils.ablations.prepare`),
    its teacher under soft labels, then every (point, selection seed) of its sweeps shared round
    robin (:meth:`coda_utils.ablations.AblationRunner.run_points`)."""
    from . import sweeps as ablations

    if p["threads"]:
        torch.set_num_threads(p["threads"])
    p = {**p, "device": _device(p, procs)}
    fit, val, cache, _ = ablations.prepare(p, procs)
    return ablations.make_runner(p, fit, val, cache, procs).run_points(ablations.sweep_points(p), procs)


def _discover_once(p: dict, procs=None) -> None:
    """Stage 2 in a launch: the first process discovers (:func:`discover`, every selection of
    notebook 02), the others wait for it."""
    if parallel.is_main(procs):
        discover(p)
    parallel.barrier(procs)


def _parse(argv: list[str] | None) -> tuple[str, dict]:
    import yaml
    from papermill.cli import _resolve_type

    ap = argparse.ArgumentParser(prog="python -m coda_utils.scale", description=__doc__.split("\n")[0])
    ap.add_argument("stage", choices=list(STAGES), help="01 encode, 02 discover, 03 generate, 04 evaluate, 05 ablation sweeps")
    ap.add_argument("-p", "--parameters", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="a notebook parameter, as papermill -p")
    ap.add_argument("-y", "--parameters_yaml", action="append", default=[], help="parameters as YAML, as papermill -y")
    ap.add_argument("-f", "--parameters_file", action="append", default=[], help="a YAML file of parameters, as papermill -f")
    args = ap.parse_args(argv)
    overrides: dict[str, Any] = {}
    for path in args.parameters_file:  # papermill's order: files, then -y, then -p
        overrides.update(params.read_parameter_file(path))
    for text in args.parameters_yaml:
        overrides.update(yaml.safe_load(text) or {})
    for name, value in args.parameters:
        overrides[name] = _resolve_type(value)
    return args.stage, overrides


def main(argv: list[str] | None = None) -> int:
    stage, overrides = _parse(argv)
    p = notebook_parameters(stage, overrides)
    procs = parallel.processes(p["device"])
    {"01": encode, "02": _discover_once, "03": generate, "04": evaluate, "05": ablate}[stage](p, procs)
    if parallel.is_main(procs):
        print(f"coda_utils.scale {stage}: done on {parallel.world(procs)} process(es)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
