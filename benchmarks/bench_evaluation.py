"""Training and test throughput of the evaluation harness: fp32 against the faster paths.

ConvNet-3 under the dc protocol (SGD lr 0.01, momentum 0.9, wd 5e-4, batch 256, lr x0.1 at
half, no augmentation) on a class-balanced subset of Fashion-MNIST ``target``, one process,
``--threads`` torch threads. Measured in one run, interleaved so that a busy spell hits every
path alike:

* ``fp32``: :func:`coda_utils.evaluation.train_and_evaluate` as the study ran it before;
* ``bf16``: the same with ``precision="bf16"`` (``torch.autocast`` of the forward passes,
  training and test; weights, optimizer and loss in fp32);
* ``fp32 channels-last`` and ``bf16 channels-last``: the same in the channels-last format;
* ``DataLoader fp32``: what a user would otherwise write, the same network, optimizer and
  schedule fed by ``DataLoader(TensorDataset(x, y), batch_size=256, shuffle=True)``.

For each: training img/s, test img/s (the 10,000-image test pass every network ends with),
the ratio to fp32, the seconds one network of the study protocol costs, and the achieved
FLOP/s of a training step (PyTorch's ``FlopCounterMode``) against the machine's limit, taken
as the rate of a large matrix product in the same precision on the same threads.

``--accuracy N`` then trains N networks each way (fp32 and bf16, the same set, network seeds
0..N-1, ``--accuracy-epochs`` epochs, the full 10,000-image test split) and prints every
accuracy, mean ± std, and the bf16 - fp32 difference with its 95 % interval (scipy, Welch).

``--out DIR`` also writes both as CSV files (``bench_evaluation_throughput.csv``,
``bench_evaluation_accuracy.csv``), from which ``python -m coda_utils.report readme README.md``
writes the README's tables.

Usage::

    python benchmarks/bench_evaluation.py                      # throughput, about 2 min
    python benchmarks/bench_evaluation.py --accuracy 5         # + 10 networks, ~20 min on 1 thread
    python benchmarks/bench_evaluation.py --accuracy 5 --out results   # the README's tables
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from coda_utils.architectures import build_model
from coda_utils.datasets import load_fashion_mnist
from coda_utils.evaluation import get_protocol, normalization_for, normalize, train_and_evaluate

PATHS = {  # name -> (precision, channels_last)
    "fp32": ("fp32", False),
    "bf16": ("bf16", False),
    "fp32 channels-last": ("fp32", True),
    "bf16 channels-last": ("bf16", True),
}


def balanced_subset(ipc: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """``ipc`` random Fashion-MNIST ``target`` images per class."""
    target = load_fashion_mnist("target")
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(target.class_indices(c), ipc, replace=False) for c in range(target.num_classes)])
    return target.load(idx), target.labels[idx]


def dataloader_seconds(x: torch.Tensor, y: np.ndarray, epochs: int, seed: int = 0) -> float:
    """Seconds to train ConvNet-3 (dc protocol, fp32) for ``epochs`` through a plain DataLoader."""
    proto = get_protocol("dc", ipc=1, epochs=epochs)
    mean, std = normalization_for("fashion-mnist", 1)
    torch.manual_seed(seed)
    model = build_model("convnet3", 10, x.shape[1], x.shape[-1])
    opt = torch.optim.SGD(model.parameters(), lr=proto.lr, momentum=proto.momentum, weight_decay=proto.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=proto.milestones, gamma=proto.lr_gamma)
    data = TensorDataset(normalize(x.float() / 255, mean, std), torch.as_tensor(y))
    loader = DataLoader(data, batch_size=proto.batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    return time.perf_counter() - t0


def step_flops(batch: int) -> int:
    """FLOPs of one ConvNet-3 training step (forward + backward) on ``batch`` 28x28 images."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model("convnet3", 10, 1, 28)
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops()


def forward_flops(batch: int) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model("convnet3", 10, 1, 28)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(batch, 1, 28, 28))
    return counter.get_total_flops()


