"""The teachers of the soft-label protocol (``rded``): trained once, cached, loaded.

Under a soft-label protocol (:data:`coda_utils.results.SOFT_LABEL_PROTOCOLS`) a frozen teacher
relabels every augmented batch (:func:`coda_utils.training.train_and_evaluate`). Where no
pretrained teacher exists (the embedded world), :func:`train_teacher` trains one with hard labels
on a whole real training split and caches it; :func:`load_teacher` loads that checkpoint or a
torchvision classifier; :func:`teacher_for` is what notebooks 04 and 05 call.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from .architectures import build_model
from .io import CorruptFileError, array_sha256, atomic_write, check_file, file_record, read_json, write_json
from .protocols import get_protocol
from .results import SOFT_LABEL_PROTOCOLS
from .training import _check_pair, resolve_precision, train_and_evaluate

__all__ = ["TEACHER_FORMAT", "StaleTeacherError", "train_teacher", "load_teacher", "teacher_for"]


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
    the file to train again). The checkpoint's size and SHA-256 are recorded beside it
    (``<name>.json``, written last); a checkpoint that no longer matches its record, or has none
    (training interrupted), is trained again and the replaced file is named. The test accuracy
    is reported, never used to choose anything.

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
    replaced = _checkpoint_problem(path) if path.is_file() else None
    if path.is_file() and replaced is None:
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
    write_json(_record_path(path), {"files": {path.name: file_record(path)}, "id": meta["id"]})  # written last
    if replaced:
        print(f"teacher: replaced {path} ({replaced})", flush=True)
    return model.to(device).eval(), meta


def _record_path(path: Path) -> Path:
    """The record beside a trained teacher's checkpoint (its size and SHA-256, written last)."""
    return path.with_name(path.name + ".json")


def _checkpoint_problem(path: Path) -> str | None:
    """What is wrong with a cached teacher checkpoint against its record (missing record: the
    training did not finish; other size or content: damaged), or ``None``."""
    record = _record_path(path)
    if not record.is_file():
        return f"no record {record.name} (unfinished, or written before records existed)"
    try:
        rec = read_json(record).get("files", {}).get(path.name)
    except CorruptFileError as e:
        return f"its record is damaged ({e.problem})"
    return check_file(path, rec) if rec is not None else f"its record {record.name} does not list it"


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

