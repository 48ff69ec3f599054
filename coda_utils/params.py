"""The notebooks' parameters, checked before any work starts: one function per stage.

Each notebook calls its function in the cell after ``parameters`` (``params.check_encode(globals())``
in ``01_encode.ipynb``, ...). A bad value stops the notebook at once with a
:class:`ParameterError` that names the parameter, the value given and what is valid, instead
of an error deep inside a library call minutes later (``-p ipc ten`` used to fail in
``int()`` without naming ``ipc``; ``-p steps 0`` wrote a set of noise and its manifest before
failing).

:data:`SPECS` holds one checker per parameter of every notebook; ``tests/test_params.py`` checks
that every parameter of every notebook has one and feeds each a bad value.

A notebook's ``parameters`` cell shows only the few knobs a newcomer touches; the rest (the
GPU, ImageNet and scale-out settings) are its **advanced settings**, :data:`ADVANCED`, with
their defaults and what each does. The same check function first puts every advanced setting
the notebook's namespace lacks into it (:func:`fill_defaults`), so ``papermill -p NAME VALUE``
and ``-f notebooks/params/FILE.yaml`` set any of them as before (papermill injects a name
that is not in the ``parameters`` cell after that cell, with the log line
``Passed unknown parameter: NAME``: expected for an advanced setting, a typo otherwise).
:func:`show_settings` lists them; :func:`notebook_defaults` is every parameter at its default.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence, Any, Callable, Mapping, MutableMapping

__all__ = ["ParameterError", "SPECS", "ADVANCED", "check", "fill_defaults", "advanced_defaults", "notebook_defaults",
           "notebook_name", "show_settings", "read_parameter_file", "train_timesteps", "check_build_prior", "check_encode", "check_discover", "check_generate",
           "check_evaluate", "check_ablations", "check_figures"]


from .errors import ParameterError  # the errors module owns it (the data layer raises it too)
from .rundir import ALL_REAL_METHODS, GENERATED_METHODS, REAL_METHODS


Checker = Callable[[str, Any, Mapping[str, Any]], None]

#: the points of notebook 05's ``selection`` sweep (``sweeps.SELECTION_POINTS`` defines them; named
#: here too so that checking parameters imports nothing heavy; tests/test_params.py keeps them equal)
SELECTIONS = ("discovery", "discovery_no_noise_fill", "discovery_pixels", "discovery_pca", "discovery_judge",
              "discovery_unscaled", "random_real", "kmeans", "herding")


def _fail(name: str, value: Any, expected: str) -> None:
    raise ParameterError(f"parameter `{name}` = {value!r}: {expected}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# --------------------------------------------------------------------------------------
# Checkers (each returns a function of (name, value, all parameters))
# --------------------------------------------------------------------------------------
def integer(lo: int | None = None, hi: int | None = None, none: bool = False) -> Checker:
    def check(name, v, ns):
        if v is None and none:
            return
        bounds = (f" >= {lo}" if lo is not None else "") + (f" and <= {hi}" if hi is not None else "")
        if not _is_int(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
            _fail(name, v, f"expected an integer{bounds}" + (" or None" if none else ""))
    return check


def number(lo: float | None = None, hi: float | None = None, lo_open: bool = False, none: bool = False) -> Checker:
    def check(name, v, ns):
        if v is None and none:
            return
        low = "" if lo is None else (f" > {lo}" if lo_open else f" >= {lo}")
        high = "" if hi is None else f" and <= {hi}"
        if (not _is_number(v) or v != v or (lo is not None and (v <= lo if lo_open else v < lo))
                or (hi is not None and v > hi)):
            _fail(name, v, f"expected a number{low}{high}" + (" or None" if none else ""))
    return check


def boolean() -> Checker:
    def check(name, v, ns):
        if not isinstance(v, bool):
            _fail(name, v, "expected True or False")
    return check


def choice(options, none: bool = False) -> Checker:
    def check(name, v, ns):
        if v is None and none:
            return
        opts = options() if callable(options) else options
        if not isinstance(v, str) or v not in opts:
            _fail(name, v, f"choose one of {', '.join(map(str, opts))}" + (" (or None)" if none else ""))
    return check


def text(none: bool = False, pattern: str | None = None, what: str = "a string") -> Checker:
    def check(name, v, ns):
        if v is None and none:
            return
        if not isinstance(v, str) or (pattern is not None and not re.fullmatch(pattern, v)):
            _fail(name, v, f"expected {what}" + (" or None" if none else ""))
    return check


def _local(v) -> Path:
    """``v`` as the loaders find it: as given, else relative to the repository root (shipped
    models, whatever the working directory, e.g. under nbval)."""
    from .encoding import resolve_model_path

    return resolve_model_path(v)


def directory(none: bool = False, must_exist: bool = True, shipped: bool = False) -> Checker:
    """A directory path; ``shipped``: also found relative to the repository root, as the
    loaders of shipped models (judge, prior) find it."""
    def check(name, v, ns):
        if v is None and none:
            return
        if not isinstance(v, (str, Path)) or not str(v):
            _fail(name, v, "expected a directory path" + (" or None" if none else ""))
        if must_exist and not (_local(v) if shipped else Path(v)).is_dir():
            _fail(name, v, "no such directory")
    return check


def model() -> Checker:
    """A diffusers pipeline directory, or a hub id (``org/name``) for machines that reach a hub."""
    def check(name, v, ns):
        if not isinstance(v, (str, Path)) or not str(v):
            _fail(name, v, "expected a diffusers pipeline directory or a hub id such as "
                           "stabilityai/stable-diffusion-xl-base-1.0")
        p = _local(v)
        if p.exists():
            if not p.is_dir() or not ((p / "model_index.json").is_file() or (p / "config.json").is_file()):
                _fail(name, v, "this path is not a diffusers pipeline (or model) directory: it has no model_index.json")
        elif str(v).startswith((".", "/")) or str(v).count("/") != 1:
            _fail(name, v, "no such directory, and not a hub id of the form org/name")
    return check


def device() -> Checker:
    def check(name, v, ns):
        import torch

        if not isinstance(v, str):
            _fail(name, v, "expected 'cpu', 'cuda' or 'cuda:N'")
        if v.startswith("cuda"):
            if not torch.cuda.is_available():
                _fail(name, v, "this machine has no CUDA device (torch.cuda.is_available() is False); use 'cpu'")
            if v != "cuda" and not (re.fullmatch(r"cuda:\d+", v) and int(v[5:]) < torch.cuda.device_count()):
                _fail(name, v, f"expected 'cuda' or 'cuda:N' with N < {torch.cuda.device_count()}")
        elif v not in ("cpu", "mps"):
            _fail(name, v, "expected 'cpu', 'cuda' or 'cuda:N'")
    return check


def list_of(item: Checker, nonempty: bool = True, none: bool = False) -> Checker:
    def check(name, v, ns):
        if v is None and none:
            return
        if not isinstance(v, (list, tuple)) or (nonempty and not v):
            _fail(name, v, "expected a " + ("non-empty " if nonempty else "") + "list")
        for i, x in enumerate(v):
            item(f"{name}[{i}]", x, ns)
    return check


def seeds() -> Checker:
    def check(name, v, ns):
        from .rundir import selection_seeds

        try:
            selection_seeds(v)
        except ValueError:
            _fail(name, v, "expected a non-negative integer or a non-empty list of distinct ones, e.g. [0, 1, 2, 3, 4]")
    return check


def anything() -> Checker:
    def check(name, v, ns):
        return
    return check


# --------------------------------------------------------------------------------------
# Values shared by several notebooks
# --------------------------------------------------------------------------------------
def _datasets():
    from .datasets import DATASETS

    return DATASETS


def _architectures():
    from .architectures import ARCHITECTURES

    return ARCHITECTURES


def _protocols():
    from .evaluation import PROTOCOLS

    return PROTOCOLS


def _architecture() -> Checker:
    def check(name, v, ns):
        if not (isinstance(v, str) and (v in _architectures() or re.fullmatch(r"convnet\d+", v))):
            _fail(name, v, f"choose one of {', '.join(_architectures())} (or convnetN)")
    return check


def _split() -> Checker:
    def check(name, v, ns):
        if v is None:
            return
        from .datasets import FASHION_MNIST_SPLITS

        if str(ns.get("dataset", "")).lower() in ("fashion-mnist", "fashion_mnist", "fmnist"):
            allowed = [*FASHION_MNIST_SPLITS, "train"]
            if v not in allowed:
                _fail(name, v, f"Fashion-MNIST splits are {', '.join(allowed)} (or None)")
        elif not isinstance(v, str) or not v:
            _fail(name, v, "expected a split name (or None)")
    return check


def _method() -> Checker:
    return text(pattern=r"[A-Za-z0-9_.\-]+", what="a method or set name (letters, digits, _ . -)")


def _methods() -> Checker:
    """One method name or a non-empty list of them (notebook 04 evaluates each in turn)."""
    one, many = _method(), list_of(_method())

    def check(name, v, ns):
        (one if isinstance(v, str) else many)(name, v, ns)
    return check


def method_list(value: str | Sequence[str]) -> list[str]:
    """Notebook 04's ``methods`` as a list (papermill ``-p methods coda_g`` passes one string)."""
    return [value] if isinstance(value, str) else list(value)


