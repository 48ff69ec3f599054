"""Stage 1 of CoDA: encode a dataset into the diffusion model's own latent space, cached per class.

The feature of an image is exactly what the UNet denoises: the VAE posterior **mean** (no
sampling) times ``vae.config.scaling_factor`` (minus ``shift_factor`` first, for the VAEs of
SD3 / Flux that declare one; SD 1.x, SDXL and the embedded prior do not). For SDXL at
1024x1024 that is 4x128x128 = 65,536 numbers per image; for the embedded prior (32x32) 4x16x16.

The VAE itself (loading it, its fingerprint, :func:`~coda_utils.vae.encode_images` and
:func:`~coda_utils.vae.decode_latents`) is :mod:`coda_utils.vae`; this module re-exports the
names notebooks 00-04 use from it (:func:`load_vae`, :func:`native_size`, :func:`resolve_model_path`).

Preprocessing is tied to the pipeline's native resolution ``vae.config.sample_size`` through
one :class:`~coda_utils.images.ResizePolicy`, decided from the sizes of all images
(:func:`~coda_utils.images.decide_resize`) and recorded in ``cache.json``, where notebooks
02-04 read it back (:attr:`LatentCache.policy`):

* ``"pad"``: zero-pad smaller images (Fashion-MNIST 28x28 -> 32x32, as the prior was trained);
* ``"squash"``: plain resize, aspect ratio not kept (what the CoDA reference does for SDXL);
* ``"center_crop"``: the largest centred region of the output's aspect ratio, resized.

The default is ``"pad"`` when all images have one size no larger than the native size and
``"squash"`` otherwise (every ImageNet tree). Pixels go to ``[-1, 1]``; grayscale images are
repeated to three channels for a 3-channel VAE (and RGB images converted to luma for a
1-channel one). The policy also records the channels of every set of the run: the VAE's input
channels (:func:`coda_utils.setfolder.set_channels`), so later stages write R, the baselines
and G alike.

fp16: the stock SDXL VAE overflows in float16 (NaN latents). Encode SDXL in float16 only with
the fp16-safe VAE ``madebyollin/sdxl-vae-fp16-fix`` (what the reference does), e.g.
``encode_dataset(data, AutoencoderKL.from_pretrained("madebyollin/sdxl-vae-fp16-fix"), ...,
encoder_id="madebyollin/sdxl-vae-fp16-fix", device="cuda", dtype=torch.float16)``, or use
float32. A VAE whose config says ``force_upcast`` (the stock SDXL VAE does) gets a warning when
asked for float16, and any NaN / infinite latent is an error naming the image.

The cache (:class:`LatentCache`) is a directory::

    cache_dir/cache.json             settings (encoder, resolution, resize policy and the image
                                     sizes it saw, dtypes, dataset, images per class, a hash
                                     of the source indices) and the list of finished classes
    cache_dir/class_0000.npy         latents of class 0, n_0 x C x h x w (float32 or float16)
    cache_dir/class_0000.index.npy   positions (into the dataset) and source indices, 2 x n_0

Every file is written atomically and ``cache.json`` is updated after each class, so an
interrupted run resumes at the first unfinished class. A cache made with other settings is
refused (:class:`StaleCacheError`) with a message that says how to rebuild it.

``cache.json`` is the cache's record, rewritten after each class's files: besides the list
of finished classes (``done``) it lists every class file with its size and SHA-256
(``files``). A reader (:meth:`LatentCache.latents`, :meth:`LatentCache.indices`) checks a
file's size on every read and its hash (once per process) when the cache is complete, and
refuses a damaged file with :class:`CorruptCacheError`, naming it; re-running notebook 01 with
the same parameters checks every file against its record and encodes again exactly the
classes whose files are damaged or missing (saying which files it replaces), byte for byte
what they held.
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from . import parallel, vae
from .datasets import LabeledImages
from .images import ResizePolicy, cache_policy, decide_resize
from .io import CorruptFileError, atomic_write, check_file, exclusive, file_record, read_json, write_json
from .setfolder import set_channels
from .vae import (_latent_affine, _to, decode_latents, encode_images, get_vae, load_vae, native_size, preprocess,
                  resolve_model_path, vae_fingerprint)

__all__ = [
    "CACHE_FORMAT",
    "LatentCache",
    "StaleCacheError",
    "CorruptCacheError",
    "NonFiniteLatentError",
    "encode_dataset",
    "limit_dataset",
    # re-exported from coda_utils.vae (notebooks 00, 01 and 04 use them as encoding's)
    *vae.__all__,
]

CACHE_FORMAT = "coda-latents/1"
#: latents with more numbers than this are stored as float16 by default (SDXL: 65,536)
FLOAT16_ABOVE = 16_384


class StaleCacheError(RuntimeError):
    """A latent cache exists but was made with other settings (or for another dataset)."""


class CorruptCacheError(CorruptFileError):
    """A file of a latent cache is damaged or missing (it no longer matches ``cache.json``)."""


#: the keys of ``cache.json`` that record progress (not settings)
_RECORD_KEYS = ("done", "files")


def _repair_action(root) -> str:
    return ("run notebook 01 again with the same parameters: it encodes exactly the damaged class again "
            "(rebuild=True encodes everything)")


class NonFiniteLatentError(ValueError):
    """The VAE produced NaN or infinite latents for an image (typically fp16 overflow)."""


# The cache
# --------------------------------------------------------------------------------------
def _class_file(c: int) -> str:
    return f"class_{c:04d}.npy"


def _index_file(c: int) -> str:
    return f"class_{c:04d}.index.npy"


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_write(path, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)


def _hash_ints(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.int64).tobytes()).hexdigest()[:16]


def _image_name(data: LabeledImages, pos: int) -> str:
    if data.paths is not None:
        return f"{data.paths[pos]} ({data.name} position {pos})"
    return f"{data.name} source index {int(data.source_indices[pos])} (position {pos})"


@dataclass
class LatentCache:
    """A finished (or partly finished) per-class latent cache; see the module docstring."""

    root: Path
    meta: dict

    @classmethod
    def load(cls, cache_dir: str | os.PathLike, require_complete: bool = True) -> "LatentCache":
        root = Path(cache_dir)
        path = root / "cache.json"
        if not path.is_file():
            raise FileNotFoundError(f"{root} is not a latent cache (no cache.json); make one with "
                                    "coda_utils.encoding.encode_dataset (notebooks/01_encode.ipynb)")
        meta = read_json(path, f"the latent cache's record is damaged: run notebook 01 with rebuild=True (or delete {root}) "
                               "to encode again")
        if meta.get("format") != CACHE_FORMAT:
            raise StaleCacheError(f"{path} has format {meta.get('format')!r}, expected {CACHE_FORMAT!r}; delete {root} "
                                  "and encode again")
        cache = cls(root, meta)
        if require_complete and not cache.complete:
            missing = [c for c in range(cache.num_classes) if c not in set(meta["done"])]
            raise RuntimeError(f"latent cache {root} is unfinished ({len(missing)} of {cache.num_classes} classes missing, "
                               f"first: {missing[0]}); run encode_dataset again with the same settings to resume")
        return cache

    # -- what it holds ------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.meta["classes"])

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    @property
    def complete(self) -> bool:
        return len(set(self.meta["done"])) == self.num_classes

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.meta["latent_shape"])

    @property
    def counts(self) -> list[int]:
        return list(self.meta["counts"])

    def latents(self, c: int, dtype: Any = None, mmap: bool = False) -> np.ndarray:
        """Latents of class ``c``, ``n_c x C x h x w`` (as stored unless ``dtype`` is given).

        Raises:
            CorruptCacheError: the class file does not match its record in ``cache.json``
                (size, or hash when the cache is complete) or does not load; the message names
                the file and says how to repair it.
        """
        self._check_done(c)
        a = self._load(_class_file(c), mmap)
        if a.shape != (self.counts[c], *self.latent_shape):
            raise CorruptCacheError(self.root / _class_file(c), f"holds latents of shape {a.shape}, the cache records "
                                    f"{(self.counts[c], *self.latent_shape)}", _repair_action(self.root))
        return a if dtype is None else a.astype(dtype, copy=False)

    def indices(self, c: int) -> np.ndarray:
        """Positions (into the encoded dataset) of class ``c``'s images, in latent order."""
        self._check_done(c)
        return self._load(_index_file(c))[0]

    def source_indices(self, c: int) -> np.ndarray:
        """Source indices (``LabeledImages.source_indices``) of class ``c``'s images."""
        self._check_done(c)
        return self._load(_index_file(c))[1]

    def _load(self, name: str, mmap: bool = False) -> np.ndarray:
        """One file of the cache, checked against its record first (size always, the hash once
        per process when the cache is complete); a damaged file raises :class:`CorruptCacheError`."""
        path = self.root / name
        problem = _file_problem(path, self.meta.get("files", {}).get(name), full=self.complete)
        if problem is None:
            try:
                return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
            except (ValueError, OSError, EOFError) as e:
                problem = f"does not load ({e})"
        raise CorruptCacheError(path, f"damaged latent cache file: {problem}", _repair_action(self.root))

    def verify(self) -> dict[str, str]:
        """Every damaged or missing file of the finished classes: ``{file name: what is wrong}``
        (empty when every file matches its record)."""
        bad = {}
        for c in self.meta["done"]:
            for name in (_class_file(c), _index_file(c)):
                problem = _file_problem(self.root / name, self.meta.get("files", {}).get(name))
                if problem is not None:
                    bad[name] = problem
        return bad

    def _check_done(self, c: int) -> None:
        if c not in set(self.meta["done"]):
            raise KeyError(f"class {c} is not (yet) in the latent cache {self.root}")

    def check_dataset(self, data: LabeledImages) -> None:
        """Raise :class:`StaleCacheError` unless ``data`` is the dataset this cache encodes."""
        fp = _dataset_fingerprint(data)
        ours = {k: self.meta[k] for k in fp}
        if ours != fp:
            diff = [k for k in fp if fp[k] != ours[k]]
            raise StaleCacheError(f"latent cache {self.root} was made for another dataset (differs in {', '.join(diff)}: "
                                  f"cache {_short(ours, diff)} vs now {_short(fp, diff)}); load the same dataset "
                                  "(same split and limits) or encode again")

    @property
    def encoder_id(self) -> str:
        """The model the latents were encoded with (a path or hub id, as given to 01)."""
        return self.meta["encoder"]["id"]

    def check_encoder(self, encoder_id: str | os.PathLike) -> None:
        """Raise :class:`StaleCacheError` unless the cache was made with ``encoder_id``."""
        if str(encoder_id) != self.encoder_id:
            raise StaleCacheError(f"latent cache {self.root} was made with encoder {self.meta['encoder']['id']!r}, "
                                  f"not {str(encoder_id)!r}; encode again with that model (notebooks/01_encode.ipynb)")

    @property
    def policy(self) -> ResizePolicy:
        """The resize policy the images were encoded with (sets are exported with it too)."""
        if "resize_policy" not in self.meta:
            raise StaleCacheError(f"latent cache {self.root} was made before resize policies were recorded; run "
                                  "notebook 01 again with the same parameters (it records the policy without encoding again)")
        return cache_policy(self.meta)

    def summary(self) -> str:
        m = self.meta
        n = sum(m["counts"])
        return (f"{m['dataset']}: {n:,} images, {self.num_classes} classes -> latents {'x'.join(map(str, m['latent_shape']))} "
                f"({m['store_dtype']}), encoder {m['encoder']['id']} at {m['size'][0]}x{m['size'][1]} ({m['resize']})")



