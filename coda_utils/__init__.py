"""coda_utils: the logic behind the CoDA study notebooks.

One module per stage:

- :mod:`coda_utils.datasets`    Fashion-MNIST splits and ImageFolder / ImageNet subsets
- :mod:`coda_utils.io`          atomic writes, manifests, ImageFolder export
- :mod:`coda_utils.architectures`  ConvNet-3, ResNet-AP-10, ResNet-18 (instance norm)
- :mod:`coda_utils.evaluation`  the DC / DSA / IDC training protocols and result tables
- :mod:`coda_utils.baselines`   training-free selections (random real, ...)
- :mod:`coda_utils.prior`       the embedded world's tiny text-to-image prior
- :mod:`coda_utils.judge`       the judge classifier and Frechet distance for prior quality
"""
__version__ = "0.1.0"
