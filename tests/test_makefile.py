"""The Makefile's study plan (dry runs: nothing is executed)."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _plan(run: Path, target: str) -> list[str]:
    """The notebooks ``make`` would run for ``target``, in order (stage files relative to ``run``)."""
    out = subprocess.run(["make", "-n", "-C", str(ROOT), f"RUN_DIR={run}", "IPCS=10", f"{run}/{target}"],
                         capture_output=True, text=True, check=True).stdout
    return [p.replace(f"{run}/", "") for p in re.findall(r"papermill --log-output --progress-bar \S+ (\S+)\.part\.ipynb", out)]


def test_a_run_evaluates_every_study_method_once(tmp_path):
    from coda_utils.rundir import STUDY_METHODS

    plan = _plan(tmp_path, "06_figures.ipynb")
    evals = [p.split("/")[1].rsplit("_ipc", 1)[0] for p in plan if p.startswith("eval/")]
    assert sorted(evals) == sorted(STUDY_METHODS) and plan[-1] == "06_figures.ipynb"


def test_a_round_trip_waits_for_the_set_it_is_made_from(tmp_path):
    # random real draws its sets in its own evaluation; R is exported by discovery
    assert _plan(tmp_path, "eval/vae_random_real_ipc10/04_evaluate.ipynb") == [
        "eval/random_real_ipc10/04_evaluate.ipynb", "eval/vae_random_real_ipc10/04_evaluate.ipynb"]
    assert _plan(tmp_path, "eval/vae_coda_r_ipc10/04_evaluate.ipynb") == [
        "01_encode.ipynb", "02_discover_ipc10.ipynb", "eval/vae_coda_r_ipc10/04_evaluate.ipynb"]
