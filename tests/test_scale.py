"""Scale-out with accelerate (coda_utils.parallel, coda_utils.scale): two CPU processes (gloo)
write exactly the bytes one process writes, for encoding (01) and generation (03), also when
they resume a job that was killed; evaluation (04) trains the same networks to the same
accuracies. Each test launches real processes with ``accelerate launch``."""
import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coda_utils import encoding, evaluation, parallel, rundir, scale
from coda_utils.params import ParameterError
from coda_utils.io import file_record, write_json

pytestmark = pytest.mark.slow

SMALL = ["-p", "class_limit", "4", "-p", "per_class_limit", "40"]
GENERATE = ["-p", "ipc", "3", "-p", "steps", "3", "-p", "batch_size", "5", "-y", "selection_seeds: [0, 1]",
            "-y", "methods: [unguided, text_prompt, coda_g]", "-p", "judge_dir", "None", *SMALL]  # the study's methods


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scale(stage: str, run_dir: Path, args: list[str], processes: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "coda_utils.scale", stage, "-p", "run_dir", str(run_dir), *args]
    if processes > 1:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), "-m", *cmd[2:]]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert f"done on {processes} process(es)" in res.stdout


def _digest(root: Path, pattern: str) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob(pattern))}


def _manifests(root: Path) -> dict[str, dict]:
    """Every set's manifest without what differs from call to call (its time, its versions)."""
    out = {}
    for p in sorted(root.rglob("manifest.json")):
        m = json.loads(p.read_text())
        for k in ("generation_seconds_this_call", "versions"):
            m.pop(k, None)
        out[str(p.relative_to(root))] = m
    return out


def _fake_discovery(run_dir: Path, ipc: int, seeds) -> None:
    """Representatives for 03 without running 02: latents of the cache (seed s: images s..s+ipc)."""
    run = rundir.RunDir(run_dir)
    cache = encoding.LatentCache.load(run.latents)
    for s in seeds:
        lat = np.concatenate([cache.latents(c)[s:s + ipc] for c in range(cache.num_classes)])
        path = run.discovery(ipc, s).with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, latents=lat, labels=np.repeat(np.arange(cache.num_classes), ipc))
        write_json(path.with_suffix(".json"), {"files": {path.name: file_record(path)}})  # the record 02 writes last


@pytest.fixture(scope="module")
def one_and_two(tmp_path_factory):
    """The same encoding and generation with one process (``one``) and two (``two``)."""
    root = tmp_path_factory.mktemp("scale")
    for name, n in (("one", 1), ("two", 2)):
        _scale("01", root / name, SMALL, n)
        _fake_discovery(root / name, 3, [0, 1])
        _scale("03", root / name, GENERATE, n)
    return root / "one", root / "two"


def test_two_processes_encode_the_bytes_of_one(one_and_two):
    one, two = one_and_two
    a, b = _digest(one / "latents", "*.npy"), _digest(two / "latents", "*.npy")
    assert len(a) == 8 and a == b  # 4 classes x (latents, positions)
    assert json.loads((one / "latents" / "cache.json").read_text()) == json.loads((two / "latents" / "cache.json").read_text())


def test_two_processes_generate_the_bytes_of_one(one_and_two):
    one, two = one_and_two
    a, b = _digest(one / "sets", "*.png"), _digest(two / "sets", "*.png")
    assert len(a) == 3 * 2 * 4 * 3 and a == b  # methods x seeds x classes x ipc
    assert _manifests(one / "sets") == _manifests(two / "sets") and len(_manifests(one / "sets")) == 6