DATA = {"dataset": choice(_datasets), "data_root": directory(none=True), "split": _split()}
COMMON = {"run_dir": text(what="a directory path"), "figures_dir": text(none=True, what="a directory path"),
          "progress": boolean()}
LIMITS = {"class_limit": integer(2, none=True), "per_class_limit": integer(1, none=True)}  # a classifier needs 2 classes
DTYPES = ("float32", "float16", "bfloat16")

#: notebook -> parameter -> checker
SPECS: dict[str, dict[str, Checker]] = {
    "00_build_prior": {
        "train": boolean(), "seed": integer(0), "vae_steps": integer(0), "unet_steps": integer(0), "decoder_steps": integer(0),
        "vae_batch": integer(1), "unet_batch": integer(1), "vae_channels": list_of(integer(1)),
        "vae_latent_channels": integer(1), "unet_channels": list_of(integer(1)),
        "unet_plain_levels": integer(0), "text_width": integer(1), "latent_passes": integer(1),
        "noise_offset": number(0.0), "background_caption_p": number(0.0, 1.0),
        "finetune_steps": integer(0), "finetune_batch": integer(1), "finetune_lr": number(0.0),
        "finetune_noise_offset": number(0.0), "finetune_background_caption_p": number(0.0, 1.0),
        "base_prior": text(none=True, what="a directory path"),
        "pool_limit": integer(1, none=True), "device": device(), "tokenizer_dir": text(none=True, what="a directory path"),
        "judge_steps": integer(0), "fidelity_samples": integer(1), "fd_target_images": integer(2), "psnr_images": integer(1, none=True),
        "sampling_steps": integer(1), "cfg_scale": number(1.0), "out_dir": text(what="a directory path"),
        "overwrite_shipped": boolean(), "work_dir": text(what="a directory path"), "judge_dir": text(what="a directory path"),
        "figures_dir": text(none=True, what="a directory path"), "write_card": boolean(), "progress": boolean(),
        "round_trip": text(none=True, what="a results file path"),
    },
    "01_encode": {
        **DATA, "model": model(), "size": integer(8, none=True), "resize": choice(("center_crop", "squash", "pad"), none=True),
        "batch_size": integer(1), "num_workers": integer(0), "device": device(), "dtype": choice(DTYPES), **LIMITS,
        "rebuild": boolean(), **COMMON,
    },
    "02_discover": {
        **DATA, "model": model(), "ipc": integer(1), "n_neighbors": integer(2, none=True),
        "min_cluster_size": integer(2, none=True), "min_samples": integer(1), "selection_seeds": seeds(),
        "pca_dims": integer(2, none=True), **LIMITS, "plot_class": integer(0),
        "methods": list_of(choice(ALL_REAL_METHODS)), **COMMON,
    },
    "03_generate": {
        **DATA, "model": model(), "refiner": text(none=True, what="a refiner directory or hub id"),
        "refiner_start": number(0.0, 1.0, lo_open=True), "ipc": integer(1), "gamma": number(0.0),
        "guide_fraction": number(0.0, 1.0), "variant": choice(("reference", "normalized")), "cfg_scale": number(1.0),
        "steps": integer(1), "batch_size": integer(1), "selection_seeds": seeds(),
        "prompt_template": text(pattern=r"(?s).*\{\}.*", what="a string with one {} where the class name goes"),
        "methods": list_of(choice(GENERATED_METHODS)), "set_suffix": text(pattern=r"[A-Za-z0-9_.\-]*",
                                                                                            what="letters, digits, _ . -"),
        "device": device(), "dtype": choice(DTYPES), "threads": integer(1, none=True), "attention_slicing": boolean(),
        "vae_tiling": boolean(), **LIMITS, "judge_dir": directory(none=True, shipped=True), "trajectory_class": integer(0), "step_shown": integer(0), **COMMON,
    },
    "04_evaluate": {
        **DATA, "test_root": directory(none=True), "test_split": text(none=True, what="a split name"), "methods": _methods(),
        "distilled": directory(none=True), "ipc": integer(1), "selection_seeds": seeds(), "repeats": integer(1),
        "arch": _architecture(), "protocol": choice(_protocols), "epochs": integer(1, none=True),
        "eval_every": integer(1, none=True), "curve_every": integer(1, none=True), "precision": choice(("auto", "fp32", "bf16")), "image_size": integer(8, none=True), "fast": boolean(),
        "test_limit": integer(1, none=True), "device": device(), "threads": integer(1, none=True),
        "teacher": text(none=True, what="a teacher checkpoint or torchvision:<arch>:<file>"),
        "teacher_epochs": integer(1), **COMMON,
    },
    "05_ablations": {
        "dataset": choice(_datasets), "data_root": directory(none=True), "holdout_fraction": number(0.0, 0.5, lo_open=True),
        "arch": _architecture(), "protocol": choice(_protocols),
        "teacher": text(none=True, what="a teacher checkpoint or torchvision:<arch>:<file>"), "teacher_epochs": integer(1),
        "image_size": integer(8, none=True),
        "model": model(), "out_dir": text(what="a directory path"),
        "sweeps": list_of(choice(("discovery", "gamma", "guide_fraction", "variant", "ipc", "features", "selection"))),
        "selection_seeds": seeds(), "ipc": integer(1), "gamma": number(0.0), "guide_fraction": number(0.0, 1.0),
        "n_neighbors": integer(2, none=True), "min_cluster_size": integer(2, none=True), "min_samples": integer(1),
        "n_neighbors_grid": list_of(integer(2)), "min_cluster_size_grid": list_of(integer(2)),
        "gamma_grid": list_of(number(0.0)), "guide_fraction_grid": list_of(number(0.0, 1.0)),
        "variant_grid": list_of(choice(("reference", "normalized"))), "variant_gamma_grid": list_of(number(0.0)),
        "ipc_grid": list_of(integer(1)), "features_grid": list_of(choice(("vae", "pixels"))),
        "selection_grid": list_of(choice(SELECTIONS)), "steps": integer(1),
        "cfg_scale": number(1.0), "epochs": integer(1, none=True), "repeats": integer(1), "precision": choice(("auto", "fp32", "bf16")),
        **LIMITS, "device": device(), "threads": integer(1, none=True),
        "figures_dir": text(none=True, what="a directory path"), "publish": boolean(), "progress": boolean(),
    },
    "06_figures": {
        "run_dir": directory(), "results": list_of(text(what="a glob of results files"), none=True), "ipc": integer(1),
        "selection_seed": integer(0, none=True), "ablations_dir": text(none=True, what="a directory path"), "model": model(),
        "plot_class": integer(0), "figures_dir": text(none=True, what="a directory path"), "caption": text(),
        "name": text(none=True, pattern=r"[A-Za-z0-9_.\-]+", what="a file-name part"),
    },
}


