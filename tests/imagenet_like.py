"""An ImageNet-like ImageFolder tree for tests: what a real ImageNet subset throws at the code.

WNID-named class folders (ImageNette's ten), JPEG and PNG files (``.JPEG`` as in ImageNet),
sizes from 64 to 500 px with extreme aspect ratios, grayscale, RGBA and CMYK images, a
truncated JPEG, a non-image file with an image extension, a text file, a hidden file and a
nested folder. Each class has its own colour, so a network can learn something from it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: (height, width) of the images of every class, from 64 to 500 px, square to 1:7.8
SIZES = [(375, 500), (500, 333), (64, 500), (500, 64), (96, 128), (256, 256), (181, 240), (480, 320)]


def _image(rng: np.random.Generator, c: int, h: int, w: int) -> np.ndarray:
    base = np.array([(37 * c) % 256, (91 * c + 40) % 256, (151 * c + 80) % 256], dtype=np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    stripes = 40 * np.sin((xx * (c + 1) + yy * (10 - c)) / 12.0)[..., None]
    return np.clip(base + stripes + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def make_tree(root: str | Path, wnids: list[str], per_class: int = len(SIZES), seed: int = 0,
              oddities: bool = True) -> dict:
    """Write the tree under ``root``; returns what it wrote: ``{"images": n readable images,
    "skipped": paths that must be skipped, "nested": a nested image, "extreme": an extreme
    aspect-ratio image}``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    out = {"images": 0, "skipped": [], "nested": None, "extreme": None}
    for c, wnid in enumerate(wnids):
        d = root / wnid
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = SIZES[(i + c) % len(SIZES)]
            arr = _image(rng, c, h, w)
            kind = (i + c) % 5
            if kind == 0:
                Image.fromarray(arr).save(d / f"{wnid}_{i}.JPEG", quality=90)
            elif kind == 1:
                Image.fromarray(arr).save(d / f"{wnid}_{i}.png")
            elif kind == 2:
                Image.fromarray(arr).convert("L").save(d / f"{wnid}_{i}.JPEG")  # grayscale
            elif kind == 3:
                rgba = np.concatenate([arr, rng.integers(128, 256, (h, w, 1), dtype=np.uint8)], axis=2)
                Image.fromarray(rgba, "RGBA").save(d / f"{wnid}_{i}.png")
            else:
                Image.fromarray(arr).convert("CMYK").save(d / f"{wnid}_{i}.JPEG")  # CMYK JPEG
            if (h, w) == (64, 500):
                out["extreme"] = d / f"{wnid}_{i}.{'JPEG' if kind in (0, 2, 4) else 'png'}"
            out["images"] += 1
        if oddities and c == 0:
            good = (d / f"{wnid}_0.JPEG").read_bytes()
            (d / "truncated.JPEG").write_bytes(good[: len(good) // 3])
            (d / "not_an_image.jpg").write_text("an HTML error page saved with a .jpg name")
            (d / "README.txt").write_text("not an image: ignored")
            (d / ".hidden.JPEG").write_bytes(good)  # hidden files are ignored
            out["skipped"] += [d / "not_an_image.jpg", d / "truncated.JPEG"]
            (d / "extra").mkdir()
            Image.fromarray(_image(rng, c, 200, 300)).save(d / "extra" / f"{wnid}_nested.JPEG")
            out["nested"] = d / "extra" / f"{wnid}_nested.JPEG"
            out["images"] += 1
    return out
