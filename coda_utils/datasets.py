"""Datasets: Fashion-MNIST (the embedded world) and ImageFolder trees (ImageNet subsets).

Every dataset is a :class:`LabeledImages`: a list of class ids (folder names or WNIDs),
human-readable class names (the first name is the prompt), integer labels, and a way to load
any subset of images as a ``uint8`` tensor ``N x C x H x W`` at a chosen size.

Fashion-MNIST is split three ways (``docs/embedded-world.md``):

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

Image sizes and channels: how an image reaches the model's size (a :class:`~coda_utils.images.ResizePolicy`,
decided once from the sizes of all images) and in which channels a dataset loads are
:mod:`coda_utils.images`; a dataset with a policy attached (:meth:`LabeledImages.with_policy`)
loads at the policy's size and in its channels when no size is given. A dataset's own images load
as 1 channel when they are all grayscale files (Fashion-MNIST, a tree of gray PNGs) and as RGB
otherwise (:attr:`LabeledImages.gray`).
"""
from __future__ import annotations

import gzip
import hashlib
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

from .errors import ParameterError
from .images import IMAGE_EXTENSIONS, ResizePolicy, probe_image, read_image, resize_images, run_policy, to_channels

__all__ = [
    "LabeledImages",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_SPLITS",
    "IMAGENET_SUBSETS",
    "REPO_ROOT",
    "load_fashion_mnist",
    "find_fashion_mnist",
    "load_image_folder",
    "holdout_split",
    "evaluation_data",
    "load_dataset",
    "imagenet_subset",
    "imagenet_class_names",
    "DatasetNotFoundError",
    "DATASETS",
    "check_ipc",
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
#: the names :func:`load_dataset` accepts
DATASETS = ("fashion-mnist", "folder", *IMAGENET_SUBSETS)


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
        native_size: (H, W) of every image when all have the same size; ``None`` for folders of
            mixed sizes, which load at their :attr:`policy`'s size (or an explicit size).
        sizes: ``N x 2`` (H, W) of every image, read when the tree is listed (``None``: all
            ``native_size``).
        policy: the :class:`ResizePolicy` a size-less :meth:`load` follows (see
            :meth:`with_policy`).
        gray: an ImageFolder tree whose images are all grayscale loads as 1 channel (else
            every image loads as RGB: grayscale, CMYK and RGBA files alike).
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
    sizes: np.ndarray | None = field(default=None, repr=False)
    policy: "ResizePolicy | None" = field(default=None, repr=False)
    gray: bool = False

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def source_channels(self) -> int:
        """The images' own channels: 1 for Fashion-MNIST and trees of grayscale files, else 3."""
        if self._pixels is not None:
            return int(self._pixels.shape[1])
        return 1 if self.gray else 3

    @property
    def channels(self) -> int:
        """The channels :meth:`load` returns: the policy's when it names them (a run's sets: its
        VAE's input channels), else :attr:`source_channels`."""
        if self.policy is not None and self.policy.channels is not None:
            return int(self.policy.channels)
        return self.source_channels

    @property
    def prompts(self) -> list[str]:
        """The text prompt of each class: its first name."""
        return [n.split(",")[0].strip() for n in self.class_names]

    def class_indices(self, c: int) -> np.ndarray:
        """Positions (into this dataset) of the images of class ``c``."""
        return np.flatnonzero(self.labels == c)

    def counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)

    def image_sizes(self) -> np.ndarray:
        """``N x 2`` (H, W) of every image."""
        if self.sizes is not None:
            return self.sizes
        if self.native_size is None:
            raise ValueError(f"{self.name}: no image sizes recorded")
        return np.tile(np.asarray(self.native_size, dtype=np.int64), (len(self), 1))

    def with_policy(self, policy: "ResizePolicy") -> "LabeledImages":
        """The same dataset, loading at ``policy``'s export size and mode when no size is given,
        and in ``policy``'s channels when it names them."""
        from dataclasses import replace

        return replace(self, policy=policy)

    @property
    def export_size(self) -> tuple[int, int] | None:
        """The size sets are exported at: the native size, else the policy's (model) size."""
        if self.native_size is not None:
            return self.native_size
        return None if self.policy is None else tuple(self.policy.size)

    def load(self, indices: Sequence[int] | np.ndarray | None = None, size: int | tuple[int, int] | None = None,
             resize: str | None = None, progress: bool = False) -> torch.Tensor:
        """Load images as ``uint8`` ``N x C x H x W`` with :attr:`channels` channels.

        Args:
            indices: positions to load (default: all).
            size: output size; default :attr:`export_size` (the native size, or for a tree of
                mixed sizes its policy's size).
            resize: ``"center_crop"`` (the largest centred region of the output's aspect ratio,
                resized; keeps the aspect ratio), ``"squash"`` (plain resize, aspect ratio not
                kept, as the CoDA reference does for SDXL) or ``"pad"`` (zero-pad a smaller
                image, e.g. 28 -> 32); default the policy's mode, else ``"center_crop"``.
        """
        idx = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        if size is None:
            size = self.export_size
            if size is None:
                raise ValueError(
                    f"{self.name}: images have mixed sizes ({_describe(self.sizes)}); load them through a resize "
                    "policy (images.decide_resize, recorded with the latent cache of notebook 01) or pass size=")
        if resize is None:
            resize = self.policy.mode if self.policy is not None else "center_crop"
        size = (size, size) if isinstance(size, int) else tuple(size)
        if self._pixels is not None:
            return to_channels(resize_images(self._pixels[torch.as_tensor(idx)], size, resize), self.channels)
        assert self.paths is not None
        out = torch.empty((len(idx), self.channels, *size), dtype=torch.uint8)
        it = idx
        if progress:
            from tqdm.auto import tqdm
            it = tqdm(idx, desc=f"loading {self.name}", unit="img")
        for j, i in enumerate(it):
            try:
                out[j] = resize_images(read_image(self.paths[i], self.channels), size, resize)[0]
            except ValueError as e:
                raise ValueError(f"{self.paths[i]}: {e}") from None
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
            sizes=None if self.sizes is None else self.sizes[idx],
            policy=self.policy,
            gray=self.gray,
        )


