import os

import pytest
import torch

# Two cores, shared with other work: keep each test single-threaded and reproducible.
torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def target():
    from coda_utils.datasets import load_fashion_mnist

    return load_fashion_mnist("target")