def _short(d: dict, keys: list[str]) -> str:
    return ", ".join(f"{k}={d[k]!r}"[:80] for k in keys)


def _dataset_fingerprint(data: LabeledImages) -> dict:
    return {
        "dataset": data.name,
        "classes": list(data.classes),
        "counts": [int(n) for n in data.counts()],
        "source_indices_sha256": _hash_ints(data.source_indices),
        "labels_sha256": _hash_ints(data.labels),
    }


def _settings(data: LabeledImages, vae, encoder_id: str, policy: ResizePolicy, dtype: torch.dtype,
              store_dtype: str, latent_shape: Sequence[int]) -> dict:
    return {
        "format": CACHE_FORMAT,
        "encoder": {"id": str(encoder_id), **vae_fingerprint(vae), "scaling_factor": float(vae.config.scaling_factor),
                    "shift_factor": _latent_affine(vae)[1], "in_channels": int(vae.config.in_channels)},
        "size": list(policy.size),
        "resize": policy.mode,
        "resize_policy": policy.to_dict(),
        "compute_dtype": str(dtype).replace("torch.", ""),
        "store_dtype": store_dtype,
        "latent_shape": [int(s) for s in latent_shape],
        **_dataset_fingerprint(data),
        "class_names": list(data.class_names),
    }


