"""What each stage and each method costs: wall-clock seconds and peak memory, each in its own process.

The reviewers' question behind CoDA's "training-free" claim: what do discovery and guided
generation cost beside the baselines' selections and beside training one network? Every
measurement below runs the project's own stage function in a **fresh Python process** (so that
its peak resident memory, ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` at the end of the
stage, is that stage's own), on ``--classes`` classes of Fashion-MNIST ``target`` with the shipped
prior (``data/models/fashion-prior``), ``--threads`` threads (1: the project's default,
:mod:`coda_utils.numerics`):

* ``encoding`` (stage 1, :func:`coda_utils.encoding.encode_dataset`): the VAE over every image
  of each class, at every ``--sizes`` (images per class);
* ``compile``: numba's compile of umap-learn, the first UMAP call of a process (a warm-up on 200
  random points of the latents' width): paid once per process, not per class, so kept out of
  the UMAP row;
* ``umap``, ``hdbscan``, ``postprocess`` (stage 2, :mod:`coda_utils.discovery`, as
  ``discover_class`` runs it: ``standardize`` + ``run_umap`` at the reference hyperparameters
  scaled to the class size, ``run_hdbscan``, ``make_exactly_ipc``), each in its own process on
  the previous one's output; UMAP and HDBSCAN at every size, the post-processing at every size
  (IPC ``--ipc-ref``) and at every ``--ipcs`` (largest size);
* ``selection``: ``kmeans`` (``baselines.kmeans_nearest_real``), ``herding``
  (``baselines.herding``) and ``random_real`` (``baselines.random_real``) over the same grid;
* ``generation`` (stage 3, :func:`coda_utils.alignment.generate_set` with notebook 03's
  defaults): ``coda_g`` guided by the representatives the post-processing found, and
  ``unguided``, at every IPC; the time per generated image;
* ``evaluation`` (stage 4, :func:`coda_utils.evaluation.train_and_evaluate`): one ConvNet-3
  under the dc protocol for ``--epochs`` epochs on a random-real set of every IPC (the cost does
  not depend on the images), its training steps timed (the test pass is not), per image-epoch;
* ``imports``: a process that only imports what a stage's process imports, one per kind of
  stage: its peak is the baseline of that stage's ``rss_increment_mb``.

Seconds exclude each process's imports and setup (reading the data, loading the model:
``setup_s``). ``peak_rss_mb`` is the process's high-water mark (imports and setup included);
``rss_increment_mb`` is that minus the ``imports`` process of the same kind. With ``--device
cuda`` encoding, generation and evaluation run on the GPU (``peak_gpu_mb``:
``torch.cuda.max_memory_allocated``); discovery and the selections stay on the CPU, as in the
study. The 1-minute load average is recorded before and after every process (the benchmark's own
busy thread counts for up to 1 of it): the machine may be shared.

``--out DIR`` writes ``DIR/costs.csv`` (one row per stage x method x class size x IPC) and the
figure (``figures/costs.png`` when DIR is ``results``, else ``DIR/costs.png``), from which
``python -m coda_utils.report readme README.md`` renders the README's table
(:func:`coda_utils.report_costs.cost_table`).

Usage::

    python benchmarks/bench_costs.py --out results     # 2 classes, sizes 250 500 950, IPC 1 10 50: ~8 min on one core
    python benchmarks/bench_costs.py --quick           # a test of the script (tiny sizes): ~1-2 min, the compiles
    python benchmarks/bench_costs.py --device cuda --out results/gpu   # on a GPU (benchmarks/gpu_check.py --steps costs)
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARK = "COSTS_JSON "

#: what a stage's process imports before anything is measured (its lazy imports too), by kind of
#: stage; the ``imports`` process of a kind runs exactly this and stops
GROUPS = {
    "encoding": "from coda_utils import datasets, encoding\nfrom diffusers import AutoencoderKL",
    "discovery": "from coda_utils import encoding, discovery\nimport umap, hdbscan, threadpoolctl, sklearn.cluster",
    "selection": "from coda_utils import datasets, encoding, baselines\nimport sklearn.cluster, scipy.optimize, threadpoolctl",
    "generation": ("from coda_utils import datasets, encoding, alignment\nfrom diffusers import DiffusionPipeline, "
                   "StableDiffusionPipeline, AutoencoderKL\nfrom transformers import CLIPTextModel, CLIPTokenizer"),
    "evaluation": "from coda_utils import datasets, baselines, evaluation",
}
#: the kind of process each stage runs in
GROUP_OF = {"encoding": "encoding", "umap": "discovery", "hdbscan": "discovery", "postprocess": "discovery",
            "selection": "selection", "generation": "generation", "evaluation": "evaluation"}
COLUMNS = ["stage", "method", "n_per_class", "ipc", "n_classes", "epochs", "seconds", "unit", "units", "per_unit_s",
           "per_image_s", "per_class_s", "setup_s", "peak_rss_mb", "baseline_rss_mb", "rss_increment_mb", "setup_rss_mb",
           "rss_over_setup_mb", "peak_gpu_mb",
           "device", "threads", "load_before", "load_after", "cpu", "cores", "commit", "date", "versions"]


# --------------------------------------------------------------------------------------------
# The child: one measurement in a fresh process (``--child SPEC``), one JSON line of rows
# --------------------------------------------------------------------------------------------
def _peak_mb() -> float:
    """This process's peak resident memory so far (Linux: ru_maxrss in KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20


