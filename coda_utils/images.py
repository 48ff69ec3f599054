"""Pixels: image files, sizes, the resize policy, and channels.

The pixel side of the data layer, used by the datasets (:mod:`coda_utils.datasets`), the set
folder (:mod:`coda_utils.setfolder`) and every stage: :func:`resize_images` (one resize for every
stage), :func:`read_image` (one decoder), :func:`to_channels` (one gray <-> RGB conversion).

Image sizes: an ImageFolder tree (every ImageNet subset) holds images of many sizes and aspect
ratios. How they reach the text-to-image model's native size is a :class:`ResizePolicy`,
decided once from the sizes of **all** images (:func:`decide_resize`) and recorded with the
latent cache and in every set's manifest (:func:`run_policy` reads it back), so that encoding (01), the export of R and the
baselines (02), generation (03) and the random-real sets (04) treat every image alike. A
dataset with a policy attached (:meth:`~coda_utils.datasets.LabeledImages.with_policy`) loads at the policy's
size when no size is given.

Channels: a dataset's own images load as 1 channel when they are all grayscale files
(Fashion-MNIST, a tree of gray PNGs) and as RGB otherwise
(:attr:`~coda_utils.datasets.LabeledImages.gray`). A run's
sets have the channels of the run's VAE input instead (the rule of
:mod:`coda_utils.setfolder`): notebook 01 records them in the policy (``channels``), and a
dataset with that policy attached loads in them, so R, the baselines, G and the round trips of
one run agree whatever the files are.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .io import read_json

__all__ = [
    "IMAGE_EXTENSIONS",
    "RESIZE_MODES",
    "resize_images",
    "size_summary",
    "ResizePolicy",
    "decide_resize",
    "run_policy",
    "cache_policy",
    "CHANNEL_MODES",
    "check_channels",
    "to_channels",
    "read_image",
    "probe_image",
]

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".jpe"}
#: how an image reaches another size: keep the aspect ratio and crop, stretch, or zero-pad
RESIZE_MODES = ("center_crop", "squash", "pad")


def resize_images(x: torch.Tensor, size: tuple[int, int], mode: str = "center_crop") -> torch.Tensor:
    """Resize a ``uint8`` batch ``N x C x H x W`` (or one ``C x H x W`` image) to ``size``."""
    if x.ndim == 3:
        x = x[None]
    h, w = x.shape[-2:]
    th, tw = size
    if (h, w) == (th, tw):
        return x
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize must be 'center_crop', 'squash' or 'pad', not {mode!r}")
    if mode == "pad":
        if h > th or w > tw:
            raise ValueError(f"cannot pad a {h}x{w} image into the smaller {th}x{tw}; "
                             "use resize='squash' (the reference) or 'center_crop'")
        top, left = (th - h) // 2, (tw - w) // 2
        return F.pad(x, (left, tw - w - left, top, th - h - top))
    if mode == "center_crop":
        # the largest centred region with the output's aspect ratio, then resized: the
        # intermediate image is never larger than the input (a 50x2000 strip stays cheap)
        ch, cw = (h, max(1, round(h * tw / th))) if w * th > h * tw else (max(1, round(w * th / tw)), w)
        top, left = (h - ch) // 2, (w - cw) // 2
        x = x[..., top:top + ch, left:left + cw]
        if (ch, cw) == (th, tw):
            return x
    y = F.interpolate(x.float(), size=(th, tw), mode="bilinear", antialias=True, align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8)



def size_summary(sizes: np.ndarray) -> dict:
    """What a resize policy saw: image count, distinct sizes, smallest and largest height and
    width, the most extreme aspect ratio, and the five most common sizes (H, W, count)."""
    sizes = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
    if not len(sizes):
        return {"images": 0}
    u, counts = np.unique(sizes, axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:5]
    aspect = np.maximum(sizes[:, 0] / sizes[:, 1], sizes[:, 1] / sizes[:, 0])
    return {"images": int(len(sizes)), "distinct": int(len(u)),
            "height": [int(sizes[:, 0].min()), int(sizes[:, 0].max())],
            "width": [int(sizes[:, 1].min()), int(sizes[:, 1].max())],
            "max_aspect_ratio": round(float(aspect.max()), 3),
            "most_common": [[int(u[i, 0]), int(u[i, 1]), int(counts[i])] for i in order]}


@dataclass(frozen=True)
class ResizePolicy:
    """How every image of a dataset reaches the model's native size, decided once from all
    images (:func:`decide_resize`).

    Attributes:
        size: (H, W) the model works at (the VAE's ``sample_size``): encoding and generation.
        mode: ``"pad"``, ``"squash"`` or ``"center_crop"``: how an image reaches ``size``.
        native: the dataset's one image size, ``None`` when sizes are mixed. Sets are exported
            at ``native`` when there is one (generated images are brought back to it with the
            inverse of ``mode``), else at ``size``.
        sizes: :func:`size_summary` of the images the policy was decided on.
        channels: the channels of every set of the run, the VAE's input channels (1 or 3;
            :func:`coda_utils.setfolder.set_channels`), recorded by notebook 01; ``None``: the
            dataset's own (a run without a latent cache).
    """

    size: tuple[int, int]
    mode: str
    native: tuple[int, int] | None
    sizes: dict
    channels: int | None = None

    @property
    def export_size(self) -> tuple[int, int]:
        return tuple(self.native) if self.native is not None else tuple(self.size)

    def to_dict(self) -> dict:
        return {"size": list(self.size), "mode": self.mode, "native": list(self.native) if self.native else None,
                "export_size": list(self.export_size), "sizes": self.sizes, "channels": self.channels}

    @classmethod
    def from_dict(cls, d: dict, channels: int | None = None) -> "ResizePolicy":
        """The policy ``d`` describes; ``channels`` fills in a policy recorded without them."""
        return cls(tuple(d["size"]), d["mode"], tuple(d["native"]) if d.get("native") else None, dict(d.get("sizes", {})),
                   d["channels"] if d.get("channels") is not None else channels)


def decide_resize(data: "LabeledImages", size: int | tuple[int, int], resize: str | None = None,
                  channels: int | None = None) -> ResizePolicy:
    """The resize policy for ``data`` at the model's ``size``, from the sizes of all its images;
    ``channels``: the run's set channels (the VAE's input channels), recorded with it.

    Default (``resize=None``): ``"pad"`` when every image has the same size and fits into
    ``size`` (Fashion-MNIST's 28x28 into the prior's 32x32: every pixel kept, nothing
    interpolated), otherwise ``"squash"``, what the CoDA reference does for ImageNet (every
    image resized to SDXL's 1024x1024, aspect ratio not kept). ``"center_crop"`` keeps the
    aspect ratio and crops. Mixed sizes are normal input.

    Raises:
        ValueError: ``resize`` is not a mode, or ``"pad"`` is asked for images larger than
            ``size`` (the message names the first such file and the parameter that fixes it).
    """
    size = (int(size), int(size)) if isinstance(size, (int, np.integer)) else tuple(int(v) for v in size)
    sizes = data.image_sizes()
    larger = (sizes[:, 0] > size[0]) | (sizes[:, 1] > size[1])
    if resize is None:
        mode = "pad" if data.native_size is not None and not larger.any() else "squash"
    elif resize in RESIZE_MODES:
        mode = resize
    else:
        raise ValueError(f"resize={resize!r} is not a resize mode; choose one of {', '.join(RESIZE_MODES)} (parameter `resize`)")
    if mode == "pad" and larger.any():
        i = int(np.flatnonzero(larger)[0])
        where = str(data.paths[i]) if data.paths is not None else f"{data.name} image {i}"
        raise ValueError(f"resize='pad' cannot fit {where} ({sizes[i, 0]}x{sizes[i, 1]}, HxW) into {size[0]}x{size[1]}"
                         f"{f' (and {int(larger.sum()) - 1} more images)' if larger.sum() > 1 else ''}; "
                         "pass resize='squash' (the reference) or 'center_crop' (notebook parameter `resize`)")
    return ResizePolicy(size, mode, data.native_size, size_summary(sizes), channels)



def run_policy(cache_dir: str | os.PathLike, data: "LabeledImages", size: int | None = None) -> ResizePolicy:
    """The resize policy of a run: its latent cache's when the run has one recording it (so the
    random-real sets of notebook 04 are exported as notebook 02 exported R: same size, mode and
    channels), else decided for ``data`` at ``size`` (default its native size) in the dataset's
    own channels.

    Raises:
        ValueError: no cache, images of mixed sizes and no ``size`` (parameter ``image_size``).
    """
    meta = Path(cache_dir) / "cache.json"
    if meta.is_file() and "resize_policy" in read_json(meta):
        return cache_policy(read_json(meta))
    if size is None and data.native_size is None:
        raise ValueError(f"{data.name} has images of mixed sizes and the run has no latent cache to take the resize "
                         "policy from: pass image_size (or run notebook 01 first)")
    return decide_resize(data, size or data.native_size)


def cache_policy(meta: dict) -> ResizePolicy:
    """The policy a latent cache's ``cache.json`` records (:mod:`coda_utils.encoding`); a cache made before policies named their channels
    gets its encoder's input channels (what they would have recorded)."""
    return ResizePolicy.from_dict(meta["resize_policy"], meta.get("encoder", {}).get("in_channels"))