def encode_dataset(
    data: LabeledImages,
    vae_or_pipe: Any,
    cache_dir: str | os.PathLike,
    encoder_id: str | None = None,
    size: int | tuple[int, int] | None = None,
    resize: str | None = None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    store_dtype: str | None = None,
    rebuild: bool = False,
    progress: bool = True,
    num_workers: int = 0,
    processes: Any = None,
) -> LatentCache:
    """Encode every image of ``data`` into a per-class latent cache in ``cache_dir``; resumable.

    Args:
        data: the dataset (e.g. Fashion-MNIST ``target`` or an ImageNet subset's train tree).
        vae_or_pipe: a diffusers pipeline (its ``.vae`` is used) or an ``AutoencoderKL``.
        encoder_id: what the VAE is (model path or hub id), recorded with the cache; by default
            the model's ``_name_or_path``.
        size: encoding resolution, default ``vae.config.sample_size`` (the native resolution).
        resize: ``"pad"``, ``"squash"`` or ``"center_crop"``; default: decided from the sizes of
            all images by :func:`~coda_utils.images.decide_resize` (pad one size that fits,
            squash otherwise). The policy and the sizes it saw are recorded in ``cache.json``.
        device, dtype: where and in which precision to run the VAE. For SDXL in float16 use the
            fp16-safe VAE ``madebyollin/sdxl-vae-fp16-fix`` (the stock one overflows).
        store_dtype: ``"float32"`` or ``"float16"`` on disk; default float16 for latents larger
            than 16,384 numbers (SDXL) and float32 otherwise.
        rebuild: delete an existing cache (its files only) and encode from scratch; without it a
            cache made with other settings is refused and a matching one is resumed.
        num_workers: threads that load and resize the next batches while the VAE encodes
            (worth it for ImageFolder trees on a GPU; 0 loads in the main thread).
        processes: the process group of an ``accelerate launch`` (:func:`coda_utils.parallel.processes`):
            each process encodes every ``num_processes``-th unfinished class, and the cache is
            the one a single process writes (``python -m coda_utils.scale encode``). ``None``:
            this process encodes everything.
    Returns:
        the finished :class:`LatentCache`.
    Raises:
        StaleCacheError: ``cache_dir`` holds a cache made with other settings (and not ``rebuild``).
        NonFiniteLatentError: an image encodes to NaN / inf; the message names the image.
        ValueError: an image the policy cannot handle (``resize="pad"`` and a larger image);
            the message names the file and the ``resize`` parameter.
    """
    # 1. Check inputs and decide the resize policy from every image's size
    if data.num_classes < 2:
        raise ValueError(f"{data.name} has {data.num_classes} class(es) ({', '.join(map(str, data.classes)) or 'none'}): "
                         "a distilled set is evaluated by a classifier, which needs at least 2 classes; point data_root "
                         "at a tree with 2 or more class folders (or raise class_limit)")
    vae = get_vae(vae_or_pipe)
    if dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False)):
        warnings.warn("this VAE's config says force_upcast (the stock SDXL VAE overflows in float16): encode in float32 "
                      "or use the fp16-safe VAE madebyollin/sdxl-vae-fp16-fix", stacklevel=2)
    size = native_size(vae) if size is None else ((size, size) if isinstance(size, int) else tuple(size))
    policy = decide_resize(data, size, resize, channels=set_channels(vae))  # the run's set channels: the VAE's input
    size, resize = policy.size, policy.mode
    if encoder_id is None:
        encoder_id = (getattr(vae_or_pipe, "name_or_path", None) or vae.config.get("_name_or_path", None) or "unnamed")
    _to(vae, device, dtype).eval()
    # the latent shape, from one image (cheap, and needed to decide the storage dtype)
    probe = encode_images(vae, data.load(np.arange(min(1, len(data))), size, resize), device=device, dtype=dtype)
    latent_shape = tuple(probe.shape[1:])
    if store_dtype is None:
        store_dtype = "float16" if int(np.prod(latent_shape)) > FLOAT16_ABOVE else "float32"
    if store_dtype not in ("float16", "float32"):
        raise ValueError(f"store_dtype must be 'float16' or 'float32', not {store_dtype!r}")
    settings = _settings(data, vae, encoder_id, policy, dtype, store_dtype, latent_shape)

    # 2. Resume a cache made with these very settings, refuse one made otherwise. The first
    #    process checks (and rebuilds); the others wait for it. A class is finished when both of
    #    its files exist (each is written atomically, the index last), whichever process made it.
    root = Path(cache_dir)
    meta_path = root / "cache.json"
    main = parallel.is_main(processes)
    # the first process holds the cache's lock (a second job is refused), the others their own
    with exclusive(root, "cache" if main else f"cache.rank{parallel.rank(processes)}"):
        files: dict[str, dict] = {}
        if main:
            files = _check_or_start_cache(root, settings, rebuild, data.counts())
        parallel.barrier(processes)
        if not main and {k: v for k, v in read_json(meta_path).items() if k not in _RECORD_KEYS} != settings:
            raise StaleCacheError(f"{root}: the first process wrote other settings than this one computed; "
                                  "every process of a launch must get the same parameters")
        done = [c for c in range(data.num_classes) if _class_finished(root, c)]

        # 3. Encode class by class (this process's share of the unfinished classes); each class's
        #    files and the list of finished classes are written atomically, so an interrupted
        #    run resumes at the first unfinished class
        todo = parallel.share([c for c in range(data.num_classes) if c not in set(done)], processes)
        bar = None
        if progress and main:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(data), initial=int(sum(data.counts()[c] for c in done)), desc=f"encoding {data.name}",
                       unit="img")
        np_store = np.float16 if store_dtype == "float16" else np.float32
        for c in todo:
            pos = data.class_indices(c)
            if bar is not None:
                bar.set_postfix_str(f"class {c + 1}/{data.num_classes} {data.class_names[c]}")
            lat = np.empty((len(pos), *latent_shape), dtype=np_store)
            for i, idx, images in _batches(data, pos, batch_size, size, resize, num_workers):
                z = encode_images(vae, images, batch_size=batch_size, device=device, dtype=dtype).numpy()
                zs = z.astype(np_store)
                bad = ~np.isfinite(zs.reshape(len(zs), -1)).all(axis=1)
                if bad.any():
                    j = int(np.flatnonzero(bad)[0])
                    why = "NaN/inf" if not np.isfinite(z[j]).all() else f"values beyond the {store_dtype} range"
                    raise NonFiniteLatentError(
                        f"the VAE gave {why} latents for {_image_name(data, int(idx[j]))}"
                        + (f" and {int(bad.sum()) - 1} more image(s) of the same batch" if bad.sum() > 1 else "")
                        + (" (float16 overflow? use madebyollin/sdxl-vae-fp16-fix or dtype=torch.float32)"
                           if dtype == torch.float16 else "")
                    )
                lat[i:i + len(idx)] = zs
                if bar is not None:
                    bar.update(len(idx))
            _save_npy(root / _class_file(c), lat)
            _save_npy(root / _index_file(c), np.stack([pos, data.source_indices[pos]]).astype(np.int64))
            done.append(c)
            if parallel.world(processes) == 1:  # several processes: the first records them all below
                files.update(_class_records(root, c))
                write_json(meta_path, {**settings, "done": sorted(done), "files": _sorted(files)})  # the record, last
        if bar is not None:
            bar.close()
        parallel.barrier(processes)
        if main and parallel.world(processes) > 1:
            done = [c for c in range(data.num_classes) if _class_finished(root, c)]
            for c in done:
                if _class_file(c) not in files:
                    files.update(_class_records(root, c))
            write_json(meta_path, {**settings, "done": done, "files": _sorted(files)})
        parallel.barrier(processes)
    return LatentCache.load(root)



