"""Distribution Alignment: CoDA's guided sampling for any diffusers SD 1.x/2.x or SDXL pipeline.

At denoising step ``i`` with model input ``x_t`` and conditional noise prediction ``eps_c``
(``docs/method.md`` section 3)::

    x0     = (x_t - sigma_t * eps_c) / alpha_t            # 1. the predicted clean latent
    d_eps  = -(alpha_t / sigma_t) * gamma * s_i * (z_rep - x0)
    eps_c <- eps_c + d_eps                                # 2. the pull toward the representative
    eps    = eps_u + w * (eps_c - eps_u)                  # 3. ordinary classifier-free guidance

(the numbers of notebook 03's formula; steps 1 and 2 are :func:`coda_correction`, the function
the UNet hook of :func:`coda_guidance` calls).

``s_i`` is the scheduler's noise level at that step (its ``sigmas[i]``, noise over signal in
``x_t``) and ``alpha_t, sigma_t`` its variance-preserving coefficients (``x_t = alpha_t * x0 +
sigma_t * eps``, ``alpha_t**2 + sigma_t**2 = 1``, ``sigma_t / alpha_t = s_i``):
:func:`scheduler_coefficients`. Guidance is applied only while ``i < int(N * guide_fraction)``;
the last steps belong to the prior.

Since ``alpha_t / sigma_t = 1 / s_i``, the step moves the CFG'd ``x0`` toward ``z_rep`` by the
coefficient ``w * gamma * s_i``: above 1 (overshooting) at the highest noise levels, near 0 at
the end. The ``"normalized"`` variant replaces that coefficient by ``1 - exp(-w*gamma*s_i)``,
which stays below 1 and agrees with the reference where the coefficient is small. The
reference behaviour is the default.

Nothing of the pipeline is copied: a forward hook on the pipeline's UNet edits the conditional
half of its output before the pipeline's own CFG combines the halves, as the reference edits the
text-conditioned prediction: the representative acts as one more condition, and CFG's
``eps_u + w * (eps_c - eps_u)`` multiplies the pull by ``w`` (the same edit of both halves would
cancel out of the difference and pull by 1; of the unconditional half alone, by ``1 - w``, a
push away for ``w > 1``). This works for every
pipeline that batches ``[uncond, cond]`` through one UNet call (SD 1.x/2.x, SDXL, the embedded
prior). Epsilon- and v-prediction models are both handled through ``x0``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from . import parallel, setfolder
from .datasets import check_ipc
from .images import check_channels
from .io import atomic_write, exclusive, read_json, write_json

__all__ = [
    "GuidanceConfig",
    "GuidanceState",
    "coda_guidance",
    "load_pipeline",
    "coda_correction",
    "scheduler_coefficients",
    "sample_seed",
    "generate",
    "generate_set",
    "StaleSetError",
    "model_fingerprint",
    "save_trajectories",
    "load_trajectories",
    "latents_to_native",
]


@dataclass
class GuidanceConfig:
    """CoDA guidance settings; defaults are the reference script's (gamma 0.05, 90 % guided)."""

    gamma: float = 0.05
    guide_fraction: float = 0.9
    variant: str = "reference"  # "reference" | "normalized"

    def __post_init__(self):
        if self.variant not in ("reference", "normalized"):
            raise ValueError(f"variant must be 'reference' or 'normalized', not {self.variant!r}")
        if not 0 <= self.guide_fraction <= 1:
            raise ValueError(f"guide_fraction must be in [0, 1], got {self.guide_fraction}")
        if self.gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {self.gamma}")


