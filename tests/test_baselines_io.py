import json

import numpy as np
import pytest

from coda_utils.baselines import check_ipc, export_selection, random_real
from coda_utils.io import atomic_write, write_json


def test_random_real_is_seeded_and_per_class(target):
    a, b, c = random_real(target, 10, seed=0), random_real(target, 10, seed=0), random_real(target, 10, seed=1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(np.unique(a)) == 100
    assert np.array_equal(np.bincount(target.labels[a], minlength=10), np.full(10, 10))


def test_ipc_larger_than_class_is_a_clear_error(target):
    small = target.subset(np.concatenate([target.class_indices(c)[:5] for c in range(10)]))
    with pytest.raises(ValueError, match="ipc=6 is larger than 10 class"):
        check_ipc(small, 6)
    with pytest.raises(ValueError, match="positive integer"):
        random_real(small, 0)
    assert len(random_real(small, 5)) == 50


def test_export_selection_roundtrip(target, tmp_path):
    idx = random_real(target, 2, seed=3)
    out = export_selection(target, idx, tmp_path / "rr", "random_real", 2)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"] == "random_real" and len(manifest["files"]) == 20
    assert manifest["source_indices"] == target.source_indices[idx].tolist()
    from PIL import Image

    img = np.asarray(Image.open(out / manifest["files"][0]))
    assert img.shape == (28, 28) and np.array_equal(img, target.load(idx[:1]).numpy()[0, 0])


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    p = tmp_path / "x.json"
    write_json(p, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_write(p, "w") as fh:
            fh.write("partial")
            raise RuntimeError("interrupted")
    assert json.loads(p.read_text()) == {"a": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["x.json"]