def _batches(data: LabeledImages, pos: np.ndarray, batch_size: int, size, resize: str, num_workers: int):
    """``(start, positions, uint8 images)`` batch by batch, in order; with ``num_workers`` > 0
    up to that many batches are loaded ahead in threads."""
    starts = range(0, len(pos), batch_size)
    if num_workers <= 0:
        for i in starts:
            yield i, pos[i:i + batch_size], data.load(pos[i:i + batch_size], size, resize)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=num_workers) as pool:
        queue: deque = deque()
        it = iter(starts)
        for i in it:
            queue.append((i, pool.submit(data.load, pos[i:i + batch_size], size, resize)))
            if len(queue) >= num_workers:
                break
        while queue:
            i, fut = queue.popleft()
            nxt = next(it, None)
            if nxt is not None:
                queue.append((nxt, pool.submit(data.load, pos[nxt:nxt + batch_size], size, resize)))
            yield i, pos[i:i + batch_size], fut.result()


def _class_finished(root: Path, c: int) -> bool:
    """Both files of class ``c`` exist (written atomically, the index file last)."""
    return (root / _class_file(c)).is_file() and (root / _index_file(c)).is_file()


def _class_shapes(c: int, n: int, latent_shape: Sequence[int]) -> dict[str, tuple]:
    """The shape of each file of class ``c`` (``n`` images): latents, and positions / source indices."""
    return {_class_file(c): (n, *latent_shape), _index_file(c): (2, n)}


