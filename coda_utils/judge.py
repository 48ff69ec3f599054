"""Measuring the prior: a judge classifier, prompt fidelity and a Frechet distance.

The judge is a ConvNet-3 (64 channels wide) trained on web-transformed ``pool`` images at 32x32 (the prior's own
training distribution, never ``target`` or ``test``). It answers two questions:

- *prompt fidelity*: which share of unguided samples for the prompt "X" does the judge call X?
- *distribution distance*: the Frechet distance between two image sets in the judge's
  penultimate features (the same formula as FID, with this judge in place of Inception).

A third question needs no judge: *attribute fidelity* (:func:`attribute_fidelity`), whether a
sample's background follows the prompt's "on a black / white background" (the words the prior's
captions carry, :data:`coda_utils.prior_model.BACKGROUND_SUFFIX`), read off the image by a rule
(:func:`dark_background`): the text-prompt baseline (notebook 03) relies on it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .datasets import LabeledImages
from .images import resize_images
from .io import atomic_write, read_json, write_json

__all__ = ["Judge", "train_judge", "frechet_distance", "distances_to", "prompt_fidelity", "generate_unguided", "SHIPPED_JUDGE",
           "to_canvas", "judge_features", "dark_background", "ATTRIBUTE_PROMPTS", "attribute_fidelity", "background_leak",
           "noise_decides_background", "set_backgrounds"]

SHIPPED_JUDGE = Path(__file__).resolve().parent.parent / "data" / "models" / "fashion-judge"
CANVAS = 32


def to_canvas(images: torch.Tensor) -> torch.Tensor:
    """``uint8`` images (any size up to 32, 1 channel) -> ``uint8`` ``N x 1 x 32 x 32`` (zero-padded)."""
    if images.shape[1] == 3:
        images = images.float().mean(1, keepdim=True).round().to(torch.uint8)
    return resize_images(images, (CANVAS, CANVAS), "pad" if images.shape[-1] <= CANVAS else "squash")


@dataclass
class Judge:
    """A trained ConvNet-3 over 1 x 32 x 32 ``uint8`` images (any image up to 32x32 is zero-padded
    to the canvas; colour images are averaged to gray)."""

    model: torch.nn.Module
    width: int = 64
    num_classes: int = 10

    @staticmethod
    def _prep(images: torch.Tensor) -> torch.Tensor:
        return (to_canvas(images).float() / 255.0 - 0.5) / 0.5

    @torch.no_grad()
    def logits_and_features(self, images: torch.Tensor, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """Logits and the penultimate features: the last convolutional feature map averaged over
        space (``width`` numbers), a compact space in which Frechet distances are
        stable with a thousand samples."""
        self.model.eval()
        logits, feats = [], []
        for i in range(0, len(images), batch_size):
            fmap = self.model.features(self._prep(images[i:i + batch_size].cpu()))
            logits.append(self.model.classifier(fmap.flatten(1)))
            feats.append(fmap.mean(dim=(2, 3)))
        return torch.cat(logits).numpy(), torch.cat(feats).numpy()

    def predict(self, images: torch.Tensor) -> np.ndarray:
        return self.logits_and_features(images)[0].argmax(1)

    def features(self, images: torch.Tensor) -> np.ndarray:
        return self.logits_and_features(images)[1]

    def save(self, path: str | Path, report: dict | None = None) -> Path:
        from safetensors.torch import save

        path = Path(path)
        with atomic_write(path / "model.safetensors", "wb") as fh:
            fh.write(save({k: v.contiguous() for k, v in self.model.state_dict().items()}))
        write_json(path / "config.json", {"arch": "convnet3", "width": self.width, "num_classes": self.num_classes,
                                          "in_channels": 1, "im_size": CANVAS, **(report or {})})
        return path

    @classmethod
    def load(cls, path: str | Path = SHIPPED_JUDGE) -> "Judge":
        from safetensors.torch import load_file

        from .architectures import ConvNet
        from .vae import resolve_model_path

        path = resolve_model_path(path)  # relative paths also from the repository root (nbval)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no judge at {path} (config.json missing); train one with coda_utils.judge.train_judge")
        cfg = read_json(path / "config.json")
        model = ConvNet(cfg["in_channels"], cfg["num_classes"], cfg["im_size"], width=cfg["width"])
        model.load_state_dict(load_file(str(path / "model.safetensors")))
        model.eval()
        return cls(model=model, width=cfg["width"], num_classes=cfg["num_classes"])


def train_judge(pool: LabeledImages, steps: int = 3000, batch_size: int = 128, lr: float = 0.01, seed: int = 0,
                width: int = 64, holdout: int = 2000, progress: bool = True) -> tuple[Judge, dict]:
    """Train the judge (ConvNet-3 of ``width`` channels) on web-transformed ``pool`` images; report
    its accuracy on web-transformed held-out pool images (the last ``holdout``, never trained on)."""
    from tqdm.auto import tqdm

    from .architectures import ConvNet
    from .prior_model import web_transform

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    px = pool.load()
    labels = torch.as_tensor(pool.labels)
    train_px, train_y = px[:-holdout], labels[:-holdout]
    model = ConvNet(1, pool.num_classes, CANVAS, width=width)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    t0 = time.perf_counter()
    model.train()
    for _ in tqdm(range(steps), desc="judge", disable=not progress, unit="step"):
        idx = torch.randint(len(train_px), (batch_size,), generator=gen)
        x, _ = web_transform(train_px[idx], gen)
        loss = F.cross_entropy(model(x), train_y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step(); sched.step()
    seconds = time.perf_counter() - t0
    judge = Judge(model=model.eval(), width=width, num_classes=pool.num_classes)
    hx, _ = web_transform(px[-holdout:], torch.Generator().manual_seed(seed + 1))
    held = ((hx + 1) / 2 * 255).round().to(torch.uint8)
    acc = float((judge.predict(held) == pool.labels[-holdout:]).mean())
    return judge, {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "train_seconds": seconds,
                   "heldout_web_pool_accuracy": acc, "heldout_images": holdout}


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (the FID formula)."""
    from scipy import linalg

    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("frechet_distance needs at least two samples in each set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.isfinite(covmean).all():
        eps = 1e-6 * np.eye(len(cov_a))
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


def distances_to(judge: Judge, sets: dict[str, torch.Tensor], reference: torch.Tensor) -> dict[str, float]:
    """Frechet distance of each image set to ``reference`` (e.g. ``target`` images) in the judge's
    features. With fewer images than feature dimensions (64) the estimate is biased upward:
    compare sets of the same size only."""
    ref = judge.features(reference)
    return {name: frechet_distance(judge.features(images), ref) for name, images in sets.items()}


@torch.no_grad()
def generate_unguided(pipe, prompts: Sequence[str], seed: int = 0, batch_size: int = 100, steps: int = 25,
                      guidance_scale: float = 5.0, progress: bool = True) -> torch.Tensor:
    """Plain text-to-image samples from a diffusers pipeline, one per prompt, as ``uint8``
    ``N x C x H x W`` on the CPU (wherever ``pipe`` runs). Sample ``i`` uses seed ``seed + i``
    whatever the batch size."""
    from tqdm.auto import tqdm

    out = []
    for i in tqdm(range(0, len(prompts), batch_size), desc="sampling", disable=not progress, unit="batch"):
        chunk = list(prompts[i:i + batch_size])
        gens = [torch.Generator().manual_seed(seed + i + j) for j in range(len(chunk))]
        img = pipe(chunk, num_inference_steps=steps, guidance_scale=guidance_scale, generator=gens,
                   output_type="pt").images
        out.append((img.clamp(0, 1) * 255).round().to(torch.uint8).cpu())
    x = torch.cat(out)
    return x[:, :1] if x.shape[1] == 3 and bool((x[:, 0] == x[:, 1]).all()) else x


def prompt_fidelity(judge: Judge, images: torch.Tensor, labels: Sequence[int]) -> dict:
    """Share of images the judge assigns to the class they were prompted with, overall and per class."""
    labels = np.asarray(labels)
    pred = judge.predict(images)
    per_class = {int(c): float((pred[labels == c] == c).mean()) for c in np.unique(labels)}
    return {"fidelity": float((pred == labels).mean()), "per_class": per_class, "n": int(len(labels))}


def judge_features(data: LabeledImages, judge: Judge | None = None, batch_size: int = 1000):
    """The judge's penultimate features of every image of ``data``, as a feature space discovery
    runs in (:class:`~coda_utils.sweeps.ArrayFeatures`; the ``discovery_judge`` point of notebook
    05's ``selection`` sweep): a classifier's features, trained on ``pool``, never on ``data``."""
    from .sweeps import ArrayFeatures

    judge = judge or Judge.load()
    feats = [judge.features(data.load(np.arange(i, min(i + batch_size, len(data)))))
             for i in range(0, len(data), batch_size)]
    return ArrayFeatures(data, np.concatenate(feats))


def dark_background(images: torch.Tensor, border: int = 3, threshold: float = 0.5) -> np.ndarray:
    """Whether each ``uint8`` image (``N x C x H x W``) has a dark background: the mean of its
    ``border``-pixel frame (every channel) is below ``threshold`` of white. Every Fashion-MNIST
    image has a black frame; the prior's inverted "web" images a white one."""
    x = torch.as_tensor(images).float() / 255.0
    frame = torch.ones(x.shape[-2:], dtype=torch.bool)
    frame[border:-border, border:-border] = False
    return (x[..., frame].mean(dim=(1, 2)) < threshold).numpy()


#: the prompts of :func:`attribute_fidelity`: name -> (template, the background it asks for:
#: ``True`` dark, ``False`` light, ``None`` says nothing); the first is notebook 03's
#: ``prompt_template`` default, the text-prompt baseline
ATTRIBUTE_PROMPTS = {"black": ("a {} on a black background", True), "white": ("a {} on a white background", False),
                     "plain": ("a {}", None)}


def _dark_per_sample(pipe, template: str, class_names: Sequence[str], labels: np.ndarray, seed: int, steps: int,
                     cfg: float, progress: bool = False) -> np.ndarray:
    """Whether each sample of ``template`` (one per label, its class name in the ``{}``; sample
    ``i`` with seed ``seed + i``) has a dark background (:func:`dark_background`)."""
    texts = [template.format(class_names[c]) for c in labels]  # as notebook 03 prompts (target.prompts)
    return dark_background(generate_unguided(pipe, texts, seed=seed, steps=steps, guidance_scale=float(cfg),
                                             progress=progress))


def attribute_fidelity(pipe, class_names: Sequence[str], prompts: dict | None = None,
                       cfg_scales: Sequence[float] = (1.0, 5.0, 10.0), per_class: int = 10, seed: int = 0,
                       steps: int = 25, progress: bool = False):
    """Does the prior follow the background words of its prompt? For each prompt of ``prompts``
    (:data:`ATTRIBUTE_PROMPTS`) and each classifier-free guidance scale, ``per_class`` samples of
    every class (:func:`generate_unguided`, sample ``i`` with seed ``seed + i``: every prompt sees
    the same noise), and the share with a dark background (:func:`dark_background`).

    Returns a ``pandas.DataFrame``, one row per (prompt, cfg): ``prompt`` (its name),
    ``template``, ``asks`` (``dark`` / ``light`` / ``-``), ``cfg``, ``dark_share``, ``obeys`` (the
    share whose background is the one asked for; ``NaN`` for a prompt that asks none), ``n``, and
    ``dark_by_class`` (the dark share of each class, in ``class_names``' order)."""
    import pandas as pd

    prompts = ATTRIBUTE_PROMPTS if prompts is None else prompts
    labels = np.repeat(np.arange(len(class_names)), per_class)
    rows = []
    for name, (template, dark) in prompts.items():
        for cfg in cfg_scales:
            d = _dark_per_sample(pipe, template, class_names, labels, seed, steps, cfg, progress)
            rows.append({"prompt": name, "template": template, "asks": {True: "dark", False: "light", None: "-"}[dark],
                         "cfg": float(cfg), "dark_share": float(d.mean()),
                         "obeys": float("nan") if dark is None else float((d == dark).mean()), "n": int(len(d)),
                         "dark_by_class": [round(float(d[labels == c].mean()), 3) for c in range(len(class_names))]})
    return pd.DataFrame(rows)


def _cv_accuracy(features: np.ndarray, target: np.ndarray, seed: int = 0) -> float:
    """5-fold cross-validated accuracy of a logistic regression from ``features`` to ``target``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(cross_val_score(LogisticRegression(), features, target, cv=folds).mean())


@torch.no_grad()
def background_leak(pipe, pool: LabeledImages, n: int = 2000, timesteps: Sequence[int] = (999, 900, 800),
                    seed: int = 0, cfg=None, noise_offset: float = 0.0) -> dict:
    """How much of an image's background its noisy latent still tells at the first timesteps of
    the schedule, where the sampler decides the background: ``n`` web-transformed ``pool`` images
    (:func:`coda_utils.prior_model.web_transform`, half of them polarity-inverted, as the prior
    trained), encoded and noised to each timestep of ``timesteps`` (the training noise of the
    prior's DDPM schedule), and the 5-fold cross-validated accuracy with which a logistic
    regression reads the polarity off the noisy latent's per-channel means (chance: the share of
    the larger class). A schedule whose first timesteps leave the background readable trains a
    UNet that need not read it from the text. ``noise_offset``: the training noise's offset
    (:func:`coda_utils.prior_build.training_noise`; the shipped prior's fine-tuning trained with
    one, so that the channel means of its noisy latents tell the background no more).

    Returns ``{"n", "chance", "accuracy": {t: acc}, "signal": {t: sqrt(abar_t / (1 - abar_t))}}``
    (``signal``: the weight of the clean latent in the epsilon target at ``t``, the noisy latent's
    signal over noise)."""
    from .prior_build import training_noise
    from .prior_model import web_transform
    from .vae import encode_images

    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    x, inverted = web_transform(pool.load(np.sort(rng.permutation(len(pool))[:n])), g, cfg)
    z = encode_images(pipe, x, batch_size=500, preprocessed=True)
    acp = pipe.scheduler.alphas_cumprod
    y = inverted.numpy()
    out, signal = {}, {}
    for t in timesteps:
        a = acp[int(t)].float()
        signal[int(t)] = float((a / (1 - a)).sqrt())
        zt = a.sqrt() * z + (1 - a).sqrt() * training_noise(z.shape, g, noise_offset)
        out[int(t)] = _cv_accuracy(zt.mean(dim=(2, 3)).numpy(), y, seed)
    return {"n": int(n), "chance": float(max(y.mean(), 1 - y.mean())), "accuracy": out, "signal": signal,
            "noise_offset": float(noise_offset)}


@torch.no_grad()
def noise_decides_background(pipe, class_names: Sequence[str], per_class: int = 20, seed: int = 0, steps: int = 25,
                             guidance_scale: float = 5.0, prompts: tuple[str, str] | None = None) -> dict:
    """Does the sampler's initial noise, not the prompt, decide a sample's background? Every
    class sampled ``per_class`` times under the two opposite prompts of :data:`ATTRIBUTE_PROMPTS`
    ("black", "white"), sample ``i`` from the same initial noise under both (seed ``seed + i``,
    :func:`generate_unguided`). Returns the share of samples whose background is the same under
    both prompts (1: the words change nothing), each prompt's dark share, and the 5-fold
    cross-validated accuracy with which a logistic regression reads the background of the
    black-prompt sample off its initial noise's per-channel means (``chance``: the share of the
    larger class)."""
    black, white = prompts or (ATTRIBUTE_PROMPTS["black"][0], ATTRIBUTE_PROMPTS["white"][0])
    labels = np.repeat(np.arange(len(class_names)), per_class)
    dark = {name: _dark_per_sample(pipe, template, class_names, labels, seed, steps, guidance_scale)
            for name, template in (("black", black), ("white", white))}
    shape = (pipe.unet.config.in_channels, pipe.unet.config.sample_size, pipe.unet.config.sample_size)
    # the initial latents the pipeline drew: randn of each sample's own generator (diffusers' randn_tensor)
    noise = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(seed + i)) for i in range(len(labels))])
    y = dark["black"]
    two = 0 < y.sum() < len(y) and min(y.sum(), len(y) - y.sum()) >= 5
    return {"n": int(len(labels)), "cfg": float(guidance_scale), "same_background": float((dark["black"] == dark["white"]).mean()),
            "dark_share": {k: float(v.mean()) for k, v in dark.items()},
            "chance": float(max(y.mean(), 1 - y.mean())),
            "from_noise_means": _cv_accuracy(noise.mean(dim=(2, 3)).numpy(), y, seed) if two else float("nan")}


def set_backgrounds(run_dir: str | Path, ipc: int, methods: Sequence[str] = ("unguided", "text_prompt", "coda_g"),
                    reference: str = "unguided") -> "pd.DataFrame":
    """The backgrounds of a run's generated sets (the study's text-prompt baseline as it was made,
    beside the prior's own samples): one row per method and selection seed with the set's size,
    its share of dark backgrounds (:func:`dark_background`) and the mean absolute difference, in
    grey levels, from the same seed's ``reference`` set (the same noise in the same order, so
    image ``i`` of one is image ``i`` of the other). Seeds whose sets are missing are skipped."""
    import pandas as pd

    from .rundir import RunDir
    from .setfolder import read_set

    run = RunDir(run_dir)
    rows = []
    for method in methods:
        for d in run.set_dirs(method, ipc):
            seed = int(d.name.rsplit("_seed", 1)[1]) if "_seed" in d.name else None
            ref_dir = run.set_dir(reference, ipc, seed)
            if not ref_dir.is_dir():
                continue
            x, ref = read_set(d).images, read_set(ref_dir).images
            if x.shape != ref.shape:
                raise ValueError(f"{d} and {ref_dir} differ in shape ({tuple(x.shape)}, {tuple(ref.shape)}): "
                                 "not sets of the same noise")
            rows.append({"method": method, "ipc": int(ipc), "selection_seed": seed, "n": len(x),
                         "dark_share": float(dark_background(x).mean()),
                         "diff_to_" + reference: float((x.float() - ref.float()).abs().mean())})
    return pd.DataFrame(rows)