def scheduler_coefficients(scheduler, step: int, t=None) -> tuple[float, float, float]:
    """``(alpha_t, sigma_t, s_i)`` of ``scheduler`` at denoising step ``step`` (timestep ``t``).

    ``s_i`` is the scheduler's noise level at that step, ``scheduler.sigmas[step]``: noise over
    signal in the model input, ``sqrt((1 - abar_t) / abar_t)`` (from ``alphas_cumprod[t]`` for a
    scheduler without sigmas). ``alpha_t, sigma_t`` are the variance-preserving coefficients of
    the same step: ``x_t = alpha_t * x0 + sigma_t * eps``, ``alpha_t**2 + sigma_t**2 = 1``."""
    if hasattr(scheduler, "sigmas") and len(getattr(scheduler, "sigmas", [])) > step:
        s_i = float(scheduler.sigmas[step])
    else:
        abar = float(scheduler.alphas_cumprod[int(t)])
        s_i = math.sqrt((1 - abar) / abar)
    alpha_t = 1 / math.sqrt(1 + s_i * s_i)
    return alpha_t, s_i * alpha_t, s_i


def coda_correction(x_t: torch.Tensor, eps_c: torch.Tensor, z_rep: torch.Tensor, scheduler, step: int, t=None,
                    gamma: float = 0.05, cfg_scale: float = 1.0, variant: str = "reference") -> torch.Tensor:
    """CoDA's guidance at one denoising step: the correction ``d_eps`` that the UNet hook of
    :func:`coda_guidance` adds to the conditional noise prediction ``eps_c`` (model input ``x_t``,
    step ``step`` of ``scheduler``), pulling the predicted clean latent toward the representative
    latent ``z_rep``. The pipeline's classifier-free guidance then multiplies the pull by ``w``."""
    alpha_t, sigma_t, s_i = scheduler_coefficients(scheduler, step, t)
    x0 = (x_t - sigma_t * eps_c) / alpha_t  # 1. the predicted clean latent
    # the share of the way from x0 to z_rep that eps_c + d_eps moves the predicted x0
    if variant == "reference":
        pull = gamma * s_i
    else:  # "normalized": the CFG'd pull w * pull = 1 - exp(-w * gamma * s_i) stays below 1
        w = max(cfg_scale, 1e-8)
        pull = -math.expm1(-w * gamma * s_i) / w
    # 2. d_eps, such that (x_t - sigma_t * (eps_c + d_eps)) / alpha_t = x0 + pull * (z_rep - x0)
    return -(alpha_t / sigma_t) * pull * (z_rep - x0)


@dataclass
class GuidanceState:
    """What the hook saw. ``calls`` counts guided UNet calls; with ``record``, every step's index,
    whether it was guided, and the conditional x0 before and after the pull."""

    record: bool = False
    steps: list[int] = field(default_factory=list)
    guided: list[bool] = field(default_factory=list)
    x0_before: list[torch.Tensor] = field(default_factory=list)
    x0_after: list[torch.Tensor] = field(default_factory=list)
    calls: int = 0


def _step_index(scheduler, t) -> int:
    ts = scheduler.timesteps
    t = torch.as_tensor(t, device=ts.device).flatten()[0]
    hits = (ts == t).nonzero()
    if len(hits) == 0:
        hits = (ts - t).abs().argmin().view(1, 1)
    return int(hits[0, 0])


