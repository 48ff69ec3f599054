"""The Makefile's study plan (dry runs: nothing is executed)."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: `make -n` as a user runs it: without the variables (LINTED=1, NBVAL_COPIED=1, ...) that `make test`
#: passes to its sub-makes, and so to these tests when they run inside it
MAKE_ENV = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES",
                                                             "LINTED", "NBVAL_COPIED")}
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
#: how a run's stage calls papermill: no progress bar, no cell log (one line per stage instead)
PAPERMILL = r"-m papermill --no-progress-bar --log-level ERROR "


def _plan(run: Path, target: str) -> list[str]:
    """The notebooks ``make`` would run for ``target``, in order (stage files relative to ``run``)."""
    out = subprocess.run(["make", "-n", "-C", str(ROOT), f"RUN_DIR={run}", "IPCS=10", f"{run}/{target}"], env=MAKE_ENV,
                         capture_output=True, text=True, check=True).stdout
    return [p.replace(f"{run}/", "") for p in re.findall(PAPERMILL + r"\S+ (\S+)\.part\.ipynb", out)]


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


def test_the_makefile_evaluates_into_the_folders_rundir_names(tmp_path):
    """The Makefile's stage files of 04 are in RunDir's evaluation folders (one owner of the paths)."""
    from coda_utils.rundir import STUDY_METHODS, RunDir

    run = RunDir(tmp_path)
    plan = _plan(tmp_path, "06_figures.ipynb")
    expected = {str((run.eval_dir(m, 10) / "04_evaluate.ipynb").relative_to(tmp_path)) for m in STUDY_METHODS}
    assert {p for p in plan if p.startswith("eval/")} == expected


def test_nbval_compares_every_stored_notebook():
    """`make nbval` copies every notebook of notebooks/ (and nothing else) before comparing, and
    compares each copy exactly once (its two chains side by side, then 06), never laxly."""
    out = subprocess.run(["make", "-n", "-C", str(ROOT), "nbval"], capture_output=True, text=True, check=True,
                         env=MAKE_ENV).stdout
    stored = sorted(p.name for p in (ROOT / "notebooks").glob("0*.ipynb"))
    copied = re.search(r"cp (.*) build/nbval/", out).group(1).split()
    assert sorted(Path(p).name for p in copied) == stored
    compared = [Path(p).name for line in out.splitlines() if " --nbval " in line
                for p in line.split(" --nbval ", 1)[1].split()]
    assert sorted(compared) == stored and "--nbval-lax" not in out


def test_soft_labels_evaluate_into_rundirs_soft_label_folders_teacher_first(tmp_path):
    """`make soft-labels`: one rded notebook per method, in RunDir's soft-label folders, the
    first (which trains the teacher) before the others."""
    from coda_utils.rundir import STUDY_METHODS, RunDir

    run = RunDir(tmp_path / "runs" / "x")
    out = subprocess.run(["make", "-n", "-C", str(ROOT), "SOFT_RUN=x", "JOBS=1", "soft-labels"], env=MAKE_ENV, capture_output=True,
                         text=True, check=True).stdout
    stage_files = re.findall(PAPERMILL + r"notebooks/04_evaluate.ipynb (\S+)\.part\.ipynb", out)
    expected = [str((RunDir(Path("runs/x")).eval_dir(m, 10, "rded") / "04_evaluate.ipynb")) for m in STUDY_METHODS]
    assert sorted(stage_files) == sorted(expected) and stage_files[0].endswith("random_real_ipc10_rded/04_evaluate.ipynb")
    assert all("-p protocol rded -p epochs None" in line for line in out.splitlines() if "04_evaluate.ipynb" in line
               and "papermill" in line)
    assert run.eval_dir("coda_g", 10, "rded") != run.eval_dir("coda_g", 10, "dc")


def test_unit_and_test_check_the_import_contracts_first():
    """`make unit` runs lint-imports (the layers of pyproject.toml's [tool.importlinter]) before the
    unit tests; `make test` runs it once, before its sub-make (which it tells so with LINTED=1)."""
    def commands(*args):
        out = subprocess.run(["make", "-n", "-C", str(ROOT), *args], capture_output=True, text=True, check=True,
                             env=MAKE_ENV).stdout
        return [line for line in out.splitlines() if "lint-imports" in line or "pytest" in line]

    unit = commands("unit")
    assert len(unit) == 2 and "lint-imports" in unit[0] and "-m pytest" in unit[1]
    assert not any("lint-imports" in line for line in commands("unit", "LINTED=1"))
    # `make -n test` would run its sub-make: read the rule instead
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: lint data$", makefile, re.M)
    assert re.search(r"\$\(MAKE\) [^\n]*LINTED=1 NBVAL_COPIED=1 nbval-main nbval-prior unit nbval-ablations", makefile)
    assert re.search(r"^unit: \$\(if \$\(LINTED\),,lint data\)$", makefile, re.M)


def test_a_run_prints_one_line_when_a_stage_starts_and_ends(tmp_path):
    """Under make -j2 the two cores' stages print a line each when they start and end (the time; an
    evaluation, the networks in its results file), not papermill's bars and cell logs."""
    out = subprocess.run(["make", "-n", "-C", str(ROOT), f"RUN_DIR={tmp_path}", "IPCS=10", f"{tmp_path}/06_figures.ipynb"],
                         env=MAKE_ENV, capture_output=True, text=True, check=True).stdout
    assert "--progress-bar" not in out.replace("--no-progress-bar", "") and "--log-output" not in out
    stages = re.findall(PAPERMILL + r"\S+ (\S+)\.part\.ipynb", out)
    lines = out.splitlines()
    names = {"01_encode.ipynb": "01 encode", "02_discover_ipc10.ipynb": "02 discover ipc10",
             "03_generate_ipc10.ipynb": "03 generate ipc10", "06_figures.ipynb": "06 figures",
             "eval/coda_g_ipc10/04_evaluate.ipynb": "04 evaluate coda_g_ipc10"}
    for stage, name in names.items():
        i = next(i for i, line in enumerate(lines) if f" {tmp_path}/{stage}.part.ipynb" in line)
        assert re.fullmatch(rf'echo "\[\$\(date \+%T\)\] {name} started"', lines[i - 1].strip()), lines[i - 1]
        assert f'{name} done in $((s / 60)) min $((s % 60)) s' in lines[i] and f"{name} FAILED" in lines[i]
    assert len(stages) == len(re.findall(r'\] [^"]* started"', out))
    evaluation = next(line for line in lines if f"{tmp_path}/eval/coda_g_ipc10/04_evaluate.ipynb.part.ipynb" in line)
    assert f"tail -n +2 {tmp_path}/eval/coda_g_ipc10/results.csv" in evaluation and "networks in results.csv" in evaluation


