"""coda_utils: the logic behind the CoDA study notebooks.

One flat package in layers (``docs/layout.md``). A module imports only from its own layer or the
layers below it, at module level or inside a function, and no import goes round in a circle:
``make lint`` checks it (import-linter, ``pyproject.toml`` ``[tool.importlinter]``) before the tests.
From the bottom:

base            :mod:`~coda_utils.numerics`       the portable CPU code paths (pinned when coda_utils is imported)
                :mod:`~coda_utils.io`             atomic writes, JSON files, content hashes, folder locks
                :mod:`~coda_utils.errors`         errors more than one layer raises (``ParameterError``)
                :mod:`~coda_utils.results`        the results table: columns, files, summary, markdown
                :mod:`~coda_utils.stats`          paired contrasts over selection seeds with confidence intervals
                :mod:`~coda_utils.environment`    the locked environment (pyproject, lock, environment.yml agree)
                :mod:`~coda_utils.parallel`       which share of a stage's work is this process's (accelerate)
data            :mod:`~coda_utils.images`         pixels: resize, the resize policy (``run_policy``), channels, decoding
                :mod:`~coda_utils.datasets`       Fashion-MNIST splits, ImageFolder / ImageNet subsets, the one IPC check
                :mod:`~coda_utils.setfolder`      the set folder (ImageFolder + manifest.json): its one writer and reader
                :mod:`~coda_utils.rundir`         the run folder's paths, and the selection seeds of each method
method stages   :mod:`~coda_utils.vae`            stage 1's model side: load a VAE, images <-> UNet latents
                :mod:`~coda_utils.encoding`       stage 1: the per-class latent cache
                :mod:`~coda_utils.discovery`      stage 2: UMAP + HDBSCAN, exactly IPC representatives (set R)
                :mod:`~coda_utils.alignment`      stage 3: CoDA's guided sampler and generated sets (set G)
evaluation      :mod:`~coda_utils.architectures`  ConvNet-3, ResNet-AP-10, ResNet-18 (instance norm)
                :mod:`~coda_utils.protocols`      the DC / DSA / IDC (hard-label) and RDED (soft-label) protocols
                :mod:`~coda_utils.augmentations`  DSA, IDC, RDED's transforms and CutMix, batched
                :mod:`~coda_utils.training`       one network: train_and_evaluate, precision, normalization
                :mod:`~coda_utils.teachers`       the soft-label protocol's teacher
                :mod:`~coda_utils.evaluation`     stage 4: evaluate() a set's networks; re-exports the above
orchestration   :mod:`~coda_utils.baselines`      training-free selections, the round trips, each method's set
                :mod:`~coda_utils.params`         the notebooks' parameters, checked before any work starts
                :mod:`~coda_utils.sweeps`         the ablation sweeps judged on ``target_val``: runner, points
                :mod:`~coda_utils.scale`          stages 1, 3, 4 and 5 under ``accelerate launch``
                :mod:`~coda_utils.portability`    this CPU's bits against the committed fingerprints
presentation    :mod:`~coda_utils.plots`          every figure (re-exports the two below)
                :mod:`~coda_utils.plots_stages`   the figures of stages 1-3
                :mod:`~coda_utils.plots_style`    the figures' shared style, the image grids
                :mod:`~coda_utils.report`         the README's tables, generated from ``results/`` (re-exports the two below)
                :mod:`~coda_utils.report_findings` the README's sentences that quote a result, the study's findings
                :mod:`~coda_utils.report_tables`  the README's tables, one renderer per result file
                :mod:`~coda_utils.ablations`      the sweeps' tables and figures; re-exports :mod:`~coda_utils.sweeps`
the prior       :mod:`~coda_utils.prior`          the embedded world's tiny text-to-image prior (re-exports the three below)
(apart: no      :mod:`~coda_utils.prior_model`    its config, web transforms, captions, components, loading
module of the   :mod:`~coda_utils.prior_build`    its resumable build (uses only base, data and stages)
study imports   :mod:`~coda_utils.prior_card`     its model card
it)             :mod:`~coda_utils.judge`          the judge classifier and Frechet distance for prior quality
                :mod:`~coda_utils.tiny_pipelines` tiny random diffusers pipelines for tests and GPU checks

The public surface: what the notebooks and ``coda_utils.scale`` import (everything else is the
modules' own business; a leading underscore marks a private helper):

- notebooks 00-06 import the modules ``params``, ``datasets``, ``encoding``, ``discovery``,
  ``baselines``, ``alignment``, ``evaluation``, ``setfolder``, ``rundir``, ``stats``, ``ablations``,
  ``plots``, ``scale``, ``prior``, ``judge`` and the names ``io.write_json``, ``io.merge_json``,
  ``io.atomic_write``, ``encoding.resolve_model_path``, ``datasets.REPO_ROOT``. Of the split modules
  they use ``encoding.load_vae`` / ``native_size`` / ``resolve_model_path`` (from ``vae``);
  ``evaluation.evaluate`` / ``train_and_evaluate`` / ``get_protocol`` / ``teacher_for`` /
  ``network_seeds`` / ``path_options`` / ``FAST_PATH`` / ``read_results`` / ``summarize`` /
  ``format_table`` (from ``protocols``, ``training``, ``teachers``, ``results``); ``ablations.prepare``
  / ``make_runner`` / ``sweep_points`` / ``collect`` (from ``sweeps``) and ``ablations.choice_table`` /
  ``sweep_figures``; the ``prior.*`` names of notebook 00 (from ``prior_model``, ``prior_build``,
  ``prior_card``).
- ``coda_utils.scale`` uses ``parallel`` (``processes``, ``share``, ``barrier``, ``is_main``, ``world``,
  ``rank_results``, ``start_rank_results``, ``merge_rank_results``), ``params``, ``datasets``
  (``load_dataset``, ``evaluation_data``), ``encoding`` (``encode_dataset``, ``load_vae``,
  ``LatentCache``, ``limit_dataset``), ``rundir``, ``alignment`` (``load_pipeline``, ``GuidanceConfig``,
  ``generate_set``), ``baselines`` (``method_set``, ``ROUND_TRIP``), ``evaluation`` (``evaluate``,
  ``network_seeds``, ``path_options``, ``load_teacher``, ``SOFT_LABEL_PROTOCOLS``) and ``sweeps``.
"""
# Before anything loads numba, numpy or torch: pin their CPU code paths (coda_utils.numerics),
# so that every notebook, script and test computes the same bits on any x86-64 CPU.
from coda_utils import numerics as _numerics

_numerics.pin()

__version__ = "0.1.0"
