"""The set folder: the one module that writes and reads a distilled set on disk.

A set (R, k-means, herding, random real, the generated sets G, the VAE round trips) is an
ImageFolder::

    <set>/<class id>/<name>.png      one PNG per image, mode L (1 channel) or RGB (3 channels)
    <set>/manifest.json              written last: its presence marks a finished set; it lists
                                     every image with its size and SHA-256 (``records``)

Every writer goes through :func:`write_image` (one image, atomically, so that
:func:`coda_utils.alignment.generate_set` can resume image by image) and :func:`write_manifest`
(the finishing mark); :func:`write_set` writes a whole set at once (complete or absent). Every
reader goes through :func:`read_set`, which returns ``(images, labels, classes)``.

**What is stored can be trusted.** The manifest records every image's size and SHA-256;
:func:`read_set` checks each image against it before decoding it and refuses a damaged or
missing one (:class:`CorruptSetError`, naming the file and the notebook that re-makes it);
:func:`is_finished` is true only for a set whose manifest is there and whose images all match
it (:func:`damaged` lists the others), so a stage that finds a damaged piece makes it again:
:func:`coda_utils.alignment.generate_set` regenerates exactly the damaged images, and
:func:`write_set` rewrites the set, naming the files it replaced.

Why a module of its own and not :mod:`coda_utils.io`: ``io`` is the generic layer every stage
uses for every file (atomic writes, JSON, locks, hashes: latent caches, results, figures) and
depends on nothing of the package; the set folder is one format with its own rules (layout,
manifest keys, completeness, channels) and needs the pixel handling of the data layer
(:func:`~coda_utils.images.resize_images`, :func:`~coda_utils.images.to_channels`,
:func:`~coda_utils.images.read_image`). It depends on ``io`` and ``images`` only, and
neither depends on it, so ``io`` stays a leaf and no import cycle appears.

**Channels are decided once, here.** The channel count of every set of a run is the channel
count of the run's VAE input (:func:`set_channels`: ``vae.config.in_channels``, 1 for the
embedded prior, 3 for SDXL and SD 1.x), recorded by notebook 01 in the latent cache's
:class:`~coda_utils.images.ResizePolicy` (``channels``), so that R, k-means, herding, random
real, the round trips and G all have it, whatever the dataset's files are: a tree of grayscale
PNGs gives 1-channel sets under a 1-channel VAE and RGB sets (gray repeated) under a 3-channel
one; an RGB tree gives luma sets under a 1-channel VAE. Every set records its ``channels`` in
``manifest.json`` and is written in that mode (PNG mode L or RGB); :func:`read_set` reads a set
in the channels it records, or converts to a requested count. Conversions (1 -> 3 repeats the
gray, 3 -> 1 is PIL's ITU-R 601 luma, exactly ``Image.convert("L")``) are
:func:`~coda_utils.images.to_channels`, so a picture converted in memory equals one converted
when decoded. A run without a latent cache (no VAE) keeps the dataset's own channels (1 for a
tree of grayscale files, :attr:`~coda_utils.datasets.LabeledImages.gray`). Evaluation tests on
real images converted to the training set's channels
(:func:`coda_utils.training.train_and_evaluate`).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch

from .images import CHANNEL_MODES, IMAGE_EXTENSIONS, check_channels, read_image, resize_images, to_channels
from .io import CorruptFileError, atomic_write, check_file, exclusive, file_record, package_versions, read_json, write_json

__all__ = [
    "MANIFEST",
    "SetImages",
    "set_channels",
    "image_path",
    "is_finished",
    "damaged",
    "CorruptSetError",
    "remake_action",
    "read_manifest",
    "unfinish",
    "write_image",
    "write_manifest",
    "write_set",
    "read_set",
]

#: the file whose presence marks a finished set
MANIFEST = "manifest.json"


class CorruptSetError(CorruptFileError):
    """A file of a finished set (an image or its manifest) is damaged or missing."""


#: the notebook that makes each method's set (and so re-makes a damaged one)
_MADE_BY = {"coda_r": "02_discover", "kmeans": "02_discover", "herding": "02_discover", "unguided": "03_generate",
            "text_prompt": "03_generate", "coda_g": "03_generate", "random_real": "04_evaluate",
            "vae_coda_r": "04_evaluate", "vae_random_real": "04_evaluate", "coda_g_kmeans": "03_generate",
            "coda_g_herding": "03_generate", "coda_r_no_noise_fill": "02_discover"}


def remake_action(set_dir: str | os.PathLike, method: str | None = None) -> str:
    """What re-makes a damaged set: the notebook that made it, run again with the same
    parameters (it makes the damaged files again), or deleting the folder."""
    made_by = _MADE_BY.get(str(method)) if method else None
    if made_by == "03_generate":
        return "run notebook 03_generate again with the same parameters: it generates exactly the damaged image(s) again"
    if made_by:
        return f"run notebook {made_by} again with the same parameters: it writes the set again"
    return f"delete the set folder {set_dir} and make the set again (notebooks 02, 03 or 04, as for its method)"


def _manifest_action(set_dir: Path) -> str:
    return (f"delete it (rm {Path(set_dir) / MANIFEST}) and run the notebook that made the set again with the same "
            "parameters (02 for coda_r, k-means and herding, 03 for generated sets, 04 for random real and the round "
            "trips): it makes the set again")


class SetImages(NamedTuple):
    """A set as read back: uint8 ``N x C x H x W`` images, int64 labels, the class ids
    (label ``i`` is ``classes[i]``)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]


