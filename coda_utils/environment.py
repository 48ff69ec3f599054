"""The locked environment: ``pyproject.toml`` (ranges), ``requirements.lock`` (exact versions
with hashes, one universal lock for Linux, macOS and Windows and CPython 3.11 to 3.13, made by
``make lock`` with uv) and ``environment.yml`` (conda, the same exact versions) must agree, and
an installed environment must match the lock.

torch is not in the lock: the build differs by machine (CPU or CUDA on Linux, the default one
elsewhere), so ``make`` installs ``pyproject.toml``'s ``torch==X`` first, on its own, from pip's
configured index or from ``TORCH_INDEX``, then the lock with ``--require-hashes --no-deps``. torch
is checked by its public version (``2.13.0+cpu`` and ``2.13.0+cu128`` are both ``2.13.0``); its
GPU runtime (triton, ``nvidia-*``, ``cuda-*``) comes with it and is not locked either.

``python -m coda_utils.environment --check`` prints every disagreement (exit 1 if any);
``--write-environment-yml`` rewrites ``environment.yml`` from the lock (``make lock`` does);
``--check-installed`` compares the running interpreter's packages with the lock (``make``
does after installing); ``--torch-requirement`` prints pyproject's torch requirement (the
Makefile's torch step installs it).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

__all__ = ["ROOT", "GPU_RUNTIME", "lock_entries", "read_lock", "direct_dependencies", "torch_requirement",
           "environment_yml", "problems", "installed_problems", "main"]

ROOT = Path(__file__).resolve().parent.parent
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)\s*(?:;\s*([^\\]*?))?\s*\\?\s*$")
# packages that come with torch's own install step (its build decides them) and stay out of the lock
GPU_RUNTIME = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _public(version: str) -> str:
    """``2.13.0+cpu`` -> ``2.13.0`` (the local label names the build, not the release)."""
    return version.split("+", 1)[0]


def lock_entries(path: str | Path = ROOT / "requirements.lock") -> list[tuple[str, str, str]]:
    """``(canonical name, exact version, marker or "")`` of every ``name==version [; marker]`` line of
    the lock, in order (a package may appear twice, for two Pythons or platforms)."""
    out = []
    for line in Path(path).read_text().splitlines():
        m = _PIN.match(line)
        if m:
            out.append((_canonical(m.group(1)), m.group(2), (m.group(3) or "").strip()))
    return out


def _applies(marker: str, environment: dict | None) -> bool:
    if not marker:
        return True
    from packaging.markers import Marker

    return Marker(marker).evaluate(environment)


def read_lock(path: str | Path = ROOT / "requirements.lock", environment: dict | None = None) -> dict[str, str]:
    """``{canonical name: exact version}`` of the lock's pins for one environment: the running
    interpreter's by default, or ``environment`` (marker variables, e.g. ``{"sys_platform": "win32"}``,
    the others taken from the running interpreter)."""
    return {name: version for name, version, marker in lock_entries(path) if _applies(marker, environment)}


def direct_dependencies(pyproject: str | Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """``{canonical name: requirement}`` of the project's dependencies and its ``test`` and ``notebooks``
    extras (the lock holds every extra: ``make`` installs them all)."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        raise SystemExit(f"coda-utils needs Python 3.11 or later; this is Python {sys.version.split()[0]} "
                         f"({sys.executable}): make PYTHON=python3.11 (or 3.12, 3.13)") from None

    project = tomllib.loads(Path(pyproject).read_text())["project"]
    extras = project.get("optional-dependencies", {})
    reqs = project["dependencies"] + extras.get("test", []) + extras.get("notebooks", [])
    return {_canonical(_NAME.match(r.strip()).group(1)): r.replace(" ", "") for r in reqs}


def torch_requirement(pyproject: str | Path = ROOT / "pyproject.toml") -> str:
    """pyproject's torch requirement (``torch==2.13.0``): what the Makefile's torch step installs."""
    return direct_dependencies(pyproject)["torch"]


def _yaml_item(requirement: str) -> str:
    return f'"{requirement}"' if any(c in requirement for c in ";'*#:") else requirement


def environment_yml(entries: list[tuple[str, str, str]], deps: dict[str, str]) -> str:
    """The conda description: Python and pip from conda-forge, then through pip torch at pyproject's
    version and every package of the lock at its locked version, with the lock's markers (conda-forge
    does not carry every PyPI release the lock names; pip inside the conda environment installs the
    same releases as ``make``)."""
    lines = [
        "# Conda description of the environment `make study` / `make test` build as .venv.",
        "# Generated by `make lock` from requirements.lock (tests/test_environment.py checks that",
        "# pyproject.toml, the lock and this file agree): conda gives Python and pip, and pip installs",
        "# torch at pyproject's version and every package of the lock at its locked version (the",
        "# markers pick what a platform and a Python need). The lock also has the hashes; `make`",
        "# installs from it with --require-hashes.",
        "# torch comes from PyPI here: the platform's default build, which on Linux is the CUDA build",
        "# with its CUDA libraries. For another build (Linux: CPU only, or another CUDA version), after",
        "# `conda env create -f environment.yml` and `conda activate coda` run",
        f"#   pip install --force-reinstall --no-deps {deps['torch']} --index-url https://download.pytorch.org/whl/cpu",
        "# (or .../whl/cu128 and so on; `make TORCH_INDEX=...` does the same for .venv).",
        "name: coda",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11",
        "  - pip",
        "  - pip:",
        f"      - {deps['torch']}",
    ]
    for name, version, marker in entries:
        lines.append(f"      - {_yaml_item(f'{name}=={version}' + (f' ; {marker}' if marker else ''))}")
    lines.append("      - -e .")
    return "\n".join(lines) + "\n"