def test_a_stage_line_is_printed_and_a_failed_stage_names_its_notebook(tmp_path):
    """The papermill macro run for real on a notebook that fails: a start line, papermill's error,
    and the FAILED line naming the partial notebook; nothing renamed to the stage's done mark."""
    makefile = (ROOT / "Makefile").read_text()
    define = re.search(r"^PM_STAGE := .*?^endef$", makefile, re.M | re.S).group(0)
    fake = tmp_path / "papermill"
    fake.write_text("#!/bin/sh\necho 'PapermillExecutionError: ValueError: bad x' >&2\nexit 1\n")
    fake.chmod(0o755)
    ok = tmp_path / "ok"
    ok.write_text('#!/bin/sh\ntouch "$5"\n')  # papermill --no-progress-bar --log-level ERROR IN OUT: writes OUT
    ok.chmod(0o755)
    (tmp_path / "Makefile").write_text(
        "SHELL := /bin/bash\nPY := python3\n" + define.replace("$(PY) -m papermill", "$(PM_BIN)") + "\n"
        "out/02_discover_ipc10.ipynb:\n\t$(call papermill,in.ipynb,$@,-p ipc 10)\n"
        "out/eval/coda_g_ipc10/04_evaluate.ipynb:\n\t@mkdir -p $(dir $@) && printf 'h\\na\\nb\\n' > $(dir $@)results.csv\n"
        "\t$(call papermill,in.ipynb,$@,-p ipc 10)\n")
    failed = subprocess.run(["make", "-C", str(tmp_path), f"PM_BIN={fake}", "out/02_discover_ipc10.ipynb"], env=MAKE_ENV,
                            capture_output=True, text=True)
    assert failed.returncode != 0 and "bad x" in failed.stderr
    assert re.search(r"^\[\d\d:\d\d:\d\d\] 02 discover ipc10 started$", failed.stdout, re.M)
    assert re.search(r"^\[\d\d:\d\d:\d\d\] 02 discover ipc10 FAILED: .* out/02_discover_ipc10.ipynb.part.ipynb$",
                     failed.stdout, re.M)
    assert not (tmp_path / "out" / "02_discover_ipc10.ipynb").exists()
    done = subprocess.run(["make", "-C", str(tmp_path), f"PM_BIN={ok}", "out/eval/coda_g_ipc10/04_evaluate.ipynb"],
                          env=MAKE_ENV, capture_output=True, text=True, check=True)
    assert re.search(r"^\[\d\d:\d\d:\d\d\] 04 evaluate coda_g_ipc10 done in 0 min \d+ s \(2 networks in results.csv\)$",
                     done.stdout, re.M), done.stdout
    assert (tmp_path / "out" / "eval" / "coda_g_ipc10" / "04_evaluate.ipynb").is_file()


def test_the_lock_holds_every_extra():
    """`make lock` resolves pyproject's dependencies with every extra (the tests' and the notebooks'
    tooling), so that `make` installs all of them from the lock."""
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    out = subprocess.run(["make", "-n", "-C", str(ROOT), "lock"], env=MAKE_ENV, capture_output=True, text=True,
                         check=True).stdout
    compiles = [line for line in out.splitlines() if "uv pip compile" in line]
    assert len(compiles) == 2
    for line in compiles:
        assert sorted(re.findall(r"--extra (\S+)", line)) == sorted(extras), line