def _child(spec: dict) -> list[dict]:
    import coda_utils  # first: pins the code paths (coda_utils.numerics) before numpy and torch load

    exec(GROUPS[spec["group"]], {})
    import numpy as np
    import torch

    torch.set_num_threads(spec["threads"])
    cuda = str(spec["device"]).startswith("cuda")
    work, task, n, ipc, C = Path(spec["work"]), spec["task"], spec.get("n"), spec.get("ipc"), spec["classes"]
    if task == "imports":
        return [{"stage": "imports", "method": spec["group"], "seconds": 0.0, "peak_rss_mb": _peak_mb()}]

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def gpu_reset():
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def gpu_peak():
        return torch.cuda.max_memory_allocated() / 2**20 if cuda else None

    from coda_utils import datasets, encoding

    t_setup = time.perf_counter()
    rows = []
    if task == "encoding":
        data = encoding.limit_dataset(datasets.load_fashion_mnist("target"), class_limit=C, per_class_limit=n)
        vae = encoding.load_vae(spec["model"], device=spec["device"], dtype=getattr(torch, spec["dtype"]))
        setup, setup_rss = time.perf_counter() - t_setup, _peak_mb()
        gpu_reset()
        t0 = time.perf_counter()
        encoding.encode_dataset(data, vae, work / f"latents_n{n}", encoder_id=spec["model"], device=spec["device"],
                                dtype=getattr(torch, spec["dtype"]), progress=False)
        sync()
        rows.append({"seconds": time.perf_counter() - t0, "setup_s": setup, "setup_rss_mb": setup_rss, "peak_rss_mb": _peak_mb(),
                     "peak_gpu_mb": gpu_peak()})
        return rows

    if task in ("umap", "hdbscan", "postprocess", "generation") or spec.get("method") in ("kmeans", "herding"):
        cache = encoding.LatentCache.load(work / f"latents_n{n}")
        lat = [cache.latents(c) for c in range(C)]
    if task in ("umap", "hdbscan", "postprocess"):
        from coda_utils import discovery

        hp = discovery.scaled_hyperparameters(n)  # as discover(): the reference scaled to the class size
        if task == "umap":
            setup, setup_rss = time.perf_counter() - t_setup, _peak_mb()
            t0 = time.perf_counter()  # numba's compile: the first UMAP call of the process, on 200 random points
            warm = np.random.default_rng(0).normal(size=(200, int(np.prod(lat[0].shape[1:])))).astype(np.float32)
            discovery.run_umap(warm, 15, discovery.REFERENCE["n_components"], discovery.REFERENCE["min_dist"], 0)
            rows.append({"stage": "compile", "seconds": time.perf_counter() - t0, "setup_s": setup, "setup_rss_mb": setup_rss,
                         "peak_rss_mb": _peak_mb()})
            t0 = time.perf_counter()
            settings = {}
            for c, z in enumerate(lat):
                x = discovery.standardize(z)
                s = discovery.class_settings(x, hp["n_neighbors"], hp["min_cluster_size"])
                emb = discovery.run_umap(x, s["n_neighbors"], s["n_components"], discovery.REFERENCE["min_dist"], seed=0)
                np.save(work / f"emb_n{n}_c{c}.npy", emb)
                settings[c] = s
            # the UMAP row's own memory is over the compiled process (the compile row's peak)
            rows.append({"seconds": time.perf_counter() - t0, "setup_s": setup, "setup_rss_mb": rows[0]["peak_rss_mb"],
                         "peak_rss_mb": _peak_mb()})
            (work / f"settings_n{n}.json").write_text(json.dumps(settings))
            return rows
        settings = json.loads((work / f"settings_n{n}.json").read_text())
        embs = [np.load(work / f"emb_n{n}_c{c}.npy") for c in range(C)]
        ms = discovery.REFERENCE["min_samples"]
        if task == "hdbscan":
            setup, setup_rss = time.perf_counter() - t_setup, _peak_mb()
            t0 = time.perf_counter()
            for c, emb in enumerate(embs):
                labels, probs = discovery.run_hdbscan(emb, settings[str(c)]["min_cluster_size"], ms)
                np.savez(work / f"hdbscan_n{n}_c{c}.npz", labels=labels, probs=probs)
            rows.append({"seconds": time.perf_counter() - t0, "setup_s": setup, "setup_rss_mb": setup_rss, "peak_rss_mb": _peak_mb()})
            return rows
        found = [np.load(work / f"hdbscan_n{n}_c{c}.npz") for c in range(C)]
        setup, setup_rss = time.perf_counter() - t_setup, _peak_mb()
        t0 = time.perf_counter()
        reps = []
        for c, (emb, f) in enumerate(zip(embs, found)):
            res = discovery.make_exactly_ipc(emb, f["labels"], f["probs"], ipc, settings[str(c)]["min_cluster_size"], ms,
                                             seed=0)
            reps.append(res.representatives)
        rows.append({"seconds": time.perf_counter() - t0, "setup_s": setup, "setup_rss_mb": setup_rss, "peak_rss_mb": _peak_mb()})
        for c, r in enumerate(reps):  # the representatives' latents: what coda_g is guided toward
            np.save(work / f"reps_n{n}_ipc{ipc}_c{c}.npy", np.asarray(lat[c][r], dtype=np.float32))
        return rows

    if task == "selection":
        from coda_utils import baselines

        method = spec["method"]
        if method == "random_real":
            data = encoding.limit_dataset(datasets.load_fashion_mnist("target"), class_limit=C, per_class_limit=n)
        setup, setup_rss = time.perf_counter() - t_setup, _peak_mb()
        t0 = time.perf_counter()
        if method == "random_real":
            baselines.random_real(data, ipc, seed=0)
        else:
            for z in lat:
                if method == "kmeans":
                    baselines.kmeans_nearest_real(z, ipc, seed=0)
                else:
                    baselines.herding(z, ipc)
        rows.append({"seconds": time.perf_counter() - t0, "setup_s": setup, "setup_rss_mb": setup_rss, "peak_rss_mb": _peak_mb()})
        return rows

    if task == "generation":
        from coda_utils import alignment

        method, g = spec["method"], spec["generation"]
        target = encoding.limit_dataset(datasets.load_fashion_mnist("target"), class_limit=C, per_class_limit=n)
        policy = cache.policy
        pipe = alignment.load_pipeline(spec["model"], spec["device"], getattr(torch, spec["dtype"]))
        guidance = alignment.GuidanceConfig(gamma=g["gamma"], guide_fraction=g["guide_fraction"], variant=g["variant"])
        z_reps = ([np.load(work / f"reps_n{n}_ipc{ipc}_c{c}.npy") for c in range(C)] if method == "coda_g" else None)
        setup, setup_rss = time.perf_counter() - t_setup, _peak_mb()
        gpu_reset()
        t0 = time.perf_counter()
        alignment.generate_set(pipe, work / f"set_{method}_ipc{ipc}", target.classes, target.prompts, ipc, z_reps=z_reps,
                               guidance=guidance, cfg_scale=g["cfg_scale"], steps=g["steps"], seed=0,
                               batch_size=g["batch_size"], native_size=policy.native, resize=policy.mode, method=method,
                               model_id=spec["model"], progress=False)
        sync()
        rows.append({"seconds": time.perf_counter() - t0, "setup_s": setup, "setup_rss_mb": setup_rss, "peak_rss_mb": _peak_mb(),
                     "peak_gpu_mb": gpu_peak()})
        return rows

    if task == "evaluation":
        from coda_utils import baselines, evaluation

        target = encoding.limit_dataset(datasets.load_fashion_mnist("target"), class_limit=C)
        idx = baselines.random_real(target, ipc, seed=0)
        x, y = target.load(idx), target.labels[idx]
        test = datasets.load_fashion_mnist("test")
        keep = np.flatnonzero(test.labels < C)[:spec["test_images"]]
        tx, ty = test.load(keep), test.labels[keep]
        protocol = evaluation.get_protocol("dc", ipc, epochs=spec["epochs"])
        setup, setup_rss = time.perf_counter() - t_setup, _peak_mb()
        gpu_reset()
        res = evaluation.train_and_evaluate(x, y, tx, ty, "convnet3", protocol, seed=0, device=spec["device"],
                                            progress=False)
        rows.append({"seconds": res["train_seconds"], "setup_s": setup, "setup_rss_mb": setup_rss, "peak_rss_mb": _peak_mb(),
                     "peak_gpu_mb": gpu_peak()})
        return rows
    raise ValueError(f"unknown task {task!r}")


