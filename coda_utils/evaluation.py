"""Evaluation of a distilled set: train a fresh network on it, test on the real test split.

Three protocols (``docs/method.md`` section 4), see :func:`get_protocol`:

``dc``
    DC/DSA/DM small-benchmark protocol without augmentation: SGD lr 0.01, momentum 0.9,
    weight decay 5e-4, batch 256, lr x0.1 at half of training, 300 epochs.
``dsa``
    the same for 1000 epochs with DSA's differentiable Siamese augmentation,
    ``color_crop_cutout_flip_scale_rotate`` in DSA's single mode (one transform family per
    batch, its parameters drawn per image), see :func:`dsa_augment`.
``idc``
    the IDC / Minimax protocol for ImageNet subsets: epochs by IPC (:func:`epochs_for_ipc`),
    SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 64, lr x0.2 at 2/3 and 5/6 of
    training; RandomResizedCrop(scale 0.5-1), horizontal flip, colour jitter 0.4, PCA
    lighting 0.1 (:func:`idc_augment`) and CutMix with beta 1 on every batch (:func:`cutmix`).
``rded``
    the **soft-label** protocol of RDED / SRe2L (the ImageNet-1K protocol of CoDA's 60.4 % and
    of every ImageNet-1K row of its peers), as ``LINs-lab/RDED`` ``validation/main.py`` and
    ``argument.py``: a frozen teacher relabels every augmented batch and the student learns
    the teacher's outputs softened at temperature 20 with a KL loss (``batchmean``); AdamW lr
    0.001, betas (0.9, 0.999), weight decay 0.01 on weights only; RDED's per-epoch schedule
    ``0.5 (1 + cos(pi e / 2E))`` (from 1x down to 0.5x); 300 epochs; batch 10 / 50 / 100 at
    IPC 1 / 10 / 50 (x2 from 100 classes, at most the set's size); ShufflePatches (factor 2),
    RandomResizedCrop(scale 1/2-1), flip (:func:`rded_augment`) and CutMix on every batch.
    Soft- and hard-label results differ by ~15 points on the same images and never share a
    table (:func:`format_table`); each row names its teacher.

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

Seeds: a distilled set is one draw of a selection (``selection_seed``: the random-real draw,
the k-means initialisation, discovery's UMAP seed, the generator's noise) and one network is
one draw of an initialisation (``seed``). :func:`evaluate` records both; :func:`summarize`
reports the mean and std over selection seeds (each seed's networks averaged first) and, as a
separate column, the spread between networks trained on the same set.

Results: the headline number is ``acc``, the test accuracy of the **final** network.
``acc_best`` is the best test accuracy over the evaluations made during training, i.e. a
number selected on the test set (what the CoDA reference reports); it is kept only as a
clearly labelled secondary column. Accuracies are in percent.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from .architectures import build_model
from .datasets import CHANNEL_MODES, check_ipc, to_channels
from .io import array_sha256, atomic_write, exclusive, read_table

__all__ = [
    "Protocol",
    "PROTOCOLS",
    "DSA_STRATEGY",
    "RESULT_COLUMNS",
    "get_protocol",
    "epochs_for_ipc",
    "lr_milestones",
    "normalization_for",
    "normalize",
    "dsa_augment",
    "idc_augment",
    "rded_augment",
    "shuffle_patches",
    "cutmix",
    "train_teacher",
    "load_teacher",
    "teacher_for",
    "top1_accuracy",
    "train_and_evaluate",
    "PRECISIONS",
    "resolve_precision",
    "keep_freed_memory",
    "network_seeds",
    "read_results",
    "evaluate",
    "GROUP_COLUMNS",
    "summarize",
    "format_table",
]

PROTOCOLS = ("dc", "dsa", "idc", "rded")
#: the protocols whose targets come from a teacher (soft labels); never in one table with the others
SOFT_LABEL_PROTOCOLS = ("rded",)
#: DSA's evaluation strategy (DC/DSA/DM ``--dsa_strategy`` default)
DSA_STRATEGY = "color_crop_cutout_flip_scale_rotate"
#: the columns of :func:`evaluate`'s results; ``epochs`` and ``precision`` follow them (the
#: resume key needs them)
RESULT_COLUMNS = ["method", "ipc", "arch", "protocol", "selection_seed", "seed", "acc", "acc_best", "train_seconds"]
_CSV_COLUMNS = RESULT_COLUMNS + ["epochs", "precision", "teacher"]
_KEY_COLUMNS = ["method", "ipc", "arch", "protocol", "selection_seed", "seed", "epochs", "precision", "teacher"]
#: the columns that identify one network's row (a results file holds each once)
KEY_COLUMNS = _KEY_COLUMNS
#: the ``teacher`` of a hard-label row
NO_TEACHER = "none"
#: the settings of the fast evaluation path on a GPU (train_and_evaluate / evaluate keywords)
FAST_PATH = {"precision": "bf16", "channels_last": True, "compile": True}


def path_options(precision: str = "fp32", fast: bool = False) -> dict:
    """The :func:`evaluate` keywords of notebook 04's ``precision`` and ``fast`` parameters:
    the precision, or all of :data:`FAST_PATH` when ``fast``."""
    return {"precision": precision, **(FAST_PATH if fast else {})}


#: ``fp32``, or ``bf16`` autocast for the forward passes (see the module docstring)
PRECISIONS = ("fp32", "bf16")
#: a selection seed's networks get seeds ``selection_seed * NETWORK_SEED_STRIDE + r``
NETWORK_SEED_STRIDE = 1000

FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2861,), (0.3530,)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# ImageNet PCA lighting (AlexNet / fb.resnet.torch, as used by IDC through CutMix's code)
_PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
_PCA_EIGVEC = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))
_GRAY_WEIGHTS = (0.299, 0.587, 0.114)
_TEST_BATCH = 1000


# --------------------------------------------------------------------------------------
# Protocols
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Protocol:
    """A training recipe for evaluating a distilled set.

    Attributes:
        name: ``"dc"``, ``"dsa"`` or ``"idc"``.
        epochs: training epochs.
        batch_size: mini-batch size (the last batch of an epoch may be smaller).
        lr, momentum, weight_decay: SGD settings.
        lr_gamma: factor applied to the learning rate at each milestone.
        augmentation: ``"none"``, ``"dsa"``, ``"idc"`` or ``"rded"``.
        cutmix_beta: CutMix's Beta(beta, beta) parameter, ``None`` for no CutMix.
        cutmix_prob: probability that a batch is CutMix-ed.
        optimizer: ``"sgd"`` (with ``momentum``) or ``"adamw"`` (betas 0.9, 0.999; weight decay
            on weight matrices and kernels only, as RDED's ``get_parameters``).
        schedule: ``"multistep"`` (x ``lr_gamma`` at :attr:`milestones`) or ``"rded_cosine"``
            (RDED's per-epoch factor ``0.5 (1 + cos(pi e / 2E))``).
        temperature: soft labels: the student learns ``softmax(teacher / T)`` with a KL loss;
            ``None``: hard labels and cross-entropy.
        patch_factor: RDED's ShufflePatches factor (and crop scale ``1/factor``-1).
    """

    name: str
    epochs: int
    batch_size: int
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_gamma: float = 0.1
    augmentation: str = "none"
    cutmix_beta: float | None = None
    cutmix_prob: float = 0.0
    optimizer: str = "sgd"
    schedule: str = "multistep"
    temperature: float | None = None
    patch_factor: int = 1

    def __post_init__(self) -> None:
        _protocol_name(self.name)
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be positive, got {self.epochs} and {self.batch_size}")
        if self.augmentation not in ("none", "dsa", "idc", "rded"):
            raise ValueError(f"unknown augmentation {self.augmentation!r}; use 'none', 'dsa', 'idc' or 'rded'")
        if self.optimizer not in ("sgd", "adamw") or self.schedule not in ("multistep", "rded_cosine"):
            raise ValueError(f"unknown optimizer {self.optimizer!r} or schedule {self.schedule!r}")
        if self.temperature is not None and self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.patch_factor < 1:
            raise ValueError(f"patch_factor must be at least 1, got {self.patch_factor}")

    @property
    def soft_labels(self) -> bool:
        """Whether the targets are a teacher's softened outputs (the protocol needs a teacher)."""
        return self.temperature is not None

    @property
    def milestones(self) -> list[int]:
        """Epochs after which the learning rate is multiplied by ``lr_gamma``."""
        return lr_milestones(self, self.epochs)


def _protocol_name(protocol: str | Protocol) -> str:
    name = protocol.name if isinstance(protocol, Protocol) else str(protocol).lower()
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    return name


def epochs_for_ipc(protocol: str | Protocol, ipc: int) -> int:
    """Default training epochs of ``protocol`` for ``ipc`` images per class.

    ``dc`` and ``rded``: 300; ``dsa``: 1000; ``idc`` (IDC's ``ipc_epoch``): IPC 1 -> 3000, <= 10 -> 2000,
    <= 50 -> 1500, <= 200 -> 1000, <= 500 -> 500, larger -> 300. (IDC also shortens the
    schedule to 2/3 for 100-class sets; that is not applied here; pass ``epochs=`` instead.)
    """
    name = _protocol_name(protocol)
    check_ipc(ipc)
    if name in ("dc", "rded"):
        return 300
    if name == "dsa":
        return 1000
    for bound, epochs in ((1, 3000), (10, 2000), (50, 1500), (200, 1000), (500, 500)):
        if ipc <= bound:
            return epochs
    return 300


def lr_milestones(protocol: str | Protocol, epochs: int) -> list[int]:
    """Epochs after which the learning rate drops, for a run of ``epochs`` epochs.

    ``dc`` / ``dsa``: ``[epochs // 2]`` (x0.1); ``idc``: ``[2 * epochs // 3, 5 * epochs // 6]``
    (x0.2 each), as IDC's ``MultiStepLR``; ``rded``: none (its schedule is a cosine). Milestones
    at epoch 0 (runs of one epoch) are dropped.
    """
    name = _protocol_name(protocol)
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if name == "rded":
        return []
    fractions = ((1, 2),) if name in ("dc", "dsa") else ((2, 3), (5, 6))
    return [m for m in (epochs * num // den for num, den in fractions) if m > 0]


def rded_batch_size(ipc: int, num_classes: int) -> int:
    """RDED's student batch size: 10 / 50 / 100 for IPC 1 / up to 10 / more, doubled from 100
    classes, at most the set's size (``ipc x num_classes``)."""
    base = 10 if ipc <= 1 else 50 if ipc <= 10 else 100
    if num_classes >= 100:
        base *= 2
    return max(1, min(base, ipc * num_classes))


def get_protocol(name: str, ipc: int, epochs: int | None = None, num_classes: int = 10) -> Protocol:
    """The :class:`Protocol` ``name`` for a set of ``ipc`` images per class.

    Args:
        name: ``"dc"``, ``"dsa"``, ``"idc"`` or ``"rded"`` (case-insensitive).
        ipc: images per class of the set to evaluate (decides the idc epochs and the rded batch).
        epochs: overrides the default epoch count; the lr milestones scale with it.
        num_classes: classes of the set (decides the rded batch size).
    """
    key = _protocol_name(name)
    n_epochs = epochs_for_ipc(key, ipc) if epochs is None else int(epochs)
    if n_epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if key == "dc":
        return Protocol("dc", n_epochs, batch_size=256, lr_gamma=0.1, augmentation="none")
    if key == "dsa":
        return Protocol("dsa", n_epochs, batch_size=256, lr_gamma=0.1, augmentation="dsa")
    if key == "rded":
        return Protocol("rded", n_epochs, batch_size=rded_batch_size(ipc, num_classes), lr=0.001, weight_decay=0.01,
                        augmentation="rded", cutmix_beta=1.0, cutmix_prob=1.0, optimizer="adamw", schedule="rded_cosine",
                        temperature=20.0, patch_factor=2)
    return Protocol("idc", n_epochs, batch_size=64, lr_gamma=0.2, augmentation="idc",
                    cutmix_beta=1.0, cutmix_prob=1.0)


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
# Augmentations (batched, on the device, driven by one torch.Generator)
# --------------------------------------------------------------------------------------
def _rand(n: int, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """``n`` uniform [0, 1) numbers on ``x``'s device and dtype."""
    return torch.rand(n, generator=g, device=x.device, dtype=x.dtype)


def _randint(low: int, high: int, n: int, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return torch.randint(low, high, (n,), generator=g, device=x.device)


def _affine(x: torch.Tensor, theta: torch.Tensor, align_corners: bool) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=align_corners)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners)


def _dsa_color(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    x = x + (_rand(n, x, g).view(-1, 1, 1, 1) - 0.5) * 1.0                      # brightness 1.0
    mean_c = x.mean(dim=1, keepdim=True)
    x = (x - mean_c) * (_rand(n, x, g).view(-1, 1, 1, 1) * 2.0) + mean_c       # saturation 2.0
    mean_all = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean_all) * (_rand(n, x, g).view(-1, 1, 1, 1) + 0.5) + mean_all  # contrast 0.5


def _dsa_crop(x: torch.Tensor, g: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Translate each image by up to ``ratio`` of its size (whole pixels), zero-filling."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx, ty = _randint(-sh, sh + 1, n, x, g), _randint(-sw, sw + 1, n, x, g)
    padded = F.pad(x, (sw, sw, sh, sh))
    rows = torch.arange(h, device=x.device).view(1, h) + sh + tx.view(n, 1)
    cols = torch.arange(w, device=x.device).view(1, w) + sw + ty.view(n, 1)
    b = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded[b, :, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2)


def _dsa_cutout(x: torch.Tensor, g: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero a ``ratio``-sized square at a random centre of each image (DSA's cutout)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = _randint(0, h + (1 - ch % 2), n, x, g).view(n, 1) - ch // 2
    ox = _randint(0, w + (1 - cw % 2), n, x, g).view(n, 1) - cw // 2
    r = torch.arange(h, device=x.device).view(1, h)
    c = torch.arange(w, device=x.device).view(1, w)
    in_r = (r >= oy) & (r < oy + ch)
    in_c = (c >= ox) & (c < ox + cw)
    keep = ~(in_r.view(n, h, 1) & in_c.view(n, 1, w))
    return x * keep.unsqueeze(1).to(x.dtype)


def _dsa_flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    flip = _rand(x.shape[0], x, g).view(-1, 1, 1, 1) < 0.5
    return torch.where(flip, x.flip(3), x)


def _dsa_scale(x: torch.Tensor, g: torch.Generator, ratio: float = 1.2) -> torch.Tensor:
    n = x.shape[0]
    sx = _rand(n, x, g) * (ratio - 1.0 / ratio) + 1.0 / ratio
    sy = _rand(n, x, g) * (ratio - 1.0 / ratio) + 1.0 / ratio
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = sx, sy
    return _affine(x, theta, align_corners=True)


def _dsa_rotate(x: torch.Tensor, g: torch.Generator, degrees: float = 15.0) -> torch.Tensor:
    n = x.shape[0]
    a = (_rand(n, x, g) - 0.5) * 2 * degrees / 180 * math.pi
    cos, sin = torch.cos(a), torch.sin(a)
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(a)], 1),
                         torch.stack([sin, cos, torch.zeros_like(a)], 1)], 1)
    return _affine(x, theta, align_corners=True)


_DSA_FNS = {"color": _dsa_color, "crop": _dsa_crop, "cutout": _dsa_cutout,
            "flip": _dsa_flip, "scale": _dsa_scale, "rotate": _dsa_rotate}


def dsa_augment(x: torch.Tensor, generator: torch.Generator, strategy: str = DSA_STRATEGY) -> torch.Tensor:
    """DSA augmentation of a normalized float batch, as DC/DSA's ``DiffAugment`` (mode "S").

    One family of ``strategy`` (e.g. ``"color_crop_cutout_flip_scale_rotate"``) is drawn for
    the batch; its parameters are drawn per image (DSA's parameters: brightness 1.0,
    saturation 2.0, contrast 0.5, crop/translate 0.125, cutout 0.5, scale 1.2, rotation
    15 degrees, flip probability 0.5). Crop and cutout fill with 0, which is the mean colour
    for normalized input. All draws come from ``generator`` (on ``x``'s device).
    """
    families = [s for s in strategy.lower().split("_") if s]
    unknown = [s for s in families if s not in _DSA_FNS]
    if not families or unknown:
        raise ValueError(f"bad DSA strategy {strategy!r}; use '_'-joined names from {', '.join(_DSA_FNS)}")
    choice = families[int(torch.randint(len(families), (1,), generator=generator, device=x.device).item())]
    return _DSA_FNS[choice](x, generator).contiguous()


def _resized_crop_flip(x: torch.Tensor, generator: torch.Generator, scale: tuple[float, float]) -> torch.Tensor:
    """Per image: RandomResizedCrop (area ``scale``, aspect ratio 3/4-4/3, resized back to the
    input size, bilinear) and a horizontal flip with probability 0.5, in one ``grid_sample``.
    The crop is drawn once instead of torchvision's up-to-10 retries: a side longer than the
    image is clamped to the image (so the crop stays inside it)."""
    n = x.shape[0]
    area = _rand(n, x, generator) * (scale[1] - scale[0]) + scale[0]
    log_r = _rand(n, x, generator) * (math.log(4 / 3) - math.log(3 / 4)) + math.log(3 / 4)
    ratio = torch.exp(log_r)
    cw = torch.sqrt(area * ratio).clamp(max=1.0)      # crop width / image width
    chh = torch.sqrt(area / ratio).clamp(max=1.0)     # crop height / image height
    cx = (_rand(n, x, generator) * 2 - 1) * (1 - cw)  # crop centre in [-1, 1] coordinates
    cy = (_rand(n, x, generator) * 2 - 1) * (1 - chh)
    flip = torch.where(_rand(n, x, generator) < 0.5, -1.0, 1.0).to(x.dtype)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2] = cw * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = chh, cy
    return _affine(x, theta, align_corners=False)


def shuffle_patches(x: torch.Tensor, generator: torch.Generator, factor: int = 2) -> torch.Tensor:
    """RDED's ShufflePatches, batched: cut each image into ``factor`` vertical strips and put
    them in a random order, then the same with horizontal strips (an order drawn per image and
    per direction). Strips are ``size // factor`` wide, the last one takes the remainder, as in
    RDED. ``factor=1`` returns ``x``."""
    if factor <= 1:
        return x
    n = x.shape[0]

    def along(img: torch.Tensor, dim: int) -> torch.Tensor:
        size = img.shape[dim]
        edges = [i * (size // factor) for i in range(factor)] + [size]
        parts = [torch.arange(edges[k], edges[k + 1], device=img.device) for k in range(factor)]
        orders = [torch.randperm(factor, generator=generator, device=img.device).tolist() for _ in range(n)]
        index = torch.stack([torch.cat([parts[k] for k in order]) for order in orders])  # output -> source
        shape = [n, 1, 1, 1]
        shape[dim] = size
        return img.gather(dim, index.view(shape).expand(img.shape))

    return along(along(x, 3), 2)


def rded_augment(x: torch.Tensor, generator: torch.Generator, factor: int = 2, max_scale: float = 1.0) -> torch.Tensor:
    """RDED's student transforms on a float batch in [0, 1], before normalization:
    ShufflePatches(``factor``), RandomResizedCrop(scale ``1/factor`` to ``max_scale``, aspect
    ratio 3/4-4/3) and a horizontal flip (:func:`shuffle_patches`; the crop as in
    :func:`idc_augment`)."""
    x = shuffle_patches(x, generator, factor)
    return _resized_crop_flip(x, generator, (1.0 / factor, max_scale))


def idc_augment(x: torch.Tensor, generator: torch.Generator, scale: tuple[float, float] = (0.5, 1.0),
                jitter: float = 0.4, lighting: float = 0.1) -> torch.Tensor:
    """IDC's ImageNet training transforms on a float batch in [0, 1], before normalization.

    Per image: RandomResizedCrop (area ``scale``, aspect ratio 3/4-4/3, resized back to the
    input size, bilinear), horizontal flip with probability 0.5, colour jitter (brightness,
    contrast and saturation factors in ``1 +- jitter``, in a random order per batch, as
    CutMix's ``ColorJitter``) and AlexNet PCA lighting with std ``lighting`` (RGB only).

    The crop is drawn once instead of torchvision's up-to-10 retries: a side longer than
    the image is clamped to the image (so the crop stays inside it).
    """
    n, c, _, _ = x.shape
    x = _resized_crop_flip(x, generator, scale)

    if jitter > 0:
        gray_w = torch.as_tensor(_GRAY_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)

        def gray(img: torch.Tensor) -> torch.Tensor:
            return (img * gray_w).sum(1, keepdim=True) if c == 3 else img

        def brightness(img: torch.Tensor) -> torch.Tensor:
            return img * (1 + (_rand(n, img, generator) * 2 - 1) * jitter).view(-1, 1, 1, 1)

        def contrast(img: torch.Tensor) -> torch.Tensor:
            a = (1 + (_rand(n, img, generator) * 2 - 1) * jitter).view(-1, 1, 1, 1)
            return a * img + (1 - a) * gray(img).mean(dim=(1, 2, 3), keepdim=True)

        def saturation(img: torch.Tensor) -> torch.Tensor:
            a = (1 + (_rand(n, img, generator) * 2 - 1) * jitter).view(-1, 1, 1, 1)
            return a * img + (1 - a) * gray(img)

        ops = (brightness, contrast, saturation)
        for i in torch.randperm(3, generator=generator, device=x.device).tolist():
            x = ops[i](x)

    if lighting > 0 and c == 3:
        alpha = torch.randn(n, 3, generator=generator, device=x.device, dtype=x.dtype) * lighting
        eigval = torch.as_tensor(_PCA_EIGVAL, dtype=x.dtype, device=x.device)
        eigvec = torch.as_tensor(_PCA_EIGVEC, dtype=x.dtype, device=x.device)
        rgb = (alpha * eigval) @ eigvec.T  # rgb_i = sum_j eigvec[i, j] * alpha_j * eigval_j
        x = x + rgb.view(n, 3, 1, 1)
    return x


def cutmix(x: torch.Tensor, y: torch.Tensor, num_classes: int, generator: torch.Generator,
           beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix a batch (as the CutMix / IDC code): one box per batch, pasted from a permutation.

    ``lam ~ Beta(beta, beta)``, a box of area ``1 - lam`` at a uniformly drawn centre,
    clipped to the image; each image gets the box from ``x[perm]``.

    Returns:
        ``(mixed, targets)``: the mixed batch and soft targets ``N x num_classes`` equal to
        ``w * onehot(y) + (1 - w) * onehot(y[perm])`` where ``w`` is the share of the image
        not covered by the box (every row sums to 1). ``F.cross_entropy`` with these targets
        equals IDC's ``w * CE(y) + (1 - w) * CE(y[perm])``.
    """
    if beta <= 0:
        raise ValueError(f"CutMix beta must be positive, got {beta}")
    n, _, h, w = x.shape
    # scalar draws through numpy, seeded from the torch generator so one seed drives everything
    rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator, device=x.device).item()))
    lam = rng.beta(beta, beta)
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y1, y2 = np.clip(cy - cut_h // 2, 0, h), np.clip(cy + cut_h // 2, 0, h)
    x1, x2 = np.clip(cx - cut_w // 2, 0, w), np.clip(cx + cut_w // 2, 0, w)
    perm = torch.randperm(n, generator=generator, device=x.device)
    mixed = x.clone()
    mixed[:, :, y1:y2, x1:x2] = x[perm, :, y1:y2, x1:x2]
    keep = 1.0 - (y2 - y1) * (x2 - x1) / (h * w)
    onehot = F.one_hot(y, num_classes).to(x.dtype)
    return mixed, keep * onehot + (1.0 - keep) * onehot[perm]


# --------------------------------------------------------------------------------------
# Precision, the CPU allocator and seeds
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


def network_seeds(selection_seed: int, repeats: int, first: int = 0) -> list[int]:
    """The seeds of the ``repeats`` networks trained on the set of ``selection_seed``:
    ``selection_seed * 1000 + first + r``. Every method uses the same network seeds for the
    same selection seed, so contrasts paired by selection seed also share the initialisation;
    selection seed 0 keeps the seeds 0, 1, ... of single-draw runs."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if not 0 <= first < NETWORK_SEED_STRIDE - repeats + 1:
        raise ValueError(f"the first network seed must be in [0, {NETWORK_SEED_STRIDE - repeats}], got {first}")
    base = int(selection_seed) * NETWORK_SEED_STRIDE + int(first)
    return list(range(base, base + int(repeats)))


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
            :func:`coda_utils.datasets.to_channels`: a set has its run's channels, the real
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
            sees the same normalized batch as the student (:func:`load_teacher`).
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


# --------------------------------------------------------------------------------------
# Teachers of the soft-label protocol
# --------------------------------------------------------------------------------------
TEACHER_FORMAT = "coda-teacher-1"


class StaleTeacherError(RuntimeError):
    """A cached teacher was trained with other settings or on other data."""


def train_teacher(train_x: torch.Tensor, train_y: Any, test_x: torch.Tensor, test_y: Any, path: str | os.PathLike,
                  arch: str = "convnet3", protocol: str = "dc", epochs: int | None = 50, seed: int = 0,
                  device: str | torch.device = "cpu", precision: str = "fp32",
                  normalization: tuple[Sequence[float], Sequence[float]] | None = None,
                  progress: bool = True) -> tuple[nn.Module, dict]:
    """A teacher for the soft-label protocol where no pretrained one exists (the embedded
    world): ``arch`` trained once with hard labels on a whole real training split (Fashion-MNIST:
    all of ``target``) under ``protocol``, saved to ``path`` with its accuracy on the test split.

    A later call finds ``path`` and loads it when it was made with the same settings and the
    same images (a hash of them); one made otherwise raises :class:`StaleTeacherError` (delete
    the file to train again). The test accuracy is reported, never used to choose anything.

    Returns:
        ``(teacher, meta)`` as :func:`load_teacher`.
    """
    ytr = _check_pair(train_x, train_y, "teacher train")
    yte = _check_pair(test_x, test_y, "teacher test")
    num_classes = int(max(ytr.max(), yte.max())) + 1
    proto = get_protocol(protocol, int(torch.bincount(ytr).max()), epochs, num_classes)
    if proto.soft_labels:
        raise ValueError(f"a teacher is trained with hard labels; protocol {protocol!r} needs a teacher itself")
    settings = {"arch": arch.lower(), "protocol": proto.name, "epochs": proto.epochs, "seed": int(seed),
                "precision": resolve_precision(precision, device), "num_classes": num_classes,
                "channels": int(train_x.shape[1]), "im_size": int(train_x.shape[-1]), "n_train": len(train_x),
                "train_sha256": array_sha256(train_x), "labels_sha256": array_sha256(ytr)}
    path = Path(path)
    if path.is_file():
        model, meta = load_teacher(path, device)
        if meta.get("settings") != settings:
            raise StaleTeacherError(f"{path} holds a teacher trained with other settings or data "
                                    f"({meta.get('settings')}); delete it to train this one ({settings})")
        return model, meta
    res = train_and_evaluate(train_x, ytr, test_x, yte, arch, proto, seed, device=device, progress=progress,
                             num_classes=num_classes, normalization=normalization, precision=precision,
                             return_model=True)
    model = res.pop("model").cpu()
    meta = {"format": TEACHER_FORMAT, "arch": settings["arch"], "num_classes": num_classes,
            "channels": settings["channels"], "im_size": settings["im_size"], "settings": settings,
            "test_acc": res["acc"], "train_seconds": res["train_seconds"],
            "id": f"{settings['arch']}-{proto.name}{proto.epochs}-seed{seed}-{settings['train_sha256'][:8]}"}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as fh:
        torch.save({**meta, "state_dict": model.state_dict()}, fh)
    return model.to(device).eval(), meta


def load_teacher(spec: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Load a frozen teacher for the soft-label protocol.

    Args:
        spec: a checkpoint written by :func:`train_teacher`, or ``"torchvision:<arch>:<file>"``
            for a torchvision classifier's state dict (e.g. ``torchvision:resnet18:resnet18.pth``,
            the ImageNet teacher of RDED; needs torchvision, and the class order of its head
            must be the dataset's).

    Returns:
        ``(teacher, meta)``: the network in eval mode on ``device`` without gradients, and a
        dict with at least ``id`` (what result rows name) and ``num_classes``.
    """
    text = str(spec)
    if text.startswith("torchvision:"):
        try:
            _, name, file = text.split(":", 2)
            import torchvision
        except ValueError:
            raise ValueError(f"teacher {text!r}: use torchvision:<arch>:<state dict file>") from None
        except ImportError:
            raise ImportError(f"teacher {text!r} needs torchvision, which is not installed") from None
        state = torch.load(file, map_location="cpu", weights_only=True)
        head = [v for k, v in state.items() if k.endswith("fc.weight") or k.endswith("classifier.weight")]
        num_classes = int(head[-1].shape[0]) if head else 1000
        model = getattr(torchvision.models, name)(num_classes=num_classes)
        model.load_state_dict(state)
        meta = {"id": f"torchvision-{name}-{Path(file).stem}", "num_classes": num_classes, "arch": name}
    else:
        path = Path(text)
        if not path.is_file():
            raise FileNotFoundError(f"teacher {path} not found: pass a checkpoint of train_teacher or "
                                    "torchvision:<arch>:<file> (notebook 04: parameter teacher)")
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if ckpt.get("format") != TEACHER_FORMAT:
            raise ValueError(f"{path} is not a teacher checkpoint of train_teacher (format {ckpt.get('format')!r})")
        model = build_model(ckpt["arch"], ckpt["num_classes"], ckpt["channels"], ckpt["im_size"])
        model.load_state_dict(ckpt.pop("state_dict"))
        meta = ckpt
    return model.to(device).eval().requires_grad_(False), meta


def teacher_for(protocol: str, teacher: str | os.PathLike | None, path: str | os.PathLike, train, size,
                test_x: torch.Tensor, test_y: Any, arch: str = "convnet3", epochs: int | None = 50,
                device: str | torch.device = "cpu", precision: str = "fp32",
                progress: bool = True) -> tuple[nn.Module | None, str | None, dict | None]:
    """The teacher of an evaluation (notebooks 04 and 05): ``(None, None, None)`` under a
    hard-label protocol; under a soft-label one the checkpoint ``teacher``
    (:func:`load_teacher`) or, with ``teacher=None``, ``arch`` trained once on the images of
    ``train`` (a :class:`~coda_utils.datasets.LabeledImages`, loaded at ``size``) with hard
    labels and cached at ``path`` (:func:`train_teacher`), its accuracy on ``test_x`` recorded.
    Returns ``(teacher, its id for the result rows, its meta)``."""
    if protocol not in SOFT_LABEL_PROTOCOLS:
        return None, None, None
    if teacher is None:
        model, meta = train_teacher(train.load(None, size), train.labels, test_x, test_y, path, arch=arch, epochs=epochs,
                                    device=device, precision=precision, progress=progress)
    else:
        model, meta = load_teacher(teacher, device)
    return model, meta["id"], meta


# --------------------------------------------------------------------------------------
# Repeats, result files and tables
# --------------------------------------------------------------------------------------
#: defaults for the columns that results files written before they existed lack: those files
#: hold one selection (seed 0) evaluated in fp32 with hard labels
_LEGACY_DEFAULTS = {"selection_seed": 0, "precision": "fp32", "teacher": NO_TEACHER}
_DTYPES = {"method": str, "arch": str, "protocol": str, "precision": str, "teacher": str}


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """Read a results file of :func:`evaluate` (an empty table with its columns if ``path`` does
    not exist). Files written before ``selection_seed`` and ``precision`` existed get 0 and
    ``"fp32"``, which is what they measured.

    Raises:
        ValueError: ``path`` lacks a column of :func:`evaluate`'s results.
        coda_utils.io.CorruptFileError: ``path`` does not parse (the message names the fix).
    """
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=_CSV_COLUMNS)
    df = read_table(path, f"restore it, or delete it (rm {path}) and run notebook 04 again with the same parameters: "
                          "it trains the networks of the deleted rows again", dtype=_DTYPES)
    for col, value in _LEGACY_DEFAULTS.items():
        if col not in df.columns:
            df[col] = value
    missing = [col for col in _CSV_COLUMNS if col not in df.columns]
    if missing:
        raise ValueError(f"{path} is not a results file of evaluate(): it lacks columns {missing}")
    return df[_CSV_COLUMNS + [c for c in df.columns if c not in _CSV_COLUMNS]]


def _append_results(path: Path, rows: pd.DataFrame) -> None:
    """Read ``path``, add ``rows``, write it back through a temporary file + ``os.replace``."""
    old = read_results(path)
    new = rows if old.empty else pd.concat([old, rows], ignore_index=True)
    with atomic_write(path, "w") as fh:
        new.to_csv(fh, index=False)


def evaluate(
    method: str,
    train_x: torch.Tensor,
    train_y: Any,
    test_x: torch.Tensor,
    test_y: Any,
    ipc: int,
    arch: str = "convnet3",
    protocol: str = "dc",
    repeats: int = 5,
    seed: int | None = None,
    epochs: int | None = None,
    device: str | torch.device = "cpu",
    out_csv: str | os.PathLike | None = None,
    *,
    selection_seed: int = 0,
    precision: str = "fp32",
    eval_every: int | None = None,
    normalization: tuple[Sequence[float], Sequence[float]] | None = None,
    progress: bool = True,
    teacher: nn.Module | None = None,
    teacher_id: str | None = None,
    channels_last: bool = False,
    compile: bool | str = False,
) -> pd.DataFrame:
    """Evaluate one distilled set: train ``repeats`` fresh networks on it and test each.

    Args:
        method: the method's name, recorded in the results (e.g. ``"coda_g"``).
        train_x, train_y: the distilled set (uint8 ``N x C x H x W``) and its labels.
        test_x, test_y: the real test split (tested in ``train_x``'s channels).
        ipc: images per class of the set; no class may have more.
        arch, protocol, epochs: see :func:`build_model` and :func:`get_protocol`.
        repeats: networks to train on this set.
        seed: the first network seed (then ``seed + 1``, ...); ``None``: the seeds of
            :func:`network_seeds` for ``selection_seed`` (``selection_seed * 1000 + r``).
        selection_seed: the seed of the selection or generation that made this set (recorded;
            the set itself is the caller's).
        precision: ``"fp32"``, ``"bf16"`` or ``"auto"`` (:func:`resolve_precision`); the
            resolved value is recorded.
        out_csv: a results file to append each finished network to (atomically). A network
            whose ``(method, ipc, arch, protocol, selection_seed, seed, epochs, precision)``
            is already in it is not trained again, so an interrupted evaluation resumes where
            it stopped (``eval_every`` and ``normalization`` are not part of that key). The
            file is locked while this runs: a second process evaluating into it is refused
            (:class:`~coda_utils.io.FolderBusyError`) instead of losing rows.
        eval_every, normalization, progress, teacher, channels_last, compile: passed to
            :func:`train_and_evaluate` (``**FAST_PATH`` for the GPU fast path; the memory
            format and the compiler are not part of a row: they change how, not what, is computed).
        teacher_id: what the ``teacher`` column of the rows names (required with a teacher,
            e.g. :func:`load_teacher`'s ``id``); part of the resume key, so a result made with
            another teacher is never taken for this one. Hard-label rows say ``"none"``.

    Returns:
        One row per requested network (trained now or found in ``out_csv``) with the columns
        ``method, ipc, arch, protocol, selection_seed, seed, acc, acc_best, train_seconds,
        epochs, precision, teacher``; ``acc`` (final network, headline) and ``acc_best`` (best
        over the evaluations during training, selected on test, secondary) in percent.
    """
    # 1. Check inputs
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    ytr = _check_pair(train_x, train_y, "train")
    yte = _check_pair(test_x, test_y, "test")
    test_x = _as_training_channels(test_x, train_x)  # once, not for every network
    counts = torch.bincount(ytr)
    if int(counts.max()) > ipc:
        raise ValueError(f"{method}: a class has {int(counts.max())} images but ipc={ipc}")
    num_classes = int(max(ytr.max(), yte.max())) + 1
    short = int((torch.bincount(ytr, minlength=num_classes) < ipc).sum())
    if short:
        warnings.warn(f"{method}: {short} class(es) have fewer than ipc={ipc} images", stacklevel=2)
    proto = get_protocol(protocol, ipc, epochs, num_classes=num_classes)
    if teacher is not None and not teacher_id:
        raise ValueError("a teacher needs its teacher_id (what the results rows name), e.g. load_teacher(...)[1]['id']")
    precision = resolve_precision(precision, device)
    seeds = network_seeds(selection_seed, repeats) if seed is None else list(range(int(seed), int(seed) + repeats))
    key = {"method": str(method), "ipc": int(ipc), "arch": arch.lower(), "protocol": proto.name,
           "selection_seed": int(selection_seed), "epochs": proto.epochs, "precision": precision,
           "teacher": str(teacher_id) if teacher is not None else NO_TEACHER}

    # 2. The networks already in the results file (locked: one evaluating process per file)
    path = Path(out_csv) if out_csv is not None else None
    with exclusive(path.parent, path.name) if path is not None else contextlib.nullcontext():
        done = pd.DataFrame(columns=_CSV_COLUMNS)
        if path is not None:
            existing = read_results(path)
            mask = np.ones(len(existing), dtype=bool)
            for col in ("method", "arch", "protocol", "precision", "teacher"):
                mask &= existing[col].astype(str).to_numpy() == key[col]
            for col in ("ipc", "epochs", "selection_seed"):
                mask &= existing[col].astype(int).to_numpy() == key[col]
            done = existing[mask]

        # 3. Train the missing ones, appending each to the file as it finishes
        rows = []
        for s in seeds:
            found = done[done["seed"].astype(int) == s]
            if len(found):
                rows.append(found.iloc[[0]][_CSV_COLUMNS])
                continue
            res = train_and_evaluate(train_x, ytr, test_x, yte, arch, proto, s, device=device,
                                     eval_every=eval_every, progress=progress, num_classes=num_classes,
                                     normalization=normalization, precision=precision, teacher=teacher,
                                     channels_last=channels_last, compile=compile)
            row = pd.DataFrame([{**key, "seed": s, "acc": res["acc"], "acc_best": res["acc_best"],
                                 "train_seconds": res["train_seconds"]}])[_CSV_COLUMNS]
            if path is not None:
                _append_results(path, row)
            rows.append(row)
    out = pd.concat(rows, ignore_index=True)
    return out.astype({"ipc": int, "selection_seed": int, "seed": int, "epochs": int, "acc": float,
                       "acc_best": float, "train_seconds": float})


#: the columns that identify one experiment (everything but the seeds)
GROUP_COLUMNS = ["method", "ipc", "arch", "protocol", "epochs", "precision", "teacher"]


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread of each experiment, over selection seeds and, separately, over networks.

    Rows of ``df`` (one per network, as :func:`evaluate` returns or :func:`read_results`
    reads) are grouped by ``method, ipc, arch, protocol, epochs, precision, teacher`` (the last
    three when present, so runs of different lengths, precisions or teachers never mix). Within a group, each
    selection seed's networks are averaged first; then

    - ``acc_mean``, ``acc_std``: mean and sample std over selection seeds of those averages
      (the headline; NaN std for a single selection);
    - ``net_std``: the spread between networks trained on the same set, the pooled
      within-set sample std (NaN when every set has one network);
    - ``acc_best_mean``, ``acc_best_std``: the same over selection seeds for ``acc_best``;
    - ``seeds`` (selection seeds), ``networks`` (per seed, the smallest count) and ``n``
      (all networks).
    """
    base = ["method", "ipc", "arch", "protocol", "seed", "acc", "acc_best"]
    missing = [col for col in base if col not in df.columns]
    if missing:
        raise ValueError(f"summarize needs the columns of evaluate(); missing {missing}")
    df = df.copy()
    for col, value in _LEGACY_DEFAULTS.items():
        if col not in df.columns:
            df[col] = value
    keys = [c for c in GROUP_COLUMNS if c in df.columns]
    per_set = df.groupby(keys + ["selection_seed"], sort=True).agg(
        acc=("acc", "mean"), acc_best=("acc_best", "mean"), networks=("acc", "size"),
        ss=("acc", lambda a: float(((a - a.mean()) ** 2).sum())))
    g = per_set.groupby(keys, sort=True)
    dof = g["networks"].sum() - g["networks"].size()
    out = pd.DataFrame({
        "acc_mean": g["acc"].mean(),
        "acc_std": g["acc"].std(ddof=1),
        "net_std": np.sqrt(g["ss"].sum() / dof.where(dof > 0)),
        "acc_best_mean": g["acc_best"].mean(),
        "acc_best_std": g["acc_best"].std(ddof=1),
        "seeds": g["acc"].size(),
        "networks": g["networks"].min(),
        "n": g["networks"].sum(),
    })
    return out.reset_index()


def _pm(mean: float, std: float) -> str:
    return f"{mean:.1f}" if pd.isna(std) else f"{mean:.1f} ± {std:.1f}"


def format_table(summary: pd.DataFrame, settings: Sequence[str] | None = None) -> str:
    """A markdown table of :func:`summarize`'s output (two tables, each with its heading, when
    it holds both hard-label and soft-label protocols: they are never compared in one).

    "acc (final)" is the headline: mean ± std over selection seeds (each seed's networks
    averaged). "network std" is the spread between networks trained on one set, shown apart
    from it ("-" where each set has one network). "acc_best (secondary, selected on test)" is
    the best test accuracy seen during training, which selects on the test set and is shown
    for comparison with papers that report it. "seeds x networks" counts the evaluations.

    Args:
        settings: the setting columns to show (default ``ipc, arch, protocol, epochs,
            precision``, those present); a caller that states constant settings elsewhere
            passes fewer.
    """
    protocols = summary["protocol"].astype(str) if "protocol" in summary.columns else pd.Series([], dtype=str)
    soft = protocols.isin(SOFT_LABEL_PROTOCOLS).to_numpy()
    if soft.any() and not soft.all():  # soft and hard labels never share a table
        return "\n\n".join([
            "Hard labels (cross-entropy on the set's own labels):", format_table(summary[~soft], settings),
            "Soft labels (a teacher relabels every augmented batch; not comparable with the table above):",
            format_table(summary[soft], settings)])
    if settings is None:
        settings = [c for c in ("ipc", "arch", "protocol", "epochs", "precision") if c in summary.columns]
        if soft.any() and "teacher" in summary.columns:
            settings.append("teacher")
    headers = ["method"] + [("IPC" if c == "ipc" else c) for c in settings] + [
        "acc (final), mean ± std over selection seeds", "network std", "acc_best (secondary, selected on test)",
        "seeds x networks"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * (len(headers) - 4) + ["---:"] * 4) + "|"]
    for r in summary.to_dict("records"):
        cells = [str(r["method"])] + [str(r[c]) for c in settings]
        net = "-" if pd.isna(r.get("net_std", np.nan)) else f"{r['net_std']:.1f}"
        count = f"{r['seeds']} x {r['networks']}" if "seeds" in r else str(r["n"])
        cells += [_pm(r["acc_mean"], r["acc_std"]), net, _pm(r["acc_best_mean"], r["acc_best_std"]), count]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
