"""The run folder's names and the selection seeds of each method."""
from pathlib import Path

import pytest

from coda_utils import rundir
from coda_utils.rundir import RunDir


@pytest.mark.parametrize("value, seeds", [(3, [3]), ([0, 1, 2], [0, 1, 2]), ("0 1 2", [0, 1, 2]), ("0-4", [0, 1, 2, 3, 4]),
                                          ("2,5", [2, 5]), ([4.0, 1], [4, 1])])
def test_selection_seeds_accepts_one_or_a_list(value, seeds):
    assert rundir.selection_seeds(value) == seeds


@pytest.mark.parametrize("bad", [-1, [], "ten", [0.5], [1, 1], None, [True]])
def test_selection_seeds_rejects_bad_values_naming_the_parameter(bad):
    with pytest.raises(ValueError, match="selection_seeds"):
        rundir.selection_seeds(bad)


def test_set_names_carry_the_seed_except_for_deterministic_methods(tmp_path):
    run = RunDir(tmp_path / "study")
    assert run.set_dir("coda_g", 10, 3) == tmp_path / "study" / "sets" / "coda_g_ipc10_seed3"
    assert run.set_dir("coda_g", 10, 3, "_gamma0.1").name == "coda_g_ipc10_seed3_gamma0.1"
    assert run.set_dir("herding", 10, None) == run.set_dir("herding", 10, 7) == tmp_path / "study" / "sets" / "herding_ipc10"
    with pytest.raises(ValueError, match="pass seed="):
        run.set_dir("random_real", 10, None)
    assert run.discovery(50, 2).name == "ipc50_seed2.json" and run.results("kmeans", 1) == run.eval_dir("kmeans", 1) / "results.csv"
    assert run.latents == tmp_path / "study" / "latents" and not (tmp_path / "study").exists()  # naming creates nothing


def test_set_dirs_finds_every_seed_and_suffix_at_one_ipc_only(tmp_path):
    run = RunDir(tmp_path / "study")
    for ipc, seed, suffix in [(1, 0, ""), (1, 1, "_gamma0.1"), (10, 0, ""), (100, 0, "")]:
        run.set_dir("coda_g", ipc, seed, suffix).mkdir(parents=True)
    run.set_dir("herding", 1, None).mkdir()
    assert [d.name for d in run.set_dirs("coda_g", 1)] == ["coda_g_ipc1_seed0", "coda_g_ipc1_seed1_gamma0.1"]
    assert [d.name for d in run.set_dirs("coda_g", 10)] == ["coda_g_ipc10_seed0"]
    assert [d.name for d in run.set_dirs("herding", 1)] == ["herding_ipc1"]


def test_networks_for_gives_a_deterministic_method_as_many_networks_as_the_others_get_sets():
    assert rundir.networks_for("coda_r", [0, 1, 2], 1) == [(0, 1), (1, 1), (2, 1)]
    assert rundir.networks_for("herding", [0, 1, 2, 3, 4], 1) == [(0, 5)]
    assert rundir.networks_for("herding", [7], 2) == [(0, 2)]
    assert rundir.seeds_for("herding", [3, 4]) == [None] and rundir.seeds_for("kmeans", [3, 4]) == [3, 4]


def test_record_versions_keeps_every_stage(tmp_path):
    run = RunDir(tmp_path)
    v = run.record_versions("01_encode")
    for name in ("torch", "diffusers", "umap-learn", "pynndescent", "numba", "hdbscan", "scikit-learn", "numpy"):
        assert name in v, name
    run.record_versions("02_discover")
    import json

    assert set(json.loads(Path(run.versions).read_text())) == {"01_encode", "02_discover"}


def test_record_versions_refuses_a_run_made_under_other_code_paths(tmp_path):
    """A run folder whose earlier stage ran under other numeric pins (here MKL's old AVX pin, which
    MKL ran as another branch on each vendor's CPU) is refused: its caches hold other bits."""
    import json

    from coda_utils.errors import ParameterError

    run = RunDir(tmp_path)
    run.record_versions("01_encode")
    run.record_versions("01_encode")  # the same stage again, same settings: fine
    record = json.loads(Path(run.versions).read_text())
    record["01_encode"]["numerics"]["variables"]["MKL_CBWR"] = "AVX"
    record["01_encode"]["numerics"]["mkl_cnr_branch"] = "SSE4_2"
    record["01_encode"]["numerics"]["cpu"] = {"model": "another CPU"}  # a CPU alone never refuses
    Path(run.versions).write_text(json.dumps(record))
    with pytest.raises(ParameterError, match=r"versions.json: stage 01_encode .*MKL_CBWR 'AVX' there"):
        run.record_versions("02_discover")
    from coda_utils import numerics

    record["01_encode"]["numerics"]["variables"]["MKL_CBWR"] = numerics.PORTABLE["MKL_CBWR"]
    record["01_encode"]["numerics"]["mkl_cnr_branch"] = numerics.settings().get("mkl_cnr_branch")
    Path(run.versions).write_text(json.dumps(record))
    run.record_versions("02_discover")  # the same code paths on another CPU: accepted