# --------------------------------------------------------------------------------------------
# The parent: the plan, one fresh process per measurement, the table
# --------------------------------------------------------------------------------------------
def _run_child(spec: dict) -> tuple[list[dict], float, float]:
    """Run one measurement in a fresh process; returns its rows and the load before and after."""
    threads = str(spec["threads"])
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
           "NUMBA_NUM_THREADS": threads, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    before = os.getloadavg()[0]
    res = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    after = os.getloadavg()[0]
    lines = [line for line in res.stdout.splitlines() if line.startswith(MARK)]
    if res.returncode or not lines:
        raise RuntimeError(f"{spec['task']} {spec.get('method', '')} n={spec.get('n')} ipc={spec.get('ipc')} failed "
                           f"(exit {res.returncode}):\n{res.stderr[-3000:]}")
    return json.loads(lines[-1][len(MARK):]), before, after


def plan(sizes: list[int], ipcs: list[int], ipc_ref: int) -> list[dict]:
    """Every measurement, in the order their inputs exist: what each grows with is measured on a
    grid of class sizes (IPC ``ipc_ref``) and of IPCs (the largest class size)."""
    big = max(sizes)
    grid = [(n, ipc_ref) for n in sizes] + [(big, i) for i in ipcs if i != ipc_ref]
    steps = [{"task": "imports", "group": g} for g in GROUPS]
    steps += [{"task": "encoding", "n": n} for n in sizes]
    steps += [{"task": t, "n": n} for t in ("umap", "hdbscan") for n in sizes]
    steps += [{"task": "postprocess", "n": n, "ipc": i} for n, i in grid]
    steps += [{"task": "selection", "method": m, "n": n, "ipc": i} for m in ("kmeans", "herding", "random_real")
              for n, i in grid]
    steps += [{"task": "generation", "method": m, "n": big, "ipc": i} for m in ("coda_g", "unguided") for i in ipcs]
    steps += [{"task": "evaluation", "ipc": i} for i in ipcs]
    for s in steps:
        s.setdefault("group", GROUP_OF.get(s["task"]))
    return steps


