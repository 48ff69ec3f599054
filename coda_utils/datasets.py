"""Datasets: Fashion-MNIST (the embedded world) and ImageFolder trees (ImageNet subsets).

Every dataset is a :class:`LabeledImages`: a list of class ids (folder names or WNIDs),
human-readable class names (the first name is the prompt), integer labels, and a way to load
any subset of images as a ``uint8`` tensor ``N x C x H x W`` at a chosen size.

Fashion-MNIST is split three ways (``../shared/docs/embedded-world.md``):

========  =====================  ==========================================
split     images                 who may see it
========  =====================  ==========================================
pool      train[0:50000]         only the prior's training
target    train[50000:60000]     the dataset being distilled
test      t10k (10,000)          only the final evaluation
========  =====================  ==========================================

For choosing settings without touching ``test`` (the guidance scale, say), ``target`` is
further split into ``target_fit`` (train[50000:58000], distilled while choosing) and
``target_val`` (train[58000:60000], the held-out images the choice is judged on).
"""
from __future__ import annotations

import gzip
import os
import struct
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "LabeledImages",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_SPLITS",
    "IMAGENET_SUBSETS",
    "load_fashion_mnist",
    "load_image_folder",
    "load_dataset",
    "imagenet_subset",
    "imagenet_class_names",
    "resize_images",
    "DatasetNotFoundError",
]

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
#: folder-safe class ids for exports
FASHION_MNIST_IDS = [
    "tshirt_top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle_boot",
]
FASHION_MNIST_SPLITS = {"pool": ("train", 0, 50_000), "target": ("train", 50_000, 60_000), "test": ("t10k", 0, 10_000),
                        "target_fit": ("train", 50_000, 58_000), "target_val": ("train", 58_000, 60_000)}
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
REPO_ROOT = Path(__file__).resolve().parent.parent

