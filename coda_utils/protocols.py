"""The evaluation protocols: the training recipes a distilled set is evaluated under.

Four protocols (``docs/method.md`` section 4), see :func:`get_protocol`; the augmentations they
name are :mod:`coda_utils.augmentations`, the training loop that runs them
:func:`coda_utils.training.train_and_evaluate`:

``dc``
    DC/DSA/DM small-benchmark protocol without augmentation: SGD lr 0.01, momentum 0.9,
    weight decay 5e-4, batch 256, lr x0.1 at half of training, 300 epochs.
``dsa``
    the same for 1000 epochs with DSA's differentiable Siamese augmentation,
    ``color_crop_cutout_flip_scale_rotate`` in DSA's single mode (one transform family per
    batch, its parameters drawn per image), see :func:`~coda_utils.augmentations.dsa_augment`.
``idc``
    the IDC / Minimax protocol for ImageNet subsets: epochs by IPC (:func:`epochs_for_ipc`),
    SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 64, lr x0.2 at 2/3 and 5/6 of
    training; RandomResizedCrop(scale 0.5-1), horizontal flip, colour jitter 0.4, PCA
    lighting 0.1 (:func:`~coda_utils.augmentations.idc_augment`) and CutMix with beta 1 on every batch
    (:func:`~coda_utils.augmentations.cutmix`).
``rded``
    the **soft-label** protocol of RDED / SRe2L (the ImageNet-1K protocol of CoDA's 60.4 % and
    of every ImageNet-1K row of its peers), as ``LINs-lab/RDED`` ``validation/main.py`` and
    ``argument.py``: a frozen teacher relabels every augmented batch and the student learns
    the teacher's outputs softened at temperature 20 with a KL loss (``batchmean``); AdamW lr
    0.001, betas (0.9, 0.999), weight decay 0.01 on weights only; RDED's per-epoch schedule
    ``0.5 (1 + cos(pi e / 2E))`` (from 1x down to 0.5x); 300 epochs; batch 10 / 50 / 100 at
    IPC 1 / 10 / 50 (x2 from 100 classes, at most the set's size); ShufflePatches (factor 2),
    RandomResizedCrop(scale 1/2-1), flip (:func:`~coda_utils.augmentations.rded_augment`) and
    CutMix on every batch.
    Soft- and hard-label results differ by ~15 points on the same images and never share a
    table (:func:`coda_utils.results.format_table`); each row names its teacher.
"""
from __future__ import annotations

from dataclasses import dataclass

from .datasets import check_ipc
from .results import SOFT_LABEL_PROTOCOLS

__all__ = [
    "Protocol",
    "PROTOCOLS",
    "SOFT_LABEL_PROTOCOLS",
    "get_protocol",
    "epochs_for_ipc",
    "lr_milestones",
    "rded_batch_size",
]

PROTOCOLS = ("dc", "dsa", "idc", "rded")
# SOFT_LABEL_PROTOCOLS (the protocols whose targets are a teacher's soft labels) is the results
# table's rule (coda_utils.results): the run folder and the tables need it below this layer


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