# --------------------------------------------------------------------------------------
# Image files and channels (the pixel side of coda_utils.setfolder's channel rule)
# --------------------------------------------------------------------------------------
#: PIL modes of grayscale files
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
#: the PIL mode an image of each channel count is decoded and written in (1: L, 3: RGB)
CHANNEL_MODES = {1: "L", 3: "RGB"}


def check_channels(channels) -> int:
    """``channels`` as an int, 1 or 3; anything else is a ``ValueError``."""
    if channels not in CHANNEL_MODES:
        raise ValueError(f"images have 1 (gray) or 3 (RGB) channels here, not {channels!r}")
    return int(channels)


def to_channels(images: torch.Tensor | np.ndarray, channels: int) -> torch.Tensor:
    """uint8 images (``N x C x H x W`` or one ``C x H x W``) with ``channels`` channels: gray is
    repeated to RGB, RGB becomes PIL's luma ``(19595 R + 38470 G + 7471 B + 2^15) >> 16``
    (what ``Image.convert("L")`` computes). The input comes back unchanged when it has them."""
    channels = check_channels(channels)
    x = torch.as_tensor(images)
    if x.dtype != torch.uint8 or x.ndim not in (3, 4):
        raise ValueError(f"expected uint8 images C x H x W or N x C x H x W, got {x.dtype} with shape {tuple(x.shape)}")
    c = x.shape[-3]
    if c == channels:
        return x
    if c == 1:
        return x.expand(*x.shape[:-3], 3, *x.shape[-2:]).contiguous()
    if c == 3:
        rgb = x.to(torch.int32)
        luma = (rgb.narrow(-3, 0, 1) * 19595 + rgb.narrow(-3, 1, 1) * 38470 + rgb.narrow(-3, 2, 1) * 7471 + 0x8000) >> 16
        return luma.to(torch.uint8)
    raise ValueError(f"cannot convert {c}-channel images to {channels} channels")


def read_image(path: str | os.PathLike, channels: int | None = None) -> torch.Tensor:
    """Decode one image file as uint8 ``C x H x W``: with ``channels`` (1 or 3) in that mode,
    else 1 channel for a grayscale file and 3 for any other (RGBA, CMYK, palette...)."""
    from PIL import Image

    with Image.open(path) as im:
        if channels is None:
            channels = 1 if im.mode in _GRAY_MODES else 3
        arr = np.asarray(im.convert(CHANNEL_MODES[check_channels(channels)]))
    t = torch.from_numpy(arr.copy())
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def probe_image(path: Path, decode: bool) -> tuple[int, int, bool] | None:
    """(H, W, is grayscale) of an image file, ``None`` when it cannot be read (``decode``:
    decode it fully, so that a truncated file is caught, not only a bad header)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if decode:
                im.load()
            w, h = im.size
            gray = im.mode in _GRAY_MODES
        return (h, w, gray) if h > 0 and w > 0 else None
    except Exception:  # noqa: BLE001 - any decoder failure means "unreadable"
        return None
