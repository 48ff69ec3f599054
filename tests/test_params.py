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
    "ipc_grid": [0], "features_grid": ["clip"], "selection_grid": ["discovery_umap"], "publish": "yes", "results": "runs/*/results.csv", "selection_seed": -1,
    "ablations_dir": 1, "caption": None, "name": "a b", "seed": -1, "vae_steps": -1, "unet_steps": 1.5,
    "decoder_steps": None, "vae_batch": 0, "unet_batch": 0, "vae_channels": [], "unet_channels": [0], "unet_plain_levels": -1,
    "text_width": 0, "latent_passes": 0, "pool_limit": 0, "tokenizer_dir": 3, "judge_steps": -1,
    "fidelity_samples": 0, "fd_target_images": 1, "psnr_images": 0, "sampling_steps": 0, "overwrite_shipped": "no", "work_dir": None,
    "write_card": "yes", "train": "yes", "fast": "yes", "holdout_fraction": 1.0, "noise_offset": -0.1,
    "background_caption_p": 1.5, "finetune_steps": -1, "finetune_batch": 0, "finetune_lr": -1.0,
    "finetune_noise_offset": -0.5, "finetune_background_caption_p": 2.0, "base_prior": 3,
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


def _cell(notebook: str) -> dict:
    """The notebook's ``parameters`` cell, as papermill reads it."""
    return {k: ast.literal_eval(v["default"]) for k, v in pm.inspect_notebook(ROOT / "notebooks" / f"{notebook}.ipynb").items()}


def _defaults(notebook: str, tmp_path: Path) -> dict:
    """Every parameter at its default: the ``parameters`` cell and the advanced settings."""
    d = params.notebook_defaults(notebook)
    if notebook == "06_figures":
        d["run_dir"] = str(tmp_path)  # 06 draws an existing run
    return d


#: issue 25: the knobs a newcomer touches, the only names a notebook's ``parameters`` cell keeps;
#: every other parameter is an advanced setting (``params.ADVANCED``)
KEEP = {
    "00_build_prior": {"train", "seed", "fidelity_samples", "sampling_steps", "cfg_scale", "device", "work_dir", "progress"},
    "01_encode": {"dataset", "model", "per_class_limit", "rebuild", "device", "run_dir", "progress"},
    "02_discover": {"dataset", "ipc", "selection_seeds", "n_neighbors", "min_cluster_size", "plot_class", "run_dir"},
    "03_generate": {"dataset", "model", "ipc", "gamma", "steps", "selection_seeds", "methods", "run_dir"},
    # test_limit: the tutorial's own value (the first 2,000 test images), not the study's (None, passed by the Makefile)
    "04_evaluate": {"dataset", "methods", "ipc", "selection_seeds", "epochs", "protocol", "device", "run_dir", "test_limit"},
    # per_class_limit: the tutorial's own value (200 images per class of target_fit), not the study's (None, in
    # notebooks/params/ablations.yaml)
    "05_ablations": {"dataset", "out_dir", "sweeps", "selection_seeds", "ipc", "gamma_grid", "epochs", "publish",
                     "per_class_limit"},
    "06_figures": {"run_dir", "results", "ipc", "selection_seed", "ablations_dir", "figures_dir", "caption", "name"},
}

#: one advanced setting per notebook and a valid value other than its default
OVERRIDE = {"00_build_prior": ("vae_steps", 10), "01_encode": ("batch_size", 8), "02_discover": ("min_samples", 5),
            "03_generate": ("guide_fraction", 0.5), "04_evaluate": ("repeats", 2), "05_ablations": ("gamma", 0.05),
            "06_figures": ("plot_class", 3)}


