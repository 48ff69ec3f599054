"""Training throughput of the evaluation harness against a plain DataLoader loop.

Both train ConvNet-3 under the dc protocol (SGD lr 0.01, momentum 0.9, wd 5e-4, batch 256,
lr x0.1 at half, no augmentation) on a class-balanced subset of Fashion-MNIST ``target``:

* harness: :func:`coda_utils.evaluation.train_and_evaluate` (the set held as one float
  tensor, a seeded permutation per epoch, batches by indexing); its ``train_seconds``
  excludes the test evaluation.
* DataLoader: the same network, optimizer and schedule fed by
  ``DataLoader(TensorDataset(x, y), batch_size=256, shuffle=True)``, no per-sample transforms.

Usage::

    python benchmarks/bench_evaluation.py --epochs 10 --threads 1 --repeats 3

On a CPU both loops are bound by the convolutions, so expect a ratio near 1 there; the
harness's advantage is on a GPU and with augmentation (no per-sample Python work).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from coda_utils.architectures import build_model
from coda_utils.datasets import load_fashion_mnist
from coda_utils.evaluation import get_protocol, normalization_for, normalize, train_and_evaluate


def balanced_subset(ipc: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """``ipc`` random Fashion-MNIST ``target`` images per class."""
    target = load_fashion_mnist("target")
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(target.class_indices(c), ipc, replace=False) for c in range(target.num_classes)])
    return target.load(idx), target.labels[idx]


def dataloader_seconds(x: torch.Tensor, y: np.ndarray, epochs: int, seed: int = 0) -> float:
    """Seconds to train ConvNet-3 (dc protocol) for ``epochs`` through a plain DataLoader."""
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10, help="training epochs per measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved measurements; the fastest counts")
    parser.add_argument("--ipc", type=int, nargs="+", default=[10, 50], help="images per class to time")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    test = load_fashion_mnist("test")
    tx, ty = test.load(np.arange(100)), test.labels[:100]  # the test pass is not timed; keep it short

    rows = []
    for ipc in args.ipc:
        x, y = balanced_subset(ipc)
        proto = get_protocol("dc", ipc, epochs=args.epochs)
        # one untimed epoch of each first, so neither pays the allocator's warm-up
        train_and_evaluate(x, y, tx, ty, "convnet3", get_protocol("dc", ipc, epochs=1), 0, progress=False)
        dataloader_seconds(x, y, 1)
        harness_s, loader_s = [], []
        for _ in range(args.repeats):  # interleaved, so a busy spell hits both alike
            harness_s.append(train_and_evaluate(x, y, tx, ty, "convnet3", proto, 0, progress=False)["train_seconds"])
            loader_s.append(dataloader_seconds(x, y, args.epochs))
        images = len(x) * args.epochs
        rows.append((ipc, len(x), images / min(harness_s), images / min(loader_s)))

    print(f"ConvNet-3, dc protocol, Fashion-MNIST target, {args.epochs} epochs, {args.threads} thread(s), "
          f"best of {args.repeats}, torch {torch.__version__}")
    print(f"{'IPC':>5} {'images':>7} {'harness img/s':>14} {'DataLoader img/s':>17} {'ratio':>6}")
    for ipc, n, harness, loader in rows:
        print(f"{ipc:>5} {n:>7} {harness:>14.1f} {loader:>17.1f} {harness / loader:>6.2f}")


if __name__ == "__main__":
    main()
