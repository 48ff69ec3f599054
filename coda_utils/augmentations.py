"""The augmentations of the evaluation protocols, batched (:mod:`coda_utils.protocols`).

DSA's differentiable Siamese augmentation (:func:`dsa_augment`), IDC's ImageNet transforms
(:func:`idc_augment`), RDED's student transforms (:func:`rded_augment`, :func:`shuffle_patches`)
and CutMix (:func:`cutmix`).

Everything runs as batched tensor operations on one device: the whole distilled set is held
there as a float tensor, every epoch draws a permutation from a seeded ``torch.Generator``,
and augmentations are computed on whole batches (``affine_grid`` / ``grid_sample``, masks,
gathers), never through a per-sample ``DataLoader``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "DSA_STRATEGY",
    "dsa_augment",
    "idc_augment",
    "rded_augment",
    "shuffle_patches",
    "cutmix",
]

#: DSA's evaluation strategy (DC/DSA/DM ``--dsa_strategy`` default)
DSA_STRATEGY = "color_crop_cutout_flip_scale_rotate"
# ImageNet PCA lighting (AlexNet / fb.resnet.torch, as used by IDC through CutMix's code)
_PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
_PCA_EIGVEC = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))
_GRAY_WEIGHTS = (0.299, 0.587, 0.114)


# --------------------------------------------------------------------------------------
# Augmentations (batched, on the device, driven by one torch.Generator)
# --------------------------------------------------------------------------------------
def _rand(n: int, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """``n`` uniform [0, 1) numbers on ``x``'s device and dtype."""
    return torch.rand(n, generator=g, device=x.device, dtype=x.dtype)


def _randint(low: int, high: int, n: int, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return torch.randint(low, high, (n,), generator=g, device=x.device)


def _affine(x: torch.Tensor, theta: torch.Tensor, align_corners: bool) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=align_corners)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners)


def _dsa_color(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    x = x + (_rand(n, x, g).view(-1, 1, 1, 1) - 0.5) * 1.0                      # brightness 1.0
    mean_c = x.mean(dim=1, keepdim=True)
    x = (x - mean_c) * (_rand(n, x, g).view(-1, 1, 1, 1) * 2.0) + mean_c       # saturation 2.0
    mean_all = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean_all) * (_rand(n, x, g).view(-1, 1, 1, 1) + 0.5) + mean_all  # contrast 0.5


def _dsa_crop(x: torch.Tensor, g: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Translate each image by up to ``ratio`` of its size (whole pixels), zero-filling."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx, ty = _randint(-sh, sh + 1, n, x, g), _randint(-sw, sw + 1, n, x, g)
    padded = F.pad(x, (sw, sw, sh, sh))
    rows = torch.arange(h, device=x.device).view(1, h) + sh + tx.view(n, 1)
    cols = torch.arange(w, device=x.device).view(1, w) + sw + ty.view(n, 1)
    b = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded[b, :, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2)


def _dsa_cutout(x: torch.Tensor, g: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero a ``ratio``-sized square at a random centre of each image (DSA's cutout)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = _randint(0, h + (1 - ch % 2), n, x, g).view(n, 1) - ch // 2
    ox = _randint(0, w + (1 - cw % 2), n, x, g).view(n, 1) - cw // 2
    r = torch.arange(h, device=x.device).view(1, h)
    c = torch.arange(w, device=x.device).view(1, w)
    in_r = (r >= oy) & (r < oy + ch)
    in_c = (c >= ox) & (c < ox + cw)
    keep = ~(in_r.view(n, h, 1) & in_c.view(n, 1, w))
    return x * keep.unsqueeze(1).to(x.dtype)


def _dsa_flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    flip = _rand(x.shape[0], x, g).view(-1, 1, 1, 1) < 0.5
    return torch.where(flip, x.flip(3), x)


def _dsa_scale(x: torch.Tensor, g: torch.Generator, ratio: float = 1.2) -> torch.Tensor:
    n = x.shape[0]
    sx = _rand(n, x, g) * (ratio - 1.0 / ratio) + 1.0 / ratio
    sy = _rand(n, x, g) * (ratio - 1.0 / ratio) + 1.0 / ratio
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = sx, sy
    return _affine(x, theta, align_corners=True)


def _dsa_rotate(x: torch.Tensor, g: torch.Generator, degrees: float = 15.0) -> torch.Tensor:
    n = x.shape[0]
    a = (_rand(n, x, g) - 0.5) * 2 * degrees / 180 * math.pi
    cos, sin = torch.cos(a), torch.sin(a)
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(a)], 1),
                         torch.stack([sin, cos, torch.zeros_like(a)], 1)], 1)
    return _affine(x, theta, align_corners=True)


