"""R without the noise fill (issue 27, beyond the paper): ``coda_r_no_noise_fill`` is stage 2's
discovery run again per seed without the exactly-IPC step's fill from HDBSCAN's noise
(coda_utils.scale.discover), saved beside the seed's discovery and exported as its own set."""
import numpy as np
import pytest

from coda_utils import discovery, encoding, params, rundir, scale, setfolder

IPC = 4
SMALL = {"class_limit": 2, "per_class_limit": 40}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("nofill")
    p = scale.notebook_parameters("01", {"run_dir": str(root), "progress": False, **SMALL})
    scale.encode(p)
    p2 = scale.notebook_parameters("02", {"run_dir": str(root), "progress": False, "ipc": IPC, "selection_seeds": [0],
                                         **SMALL})
    return rundir.RunDir(root), p2


def test_notebook_02_exports_the_papers_three_selections_unless_asked(run):
    r, p = run
    assert params.notebook_defaults("02_discover")["methods"] == list(rundir.REAL_METHODS)
    out = scale.discover(p, log=None)
    assert {m for m, _ in out.sets} == set(rundir.REAL_METHODS)
    assert not r.discovery(IPC, 0, noise_fill=False).exists()


def test_no_noise_fill_is_discovery_without_the_fill_saved_beside_it_and_resumed(run):
    r, p = run
    lines = []
    out = scale.discover(p, ["coda_r", rundir.NO_NOISE_FILL], log=lines.append)
    cache = encoding.LatentCache.load(r.latents)
    want = discovery.discover(cache, IPC, seed=0, progress=False, noise_fill=False)
    got = discovery.load_discovery(r.discovery(IPC, 0, noise_fill=False))
    assert got.params.get("noise_fill") is False
    assert np.array_equal(out.selections[rundir.NO_NOISE_FILL, 0], want.positions)
    assert all("noise_fill" not in d.strategies for d in got.per_class)
    # its own set, whose manifest says how it was made; coda_r's discovery is untouched
    m = setfolder.read_manifest(r.set_dir(rundir.NO_NOISE_FILL, IPC, 0))
    assert m["method"] == rundir.NO_NOISE_FILL and m["discovery"]["params"]["noise_fill"] is False
    assert "noise_fill" not in discovery.load_discovery(r.discovery(IPC, 0)).params
    # run again: both discoveries are found (same settings, same cache) and the sets kept
    lines.clear()
    scale.discover(p, ["coda_r", rundir.NO_NOISE_FILL], log=lines.append)
    assert any("found" in line for line in lines) and sum("(kept)" in line for line in lines) == 2


def test_a_discovery_made_with_the_fill_is_not_taken_for_one_without(run):
    r, p = run
    scale.discover(p, ["coda_r"], log=None)
    cache = encoding.LatentCache.load(r.latents)
    path = r.discovery(IPC, 0)
    assert scale._saved_discovery(path, cache, {**p, "seed": 0}) is not None
    assert scale._saved_discovery(path, cache, {**p, "seed": 0, "noise_fill": False}) is None


def test_stage_2_names_its_selections_when_asked_for_another():
    with pytest.raises(params.ParameterError, match="coda_r_no_noise_fill"):
        scale.discover({"run_dir": ".", "selection_seeds": [0], "ipc": 1}, ["coda_g"])
    check = params.SPECS["02_discover"]["methods"]
    check("methods", ["coda_r", rundir.NO_NOISE_FILL], {})
    with pytest.raises(params.ParameterError):
        check("methods", ["coda_g"], {})
