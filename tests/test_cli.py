"""The ``coda`` command (coda_utils.cli): help, the notebooks' parameters and checks, one-line errors,
and CoDA end to end on a small ImageFolder tree (3 classes of 12 Fashion-MNIST images as PNG files)
with the shipped prior and with a tiny SDXL-structured pipeline; a second run finds everything done."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coda_utils import cli, params, rundir

ROOT = Path(__file__).resolve().parent.parent
CLASSES = {"bag": 8, "trouser": 1, "tshirt": 0}  # folder -> Fashion-MNIST label


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """``train/`` (12 images per class) and ``test/`` (6 per class) of Fashion-MNIST ``target`` as 28x28 PNGs."""
    from coda_utils.datasets import load_fashion_mnist

    root = tmp_path_factory.mktemp("tree")
    data = load_fashion_mnist("target")
    for folder, label in CLASSES.items():
        idx = [int(i) for i in (data.labels == label).nonzero()[0][:18]]
        for split, part in (("train", idx[:12]), ("test", idx[12:])):
            (root / split / folder).mkdir(parents=True)
            for k, image in enumerate(data.load(part)):
                Image.fromarray(image[0].numpy()).save(root / split / folder / f"{k:03d}.png")
    return root


def _coda(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------------------
# Help, parameters, errors (no model work)
# --------------------------------------------------------------------------------------
def test_coda_help_lists_the_commands():
    res = subprocess.run([sys.executable, "-m", "coda_utils.cli", "--help"], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0
    for command in ("distill", "encode", "discover", "generate", "evaluate"):
        assert f"    {command} " in res.stdout
    assert "coda distill --data-root" in res.stdout  # the examples, as written


@pytest.mark.parametrize("command, options", [
    ("distill", ["--data-root", "--out", "--ipc N", "(default: 10)", "--seeds", "--methods", "(default: ['coda_r', 'coda_g'])",
                 "--model", "(default: data/models/fashion-prior)", "--gamma", "--steps", "--rebuild", "-p NAME VALUE"]),
    ("encode", ["--data-root", "--out", "--model", "--rebuild", "--per-class-limit"]),
    ("discover", ["--ipc", "--seeds", "--n-neighbors", "--min-cluster-size", "(default: ['coda_r'])"]),
    ("generate", ["--gamma", "(default: 0.2)", "--steps", "(default: 25)", "(default: ['coda_g'])"]),
    ("evaluate", ["--set", "--test-root", "--networks", "--epochs", "--protocol", "(default: dc)", "--arch"]),
])
def test_every_command_has_help_with_its_defaults(capsys, command, options):
    with pytest.raises(SystemExit) as e:
        cli.main([command, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.startswith(f"usage: coda {command}")
    text = " ".join(out.split())  # argparse wraps the help text
    for option in options:
        assert option in text, option
    if command != "evaluate":  # a required option shows no "(default: None)"
        assert "resumes or skips what is there) --" in text


def test_the_commands_pass_every_parameter_of_the_notebooks(tree, tmp_path):
    """The parameters a command gives a stage are the notebook's own (its parameters cell and its
    advanced settings): none missing, none unknown; checked by the notebook's check."""
    ap = cli.build_parser()
    args = ap.parse_args(["distill", "--data-root", str(tree / "train"), "--out", str(tmp_path / "run"), "--ipc", "3"])
    for stage, values in (("encode", cli._encode_values(args)), ("discover", cli._discover_values(args)),
                          ("generate", cli._generate_values(args, ["coda_g"]))):
        p = cli.stage_parameters(stage, values)
        assert set(p) == set(params.notebook_defaults(cli.NOTEBOOKS[stage])), stage
    set_dir = tmp_path / "run" / "sets" / "coda_r_ipc3_seed4"
    from coda_utils import setfolder

    setfolder.write_set(set_dir, np.zeros((6, 1, 4, 4), dtype=np.uint8), [0, 0, 1, 1, 2, 2], list(CLASSES),
                        {"method": "coda_r", "ipc": 2, "selection_seed": 4})
    args = ap.parse_args(["evaluate", "--set", str(set_dir), "--test-root", str(tree / "test")])
    values, _ = cli._evaluate_values(args)
    p = cli.stage_parameters("evaluate", values)
    assert set(p) == set(params.notebook_defaults("04_evaluate"))
    assert p["methods"] == "coda_r" and p["ipc"] == 2 and p["selection_seeds"] == [4] and p["run_dir"] == str(tmp_path / "run")