# --------------------------------------------------------------------------------------
# Channels
# --------------------------------------------------------------------------------------
def set_channels(vae_or_pipe: Any) -> int:
    """The channel count of a run's sets: its VAE's input channels (a pipeline's ``.vae`` or
    an ``AutoencoderKL``)."""
    vae = getattr(vae_or_pipe, "vae", vae_or_pipe)
    c = int(vae.config.in_channels)
    if c not in CHANNEL_MODES:
        raise ValueError(f"the VAE takes {c}-channel images; sets are written with 1 or 3 channels")
    return c


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------
def image_path(set_dir: str | os.PathLike, class_id: str, name: int | str) -> Path:
    """Where image ``name`` of class ``class_id`` lives (an int ``k`` is ``<k:04d>.png``)."""
    return Path(set_dir) / class_id / (f"{name:04d}.png" if isinstance(name, (int, np.integer)) else f"{name}.png")


def is_finished(set_dir: str | os.PathLike, verify: bool = True) -> bool:
    """Whether ``set_dir`` holds a finished set: its manifest, written last, is there and (with
    ``verify``) every image it records matches its record (size and SHA-256, hashed once per
    process). A set with damaged or missing images is not finished (a warning names them), so
    the stage that makes it makes it again.

    Raises:
        CorruptSetError: the manifest itself does not parse (the message says what to do).
    """
    if not (Path(set_dir) / MANIFEST).is_file():
        return False
    if not verify:
        return True
    bad = damaged(set_dir)
    if bad:
        import warnings

        warnings.warn(f"{set_dir} is not a finished set: " + "; ".join(f"{Path(set_dir) / f}: {p}" for f, p in bad.items()),
                      stacklevel=2)
    return not bad


def damaged(set_dir: str | os.PathLike, full: bool = True) -> dict[str, str]:
    """The images of a finished set that do not match the manifest's records: ``{file
    (relative to the set): what is wrong}`` (missing, another size, with ``full`` other
    content). A manifest written before records were kept: the files it lists that are missing."""
    root = Path(set_dir)
    if not (root / MANIFEST).is_file():
        return {}
    manifest = read_manifest(root)
    records = manifest.get("records")
    if records is None:
        return {f: "missing" for f in manifest.get("files", []) if not (root / f).is_file()}
    bad = {}
    for f, rec in records.items():
        problem = check_file(root / f, rec, full=full)
        if problem is not None:
            bad[f] = problem
    return bad


