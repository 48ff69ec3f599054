"""pyproject.toml (ranges), requirements.lock (exact, hashed, universal) and environment.yml (conda)
agree; the lock names no path of any machine and resolves on every supported platform and Python."""
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from coda_utils import environment

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ("requirements.lock", "environment.yml", "pyproject.toml")

# uv --python-platform -> the marker variables of that platform (macOS: 14 or later, torch 2.13's wheels)
MACOS = "14.0"
PLATFORMS = {
    "x86_64-manylinux_2_28": {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
                              "platform_machine": "x86_64"},
    "aarch64-manylinux_2_28": {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
                               "platform_machine": "aarch64"},
    "aarch64-apple-darwin": {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix",
                             "platform_machine": "arm64"},
    "x86_64-pc-windows-msvc": {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt",
                               "platform_machine": "AMD64"},
}
PYTHONS = ("3.11", "3.12", "3.13")  # uv reads "3.11" as 3.11.0, the lowest of requires-python
# Locked packages that publish no wheel for a platform, so pip builds them from their (hashed) sdist
# there (a C compiler needed): hdbscan has never published Linux aarch64 wheels.
SOURCE_BUILDS = {"aarch64-manylinux_2_28": {"hdbscan"}}

_MACHINE_PATHS = re.compile(r"/opt/|/root/|/home/|/Users/|/tmp/|file://|--find-links|^\s*-f\s|"
                            r"(?<![A-Za-z])[A-Za-z]:[\\/]", re.M)


def test_pyproject_lock_and_environment_yml_agree():
    assert environment.problems(ROOT) == []