IMAGENET_SUBSETS = [
    "imagenette", "imagewoof", "imageidc",
    "imagenet-a", "imagenet-b", "imagenet-c", "imagenet-d", "imagenet-e",
    "imagenet-100", "imagenet-1k",
]
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".jpe"}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where we looked; the message says how to get them."""


# --------------------------------------------------------------------------------------
# The common container
# --------------------------------------------------------------------------------------
@dataclass
class LabeledImages:
    """A labelled image dataset, loadable at any resolution.

    Attributes:
        name: dataset name (for manifests and tables).
        classes: class ids, used as folder names on export (WNIDs for ImageNet).
        class_names: human-readable names; ``class_names[c]`` is the prompt of class ``c``.
        labels: ``int64`` array with one label per image.
        source_indices: index of each image in its source (split offset included), recorded
            in manifests so a selection can be traced back.
        native_size: (H, W) every image is loaded at by default; ``None`` for folders of
            mixed sizes, which then need an explicit size.
    """

    name: str
    classes: list[str]
    class_names: list[str]
    labels: np.ndarray
    source_indices: np.ndarray
    native_size: tuple[int, int] | None
    _pixels: torch.Tensor | None = field(default=None, repr=False)
    paths: list[Path] | None = field(default=None, repr=False)
    skipped: list[str] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return 1 if self._pixels is not None and self._pixels.shape[1] == 1 else 3

    @property
    def prompts(self) -> list[str]:
        """The text prompt of each class: its first name."""
        return [n.split(",")[0].strip() for n in self.class_names]

    def class_indices(self, c: int) -> np.ndarray:
        """Positions (into this dataset) of the images of class ``c``."""
        return np.flatnonzero(self.labels == c)

    def counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)

    def load(self, indices: Sequence[int] | np.ndarray | None = None, size: int | tuple[int, int] | None = None,
             resize: str = "center_crop", progress: bool = False) -> torch.Tensor:
        """Load images as ``uint8`` ``N x C x H x W``.

        Args:
            indices: positions to load (default: all).
            size: output size; default the native size.
            resize: ``"center_crop"`` (shorter side to ``size``, then centre crop; keeps the
                aspect ratio), ``"squash"`` (plain resize, aspect ratio not kept, as the CoDA
                reference does for SDXL) or ``"pad"`` (zero-pad a smaller image, e.g. 28 -> 32).
        """
        idx = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        if size is None:
            if self.native_size is None:
                raise ValueError(f"{self.name}: images have mixed sizes; pass size=")
            size = self.native_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        if self._pixels is not None:
            return resize_images(self._pixels[torch.as_tensor(idx)], size, resize)
        assert self.paths is not None
        out = torch.empty((len(idx), 3, *size), dtype=torch.uint8)
        it = idx
        if progress:
            from tqdm.auto import tqdm
            it = tqdm(idx, desc=f"loading {self.name}", unit="img")
        for j, i in enumerate(it):
            out[j] = resize_images(_read_image(self.paths[i]), size, resize)[0]
        return out

    def subset(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> "LabeledImages":
        idx = np.asarray(indices, dtype=np.int64)
        return LabeledImages(
            name=name or self.name,
            classes=self.classes,
            class_names=self.class_names,
            labels=self.labels[idx],
            source_indices=self.source_indices[idx],
            native_size=self.native_size,
            _pixels=None if self._pixels is None else self._pixels[torch.as_tensor(idx)],
            paths=None if self.paths is None else [self.paths[i] for i in idx],
        )


def resize_images(x: torch.Tensor, size: tuple[int, int], mode: str = "center_crop") -> torch.Tensor:
    """Resize a ``uint8`` batch ``N x C x H x W`` (or one ``C x H x W`` image) to ``size``."""
    if x.ndim == 3:
        x = x[None]
    h, w = x.shape[-2:]
    th, tw = size
    if (h, w) == (th, tw):
        return x
    if mode == "pad":
        if h > th or w > tw:
            raise ValueError(f"cannot pad {h}x{w} images to the smaller {th}x{tw}")
        top, left = (th - h) // 2, (tw - w) // 2
        return F.pad(x, (left, tw - w - left, top, th - h - top))
    xf = x.float()
    if mode == "squash":
        y = F.interpolate(xf, size=(th, tw), mode="bilinear", antialias=True, align_corners=False)
    elif mode == "center_crop":
        scale = max(th / h, tw / w)
        nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
        y = F.interpolate(xf, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        top, left = (nh - th) // 2, (nw - tw) // 2
        y = y[..., top:top + th, left:left + tw]
    else:
        raise ValueError(f"resize must be 'center_crop', 'squash' or 'pad', not {mode!r}")
    return y.round().clamp(0, 255).to(torch.uint8)


# --------------------------------------------------------------------------------------
# Fashion-MNIST
# --------------------------------------------------------------------------------------
def _fashion_mnist_candidates(data_dir: str | os.PathLike | None) -> list[Path]:
    cands = []
    if data_dir is not None:
        d = Path(data_dir)
        cands += [d, d / "fashion-mnist"]
    if os.environ.get("CODA_DATA_DIR"):
        cands.append(Path(os.environ["CODA_DATA_DIR"]) / "fashion-mnist")
    cands += [REPO_ROOT / "data" / "fashion-mnist", DEBIAN_FASHION_MNIST]
    return cands


def find_fashion_mnist(data_dir: str | os.PathLike | None = None) -> Path:
    """The first directory holding the four Fashion-MNIST IDX files."""
    needed = [f for pair in FASHION_MNIST_FILES.values() for f in pair]
    cands = _fashion_mnist_candidates(data_dir)
    for d in cands:
        if all((d / f).is_file() for f in needed):
            return d
    looked = "\n  ".join(str(c) for c in cands)
    raise DatasetNotFoundError(
        "Fashion-MNIST not found. Looked for "
        f"{', '.join(needed)} in:\n  {looked}\n"
        "Get it with one of:\n"
        "  sudo apt-get install dataset-fashion-mnist      (Debian/Ubuntu; files land in "
        f"{DEBIAN_FASHION_MNIST})\n"
        f"  mkdir -p data/fashion-mnist && for f in {' '.join(needed)}; do "
        f"curl -fL -o data/fashion-mnist/$f {FASHION_MNIST_MIRROR}/$f; done\n"
        "or pass data_dir= / set CODA_DATA_DIR to a directory that holds them."
    )


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: corrupt IDX file (expected {dims}, got {arr.size} bytes); re-download it")
    return arr.reshape(dims)


@lru_cache(maxsize=4)
def _fashion_mnist_arrays(directory: str, part: str) -> tuple[np.ndarray, np.ndarray]:
    img_f, lab_f = FASHION_MNIST_FILES[part]
    return _read_idx(Path(directory) / img_f), _read_idx(Path(directory) / lab_f).astype(np.int64)


def load_fashion_mnist(split: str = "target", data_dir: str | os.PathLike | None = None) -> LabeledImages:
    """Fashion-MNIST ``pool``, ``target``, ``test`` (the embedded world's splits), ``target_fit``
    and ``target_val`` (``target`` cut for model selection), or ``train``."""
    d = find_fashion_mnist(data_dir)
    if split in FASHION_MNIST_SPLITS:
        part, lo, hi = FASHION_MNIST_SPLITS[split]
    elif split == "train":
        part, lo, hi = "train", 0, 60_000
    else:
        raise ValueError(f"unknown Fashion-MNIST split {split!r}; use pool, target, test, target_fit, target_val or train")
    images, labels = _fashion_mnist_arrays(str(d), part)
    pixels = torch.from_numpy(images[lo:hi].copy())[:, None]
    return LabeledImages(
        name=f"fashion-mnist-{split}",
        classes=list(FASHION_MNIST_IDS),
        class_names=list(FASHION_MNIST_CLASSES),
        labels=labels[lo:hi].copy(),
        source_indices=np.arange(lo, hi),
        native_size=(28, 28),
        _pixels=pixels,
    )


# --------------------------------------------------------------------------------------
# ImageNet class lists and ImageFolder trees
# --------------------------------------------------------------------------------------
def _imagenet_file(name: str) -> str:
    return resources.files("coda_utils").joinpath("data", "imagenet", name).read_text()


@lru_cache(maxsize=1)
def imagenet_class_names() -> dict[str, str]:
    """WNID -> the comma-separated ImageNet synonyms (the first is the prompt)."""
    wnids = _imagenet_file("imagenet-1k-wnids.txt").split()
    names = [ln.strip() for ln in _imagenet_file("imagenet-1k-names.txt").splitlines() if ln.strip()]
    if len(wnids) != len(names):
        raise RuntimeError("coda_utils/data/imagenet: wnid and name lists differ in length")
    return dict(zip(wnids, names))


def imagenet_subset(name: str) -> list[str]:
    """The WNIDs of an ImageNet subset by name (imagenette, imagewoof, ..., imagenet-1k)."""
    key = name.lower()
    if key not in IMAGENET_SUBSETS:
        raise ValueError(f"unknown ImageNet subset {name!r}; choose one of {', '.join(IMAGENET_SUBSETS)}")
    fname = "imagenet-1k-wnids.txt" if key == "imagenet-1k" else f"{key}.txt"
    return _imagenet_file(fname).split()


def _read_image(path: Path) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def _readable(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
        return True
    except Exception:  # noqa: BLE001 - any decoder failure means "unreadable"
        return False


def load_image_folder(
    root: str | os.PathLike,
    subset: str | None = None,
    class_names: dict[str, str] | Sequence[str] | None = None,
    verify: bool = True,
    name: str | None = None,
) -> LabeledImages:
    """An ImageFolder tree: ``root/<class id>/<image>``.

    Args:
        root: the tree's root; must exist.
        subset: an ImageNet subset name (see :data:`IMAGENET_SUBSETS`); then exactly its WNID
            folders are used, in the subset's order, and class names come from ImageNet.
        class_names: names for the class folders (dict id -> name, or a list in folder
            order); by default ImageNet names for WNID folders, otherwise the folder name.
        verify: decode every image once and skip unreadable ones with a warning (the number
            skipped is reported at the end and kept in ``.skipped``).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"image folder root {root} does not exist (or is not a directory)")
    if subset is not None:
        classes = imagenet_subset(subset)
        missing = [c for c in classes if not (root / c).is_dir()]
        if missing:
            raise DatasetNotFoundError(
                f"{root} lacks {len(missing)} of the {len(classes)} class folders of {subset} "
                f"(e.g. {root / missing[0]}); point root at an ImageNet train or val tree with one folder per WNID"
            )
    else:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not classes:
            raise DatasetNotFoundError(f"{root} has no class folders; expected root/<class>/<image files>")
    inet = imagenet_class_names()
    if class_names is None:
        names = [inet.get(c, c) for c in classes]
    elif isinstance(class_names, dict):
        names = [class_names.get(c, c) for c in classes]
    else:
        names = list(class_names)
        if len(names) != len(classes):
            raise ValueError(f"{len(names)} class names for {len(classes)} class folders in {root}")

    paths: list[Path] = []
    labels: list[int] = []
    skipped: list[str] = []
    for c, cid in enumerate(classes):
        files = sorted(p for p in (root / cid).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        good = 0
        for p in files:
            if verify and not _readable(p):
                skipped.append(str(p))
                if len(skipped) <= 5:
                    warnings.warn(f"skipping unreadable image {p}", stacklevel=2)
                continue
            paths.append(p)
            labels.append(c)
            good += 1
        if good == 0:
            raise DatasetNotFoundError(f"class folder {root / cid} has no readable image")
    if skipped:
        warnings.warn(f"{root}: skipped {len(skipped)} unreadable image(s) in total", stacklevel=2)
    sizes = set()
    if paths:
        from PIL import Image

        for p in paths[: min(len(paths), 64)]:
            with Image.open(p) as im:
                sizes.add(im.size[::-1])
    native = sizes.pop() if len(sizes) == 1 else None
    return LabeledImages(
        name=name or (subset or root.name),
        classes=list(classes),
        class_names=names,
        labels=np.asarray(labels, dtype=np.int64),
        source_indices=np.arange(len(paths)),
        native_size=native,
        paths=paths,
        skipped=skipped,
    )


def load_dataset(name: str, split: str = "target", root: str | os.PathLike | None = None) -> LabeledImages:
    """One entry point for notebooks: ``fashion-mnist`` (split pool/target/test), an ImageNet
    subset name (``root`` = the ImageNet train or val tree for that split) or ``folder``."""
    key = name.lower()
    if key in ("fashion-mnist", "fashion_mnist", "fmnist"):
        return load_fashion_mnist(split, root)
    if root is None:
        raise ValueError(f"dataset {name!r} needs root= (an ImageFolder directory)")
    if key in IMAGENET_SUBSETS:
        return load_image_folder(root, subset=key, name=f"{key}-{split}")
    if key in ("folder", "imagefolder"):
        return load_image_folder(root)
    raise ValueError(f"unknown dataset {name!r}; use fashion-mnist, folder or one of {', '.join(IMAGENET_SUBSETS)}")
