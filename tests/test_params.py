"""Every notebook parameter is checked before work starts: a bad value names the parameter."""
import ast
from pathlib import Path

import papermill as pm
import pytest

from coda_utils import params

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

#: one bad value per parameter of every notebook (a test below checks that none is missing)
BAD = {
    "dataset": "foo", "data_root": "/no/such/dir", "split": "validation", "model": "no/such/model/dir", "size": 4,
    "resize": "stretch", "batch_size": 0, "num_workers": -1, "device": "gpu", "dtype": "float8", "class_limit": 0,
    "per_class_limit": "ten", "rebuild": "yes", "run_dir": 3, "figures_dir": 5, "progress": "no", "ipc": "ten",
    "n_neighbors": 1, "min_cluster_size": 1.5, "min_samples": 0, "selection_seeds": [1, 1], "pca_dims": 1,
    "plot_class": -1, "refiner": 7, "refiner_start": 0.0, "gamma": -0.1, "guide_fraction": 1.5, "variant": "bounded",
    "cfg_scale": 0.5, "steps": 0, "prompt_template": "no placeholder", "set_suffix": "a/b",
    "threads": 0, "attention_slicing": 1, "vae_tiling": "False", "judge_dir": "/no/such/judge", "trajectory_class": -2, "step_shown": -1, "curve_every": 0,
    "test_root": "/no/such/test", "test_split": 4, "methods": "coda g", "distilled": "/no/such/set", "repeats": 0,
    "arch": "vgg11", "protocol": "mtt", "epochs": 0, "eval_every": 0, "precision": "fp16", "image_size": 2,
    "test_limit": 0, "vae_latent_channels": 0, "round_trip": 3, "teacher": 5, "teacher_epochs": 0, "out_dir": None, "sweeps": ["colour"], "n_neighbors_grid": [1], "min_cluster_size_grid": [],
    "gamma_grid": [-1.0], "guide_fraction_grid": [2.0], "variant_grid": ["bounded"], "variant_gamma_grid": ["x"],
    "ipc_grid": [0], "features_grid": ["clip"], "publish": "yes", "results": "runs/*/results.csv", "selection_seed": -1,
    "ablations_dir": 1, "caption": None, "name": "a b", "seed": -1, "vae_steps": -1, "unet_steps": 1.5,
    "decoder_steps": None, "vae_batch": 0, "unet_batch": 0, "vae_channels": [], "unet_channels": [0], "unet_plain_levels": -1,
    "text_width": 0, "latent_passes": 0, "pool_limit": 0, "tokenizer_dir": 3, "judge_steps": -1,
    "fidelity_samples": 0, "fd_target_images": 1, "sampling_steps": 0, "overwrite_shipped": "no", "work_dir": None,
    "write_card": "yes", "train": "yes", "fast": "yes", "holdout_fraction": 1.0,
}


#: where one notebook's parameter of the same name takes other values (00 writes its judge; 03 can
#: generate only unguided, text_prompt and coda_g, 04 evaluates any set name)
BAD_IN = {("00_build_prior", "judge_dir"): 5, ("03_generate", "methods"): ["coda_r"]}


def test_each_parameter_has_one_bad_value():
    """A key given twice in ``BAD`` would silently drop its first value (a literal dict keeps the last)."""
    tree = ast.parse(Path(__file__).read_text())
    literal = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                   and any(isinstance(t, ast.Name) and t.id == "BAD" for t in node.targets))
    keys = [k.value for k in literal.keys]
    assert sorted(k for k in set(keys) if keys.count(k) > 1) == []


