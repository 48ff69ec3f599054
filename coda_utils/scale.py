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
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from . import parallel, params

__all__ = ["notebook_parameters", "encode", "generate", "evaluate", "generate_sets", "ablate", "main"]

STAGES = {"01": "01_encode.ipynb", "03": "03_generate.ipynb", "04": "04_evaluate.ipynb", "05": "05_ablations.ipynb"}


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


def generate_sets(run, target, policy, z_reps: dict, pipe, guidance, p: dict, refiner_pipe=None, procs=None) -> dict:
    """Every generated set of notebook 03 (``p["methods"]`` x selection seeds), as
    :func:`coda_utils.alignment.generate_set` makes them: ``unguided`` from the class names,
    ``text_prompt`` from ``p["prompt_template"]``, ``coda_g`` guided by the seed's
    representatives ``z_reps[seed]``. Returns ``{(method, seed): set folder}``."""
    from . import alignment, rundir

    out = {}
    for s in rundir.selection_seeds(p["selection_seeds"]):
        plans = {
            "unguided": dict(prompts=target.prompts, z_reps=None),
            "text_prompt": dict(prompts=[p["prompt_template"].format(n) for n in target.prompts], z_reps=None),
            "coda_g": dict(prompts=target.prompts, z_reps=z_reps[s]),
        }
        for name in p["methods"]:
            out[name, s] = alignment.generate_set(
                pipe, run.set_dir(name, p["ipc"], s, p["set_suffix"]), target.classes, ipc=p["ipc"], guidance=guidance,
                cfg_scale=p["cfg_scale"], steps=p["steps"], seed=s, batch_size=p["batch_size"], native_size=policy.native,
                resize=policy.mode, method=name, model_id=str(p["model"]), refiner=refiner_pipe,
                refiner_start=p["refiner_start"], progress=p["progress"] and parallel.is_main(procs),
                extra={"selection_seed": s, "resize_policy": policy.to_dict()}, processes=procs, **plans[name])
    return out


def generate(p: dict, procs=None) -> dict:
    """Notebook 03's generated sets (:func:`generate_sets`), this process's batches."""
    from . import alignment, discovery, encoding, rundir

    if p["threads"]:
        torch.set_num_threads(p["threads"])
    run = rundir.RunDir(p["run_dir"])
    target = _target(p)
    policy = encoding.LatentCache.load(run.latents).policy
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
    return generate_sets(run, target, policy, z_reps, pipe, guidance, p, refiner, procs)


def evaluate(p: dict, procs=None):
    """Notebook 04's networks: every network of every method and seed (round robin over the
    processes), appended to ``results.rank<i>.csv`` beside each method's results file and merged
    into it by the first process at the end (the rows of one process, in the same order)."""
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
    for m, s, net in parallel.share(units, procs):
        x, y = baselines.method_set(run, m, p["ipc"], s, target, image_size=p["image_size"], vae=vae, distilled=p["distilled"])
        evaluation.evaluate(m, x, y, test_x, test_y, ipc=int(target.counts().max()) if m == "full" else p["ipc"],
                            arch=p["arch"], protocol=p["protocol"], repeats=1, seed=net, selection_seed=s,
                            epochs=p["epochs"], device=device,
                            out_csv=parallel.rank_results(paths[m], procs),
                            eval_every=p["eval_every"], progress=False, teacher=teacher_model, teacher_id=teacher_id,
                            **evaluation.path_options(p["precision"], p["fast"]))
    order = {(m, s, net): i for i, (m, s, net) in enumerate(units)}
    parallel.merge_rank_results(list(paths.values()), procs, lambda rows: [order.get((m, int(a), int(b)), len(order)) for m, a, b in
                                                            zip(rows.method, rows.selection_seed, rows.seed)])


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


def _parse(argv: list[str] | None) -> tuple[str, dict]:
    import yaml
    from papermill.cli import _resolve_type

    ap = argparse.ArgumentParser(prog="python -m coda_utils.scale", description=__doc__.split("\n")[0])
    ap.add_argument("stage", choices=list(STAGES), help="01 encode, 03 generate, 04 evaluate, 05 ablation sweeps")
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
    {"01": encode, "03": generate, "04": evaluate, "05": ablate}[stage](p, procs)
    if parallel.is_main(procs):
        print(f"coda_utils.scale {stage}: done on {parallel.world(procs)} process(es)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