def read_manifest(set_dir: str | os.PathLike) -> dict:
    """The manifest of a finished set; ``FileNotFoundError`` (naming the folder) otherwise, and
    :class:`CorruptSetError` (naming the file and what to do) for one that does not parse."""
    path = Path(set_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{set_dir} is not a finished set (no {MANIFEST})")
    return _read_manifest_file(path)


def _read_manifest_file(path: Path) -> dict:
    try:
        manifest = read_json(path, _manifest_action(path.parent))
    except CorruptFileError as e:
        raise CorruptSetError(path, f"damaged set manifest: {e.problem}", e.action) from None
    if not isinstance(manifest, dict):
        raise CorruptSetError(path, "damaged set manifest: not a JSON object", _manifest_action(path.parent))
    return manifest


def unfinish(set_dir: str | os.PathLike) -> None:
    """Remove the manifest before images are (re)written: complete or absent, a set being
    written never looks finished."""
    with contextlib.suppress(FileNotFoundError):
        (Path(set_dir) / MANIFEST).unlink()


def write_image(path: str | os.PathLike, image: torch.Tensor | np.ndarray, channels: int | None = None) -> Path:
    """Write one uint8 image (``C x H x W`` or ``H x W``) as a PNG, atomically, with
    ``channels`` channels (mode L or RGB; default: the image's own)."""
    from PIL import Image

    x = torch.as_tensor(image)
    if x.dtype != torch.uint8:
        raise ValueError(f"a set image must have uint8 pixels, got {x.dtype} for {path}")
    if x.ndim == 2:
        x = x[None]
    x = to_channels(x, x.shape[0] if channels is None else channels)
    arr = x.cpu().numpy()
    pil = Image.fromarray(arr[0], "L") if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0), "RGB")
    with atomic_write(path, "wb") as fh:
        pil.save(fh, format="PNG")
    return Path(path)


