"""pyproject.toml (ranges), requirements.lock (exact, hashed) and environment.yml (conda) agree."""
import shutil
from pathlib import Path

from coda_utils import environment

ROOT = Path(__file__).resolve().parent.parent


def test_pyproject_lock_and_environment_yml_agree():
    assert environment.problems(ROOT) == []


def test_every_locked_line_has_a_hash_and_torch_is_the_cpu_build():
    lock = environment.read_lock(ROOT / "requirements.lock")
    assert lock["torch"].endswith("+cpu")
    text = (ROOT / "requirements.lock").read_text()
    blocks = [b for b in text.split("\n") if "==" in b and not b.startswith("#")]
    assert blocks and all(b.rstrip().endswith("\\") for b in blocks)  # each pin continues with --hash lines
    assert text.count("--hash=sha256:") >= len(lock)
    for name in ("umap-learn", "pynndescent", "numba", "hdbscan", "scikit-learn", "numpy", "diffusers"):
        assert name in lock, name


def test_a_disagreement_is_reported(tmp_path):
    for name in ("pyproject.toml", "requirements.lock", "environment.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    env = (tmp_path / "environment.yml").read_text()
    version = environment.read_lock(ROOT / "requirements.lock")["hdbscan"]
    (tmp_path / "environment.yml").write_text(env.replace(f"hdbscan=={version}", "hdbscan==0.8.0"))
    found = environment.problems(tmp_path)
    assert len(found) == 1 and found[0].startswith("hdbscan: environment.yml says '0.8.0'")


def test_the_installed_environment_matches_the_lock():
    assert environment.installed_problems(ROOT / "requirements.lock") == []


def test_no_torchvision():
    text = (ROOT / "pyproject.toml").read_text() + (ROOT / "environment.yml").read_text()
    assert "torchvision" not in text
