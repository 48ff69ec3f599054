"""What each pin of :mod:`coda_utils.numerics` costs: the study's work under the portable CPU code
paths, against the libraries' own choice (``CODA_NUMERICS=native``) and against the portable
paths with one pin released at a time.

Every configuration runs in a fresh process (the pins are read when a library loads), one torch
thread, in this order of workloads:

* ``train``: ConvNet-3 under the study's protocol (dc, batch 256) on an IPC-10 set of ``target``
  for ``--epochs`` epochs, then its test pass over ``--test`` images of ``test`` (the study's
  network: 100 epochs and 10,000 test images);
* ``generate``: CoDA-guided generation with the shipped prior, 10 images x ``--steps`` steps;
* ``encode``: the prior's VAE over 2,000 ``target`` images;
* ``discover``: UMAP + HDBSCAN on one class of latents (1,000 points), timed on its second
  call in the process (the first one compiles numba: ``compile`` is that first call).

Configurations: ``native``, ``portable``, and ``portable - X`` for each pin X (that variable
left unset, i.e. the library's own choice). Repeats are interleaved (configuration by
configuration, ``--repeats`` rounds) and the best time of each is kept, so a busy spell hits
every configuration alike. Printed: seconds per workload and the ratio to ``native``
(> 1: the pin costs time).

Usage::

    python benchmarks/bench_numerics.py                     # about 10 minutes on 2 cores
    python benchmarks/bench_numerics.py --repeats 1 --only native portable --out results
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# the workloads, run in a child process (argv: workload names); prints one JSON line of seconds
CHILD = r'''
import json, sys, time
import coda_utils  # first: pins (or not) the code paths
import numpy as np
import torch
from pathlib import Path
from coda_utils import alignment, datasets, discovery, encoding, evaluation, numerics
torch.set_num_threads(1)
epochs, test_n, steps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
out = {"mode": numerics.settings()["mode"], "torch_capability": torch.backends.cpu.get_cpu_capability()}
target = datasets.load_fashion_mnist("target")
pipe = alignment.load_pipeline(Path.cwd() / "data/models/fashion-prior")
t = time.perf_counter()
encoding.encode_images(pipe, target.load(np.arange(2000), size=(28, 28)))
out["encode"] = time.perf_counter() - t
cls = np.flatnonzero(target.labels == 0)[:1000]
zc = encoding.encode_images(pipe, target.load(cls, size=(28, 28)))
x = discovery.standardize(zc.reshape(len(cls), -1).numpy())
for name in ("compile", "discover"):  # the first call compiles numba
    t = time.perf_counter()
    discovery.run_hdbscan(discovery.run_umap(x, n_neighbors=85, seed=0), min_cluster_size=55, min_samples=3)
    out[name] = time.perf_counter() - t
rng = np.random.default_rng(0)
idx = np.concatenate([rng.choice(np.flatnonzero(target.labels == c), 10, replace=False) for c in range(10)])
test = datasets.load_fashion_mnist("test")
t = time.perf_counter()
evaluation.train_and_evaluate(target.load(idx, size=(28, 28)), target.labels[idx],
                              test.load(np.arange(test_n), size=(28, 28)), test.labels[:test_n], "convnet3",
                              evaluation.get_protocol("dc", 10, epochs=epochs), seed=0, progress=False)
out["train"] = time.perf_counter() - t
t = time.perf_counter()
alignment.generate(pipe, [target.prompts[0]] * 10, list(range(10)), z_rep=zc[:10], steps=steps,
                   guidance=alignment.GuidanceConfig(gamma=0.2))
out["generate"] = time.perf_counter() - t
print(json.dumps(out))
'''

WORKLOADS = ("train", "generate", "encode", "discover", "compile")


def configurations(only: list[str] | None) -> dict[str, dict[str, str | None]]:
    """``{name: environment changes}``; ``None`` removes a variable."""
    from coda_utils import numerics

    configs = {"native": {numerics.NATIVE_VARIABLE: "native"}, "portable": {}}
    groups = {"numba": ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES"), "aten": ("ATEN_CPU_CAPABILITY",),
              "onednn": ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"), "mkl": ("MKL_CBWR",),
              "numpy": ("NPY_DISABLE_CPU_FEATURES",), "openblas": ("OPENBLAS_CORETYPE",)}
    for group, names in groups.items():
        configs[f"portable - {group}"] = {"CODA_BENCH_RELEASE": ",".join(names)}
    return {k: v for k, v in configs.items() if not only or k in only or k.split(" - ")[-1] in only}


def run_child(changes: dict, args) -> dict:
    env = {k: v for k, v in os.environ.items()}
    from coda_utils import numerics

    for name in list(numerics.PORTABLE) + [numerics.NATIVE_VARIABLE]:
        env.pop(name, None)  # every configuration starts from the machine's own environment
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               HF_HUB_OFFLINE="1")
    release = changes.get("CODA_BENCH_RELEASE")
    code = CHILD
    if release:  # pin, then drop the released variables before any library loads
        code = ("import os\nimport coda_utils\n" + "".join(f"os.environ.pop({n!r}, None)\n" for n in release.split(","))
                + CHILD)
    else:
        env.update({k: v for k, v in changes.items() if v is not None})
    res = subprocess.run([sys.executable, "-c", code, str(args.epochs), str(args.test), str(args.steps)], env=env,
                         capture_output=True, text=True, cwd=ROOT)
    if res.returncode:
        raise RuntimeError(res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--test", type=int, default=3000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="configurations (native, portable, numba, aten, onednn, mkl, numpy, openblas)")
    parser.add_argument("--out", help="also write DIR/bench_numerics.csv")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from coda_utils import numerics

    configs = configurations(args.only)
    best: dict[str, dict[str, float]] = {}
    t0 = time.time()
    for r in range(args.repeats):
        for name, changes in configs.items():
            got = run_child(changes, args)
            prev = best.setdefault(name, {})
            for w in WORKLOADS:
                prev[w] = min(prev.get(w, float("inf")), got[w])
            print(f"  round {r + 1}, {name}: " + ", ".join(f"{w} {got[w]:.1f} s" for w in WORKLOADS), flush=True)
    cpu = numerics.cpu_info()
    print(f"\nCPU: {cpu['model']} ({' '.join(cpu['isa_flags'])}); one thread; best of {args.repeats}; "
          f"train = {args.epochs} epochs + {args.test} test images; {time.time() - t0:.0f} s in all")
    head = f"{'configuration':<22}" + "".join(f"{w:>18}" for w in WORKLOADS)
    print(head)
    base = best.get("native")
    rows = []
    for name, times in best.items():
        cells = []
        for w in WORKLOADS:
            ratio = times[w] / base[w] if base else float("nan")
            cells.append(f"{times[w]:>8.2f} s ({ratio:4.2f}x)")
            rows.append({"cpu": cpu["model"], "isa": " ".join(cpu["isa_flags"]), "configuration": name, "workload": w,
                         "seconds": round(times[w], 3), "ratio_to_native": round(ratio, 3)})
        print(f"{name:<22}" + "".join(f"{c:>18}" for c in cells))
    if args.out:
        import pandas as pd

        from coda_utils.io import atomic_write

        path = Path(args.out) / "bench_numerics.csv"
        table = pd.DataFrame(rows)
        if path.is_file():  # keep the other CPUs' rows: one table per CPU
            old = pd.read_csv(path)
            table = pd.concat([old[(old["cpu"] != cpu["model"]) | (old["isa"] != " ".join(cpu["isa_flags"]))], table])
        with atomic_write(path, "w") as f:
            table.to_csv(f, index=False)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