# --------------------------------------------------------------------------------------
# Advanced settings: the defaults a notebook's parameters cell does not show
# --------------------------------------------------------------------------------------
#: notebook -> parameter -> (default, what it does): every parameter that is not one of the few
#: knobs a newcomer touches (those stay in the notebook's ``parameters`` cell). The check cell
#: (``params.check_encode(globals())``, ...) puts each one the namespace lacks into it before
#: checking, so papermill's ``-p NAME VALUE`` and ``-f file.yaml`` (injected after the
#: ``parameters`` cell) still set any of them; ``notebooks/params/*.yaml`` holds the GPU,
#: ImageNet and scale-out presets, :func:`show_settings` lists a notebook's.
ADVANCED: dict[str, dict[str, tuple[Any, str]]] = {
    "00_build_prior": {
        "vae_steps": (1500, "VAE training steps (PriorConfig)"),
        "unet_steps": (6000, "UNet training steps"),
        "decoder_steps": (1000, "decoder fine-tuning (encoder frozen, so the UNet stays valid)"),
        "vae_batch": (128, "VAE batch size"),
        "unet_batch": (128, "UNet batch size"),
        "vae_channels": ([32, 64], "each block after the first halves the 32x32 canvas: 16x16 latents"),
        "vae_latent_channels": (4, "latents 4x16x16 (the candidates tried: benchmarks/vae_candidates.py)"),
        "unet_channels": ([32, 64, 96], "UNet widths, one per level"),
        "unet_plain_levels": (1, "highest-resolution UNet levels without cross-attention (the 16x16 one)"),
        "text_width": (64, "text encoder width"),
        "latent_passes": (3, "passes over the pool's latents (each with fresh web transforms)"),
        "noise_offset": (0.0, "offset noise in the UNet stage's training noise (0: the shipped prior, which gets "
                              "it in its fine-tuning instead)"),
        "background_caption_p": (0.3, "share of training captions that name the background (black / white)"),
        "finetune_steps": (600, "offset-noise fine-tuning of the UNet and text encoder after the UNet stage, so that "
                                "the prior follows its background words (0: none, the second prior)"),
        "finetune_batch": (64, "fine-tuning batch size"),
        "finetune_lr": (3e-4, "fine-tuning learning rate (constant, no EMA)"),
        "finetune_noise_offset": (0.5, "offset noise of the fine-tuning (benchmarks/prior_text_probe.py: why)"),
        "finetune_background_caption_p": (1.0, "share of the fine-tuning's captions that name the background"),
        "base_prior": (None, "train: fine-tune this finished prior's networks instead of training the stages before "
                             "(make prior PRIOR_BASE=...: how the shipped prior was made from the second)"),
        "pool_limit": (None, "train on the first N pool images only (quick checks)"),
        "tokenizer_dir": ("data/models/fashion-prior/tokenizer", "reuse this vocabulary; None: train a new one"),
        "judge_steps": (3000, "training steps of the judge classifier (when it is not found)"),
        "fd_target_images": (1000, "target images the samples are compared with"),
        "psnr_images": (1000, "target images whose VAE round trip is measured, None: all of target (make prior)"),
        "out_dir": ("data/models/fashion-prior", "train: where the new pipeline goes (the shipped one only with "
                                                 "overwrite_shipped)"),
        "overwrite_shipped": (False, "True only to replace data/models/fashion-prior (make prior)"),
        "judge_dir": ("data/models/fashion-judge", "loaded if it exists, trained and saved otherwise"),
        "figures_dir": (None, "None: work_dir/figures; make prior passes figures"),
        "write_card": (True, "train: write the model card (README.md) beside the pipeline"),
        "round_trip": ("results/vae_round_trip.csv", "the latent-space candidates (benchmarks/vae_candidates.py), "
                                                     "shown on the card"),
    },
    "01_encode": {
        "data_root": (None, "ImageFolder root (train split) for ImageNet subsets"),
        "split": (None, "None: target (Fashion-MNIST) or train (ImageFolder); target_fit for model selection"),
        "size": (None, "encoding resolution, None: the VAE native sample_size"),
        "resize": (None, "pad | squash | center_crop, None: pad smaller images, else squash"),
        "batch_size": (256, "images encoded at once"),
        "num_workers": (0, "threads that load images ahead (ImageFolder trees on a GPU)"),
        "dtype": ("float32", "float16 only with an fp16-safe VAE"),
        "class_limit": (None, "only the first N classes (quick runs)"),
        "figures_dir": (None, "None: run_dir/figures"),
    },
    "02_discover": {
        "data_root": (None, "ImageFolder root (train split) for ImageNet subsets"),
        "split": (None, "None: target (Fashion-MNIST) or train (ImageFolder); target_fit for model selection"),
        "model": ("data/models/fashion-prior", "the model whose VAE made the cache (checked)"),
        "min_samples": (3, "HDBSCAN"),
        "pca_dims": (None, "e.g. 256: PCA before UMAP (faster, not the reference path)"),
        "class_limit": (None, "as in notebook 01 (the cache is checked against the data)"),
        "per_class_limit": (None, "as in notebook 01"),
        "figures_dir": (None, "None: run_dir/figures"),
        "progress": (False, "progress bars"),
        "methods": (list(REAL_METHODS), "the selections exported as sets; + coda_r_no_noise_fill (beyond the paper)"),
    },
    "03_generate": {
        "data_root": (None, "ImageFolder root (train split) for ImageNet subsets"),
        "split": (None, "None: target (Fashion-MNIST) or train (ImageFolder); target_fit for model selection"),
        "refiner": (None, "SDXL refiner directory or hub id (gets no guidance)"),
        "refiner_start": (0.8, "fraction of the schedule the base model runs when a refiner is used"),
        "guide_fraction": (0.9, "guided share of the steps (reference: 0.9)"),
        "variant": ("reference", "reference | normalized"),
        "cfg_scale": (5.0, "classifier-free guidance scale"),
        "batch_size": (50, "images generated at once"),
        "prompt_template": ("a {} on a black background", "the text-only baseline"),
        "set_suffix": ("", "appended to the set folder names, e.g. _gamma0.1 in sweeps"),
        "device": ("cpu", "cpu | cuda | cuda:N"),
        "dtype": ("float32", "float16 on GPUs (SDXL: use an fp16-safe VAE)"),
        "threads": (None, "torch threads (1 when other stages share the cores), None: the default"),
        "attention_slicing": (False, "memory options for large models"),
        "vae_tiling": (False, "memory option for large models: decode in tiles"),
        "class_limit": (None, "as in notebooks 01 and 02"),
        "per_class_limit": (None, "as in notebooks 01 and 02"),
        "judge_dir": ("data/models/fashion-judge", "Frechet distances in its features (embedded world), None: skip"),
        "trajectory_class": (7, "the class whose sample is followed step by step"),
        "step_shown": (5, "the denoising step whose correction is drawn"),
        "figures_dir": (None, "None: run_dir/figures"),
        "progress": (False, "progress bars"),
    },
    "04_evaluate": {
        "data_root": (None, "ImageFolder root for ImageNet subsets (train split), None for Fashion-MNIST"),
        "split": (None, "None: target (Fashion-MNIST) or train (ImageFolder); target_fit for model selection"),
        "test_root": (None, "ImageFolder root of the real test/val split for ImageNet subsets"),
        "test_split": (None, "None: test (or val); target_val to choose settings without touching test"),
        "distilled": (None, "None: the method's sets in run_dir/sets; or the path of one exported ImageFolder"),
        "repeats": (1, "networks per selection seed"),
        "arch": ("convnet3", "convnet3 | resnet_ap10 | resnet18"),
        "teacher": (None, "rded: a train_teacher checkpoint or torchvision:<arch>:<file>; None: train one on all of "
                          "target"),
        "teacher_epochs": (50, "rded without a teacher: epochs of the dc protocol that trains it (once, cached)"),
        "eval_every": (None, "also test every N epochs, for the secondary acc_best column (None: final only)"),
        "curve_every": (10, "the protocol figure: test one network every N epochs (None: no figure)"),
        "precision": ("fp32", "fp32: the same numbers on every CPU | auto | bf16 (autocast: faster, CPU-dependent)"),
        "fast": (False, "GPU fast path: bf16 autocast, channels-last, torch.compile (evaluation.FAST_PATH)"),
        "image_size": (None, "None: native size of the dataset (28 for Fashion-MNIST)"),
        "threads": (None, "torch threads (1 when several evaluations share the cores), None: the default"),
        "figures_dir": (None, "None: the evaluation's folder (one method) or run_dir/figures"),
        "progress": (False, "progress bars"),
    },
    "05_ablations": {
        "data_root": (None, "ImageFolder root (train split) for ImageNet subsets; never the val split"),
        "holdout_fraction": (0.2, "ImageFolder: this seeded part of every class (at most half) is held out to judge "
                                  "points"),
        "model": ("data/models/fashion-prior", "diffusers pipeline directory or hub id"),
        "gamma": (0.2, "the reference point's guidance scale (the study's, chosen on target_val)"),
        "guide_fraction": (0.9, "the reference point's guided share of the steps"),
        "n_neighbors": (None, "None: the reference 85 scaled to the class size"),
        "min_cluster_size": (None, "None: the reference 55 scaled to the class size"),
        "min_samples": (3, "HDBSCAN"),
        "n_neighbors_grid": ([15, 35, 65], "65, 42: the study default (the reference 85, 55 scaled)"),
        "min_cluster_size_grid": ([10, 20, 42], "the discovery sweep crosses n_neighbors_grid with these"),
        "guide_fraction_grid": ([0.5, 0.7, 0.9, 1.0], "the guide_fraction sweep"),
        "variant_grid": (["reference", "normalized"], "the variant sweep"),
        "variant_gamma_grid": ([0.5, 1.0, 2.0], "the variant sweep crosses variant_grid with these"),
        "ipc_grid": ([1, 10, 50], "the ipc sweep"),
        "features_grid": (["vae", "pixels"], "the features sweep: discovery on VAE latents or on pixels"),
        "selection_grid": (["discovery", "random_real", "kmeans"], "the selection sweep: how set R is made "
                           "(sweeps.SELECTION_POINTS: discovery, its one-change variants, random_real, kmeans, herding)"),
        "steps": (25, "denoising steps"),
        "cfg_scale": (5.0, "classifier-free guidance scale"),
        "arch": ("convnet3", "convnet3 | resnet_ap10 | resnet18"),
        "protocol": ("dc", "dc | dsa | idc (hard labels) | rded (soft labels, teacher trained on fit)"),
        "teacher": (None, "rded: a train_teacher checkpoint or torchvision:<arch>:<file>; None: train one"),
        "teacher_epochs": (50, "rded without a teacher: dc epochs of the teacher trained on fit (cached)"),
        "image_size": (None, "train and judge at this size (ImageFolder trees of mixed sizes, e.g. 128)"),
        "repeats": (1, "networks per selection seed"),
        "precision": ("fp32", "fp32: the same numbers on every CPU | auto | bf16 (faster, CPU-dependent)"),
        "class_limit": (None, "quick runs: the first N classes"),
        # per_class_limit is in the parameters cell: the tutorial's 200, the study's None (ablations.yaml)
        "device": ("cpu", "cpu | cuda | cuda:N"),
        "threads": (None, "torch threads, None: the default"),
        "figures_dir": (None, "None: out_dir/figures"),
        "progress": (False, "progress bars"),
    },
    "06_figures": {
        "model": ("data/models/fashion-prior", "decodes the saved x0 trajectories to images"),
        "plot_class": (0, "the class drawn in the embedding figure"),
    },
}