def test_the_method_lists_are_the_stages_own():
    from coda_utils import scale

    assert cli.REAL == rundir.ALL_REAL_METHODS == scale.REAL_METHODS + rundir.EXTRA_REAL_METHODS
    check = params.SPECS["03_generate"]["methods"]
    check("methods", list(cli.GENERATED), {})
    with pytest.raises(params.ParameterError):
        check("methods", ["coda_r"], {})


@pytest.mark.parametrize("argv, says", [
    (["distill", "--data-root", "{tmp}/nowhere", "--out", "{tmp}/run"], "--data-root '{tmp}/nowhere': no such directory"),
    (["distill", "--data-root", "{tree}/train", "--out", "{tmp}/run", "--ipc", "13"],
     "--ipc 13: ipc=13 is larger than 3 class(es)"),
    (["distill", "--data-root", "{tree}/train", "--out", "{tmp}/run", "--steps", "0"], "--steps 0: expected an integer >= 1"),
    (["distill", "--data-root", "{tree}/train", "--out", "{tmp}/run", "-p", "dtype", "float8"],
     "-p dtype 'float8': choose one of float32, float16, bfloat16"),
    (["distill", "--data-root", "{tree}/train", "--out", "{tmp}/run", "-p", "gama", "1"], "-p gama: no stage of `coda distill`"),
    (["distill", "--data-root", "{tree}/train", "--out", "{tmp}/run", "-p", "ipc", "1"], "-p ipc: set it with --ipc"),
    (["distill", "--data-root", "{tree}/train", "--out", "{tmp}/run", "--model", "{tmp}/no-model"], "--model '{tmp}/no-model'"),
    (["distill", "--out", "{tmp}/run"], "--data-root None: dataset 'folder' is an ImageFolder tree"),
    (["discover", "--data-root", "{tree}/train", "--out", "{tmp}/run", "--ipc", "2"],
     "--out {tmp}/run: no latent cache in {tmp}/run/latents; run `coda encode`"),
    (["evaluate", "--set", "{tmp}/nowhere", "--test-root", "{tree}/test"], "--set {tmp}/nowhere: no such directory"),
    (["evaluate", "--set", "{tree}/train", "--test-root", "{tree}/test"], "not a finished set folder"),
])
def test_a_bad_input_is_one_line_naming_the_option(capsys, tree, tmp_path, argv, says):
    fill = {"tmp": tmp_path, "tree": tree}
    code, out, err = _coda(capsys, *[a.format(**fill) for a in argv])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"coda {argv[0]}: error: ") and "Traceback" not in err
    assert says.format(**fill) in err, err
    assert not (tmp_path / "run" / "latents").exists()  # stopped before any work


def test_a_bug_keeps_its_traceback(capsys, monkeypatch, tree, tmp_path):
    def broken(p, methods=()):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "run_encode", lambda p: None)
    monkeypatch.setattr(cli, "run_discover", broken)
    with pytest.raises(ZeroDivisionError):
        cli.main(["distill", "--data-root", str(tree / "train"), "--out", str(tmp_path / "run"), "--ipc", "2"])


def test_library_errors_are_said_in_the_commands_words():
    assert cli._user_message("parameter `selection_seeds` = [0, 0]: expected") == "--seeds [0, 0]: expected"
    assert cli._user_message("x (parameter `steps`, at most 1000)") == "x (--steps, at most 1000)"
    assert cli._user_message("parameter `vae_tiling` = 3: expected\nTrue") == "-p vae_tiling 3: expected True"
    assert cli._user_message("Delete it or pass rebuild=True to encode again.").endswith("pass --rebuild to encode again.")