def write_manifest(set_dir: str | os.PathLike, manifest: dict[str, Any], channels: int) -> Path:
    """Write ``manifest`` plus the set's ``channels``, the package versions and the size and
    SHA-256 of every image (``records``: of the manifest's ``files``, else of every image file
    under ``set_dir``) as ``manifest.json``: the last file of a set, which marks it finished."""
    set_dir = Path(set_dir)
    meta = dict(manifest)
    meta["channels"] = check_channels(channels)
    meta["versions"] = package_versions()
    files = meta.get("files")
    if files is None:
        files = sorted(str(p.relative_to(set_dir)) for p in set_dir.rglob("*")
                       if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
    meta["records"] = {f: file_record(set_dir / f) for f in files}
    return write_json(set_dir / MANIFEST, meta)


def write_set(
    set_dir: str | os.PathLike,
    images: torch.Tensor | np.ndarray,
    labels: Sequence[int],
    classes: Sequence[str],
    manifest: dict[str, Any] | None = None,
    names: Sequence[str] | None = None,
    channels: int | None = None,
) -> Path:
    """Write ``images`` (uint8, ``N x C x H x W`` or ``N x H x W``) as ``set_dir/<class>/<name>.png``.

    ``classes[label]`` is the folder of each image, ``names`` the file names (default the
    image's rank in its class, ``0000``...). Images are written with ``channels`` channels
    (default: the images' own). Complete or absent: an existing manifest is removed before the
    first image is written, images of an earlier set that this one does not write are removed,
    and the manifest (``manifest`` plus ``classes``, ``files``, ``channels`` and the package
    versions) is written last. The folder is locked while it is written
    (:func:`~coda_utils.io.exclusive`).
    """
    set_dir = Path(set_dir)
    x = torch.as_tensor(images)
    if x.ndim == 3:
        x = x[:, None]
    labels = np.asarray(labels)
    if len(x) != len(labels):
        raise ValueError(f"{len(x)} images but {len(labels)} labels")
    channels = check_channels(x.shape[1] if channels is None else channels)
    with exclusive(set_dir):
        try:
            replaced = damaged(set_dir)
        except CorruptSetError as e:
            replaced = {MANIFEST: e.problem}
        unfinish(set_dir)
        counters: dict[int, int] = {}
        files = []
        for i, (img, lab) in enumerate(zip(x, labels)):
            k = counters.get(int(lab), 0)
            counters[int(lab)] = k + 1
            path = image_path(set_dir, classes[int(lab)], names[i] if names is not None else k)
            write_image(path, img, channels)
            files.append(str(path.relative_to(set_dir)))
        keep = set(files)
        for old in set_dir.rglob("*.png"):
            if str(old.relative_to(set_dir)) not in keep:
                old.unlink()
        meta = dict(manifest or {})
        meta.setdefault("classes", list(classes))
        meta["files"] = files
        write_manifest(set_dir, meta, channels)
        for f, problem in replaced.items():
            print(f"set {set_dir}: replaced {set_dir / f} ({problem})", flush=True)
    return set_dir


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------
def _read_checked(root: Path, f: Path, records: dict, method: str | None, channels: int | None) -> torch.Tensor:
    """One image of a set, checked against its record first (size and hash), then decoded."""
    rec = records.get(f.relative_to(root).as_posix())
    problem = check_file(f, rec) if rec is not None else None
    if problem is None:
        try:
            return read_image(f, channels)
        except (OSError, ValueError) as e:
            if rec is None:
                raise
            problem = f"does not decode ({e})"
    raise CorruptSetError(f, f"damaged image of a finished set: {problem}", remake_action(root, method))


def read_set(set_dir: str | os.PathLike, size: int | tuple[int, int] | None = None,
             classes: Sequence[str] | None = None, channels: int | None = None) -> SetImages:
    """Read a set folder (``set_dir/<class>/<image>``) as tensors.

    Args:
        set_dir: the set's root.
        size: bring every image to ``size`` (centre crop); required when sizes differ.
        classes: the class folder order (label ``i`` = ``classes[i]``); default the manifest's
            ``classes``, else the sorted folder names. It must match the test labels' order.
        channels: convert every image to 1 or 3 channels; default the manifest's ``channels``
            (what the set was written with), else 1 when every file is grayscale and 3 otherwise.

    Returns:
        :class:`SetImages` ``(images, labels, classes)``: uint8 ``N x C x H x W`` in class order
        and then file-name order, int64 labels, the class ids.
    """
    import warnings

    root = Path(set_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"distilled set folder {root} does not exist")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    manifest = _read_manifest_file(root / MANIFEST) if (root / MANIFEST).is_file() else {}
    records = manifest.get("records") or {}
    if classes is None:
        classes = manifest.get("classes")
    classes = list(classes) if classes is not None else folders
    stray = sorted(set(folders) - set(classes))
    if stray:
        raise ValueError(f"{root}: folders {stray} are not in the class list {classes}")
    if channels is None:
        channels = manifest.get("channels")

    images: list[torch.Tensor] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        d = root / cls
        if not d.is_dir():
            continue
        for f in sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS):
            images.append(_read_checked(root, f, records, manifest.get("method"), channels))
            labels.append(label)
    missing = sorted(f for f in records if not (root / f).is_file())
    if missing:
        raise CorruptSetError(root / missing[0], "an image of the set is missing"
                              + (f" ({len(missing) - 1} more)" if len(missing) > 1 else ""),
                              remake_action(root, manifest.get("method")))
    if not images:
        raise ValueError(f"{root}: no images found in the class folders {classes}")
    channels = max(t.shape[0] for t in images) if channels is None else check_channels(channels)
    size = (size, size) if isinstance(size, (int, np.integer)) else size
    tensors = [to_channels(t, channels) for t in images]
    if size is not None:
        tensors = [resize_images(t, tuple(size))[0] for t in tensors]
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"{root}: images have different sizes {sorted(shapes)}; pass size= (notebook 04: image_size)")
    present = set(labels)
    empty = [c for i, c in enumerate(classes) if i not in present]
    if empty:
        warnings.warn(f"{root}: no images for class(es) {empty}", stacklevel=2)
    return SetImages(torch.stack(tensors), torch.as_tensor(labels, dtype=torch.int64), classes)
