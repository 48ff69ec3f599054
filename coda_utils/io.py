"""Atomic file writing, JSON files, content hashes and folder locks: the generic layer under
every stage (it depends on nothing else of the package).

Every file a stage writes goes through :func:`atomic_write` (write to a temporary file in the
same directory, then ``os.replace``), so an interrupted run never leaves a half-written file
that a later run would mistake for a finished one. Two processes never write one folder at
once: :func:`exclusive` holds a lock (``filelock``) and refuses a second writer, naming the
first. Set folders (images and ``manifest.json``) are written and read by
:mod:`coda_utils.setfolder` alone.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

__all__ = [
    "atomic_write",
    "array_sha256",
    "file_sha256",
    "file_record",
    "check_file",
    "CorruptFileError",
    "read_table",
    "write_json",
    "read_json",
    "merge_json",
    "package_versions",
    "exclusive",
    "FolderBusyError",
]


_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file next to ``path``; on success move it over ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_UMASK)  # the permissions of a plainly created file, not mkstemp's 0600
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class FolderBusyError(RuntimeError):
    """Another process is writing the same folder (or file)."""


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike, name: str = "folder") -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` while the block runs (``folder/.<name>.lock``, an
    OS file lock through ``filelock``: released when the process ends, even by SIGKILL).

    Raises:
        FolderBusyError: another process holds the lock; the message names it (pid, host,
            since when) and says what to do.
    """
    import datetime
    import socket

    from filelock import FileLock, Timeout

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / f".{name}.lock"))
    owner = folder / f".{name}.lock.owner"
    try:
        lock.acquire(timeout=0)
    except Timeout:
        who = owner.read_text().strip() if owner.is_file() else "another process"
        raise FolderBusyError(f"{folder} is being written by {who}; wait for that run to finish (or stop it) "
                              "before writing here") from None
    try:
        owner.write_text(f"pid {os.getpid()} on {socket.gethostname()} since "
                         f"{datetime.datetime.now().isoformat(timespec='seconds')}\n")
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            owner.unlink()
        lock.release()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def array_sha256(a) -> str:
    """The first 16 hex digits of the SHA-256 of an array's (or tensor's) contiguous bytes: what
    a cache, a set or a teacher records to recognise the exact data it was made from."""
    import hashlib

    if hasattr(a, "detach"):
        a = a.detach().cpu().contiguous().numpy()
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


class CorruptFileError(ValueError):
    """A file a stage reads is damaged, missing or unreadable. The message names the file and
    the action that fixes it (``path`` and ``action`` are kept as attributes)."""

    def __init__(self, path: str | os.PathLike, problem: str, action: str):
        self.path, self.problem, self.action = Path(path), problem, action
        ValueError.__init__(self, f"{path}: {problem}; {action}")


class CorruptJSONError(CorruptFileError, json.JSONDecodeError):
    """A JSON file that does not parse (still a :class:`json.JSONDecodeError` for old callers)."""

    def __init__(self, path, err: json.JSONDecodeError, action: str):
        json.JSONDecodeError.__init__(self, err.msg, err.doc, err.pos)
        CorruptFileError.__init__(self, path, f"not valid JSON: {err.msg} (line {err.lineno} column {err.colno}, "
                                              f"char {err.pos})", action)

    def __str__(self) -> str:
        return self.args[0]


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The SHA-256 (64 hex digits) of a file's bytes, read in chunks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def file_record(path: str | os.PathLike) -> dict:
    """What a folder's record lists for one of its files: ``{"size": bytes, "sha256": hex}``."""
    return {"size": os.path.getsize(path), "sha256": file_sha256(path)}


#: (path, size, mtime_ns) -> sha256 of files verified by this process (a file read again is not hashed again)
_VERIFIED: dict[tuple[str, int, int], str] = {}


def check_file(path: str | os.PathLike, record: dict | None, full: bool = True) -> str | None:
    """What is wrong with ``path`` against its ``record`` (``{"size", "sha256"}``), or ``None``
    when it matches: missing, another size (always checked) or, with ``full``, other content
    (hashed once per process while the file keeps its size and modification time)."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing"
    if record is None:
        return None
    if "size" in record and st.st_size != int(record["size"]):
        return f"{st.st_size:,} bytes where its record says {int(record['size']):,} (truncated or overwritten)"
    if full and "sha256" in record:
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        digest = _VERIFIED.get(key) or file_sha256(path)
        if digest != record["sha256"]:
            return f"content differs from its record (sha256 {digest[:16]}..., recorded {str(record['sha256'])[:16]}...)"
        _VERIFIED[key] = digest
    return None


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path, "w") as fh:
        json.dump(obj, fh, indent=2, default=_json_default)
        fh.write("\n")
    return Path(path)


def read_json(path: str | os.PathLike, action: str | None = None) -> Any:
    """The JSON in ``path``. A file that does not parse raises :class:`CorruptJSONError` naming
    the file and ``action`` (what fixes it; default: delete the file and re-run what wrote it)."""
    with open(path) as fh:
        text = fh.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CorruptJSONError(path, e, action or "it was damaged after it was written: delete it (or restore it) and "
                                                  "run the stage that writes it again") from None


def read_table(path: str | os.PathLike, action: str | None = None, **kwargs):
    """A CSV table (``pandas.read_csv(path, **kwargs)``); a file that does not parse raises
    :class:`CorruptFileError` naming the file and ``action`` (what fixes it; default: delete
    the file and run the stage that writes it again)."""
    import pandas as pd

    try:
        return pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise CorruptFileError(path, f"not a readable CSV table ({str(e).strip().splitlines()[0]})",
                               action or "it was damaged after it was written: restore it, or delete it and run the "
                                         "stage that writes it again") from None


def merge_json(path: str | os.PathLike, updates: dict) -> dict:
    """Update the JSON object at ``path`` with ``updates`` (keys not in ``updates`` are kept)
    and write it back atomically, so that a partial rerun never drops earlier entries.
    Returns the merged object."""
    path = Path(path)
    merged = read_json(path, f"delete it (rm {path}) and run the stage that writes it again") if path.is_file() else {}
    if not isinstance(merged, dict):
        raise ValueError(f"{path} does not hold a JSON object; delete it or choose another file")
    merged.update(updates)
    write_json(path, merged)
    return merged


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide a result, for manifests."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("torch", "diffusers", "transformers", "umap-learn", "pynndescent", "numba", "hdbscan", "scikit-learn",
                 "scipy", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        out["coda_utils"] = metadata.version("coda-utils")
    except metadata.PackageNotFoundError:
        pass
    return out
