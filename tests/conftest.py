import os
import sys
from pathlib import Path

import coda_utils  # noqa: F401  (first: it pins the CPU code paths before numpy and torch load)
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


@pytest.fixture
def held_lock():
    """``held_lock(folder, name)``: a context in which another process holds ``folder``'s lock
    ``name`` (:func:`coda_utils.io.exclusive`), as a second run writing the same folder would."""
    import contextlib
    import subprocess

    root = Path(__file__).resolve().parent.parent
    code = ("import sys\nfrom coda_utils.io import exclusive\n"
            "with exclusive(sys.argv[1], sys.argv[2]):\n    print('held', flush=True)\n    sys.stdin.read()\n")

    @contextlib.contextmanager
    def hold(folder, name="folder"):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.Popen([sys.executable, "-c", code, str(folder), name], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, cwd=root, env=env)
        try:
            assert proc.stdout.readline().strip() == "held", "the lock-holding process did not start"
            yield proc.pid
        finally:
            proc.stdin.close()
            proc.wait(timeout=30)
    return hold
