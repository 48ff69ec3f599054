"""Training a fresh network on a distilled set and testing it: :func:`train_and_evaluate`.

One network per call, under a protocol of :mod:`coda_utils.protocols` with its augmentations
(:mod:`coda_utils.augmentations`); :func:`coda_utils.evaluation.evaluate` trains the networks of a
set and records them, :mod:`coda_utils.teachers` trains the soft-label protocol's teacher with it.

Everything runs as batched tensor operations on one device: the whole distilled set is held
there as a float tensor, every epoch draws a permutation from a seeded ``torch.Generator``,
and augmentations are computed on whole batches (``affine_grid`` / ``grid_sample``, masks,
gathers), never through a per-sample ``DataLoader``.

Precision: ``precision="bf16"`` runs the forward passes (training and test) under
``torch.autocast(dtype=torch.bfloat16)``; weights, optimizer state and the loss stay fp32.
On this study's CPU (AVX-512 BF16, one thread, idle) it trains ConvNet-3 1.3x faster and
tests it 1.4x faster than fp32, at the same accuracy (``benchmarks/bench_evaluation.py``
measures both; ``results/bench_evaluation_*.csv``);
``"auto"`` picks bf16 where the device supports it natively and fp32 elsewhere
(:func:`resolve_precision`). The default is ``"fp32"``: the study's numbers are the same on every
CPU (:mod:`coda_utils.numerics`); ``"auto"`` / ``"bf16"`` is the fast path, one parameter away,
and CPU-dependent. The precision is part of every result row.
"""
from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .architectures import build_model
from .augmentations import cutmix, dsa_augment, idc_augment, rded_augment
from .images import CHANNEL_MODES, to_channels
from .protocols import Protocol, get_protocol
from .results import SOFT_LABEL_PROTOCOLS

__all__ = [
    "FAST_PATH",
    "path_options",
    "PRECISIONS",
    "resolve_precision",
    "keep_freed_memory",
    "normalization_for",
    "normalize",
    "top1_accuracy",
    "train_and_evaluate",
]

#: the settings of the fast evaluation path on a GPU (train_and_evaluate / evaluate keywords)
FAST_PATH = {"precision": "bf16", "channels_last": True, "compile": True}


def path_options(precision: str = "fp32", fast: bool = False) -> dict:
    """The :func:`~coda_utils.evaluation.evaluate` keywords of notebook 04's ``precision`` and ``fast`` parameters:
    the precision, or all of :data:`FAST_PATH` when ``fast``."""
    return {"precision": precision, **(FAST_PATH if fast else {})}



#: ``fp32``, or ``bf16`` autocast for the forward passes (see the module docstring)
PRECISIONS = ("fp32", "bf16")

FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2861,), (0.3530,)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_TEST_BATCH = 1000