def _file_problem(path: Path, record: dict | None, full: bool = True, shape: tuple | None = None) -> str | None:
    """What is wrong with a cache file: checked against its record when it has one, else (a cache
    made before records were kept) its ``.npy`` header and size; ``None`` when it is whole."""
    return check_file(path, record, full=full) if record is not None else _npy_problem(path, shape)


def _class_records(root: Path, c: int) -> dict[str, dict]:
    return {name: file_record(root / name) for name in (_class_file(c), _index_file(c))}


def _sorted(files: dict) -> dict:
    return {k: files[k] for k in sorted(files)}


def _npy_problem(path: Path, shape: tuple | None = None) -> str | None:
    """What is wrong with an ``.npy`` file that has no record (a cache made before records were
    kept): missing, a header that does not parse, fewer bytes than its header announces, or
    another shape than ``shape``. ``None`` when it looks whole (cheap: the header and the size)."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shp, _, dtype = read(fh)
            start = fh.tell()
    except FileNotFoundError:
        return "missing"
    except (ValueError, OSError, EOFError) as e:
        return f"no readable .npy header ({e})"
    want = start + int(np.prod(shp)) * dtype.itemsize
    size = path.stat().st_size
    if size != want:
        return f"{size:,} bytes where its header announces {want:,} (truncated?)"
    if shape is not None and tuple(shp[:len(shape)]) != tuple(shape):
        return f"shape {tuple(shp)}, expected {tuple(shape)}"
    return None


def _check_or_start_cache(root: Path, settings: dict, rebuild: bool, counts: Sequence[int] = ()) -> dict[str, dict]:
    """Start ``root/cache.json`` with ``settings`` (deleting an old cache's files with
    ``rebuild``), or keep a cache made with these very settings; refuse one made otherwise.

    Every file of a kept class is checked against its record (size and SHA-256; a cache made
    before records were kept: its ``.npy`` header and size, then recorded): the files of a
    damaged or missing class are deleted and the class dropped from ``done``, so that it is
    encoded again, and a line names each file replaced. Returns the records of the kept files."""
    meta_path = root / "cache.json"
    done: list[int] = []
    files: dict[str, dict] = {}
    if rebuild:
        _remove_cache(root)
    elif meta_path.is_file():
        old = read_json(meta_path, f"the latent cache's record is damaged: run notebook 01 with rebuild=True (or delete "
                                   f"{root}) to encode again")
        old_settings = {k: v for k, v in old.items() if k not in _RECORD_KEYS}
        if "resize_policy" not in old_settings and old_settings == {k: v for k, v in settings.items()
                                                                      if k != "resize_policy"}:
            old_settings["resize_policy"] = settings["resize_policy"]  # made before policies were recorded: same size and mode
        elif isinstance(old_settings.get("resize_policy"), dict) and "channels" not in old_settings["resize_policy"]:
            # made before policies named their channels: those are the encoder's input channels (in the settings)
            old_settings["resize_policy"] = {**old_settings["resize_policy"],
                                             "channels": old_settings.get("encoder", {}).get("in_channels")}
        if old_settings != settings:
            diff = sorted(k for k in set(settings) | set(old_settings) if settings.get(k) != old_settings.get(k))
            raise StaleCacheError(
                f"{root} holds a latent cache made with other settings (differs in: {', '.join(diff)}). "
                f"Delete the directory (rm -r {root}) or pass rebuild=True to encode again."
            )
        records = old.get("files") or {}
        shape = tuple(settings.get("latent_shape", ()))
        for c in sorted(set(old["done"])):
            shapes = (_class_shapes(c, counts[c], shape) if c < len(counts)
                      else dict.fromkeys((_class_file(c), _index_file(c))))
            problems = {name: _file_problem(root / name, records.get(name), shape=want) for name, want in shapes.items()}
            bad = {k: v for k, v in problems.items() if v is not None}
            if not bad:
                done.append(c)
                files.update({k: records[k] if k in records else file_record(root / k) for k in problems})
                continue
            for name, problem in bad.items():
                print(f"latent cache: replacing {root / name} ({problem}): encoding class {c} again", flush=True)
            for name in problems:
                (root / name).unlink(missing_ok=True)
        # files that a process finished but did not record (stopped in between, or a launch's other
        # processes): kept when whole (then recorded), deleted otherwise
        for c in range(len(counts)):
            if c in done or not _class_finished(root, c):
                continue
            if all(_npy_problem(root / name, want) is None for name, want in _class_shapes(c, counts[c], shape).items()):
                done.append(c)
                files.update(_class_records(root, c))
            else:
                for name in (_class_file(c), _index_file(c)):
                    (root / name).unlink(missing_ok=True)
        done.sort()
    write_json(meta_path, {**settings, "done": done, "files": _sorted(files)})
    return files


def _remove_cache(root: Path) -> None:
    """Delete a latent cache's files (and nothing else) from ``root``."""
    if not root.exists():
        return
    pattern = re.compile(r"^(cache\.json|class_\d{4}(\.index)?\.npy|\..*\.tmp)$")
    for f in root.iterdir():
        if f.is_file() and pattern.match(f.name):
            f.unlink()


def limit_dataset(data: LabeledImages, class_limit: int | None = None, per_class_limit: int | None = None) -> LabeledImages:
    """The first ``class_limit`` classes and the first ``per_class_limit`` images of each, for
    quick runs; ``None`` keeps everything. Notebooks 01 and 02 apply the same limits, so the
    cache's dataset check passes."""
    if class_limit is None and per_class_limit is None:
        return data
    k = data.num_classes if class_limit is None else min(int(class_limit), data.num_classes)
    keep = [data.class_indices(c)[:per_class_limit] for c in range(k)]
    sub = data.subset(np.concatenate(keep), name=f"{data.name}[classes<{k},n<={per_class_limit}]")
    sub.classes, sub.class_names = list(data.classes[:k]), list(data.class_names[:k])
    return sub
