"""Stage 4: evaluate a distilled set: train fresh networks on it, test them on the real test split.

:func:`evaluate` trains the ``repeats`` networks of one set and appends a row per network to a
results file (resumable). The parts it is made of live in their own modules, and this module
re-exports the names notebooks 04-06, ``coda_utils.scale`` and the benchmarks use from them:

==============================  ===================================================================
:mod:`coda_utils.protocols`     the protocols ``dc``, ``dsa``, ``idc``, ``rded`` (:func:`get_protocol`)
:mod:`coda_utils.augmentations` DSA, IDC, RDED's transforms and CutMix, batched on the device
:mod:`coda_utils.training`      one network: :func:`train_and_evaluate`, precision, normalization
:mod:`coda_utils.teachers`      the soft-label protocol's teacher (:func:`teacher_for`)
:mod:`coda_utils.results`       the results table: :func:`read_results`, :func:`summarize`,
                                :func:`format_table` (the headline is ``acc``, the final network's)
==============================  ===================================================================

Seeds: a distilled set is one draw of a selection (``selection_seed``: the random-real draw,
the k-means initialisation, discovery's UMAP seed, the generator's noise) and one network is
one draw of an initialisation (``seed``). :func:`evaluate` records both; :func:`summarize`
reports the mean and std over selection seeds (each seed's networks averaged first) and, as a
separate column, the spread between networks trained on the same set.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from . import augmentations, protocols, results, teachers, training
from .augmentations import DSA_STRATEGY, cutmix, dsa_augment, idc_augment, rded_augment, shuffle_patches
from .io import exclusive
from .protocols import PROTOCOLS, Protocol, epochs_for_ipc, get_protocol, lr_milestones, rded_batch_size
from .results import (CSV_COLUMNS, GROUP_COLUMNS, KEY_COLUMNS, NO_TEACHER, RESULT_COLUMNS, SOFT_LABEL_PROTOCOLS,
                      append_results, format_table, read_results, summarize)
from .teachers import TEACHER_FORMAT, StaleTeacherError, load_teacher, teacher_for, train_teacher
from .training import (FAST_PATH, PRECISIONS, _as_training_channels, _check_pair, keep_freed_memory, normalization_for,
                       normalize, path_options, resolve_precision, top1_accuracy, train_and_evaluate)

__all__ = [
    # this module: one set's networks
    "evaluate",
    "network_seeds",
    "NETWORK_SEED_STRIDE",
    # re-exported: every public name of the modules evaluate() is made of
    *protocols.__all__,
    *augmentations.__all__,
    *training.__all__,
    *teachers.__all__,
    *results.__all__,
]

#: a selection seed's networks get seeds ``selection_seed * NETWORK_SEED_STRIDE + r``
NETWORK_SEED_STRIDE = 1000


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
    curves: dict | None = None,
) -> pd.DataFrame:
    """Evaluate one distilled set: train ``repeats`` fresh networks on it and test each.

    Args:
        method: the method's name, recorded in the results (e.g. ``"coda_g"``).
        train_x, train_y: the distilled set (uint8 ``N x C x H x W``) and its labels.
        test_x, test_y: the real test split (tested in ``train_x``'s channels).
        ipc: images per class of the set; no class may have more.
        arch, protocol, epochs: see :func:`~coda_utils.architectures.build_model` and :func:`get_protocol`.
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
        curves: a dict that receives, for every network this call trains (not those found in
            ``out_csv``), its test accuracy every ``eval_every`` epochs, ``{seed: [(epoch, acc),
            ...]}``: notebook 04 draws its first table row's network this way, trained once.

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
        done = pd.DataFrame(columns=CSV_COLUMNS)
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
                rows.append(found.iloc[[0]][CSV_COLUMNS])
                continue
            res = train_and_evaluate(train_x, ytr, test_x, yte, arch, proto, s, device=device,
                                     eval_every=eval_every, progress=progress, num_classes=num_classes,
                                     normalization=normalization, precision=precision, teacher=teacher,
                                     channels_last=channels_last, compile=compile)
            if curves is not None:
                curves[s] = res["curve"]
            row = pd.DataFrame([{**key, "seed": s, "acc": res["acc"], "acc_best": res["acc_best"],
                                 "train_seconds": res["train_seconds"]}])[CSV_COLUMNS]
            if path is not None:
                append_results(path, row)
            rows.append(row)
    out = pd.concat(rows, ignore_index=True)
    return out.astype({"ipc": int, "selection_seed": int, "seed": int, "epochs": int, "acc": float,
                       "acc_best": float, "train_seconds": float})