@contextlib.contextmanager
def coda_guidance(pipe, z_rep: torch.Tensor | None, config: GuidanceConfig, cfg_scale: float,
                  record: bool = False) -> Iterator[GuidanceState]:
    """Apply CoDA guidance to ``pipe`` for the calls made inside the ``with`` block.

    Args:
        pipe: a diffusers pipeline with ``.unet`` and ``.scheduler``.
        z_rep: representative latents, one per generated image (``B x C x h x w``, in the
            UNet's scaled latent space); ``None`` or ``gamma == 0`` leaves the pipeline untouched.
        config: gamma, guide_fraction, variant.
        cfg_scale: the classifier-free guidance scale the pipeline is called with (for the
            normalized variant).
        record: keep x0 before and after the pull at every step (for the trajectory figures);
            with ``gamma == 0`` this records the unguided trajectory and changes nothing.
    """
    state = GuidanceState(record=record)
    pred_type = pipe.scheduler.config.get("prediction_type", "epsilon")
    if pred_type not in ("epsilon", "v_prediction"):
        raise ValueError(f"CoDA guidance supports epsilon and v-prediction models, not {pred_type!r}")

    def hook(module, args, kwargs, output):
        # what the UNet was given (x_t, timestep t) and what it predicted, for the whole batch
        x_in = args[0] if args else kwargs["sample"]
        t = args[1] if len(args) > 1 else kwargs["timestep"]
        out = output[0] if isinstance(output, tuple) else output.sample
        b = z_rep.shape[0]
        if x_in.shape[0] not in (b, 2 * b):
            raise ValueError(f"CoDA guidance got a UNet batch of {x_in.shape[0]} for {b} representatives; "
                             "call the pipeline with one image per prompt (num_images_per_prompt=1)")
        sched = pipe.scheduler
        step = _step_index(sched, t)
        guided = config.gamma > 0 and step < int(len(sched.timesteps) * config.guide_fraction)
        if not (guided or state.record):
            return output
        alpha_t, sigma_t, _ = scheduler_coefficients(sched, step, t)
        cond = slice(x_in.shape[0] - b, x_in.shape[0])  # the conditional half: [uncond, cond] with CFG
        x_t, o_c = x_in[cond].float(), out[cond].float()
        eps_c = o_c if pred_type == "epsilon" else sigma_t * x_t + alpha_t * o_c  # v-prediction -> eps
        d_eps = torch.zeros_like(eps_c)
        if guided:
            state.calls += 1
            d_eps = coda_correction(x_t, eps_c, z_rep.to(x_t.device, torch.float32), sched, step, t,
                                    config.gamma, cfg_scale, config.variant)
        if state.record:
            state.steps.append(step)
            state.guided.append(guided)
            state.x0_before.append(((x_t - sigma_t * eps_c) / alpha_t).cpu())
            state.x0_after.append(((x_t - sigma_t * (eps_c + d_eps)) / alpha_t).cpu())
        if not guided:
            return output
        # written back in the model's own parameterization; the pipeline's CFG then combines the halves
        new_c = o_c + (d_eps if pred_type == "epsilon" else d_eps / alpha_t)
        out = out.clone()
        out[cond] = new_c.to(out.dtype)
        return (out, *output[1:]) if isinstance(output, tuple) else type(output)(sample=out)

    if z_rep is None or (config.gamma == 0 and not record):
        yield state
        return
    handle = pipe.unet.register_forward_hook(hook, with_kwargs=True)
    try:
        yield state
    finally:
        handle.remove()


def load_pipeline(model: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32,
                  attention_slicing: bool = False, vae_tiling: bool = False, vae: str | Path | None = None):
    """Load a diffusers text-to-image pipeline (a local directory, offline, or a hub id).

    Args:
        model: e.g. ``data/models/fashion-prior``, ``stabilityai/stable-diffusion-xl-base-1.0``,
            ``stable-diffusion-v1-5/stable-diffusion-v1-5``.
        dtype: ``torch.float16`` on GPUs. SDXL's stock VAE overflows in fp16: pass
            ``vae="madebyollin/sdxl-vae-fp16-fix"`` (the fp16-safe VAE the reference uses), or
            keep the stock VAE, which the SDXL pipeline upcasts to fp32 for decoding.
        attention_slicing, vae_tiling: memory savers for large models and small GPUs.
        vae: replace the pipeline's VAE (directory or hub id).
    """
    from diffusers import AutoencoderKL, DiffusionPipeline

    from .encoding import resolve_model_path

    p = resolve_model_path(model)
    local = p.exists()
    if local and not (p / "model_index.json").is_file():
        raise FileNotFoundError(f"{p} is not a diffusers pipeline directory (no model_index.json); pass a pipeline "
                                "directory or a hub id such as stabilityai/stable-diffusion-xl-base-1.0")
    kw = dict(local_files_only=local, low_cpu_mem_usage=False)
    if dtype != torch.float32:
        kw["torch_dtype"] = dtype
    if vae is not None:
        kw["vae"] = AutoencoderKL.from_pretrained(str(vae), local_files_only=Path(vae).exists(), low_cpu_mem_usage=False)
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    # no "Loading pipeline components" / "Loading weights" bars (they would be stored in notebooks)
    shown = [lib for lib in (diffusers_logging, transformers_logging) if lib.is_progress_bar_enabled()]
    # nor transformers' warnings that its image processors would like torchvision (no pipeline here has one)
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    for lib in shown:
        lib.disable_progress_bar()
    try:
        pipe = DiffusionPipeline.from_pretrained(str(p), **kw)
    finally:
        transformers_logging.set_verbosity(verbosity)
        for lib in shown:
            lib.enable_progress_bar()
    pipe.set_progress_bar_config(disable=True)
    if attention_slicing:
        pipe.enable_attention_slicing()
    if vae_tiling:
        pipe.vae.enable_tiling()
    return pipe.to(device)