def test_a_killed_two_process_job_resumes_to_the_same_bytes(one_and_two, tmp_path):
    import shutil

    one, two = one_and_two
    run = tmp_path / "resumed"
    shutil.copytree(two, run)
    # what a job killed half-way leaves: a class of the cache not finished (not in cache.json's
    # list, its files gone), a set with images missing and no manifest yet
    meta = json.loads((run / "latents" / "cache.json").read_text())
    meta["done"] = [0, 2]
    (run / "latents" / "cache.json").write_text(json.dumps(meta))
    for f in ("class_0001.npy", "class_0001.index.npy", "class_0003.index.npy"):
        (run / "latents" / f).unlink()
    coda_g = run / "sets" / "coda_g_ipc3_seed1"
    (coda_g / "manifest.json").unlink()
    removed = sorted(coda_g.rglob("*.png"))[::4]
    for p in removed:
        p.unlink()
    _scale("01", run, SMALL, 2)
    _scale("03", run, GENERATE, 2)
    assert _digest(run / "latents", "*.npy") == _digest(one / "latents", "*.npy")
    assert json.loads((run / "latents" / "cache.json").read_text())["done"] == [0, 1, 2, 3]
    assert _digest(run / "sets", "*.png") == _digest(one / "sets", "*.png")
    assert _manifests(run / "sets") == _manifests(one / "sets")


def test_two_processes_evaluate_the_networks_of_one(one_and_two, tmp_path):
    import shutil

    one, _ = one_and_two
    args = ["-y", "methods: [random_real, unguided]", "-p", "ipc", "3", "-y", "selection_seeds: [0, 1]",
            "-p", "epochs", "2", "-p", "test_limit", "300", "-p", "precision", "fp32"]
    results = {}
    for n in (1, 2):
        run = tmp_path / f"eval{n}"
        shutil.copytree(one, run)
        _scale("04", run, args, n)
        r = rundir.RunDir(run)
        assert not list((run / "eval").rglob("results.rank*.csv"))  # merged into each method's file
        results[n] = {m: evaluation.read_results(r.results(m, 3)) for m in ("random_real", "unguided")}
    for m in ("random_real", "unguided"):
        a, b = results[1][m], results[2][m]
        assert len(a) == 2 and list(a["seed"]) == list(b["seed"]) == [0, 1000]
        assert list(a["acc"]) == list(b["acc"])


def test_scale_takes_the_notebooks_parameters_and_refuses_unknown_ones():
    p = scale.notebook_parameters("03", {"ipc": 3})
    assert p["ipc"] == 3 and p["gamma"] == 0.2 and p["run_dir"] == "runs/tutorial"  # the notebook's defaults
    # and its advanced settings (params.ADVANCED), which its parameters cell does not show
    assert p["guide_fraction"] == 0.9 and p["batch_size"] == 50 and p["refiner"] is None
    assert scale.notebook_parameters("03", {"refiner_start": 0.5, "batch_size": 4})["batch_size"] == 4
    with pytest.raises(ParameterError, match="`refiner_start`"):
        scale.notebook_parameters("03", {"refiner_start": 0.0})
    with pytest.raises(ParameterError, match="no parameter gama"):
        scale.notebook_parameters("03", {"gama": 0.1})
    with pytest.raises(ParameterError, match="`steps`"):
        scale.notebook_parameters("03", {"steps": 0})
    # papermill's order: a parameters file, then -y, then -p
    f = Path(__file__).parent.parent / "notebooks" / "params" / "ablations.yaml"
    stage, over = scale._parse(["05", "-f", str(f), "-y", "{epochs: 5, selection_seeds: [4]}", "-p", "epochs", "7"])
    assert stage == "05" and over["epochs"] == 7 and over["selection_seeds"] == [4] and over["out_dir"] == "runs/ablations"


def test_share_splits_round_robin_and_covers_everything():
    class Procs:
        def __init__(self, i, n):
            self.process_index, self.num_processes = i, n

    units = list(range(11))
    parts = [parallel.share(units, Procs(i, 3)) for i in range(3)]
    assert parts[0] == [0, 3, 6, 9] and sorted(sum(parts, [])) == units
    assert parallel.share(units, None) == units and parallel.world(None) == 1 and parallel.is_main(None)
