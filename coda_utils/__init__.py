"""coda_utils: the logic behind the CoDA study notebooks.

One module per stage or concern:

- :mod:`coda_utils.numerics`       the portable CPU code paths (pinned when coda_utils is imported)
- :mod:`coda_utils.datasets`       Fashion-MNIST splits, ImageFolder / ImageNet subsets, the one IPC check
- :mod:`coda_utils.io`             atomic writes, JSON files, content hashes, folder locks
- :mod:`coda_utils.setfolder`      the set folder (ImageFolder + manifest.json): its one writer and reader, its channels
- :mod:`coda_utils.rundir`         the run folder's paths, and the selection seeds of each method
- :mod:`coda_utils.encoding`       stage 1: the VAE latent cache
- :mod:`coda_utils.discovery`      stage 2: UMAP + HDBSCAN, exactly IPC representatives (set R)
- :mod:`coda_utils.baselines`      training-free selections (random real, k-means nearest-real, herding)
- :mod:`coda_utils.alignment`      stage 3: CoDA's guided sampler and generated sets (set G)
- :mod:`coda_utils.architectures`  ConvNet-3, ResNet-AP-10, ResNet-18 (instance norm)
- :mod:`coda_utils.evaluation`     stage 4: the DC / DSA / IDC (hard-label) and RDED (soft-label) protocols, result tables
- :mod:`coda_utils.parallel`       which share of a stage's work is this process's (accelerate)
- :mod:`coda_utils.scale`          stages 1, 3 and 4 under ``accelerate launch``, with the notebooks' parameters
- :mod:`coda_utils.stats`          paired contrasts over selection seeds with confidence intervals
- :mod:`coda_utils.ablations`      sweeps judged on ``target_val``
- :mod:`coda_utils.plots`          figures shared by the notebooks
- :mod:`coda_utils.report`         the README's tables, generated from ``results/``
- :mod:`coda_utils.params`         the notebooks' parameters, checked before any work starts
- :mod:`coda_utils.environment`    the locked environment (pyproject, lock, environment.yml agree)
- :mod:`coda_utils.prior`          the embedded world's tiny text-to-image prior
- :mod:`coda_utils.judge`          the judge classifier and Frechet distance for prior quality
- :mod:`coda_utils.tiny_pipelines` tiny random diffusers pipelines for tests and GPU checks
"""
# Before anything loads numba, numpy or torch: pin their CPU code paths (coda_utils.numerics),
# so that every notebook, script and test computes the same bits on any x86-64 CPU.
from coda_utils import numerics as _numerics

_numerics.pin()

__version__ = "0.1.0"