def _check_function(notebook: str):
    """The function the notebook's check cell calls (``params.check_<stage>(globals())``)."""
    import re

    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4)
    calls = [m for c in nb.cells if c.cell_type == "code" for m in re.findall(r"params\.(check_\w+)\(globals\(\)\)", c.source)]
    assert len(calls) == 1, f"{notebook}: expected one params.check_<stage>(globals()) call, found {calls}"
    return getattr(params, calls[0])


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_parameter_has_a_checker_and_the_defaults_pass(notebook, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    defaults = _defaults(notebook, tmp_path)
    assert set(defaults) == set(params.SPECS[notebook]), "parameters and checkers differ"
    assert set(defaults) <= set(BAD), f"no bad value for {sorted(set(defaults) - set(BAD))}"
    params.check(notebook, defaults)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_the_parameters_cell_keeps_only_the_newcomers_knobs(notebook):
    """The ``parameters`` cell holds the keep-list, every other parameter is an advanced setting
    (in ``params.ADVANCED``, not in the cell: a default in two places would drift)."""
    assert KEEP[notebook] | set(params.ADVANCED[notebook]) == set(params.SPECS[notebook])
    assert not KEEP[notebook] & set(params.ADVANCED[notebook])
    assert set(_cell(notebook)) == KEEP[notebook], (f"in the cell but advanced: {sorted(set(_cell(notebook)) - KEEP[notebook])}; "
                                                    f"missing: {sorted(KEEP[notebook] - set(_cell(notebook)))}")


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_the_check_cell_fills_in_every_advanced_default_and_an_override_wins(notebook, monkeypatch, tmp_path):
    """A namespace with only the keep-list names (the ``parameters`` cell run alone) gets every
    advanced setting at its default from the notebook's own check function; a name already
    there (papermill's ``-p`` / ``-f``, injected after the ``parameters`` cell) is kept."""
    monkeypatch.chdir(ROOT)
    check = _check_function(notebook)
    keep = {k: v for k, v in _defaults(notebook, tmp_path).items() if k in KEEP[notebook]}
    ns = dict(keep)
    check(ns)
    assert ns == {**keep, **{k: default for k, (default, _) in params.ADVANCED[notebook].items()}}
    name, value = OVERRIDE[notebook]
    assert params.ADVANCED[notebook][name][0] != value
    ns = {**keep, name: value}
    check(ns)
    assert ns[name] == value and set(ns) == set(params.SPECS[notebook])
    # a bad advanced value given by hand is refused, named
    with pytest.raises(params.ParameterError, match=f"parameter `{name}`"):
        check({**keep, name: BAD_IN.get((notebook, name), BAD[name])})


def test_filled_defaults_are_fresh_copies():
    """A notebook that appends to a filled-in list does not change the default of the next run."""
    a, b = {}, {}
    params.fill_defaults("05_ablations", a)
    a["ipc_grid"].append(99)
    params.fill_defaults("05", b)
    assert b["ipc_grid"] == [1, 10, 50] and params.ADVANCED["05_ablations"]["ipc_grid"][0] == [1, 10, 50]


def test_show_settings_lists_every_advanced_setting():
    table = params.show_settings("03")
    assert list(table.index) == list(params.ADVANCED["03_generate"]) and table.loc["guide_fraction", "default"] == "0.9"
    table = params.show_settings("03_generate", {"guide_fraction": 0.5})
    assert table.loc["guide_fraction", "value"] == "0.5" and table.loc["refiner_start", "value"] == "0.8"
    with pytest.raises(params.ParameterError, match="no notebook '07'"):
        params.show_settings("07")


# --------------------------------------------------------------------------------------
# The parameter files of notebooks/params/ (papermill -f, coda_utils.scale -f)
# --------------------------------------------------------------------------------------
#: the files of notebooks/params/ itself and their notebook; a preset folder holds NN_name.yaml
TOP_FILES = {"ablations.yaml": "05_ablations", "ipc50.yaml": "05_ablations", "prior.yaml": "00_build_prior"}
PRESETS = sorted((ROOT / "notebooks" / "params").rglob("*.yaml"))


def _notebook_of(path: Path) -> str:
    return TOP_FILES[path.name] if path.parent.name == "params" else path.stem


def test_every_parameter_file_is_known():
    for path in PRESETS:
        assert _notebook_of(path) in params.SPECS, f"{path}: name it after its notebook (NN_name.yaml)"
    assert {p.parent.name for p in PRESETS} >= {"params", "imagenette-sdxl", "imagenet-1k-ipc50"}


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: str(p.relative_to(ROOT / "notebooks" / "params")))
def test_each_parameter_file_names_its_notebooks_parameters_and_passes_the_check(path, monkeypatch, tmp_path):
    """Every name of a preset is a parameter of its notebook (papermill would only warn about a
    typo), and the notebook's check passes with the preset, on this machine: the ImageNet trees
    are replaced by a two-class tree, a CUDA device by the CPU where there is none."""
    import torch

    monkeypatch.chdir(ROOT)
    notebook = _notebook_of(path)
    values = params.read_parameter_file(path)
    unknown = set(values) - set(params.SPECS[notebook])
    assert not unknown, f"{path}: {notebook} has no parameter {sorted(unknown)}"
    for name in ("data_root", "test_root"):
        if isinstance(values.get(name), str) and values[name].startswith("/data/"):
            for c in ("n01440764", "n02102040"):
                (tmp_path / name / c).mkdir(parents=True, exist_ok=True)
            values[name] = str(tmp_path / name)
    if str(values.get("device", "")).startswith("cuda") and not torch.cuda.is_available():
        values["device"] = "cpu"
    ns = {**_defaults(notebook, tmp_path), **values}
    if notebook == "06_figures":
        ns["run_dir"] = str(tmp_path)
    _check_function(notebook)(ns)


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


def test_selection_sweep_names_match_the_sweeps_module():
    from coda_utils import sweeps

    assert params.SELECTIONS == tuple(sweeps.SELECTION_POINTS)
    p = params.notebook_defaults("05")
    bad = {**p, "sweeps": ["selection"], "selection_grid": ["discovery", "no_such_point"]}
    with pytest.raises(params.ParameterError, match="selection_grid"):
        params.check_ablations(bad)
