"""Scale-out over processes with Hugging Face accelerate: which share of a stage's work is ours.

Encoding (01), generation (03) and evaluation (04) split their work between the processes of an
``accelerate launch`` (or ``torchrun``) job, and every output is **identical to a one-process
run**: the work is split in units that do not depend on the number of processes (a class of
the latent cache, a fixed batch of ``(class, k)`` images of a set, one network), and each unit
is computed exactly as one process computes it (its seeds come from ``(seed, class, k)`` or the
network's seed, never from the process index). A killed process leaves finished units on disk;
running the same command again (with any number of processes) does only the missing ones.

The process group comes from :class:`accelerate.PartialState`: on GPUs one process per device
(NCCL), on CPUs processes talking through gloo (``PartialState(cpu=True)``), so the same code
is tested on a laptop with two CPU processes::

    accelerate launch --multi_gpu --num_processes 2 -m coda_utils.scale encode --run-dir runs/x
    accelerate launch --multi_gpu --num_processes 8 -m coda_utils.scale generate --run-dir runs/x --ipc 50

(``--multi_gpu`` is accelerate's name for "start N processes"; with ``--device cpu``, the
default, they run on the CPU.) Every stage function takes ``processes``: ``None`` (one process,
accelerate not even imported) or the object :func:`processes` returns.
"""
from __future__ import annotations

from typing import Any, Sequence, TypeVar

__all__ = ["processes", "rank", "world", "share", "barrier", "is_main"]

T = TypeVar("T")


def processes(device: str = "cpu") -> Any:
    """The job's process group (:class:`accelerate.PartialState`): its ``process_index``,
    ``num_processes``, ``device`` (``cuda:<local rank>`` on GPUs) and ``wait_for_everyone``.
    ``device="cpu"`` makes the processes of a launch talk through gloo on the CPU."""
    from accelerate import PartialState

    return PartialState(cpu=str(device) == "cpu")


def rank(procs: Any) -> int:
    """This process's index (0 without a process group)."""
    return 0 if procs is None else int(procs.process_index)


def world(procs: Any) -> int:
    """The number of processes (1 without a process group)."""
    return 1 if procs is None else int(procs.num_processes)


def is_main(procs: Any) -> bool:
    """Whether this process writes the shared files (the first one)."""
    return rank(procs) == 0


def share(units: Sequence[T], procs: Any) -> list[T]:
    """This process's units of work: every ``world``-th one from its index (round robin, so the
    classes or batches of a stage are spread evenly); all of them without a process group."""
    return list(units)[rank(procs)::world(procs)]


def barrier(procs: Any) -> None:
    """Wait until every process gets here (nothing without a process group)."""
    if procs is not None and world(procs) > 1:
        procs.wait_for_everyone()
