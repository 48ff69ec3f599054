"""The GPU recipe (notebooks/README.md) end to end on an ImageNet-like tree, on the CPU.

The commands a GPU user runs on ImageNette (01 -> 02 -> 03 -> 04 with ``dataset imagenette``),
with a tiny random SDXL-structured pipeline instead of SDXL, two images per class, one selection
seed and a few epochs: the tree has mixed sizes, extreme aspect ratios, grayscale, RGBA and CMYK
images, a truncated file, a non-image file and a nested folder (tests/imagenet_like.py).
"""
import json
from pathlib import Path

import pandas as pd
import papermill as pm
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def _run(notebook: str, out: Path, **parameters) -> None:
    pm.execute_notebook(ROOT / "notebooks" / notebook, out / notebook, parameters=parameters, cwd=str(ROOT),
                        progress_bar=False, kernel_name="python3")


@pytest.mark.slow
def test_gpu_recipe_on_an_imagenet_like_tree(imagenet_like, tmp_path):
    from coda_utils.tiny_pipelines import tiny_sdxl_pipeline

    root, info = imagenet_like
    model = tmp_path / "tiny-sdxl"
    tiny_sdxl_pipeline(tmp_path / "work").save_pretrained(model)
    run, figs = tmp_path / "run", tmp_path / "figures"
    data = dict(dataset="imagenette", data_root=str(root / "train"), model=str(model), run_dir=str(run),
                figures_dir=str(figs), progress=False)
    _run("01_encode.ipynb", tmp_path, **data)
    _run("02_discover.ipynb", tmp_path, **data, ipc=2, selection_seeds=[0])
    _run("03_generate.ipynb", tmp_path, **data, ipc=2, selection_seeds=[0], steps=2, batch_size=8, gamma=0.05,
         judge_dir=None, trajectory_class=0)
    for method in ("coda_r", "coda_g", "random_real"):
        _run("04_evaluate.ipynb", tmp_path, dataset="imagenette", data_root=str(root / "train"),
             test_root=str(root / "val"), methods=method, ipc=2, selection_seeds=[0], arch="resnet_ap10", protocol="idc",
             image_size=32, epochs=2, run_dir=str(run), progress=False)

    cache = json.loads((run / "latents" / "cache.json").read_text())
    policy = cache["resize_policy"]
    assert policy["mode"] == "squash" and policy["native"] is None and policy["export_size"] == [64, 64]
    assert policy["sizes"]["images"] == info["images"] and policy["sizes"]["distinct"] > 5
    for name in ("coda_r_ipc2_seed0", "kmeans_ipc2_seed0", "herding_ipc2", "coda_g_ipc2_seed0", "random_real_ipc2_seed0"):
        manifest = json.loads((run / "sets" / name / "manifest.json").read_text())
        assert manifest["resize_policy"]["mode"] == "squash", name
        assert len(manifest["files"]) == 20
        with Image.open(run / "sets" / name / manifest["files"][0]) as im:
            assert im.size == (64, 64), name  # R and G exported at one size
    res = pd.concat(pd.read_csv(p) for p in run.glob("eval/*/results.csv"))
    assert sorted(res["method"]) == ["coda_g", "coda_r", "random_real"] and (res["protocol"] == "idc").all()


@pytest.mark.slow
def test_ablations_on_an_imagenet_like_tree(imagenet_like, tmp_path):
    """Notebook 05 on an ImageFolder tree: a held-out part of the train split judges the points
    (recorded, never the val split), under the idc protocol with ResNet-AP-10, at one size."""
    from coda_utils.tiny_pipelines import tiny_sdxl_pipeline

    root, info = imagenet_like
    model = tmp_path / "tiny-sdxl"
    tiny_sdxl_pipeline(tmp_path / "work").save_pretrained(model)
    out = tmp_path / "ablations"
    _run("05_ablations.ipynb", tmp_path, dataset="imagenette", data_root=str(root / "train"), model=str(model),
         out_dir=str(out), sweeps=["gamma"], gamma_grid=[0.05], selection_seeds=[0], ipc=2, steps=2, arch="resnet_ap10",
         protocol="idc", image_size=32, epochs=2, holdout_fraction=0.25, progress=False)
    holdout = json.loads((out / "holdout.json").read_text())
    assert holdout["fraction"] == 0.25 and sum(holdout["fit_counts"]) + sum(holdout["val_counts"]) == info["images"]
    res = pd.read_csv(out / "gamma" / "gamma0.05" / "results.csv")
    assert len(res) == 1 and res["protocol"].iloc[0] == "idc" and res["arch"].iloc[0] == "resnet_ap10"
    point = json.loads((out / "gamma" / "gamma0.05" / "point.json").read_text())
    assert point["evaluated_on"] == "imagenette-train-val" and point["protocol"] == "idc"
    with Image.open(next((out / "gamma" / "gamma0.05" / "seed0").rglob("*.png"))) as im:
        assert im.size == (64, 64)  # generated at the cache's export size, as in notebook 03