def _method(step: dict) -> str:
    return step.get("method") or {"encoding": "vae", "umap": "coda_r", "hdbscan": "coda_r", "postprocess": "coda_r",
                                  "compile": "coda_r", "evaluation": "convnet3"}.get(step["task"], "")


def _finish(row: dict, step: dict, args, baseline: dict) -> dict:
    """Units, per-unit costs and the increment over the imports process of the row's kind."""
    stage = row.get("stage", step["task"])
    C, n, ipc, s = args.classes, step.get("n"), step.get("ipc"), row["seconds"]
    device = args.device if stage in ("encoding", "generation", "evaluation") else "cpu"
    out = {"stage": stage, "method": row.get("method", _method({**step, "task": stage})), "n_per_class": n, "ipc": ipc,
           "n_classes": C, "epochs": args.epochs if stage == "evaluation" else None, "seconds": s,
           "setup_s": row.get("setup_s"), "peak_rss_mb": row["peak_rss_mb"], "setup_rss_mb": row.get("setup_rss_mb"),
           "rss_over_setup_mb": None if row.get("setup_rss_mb") is None else row["peak_rss_mb"] - row["setup_rss_mb"],
           "peak_gpu_mb": row.get("peak_gpu_mb"),
           "device": device, "threads": args.threads}
    if stage == "imports":
        out.update(unit="process", units=1, baseline_rss_mb=row["peak_rss_mb"], rss_increment_mb=0.0)
        return out
    if stage == "compile":
        out.update(unit="process", units=1, per_unit_s=s, n_per_class=n, ipc=None)
    elif stage == "generation":
        out.update(unit="generated image", units=C * ipc, per_image_s=s / (C * ipc), per_class_s=s / C)
    elif stage == "evaluation":
        out.update(unit="image-epoch", units=C * ipc * args.epochs, per_image_s=s / (C * ipc), per_class_s=s / C,
                   n_per_class=None)
    elif stage == "encoding":
        out.update(unit="input image", units=C * n, per_image_s=s / (C * n), per_class_s=s / C)
    else:  # discovery and the selections: per class of n images
        out.update(unit="class", units=C, per_image_s=s / (C * n), per_class_s=s / C)
    out.setdefault("per_unit_s", s / out["units"])
    base = baseline[step["group"]]
    out.update(baseline_rss_mb=base, rss_increment_mb=row["peak_rss_mb"] - base)
    return out


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for name in ("torch", "numpy", "umap-learn", "pynndescent", "numba", "hdbscan", "scikit-learn", "diffusers"):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    return "; ".join([f"python {sys.version.split()[0]}"] + parts)