_DSA_FNS = {"color": _dsa_color, "crop": _dsa_crop, "cutout": _dsa_cutout,
            "flip": _dsa_flip, "scale": _dsa_scale, "rotate": _dsa_rotate}


def dsa_augment(x: torch.Tensor, generator: torch.Generator, strategy: str = DSA_STRATEGY) -> torch.Tensor:
    """DSA augmentation of a normalized float batch, as DC/DSA's ``DiffAugment`` (mode "S").

    One family of ``strategy`` (e.g. ``"color_crop_cutout_flip_scale_rotate"``) is drawn for
    the batch; its parameters are drawn per image (DSA's parameters: brightness 1.0,
    saturation 2.0, contrast 0.5, crop/translate 0.125, cutout 0.5, scale 1.2, rotation
    15 degrees, flip probability 0.5). Crop and cutout fill with 0, which is the mean colour
    for normalized input. All draws come from ``generator`` (on ``x``'s device).
    """
    families = [s for s in strategy.lower().split("_") if s]
    unknown = [s for s in families if s not in _DSA_FNS]
    if not families or unknown:
        raise ValueError(f"bad DSA strategy {strategy!r}; use '_'-joined names from {', '.join(_DSA_FNS)}")
    choice = families[int(torch.randint(len(families), (1,), generator=generator, device=x.device).item())]
    return _DSA_FNS[choice](x, generator).contiguous()


def _resized_crop_flip(x: torch.Tensor, generator: torch.Generator, scale: tuple[float, float]) -> torch.Tensor:
    """Per image: RandomResizedCrop (area ``scale``, aspect ratio 3/4-4/3, resized back to the
    input size, bilinear) and a horizontal flip with probability 0.5, in one ``grid_sample``.
    The crop is drawn once instead of torchvision's up-to-10 retries: a side longer than the
    image is clamped to the image (so the crop stays inside it)."""
    n = x.shape[0]
    area = _rand(n, x, generator) * (scale[1] - scale[0]) + scale[0]
    log_r = _rand(n, x, generator) * (math.log(4 / 3) - math.log(3 / 4)) + math.log(3 / 4)
    ratio = torch.exp(log_r)
    cw = torch.sqrt(area * ratio).clamp(max=1.0)      # crop width / image width
    chh = torch.sqrt(area / ratio).clamp(max=1.0)     # crop height / image height
    cx = (_rand(n, x, generator) * 2 - 1) * (1 - cw)  # crop centre in [-1, 1] coordinates
    cy = (_rand(n, x, generator) * 2 - 1) * (1 - chh)
    flip = torch.where(_rand(n, x, generator) < 0.5, -1.0, 1.0).to(x.dtype)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2] = cw * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = chh, cy
    return _affine(x, theta, align_corners=False)