def sample_seed(seed: int, class_index: int, k: int) -> int:
    """The seed of image ``k`` of class ``class_index``: depends on nothing else (not on the
    batch size, the batch composition or the number of devices)."""
    return int(np.random.SeedSequence([int(seed), int(class_index), int(k)]).generate_state(1, np.uint64)[0] % (2**63))


def _is_sdxl(pipe) -> bool:
    return hasattr(pipe, "text_encoder_2")


@torch.no_grad()
def generate(pipe, prompts: Sequence[str], seeds: Sequence[int], z_rep: torch.Tensor | None = None,
             guidance: GuidanceConfig | None = None, cfg_scale: float = 5.0, steps: int = 25,
             negative_prompt: str | None = None, record: bool = False, refiner=None, refiner_start: float = 0.8,
             height: int | None = None, width: int | None = None) -> tuple[torch.Tensor, GuidanceState]:
    """Generate one image per prompt (a batch), optionally CoDA-guided toward ``z_rep``.

    Returns ``uint8`` images ``B x C x H x W`` at the pipeline's resolution and the guidance
    state. With an SDXL ``refiner``, the base model stops at ``refiner_start`` of the schedule
    and hands its latents to the refiner, which runs without guidance.
    """
    guidance = guidance or GuidanceConfig()
    device = pipe.unet.device
    gens = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
    kw = dict(num_inference_steps=steps, guidance_scale=cfg_scale, generator=gens)
    if negative_prompt:
        kw["negative_prompt"] = [negative_prompt] * len(prompts)
    if height or width:
        kw.update(height=height, width=width)
    if _is_sdxl(pipe):
        h = height or pipe.default_sample_size * pipe.vae_scale_factor
        w = width or pipe.default_sample_size * pipe.vae_scale_factor
        kw.update(original_size=(h, w), target_size=(h, w), crops_coords_top_left=(0, 0))
    if z_rep is not None:
        z_rep = torch.as_tensor(z_rep).to(device)
    with coda_guidance(pipe, z_rep, guidance, cfg_scale, record) as state:
        if refiner is not None:
            latents = pipe(list(prompts), denoising_end=refiner_start, output_type="latent", **kw).images
            rkw = {k: v for k, v in kw.items() if k not in ("original_size", "target_size", "crops_coords_top_left")}
            rkw["generator"] = [torch.Generator(device="cpu").manual_seed(int(s) + 1) for s in seeds]
            images = refiner(list(prompts), image=latents, denoising_start=refiner_start, output_type="pt", **rkw).images
        else:
            images = pipe(list(prompts), output_type="pt", **kw).images
    x = (images.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    if x.shape[1] == 3 and pipe.vae.config.in_channels == 1:
        x = x[:, :1]
    return x, state


def latents_to_native(images: torch.Tensor, native_size: tuple[int, int], resize: str) -> torch.Tensor:
    """Bring generated images back to the dataset's native resolution: the inverse of the
    encoding resize (``"pad"`` -> centre crop; otherwise a resize)."""
    from .datasets import resize_images

    h, w = images.shape[-2:]
    nh, nw = native_size
    if (h, w) == (nh, nw):
        return images
    if resize == "pad":
        top, left = (h - nh) // 2, (w - nw) // 2
        return images[..., top:top + nh, left:left + nw]
    return resize_images(images, (nh, nw), "squash" if resize == "squash" else "center_crop")


class StaleSetError(RuntimeError):
    """A set folder holds images made with other settings (or by another model)."""


def model_fingerprint(pipe) -> str:
    """A short hash of a pipeline's UNet (and text encoders): config, parameter names and
    shapes, and the first values of every parameter. Retrained or other weights give another
    fingerprint; hashing reads a few KB per tensor, so it is cheap even for SDXL."""
    from .vae import _config_dict

    h = hashlib.sha256()
    for name in ("unet", "text_encoder", "text_encoder_2"):
        module = getattr(pipe, name, None)
        if module is None:
            continue
        h.update(name.encode())
        h.update(json.dumps(_config_dict(module), sort_keys=True, default=str).encode())
        for pname, p in module.state_dict().items():
            h.update(f"{pname}{tuple(p.shape)}".encode())
            h.update(p.detach().flatten()[:256].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _hash_representatives(z_reps, ipc: int) -> str:
    h = hashlib.sha256()
    for z in z_reps:
        h.update(np.ascontiguousarray(np.asarray(z[:ipc], dtype=np.float32)).tobytes())
    return h.hexdigest()[:16]


def _check_or_record_settings(out_dir: Path, settings: dict, legacy: dict | None = None) -> None:
    """Resume only what these very settings made: ``out_dir/.settings.json`` is written before
    the first image; images found with other (or no) recorded settings are refused. ``legacy``:
    the values of keys a settings file written before they were recorded stands for."""
    path = out_dir / ".settings.json"
    has_images = out_dir.is_dir() and any(out_dir.rglob("*.png"))
    if path.is_file():
        old = {**(legacy or {}), **read_json(path)}
        diff = sorted(k for k in settings if old.get(k) != settings[k])
        if diff and has_images:
            raise StaleSetError(f"{out_dir} holds images made with other settings (differ in: {', '.join(diff)}); "
                                "delete the folder to generate it again, or choose another output folder")
    elif has_images:
        raise StaleSetError(f"{out_dir} holds images but no record of the settings they were made with; "
                            "delete the folder to generate it again, or choose another output folder")
    write_json(path, settings)


def _remove_damaged(out_dir: Path) -> None:
    """Delete the images of a finished set that no longer match its manifest's records (a line
    names each), so that :func:`generate_set` makes exactly those again."""
    try:
        bad = setfolder.damaged(out_dir)
    except setfolder.CorruptSetError as e:  # the manifest itself: written again at the end
        print(f"set {out_dir}: {e.problem}; the manifest is written again", flush=True)
        return
    for f, problem in bad.items():
        print(f"set {out_dir}: replacing {out_dir / f} ({problem}): generating it again", flush=True)
        (out_dir / f).unlink(missing_ok=True)


def generate_set(
    pipe,
    out_dir: str | Path,
    class_ids: Sequence[str],
    prompts: Sequence[str],
    ipc: int,
    z_reps: Sequence[np.ndarray | torch.Tensor] | None = None,
    guidance: GuidanceConfig | None = None,
    cfg_scale: float = 5.0,
    steps: int = 25,
    seed: int = 0,
    batch_size: int = 16,
    native_size: tuple[int, int] | None = None,
    resize: str = "pad",
    method: str = "coda_g",
    model_id: str = "",
    negative_prompt: str | None = None,
    refiner=None,
    refiner_start: float = 0.8,
    extra: dict | None = None,
    progress: bool = True,
    channels: int | None = None,
    processes: Any = None,
) -> Path:
    """Generate a distilled set as the set folder ``out_dir/<class>/<k>.png``
    (:mod:`coda_utils.setfolder`), in ``channels`` channels: default the pipeline's VAE input
    channels, the run's set channels (:func:`~coda_utils.setfolder.set_channels`).

    Image ``k`` of class ``c`` uses prompt ``prompts[c]``, representative ``z_reps[c][k]`` (if
    given) and seed :func:`sample_seed` ``(seed, c, k)``. Several classes and representatives
    share a forward pass: the images, in class-then-k order, are cut into fixed batches of
    ``batch_size``, so an image is always computed in the same batch, whether the set is made
    in one go, resumed, or shared between processes. Existing images are kept, so an
    interrupted run resumes batch by batch (a batch with any image missing is run again and
    only its missing images written), but only images made with the same settings (model fingerprint,
    parameters, prompts, representatives; recorded in ``.settings.json`` before the first
    image): a folder made otherwise raises :class:`StaleSetError`. Each file is written atomically. ``manifest.json`` (prompt,
    representative index, seed per image, parameters, model id, versions) is written last, after
    every image; while images are missing the folder has no manifest, so no later stage takes it
    for a finished set. A finished set whose images no longer match the manifest's records
    (size and SHA-256) gets exactly the damaged or missing images generated again, byte for byte,
    with a line naming each. The folder is locked while it is written: a second process generating
    into it is refused (:class:`~coda_utils.io.FolderBusyError`). ``steps`` beyond the
    scheduler's ``num_train_timesteps`` are refused.

    ``processes``: the process group of an ``accelerate launch``
    (:func:`coda_utils.parallel.processes`): each process makes every ``num_processes``-th
    unfinished batch and the first writes the manifest once all are there; the images are
    those one process makes (``python -m coda_utils.scale generate``).
    """
    from tqdm.auto import tqdm

    # 1. Check inputs
    guidance = guidance or GuidanceConfig()
    out_dir = Path(out_dir)
    if int(steps) < 1:
        raise ValueError(f"steps must be at least 1, got {steps!r} (parameter `steps`)")
    train_steps = getattr(pipe.scheduler.config, "num_train_timesteps", None)
    if train_steps is not None and int(steps) > int(train_steps):
        raise ValueError(f"steps = {steps!r}: the scheduler of this model was trained with {int(train_steps)} timesteps, "
                         f"more steps are not distinct timesteps (parameter `steps`, at most {int(train_steps)})")
    ipc = check_ipc(ipc)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
    vae_channels = setfolder.set_channels(pipe)
    channels = vae_channels if channels is None else check_channels(channels)
    jobs = [(c, k) for c in range(len(class_ids)) for k in range(ipc)]
    if z_reps is not None:
        for c, z in enumerate(z_reps):
            if len(z) < ipc:
                raise ValueError(f"class {class_ids[c]}: {len(z)} representatives for ipc={ipc}")
            if not torch.isfinite(torch.as_tensor(np.asarray(z[:ipc], dtype=np.float32))).all():
                raise ValueError(f"class {class_ids[c]}: representative latents contain NaN or infinite values")
    parameters = {"gamma": guidance.gamma, "guide_fraction": guidance.guide_fraction,
                  "variant": guidance.variant, "cfg_scale": cfg_scale, "steps": steps, "seed": seed,
                  "scheduler": type(pipe.scheduler).__name__, "negative_prompt": negative_prompt,
                  "refiner_start": refiner_start if refiner is not None else None,
                  "native_size": list(native_size) if native_size else None, "resize": resize}
    fingerprint = model_fingerprint(pipe)
    main = parallel.is_main(processes)
    batches = [jobs[i:i + batch_size] for i in range(0, len(jobs), batch_size)]  # fixed, whatever is done already
    # the first process holds the folder's lock (a second job is refused), the others their own
    with exclusive(out_dir, "folder" if main else f"folder.rank{parallel.rank(processes)}"):
        # 2. Resume only what these very settings made (recorded before the first image, by the
        #    first process; the others check against it)
        settings = {
            "classes": list(class_ids), "prompts": list(prompts), "parameters": parameters,
            "model": fingerprint, "refiner": model_fingerprint(refiner) if refiner is not None else None,
            "representatives": _hash_representatives(z_reps, ipc) if z_reps is not None and guidance.gamma > 0 else None,
            "channels": channels}
        legacy = {"channels": vae_channels}  # a set made before channels were recorded has its VAE's
        if main:
            _check_or_record_settings(out_dir, settings, legacy)
            _remove_damaged(out_dir)
        parallel.barrier(processes)
        if not main and read_json(out_dir / ".settings.json") != json.loads(json.dumps(settings)):
            raise StaleSetError(f"{out_dir}: the first process recorded other settings than this one has; every "
                                "process of a launch must get the same parameters")

        def missing(batch):
            return [(c, k) for c, k in batch if not setfolder.image_path(out_dir, class_ids[c], k).exists()]


        todo = [b for b in batches if missing(b)]
        if todo and main:  # complete or absent: no manifest while images are missing
            setfolder.unfinish(out_dir)
        parallel.barrier(processes)
        mine = parallel.share(todo, processes)
        # 3. Denoising, one fixed batch of (class, k) at a time, each image written atomically as it comes
        t0 = time.perf_counter()
        with tqdm(total=len(jobs), initial=len(jobs) - sum(len(missing(b)) for b in todo), desc=method,
                  disable=not (progress and main), unit="img") as bar:
            for chunk in mine:
                z = None
                if z_reps is not None and guidance.gamma > 0:
                    z = torch.stack([torch.as_tensor(np.asarray(z_reps[c][k], dtype=np.float32)) for c, k in chunk])
                imgs, _ = generate(pipe, [prompts[c] for c, _ in chunk], [sample_seed(seed, c, k) for c, k in chunk], z,
                                   guidance, cfg_scale, steps, negative_prompt, refiner=refiner, refiner_start=refiner_start)
                if native_size is not None:
                    imgs = latents_to_native(imgs, native_size, resize)
                for (c, k), img in zip(chunk, imgs):
                    path = setfolder.image_path(out_dir, class_ids[c], k)
                    if not path.exists():
                        setfolder.write_image(path, img, channels)
                        bar.update(1)
        parallel.barrier(processes)
        if not main:
            return out_dir
        if missing(jobs):
            raise RuntimeError(f"{out_dir}: {len(missing(jobs))} image(s) missing after every process finished")
        # 4. The manifest last: its presence marks a complete set
        manifest = {
            "method": method,
            "ipc": int(ipc),
            "classes": list(class_ids),
            "model_id": model_id,
            "model_fingerprint": fingerprint,
            "parameters": parameters,
            "files": [f"{class_ids[c]}/{k:04d}.png" for c, k in jobs],
            "images": [{"class": class_ids[c], "k": k, "prompt": prompts[c], "representative": k if z_reps is not None else None,
                        "seed": sample_seed(seed, c, k)} for c, k in jobs],
            "generation_seconds_this_call": time.perf_counter() - t0,
            **(extra or {}),
        }
        setfolder.write_manifest(out_dir, manifest, channels)
        return out_dir


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------
def save_trajectories(path: str | Path, states: dict[str, GuidanceState], z_rep: torch.Tensor,
                      meta: dict | None = None) -> Path:
    """Save recorded runs (``generate(..., record=True)``) and their representatives as one
    ``.npz``, so the trajectory figures can be redrawn without sampling again."""
    arrays = {"z_rep": torch.as_tensor(z_rep).float().numpy(), "names": np.asarray(list(states)),
              "meta": np.asarray(json.dumps(meta or {}))}
    for k, (name, st) in enumerate(states.items()):
        arrays[f"steps_{k}"] = np.asarray(st.steps)
        arrays[f"guided_{k}"] = np.asarray(st.guided)
        arrays[f"x0_before_{k}"] = torch.stack(st.x0_before).numpy()
        arrays[f"x0_after_{k}"] = torch.stack(st.x0_after).numpy()
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return path


def load_trajectories(path: str | Path) -> tuple[dict[str, GuidanceState], torch.Tensor, dict]:
    """Read what :func:`save_trajectories` wrote: ``(states, z_rep, meta)``."""
    d = np.load(path)
    states = {}
    for k, name in enumerate(d["names"].tolist()):
        states[name] = GuidanceState(record=True, steps=d[f"steps_{k}"].tolist(), guided=d[f"guided_{k}"].tolist(),
                                     x0_before=list(torch.from_numpy(d[f"x0_before_{k}"])),
                                     x0_after=list(torch.from_numpy(d[f"x0_after_{k}"])))
    return states, torch.from_numpy(d["z_rep"]), json.loads(str(d["meta"]))
