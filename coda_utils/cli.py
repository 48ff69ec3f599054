"""The ``coda`` command: CoDA on your own images, without notebooks.

``coda distill`` chains the method's three stages on an ImageFolder tree (``DIR/<class>/<image>``)
and writes the run folder the notebooks write (:class:`coda_utils.rundir.RunDir`): the latent
cache, each seed's discovery, and the set folders (:mod:`coda_utils.setfolder`: one ImageFolder
and ``manifest.json`` per set) of R (real images, notebook 02) and G (generated, notebook 03);
``coda evaluate`` trains fresh networks on one set folder and tests them on a test split
(notebook 04). ``coda encode``, ``coda discover`` and ``coda generate`` run one stage each::

    coda distill --data-root my_images/train --ipc 10 --out runs/mine --seeds 0 1 2
    coda evaluate --set runs/mine/sets/coda_g_ipc10_seed0 --test-root my_images/test

Every stage runs the notebooks' code (:mod:`coda_utils.scale`: ``encode``, ``discover``,
``generate``, ``evaluate``) with the notebooks' parameters, checked by the notebooks' own checks
(:mod:`coda_utils.params`) before any work starts; the settings a stage's notebook keeps among
its advanced settings (``python -m coda_utils.params``) are set with ``-p NAME VALUE``. A bad
input stops the command with one line naming the option or file and what to do (exit status 2).
Each stage resumes what it finds: a finished latent cache, discovery or set made with the same
settings is kept, an interrupted one continued, so running the same command again finishes the
work or does nothing. Progress bars go to stderr, one line per finished stage to stdout.

No notebook tooling is needed (papermill, Jupyter: ``pip install coda-utils[notebooks]``).
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

from . import __version__, params
from .rundir import ALL_REAL_METHODS, GENERATED_METHODS, GUIDED_BY, SELECTION_GENERATION_METHODS

__all__ = ["main", "build_parser", "stage_parameters", "PRIOR", "REAL", "GENERATED", "OPTIONS"]

#: the shipped prior (found relative to the repository root from any working directory)
PRIOR = "data/models/fashion-prior"
#: the selections of real images stage 2 exports, and the generated sets stage 3 makes (notebook 03's
#: ``methods``): :data:`coda_utils.rundir.ALL_REAL_METHODS`, :data:`coda_utils.rundir.GENERATED_METHODS`
REAL = ALL_REAL_METHODS
GENERATED = GENERATED_METHODS
#: each command's stages and their notebooks
NOTEBOOKS = {"encode": "01_encode", "discover": "02_discover", "generate": "03_generate", "evaluate": "04_evaluate"}
CHAINS = {"distill": ("encode", "discover", "generate"), "encode": ("encode",), "discover": ("discover",),
          "generate": ("generate",), "evaluate": ("evaluate",)}
#: notebook parameter -> the option that sets it (what an error message names)
OPTIONS = {"dataset": "--dataset", "data_root": "--data-root", "model": "--model", "run_dir": "--out", "ipc": "--ipc",
           "selection_seeds": "--seeds", "per_class_limit": "--per-class-limit", "class_limit": "--class-limit",
           "rebuild": "--rebuild", "device": "--device", "progress": "--progress", "n_neighbors": "--n-neighbors",
           "min_cluster_size": "--min-cluster-size", "gamma": "--gamma", "steps": "--steps", "methods": "--methods",
           "test_root": "--test-root", "distilled": "--set", "epochs": "--epochs", "protocol": "--protocol",
           "test_limit": "--test-limit", "repeats": "--networks", "arch": "--arch", "image_size": "--image-size",
           "precision": "--precision"}


class UsageError(Exception):
    """A bad input: the command stops with this one line (exit status 2)."""


# --------------------------------------------------------------------------------------
# Parameters: the notebooks' names, checked by the notebooks' checks
# --------------------------------------------------------------------------------------
def _value(text: str) -> Any:
    """A ``-p`` value as papermill reads one: None, True / False, a number, a YAML list, or the text."""
    import yaml

    if text in ("None", "none", "null"):
        return None
    if text in ("True", "False"):
        return text == "True"
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (int, float, list, dict)) and not isinstance(value, bool) else text


def _settings(args, command: str) -> dict[str, Any]:
    """The ``-p NAME VALUE`` settings: each must be a parameter of one of the command's stages
    that no option sets."""
    names = set().union(*(params.SPECS[NOTEBOOKS[s]] for s in CHAINS[command]))
    out = {}
    for name, text in args.settings or []:
        if command == "evaluate" and name in ("methods", "distilled", "ipc", "selection_seeds"):
            raise UsageError(f"-p {name}: `coda evaluate` takes it from the manifest of --set")
        if name in OPTIONS and name in names:
            raise UsageError(f"-p {name}: set it with {OPTIONS[name]}")
        if name not in names:
            raise UsageError(f"-p {name}: no stage of `coda {command}` has a setting {name}; its settings: "
                             f"{', '.join(sorted(names - set(OPTIONS)))} (python -m coda_utils.params says what each does)")
        out[name] = _value(text)
    return out


def stage_parameters(stage: str, values: dict[str, Any], settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """A stage's notebook parameters: ``values`` (what the options say), then the ``-p`` settings
    of that notebook, then its other advanced settings at their defaults, checked exactly as the
    notebook checks them (``params.check_encode(globals())``, ...).

    Raises:
        ParameterError: the first bad value, naming the parameter.
    """
    nb = NOTEBOOKS[stage]
    p = {**values, **{k: v for k, v in (settings or {}).items() if k in params.SPECS[nb]}}
    {"encode": params.check_encode, "discover": params.check_discover, "generate": params.check_generate,
     "evaluate": params.check_evaluate}[stage](p)
    return p


def _data(args) -> dict[str, Any]:
    return {"dataset": args.dataset, "data_root": None if args.data_root is None else str(args.data_root),
            "per_class_limit": args.per_class_limit, "class_limit": args.class_limit}


def _encode_values(args) -> dict[str, Any]:
    return {**_data(args), "model": args.model, "rebuild": args.rebuild, "device": args.device, "run_dir": str(args.out),
            "progress": args.progress}


def _discover_values(args) -> dict[str, Any]:
    return {**_data(args), "model": args.model, "ipc": args.ipc, "selection_seeds": list(args.seeds),
            "n_neighbors": args.n_neighbors, "min_cluster_size": args.min_cluster_size, "plot_class": 0,
            "run_dir": str(args.out), "progress": args.progress}


def _generate_values(args, methods) -> dict[str, Any]:
    return {**_data(args), "model": args.model, "ipc": args.ipc, "gamma": args.gamma, "steps": args.steps,
            "selection_seeds": list(args.seeds), "methods": list(methods), "run_dir": str(args.out), "device": args.device,
            "judge_dir": None, "progress": args.progress}


# --------------------------------------------------------------------------------------
# The stages
# --------------------------------------------------------------------------------------
def _took(t0: float) -> str:
    s = time.perf_counter() - t0
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def _say(line: str) -> None:
    print(line, flush=True)


def _check_ipc(ipc: int, counts, names, what: str) -> None:
    """The one IPC check (:func:`coda_utils.datasets.check_ipc`), before any work starts."""
    from .datasets import check_ipc

    try:
        check_ipc(ipc, counts, names, what)
    except ValueError as e:
        raise UsageError(f"--ipc {ipc}: {e}") from None


def _check_ipc_on_data(p: dict) -> None:
    """``ipc`` against the classes of the data (headers only: cheap), before encoding."""
    from . import datasets, encoding

    key = str(p["dataset"]).lower()
    if key in ("folder", "imagefolder", *datasets.IMAGENET_SUBSETS):
        data = datasets.load_image_folder(p["data_root"], subset=None if key in ("folder", "imagefolder") else key,
                                          verify=False)
    else:
        data = datasets.load_dataset(p["dataset"], p["split"] or "target", p["data_root"])
    data = encoding.limit_dataset(data, p["class_limit"], p["per_class_limit"])
    _check_ipc(p["ipc"], data.counts(), data.class_names, str(p["data_root"] or p["dataset"]))


def _cache(run):
    from . import encoding

    if not (run.latents / "cache.json").is_file():
        raise UsageError(f"--out {run.root}: no latent cache in {run.latents}; run `coda encode` (or `coda distill`) with "
                         "the same --out and data first")
    return encoding.LatentCache.load(run.latents)


def _done_classes(run) -> list[int]:
    from .io import read_json

    try:
        return list(read_json(run.latents / "cache.json").get("done", []))
    except Exception:  # noqa: BLE001 - no cache or a damaged record: encode decides what to do
        return []


def run_encode(p: dict) -> Any:
    """Stage 1 (notebook 01's encoding): the run's latent cache, resumed class by class."""
    from . import rundir, scale

    run = rundir.RunDir(p["run_dir"])
    before = _done_classes(run)
    t0 = time.perf_counter()
    run.record_versions("01_encode")
    cache = scale.encode(p)
    new = cache.num_classes - len(set(before) & set(range(cache.num_classes)))
    _say(f"encode: {cache.summary()} -> {run.latents}; "
         + (f"{new} of {cache.num_classes} classes encoded now" if new else "found complete, nothing to encode")
         + f" ({_took(t0)})")
    return cache


def run_discover(p: dict, methods=("coda_r",)) -> Any:
    """Stage 2 (notebook 02's discovery and selections, :func:`coda_utils.scale.discover`)."""
    from . import rundir, scale

    run = rundir.RunDir(p["run_dir"])
    cache = _cache(run)
    _check_ipc(p["ipc"], cache.counts, cache.class_names, f"the latent cache {run.latents}")
    t0 = time.perf_counter()
    run.record_versions("02_discover")
    out = scale.discover(p, methods, log=lambda line: _say(f"  {line}"))
    seeds = list(out.discoveries)
    made = [s for s in seeds if s not in out.found]
    _say(f"discover: ipc {p['ipc']}, seeds {' '.join(map(str, seeds))}: "
         + (f"{len(made)} discover{'y' if len(made) == 1 else 'ies'} made" if made else "every discovery found")
         + (f", {len(out.found)} found" if made and out.found else "")
         + f"; {len(out.sets)} set(s) in {run.root / 'sets'} ({_took(t0)})")
    return out


def run_generate(p: dict) -> dict:
    """Stage 3 (notebook 03's generated sets, :func:`coda_utils.scale.generate`)."""
    from . import rundir, scale, setfolder

    run = rundir.RunDir(p["run_dir"])
    _cache(run)  # a latent cache of stage 1 is there (else a one-line error naming --out)
    seeds = rundir.selection_seeds(p["selection_seeds"])
    if "coda_g" in p["methods"]:
        missing = [s for s in seeds if not run.discovery(p["ipc"], s).is_file()]
        if missing:
            raise UsageError(f"--methods coda_g: no discovery for --ipc {p['ipc']} and seed(s) {' '.join(map(str, missing))} "
                             f"in {run.root / 'discovery'}; run `coda discover` with the same --out, --ipc and --seeds "
                             "first (or `coda distill`)")
    for m in [m for m in p["methods"] if m in SELECTION_GENERATION_METHODS]:
        follows = GUIDED_BY[m]
        missing = [s for s in seeds if not setfolder.is_finished(run.set_dir(follows, p["ipc"], s))]
        if missing:
            raise UsageError(f"--methods {m}: no {follows} set for --ipc {p['ipc']} and seed(s) "
                             f"{' '.join(map(str, missing))} in {run.root / 'sets'}; run `coda discover --methods {follows}` "
                             "with the same --out, --ipc and --seeds first (or `coda distill`)")
    dirs = {(m, s): run.set_dir(m, p["ipc"], s, p["set_suffix"]) for m in p["methods"] for s in seeds}
    kept = {k for k, d in dirs.items() if setfolder.is_finished(d)}
    t0 = time.perf_counter()
    run.record_versions("03_generate")
    out = scale.generate(p)
    for (m, s), d in out.items():
        _say(f"  {m} (seed {s}): {d.relative_to(run.root)}" + (" (kept)" if (m, s) in kept else ""))
    made = len(out) - len(kept & set(out))
    _say(f"generate: {', '.join(p['methods'])}, ipc {p['ipc']}, seeds {' '.join(map(str, seeds))}: "
         + (f"{made} set(s) made" if made else "every set found") + (f", {len(kept)} kept" if made and kept else "")
         + f" in {run.root / 'sets'} ({_took(t0)})")
    return out


def run_evaluate(p: dict, set_dir: Path) -> Any:
    """Stage 4 (notebook 04 on one set folder, :func:`coda_utils.scale.evaluate`): trains
    ``repeats`` networks (finished ones are read from the results file), one line each."""
    from . import rundir, scale

    run = rundir.RunDir(p["run_dir"])
    t0 = time.perf_counter()
    run.record_versions("04_evaluate")
    rows = scale.evaluate(p)
    path = run.results(params.method_list(p["methods"])[0], p["ipc"], p["protocol"])
    acc = rows.acc.astype(float)
    spread = f" +- {acc.std():.2f}" if len(acc) > 1 else ""
    _say(f"evaluate: {set_dir}: acc {acc.mean():.2f}{spread} % over {len(acc)} network(s) ({p['arch']}, "
         f"{rows.protocol.iloc[0]}, {int(rows.epochs.iloc[0])} epochs, {rows.precision.iloc[0]}); rows in {path} "
         f"({_took(t0)})")
    return rows


# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------
def cmd_encode(args) -> None:
    run_encode(stage_parameters("encode", _encode_values(args), _settings(args, "encode")))


def cmd_discover(args) -> None:
    run_discover(stage_parameters("discover", _discover_values(args), _settings(args, "discover")), args.methods)


def cmd_generate(args) -> None:
    run_generate(stage_parameters("generate", _generate_values(args, args.methods), _settings(args, "generate")))


def cmd_distill(args) -> None:
    settings = _settings(args, "distill")
    generated = [m for m in args.methods if m in GENERATED]
    # the selections asked for, and those a guided method follows (coda_g_kmeans: the k-means set)
    real = [m for m in REAL if m in args.methods or m in {GUIDED_BY[g] for g in generated if g in SELECTION_GENERATION_METHODS}]
    # every stage's parameters checked before any work starts
    p1 = stage_parameters("encode", _encode_values(args), settings)
    p2 = stage_parameters("discover", _discover_values(args), settings)
    p3 = stage_parameters("generate", _generate_values(args, generated or ["coda_g"]), settings)
    _check_ipc_on_data(p2)
    t0 = time.perf_counter()
    run_encode(p1)
    out = run_discover(p2, real)
    sets = [d for d in out.sets.values()]
    if generated:
        sets += list(run_generate(p3).values())
    _say(f"distill: done in {_took(t0)}; {len(sets)} set(s) in {Path(args.out) / 'sets'}: "
         + ", ".join(d.name for d in sets))


def _evaluate_values(args) -> tuple[dict[str, Any], Path]:
    """Notebook 04's parameters for one set folder (its manifest gives the method, ipc and
    selection seed), and the set folder."""
    from . import setfolder

    set_dir = Path(args.set)
    if not set_dir.is_dir():
        raise UsageError(f"--set {set_dir}: no such directory; pass a set folder (e.g. OUT/sets/coda_g_ipc10_seed0 of "
                         "`coda distill --out OUT`)")
    if not setfolder.is_finished(set_dir):
        raise UsageError(f"--set {set_dir}: not a finished set folder (no {setfolder.MANIFEST}, or images that do not "
                         "match it); make it with `coda distill` (or `coda discover` / `coda generate`) again")
    manifest = setfolder.read_manifest(set_dir)
    if not manifest.get("ipc"):
        raise UsageError(f"--set {set_dir}: its {setfolder.MANIFEST} names no ipc; pass a set made by coda")
    out = args.out
    if out is None:
        if set_dir.resolve().parent.name != "sets":
            raise UsageError(f"--out: {set_dir} is not in a run folder's sets/; pass --out DIR for the results")
        out = set_dir.resolve().parent.parent
    if args.test_root is None and str(args.dataset).lower() not in ("fashion-mnist", "fashion_mnist", "fmnist"):
        raise UsageError("--test-root: pass the test images, an ImageFolder tree with the class folders of the set "
                         "(DIR/<class>/<image>)")
    method = str(manifest.get("method") or set_dir.name)
    if method in ("full", "vae_coda_r", "vae_random_real"):  # names that would make a set instead of reading this one
        method = set_dir.name
    seed = manifest.get("selection_seed")
    root = args.data_root if args.data_root is not None or args.test_root is None else args.test_root
    return {"dataset": args.dataset, "data_root": None if root is None else str(root),
            "test_root": None if args.test_root is None else str(args.test_root), "methods": method,
            "distilled": str(set_dir), "ipc": int(manifest["ipc"]), "selection_seeds": [int(seed) if seed is not None else 0],
            "repeats": args.networks, "arch": args.arch, "protocol": args.protocol, "epochs": args.epochs,
            "test_limit": args.test_limit, "image_size": args.image_size, "precision": args.precision,
            "device": args.device, "run_dir": str(out), "progress": args.progress, "curve_every": None}, set_dir


def cmd_evaluate(args) -> None:
    values, set_dir = _evaluate_values(args)
    run_evaluate(stage_parameters("evaluate", values, _settings(args, "evaluate")), set_dir)


# --------------------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------------------
class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in every option's help; in descriptions and epilogs each line is a paragraph
    (wrapped), and an indented line an example (kept as written)."""

    def _get_help_string(self, action):
        return action.help if action.required else super()._get_help_string(action)

    def _fill_text(self, text, width, indent):
        import textwrap

        return "\n".join(indent + line if not line or line.startswith(" ") else
                         textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
                         for line in text.splitlines())


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed (a non-negative integer)") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed (a non-negative integer)")
    return v


def _maybe_int(text: str) -> int | None:
    if text in ("None", "none"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer (or None)") from None


def _common(ap: argparse.ArgumentParser, data: bool = True, model: bool = True) -> None:
    if data:
        ap.add_argument("--data-root", metavar="DIR", help="the images to distill: an ImageFolder tree, one folder of "
                        "images per class (DIR/<class>/<image>); not needed for --dataset fashion-mnist")
        ap.add_argument("--dataset", default="folder", help="folder (your own ImageFolder tree), an ImageNet subset "
                        "name (imagenette, ...; --data-root its train tree) or fashion-mnist (the embedded world)")
        ap.add_argument("--per-class-limit", type=_maybe_int, default=None, metavar="N",
                        help="use only the first N images of each class (quick runs); None: all")
        ap.add_argument("--class-limit", type=_maybe_int, default=None, metavar="N",
                        help="use only the first N classes (quick runs); None: all")
    if model:
        ap.add_argument("--model", default=PRIOR, help="a diffusers pipeline directory or hub id (SDXL, SD 1.5, ...); "
                        "the default is the shipped tiny prior of the embedded world (28x28 grayscale)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                    help="progress bars on stderr")
    ap.add_argument("-p", "--setting", dest="settings", nargs=2, action="append", metavar=("NAME", "VALUE"),
                    help="an advanced setting of a stage's notebook (python -m coda_utils.params lists them), "
                         "e.g. -p dtype float16 -p batch_size 8; repeatable")


def _out(ap: argparse.ArgumentParser, required: bool = True) -> None:
    ap.add_argument("--out", metavar="DIR", required=required, type=Path,
                    help="the run folder: latents/, discovery/, sets/<method>_ipcN_seedS/ (created; a second run "
                         "with the same options resumes or skips what is there)")


def _ipc_seeds(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--ipc", type=int, default=10, metavar="N", help="images per class of each distilled set")
    ap.add_argument("--seeds", type=_seed, nargs="+", default=[0], metavar="S",
                    help="selection seeds: one discovery and one set per seed (and the generator's noise seeds)")


def _discovery_options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--n-neighbors", type=_maybe_int, default=None, metavar="N",
                    help="UMAP's n_neighbors; None: the reference 85 scaled to the mean class size")
    ap.add_argument("--min-cluster-size", type=_maybe_int, default=None, metavar="N",
                    help="HDBSCAN's min_cluster_size; None: the reference 55 scaled to the mean class size")


def _generation_options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--gamma", type=float, default=0.2, help="CoDA's guidance scale (0.2: the embedded world's choice; "
                    "the paper uses 0.05 for SDXL)")
    ap.add_argument("--steps", type=int, default=25, help="denoising steps")


EPILOG = """examples:
  coda distill --data-root my_images/train --ipc 10 --out runs/mine --seeds 0 1 2
  coda evaluate --set runs/mine/sets/coda_g_ipc10_seed0 --test-root my_images/test
  coda distill --data-root my_images/train --model stabilityai/stable-diffusion-xl-base-1.0 --device cuda \\
      --gamma 0.05 -p dtype float16 --ipc 10 --out runs/sdxl

`coda COMMAND --help` lists a command's options. Running a command again with the same options resumes what an interrupted run left, or finds everything done."""


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="coda", formatter_class=_Formatter, epilog=EPILOG,
        description="CoDA on your own images: a distilled set of IPC images per class, real (R: the representatives "
                    "of each class's dense regions) and generated (G: a diffusion model guided toward them), and "
                    "its evaluation by training fresh networks.")
    ap.add_argument("--version", action="version", version=f"coda-utils {__version__}")
    ap.add_argument("--traceback", action="store_true", help="on an error, show the full traceback, not one line")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=description, formatter_class=_Formatter)

    p = add("distill", "encode -> discover -> generate: the sets R and G of every seed",
            "Stages 1-3 on an ImageFolder tree: encode every image with the model's VAE (OUT/latents), find IPC "
            "representatives per class by UMAP + HDBSCAN (OUT/discovery) and export them as set R "
            "(OUT/sets/coda_r_ipcN_seedS), then generate set G guided toward them (OUT/sets/coda_g_ipcN_seedS). "
            "Each set folder is an ImageFolder with a manifest.json; evaluate one with `coda evaluate --set`.")
    _common(p)
    _out(p)
    _ipc_seeds(p)
    p.add_argument("--methods", nargs="+", choices=REAL + GENERATED, default=["coda_r", "coda_g"], metavar="METHOD",
                   help=f"the sets to make: of {', '.join(REAL)} (real images) and {', '.join(GENERATED)} (generated)")
    _discovery_options(p)
    _generation_options(p)
    p.add_argument("--rebuild", action="store_true", help="encode again, deleting a latent cache made otherwise")
    p.set_defaults(func=cmd_distill)

    p = add("encode", "stage 1: the latent cache of every image",
            "Stage 1 (notebook 01): encode every image of the tree with the model's VAE into OUT/latents "
            "(resumed class by class).")
    _common(p)
    _out(p)
    p.add_argument("--rebuild", action="store_true", help="delete a latent cache made with other settings and encode again")
    p.set_defaults(func=cmd_encode)

    p = add("discover", "stage 2: representatives per class, exported as set R",
            "Stage 2 (notebook 02): on the latent cache of `coda encode`, UMAP + HDBSCAN per class and exactly IPC "
            "representatives (OUT/discovery/ipcN_seedS.json), exported as set folders of real images.")
    _common(p)
    _out(p)
    _ipc_seeds(p)
    p.add_argument("--methods", nargs="+", choices=REAL, default=["coda_r"], metavar="METHOD",
                   help=f"the selections to export, of {', '.join(REAL)} (k-means nearest-real and herding: the "
                        "latent-space baselines; coda_r_no_noise_fill: R without the fill from HDBSCAN's noise, "
                        "beyond the paper)")
    _discovery_options(p)
    p.set_defaults(func=cmd_discover)

    p = add("generate", "stage 3: generated sets guided toward the representatives",
            "Stage 3 (notebook 03): generate IPC images per class with the model, coda_g guided toward the "
            "representatives of `coda discover` (same --out, --ipc, --seeds).")
    _common(p)
    _out(p)
    _ipc_seeds(p)
    p.add_argument("--methods", nargs="+", choices=GENERATED, default=["coda_g"], metavar="METHOD",
                   help=f"the generated sets, of {', '.join(GENERATED)} (unguided: the class name as the prompt; "
                        "text_prompt: the prompt template; neither needs a discovery; coda_g_kmeans, coda_g_herding: "
                        "guided by the k-means / herding set of `coda discover --methods kmeans herding`)")
    _generation_options(p)
    p.set_defaults(func=cmd_generate)

    p = add("evaluate", "stage 4: train fresh networks on a set folder, test on real images",
            "Stage 4 (notebook 04): train --networks fresh networks on one set folder and test each on the test "
            "split (an ImageFolder tree with the same class folders); one results row per network in "
            "OUT/eval/<method>_ipcN/results.csv (finished networks are not trained again).")
    p.add_argument("--set", required=True, metavar="DIR", help="a set folder (OUT/sets/<method>_ipcN_seedS of "
                   "`coda distill`): its manifest gives the method, ipc and selection seed")
    p.add_argument("--test-root", metavar="DIR", help="the test images: an ImageFolder tree with the training tree's "
                   "class folders (not needed for --dataset fashion-mnist)")
    p.add_argument("--data-root", metavar="DIR", help="the tree the set was distilled from (only its class order and "
                   "image size are used); None: the --test-root tree stands in")
    p.add_argument("--dataset", default="folder", help="folder, an ImageNet subset name, or fashion-mnist")
    p.add_argument("--out", metavar="DIR", type=Path, default=None,
                   help="the run folder for the results; None: the run folder that holds --set (SET/../..)")
    p.add_argument("--networks", type=int, default=1, metavar="N", help="networks trained on the set (their spread is "
                   "the training noise)")
    p.add_argument("--arch", default="convnet3", help="convnet3, resnet_ap10 or resnet18")
    p.add_argument("--protocol", default="dc", help="dc, dsa, idc (hard labels) or rded (soft labels from a teacher)")
    p.add_argument("--epochs", type=_maybe_int, default=None, metavar="N", help="training epochs; None: the protocol's own")
    p.add_argument("--test-limit", type=_maybe_int, default=None, metavar="N",
                   help="test on the first N test images only; None: all")
    p.add_argument("--image-size", type=_maybe_int, default=None, metavar="N",
                   help="train and test at NxN; None: the images' own size (needed for trees of mixed sizes)")
    p.add_argument("--precision", default="fp32", help="fp32 (the same numbers on every CPU), bf16 or auto")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="a progress bar over each network's epochs on stderr")
    p.add_argument("-p", "--setting", dest="settings", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="an advanced setting of notebook 04 (python -m coda_utils.params 04), e.g. -p threads 1")
    p.set_defaults(func=cmd_evaluate)
    return ap