def check_ipc(ipc, counts=None, class_names: Sequence[str] | None = None, what: str = "the dataset") -> int:
    """The one check of an IPC (images per class), used by every stage: ``ipc`` must be a
    positive integer and, when ``counts`` is given, no larger than any class's size.

    Args:
        counts: one class's size (an int: discovery and the latent-space baselines work one
            class at a time) or every class's (``class_names[c]`` has ``counts[c]`` images of
            ``what``); ``None`` checks ``ipc`` alone.

    Returns:
        ``ipc`` as an int.

    Raises:
        ValueError: naming the smallest class and the largest IPC that fits.
    """
    if isinstance(ipc, bool) or not isinstance(ipc, (int, float, np.integer, np.floating)) or int(ipc) != ipc or ipc < 1:
        raise ValueError(f"ipc must be a positive integer, got {ipc!r}")
    ipc = int(ipc)
    if counts is None:
        return ipc
    if np.ndim(counts) == 0:
        n = int(counts)
        if ipc > n:
            raise ValueError(f"ipc={ipc} is larger than the class ({n} images); choose ipc <= {n}")
        return ipc
    counts = [int(n) for n in counts]
    names = list(class_names) if class_names is not None else [str(c) for c in range(len(counts))]
    small = [(name, n) for name, n in zip(names, counts) if n < ipc]
    if small:
        name, n = min(small, key=lambda t: t[1])
        raise ValueError(f"ipc={ipc} is larger than {len(small)} class(es) of {what} "
                         f"(smallest: {name!r} has {n} images); choose ipc <= {min(counts)}")
    return ipc



def _describe(sizes: np.ndarray | None) -> str:
    if sizes is None or not len(sizes):
        return "sizes unknown"
    u = np.unique(sizes, axis=0)
    return (f"{len(u)} distinct sizes from {sizes[:, 0].min()}x{sizes[:, 1].min()} "
            f"to {sizes[:, 0].max()}x{sizes[:, 1].max()} (HxW)")



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