def test_every_locked_line_has_a_hash_and_torch_is_left_to_its_own_step():
    entries = environment.lock_entries(ROOT / "requirements.lock")
    names = {name for name, _, _ in entries}
    text = (ROOT / "requirements.lock").read_text()
    blocks = [b for b in text.split("\n") if "==" in b and not b.startswith("#")]
    assert blocks and all(b.rstrip().endswith("\\") for b in blocks)  # each pin continues with --hash lines
    assert text.count("--hash=sha256:") >= len(entries)
    for name in ("umap-learn", "pynndescent", "numba", "llvmlite", "hdbscan", "scikit-learn", "numpy", "scipy",
                 "diffusers", "sympy", "networkx", "setuptools", "uv"):
        assert name in names, name
    assert not [n for n in names if environment.GPU_RUNTIME.match(n)]  # torch, triton, nvidia-*: the torch step
    assert environment.torch_requirement(ROOT / "pyproject.toml") == "torch==2.13.0"
    assert 'requires-python = ">=3.11"' in (ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize("name", COMMITTED)
def test_no_committed_requirement_names_a_path_of_a_machine(name):
    found = [m.group(0) for m in _MACHINE_PATHS.finditer((ROOT / name).read_text())]
    assert found == [], f"{name} names a path of one machine: {found}"


def test_the_machine_path_check_sees_what_the_old_lock_had():
    for bad in ("--find-links /opt/wheels", "-f /home/me/wheels", "torch @ file:///root/torch.whl",
                r"pkg @ C:\wheels\pkg.whl", "pkg @ D:/wheels/pkg.whl"):
        assert _MACHINE_PATHS.search(bad), bad
    assert not _MACHINE_PATHS.search("#   pip install torch --index-url https://download.pytorch.org/whl/cpu")


def test_a_disagreement_is_reported(tmp_path):
    for name in COMMITTED:
        shutil.copy(ROOT / name, tmp_path / name)
    env = (tmp_path / "environment.yml").read_text()
    version = environment.read_lock(ROOT / "requirements.lock")["hdbscan"]
    (tmp_path / "environment.yml").write_text(env.replace(f"hdbscan=={version}", "hdbscan==0.8.0"))
    found = environment.problems(tmp_path)
    assert len(found) == 1 and found[0].startswith("hdbscan: environment.yml says 'hdbscan==0.8.0'")


def test_a_torch_build_in_the_lock_is_reported(tmp_path):
    for name in COMMITTED:
        shutil.copy(ROOT / name, tmp_path / name)
    with open(tmp_path / "requirements.lock", "a") as f:
        f.write("torch==2.13.0+cpu \\\n    --hash=sha256:" + "0" * 64 + "\n")
    assert any(p.startswith("torch==2.13.0+cpu: in requirements.lock") for p in environment.problems(tmp_path))


def test_the_lock_is_read_per_platform():
    lock = ROOT / "requirements.lock"
    windows = environment.read_lock(lock, {**PLATFORMS["x86_64-pc-windows-msvc"], "python_full_version": "3.12.0",
                                           "python_version": "3.12"})
    linux = environment.read_lock(lock, {**PLATFORMS["x86_64-manylinux_2_28"], "python_full_version": "3.11.7",
                                         "python_version": "3.11"})
    assert "colorama" in windows and "colorama" not in linux and "pexpect" in linux and "pexpect" not in windows
    assert windows["numpy"] == linux["numpy"] == "2.4.6"


def test_the_installed_environment_matches_the_lock():
    assert environment.installed_problems(ROOT / "requirements.lock") == []


def test_torch_is_checked_by_its_public_version(tmp_path, monkeypatch):
    from importlib import metadata

    (tmp_path / "requirements.lock").write_text("")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    real = metadata.version
    for have, ok in (("2.13.0+cpu", True), ("2.13.0+cu128", True), ("2.13.0", True), ("2.12.1+cpu", False)):
        monkeypatch.setattr(metadata, "version", lambda name, have=have: have if name == "torch" else real(name))
        assert (environment.installed_problems(tmp_path / "requirements.lock") == []) is ok, have


def test_no_torchvision():
    text = (ROOT / "pyproject.toml").read_text() + (ROOT / "environment.yml").read_text()
    assert "torchvision" not in text


# ------------------------------------------------------------------------------------------------
# The committed lock resolves on PyPI for every platform x Python the README promises (uv, with the
# lock's exact pins and pyproject's torch: torch's build and its GPU runtime are whatever PyPI serves
# there). Wheels only, except SOURCE_BUILDS; the resolution must add nothing to the lock (no missing
# dependency) but torch and its GPU runtime.

def _uv() -> str | None:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except Exception:
        return shutil.which("uv")


_NETWORK = re.compile(r"dns error|failed to lookup|tcp connect|connection refused|network is unreachable|"
                      r"error sending request|operation timed out|could not connect|failed to fetch|"
                      r"request failed after|client error \(connect\)", re.I)


def _resolve(uv: str, requirements: Path, platform: str, python: str) -> subprocess.CompletedProcess:
    names = sorted({n for n, _, _ in environment.lock_entries(ROOT / "requirements.lock")} | {"torch"})
    wheels_only = [n for n in names if n not in SOURCE_BUILDS.get(platform, set())]
    return subprocess.run(
        [uv, "pip", "compile", str(requirements), "--python-platform", platform, "--python-version", python,
         "--only-binary", ",".join(wheels_only), "--no-header", "--no-annotate", "--quiet",
         "--python", sys.executable, "--no-python-downloads"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "MACOSX_DEPLOYMENT_TARGET": MACOS})


def test_the_lock_resolves_for_every_platform_and_python(tmp_path):
    uv = _uv()
    if uv is None:
        pytest.skip("uv is not installed (it comes with the test extra: make installs it)")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"-r {ROOT / 'requirements.lock'}\n{environment.torch_requirement(ROOT / 'pyproject.toml')}\n")
    grid = [(p, v) for p in PLATFORMS for v in PYTHONS]
    with ThreadPoolExecutor(4) as pool:
        results = dict(zip(grid, pool.map(lambda pv: _resolve(uv, requirements, *pv), grid)))
    failed = {pv: r.stderr.strip() for pv, r in results.items() if r.returncode != 0}
    if failed and all(_NETWORK.search(e) for e in failed.values()):
        pytest.skip(f"uv cannot reach the package index: {next(iter(failed.values())).splitlines()[0]}")
    assert not failed, "\n\n".join(f"{p} Python {v}:\n{e}" for (p, v), e in failed.items())
    torch = environment.torch_requirement(ROOT / "pyproject.toml").split("==")[1]
    for (platform, python), r in results.items():
        resolved = dict(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", r.stdout, re.M))
        resolved = {environment._canonical(n): v for n, v in resolved.items()}
        assert resolved.get("torch", "").split("+")[0] == torch, (platform, python)
        marker_env = {**PLATFORMS[platform], "python_version": python, "python_full_version": f"{python}.0",
                      "implementation_name": "cpython", "platform_python_implementation": "CPython"}
        locked = environment.read_lock(ROOT / "requirements.lock", marker_env)
        extra = {n: v for n, v in resolved.items() if not environment.GPU_RUNTIME.match(n)}
        assert extra == locked, (platform, python, set(extra.items()) ^ set(locked.items()))