def shuffle_patches(x: torch.Tensor, generator: torch.Generator, factor: int = 2) -> torch.Tensor:
    """RDED's ShufflePatches, batched: cut each image into ``factor`` vertical strips and put
    them in a random order, then the same with horizontal strips (an order drawn per image and
    per direction). Strips are ``size // factor`` wide, the last one takes the remainder, as in
    RDED. ``factor=1`` returns ``x``."""
    if factor <= 1:
        return x
    n = x.shape[0]

    def along(img: torch.Tensor, dim: int) -> torch.Tensor:
        size = img.shape[dim]
        edges = [i * (size // factor) for i in range(factor)] + [size]
        parts = [torch.arange(edges[k], edges[k + 1], device=img.device) for k in range(factor)]
        orders = [torch.randperm(factor, generator=generator, device=img.device).tolist() for _ in range(n)]
        index = torch.stack([torch.cat([parts[k] for k in order]) for order in orders])  # output -> source
        shape = [n, 1, 1, 1]
        shape[dim] = size
        return img.gather(dim, index.view(shape).expand(img.shape))

    return along(along(x, 3), 2)


def rded_augment(x: torch.Tensor, generator: torch.Generator, factor: int = 2, max_scale: float = 1.0) -> torch.Tensor:
    """RDED's student transforms on a float batch in [0, 1], before normalization:
    ShufflePatches(``factor``), RandomResizedCrop(scale ``1/factor`` to ``max_scale``, aspect
    ratio 3/4-4/3) and a horizontal flip (:func:`shuffle_patches`; the crop as in
    :func:`idc_augment`)."""
    x = shuffle_patches(x, generator, factor)
    return _resized_crop_flip(x, generator, (1.0 / factor, max_scale))


def idc_augment(x: torch.Tensor, generator: torch.Generator, scale: tuple[float, float] = (0.5, 1.0),
                jitter: float = 0.4, lighting: float = 0.1) -> torch.Tensor:
    """IDC's ImageNet training transforms on a float batch in [0, 1], before normalization.

    Per image: RandomResizedCrop (area ``scale``, aspect ratio 3/4-4/3, resized back to the
    input size, bilinear), horizontal flip with probability 0.5, colour jitter (brightness,
    contrast and saturation factors in ``1 +- jitter``, in a random order per batch, as
    CutMix's ``ColorJitter``) and AlexNet PCA lighting with std ``lighting`` (RGB only).

    The crop is drawn once instead of torchvision's up-to-10 retries: a side longer than
    the image is clamped to the image (so the crop stays inside it).
    """
    n, c, _, _ = x.shape
    x = _resized_crop_flip(x, generator, scale)

    if jitter > 0:
        gray_w = torch.as_tensor(_GRAY_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)

        def gray(img: torch.Tensor) -> torch.Tensor:
            return (img * gray_w).sum(1, keepdim=True) if c == 3 else img

        def brightness(img: torch.Tensor) -> torch.Tensor:
            return img * (1 + (_rand(n, img, generator) * 2 - 1) * jitter).view(-1, 1, 1, 1)

        def contrast(img: torch.Tensor) -> torch.Tensor:
            a = (1 + (_rand(n, img, generator) * 2 - 1) * jitter).view(-1, 1, 1, 1)
            return a * img + (1 - a) * gray(img).mean(dim=(1, 2, 3), keepdim=True)

        def saturation(img: torch.Tensor) -> torch.Tensor:
            a = (1 + (_rand(n, img, generator) * 2 - 1) * jitter).view(-1, 1, 1, 1)
            return a * img + (1 - a) * gray(img)

        ops = (brightness, contrast, saturation)
        for i in torch.randperm(3, generator=generator, device=x.device).tolist():
            x = ops[i](x)

    if lighting > 0 and c == 3:
        alpha = torch.randn(n, 3, generator=generator, device=x.device, dtype=x.dtype) * lighting
        eigval = torch.as_tensor(_PCA_EIGVAL, dtype=x.dtype, device=x.device)
        eigvec = torch.as_tensor(_PCA_EIGVEC, dtype=x.dtype, device=x.device)
        rgb = (alpha * eigval) @ eigvec.T  # rgb_i = sum_j eigvec[i, j] * alpha_j * eigval_j
        x = x + rgb.view(n, 3, 1, 1)
    return x


def cutmix(x: torch.Tensor, y: torch.Tensor, num_classes: int, generator: torch.Generator,
           beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix a batch (as the CutMix / IDC code): one box per batch, pasted from a permutation.

    ``lam ~ Beta(beta, beta)``, a box of area ``1 - lam`` at a uniformly drawn centre,
    clipped to the image; each image gets the box from ``x[perm]``.

    Returns:
        ``(mixed, targets)``: the mixed batch and soft targets ``N x num_classes`` equal to
        ``w * onehot(y) + (1 - w) * onehot(y[perm])`` where ``w`` is the share of the image
        not covered by the box (every row sums to 1). ``F.cross_entropy`` with these targets
        equals IDC's ``w * CE(y) + (1 - w) * CE(y[perm])``.
    """
    if beta <= 0:
        raise ValueError(f"CutMix beta must be positive, got {beta}")
    n, _, h, w = x.shape
    # scalar draws through numpy, seeded from the torch generator so one seed drives everything
    rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator, device=x.device).item()))
    lam = rng.beta(beta, beta)
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y1, y2 = np.clip(cy - cut_h // 2, 0, h), np.clip(cy + cut_h // 2, 0, h)
    x1, x2 = np.clip(cx - cut_w // 2, 0, w), np.clip(cx + cut_w // 2, 0, w)
    perm = torch.randperm(n, generator=generator, device=x.device)
    mixed = x.clone()
    mixed[:, :, y1:y2, x1:x2] = x[perm, :, y1:y2, x1:x2]
    keep = 1.0 - (y2 - y1) * (x2 - x1) / (h * w)
    onehot = F.one_hot(y, num_classes).to(x.dtype)
    return mixed, keep * onehot + (1.0 - keep) * onehot[perm]