# --------------------------------------------------------------------------------------
# Normalization
# --------------------------------------------------------------------------------------
def normalization_for(dataset_name: str, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel ``(mean, std)`` for images in [0, 1].

    Fashion-MNIST (any name containing "fashion"): mean 0.2861, std 0.3530; MNIST: 0.1307,
    0.3081 (both repeated over 3 channels for RGB copies); any other 3-channel dataset:
    ImageNet's mean and std.

    Raises:
        ValueError: a grayscale dataset other than (Fashion-)MNIST, or channels not 1 or 3.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    key = dataset_name.lower().replace("_", "-")
    if "fashion" in key or key == "fmnist":
        mean, std = FASHION_MNIST_MEAN, FASHION_MNIST_STD
    elif "mnist" in key:
        mean, std = MNIST_MEAN, MNIST_STD
    elif channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    else:
        raise ValueError(f"no normalization known for grayscale dataset {dataset_name!r}; pass normalization=(mean, std)")
    return mean * channels, std * channels


def _default_normalization(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Grayscale means the embedded world (Fashion-MNIST); RGB means ImageNet."""
    return normalization_for("fashion-mnist" if channels == 1 else "imagenet", channels)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel for a float batch ``N x C x H x W`` in [0, 1]."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s



# --------------------------------------------------------------------------------------
# Precision and the CPU allocator
# --------------------------------------------------------------------------------------
_ALLOCATOR_TUNED = False


def keep_freed_memory() -> bool:
    """Tell glibc's ``malloc`` to keep freed memory for reuse (``mallopt``: no ``mmap`` for
    large blocks, no trimming), as PyTorch's CPU performance guide does with jemalloc.

    On a CPU, every training step allocates its activations afresh; by default glibc serves
    blocks above 32 MB with ``mmap`` and returns them at ``free``, so each step page-faults
    its activations in again. Keeping them cuts a ConvNet-3 step at IPC 10 by ~25 % in fp32
    and halves the bf16 test pass (``benchmarks/bench_evaluation.py``); the cost is that the
    process keeps its peak memory. Results are unchanged (allocation does not touch numbers).
    Called by :func:`train_and_evaluate` on the CPU; a no-op without glibc. Returns whether
    the setting is in effect.
    """
    global _ALLOCATOR_TUNED
    if not _ALLOCATOR_TUNED:
        import ctypes
        import ctypes.util

        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            m_trim_threshold, m_mmap_threshold = -1, -3
            _ALLOCATOR_TUNED = bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(
                libc.mallopt(m_trim_threshold, (1 << 31) - 1))
        except (OSError, AttributeError):
            _ALLOCATOR_TUNED = False
    return _ALLOCATOR_TUNED


def _bf16_native(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """``"fp32"`` or ``"bf16"`` for ``precision`` on ``device``.

    ``"auto"`` is ``"bf16"`` where the device runs bf16 natively (a CPU with AVX-512 BF16 or
    AMX, a CUDA device of compute capability 8.0 or newer) and ``"fp32"`` elsewhere (there
    bf16 would be emulated and slower). ``"fp32"`` and ``"bf16"`` are returned as they are.
    """
    key = str(precision).lower()
    if key == "auto":
        return "bf16" if _bf16_native(torch.device(device)) else "fp32"
    if key not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} or 'auto', got {precision!r}")
    return key


def _autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


# --------------------------------------------------------------------------------------
# Training and testing
# --------------------------------------------------------------------------------------
def _check_pair(x: torch.Tensor, y: Any, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4:
        raise ValueError(f"{what}_x must be a uint8 tensor N x C x H x W, got "
                         f"{getattr(x, 'dtype', type(x).__name__)} with shape {tuple(getattr(x, 'shape', ()))}")
    if isinstance(y, torch.Tensor):
        labels = y.detach().to("cpu", torch.long)
    else:
        labels = torch.as_tensor(np.asarray(y), dtype=torch.long)
    if labels.ndim != 1 or len(labels) != len(x):
        raise ValueError(f"{what}: {len(x)} images but labels of shape {tuple(labels.shape)}")
    if len(x) == 0:
        raise ValueError(f"{what}: no images")
    if int(labels.min()) < 0:
        raise ValueError(f"{what}: negative labels")
    return labels


def _as_training_channels(test_x: torch.Tensor, train_x: torch.Tensor) -> torch.Tensor:
    """The test images in the training images' channels (1 <-> 3; anything else unchanged, for
    the shape check to name)."""
    c, t = int(train_x.shape[1]), int(test_x.shape[1])
    if c != t and c in CHANNEL_MODES and t in CHANNEL_MODES:
        return to_channels(test_x, c)
    return test_x


@torch.no_grad()
def top1_accuracy(model: nn.Module, test_x: torch.Tensor, test_y: torch.Tensor, mean: Sequence[float],
                  std: Sequence[float], device: torch.device | str = "cpu", batch_size: int = _TEST_BATCH,
                  precision: str = "fp32", channels_last: bool = False) -> float:
    """Top-1 accuracy in percent of ``model`` on uint8 images (normalized batch by batch), the
    forward pass in ``precision`` (``"fp32"`` or ``"bf16"`` autocast)."""
    model.eval()
    device = torch.device(device)
    correct = 0
    for i in range(0, len(test_x), batch_size):
        xb = normalize(test_x[i:i + batch_size].to(device).float().div_(255), mean, std)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with _autocast(device, precision):
            logits = model(xb)
        correct += int((logits.argmax(1) == test_y[i:i + batch_size].to(device)).sum())
    return 100.0 * correct / len(test_x)


_COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def _compile_options(compile: bool | str) -> dict:
    """``torch.compile`` keywords for ``train_and_evaluate(compile=...)``."""
    if compile is True:
        return {}
    return {"mode": compile} if compile in _COMPILE_MODES else {"backend": str(compile)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_and_evaluate(
    train_x: torch.Tensor,
    train_y: Any,
    test_x: torch.Tensor,
    test_y: Any,
    arch: str,
    protocol: Protocol | str,
    seed: int,
    device: str | torch.device = "cpu",
    eval_every: int | None = None,
    progress: bool = True,
    *,
    num_classes: int | None = None,
    normalization: tuple[Sequence[float], Sequence[float]] | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
    teacher: nn.Module | None = None,
    return_model: bool = False,
    compile: bool | str = False,
) -> dict[str, Any]:
    """Train a fresh ``arch`` on ``(train_x, train_y)`` under ``protocol``, test it on ``test``.

    The network's initial weights come from ``torch.manual_seed(seed)`` (inside
    ``torch.random.fork_rng``, so the caller's global RNG state is left untouched); shuffling
    and augmentation come from a ``torch.Generator`` on ``device`` seeded with ``seed``. On
    CPU a seed gives bit-identical results (GPU kernels may not be deterministic).

    Args:
        train_x, test_x: ``uint8`` images ``N x C x H x W`` of the same H, W; the test images
            are tested in the training set's channels (gray and RGB converted by
            :func:`coda_utils.images.to_channels`: a set has its run's channels, the real
            test split its files').
        train_y, test_y: integer labels (array-like or tensor).
        arch: see :func:`coda_utils.architectures.build_model`.
        protocol: a :class:`Protocol`, or a name (then the IPC is taken as the largest class
            count of ``train_y``).
        seed: the repeat's seed.
        device: where the whole training runs.
        eval_every: also test every this many epochs (for ``acc_best``); ``None`` tests only
            the final network, and then ``acc_best == acc``.
        progress: show a tqdm bar over epochs.
        num_classes: default ``max(label) + 1`` over train and test labels.
        normalization: ``(mean, std)``; default Fashion-MNIST's for 1 channel and ImageNet's
            for 3 (see :func:`normalization_for`).
        precision: ``"fp32"``, ``"bf16"`` (autocast of the forward passes, training and test)
            or ``"auto"`` (:func:`resolve_precision`).
        channels_last: train and test in the channels-last memory format (measured by the
            benchmark; slower than the default on the CPUs tried).
        teacher: the frozen network whose softened outputs on each augmented batch are the
            targets of a soft-label protocol (``rded``; required there, refused elsewhere). It
            sees the same normalized batch as the student (:func:`~coda_utils.teachers.load_teacher`).
        return_model: also return the trained network (``"model"``, in eval mode).
        compile: run the network's training steps and tests through ``torch.compile`` (the
            GPU fast path with bf16 and channels-last, :data:`FAST_PATH`; measured by
            ``benchmarks/bench_evaluation.py --idc``): ``True`` for inductor's default mode,
            a mode (``"reduce-overhead"``: CUDA graphs; ``"max-autotune"``) or a backend's
            name (``"eager"`` only checks the wiring). The weights, the optimizer and the
            seeds are those of the plain path.

    Returns:
        ``acc``: test accuracy (percent) of the final network, the headline number;
        ``acc_best``: best test accuracy over the evaluations made (secondary, selected on
        the test set); ``train_seconds``: wall time of the training steps (test evaluations
        excluded); ``epochs``; ``train_loss``: mean training loss of the last epoch;
        ``precision``: the precision used; ``curve``: ``(epoch, test accuracy)`` of every test
        evaluation made (the last one is ``acc``, the largest ``acc_best``).
    """
    from tqdm.auto import tqdm

    # 1. Check inputs

    ytr = _check_pair(train_x, train_y, "train")
    yte = _check_pair(test_x, test_y, "test")
    test_x = _as_training_channels(test_x, train_x)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise ValueError(f"train images are {tuple(train_x.shape[1:])} but test images {tuple(test_x.shape[1:])}")
    _, c, h, w = train_x.shape
    if h != w:
        raise ValueError(f"images must be square, got {h}x{w}")
    if num_classes is None:
        num_classes = int(max(ytr.max(), yte.max())) + 1
    elif int(max(ytr.max(), yte.max())) >= num_classes:
        raise ValueError(f"labels reach {int(max(ytr.max(), yte.max()))} but num_classes is {num_classes}")
    if isinstance(protocol, str):
        protocol = get_protocol(protocol, ipc=int(torch.bincount(ytr).max()), num_classes=num_classes)
    if protocol.soft_labels and teacher is None:
        raise ValueError(f"protocol {protocol.name} learns from a teacher's soft labels: pass teacher= "
                         "(notebook 04: the teacher parameter; see load_teacher / train_teacher)")
    if teacher is not None and not protocol.soft_labels:
        raise ValueError(f"protocol {protocol.name} trains on hard labels; a teacher is only used by "
                         f"{', '.join(SOFT_LABEL_PROTOCOLS)}")
    if eval_every is not None and eval_every < 1:
        raise ValueError(f"eval_every must be a positive number of epochs, got {eval_every}")
    mean, std = normalization if normalization is not None else _default_normalization(c)
    if len(mean) != c or len(std) != c:
        raise ValueError(f"normalization has {len(mean)} means / {len(std)} stds for {c}-channel images")

    device = torch.device(device)
    precision = resolve_precision(precision, device)
    if device.type == "cpu":
        keep_freed_memory()

    # 2. A fresh network from the seed (the caller's global RNG untouched), the set on the device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(arch, num_classes, c, h).to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    net = model if not compile else torch.compile(model, **_compile_options(compile))
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    x_all = train_x.to(device).float().div_(255)
    y_all = ytr.to(device)

    if teacher is not None:
        teacher = teacher.to(device).eval().requires_grad_(False)

    # 3. Optimizer and learning-rate schedule of the protocol
    if protocol.optimizer == "adamw":  # RDED: no weight decay on biases and norm parameters
        decay = [p for p in model.parameters() if p.ndim > 1]
        rest = [p for p in model.parameters() if p.ndim <= 1]
        opt = torch.optim.AdamW([{"params": decay}, {"params": rest, "weight_decay": 0.0}], lr=protocol.lr,
                                betas=(0.9, 0.999), weight_decay=protocol.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=protocol.lr, momentum=protocol.momentum,
                              weight_decay=protocol.weight_decay)
    if protocol.schedule == "rded_cosine":
        total = protocol.epochs
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 0.5 * (1.0 + math.cos(math.pi * e / total / 2)))
    else:
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=protocol.milestones, gamma=protocol.lr_gamma)

    # 4. Training loop: a seeded permutation per epoch, batches by indexing, augmentation on the
    #    whole batch; the test split is evaluated after the last epoch (and every eval_every)
    n = len(x_all)
    acc_best = -1.0
    acc = 0.0
    curve: list[tuple[int, float]] = []
    train_seconds = 0.0
    epoch_loss = float("nan")
    bar = tqdm(range(1, protocol.epochs + 1), desc=f"{arch}/{protocol.name} seed {seed}", unit="ep",
               disable=not progress, leave=False)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=gen, device=device)
        loss_sum = torch.zeros((), device=device)
        for start in range(0, n, protocol.batch_size):
            idx = perm[start:start + protocol.batch_size]
            xb, yb = x_all[idx], y_all[idx]
            if protocol.augmentation == "idc":
                xb = idc_augment(xb, gen)
            elif protocol.augmentation == "rded":
                xb = rded_augment(xb, gen, protocol.patch_factor)
            xb = normalize(xb, mean, std)
            if protocol.augmentation == "dsa":
                xb = dsa_augment(xb, gen)
            target: torch.Tensor = yb
            if protocol.cutmix_beta is not None and (
                    protocol.cutmix_prob >= 1.0 or float(torch.rand(1, generator=gen, device=device)) < protocol.cutmix_prob):
                xb, target = cutmix(xb, yb, num_classes, gen, protocol.cutmix_beta)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            if teacher is not None:  # soft labels: the teacher relabels this augmented batch
                with torch.no_grad(), _autocast(device, precision):
                    target = F.softmax(teacher(xb).float() / protocol.temperature, dim=1)
            with _autocast(device, precision):
                logits = net(xb)
            if teacher is not None:
                loss = F.kl_div(F.log_softmax(logits.float() / protocol.temperature, dim=1), target,
                                reduction="batchmean")
            else:
                loss = F.cross_entropy(logits.float(), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(idx)
        sched.step()
        epoch_loss = float(loss_sum) / n
        _sync(device)
        train_seconds += time.perf_counter() - t0
        if epoch == protocol.epochs or (eval_every is not None and epoch % eval_every == 0):
            acc = top1_accuracy(net, test_x, yte, mean, std, device, precision=precision,
                                channels_last=channels_last)
            acc_best = max(acc_best, acc)
            curve.append((epoch, acc))
            bar.set_postfix(loss=f"{epoch_loss:.3f}", acc=f"{acc:.1f}")
    bar.close()
    out = {"acc": acc, "acc_best": acc_best, "train_seconds": train_seconds,
           "epochs": protocol.epochs, "train_loss": epoch_loss, "precision": precision, "curve": curve}
    if return_model:
        out["model"] = model.eval()
    return out

