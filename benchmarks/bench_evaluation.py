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
accuracy, mean ± std, and the bf16 - fp32 difference with its 95 % interval (scipy, paired t over
the network seeds, which both paths share).

``--out DIR`` also writes both as CSV files (``bench_evaluation_throughput.csv``,
``bench_evaluation_accuracy.csv``), from which ``python -m coda_utils.report readme README.md``
writes the README's tables.

``--idc`` measures instead the GPU case of the ImageNet subsets: ResNet-AP-10 under the idc
protocol (RandomResizedCrop, flip, colour jitter, lighting and CutMix on every batch of 64) at
``--size`` px (256) on an IPC-50-sized set (``--idc-classes`` x ``--idc-ipc`` images of smooth
random content: the content does not change the cost), on ``--device``:

* ``harness fp32``: :func:`coda_utils.evaluation.train_and_evaluate` with its defaults;
* ``harness bf16``: the same with ``precision="bf16"``;
* ``fast``: :data:`coda_utils.evaluation.FAST_PATH` (bf16 autocast, channels-last,
  ``torch.compile``), and ``fast reduce-overhead`` (the same compiled with CUDA graphs);
* ``DataLoader N workers``: the peers' way, the same set as PNG files read by torchvision's
  ``ImageFolder`` with the same transforms (``RandomResizedCrop``, flip, ``ColorJitter``) and a
  ``DataLoader`` of N worker processes, the same network, optimizer and CutMix (needs torchvision).

For each: training img/s, test img/s, the achieved TFLOP/s of training (PyTorch's
``FlopCounterMode`` on one training step) and its fraction of the device's limit, measured as
the rate of a large matrix product in the path's precision (and, on a GPU, of the data sheet
figure given with ``--peak-tflops``). ``--accuracy N --fast`` compares N networks of the fast
path with N of the plain fp32 path on the embedded world (ConvNet-3, dc, IPC 10) on ``--device``.

Usage::

    python benchmarks/bench_evaluation.py                      # throughput, about 2 min
    python benchmarks/bench_evaluation.py --accuracy 5         # + 10 networks, ~20 min on 1 thread
    python benchmarks/bench_evaluation.py --accuracy 5 --out results   # the README's tables
    python benchmarks/bench_evaluation.py --idc --device cuda --epochs 3 --out $OUT   # on a GPU
    python benchmarks/bench_evaluation.py --skip-throughput --accuracy 5 --fast --device cuda
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
from coda_utils.evaluation import (FAST_PATH, cutmix, get_protocol, idc_augment, normalization_for, normalize,
                                   top1_accuracy, train_and_evaluate)

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


