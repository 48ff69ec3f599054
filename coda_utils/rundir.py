"""The run folder: the one place that names the paths a stage reads or writes, and the
selection seeds of each method.

A study run (``runs/study`` by default) is laid out as::

    latents/                          01: the per-class latent cache
    discovery/ipc10_seed3.json        02: discovery of selection seed 3 (+ .npz, + umap2d_class0.npy)
    discovery/ipc10_seed3_no_noise_fill.json  02: the same without the fill from HDBSCAN's noise
                                          (only for coda_r_no_noise_fill, beyond the paper)
    sets/coda_r_ipc10_seed3/          02: set R of seed 3 (ImageFolder + manifest.json)
    sets/kmeans_ipc10_seed3/          02: k-means nearest-real of seed 3
    sets/herding_ipc10/               02: herding (deterministic: one set, no seed)
    sets/random_real_ipc10_seed3/     04: the random-real draw of seed 3
    sets/coda_g_ipc10_seed3/          03: G generated from R of seed 3 (also unguided, text_prompt)
    sets/vae_coda_r_ipc10_seed3/      04: R of seed 3 through the VAE and back (also vae_random_real)
    frechet_ipc10_seed3.json          03: Frechet distances of seed 3's sets to target
    trajectories_ipc10_seed3.npz      03: recorded x0 trajectories
    eval/coda_g_ipc10/results.csv     04: one row per trained network, all seeds of the method
    eval/coda_g_ipc10_rded/           04: the same under a soft-label protocol (its own folder)
    teacher/convnet3_dc50.pt          04: the rded protocol's teacher, trained once on target
    results.csv, results.md,          06: all networks; the summary over selection seeds;
    contrasts.md                          the paired contrasts with their 95 % intervals
    versions.json                     every stage: the installed versions it ran with

Selection seeds (``selection_seed``) are a first-class axis: every selection or generation
method that draws anything random takes one (the random-real draw, the k-means
initialisation, discovery's UMAP ``random_state`` and k-means splits, the generator's per-image
noise); :data:`DETERMINISTIC` methods (herding) make one set whatever the seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .io import package_versions, read_json, write_json

__all__ = ["RunDir", "AblationDir", "DETERMINISTIC", "STUDY_METHODS", "REAL_METHODS", "EXTRA_REAL_METHODS",
           "ALL_REAL_METHODS", "NO_NOISE_FILL", "GENERATED_METHODS", "GUIDED_BY", "SELECTION_GENERATION_METHODS", "selection_seeds", "seeds_for", "networks_for"]

#: methods whose set does not depend on a seed (herding is a greedy deterministic selection)
DETERMINISTIC = ("herding",)
#: the methods of the study, in the order of its tables
STUDY_METHODS = ("random_real", "coda_r", "kmeans", "herding", "unguided", "text_prompt", "coda_g", "vae_coda_r",
                 "vae_random_real")
#: the selections of real images stage 2 (notebook 02, ``coda discover``) exports for every seed:
#: R, k-means nearest-real, herding
REAL_METHODS = ("coda_r", "kmeans", "herding")
#: R without the exactly-IPC step's fill from HDBSCAN's noise (beyond the paper, issue 27: the
#: one variant of notebook 05's IPC-50 selection sweep above discovery on target_val)
NO_NOISE_FILL = "coda_r_no_noise_fill"
#: selections stage 2 exports only when asked (notebook 02's ``methods``, ``coda discover --methods``)
EXTRA_REAL_METHODS = (NO_NOISE_FILL,)
#: every selection stage 2 can export (the choices of notebook 02's ``methods``, ``coda discover --methods``)
ALL_REAL_METHODS = REAL_METHODS + EXTRA_REAL_METHODS
#: a guided method -> the selection of :data:`REAL_METHODS` whose images' latents guide it
#: (``coda_g``: R, the representatives notebook 02's discovery saved)
GUIDED_BY = {"coda_g": "coda_r", "coda_g_kmeans": "kmeans", "coda_g_herding": "herding"}
#: guided generation from another selection's set (beyond the paper: does generation add
#: anything to a selection?): the same sampler, guidance scale and noise seeds as ``coda_g``, only
#: the representatives change
SELECTION_GENERATION_METHODS = tuple(m for m, follows in GUIDED_BY.items() if follows != "coda_r")
#: the generated sets stage 3 (notebook 03's ``methods``, ``coda generate``) makes
GENERATED_METHODS = ("coda_g", "unguided", "text_prompt", *SELECTION_GENERATION_METHODS)


def selection_seeds(value: int | str | Iterable[int]) -> list[int]:
    """Normalise a ``selection_seeds`` parameter (one seed, a list, or a string such as
    ``"0 1 2"`` / ``"0-4"``) to a list of distinct non-negative integers, in the given order.

    Raises:
        ValueError: naming ``selection_seeds`` and the bad value.
    """
    raw = value
    if isinstance(value, str):
        text = value.replace(",", " ").split()
        value = []
        for part in text:
            if "-" in part.strip("-"):
                lo, hi = part.split("-", 1)
                value += list(range(int(lo), int(hi) + 1))
            else:
                value.append(part)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    try:
        seeds = [int(s) for s in value]
        ok = (all(float(s) == int(s) and not isinstance(s, bool) for s in value) and all(s >= 0 for s in seeds))
    except (TypeError, ValueError):
        ok = False
    if not ok or not seeds:
        raise ValueError(f"selection_seeds must be a non-negative integer or a non-empty list of them, got {raw!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"selection_seeds has repeated seeds: {raw!r}")
    return seeds


def seeds_for(method: str, seeds: Iterable[int]) -> list[int | None]:
    """The selection seeds that make distinct sets of ``method``: ``[None]`` (one set) for a
    :data:`DETERMINISTIC` method, else ``seeds``."""
    return [None] if method in DETERMINISTIC else list(seeds)


def networks_for(method: str, seeds: Iterable[int], repeats: int, one_set: bool = False) -> list[tuple[int, int]]:
    """``(selection_seed, networks)`` pairs to evaluate: ``repeats`` networks per seed, and for
    a deterministic method (one set; also ``"full"``, all of target) as many networks as the
    others get sets in all, recorded under selection seed 0, so that its row has as many
    evaluations and shows the spread between networks alone. ``one_set``: a single given set
    (notebook 04's ``distilled``), ``repeats`` networks under the first seed."""
    seeds = list(seeds)
    if one_set:
        return [(seeds[0], int(repeats))]
    if method in DETERMINISTIC or method == "full":
        return [(0, max(int(repeats), len(seeds) * int(repeats)))]
    return [(s, int(repeats)) for s in seeds]


@dataclass(frozen=True)
class _Folder:
    """A folder of stage outputs, named from its root; every such folder has a latent cache."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def latents(self) -> Path:
        """The latent cache (notebook 01; notebook 05 encodes target_fit into its own)."""
        return self.root / "latents"


@dataclass(frozen=True)
class RunDir(_Folder):
    """Names every file and folder of one run directory (see the module docstring).

    Args:
        root: the run directory (created on the first write, never by this object).
    """

    # 02 ---------------------------------------------------------------------------------
    def discovery(self, ipc: int, seed: int, noise_fill: bool = True) -> Path:
        """Discovery of one selection seed: ``.json`` diagnostics (``.npz`` arrays beside it);
        ``noise_fill=False``: the one made without the fill from HDBSCAN's noise (:data:`NO_NOISE_FILL`)."""
        return self.root / "discovery" / f"ipc{int(ipc)}_seed{int(seed)}{'' if noise_fill else '_no_noise_fill'}.json"

    def umap2d(self, ipc: int, seed: int, class_index: int) -> Path:
        """The 2-D UMAP of one class drawn by notebook 02 (redrawn by 06)."""
        return self.root / "discovery" / f"ipc{int(ipc)}_seed{int(seed)}_umap2d_class{int(class_index)}.npy"

    # sets -------------------------------------------------------------------------------
    def set_dir(self, method: str, ipc: int, seed: int | None, suffix: str = "") -> Path:
        """The ImageFolder of ``method`` at ``ipc`` for selection seed ``seed`` (no seed for a
        deterministic method: pass ``None`` or any seed)."""
        name = f"{method}_ipc{int(ipc)}"
        if method not in DETERMINISTIC:
            if seed is None:
                raise ValueError(f"{method} is drawn per selection seed; pass seed=")
            name += f"_seed{int(seed)}"
        return self.root / "sets" / f"{name}{suffix}"

    def set_dirs(self, method: str, ipc: int) -> list[Path]:
        """Every set of ``method`` at ``ipc`` in the run (all seeds and suffixes); not the sets at
        an IPC that starts with the same digits (``coda_r_ipc10_seed0`` is not a set at IPC 1)."""
        prefix = f"{method}_ipc{int(ipc)}"
        return sorted(d for d in (self.root / "sets").glob(f"{prefix}*") if not d.name[len(prefix):][:1].isdigit())

    # 03 ---------------------------------------------------------------------------------
    def frechet(self, ipc: int, seed: int, suffix: str = "") -> Path:
        return self.root / f"frechet_ipc{int(ipc)}_seed{int(seed)}{suffix}.json"

    def trajectories(self, ipc: int, seed: int) -> Path:
        return self.root / f"trajectories_ipc{int(ipc)}_seed{int(seed)}.npz"

    # 04 ---------------------------------------------------------------------------------
    def teacher(self, arch: str, epochs: int) -> Path:
        """The soft-label protocol's teacher trained on all of the run's target split."""
        return self.root / "teacher" / f"{arch.lower()}_dc{int(epochs)}.pt"

    def eval_dir(self, method: str, ipc: int, protocol: str | None = None) -> Path:
        """Where notebook 04 keeps one method's evaluation (its results, notebook, figure).

        Hard-label protocols (dc, dsa, idc) share the method's folder (the protocol is a column
        of every row); a soft-label protocol (``rded``) has its own, ``<method>_ipc<ipc>_rded``,
        so that its rows are published apart and never enter a hard-label table."""
        from .results import SOFT_LABEL_PROTOCOLS

        suffix = f"_{protocol}" if protocol in SOFT_LABEL_PROTOCOLS else ""
        return self.root / "eval" / f"{method}_ipc{int(ipc)}{suffix}"

    def results(self, method: str, ipc: int, protocol: str | None = None) -> Path:
        """One row per trained network of ``method`` at ``ipc`` (all its selection seeds)."""
        return self.eval_dir(method, ipc, protocol) / "results.csv"

    def evaluation_figure(self, methods: list[str], ipc: int, arch: str, protocol: str) -> Path:
        """Notebook 04's figure: in the method's evaluation folder for one method, else in the
        run's figures."""
        name = f"evaluate_{'_'.join(methods) if len(methods) == 1 else 'methods'}_ipc{int(ipc)}_{arch}_{protocol}.png"
        return (self.eval_dir(methods[0], ipc, protocol) if len(methods) == 1 else self.figures) / name

    def discoveries(self, ipc: int) -> list[int]:
        """The selection seeds with a saved discovery at ``ipc``."""
        return sorted(int(p.stem.split("_seed")[1]) for p in (self.root / "discovery").glob(f"ipc{int(ipc)}_seed*.json"))

    def all_results(self, soft_labels: bool | None = None) -> list[Path]:
        """Every results file of the run's evaluations (``soft_labels``: only those of the
        soft-label protocols, ``False``: only the hard-label ones, ``None``: all)."""
        from .results import SOFT_LABEL_PROTOCOLS

        files = sorted((self.root / "eval").glob("*/results.csv"))
        if soft_labels is None:
            return files
        soft = tuple(f"_{p}" for p in SOFT_LABEL_PROTOCOLS)
        return [f for f in files if f.parent.name.endswith(soft) == soft_labels]

    # 06 ---------------------------------------------------------------------------------
    @property
    def results_csv(self) -> Path:
        """All networks of the run in one file (written by 06)."""
        return self.root / "results.csv"

    @property
    def results_md(self) -> Path:
        return self.root / "results.md"

    @property
    def contrasts_md(self) -> Path:
        return self.root / "contrasts.md"

    @property
    def figures(self) -> Path:
        """The run's own figures."""
        return self.root / "figures"

    # every stage -------------------------------------------------------------------------
    @property
    def versions(self) -> Path:
        return self.root / "versions.json"

    def record_versions(self, stage: str) -> dict:
        """Record the installed versions of the packages that decide a result (torch,
        diffusers, umap-learn, pynndescent, numba, hdbscan, scikit-learn, numpy, ...) and the
        numeric settings in force (:func:`coda_utils.numerics.settings`: CPU model, ISA flags,
        pinned code paths, threads) under
        ``stage`` in ``versions.json``; returns them. A stage that ran with other versions
        than an earlier stage of the run is visible there.

        Raises:
            ParameterError: an earlier stage of the run ran under other numeric code paths (another
                mode, pinned variable or MKL branch; the CPU model may differ, since the pins give
                every CPU the same bits): its caches hold another setting's bits, and the run would
                mix the two. The message names ``versions.json``, the stage and what differs."""
        from coda_utils import numerics

        from .errors import ParameterError

        versions = package_versions()
        # the CPU, its instruction-set flags and the code paths in force (portable or native)
        versions["numerics"] = numerics.settings()
        old = read_json(self.versions) if self.versions.is_file() else {}
        now = _code_paths(versions["numerics"])
        for earlier, record in old.items():
            if earlier == stage:  # this stage run again: it rewrites its own record
                continue
            then = _code_paths(record.get("numerics", {}))
            # a value one side did not record (MKL's branch is read only once torch is loaded) is not compared
            diff = {k: (then[k], v) for k, v in now.items() if v is not None and then.get(k) not in (None, v)}
            if diff:
                raise ParameterError(
                    f"{self.versions}: stage {earlier} of this run ran under other numeric code paths than "
                    f"this process ({', '.join(f'{k} {a!r} there, {b!r} here' for k, (a, b) in diff.items())}), so "
                    f"its files hold other bits than this stage would make. Start a new run folder (or delete "
                    f"{self.root}) to run every stage under today's settings (coda_utils.numerics).")
        old[stage] = versions
        write_json(self.versions, old)
        return versions


def _code_paths(settings: dict) -> dict:
    """What decides a run's bits in :func:`coda_utils.numerics.settings`: the mode, every pinned
    variable and MKL's branch (not the CPU model: the pins give every CPU the same bits)."""
    return {"mode": settings.get("mode"), **(settings.get("variables") or {}),
            "mkl_cnr_branch": settings.get("mkl_cnr_branch")}


@dataclass(frozen=True)
class AblationDir(_Folder):
    """Names every file and folder of notebook 05's output folder::

        latents/                          the latent cache of target_fit
        holdout.json                      which images were distilled (fit) and which judged (val)
        teacher/convnet3_dc50.pt          the rded protocol's teacher, trained on fit only
        <sweep>/<key>/point.json          one point: its sweep, values and parameters
        <sweep>/<key>/results.csv         one row per trained network, all selection seeds
        <sweep>/<key>/seed3/              the set of selection seed 3 (ImageFolder + manifest.json)
        figures/ablation_<sweep>.png      one figure per sweep (mean ± std over seeds along the swept values)

    Args:
        root: the ablations folder (``out_dir`` of notebook 05).
    """

    @property
    def holdout(self) -> Path:
        """The record of the fit / val cut (:func:`coda_utils.ablations.fit_and_val`)."""
        return self.root / "holdout.json"

    def teacher(self, arch: str, epochs: int) -> Path:
        """The soft-label protocol's teacher, trained on the distilled part (``fit``) only."""
        return self.root / "teacher" / f"{arch.lower()}_dc{int(epochs)}.pt"

    def point(self, sweep: str, key: str) -> Path:
        """The folder of one point of ``sweep`` (``key`` names its swept values)."""
        return self.root / sweep / key

    @staticmethod
    def point_json(point: Path) -> Path:
        return Path(point) / "point.json"

    @staticmethod
    def results(point: Path) -> Path:
        return Path(point) / "results.csv"

    @staticmethod
    def set_dir(point: Path, seed: int) -> Path:
        return Path(point) / f"seed{int(seed)}"

    def points(self) -> list[Path]:
        """Every point folder with a ``point.json``, in name order."""
        return sorted(p.parent for p in self.root.glob("*/*/point.json"))

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @staticmethod
    def figure(figures_dir: str | Path, sweep: str) -> Path:
        """The figure of ``sweep`` in ``figures_dir`` (notebook 05: :attr:`figures`; 06: its run's)."""
        return Path(figures_dir) / f"ablation_{sweep}.png"