def _num_classes(ns: Mapping[str, Any]) -> tuple[int | None, str]:
    """How many classes the stage will see (the dataset's, within ``class_limit``) and the
    parameter that decides it; ``None`` when it cannot be known without loading the data."""
    dataset = str(ns.get("dataset", "fashion-mnist")).lower()
    n, name = None, "dataset"
    if ns.get("data_root") is not None and Path(ns["data_root"]).is_dir():
        n, name = sum(1 for p in Path(ns["data_root"]).iterdir() if p.is_dir() and not p.name.startswith(".")), "data_root"
    elif dataset in ("fashion-mnist", "fashion_mnist", "fmnist"):
        from .datasets import FASHION_MNIST_CLASSES

        n = len(FASHION_MNIST_CLASSES)
    limit = ns.get("class_limit")
    if _is_int(limit) and (n is None or limit < n):
        n, name = limit, "class_limit"
    return n, name


def train_timesteps(model_dir: Any) -> int | None:
    """The number of training timesteps of a local pipeline's scheduler
    (``scheduler/scheduler_config.json``: ``num_train_timesteps``), ``None`` when unknown (a hub id)."""
    import json

    if not isinstance(model_dir, (str, Path)):
        return None
    path = _local(model_dir) / "scheduler" / "scheduler_config.json"
    if not path.is_file():
        return None
    try:
        t = json.loads(path.read_text()).get("num_train_timesteps")
    except (OSError, ValueError) as e:
        raise ParameterError(f"parameter `model` = {model_dir!r}: {path} does not parse ({e}); restore the model's "
                             "scheduler config (the embedded prior: git checkout data/models/fashion-prior)") from None
    return int(t) if _is_int(t) else None


