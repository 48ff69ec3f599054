"""environment.yml (conda) and pyproject.toml must describe the same dependencies."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    import yaml

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): r.replace(" ", "") for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for r in dep["pip"]:
                if not r.startswith("-e"):
                    listed[_name(r)] = r.replace(" ", "")
        elif _name(dep) not in ("python", "pip"):
            listed[_name(dep)] = dep.replace(" ", "").replace("=", "==", 1) if re.search(r"[^<>!=]=[^=]", dep) else dep.replace(" ", "")
    assert set(listed) == set(wanted), f"only in environment.yml: {set(listed) - set(wanted)}; only in pyproject: {set(wanted) - set(listed)}"
    for name, req in wanted.items():
        assert listed[name] == req, f"{name}: environment.yml says {listed[name]!r}, pyproject {req!r}"


def test_no_torchvision():
    text = (ROOT / "pyproject.toml").read_text() + (ROOT / "environment.yml").read_text()
    assert "torchvision" not in text