def _image_files(folder: Path) -> list[Path]:
    """Image files below ``folder``, nested folders included (as torchvision's ImageFolder),
    hidden files and folders skipped, in sorted path order."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS:
                out.append(Path(dirpath) / f)
    return sorted(out)


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
        verify: decode every image once and skip unreadable ones (truncated, empty, not an
            image) with a warning (the number skipped is reported at the end and kept in
            ``.skipped``); without it only the headers are read.

    Images in nested folders below a class folder belong to that class (as in torchvision's
    ``ImageFolder``). The size of every image is recorded (``.sizes``); ``native_size`` is set
    only when all sizes are equal. A tree of grayscale images only loads as 1 channel, any
    other as RGB (``.gray``), so that its exported sets and generated sets agree.
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
    sizes: list[tuple[int, int]] = []
    gray: list[bool] = []
    skipped: list[str] = []
    for c, cid in enumerate(classes):
        good = 0
        for p in _image_files(root / cid):
            hw = probe_image(p, decode=verify)
            if hw is None:
                skipped.append(str(p))
                if len(skipped) <= 5:
                    warnings.warn(f"skipping unreadable image {p}", stacklevel=2)
                continue
            paths.append(p)
            labels.append(c)
            sizes.append(hw[:2])
            gray.append(hw[2])
            good += 1
        if good == 0:
            raise DatasetNotFoundError(f"class folder {root / cid} has no readable image")
    if skipped:
        warnings.warn(f"{root}: skipped {len(skipped)} unreadable image(s) in total", stacklevel=2)
    distinct = set(sizes)
    native = distinct.pop() if len(distinct) == 1 else None
    return LabeledImages(
        name=name or (subset or root.name),
        classes=list(classes),
        class_names=names,
        labels=np.asarray(labels, dtype=np.int64),
        source_indices=np.arange(len(paths)),
        native_size=native,
        paths=paths,
        skipped=skipped,
        sizes=np.asarray(sizes, dtype=np.int64).reshape(-1, 2),
        gray=bool(gray) and all(gray),
    )


def holdout_split(data: LabeledImages, fraction: float = 0.2, seed: int = 0) -> tuple[LabeledImages, LabeledImages, dict]:
    """Cut ``data`` (the train split being distilled) into ``fit`` (distilled while choosing
    settings) and ``val`` (held out to judge them), as Fashion-MNIST's ``target_fit`` /
    ``target_val``, for ImageFolder trees: in every class a permutation seeded by ``(seed,
    class)`` holds out ``round(fraction * n)`` images (at least one, and at least one kept).
    The test / val split of the dataset is never touched.

    Returns:
        ``(fit, val, record)``: ``record`` names the cut (fraction, seed, counts and a hash of
        the held-out images' source indices), to be written beside the results it judged.
    """
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"holdout fraction must be in (0, 1), got {fraction!r} (parameter `holdout_fraction`)")
    fit_idx, val_idx = [], []
    for c in range(data.num_classes):
        idx = data.class_indices(c)
        if len(idx) < 2:
            raise ValueError(f"{data.name}: class {data.class_names[c]} has {len(idx)} image(s); a held-out part needs 2")
        k = min(max(1, round(float(fraction) * len(idx))), len(idx) - 1)
        perm = np.random.default_rng([int(seed), c]).permutation(len(idx))
        val_idx.append(np.sort(idx[perm[:k]]))
        fit_idx.append(np.sort(idx[perm[k:]]))
    fit = data.subset(np.concatenate(fit_idx), name=f"{data.name}-fit")
    val = data.subset(np.concatenate(val_idx), name=f"{data.name}-val")
    record = {"dataset": data.name, "fraction": float(fraction), "seed": int(seed),
              "fit_counts": [int(n) for n in fit.counts()], "val_counts": [int(n) for n in val.counts()],
              "val_source_indices_sha256": hashlib.sha256(np.ascontiguousarray(val.source_indices, dtype=np.int64)
                                                          .tobytes()).hexdigest()[:16]}
    return fit, val, record


def evaluation_data(dataset: str, data_root=None, split: str | None = None, test_root=None, test_split: str | None = None,
                    image_size: int | None = None, test_limit: int | None = None, latents=None):
    """What notebook 04 (and ``coda_utils.scale 04``) trains and tests with: the split being
    distilled, with the run's resize policy (so random-real sets are exported as R was), the size
    to train at, and the test images and labels.

    Args:
        dataset, data_root, split: the distilled split (default ``target``, or ``train`` of an
            ImageFolder tree).
        test_root, test_split: the test split (default ``test``, or ``val`` of an ImageFolder tree).
        image_size: train and test at this square size; ``None``: the dataset's own size.
        test_limit: only the first N test images (quick checks).
        latents: the run's latent cache folder, whose resize policy the sets follow.

    Returns:
        ``(target, size, test_x, test_y)``.
    """
    target = load_dataset(dataset, split or ("target" if data_root is None else "train"), data_root)
    test = load_dataset(dataset, test_split or ("test" if test_root is None else "val"), test_root)
    target = target.with_policy(run_policy(latents, target, image_size))
    size = (image_size, image_size) if image_size else target.native_size
    if size is None:
        raise ParameterError("parameter `image_size` = None: the images have mixed sizes; pass the size to train at "
                             "(e.g. 256 for ResNet-AP-10 under the idc protocol)")
    n_test = len(test) if test_limit is None else min(test_limit, len(test))
    return target, size, test.load(range(n_test), size), test.labels[:n_test]


def load_dataset(name: str, split: str = "target", root: str | os.PathLike | None = None) -> LabeledImages:
    """One entry point for notebooks: ``fashion-mnist`` (split pool/target/test), an ImageNet
    subset name (``root`` = the ImageNet train or val tree for that split) or ``folder``."""
    key = str(name).lower()
    if key in ("fashion-mnist", "fashion_mnist", "fmnist"):
        return load_fashion_mnist(split, root)
    if key not in IMAGENET_SUBSETS and key not in ("folder", "imagefolder"):
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} (parameter `dataset`)")
    if root is None:
        raise ValueError(f"dataset {name!r} is an ImageFolder tree: pass its root (parameter `data_root`, "
                         "or `test_root` for the test split)")
    if key in IMAGENET_SUBSETS:
        return load_image_folder(root, subset=key, name=f"{key}-{split}")
    return load_image_folder(root, name=f"{Path(root).name}-{split}")
