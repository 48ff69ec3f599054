"""Atomic file writing, JSON manifests and ImageFolder export.

Every file a stage writes goes through :func:`atomic_write` (write to a temporary file in the
same directory, then ``os.replace``), so an interrupted run never leaves a half-written file
that a later run would mistake for a finished one.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

__all__ = [
    "atomic_write",
    "write_json",
    "read_json",
    "merge_json",
    "save_image",
    "export_image_folder",
    "package_versions",
]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file next to ``path``; on success move it over ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path, "w") as fh:
        json.dump(obj, fh, indent=2, default=_json_default)
        fh.write("\n")
    return Path(path)


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as fh:
        return json.load(fh)


def merge_json(path: str | os.PathLike, updates: dict) -> dict:
    """Update the JSON object at ``path`` with ``updates`` (keys not in ``updates`` are kept)
    and write it back atomically, so that a partial rerun never drops earlier entries.
    Returns the merged object."""
    path = Path(path)
    merged = read_json(path) if path.is_file() else {}
    if not isinstance(merged, dict):
        raise ValueError(f"{path} does not hold a JSON object; delete it or choose another file")
    merged.update(updates)
    write_json(path, merged)
    return merged


def save_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Save a uint8 image (H x W, H x W x 1 or H x W x 3, or C x H x W) as PNG, atomically."""
    from PIL import Image

    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(1, 2, 0)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.dtype != np.uint8:
        raise ValueError(f"save_image expects uint8 pixels, got {arr.dtype} for {path}")
    with atomic_write(path, "wb") as fh:
        Image.fromarray(arr).save(fh, format="PNG")
    return Path(path)


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


def export_image_folder(
    out_dir: str | os.PathLike,
    images: np.ndarray,
    labels: Sequence[int],
    classes: Sequence[str],
    manifest: dict[str, Any] | None = None,
    names: Sequence[str] | None = None,
) -> Path:
    """Write ``images`` (uint8, N x C x H x W or N x H x W) as ``out_dir/<class>/<name>.png``.

    ``classes[label]`` is the folder name of each image. A ``manifest.json`` with
    ``manifest`` plus the package versions is written last, so its presence marks a complete
    export.
    """
    out_dir = Path(out_dir)
    images = np.asarray(images)
    labels = np.asarray(labels)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    counters: dict[int, int] = {}
    files = []
    for i, (img, lab) in enumerate(zip(images, labels)):
        k = counters.get(int(lab), 0)
        counters[int(lab)] = k + 1
        name = names[i] if names is not None else f"{k:04d}"
        rel = Path(classes[int(lab)]) / f"{name}.png"
        save_image(out_dir / rel, img)
        files.append(str(rel))
    meta = dict(manifest or {})
    meta.setdefault("classes", list(classes))
    meta["files"] = files
    meta["versions"] = package_versions()
    write_json(out_dir / "manifest.json", meta)
    return out_dir