def test_the_library_and_the_command_need_no_notebook_tooling():
    """With papermill, nbformat, nbval, Jupyter and IPython unimportable, every module of coda_utils
    imports and `coda distill --help` works (they are the `notebooks` extra)."""
    code = """
import importlib, pkgutil, sys
BLOCKED = ("papermill", "nbformat", "nbclient", "nbval", "jupyter", "jupyterlab", "jupyter_client", "ipykernel",
           "ipywidgets", "IPython")
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked")
sys.meta_path.insert(0, Block())
import coda_utils
for m in pkgutil.iter_modules(coda_utils.__path__):
    importlib.import_module(f"coda_utils.{m.name}")
from coda_utils import cli
try:
    cli.main(["distill", "--help"])
except SystemExit as e:
    assert e.code == 0
assert not [n for n in sys.modules if n.split(".")[0] in BLOCKED]
print("imported", len(list(pkgutil.iter_modules(coda_utils.__path__))))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "usage: coda distill" in res.stdout and "imported" in res.stdout


# --------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------
def _images(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*.png"))}


@pytest.mark.slow
def test_distill_then_evaluate_with_the_shipped_prior(capsys, tree, tmp_path):
    run = tmp_path / "run"
    argv = ["distill", "--data-root", tree / "train", "--out", run, "--ipc", 3, "--seeds", 0, 1, "--steps", 3,
            "--methods", "coda_r", "coda_g", "unguided"]
    code, out, err = _coda(capsys, *argv)
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines if not line.startswith(" ")] == ["encode", "discover", "generate", "distill"]
    assert "3 of 3 classes encoded now" in out and "2 discoveries made" in out and "4 set(s) made" in out
    assert "encoding" in err and "discovery" in err and "coda_g" in err  # the progress bars, on stderr
    names = ["coda_r_ipc3_seed0", "coda_r_ipc3_seed1", "coda_g_ipc3_seed0", "coda_g_ipc3_seed1", "unguided_ipc3_seed0",
             "unguided_ipc3_seed1"]
    assert sorted(p.name for p in (run / "sets").iterdir()) == sorted(names)
    for name in names:  # the set folders notebooks 02 and 03 write, each with its manifest
        manifest = json.loads((run / "sets" / name / "manifest.json").read_text())
        assert manifest["method"] == name.split("_ipc")[0] and manifest["ipc"] == 3
        assert manifest["selection_seed"] == int(name[-1]) and manifest["channels"] == 1
        assert sorted(p.name for p in (run / "sets" / name).iterdir() if p.is_dir()) == sorted(CLASSES)
        assert len(manifest["files"]) == 9
    r = json.loads((run / "sets" / "coda_r_ipc3_seed0" / "manifest.json").read_text())
    assert "discovery" in r and r["image_size"] == [28, 28]
    assert (run / "discovery" / "ipc3_seed1.npz").is_file() and (run / "latents" / "cache.json").is_file()
    stages = json.loads((run / "versions.json").read_text())
    assert {"01_encode", "02_discover", "03_generate"} <= set(stages)

    # the same command again: everything found, nothing written
    before = _images(run / "sets")
    code, out, err = _coda(capsys, *argv, "--no-progress")
    assert code == 0, err
    assert "found complete, nothing to encode" in out and "every discovery found" in out and "every set found" in out
    assert out.count("(kept)") == 6 and err == ""
    assert _images(run / "sets") == before

    # an interrupted generation (images and the manifest gone) is finished by the single stage
    g = run / "sets" / "coda_g_ipc3_seed1"
    (g / "manifest.json").unlink()
    for p in sorted(g.rglob("*.png"))[::2]:
        p.unlink()
    code, out, err = _coda(capsys, "generate", "--data-root", tree / "train", "--out", run, "--ipc", 3, "--seeds", 0, 1,
                           "--steps", 3, "--no-progress")
    assert code == 0, err
    assert "generate: coda_g, ipc 3, seeds 0 1: 1 set(s) made, 1 kept" in out
    assert _images(run / "sets").keys() == before.keys() and (g / "manifest.json").is_file()

    # evaluate a set: networks trained, one results row each; again: found, not trained
    args = ["evaluate", "--set", run / "sets" / "coda_r_ipc3_seed1", "--test-root", tree / "test", "--epochs", 2,
            "--networks", 2, "--no-progress"]
    code, out, err = _coda(capsys, *args)
    assert code == 0, err
    assert sum(line.startswith("network ") for line in out.splitlines()) == 2 and "over 2 network(s) (convnet3, dc, 2 epochs, fp32)" in out
    from coda_utils import evaluation

    rows = evaluation.read_results(run / "eval" / "coda_r_ipc3" / "results.csv")
    assert list(rows.seed) == [1000, 1001] and list(rows.selection_seed) == [1, 1] and (rows.method == "coda_r").all()
    code, out, err = _coda(capsys, *args)
    assert code == 0 and out.count("(found in results)") == 2
    assert len(evaluation.read_results(run / "eval" / "coda_r_ipc3" / "results.csv")) == 2

    # guided generation from the k-means set: refused, one line, until that set is there; distill exports it
    gen = ["--data-root", tree / "train", "--out", run, "--ipc", 3, "--seeds", 0, 1, "--steps", 3, "--no-progress"]
    code, out, err = _coda(capsys, "generate", *gen, "--methods", "coda_g_kmeans")
    assert code == 2 and "--methods coda_g_kmeans: no kmeans set" in err and "coda discover --methods kmeans" in err
    code, out, err = _coda(capsys, "distill", *gen, "--methods", "coda_g_kmeans")
    assert code == 0, err
    assert "kmeans (seed 1)" in out and "coda_g_kmeans (seed 1)" in out
    assert json.loads((run / "sets" / "coda_g_kmeans_ipc3_seed0" / "manifest.json").read_text())["guided_by"] == "kmeans"


@pytest.mark.slow
def test_distill_with_a_tiny_sdxl_structured_pipeline(capsys, tree, tmp_path):
    """An SDXL-shaped model (3-channel VAE, two text encoders): R and G of one run have the same
    size and channels (the VAE's), as notebooks 02 and 03 export them."""
    from coda_utils.tiny_pipelines import tiny_sdxl_pipeline

    model = tmp_path / "tiny-sdxl"
    tiny_sdxl_pipeline(tmp_path / "work").save_pretrained(model)
    run = tmp_path / "run"
    code, out, err = _coda(capsys, "distill", "--data-root", tree / "train", "--model", model, "--out", run, "--ipc", 2,
                           "--steps", 2, "--gamma", 0.05, "-p", "batch_size", 8, "--no-progress")
    assert code == 0, err
    assert "distill: done" in out and "coda_r_ipc2_seed0, coda_g_ipc2_seed0" in out
    sizes = {}
    for name in ("coda_r_ipc2_seed0", "coda_g_ipc2_seed0"):
        manifest = json.loads((run / "sets" / name / "manifest.json").read_text())
        assert manifest["channels"] == 3 and len(manifest["files"]) == 6
        with Image.open(run / "sets" / name / manifest["files"][0]) as im:
            sizes[name] = (im.size, im.mode)
    assert sizes["coda_r_ipc2_seed0"] == sizes["coda_g_ipc2_seed0"] and sizes["coda_g_ipc2_seed0"][1] == "RGB"
    g = json.loads((run / "sets" / "coda_g_ipc2_seed0" / "manifest.json").read_text())
    assert g["model_id"] == str(model)
    # another model into the same run folder: its latent cache is refused, in one line
    code, out, err = _coda(capsys, "encode", "--data-root", tree / "train", "--out", run, "--no-progress")
    assert code == 2 and err.count("\n") == 1 and "made with other settings" in err and "--rebuild" in err
