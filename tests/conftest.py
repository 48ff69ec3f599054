import os
import sys
from pathlib import Path

import pytest
import torch

# Two cores, shared with other work: keep each test single-threaded and reproducible.
torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/imagenet_like.py


@pytest.fixture(scope="session")
def target():
    from coda_utils.datasets import load_fashion_mnist

    return load_fashion_mnist("target")


@pytest.fixture(scope="session")
def imagenet_like(tmp_path_factory):
    """An ImageNette-shaped tree (``train/`` and ``val/``) of odd images; see tests/imagenet_like.py."""
    from coda_utils.datasets import imagenet_subset
    from imagenet_like import make_tree

    root = tmp_path_factory.mktemp("imagenet")
    wnids = imagenet_subset("imagenette")
    info = make_tree(root / "train", wnids)
    make_tree(root / "val", wnids, per_class=3, seed=1, oddities=False)
    return root, info