def _cross_checks(notebook: str, ns: Mapping[str, Any]) -> None:
    """Rules that involve several parameters (and what the model and the data allow)."""
    dataset = str(ns.get("dataset", "fashion-mnist")).lower()
    if "dataset" in ns and dataset not in ("fashion-mnist", "fashion_mnist", "fmnist") and ns.get("data_root") is None:
        _fail("data_root", None, f"dataset {ns['dataset']!r} is an ImageFolder tree: pass its train split's root")
    if notebook == "04_evaluate":
        from .rundir import STUDY_METHODS, RunDir

        methods, ipc = method_list(ns.get("methods", [])), ns.get("ipc")
        for method in methods if ns.get("distilled") is None else []:
            if method not in (*STUDY_METHODS, "full") and not RunDir(ns.get("run_dir", ".")).set_dirs(method, ipc):
                _fail("methods", method, f"not a method of the study ({', '.join(STUDY_METHODS)}, full) and no set "
                                         f"{method}_ipc{ipc}* in {RunDir(ns.get('run_dir', '.')).root / 'sets'}; "
                                         "or pass distilled=<folder>")
        if ns.get("distilled") is not None and len(methods) != 1:
            _fail("methods", ns.get("methods"), "`distilled` names one set: pass one method name for it")
        if dataset not in ("fashion-mnist", "fashion_mnist", "fmnist") and ns.get("test_root") is None:
            _fail("test_root", None, f"dataset {ns['dataset']!r} needs the root of its test/val split to evaluate on")
        if ns.get("distilled") is not None and ns.get("selection_seeds") is not None:
            from .rundir import selection_seeds

            if len(selection_seeds(ns["selection_seeds"])) != 1:
                _fail("selection_seeds", ns["selection_seeds"], "`distilled` names one set: pass the one seed that made it")
    if "dataset" in ns:
        n, name = _num_classes(ns)
        if n is not None and n < 2:
            _fail(name, ns.get(name), f"the data has {n} class(es); a distilled set is evaluated by a classifier, "
                                      "which needs at least 2 classes")
        if n is not None and _is_int(ns.get("plot_class")) and ns["plot_class"] >= n:
            _fail("plot_class", ns["plot_class"], f"the data has {n} classes: expected 0 <= plot_class < {n}")
    ipc, per_class = ns.get("ipc"), ns.get("per_class_limit")
    if _is_int(ipc) and _is_int(per_class) and ipc > per_class and ns.get("distilled") is None:
        _fail("ipc", ipc, f"per_class_limit = {per_class} leaves fewer images per class than ipc; expected ipc <= "
                          f"{per_class} (or a larger per_class_limit)")
    if "steps" in ns and "model" in ns and _is_int(ns["steps"]):
        t = train_timesteps(ns["model"])
        if t is not None and ns["steps"] > t:
            _fail("steps", ns["steps"], f"the scheduler of {ns['model']} was trained with {t} timesteps (more steps are "
                                        f"not distinct timesteps): expected 1 <= steps <= {t}")


