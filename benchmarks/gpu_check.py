"""The GPU measurements of the evaluation harness and the scale-out, in one run of a few minutes.

Run it on a machine with a CUDA GPU, from the repository root, once; it writes everything it
measures into ``--out`` and prints a summary. Each step runs in its own process with a time limit,
so a step that fails (or a package that is missing) costs that step only:

1. ``check_cuda``: the CUDA code paths (encoding, guided SDXL-shaped generation, an evaluation
   step; :mod:`benchmarks.check_cuda`, needs diffusers);
2. ``idc``: ``bench_evaluation.py --idc``: ResNet-AP-10 under the idc protocol at 256 px on an
   IPC-50-sized set, today's harness (fp32, bf16) against the fast path (bf16, channels-last,
   ``torch.compile``, with and without CUDA graphs) and the peers' DataLoader of PNG files
   (4 and 12 workers): img/s, TFLOP/s, fraction of the matmul limit and of the data sheet;
3. ``accuracy``: ``bench_evaluation.py --accuracy 5 --fast``: five networks of the fast path
   against five of the fp32 path on the same set (embedded world, ConvNet-3, dc 300 epochs),
   their difference and the network spread;
4. ``scale``: encoding under ``accelerate launch`` on the GPU (one process: the CUDA device of
   :func:`coda_utils.parallel.processes`; needs papermill for the notebook's parameters). The
   byte identity of 1 and 2 processes is tested on the CPU (``tests/test_scale.py``);
5. ``costs`` (not in the default steps): ``bench_costs.py --device cuda``: every stage's seconds,
   peak resident memory and peak GPU memory (``results/costs.csv``'s columns) on the GPU, into
   ``--out/costs``.

On the device machine of this project (torch, torchvision, accelerate installed; diffusers,
papermill and the dataset carried; tested on the CPU with ``--device cpu --quick``)::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
    CODA_DATA_DIR=.gpu/fashion-mnist python3 benchmarks/gpu_check.py --out $OUT

``--quick`` shrinks every step (a CPU dry run of the script itself: ``--device cpu --quick``).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def step(name: str, cmd: list[str], timeout: int, out: Path) -> dict:
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        code, text = res.returncode, res.stdout + res.stderr
    except subprocess.TimeoutExpired as e:
        code, text = "timeout", (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
    seconds = time.perf_counter() - t0
    (out / f"{name}.log").write_text(text)
    print(text[-4000:], flush=True)
    print(f"== {name}: exit {code} in {seconds:.0f} s", flush=True)
    return {"step": name, "exit": code, "seconds": round(seconds, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a dry run of the script)")
    ap.add_argument("--steps", nargs="*", default=["check_cuda", "idc", "accuracy", "scale"])
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    py, q = sys.executable, args.quick
    bench = [py, "benchmarks/bench_evaluation.py", "--device", args.device, "--out", str(args.out)]
    steps = {
        "check_cuda": ([py, "benchmarks/check_cuda.py", "--device", args.device], 240),
        "idc": (bench + ["--idc", "--epochs", "1" if q else "3", "--peak-tflops", "989"]
                + (["--size", "32", "--idc-ipc", "4", "--idc-test", "64", "--loader-workers", "0"] if q else []), 300),
        "accuracy": (bench + ["--skip-throughput", "--fast", "--accuracy", "2" if q else "5",
                              "--accuracy-epochs", "3" if q else "300"], 300),
        "scale": ([py, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
                   "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "coda_utils.scale", "01",
                   "-p", "run_dir", str(args.out / "scale_run"), "-p", "device", args.device,
                   "-p", "class_limit", "2", "-p", "per_class_limit", "64"], 180),
        "costs": ([py, "benchmarks/bench_costs.py", "--device", args.device, "--out", str(args.out / "costs")]
                  + (["--quick"] if q else []), 420),
    }
    summary = [step(name, *steps[name], out=args.out) for name in args.steps]
    print("\nsummary:")
    for r in summary:
        print(f"  {r['step']:<12} exit {r['exit']}  {r['seconds']:.0f} s")
    return sum(r["exit"] != 0 for r in summary)


if __name__ == "__main__":
    sys.exit(main())
