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

from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

__all__ = ["processes", "rank", "world", "share", "barrier", "is_main", "rank_results", "results_so_far",
           "start_rank_results", "merge_rank_results"]

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


# --------------------------------------------------------------------------------------------
# Results files written by several processes: each appends to its own file beside the shared
# one, and the first process merges them at the end, in the order one process writes its rows.
# --------------------------------------------------------------------------------------------
def rank_results(path: str | Path, procs: Any) -> Path:
    """The file this process appends its network rows to: ``path`` itself without a process
    group (one process writes as it always did), ``<stem>.rank<i>.csv`` beside it otherwise."""
    path = Path(path)
    return path if procs is None else path.with_name(f"{path.stem}.rank{rank(procs)}{path.suffix}")


def _rank_files(path: Path) -> list[Path]:
    """The per-process files beside ``path`` (of this job or of an earlier, killed one)."""
    return sorted(path.parent.glob(f"{path.stem}.rank*{path.suffix}"))


def results_so_far(path: str | Path):
    """Every network row of a results file and of the per-process files beside it (also those
    of an earlier, killed job), each network once (:data:`~coda_utils.results.KEY_COLUMNS`),
    the shared file's rows first."""
    import pandas as pd

    from .results import KEY_COLUMNS, read_results

    path = Path(path)
    files = [f for f in [path, *_rank_files(path)] if f.is_file()]
    if not files:
        return read_results(path)  # an empty table with the columns
    rows = pd.concat([read_results(f) for f in files], ignore_index=True)
    return rows.drop_duplicates(subset=KEY_COLUMNS, keep="first")


def start_rank_results(paths: Sequence[str | Path], procs: Any) -> None:
    """Seed this process's file of each results file with every row found so far, so that a
    finished network is not trained again whichever process it falls to now (the evaluation
    skips the networks its ``out_csv`` holds). Every process waits for the others to finish."""
    from .io import atomic_write

    if procs is None:
        return
    for path in paths:
        found = results_so_far(path)
        if len(found):
            with atomic_write(rank_results(path, procs), "w") as fh:
                found.to_csv(fh, index=False)
    barrier(procs)


def merge_rank_results(paths: Sequence[str | Path], procs: Any, order: Callable[[Any], Any]) -> None:
    """After every process has finished: the first one writes each results file from all rows
    so far, sorted (stably) by ``order(rows)`` (a key per row: the position of its network in
    the one-process order), and removes the per-process files."""
    from .io import atomic_write

    if procs is None:
        return
    barrier(procs)
    if is_main(procs):
        for path in map(Path, paths):
            rows = results_so_far(path)
            rows = rows.assign(_o=list(order(rows))).sort_values("_o", kind="stable").drop(columns="_o")
            with atomic_write(path, "w") as fh:
                rows.to_csv(fh, index=False)
            for f in _rank_files(path):
                f.unlink()
    barrier(procs)