def read_parameter_file(path: str | Path) -> dict:
    """The parameters of a YAML file (papermill's ``-f``, e.g. ``notebooks/params/prior.yaml``).

    Raises:
        ParameterError: the file is missing, does not parse, or does not hold a mapping of
            parameter names; the message names the file and what to do.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"parameter file {path} does not exist; pass the path of a YAML file of parameters")
    try:
        values = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1} column {where.column + 1}" if where is not None else ""
        raise ParameterError(f"parameter file {path} is not valid YAML{at} ({getattr(e, 'problem', None) or e}); fix "
                             "that line (one `name: value` per line) or restore the file (git checkout -- "
                             f"{path})") from None
    if values is None:
        return {}
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise ParameterError(f"parameter file {path} holds a {type(values).__name__}, not `name: value` lines; write one "
                             "parameter per line (e.g. `steps: 25`) or restore the file")
    return values


def notebook_name(stage: str) -> str:
    """The notebook a stage names: ``"03"``, ``"03_generate"`` or ``"03_generate.ipynb"``.

    Raises:
        ParameterError: no notebook of that name or number.
    """
    key = str(stage).removesuffix(".ipynb")
    found = [nb for nb in SPECS if key in (nb, nb[:2])]
    if len(found) != 1:
        raise ParameterError(f"no notebook {stage!r}; choose one of {', '.join(SPECS)} (or its number)")
    return found[0]


def advanced_defaults(stage: str) -> dict[str, Any]:
    """A notebook's advanced settings at their defaults (:data:`ADVANCED`; fresh copies of lists)."""
    import copy

    return {name: copy.deepcopy(default) for name, (default, _) in ADVANCED[notebook_name(stage)].items()}