def matmul_rate(dtype: torch.dtype, n: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """FLOP/s of an ``n x n`` matrix product in ``dtype`` (the machine's practical limit)."""
    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    a @ b
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def _sync(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


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
    """N networks per path on one set: fp32 against bf16 (or, with ``--fast``, the fast path)."""
    from scipy import stats

    x, y = balanced_subset(10)
    proto = get_protocol("dc", 10, epochs=args.accuracy_epochs)
    paths = {"fp32": {"precision": "fp32"}, **({"fast": FAST_PATH} if args.fast else {"bf16": {"precision": "bf16"}})}
    accs: dict[str, list[float]] = {name: [] for name in paths}
    seconds: dict[str, float] = {name: 0.0 for name in paths}
    rows = []
    for seed in range(args.accuracy):
        for name, kw in paths.items():
            t0 = time.perf_counter()
            res = train_and_evaluate(x, y, test_x, test_y, "convnet3", proto, seed, device=args.device, progress=False, **kw)
            seconds[name] += time.perf_counter() - t0
            accs[name].append(res["acc"])
            rows.append({"precision": name, "seed": seed, "acc": res["acc"], "epochs": args.accuracy_epochs,
                         "seconds": time.perf_counter() - t0, "device": args.device})
    print(f"\naccuracy: IPC 10 random real (one draw), dc {args.accuracy_epochs} epochs, {len(test_x):,} test images, "
          f"network seeds 0-{args.accuracy - 1}, {args.device}")
    for name, a in accs.items():
        print(f"{name:<5} {np.mean(a):.2f} ± {np.std(a, ddof=1) if len(a) > 1 else float('nan'):.2f}   "
              f"[{', '.join(f'{v:.2f}' for v in a)}]   {seconds[name] / len(a):.1f} s per network")
    other = list(paths)[1]
    if args.accuracy > 1:
        res = stats.ttest_rel(accs[other], accs["fp32"])  # the same network seeds on both paths: paired
        ci = res.confidence_interval(0.95)
        print(f"{other} - fp32: {np.mean(accs[other]) - np.mean(accs['fp32']):+.2f} points, 95 % interval "
              f"[{ci.low:+.2f}, {ci.high:+.2f}] (paired t over network seeds), p = {res.pvalue:.2f}; network std (fp32) "
              f"{np.std(accs['fp32'], ddof=1):.2f}")
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# --idc: ResNet-AP-10 under the idc protocol on a GPU
# --------------------------------------------------------------------------------------
IDC_PATHS = {  # name -> train_and_evaluate keywords
    "harness fp32": {"precision": "fp32"},
    "harness bf16": {"precision": "bf16"},
    "fast": FAST_PATH,
    "fast reduce-overhead": {**FAST_PATH, "compile": "reduce-overhead"},
}


def smooth_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``n`` uint8 RGB images of smooth random content (8x8 noise upsampled), ``n x 3 x size x size``."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=g)
    return (F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1) * 255).to(torch.uint8)


def idc_step_flops(batch: int, size: int, device: str) -> int:
    """FLOPs of one ResNet-AP-10 training step (forward + backward) on ``batch`` images."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model("resnet_ap10", 10, 3, size).to(device)
    x, y = torch.randn(batch, 3, size, size, device=device), torch.randint(0, 10, (batch,), device=device)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops()


def write_png_tree(x: torch.Tensor, y: torch.Tensor, root: Path) -> Path:
    """The set as an ImageFolder of PNG files (what the peers' loaders read)."""
    from PIL import Image

    for i, (img, label) in enumerate(zip(x, y.tolist())):
        d = root / f"class_{label:03d}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(d / f"{i:05d}.png")
    return root


def loader_seconds(root: Path, size: int, epochs: int, workers: int, device: str, seed: int = 0) -> tuple[float, int]:
    """Seconds (and images) to train ResNet-AP-10 under the idc recipe for ``epochs`` from PNG
    files through torchvision's ImageFolder and a DataLoader of ``workers`` processes."""
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    mean, std = normalization_for("imagenette", 3)
    tf = T.Compose([T.RandomResizedCrop(size, scale=(0.5, 1.0)), T.RandomHorizontalFlip(),
                    T.ColorJitter(0.4, 0.4, 0.4), T.ToTensor(), T.Normalize(mean, std)])
    data = ImageFolder(str(root), transform=tf)
    loader = DataLoader(data, batch_size=64, shuffle=True, num_workers=workers, pin_memory=device != "cpu",
                        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(seed))
    proto = get_protocol("idc", 50, epochs=max(epochs, 1), num_classes=len(data.classes))
    torch.manual_seed(seed)
    model = build_model("resnet_ap10", len(data.classes), 3, size).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=proto.lr, momentum=proto.momentum, weight_decay=proto.weight_decay)
    g = torch.Generator(device=device).manual_seed(seed)
    t0 = None
    for epoch in range(epochs + 1):  # the first epoch warms the workers up and is not timed
        if epoch == 1:
            _sync(device)
            t0 = time.perf_counter()
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            xb, target = cutmix(xb, yb, len(data.classes), g, 1.0)
            loss = F.cross_entropy(model(xb), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    _sync(device)
    return time.perf_counter() - t0, len(data) * epochs


def idc_throughput(args) -> pd.DataFrame:
    import tempfile

    device, size = args.device, args.size
    n = args.idc_classes * args.idc_ipc
    x = smooth_images(n, size)
    y = torch.arange(args.idc_classes).repeat_interleave(args.idc_ipc)
    test_x, test_y = smooth_images(args.idc_test, size, seed=1), torch.arange(args.idc_test) % args.idc_classes
    flops = idc_step_flops(64, size, device) / 64
    limit = {"fp32": matmul_rate(torch.float32, 8192 if device != "cpu" else 1024, device=device),
             "bf16": matmul_rate(torch.bfloat16, 8192 if device != "cpu" else 1024, device=device)}
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    print(f"\n--idc on {name}: ResNet-AP-10, {size} px, batch 64, {n} images ({args.idc_classes} x {args.idc_ipc}), "
          f"{args.epochs} timed epochs; one training image costs {flops / 1e9:.2f} GFLOP; matmul limit "
          f"fp32 {limit['fp32'] / 1e12:.1f} TFLOP/s, bf16 {limit['bf16'] / 1e12:.1f} TFLOP/s"
          + (f"; data sheet bf16 {args.peak_tflops:.0f} TFLOP/s" if args.peak_tflops else ""))
    proto = get_protocol("idc", args.idc_ipc, epochs=args.epochs, num_classes=args.idc_classes)
    warm = get_protocol("idc", args.idc_ipc, epochs=1, num_classes=args.idc_classes)
    rows = []
    for path, kw in IDC_PATHS.items():
        if kw.get("compile") == "reduce-overhead" and device == "cpu":
            continue
        try:
            train_and_evaluate(x, y, test_x[:64], test_y[:64], "resnet_ap10", warm, 0, device=device, progress=False, **kw)
            res = train_and_evaluate(x, y, test_x, test_y, "resnet_ap10", proto, 0, device=device, progress=False,
                                     return_model=True, **kw)
        except Exception as e:  # a path that does not run here is reported, not fatal
            print(f"{path:<24} failed: {type(e).__name__}: {str(e)[:200]}")
            continue
        t0 = time.perf_counter()
        top1_accuracy(res["model"], test_x, test_y, *normalization_for("imagenette", 3), device=device,
                      precision=kw.get("precision", "fp32"), channels_last=kw.get("channels_last", False))
        _sync(device)
        test_s = time.perf_counter() - t0
        rows.append({"path": path, "train_img_s": n * args.epochs / res["train_seconds"],
                     "test_img_s": len(test_x) / test_s, "precision": kw.get("precision", "fp32")})
    with tempfile.TemporaryDirectory() as tmp:
        try:
            root = write_png_tree(x, y, Path(tmp) / "set")
            for workers in args.loader_workers:
                seconds, images = loader_seconds(root, size, args.epochs, workers, device)
                rows.append({"path": f"DataLoader {workers} workers", "train_img_s": images / seconds,
                             "test_img_s": np.nan, "precision": "fp32"})
        except ImportError as e:
            print(f"DataLoader baseline skipped: {e} (torchvision is not installed here)")
    df = pd.DataFrame(rows)
    base = df.loc[df["path"] == "harness fp32", "train_img_s"].iloc[0] if (df["path"] == "harness fp32").any() else np.nan
    df["x_harness_fp32"] = df["train_img_s"] / base
    df["tflops"] = df["train_img_s"] * flops / 1e12
    df["of_matmul_limit"] = [r.tflops * 1e12 / limit[r.precision] for r in df.itertuples()]
    df["of_data_sheet"] = df["tflops"] / args.peak_tflops if args.peak_tflops else np.nan
    df["device"], df["size"], df["images"], df["epochs"] = name, size, n, args.epochs
    print(f"{'path':<24} {'train img/s':>11} {'x harness':>9} {'TFLOP/s':>8} {'of matmul':>9} {'of sheet':>8} {'test img/s':>10}")
    for r in df.itertuples():
        sheet = "-" if np.isnan(r.of_data_sheet) else f"{r.of_data_sheet:.1%}"
        test = "-" if np.isnan(r.test_img_s) else f"{r.test_img_s:.0f}"
        print(f"{r.path:<24} {r.train_img_s:>11.0f} {r.x_harness_fp32:>8.2f}x {r.tflops:>8.2f} {r.of_matmul_limit:>9.1%} "
              f"{sheet:>8} {test:>10}")
    return df


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10, help="training epochs per throughput measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved measurements; the fastest counts")
    parser.add_argument("--ipc", type=int, nargs="+", default=[10, 50], help="images per class to time")
    parser.add_argument("--accuracy", type=int, default=0, help="networks per precision for the accuracy check")
    parser.add_argument("--accuracy-epochs", type=int, default=300, help="epochs of the accuracy check")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--fast", action="store_true", help="--accuracy: compare the fast path (FAST_PATH) with fp32")
    parser.add_argument("--idc", action="store_true", help="ResNet-AP-10 under the idc protocol instead (see above)")
    parser.add_argument("--size", type=int, default=256, help="--idc: image size")
    parser.add_argument("--idc-classes", type=int, default=10)
    parser.add_argument("--idc-ipc", type=int, default=50)
    parser.add_argument("--idc-test", type=int, default=1000, help="--idc: test images timed")
    parser.add_argument("--loader-workers", type=int, nargs="*", default=[4, 12], help="--idc: DataLoader workers")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="--idc: the device's data-sheet bf16 dense TFLOP/s (H200: 989), for the fraction of peak")
    parser.add_argument("--out", type=Path, help="also write the measurements as CSV files into this folder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)")

    test = load_fashion_mnist("test")
    test_x, test_y = test.load(), test.labels
    results = {}
    if args.idc:
        results["idc"] = idc_throughput(args)
    elif not args.skip_throughput:
        results["throughput"] = throughput(args, test_x, test_y)
    if args.accuracy:
        results["accuracy_fast" if args.fast else "accuracy"] = accuracy(args, test_x, test_y)
    if args.out:
        from coda_utils.io import atomic_write

        for name, df in results.items():
            with atomic_write(args.out / f"bench_evaluation_{name}.csv", "w") as fh:
                df.to_csv(fh, index=False)
            print(f"wrote {args.out / f'bench_evaluation_{name}.csv'}")


if __name__ == "__main__":
    main()