def _commit() -> str:
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, a test of the script (1-2 min: the numba compiles)")
    ap.add_argument("--sizes", type=int, nargs="+", help="images per class (default 250 500 950; quick: 30 60)")
    ap.add_argument("--ipcs", type=int, nargs="+", help="images per class of the sets (default 1 10 50; quick: 1 2)")
    ap.add_argument("--ipc-ref", type=int, help="the IPC of the class-size grid (default 10, or the middle of --ipcs)")
    ap.add_argument("--classes", type=int, default=2, help="classes of Fashion-MNIST target (the table is per class)")
    ap.add_argument("--epochs", type=int, help="epochs of the evaluation's network (default 50; quick: 2)")
    ap.add_argument("--steps", type=int, help="denoising steps (default: notebook 03's; quick: 3)")
    ap.add_argument("--test-images", type=int, default=500, help="test images of the evaluation (not timed)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda: encoding, generation and evaluation")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"], help="of the VAE and the pipeline")
    ap.add_argument("--threads", type=int, default=1, help="threads of every process (1: the project's default)")
    ap.add_argument("--model", default=str(ROOT / "data/models/fashion-prior"))
    ap.add_argument("--out", type=Path, help="write OUT/costs.csv and the figure")
    ap.add_argument("--figure", type=Path, help="default: figures/costs.png for --out results, else OUT/costs.png")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(MARK + json.dumps(_child(json.loads(args.child))), flush=True)
        return 0

    sys.path.insert(0, str(ROOT))
    import coda_utils  # noqa: F401  first: pins the code paths before numpy loads
    import pandas as pd

    from coda_utils import datasets, numerics, params

    q = args.quick
    sizes = sorted(args.sizes or ([30, 60] if q else [250, 500, 950]))
    ipcs = sorted(args.ipcs or ([1, 2] if q else [1, 10, 50]))
    ipc_ref = args.ipc_ref or (10 if 10 in ipcs else ipcs[len(ipcs) // 2])
    args.epochs = args.epochs or (2 if q else 50)
    if q:
        args.test_images = min(args.test_images, 50)
    gen = {k: params.notebook_defaults("03_generate")[k] for k in ("gamma", "guide_fraction", "variant", "cfg_scale",
                                                                   "steps", "batch_size")}
    gen["steps"] = args.steps or (3 if q else gen["steps"])
    counts = datasets.load_fashion_mnist("target").counts()[:args.classes]
    if max(sizes) > counts.min() or max(ipcs + [ipc_ref]) > min(sizes):
        ap.error(f"--sizes must be at most {counts.min()} (the smallest of the first {args.classes} classes of target) "
                 f"and every IPC at most the smallest size {min(sizes)}")
    cpu = numerics.cpu_info()["model"]
    common = {"cpu": cpu, "cores": os.cpu_count(), "commit": _commit(),
              "date": datetime.datetime.now().isoformat(timespec="seconds"), "versions": _versions()}
    steps = plan(sizes, ipcs, ipc_ref)
    print(f"{cpu}, {os.cpu_count()} cores, {args.threads} thread(s), device {args.device}; {args.classes} classes, "
          f"sizes {sizes}, IPCs {ipcs} (size grid at IPC {ipc_ref}), evaluation {args.epochs} epochs, generation "
          f"{gen['steps']} steps; {len(steps)} processes", flush=True)
    rows, baseline, t_all = [], {}, time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_costs_") as work:
        for i, step in enumerate(steps, 1):
            spec = {**step, "work": work, "classes": args.classes, "threads": args.threads, "device": args.device,
                    "dtype": args.dtype, "model": str(Path(args.model).resolve()), "epochs": args.epochs,
                    "test_images": args.test_images, "generation": gen}
            got, before, after = _run_child(spec)
            for r in got:
                if step["task"] == "imports":
                    baseline[step["group"]] = r["peak_rss_mb"]
                row = {**_finish(r, step, args, baseline), "load_before": before, "load_after": after, **common}
                rows.append(row)
                print(f"[{i:>2}/{len(steps)}] {row['stage']:<11} {row['method']:<11} n={row['n_per_class'] or '-':<4} "
                      f"ipc={row['ipc'] or '-':<3} {row['seconds']:8.2f} s  peak {row['peak_rss_mb']:6.0f} MB "
                      f"(+{row['rss_increment_mb']:5.0f})  load {before:.2f}->{after:.2f}", flush=True)
    df = pd.DataFrame(rows).reindex(columns=COLUMNS)
    for col in ("n_per_class", "ipc", "epochs"):
        df[col] = df[col].astype("Int64")
    print(f"\n{len(steps)} processes in {time.perf_counter() - t_all:.0f} s")
    from coda_utils.report_costs import cost_table, plot_costs

    print("\n" + cost_table(df, "(not written)" if not args.out else str(args.out / "costs.csv")))
    if args.out:
        from coda_utils.io import atomic_write

        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / "costs.csv"
        with atomic_write(path, "w") as fh:
            df.to_csv(fh, index=False, float_format="%.6g")
        fig_path = args.figure or (ROOT / "figures/costs.png" if args.out.resolve() == (ROOT / "results").resolve()
                                   else args.out / "costs.png")
        plot_costs(df, fig_path)
        print(f"wrote {path} and {fig_path}")
    elif args.figure:
        plot_costs(df, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