def fill_defaults(stage: str, namespace: MutableMapping[str, Any]) -> list[str]:
    """Put every advanced setting of the notebook that ``namespace`` lacks into it, at its default;
    a name already there (the ``parameters`` cell's, or papermill's ``-p`` / ``-f``, injected
    before the check cell) is kept. Returns the names filled in."""
    filled = [name for name in ADVANCED[notebook_name(stage)] if name not in namespace]
    defaults = advanced_defaults(stage)
    for name in filled:
        namespace[name] = defaults[name]
    return filled


def notebook_defaults(stage: str) -> dict[str, Any]:
    """Every parameter of a notebook at its default: its ``parameters`` cell (read by papermill,
    as ``papermill`` and ``coda_utils.scale`` see it) and its advanced settings."""
    import ast

    import papermill

    from .datasets import REPO_ROOT

    notebook = notebook_name(stage)
    found = papermill.inspect_notebook(str(REPO_ROOT / "notebooks" / f"{notebook}.ipynb"))
    return {**advanced_defaults(notebook), **{name: ast.literal_eval(p["default"]) for name, p in found.items()}}


def show_settings(stage: str, namespace: Mapping[str, Any] | None = None):
    """A notebook's advanced settings as a table (setting, default, what it does, and the value in
    ``namespace`` when given): what ``-p NAME VALUE`` or a file of ``notebooks/params/`` can set
    beyond the ``parameters`` cell."""
    import pandas as pd

    rows = []
    for name, (default, what) in ADVANCED[notebook_name(stage)].items():
        row = {"setting": name, "default": repr(default)}
        if namespace is not None:
            row["value"] = repr(namespace.get(name, default))
        rows.append({**row, "what it does": what})
    return pd.DataFrame(rows).set_index("setting")