# --------------------------------------------------------------------------------------
# Errors as one line
# --------------------------------------------------------------------------------------
def _user_message(message: str) -> str:
    """An error of the library in the command's words: ``parameter `ipc` = 0`` -> ``--ipc 0``,
    ``rebuild=True`` -> ``--rebuild``, on one line."""
    def option(m: re.Match) -> str:
        name = m.group(1)
        return OPTIONS.get(name, f"-p {name}") + (" " if m.group(2) else "")

    text = re.sub(r"parameter `(\w+)`( = )?", option, message)
    text = re.sub(r"\bpass rebuild=True\b", "pass --rebuild", text)
    return " ".join(text.split())


def _user_errors() -> tuple[type[BaseException], ...]:
    """The errors a bad input or a run folder made otherwise raise (each names the file and the fix)."""
    from . import alignment, baselines, encoding, teachers
    from .datasets import DatasetNotFoundError
    from .io import CorruptFileError, FolderBusyError

    return (UsageError, params.ParameterError, DatasetNotFoundError, encoding.StaleCacheError,
            encoding.NonFiniteLatentError, alignment.StaleSetError, baselines.StaleRoundTripError,
            teachers.StaleTeacherError, CorruptFileError, FolderBusyError, FileNotFoundError)


def main(argv: list[str] | None = None) -> int:
    """``coda COMMAND [options]``; returns the exit status (0; 2: a bad input, one line on stderr)."""
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.command is None:
        ap.print_help(sys.stderr)
        return 2
    func: Callable = args.func
    try:
        func(args)
    except Exception as e:  # noqa: BLE001 - a user's error is one line, anything else (a bug) its traceback
        if args.traceback or not isinstance(e, _user_errors()):
            raise
        print(f"coda {args.command}: error: {_user_message(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"coda {args.command}: interrupted; run the same command again to continue where it stopped",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