def _defaults(notebook: str, tmp_path: Path) -> dict:
    d = {k: ast.literal_eval(v["default"]) for k, v in pm.inspect_notebook(ROOT / "notebooks" / f"{notebook}.ipynb").items()}
    if notebook == "06_figures":
        d["run_dir"] = str(tmp_path)  # 06 draws an existing run
    return d


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_parameter_has_a_checker_and_the_defaults_pass(notebook, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    defaults = _defaults(notebook, tmp_path)
    assert set(defaults) == set(params.SPECS[notebook]), "parameters and checkers differ"
    assert set(defaults) <= set(BAD), f"no bad value for {sorted(set(defaults) - set(BAD))}"
    params.check(notebook, defaults)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_the_defaults_pass_from_another_working_directory(notebook, monkeypatch, tmp_path):
    """nbval runs a notebook in its own folder: shipped models are found as the loaders find them."""
    defaults = _defaults(notebook, tmp_path)
    monkeypatch.chdir(tmp_path)
    params.check(notebook, defaults)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_each_bad_value_is_refused_naming_its_parameter(notebook, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    defaults = _defaults(notebook, tmp_path)
    for name in defaults:
        bad = BAD_IN.get((notebook, name), BAD[name])
        with pytest.raises(params.ParameterError, match=f"parameter `{name}(\\[0\\])?` = "):
            params.check(notebook, {**defaults, name: bad})


def test_cross_parameter_rules(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    d = _defaults("04_evaluate", tmp_path)
    with pytest.raises(params.ParameterError, match="`data_root`.*ImageFolder tree"):
        params.check("04_evaluate", {**d, "dataset": "imagenette"})
    with pytest.raises(params.ParameterError, match="`test_root`"):
        params.check("04_evaluate", {**d, "dataset": "imagenette", "data_root": str(tmp_path)})
    with pytest.raises(params.ParameterError, match="`selection_seeds`.*one seed"):
        params.check("04_evaluate", {**d, "methods": "coda_g", "distilled": str(tmp_path)})
    params.check("04_evaluate", {**d, "methods": "coda_g", "distilled": str(tmp_path), "selection_seeds": 3})
    with pytest.raises(params.ParameterError, match="`methods`.*one method"):
        params.check("04_evaluate", {**d, "methods": ["coda_g", "coda_r"], "distilled": str(tmp_path), "selection_seeds": 3})
    with pytest.raises(params.ParameterError, match="`methods` = 'coda_x': not a method of the study"):
        params.check("04_evaluate", {**d, "methods": "coda_x", "run_dir": str(tmp_path)})
    (tmp_path / "sets" / "coda_x_ipc10_seed0").mkdir(parents=True)  # a set of another name made by hand
    params.check("04_evaluate", {**d, "methods": "coda_x", "run_dir": str(tmp_path)})


def test_messages_say_what_is_valid(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    d = _defaults("03_generate", tmp_path)
    with pytest.raises(params.ParameterError, match=r"`steps` = 0: expected an integer >= 1"):
        params.check_generate({**d, "steps": 0})
    with pytest.raises(params.ParameterError, match=r"`guide_fraction` = 1.5: expected a number >= 0.0 and <= 1.0"):
        params.check_generate({**d, "guide_fraction": 1.5})
    with pytest.raises(params.ParameterError, match=r"choose one of fashion-mnist, folder, imagenette"):
        params.check_generate({**d, "dataset": "foo"})


# --------------------------------------------------------------------------------------
# Bounds that know the model and the data (one test per bound)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("notebook", ["03_generate", "05_ablations"])
def test_steps_are_bounded_by_the_schedulers_training_timesteps(notebook, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    d = _defaults(notebook, tmp_path)
    assert params.train_timesteps(d["model"]) == 1000  # the shipped prior's DPM-Solver++ schedule
    params.check(notebook, {**d, "steps": 1000})
    with pytest.raises(params.ParameterError, match=r"`steps` = 100000: .*trained with 1000 timesteps.*steps <= 1000"):
        params.check(notebook, {**d, "steps": 100000})


def test_fewer_than_two_classes_are_refused_at_01(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    d = _defaults("01_encode", tmp_path)
    with pytest.raises(params.ParameterError, match=r"`class_limit` = 1: expected an integer >= 2"):
        params.check_encode({**d, "class_limit": 1})
    tree = tmp_path / "train"
    (tree / "n01440764").mkdir(parents=True)
    (tree / ".cache").mkdir()  # hidden folders are not classes
    with pytest.raises(params.ParameterError, match=r"`data_root` = .*1 class\(es\).*at least 2 classes"):
        params.check_encode({**d, "dataset": "folder", "data_root": str(tree)})
    (tree / "n02102040").mkdir()
    params.check_encode({**d, "dataset": "folder", "data_root": str(tree)})


def test_plot_class_is_bounded_by_the_number_of_classes(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    d = _defaults("02_discover", tmp_path)
    params.check_discover({**d, "plot_class": 9})
    with pytest.raises(params.ParameterError, match=r"`plot_class` = 10: the data has 10 classes"):
        params.check_discover({**d, "plot_class": 10})
    with pytest.raises(params.ParameterError, match=r"`plot_class` = 3: the data has 3 classes"):
        params.check_discover({**d, "plot_class": 3, "class_limit": 3})


@pytest.mark.parametrize("notebook", ["02_discover", "03_generate", "04_evaluate"])
def test_ipc_is_bounded_by_per_class_limit(notebook, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    d = _defaults(notebook, tmp_path)
    params.check(notebook, {**d, "ipc": 10, "per_class_limit": 10})
    with pytest.raises(params.ParameterError, match=r"`ipc` = 11: per_class_limit = 10 .*ipc <= 10"):
        params.check(notebook, {**d, "ipc": 11, "per_class_limit": 10})