def check(notebook: str, namespace: Mapping[str, Any]) -> None:
    """Check every parameter of ``notebook`` found in ``namespace`` (the notebook's globals).

    Raises:
        ParameterError: the first bad value, naming the parameter and what is valid.
    """
    specs = SPECS[notebook]
    for name, checker in specs.items():
        if name in namespace:
            checker(name, namespace[name], namespace)
    _cross_checks(notebook, namespace)


def _fill_and_check(notebook: str, namespace: MutableMapping[str, Any]) -> None:
    fill_defaults(notebook, namespace)
    check(notebook, namespace)


def check_build_prior(namespace: MutableMapping[str, Any]) -> None:
    """Notebook 00's parameters: its advanced settings filled in (:func:`fill_defaults`), then checked."""
    _fill_and_check("00_build_prior", namespace)


def check_encode(namespace: MutableMapping[str, Any]) -> None:
    """Notebook 01's parameters: its advanced settings filled in (:func:`fill_defaults`), then checked."""
    _fill_and_check("01_encode", namespace)


def check_discover(namespace: MutableMapping[str, Any]) -> None:
    """Notebook 02's parameters: its advanced settings filled in (:func:`fill_defaults`), then checked."""
    _fill_and_check("02_discover", namespace)


def check_generate(namespace: MutableMapping[str, Any]) -> None:
    """Notebook 03's parameters (``steps >= 1``, ``0 <= guide_fraction <= 1``, ``cfg_scale >= 1``, ...):
    its advanced settings filled in (:func:`fill_defaults`), then checked."""
    _fill_and_check("03_generate", namespace)


def check_evaluate(namespace: MutableMapping[str, Any]) -> None:
    """Notebook 04's parameters: its advanced settings filled in (:func:`fill_defaults`), then checked."""
    _fill_and_check("04_evaluate", namespace)


def check_ablations(namespace: MutableMapping[str, Any]) -> None:
    """Notebook 05's parameters: its advanced settings filled in (:func:`fill_defaults`), then checked."""
    _fill_and_check("05_ablations", namespace)


def check_figures(namespace: MutableMapping[str, Any]) -> None:
    """Notebook 06's parameters: its advanced settings filled in (:func:`fill_defaults`), then checked."""
    _fill_and_check("06_figures", namespace)


def main(argv: list[str] | None = None) -> int:
    """``python -m coda_utils.params [NN ...]``: each notebook's advanced settings, defaults and
    what they do (every notebook when none is named)."""
    import argparse

    import pandas as pd

    ap = argparse.ArgumentParser(prog="python -m coda_utils.params", description=main.__doc__.split("\n")[0])
    ap.add_argument("notebooks", nargs="*", help="00 ... 06 or a notebook name; none: every notebook")
    args = ap.parse_args(argv)
    with pd.option_context("display.max_colwidth", 120, "display.width", 200):
        for stage in args.notebooks or list(ADVANCED):
            name = notebook_name(stage)
            print(f"{name}.ipynb: advanced settings (papermill -p NAME VALUE or -f notebooks/params/FILE.yaml)")
            print(show_settings(name).to_string(), end="\n\n")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
