"""coda_utils.numerics: the portable CPU code paths, and the proof that they make the numbers
independent of the CPU: the pipeline (encode -> discovery -> guided generation -> a short
evaluation, tests/numerics_pipeline.py) run twice in fresh processes, once as this machine runs
it and once under an emulated older CPU, must give the same bytes."""
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from coda_utils import numerics

PIPELINE = Path(__file__).resolve().parent / "numerics_pipeline.py"


def test_pin_sets_every_variable():
    env = {}
    applied = numerics.pin(env)
    assert {k: applied[k] for k in numerics.PORTABLE} == numerics.PORTABLE == {k: env[k] for k in numerics.PORTABLE}
    # no thread count named: one thread, not the machine's core count
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "1"
    assert env["NUMBA_NUM_THREADS"] == "1"  # numba's OpenMP layer would set PyTorch's count to the core count
    env = {"OMP_NUM_THREADS": "4"}
    numerics.pin(env)
    assert env["OMP_NUM_THREADS"] == "4"


def test_pin_keeps_a_lower_cap_and_lowers_a_higher_one():
    env = {"ONEDNN_MAX_CPU_ISA": "SSE41", "DNNL_MAX_CPU_ISA": "AVX512_CORE_AMX"}
    numerics.pin(env)
    assert env["ONEDNN_MAX_CPU_ISA"] == "SSE41"  # an older CPU (or its emulation) stays older
    assert env["DNNL_MAX_CPU_ISA"] == "AVX"


def test_pin_keeps_what_the_machine_sets_for_correctness():
    env = {"OPENBLAS_CORETYPE": "Haswell", "NPY_DISABLE_CPU_FEATURES": "AVX512_SPR,FOO"}
    applied = numerics.pin(env)
    assert env["OPENBLAS_CORETYPE"] == "Haswell" and "OPENBLAS_CORETYPE" not in applied
    assert env["NPY_DISABLE_CPU_FEATURES"].split() == ["AVX512_SPR", "FOO", "X86_V3", "X86_V4", "AVX512_ICL"]


def test_native_mode_pins_nothing():
    env = {numerics.NATIVE_VARIABLE: "native"}
    assert numerics.pin(env) == {} and set(env) == {numerics.NATIVE_VARIABLE}
    assert numerics.pinned()  # a dict given: this process's own state is not touched


def test_this_process_is_pinned():
    """conftest imports coda_utils before numpy and torch: every test runs the portable paths."""
    import torch

    assert numerics.pinned(), numerics.problems()
    assert torch.backends.cpu.get_cpu_capability() == "DEFAULT"
    # MKL runs the branch it runs on every vendor's CPU (read back from MKL itself, not from the variable)
    assert numerics.mkl_cnr_branch() in (None, "COMPATIBLE") and not numerics.problems()
    s = numerics.settings()
    assert s["mode"] == "portable" and s["cpu"]["machine"] and s["variables"]["NUMBA_CPU_NAME"] == "sandybridge"


def _emulated_level() -> str | None:
    """One step below this CPU, at or above the portable level (x86-64 with AVX)."""
    flags = set(numerics.cpu_info()["isa_flags"])
    if "avx512f" in flags:
        return "avx2"
    if "avx2" in flags:
        return "avx"
    return None


def _pipeline(out: Path, emulate: str | None, env: dict) -> dict:
    cmd = [sys.executable, str(PIPELINE), str(out)] + (["--emulate", emulate] if emulate else [])
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_emulated_older_cpu_gives_the_same_bytes(tmp_path):
    level = _emulated_level()
    if level is None or not numerics._is_x86():
        pytest.skip("this CPU is at the portable level already (no AVX2): nothing lower to emulate")
    env = {k: v for k, v in os.environ.items() if k not in numerics.PORTABLE or k == "OPENBLAS_CORETYPE"}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env.pop(numerics.NATIVE_VARIABLE, None)
    env.pop("NUMBA_NUM_THREADS", None)  # the child's pin must set it (else numba's first kernel sets every core)
    with ThreadPoolExecutor(2) as pool:  # the two processes side by side (one umap compilation each)
        host, old = pool.map(lambda a: _pipeline(tmp_path / a[0], a[1], env), [("host", None), ("emulated", level)])
    # the emulation took effect: numba saw an older CPU
    assert old["host_cpu_seen"] in ("haswell", "sandybridge") and host["host_cpu_seen"] != old["host_cpu_seen"]
    assert host["pinned"] and old["pinned"]
    # UMAP's numba kernels left PyTorch's thread count alone (discovery's guard and the pin of NUMBA_NUM_THREADS):
    # training after discovery sums on one thread
    assert host["torch_threads_after_discovery"] == old["torch_threads_after_discovery"] == 1
    for stage in ("latents", "representatives", "embedding", "png", "accuracy", "train_loss", "weights"):
        assert host[stage] == old[stage], f"{stage} differs between this CPU and an emulated {level} CPU"


def test_mkl_branch_check_tells_an_intel_only_branch():
    """The check above can fail: a branch MKL runs only on Intel CPUs (here ``AVX``, which oneMKL runs
    as SSE4_2 on an Intel CPU and as AUTO on an AMD one, the pin that once made the two vendors' UMAP
    clusters differ) is read back and named by problems()."""
    # set after coda_utils's pin (which would write COMPATIBLE), before torch loads MKL
    code = ("import coda_utils, os; os.environ['MKL_CBWR']='AVX'\n"
            "import torch; from coda_utils import numerics; print(numerics.mkl_cnr_branch()); print(numerics.problems())")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    branch, problems = res.stdout.strip().splitlines()[-2:]
    if branch == "None":
        pytest.skip("this PyTorch carries no MKL")
    assert branch != "COMPATIBLE" and "MKL runs its" in problems


@pytest.mark.slow
def test_this_cpu_computes_the_committed_fingerprints():
    """Encoding, every step of discovery and one probe per library (coda_utils.portability) give on
    this CPU the bits of every CPU whose fingerprints are committed (results/numerics_fingerprint.csv).
    The trainings are left to nbval (notebook 04's stored accuracies)."""
    from coda_utils import portability

    rows = portability.fingerprint(training=False)
    diff = portability.differences(rows, portability.read_reference())
    here = "\n".join(f"{r['stage']:24s} {r['sha256']}  {r['summary']}" for r in rows)
    assert not diff, ("this CPU computes other bits (the first stage names the library):\n" + "\n".join(diff)
                      + f"\nthis machine ({rows[0]['cpu']}, MKL {rows[0]['mkl_branch']}):\n{here}")