def matmul_rate(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of an ``n x n`` matrix product in ``dtype`` (the machine's practical limit)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def throughput(args, test_x, test_y) -> pd.DataFrame:
    peak = {"fp32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16)}
    print(f"machine limit ({args.threads} thread(s), 2048^3 matmul): fp32 {peak['fp32'] / 1e9:.0f} GFLOP/s, "
          f"bf16 {peak['bf16'] / 1e9:.0f} GFLOP/s")
    fwd_per_image = forward_flops(100) / 100
    rows = []
    for ipc in args.ipc:
        x, y = balanced_subset(ipc)
        batch = min(len(x), 256)
        flops_per_image = step_flops(batch) / batch
        proto = get_protocol("dc", ipc, epochs=args.epochs)
        one = get_protocol("dc", ipc, epochs=1)
        for precision, cl in PATHS.values():  # warm-up: one untimed epoch of each path
            train_and_evaluate(x, y, test_x[:100], test_y[:100], "convnet3", one, 0, progress=False,
                               precision=precision, channels_last=cl)
        dataloader_seconds(x, y, 1)
        train_s = {name: [] for name in PATHS}
        test_s = {name: [] for name in PATHS}
        loader_s = []
        for _ in range(args.repeats):
            for name, (precision, cl) in PATHS.items():
                t0 = time.perf_counter()
                res = train_and_evaluate(x, y, test_x, test_y, "convnet3", proto, 0, progress=False,
                                         precision=precision, channels_last=cl)
                train_s[name].append(res["train_seconds"])
                test_s[name].append(time.perf_counter() - t0 - res["train_seconds"])
            loader_s.append(dataloader_seconds(x, y, args.epochs))
        images = len(x) * args.epochs
        print(f"\nIPC {ipc} ({len(x)} images), {args.epochs} epochs, test pass {len(test_x):,} images, best of "
              f"{args.repeats}; one training image costs {flops_per_image / 1e6:.0f} MFLOP, one test image "
              f"{fwd_per_image / 1e6:.0f} MFLOP")
        print(f"{'path':<20} {'train img/s':>11} {'x fp32':>7} {'of limit':>9} {'test img/s':>11} {'x fp32':>7} "
              f"{'one network, 300 ep':>20}")
        base_train = images / min(train_s["fp32"])
        base_test = len(test_x) / min(test_s["fp32"])
        for name, (precision, _) in PATHS.items():
            tr = images / min(train_s[name])
            te = len(test_x) / min(test_s[name])
            network = 300 * len(x) / tr + len(test_x) / te
            print(f"{name:<20} {tr:>11.0f} {tr / base_train:>6.2f}x {tr * flops_per_image / peak[precision]:>8.0%} "
                  f"{te:>11.0f} {te / base_test:>6.2f}x {network:>18.0f} s")
            rows.append({"ipc": ipc, "path": name, "train_img_s": tr, "train_ratio": tr / base_train,
                         "of_limit": tr * flops_per_image / peak[precision], "test_img_s": te, "test_ratio": te / base_test,
                         "network_seconds": network, "limit_gflops": peak[precision] / 1e9, "threads": args.threads})
        tr = images / min(loader_s)
        print(f"{'DataLoader fp32':<20} {tr:>11.0f} {tr / base_train:>6.2f}x {tr * flops_per_image / peak['fp32']:>8.0%} "
              f"{'-':>11} {'':>7} {'-':>20}")
        rows.append({"ipc": ipc, "path": "DataLoader fp32", "train_img_s": tr, "train_ratio": tr / base_train,
                     "of_limit": tr * flops_per_image / peak["fp32"], "test_img_s": np.nan, "test_ratio": np.nan,
                     "network_seconds": np.nan, "limit_gflops": peak["fp32"] / 1e9, "threads": args.threads})
    return pd.DataFrame(rows)


def accuracy(args, test_x, test_y) -> pd.DataFrame:
    from scipy import stats

    x, y = balanced_subset(10)
    proto = get_protocol("dc", 10, epochs=args.accuracy_epochs)
    accs: dict[str, list[float]] = {"fp32": [], "bf16": []}
    seconds: dict[str, float] = {"fp32": 0.0, "bf16": 0.0}
    rows = []
    for seed in range(args.accuracy):
        for precision in accs:
            t0 = time.perf_counter()
            res = train_and_evaluate(x, y, test_x, test_y, "convnet3", proto, seed, progress=False, precision=precision)
            seconds[precision] += time.perf_counter() - t0
            accs[precision].append(res["acc"])
            rows.append({"precision": precision, "seed": seed, "acc": res["acc"], "epochs": args.accuracy_epochs,
                         "seconds": time.perf_counter() - t0})
    print(f"\naccuracy: IPC 10 random real (one draw), dc {args.accuracy_epochs} epochs, {len(test_x):,} test images, "
          f"network seeds 0-{args.accuracy - 1}")
    for precision, a in accs.items():
        print(f"{precision:<5} {np.mean(a):.2f} ± {np.std(a, ddof=1):.2f}   [{', '.join(f'{v:.2f}' for v in a)}]   "
              f"{seconds[precision] / len(a):.0f} s per network")
    res = stats.ttest_ind(accs["bf16"], accs["fp32"], equal_var=False)
    ci = res.confidence_interval(0.95)
    print(f"bf16 - fp32: {np.mean(accs['bf16']) - np.mean(accs['fp32']):+.2f} points, 95 % interval "
          f"[{ci.low:+.2f}, {ci.high:+.2f}] (Welch), p = {res.pvalue:.2f}")
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10, help="training epochs per throughput measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved measurements; the fastest counts")
    parser.add_argument("--ipc", type=int, nargs="+", default=[10, 50], help="images per class to time")
    parser.add_argument("--accuracy", type=int, default=0, help="networks per precision for the accuracy check")
    parser.add_argument("--accuracy-epochs", type=int, default=300, help="epochs of the accuracy check")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--out", type=Path, help="also write the measurements as CSV files into this folder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)")

    test = load_fashion_mnist("test")
    test_x, test_y = test.load(), test.labels
    results = {}
    if not args.skip_throughput:
        results["throughput"] = throughput(args, test_x, test_y)
    if args.accuracy:
        results["accuracy"] = accuracy(args, test_x, test_y)
    if args.out:
        from coda_utils.io import atomic_write

        for name, df in results.items():
            with atomic_write(args.out / f"bench_evaluation_{name}.csv", "w") as fh:
                df.to_csv(fh, index=False)
            print(f"wrote {args.out / f'bench_evaluation_{name}.csv'}")


if __name__ == "__main__":
    main()