def _environment_requirements(path: Path) -> list[str]:
    import yaml

    env = yaml.safe_load(path.read_text())
    reqs = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            reqs += [str(r).strip() for r in dep.get("pip", [])]
    return reqs


def problems(root: str | Path = ROOT) -> list[str]:
    """Every disagreement between ``pyproject.toml``, ``requirements.lock`` and
    ``environment.yml`` under ``root`` (empty when they agree)."""
    from packaging.requirements import Requirement

    root = Path(root)
    deps = direct_dependencies(root / "pyproject.toml")
    entries = lock_entries(root / "requirements.lock")
    unconditional = {name: version for name, version, marker in entries if not marker}
    out = []
    for name, req in deps.items():
        if GPU_RUNTIME.match(name):
            continue
        if name not in unconditional:
            out.append(f"{name}: in pyproject.toml but not pinned for every platform in requirements.lock (run `make lock`)")
            continue
        if not Requirement(req).specifier.contains(unconditional[name], prereleases=True):
            out.append(f"{name}: requirements.lock pins {unconditional[name]}, outside pyproject's {req!r} (run `make lock`)")
    if "torch" not in deps:
        out.append("torch: not a dependency in pyproject.toml (the Makefile's torch step installs pyproject's torch==X)")
    for name, version, _ in entries:
        if GPU_RUNTIME.match(name):
            out.append(f"{name}=={version}: in requirements.lock, but torch and its GPU runtime come with the "
                       "torch step (run `make lock`)")
    if "torch" in deps:
        import yaml

        def by_name(reqs):
            grouped = {}
            for r in reqs:
                m = _NAME.match(r)
                grouped.setdefault(_canonical(m.group(1)) if m else r, []).append(r)
            return grouped

        expected = by_name(str(r).strip() for r in yaml.safe_load(environment_yml(entries, deps))["dependencies"][2]["pip"])
        have = by_name(_environment_requirements(root / "environment.yml"))
        for name in sorted(set(expected) | set(have)):
            if sorted(expected.get(name, [])) != sorted(have.get(name, [])):
                said = ", ".join(have.get(name, [])) or None
                want = ", ".join(expected.get(name, [])) or "nothing (not in the lock or pyproject.toml)"
                out.append(f"{name}: environment.yml says {said!r}, requirements.lock and pyproject.toml {want!r} "
                           "(run `python -m coda_utils.environment --write-environment-yml`)")
    return out


def installed_problems(lock_path: str | Path = ROOT / "requirements.lock",
                       pyproject: str | Path | None = None) -> list[str]:
    """Locked packages (those whose markers hold here) missing from, or at another version in, the
    running interpreter; and torch, which is not locked, against pyproject's ``torch==X`` by its
    public version (any build)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    lock_path = Path(lock_path)
    out = []
    for name, version in read_lock(lock_path).items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            out.append(f"{name}: locked at {version}, not installed")
            continue
        if have != version:
            out.append(f"{name}: locked at {version}, installed {have}")
    req = Requirement(torch_requirement(pyproject or lock_path.parent / "pyproject.toml"))
    try:
        have = metadata.version("torch")
    except metadata.PackageNotFoundError:
        out.append(f"torch: pyproject.toml asks for {req}, not installed (the Makefile's torch step installs it)")
    else:
        if not req.specifier.contains(_public(have), prereleases=True):
            out.append(f"torch: pyproject.toml asks for {req}, installed {have}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="pyproject, lock and environment.yml agree")
    parser.add_argument("--check-installed", action="store_true", help="the installed packages match the lock")
    parser.add_argument("--write-environment-yml", action="store_true", help="rewrite environment.yml from the lock")
    parser.add_argument("--torch-requirement", action="store_true", help="print pyproject's torch requirement")
    args = parser.parse_args(argv)
    if args.torch_requirement:
        print(torch_requirement(ROOT / "pyproject.toml"))
    if args.write_environment_yml:
        text = environment_yml(lock_entries(ROOT / "requirements.lock"), direct_dependencies(ROOT / "pyproject.toml"))
        (ROOT / "environment.yml").write_text(text)
        print(f"wrote {ROOT / 'environment.yml'}")
    found = []
    if args.check:
        found += problems()
    if args.check_installed:
        found += installed_problems()
    for p in found:
        print(p, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
