"""What is stored can be trusted: every cached or exported file a later stage reads is recorded
with its size and SHA-256, a reader refuses a damaged one naming it, and the stage that made it
makes exactly that piece again on resume, byte for byte; every error about a file names the
file and what fixes it."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from coda_utils import alignment, encoding, io as cio, params, setfolder
from coda_utils.tiny_pipelines import tiny_sd_pipeline


def _truncate(path: Path) -> None:
    b = path.read_bytes()
    path.write_bytes(b[: len(b) // 2])


def _bitflip(path: Path) -> None:
    b = bytearray(path.read_bytes())
    b[len(b) - 5] ^= 0x01  # the same size, one bit of the content
    path.write_bytes(bytes(b))


DAMAGE = {"truncated": _truncate, "bit-flipped": _bitflip, "deleted": Path.unlink}


@pytest.fixture(scope="module")
def vae():
    from coda_utils.prior import PriorConfig, build_vae

    torch.manual_seed(0)
    return build_vae(PriorConfig(vae_channels=(8, 8, 8), vae_latent_channels=4)).eval()


@pytest.fixture(scope="module")
def small(target):
    return encoding.limit_dataset(target, class_limit=3, per_class_limit=12)


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    return tiny_sd_pipeline(tmp_path_factory.mktemp("sd"))


def _bytes(root: Path, pattern: str) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob(pattern))}


# --------------------------------------------------------------------------------------
# The latent cache
# --------------------------------------------------------------------------------------
def test_the_cache_records_every_file_with_size_and_hash(vae, small, tmp_path):
    root = tmp_path / "c"
    encoding.encode_dataset(small, vae, root, encoder_id="tiny", progress=False)
    meta = json.loads((root / "cache.json").read_text())
    assert sorted(meta["files"]) == sorted(p.name for p in root.glob("*.npy")) and len(meta["files"]) == 6
    for name, rec in meta["files"].items():
        assert rec == {"size": (root / name).stat().st_size, "sha256": cio.file_sha256(root / name)}


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("name", ["class_0001.npy", "class_0002.index.npy"])
def test_a_damaged_cache_file_is_named_and_encoded_again_byte_identically(vae, small, tmp_path, capsys, damage, name):
    root = tmp_path / "c"
    encoding.encode_dataset(small, vae, root, encoder_id="tiny", progress=False)
    before = _bytes(root, "*.npy")
    DAMAGE[damage](root / name)
    c = int(name[6:10])
    cache = encoding.LatentCache.load(root)
    with pytest.raises(encoding.CorruptCacheError, match=f"{name}.*run notebook 01 again") as err:
        cache.latents(c) if ".index" not in name else cache.indices(c)
    assert err.value.path == root / name
    assert list(cache.verify()) == [name]
    mtimes = {p.name: p.stat().st_mtime_ns for p in root.glob("*.npy") if f"{c:04d}" not in p.name}
    capsys.readouterr()
    encoding.encode_dataset(small, vae, root, encoder_id="tiny", progress=False)  # notebook 01 again: the repair
    out = capsys.readouterr().out
    assert f"replacing {root / name}" in out and f"encoding class {c} again" in out
    assert _bytes(root, "*.npy") == before  # byte-identical
    assert {p.name: p.stat().st_mtime_ns for p in root.glob("*.npy") if f"{c:04d}" not in p.name} == mtimes  # only that class
    assert encoding.LatentCache.load(root).verify() == {}


def test_a_cache_made_before_records_is_checked_by_its_headers_and_recorded(vae, small, tmp_path, capsys):
    root = tmp_path / "c"
    encoding.encode_dataset(small, vae, root, encoder_id="tiny", progress=False)
    before = _bytes(root, "*.npy")
    meta = json.loads((root / "cache.json").read_text())
    del meta["files"]
    (root / "cache.json").write_text(json.dumps(meta))
    _truncate(root / "class_0000.npy")
    with pytest.raises(encoding.CorruptCacheError, match="class_0000.npy.*truncated"):
        encoding.LatentCache.load(root).latents(0)
    encoding.encode_dataset(small, vae, root, encoder_id="tiny", progress=False)
    assert "replacing" in capsys.readouterr().out and _bytes(root, "*.npy") == before
    assert len(json.loads((root / "cache.json").read_text())["files"]) == 6


def test_a_one_class_dataset_is_refused_before_encoding(vae, small, tmp_path):
    one = encoding.limit_dataset(small, class_limit=1)
    with pytest.raises(ValueError, match="1 class.*at least 2 classes"):
        encoding.encode_dataset(one, vae, tmp_path / "c", progress=False)
    assert not (tmp_path / "c").exists()


# --------------------------------------------------------------------------------------
# Set folders: exported (notebook 02) and generated (notebook 03)
# --------------------------------------------------------------------------------------
def _export(out: Path) -> Path:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 1, 28, 28), dtype=np.uint8)
    return setfolder.write_set(out, images, [0, 0, 0, 1, 1, 1], ["bag", "coat"], {"method": "coda_r", "ipc": 3})


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_exported_image_is_named_and_written_again(tmp_path, capsys, damage):
    out = _export(tmp_path / "coda_r")
    before = _bytes(out, "*.png")
    assert set(setfolder.read_manifest(out)["records"]) == set(before)
    DAMAGE[damage](out / "coat" / "0001.png")
    with pytest.raises(setfolder.CorruptSetError, match=r"coat/0001.png.*notebook 02_discover again") as err:
        setfolder.read_set(out)
    assert err.value.path == out / "coat" / "0001.png"
    with pytest.warns(UserWarning, match="coat/0001.png"):
        assert not setfolder.is_finished(out)  # so that the stage that made it makes it again
    assert list(setfolder.damaged(out)) == ["coat/0001.png"]
    _export(out)
    assert f"replaced {out / 'coat' / '0001.png'}" in capsys.readouterr().out
    assert _bytes(out, "*.png") == before and setfolder.is_finished(out)
    assert setfolder.read_set(out).images.shape == (6, 1, 28, 28)


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_generated_image_is_generated_again_byte_identically(sd, tmp_path, capsys, damage):
    z = [np.random.default_rng(c).normal(size=(2, 4, 8, 8)).astype(np.float32) for c in range(2)]
    kw = dict(class_ids=["bag", "coat"], prompts=["a bag", "a coat"], ipc=2, z_reps=z, steps=3, progress=False,
              native_size=(28, 28), resize="pad", batch_size=2)
    out = alignment.generate_set(sd, tmp_path / "g", method="coda_g", **kw)
    before = _bytes(out, "*.png")
    keep = (out / "bag" / "0000.png").stat().st_mtime_ns
    DAMAGE[damage](out / "coat" / "0000.png")
    with pytest.raises(setfolder.CorruptSetError, match=r"coat/0000.png.*notebook 03_generate again"):
        setfolder.read_set(out)
    capsys.readouterr()
    alignment.generate_set(sd, out, method="coda_g", **kw)  # notebook 03 again: the repair
    assert f"replacing {out / 'coat' / '0000.png'}" in capsys.readouterr().out
    assert _bytes(out, "*.png") == before  # byte-identical
    assert (out / "bag" / "0000.png").stat().st_mtime_ns == keep  # exactly the damaged image was made again
    assert setfolder.damaged(out) == {} and setfolder.is_finished(out)


def test_steps_beyond_the_schedulers_training_timesteps_are_refused(sd, tmp_path):
    with pytest.raises(ValueError, match="trained with 1000 timesteps.*`steps`"):
        alignment.generate_set(sd, tmp_path / "g", ["bag"], ["a bag"], ipc=1, steps=1001, progress=False)
    assert not (tmp_path / "g").exists()


# --------------------------------------------------------------------------------------
# Every error about a file names the file and what fixes it
# --------------------------------------------------------------------------------------
def test_a_corrupt_manifest_names_the_file_and_the_fix(tmp_path):
    out = _export(tmp_path / "coda_r")
    text = (out / "manifest.json").read_text()
    (out / "manifest.json").write_text(text[:199])
    for read in (setfolder.read_set, setfolder.read_manifest, setfolder.is_finished):
        with pytest.raises(setfolder.CorruptSetError, match=r"manifest.json: damaged set manifest: not valid JSON: .*"
                                                            r"delete it .*run the notebook that made the set again"):
            read(out)
    with pytest.raises(ValueError):  # what callers catching a bad value (JSONDecodeError's base) still catch
        setfolder.read_manifest(out)
    _export(out)  # writing the set again repairs it
    assert setfolder.is_finished(out)


def test_a_corrupt_cache_record_names_the_file_and_the_fix(vae, small, tmp_path):
    root = tmp_path / "c"
    encoding.encode_dataset(small, vae, root, encoder_id="tiny", progress=False)
    (root / "cache.json").write_text((root / "cache.json").read_text()[:199])
    for call in (lambda: encoding.LatentCache.load(root),
                 lambda: encoding.encode_dataset(small, vae, root, encoder_id="tiny", progress=False)):
        with pytest.raises(cio.CorruptFileError, match=r"cache.json: not valid JSON.*rebuild=True"):
            call()
    encoding.encode_dataset(small, vae, root, encoder_id="tiny", progress=False, rebuild=True)
    assert encoding.LatentCache.load(root).verify() == {}


def test_a_corrupt_results_table_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "results.csv"
    path.write_bytes(b'method,acc\n"coda_g,1\n' + bytes([0xff, 0xfe]) * 3)
    with pytest.raises(cio.CorruptFileError, match=r"results.csv: not a readable CSV table.*delete it and run"):
        cio.read_table(path)
    path.write_text("")
    with pytest.raises(cio.CorruptFileError, match="results.csv"):
        cio.read_table(path)
    with pytest.raises(cio.CorruptFileError, match=r"j.json: not valid JSON.*delete it"):
        (tmp_path / "j.json").write_text('{"a": ')
        cio.merge_json(tmp_path / "j.json", {"b": 1})


def test_a_corrupt_parameter_file_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("steps: 25\ngamma: [0.1\n")
    with pytest.raises(params.ParameterError, match=r"p.yaml is not valid YAML at line \d+.*fix that line"):
        params.read_parameter_file(path)
    path.write_text("- steps\n- 25\n")
    with pytest.raises(params.ParameterError, match="p.yaml holds a list"):
        params.read_parameter_file(path)
    with pytest.raises(params.ParameterError, match="no.yaml does not exist"):
        params.read_parameter_file(tmp_path / "no.yaml")
    path.write_text("steps: 25\ngamma: 0.1\n")
    assert params.read_parameter_file(path) == {"steps": 25, "gamma": 0.1}


def test_a_damaged_results_table_names_the_file_and_the_fix(tmp_path):
    from coda_utils import evaluation
    from coda_utils.io import CorruptFileError

    path = tmp_path / "results.csv"
    path.write_bytes(b'method,ipc\n"coda_g,10\n\x00\xff')
    with pytest.raises(CorruptFileError) as e:
        evaluation.read_results(path)
    assert str(path) in str(e.value) and "notebook 04" in str(e.value)


def test_scale_reads_a_bad_parameter_file_with_its_name(tmp_path):
    from coda_utils import scale
    from coda_utils.params import ParameterError

    bad = tmp_path / "p.yaml"
    bad.write_text("ipc: [10\n")
    with pytest.raises(ParameterError) as e:
        scale._parse(["04", "-f", str(bad)])
    assert str(bad) in str(e.value)


# --------------------------------------------------------------------------------------
# Discovery's arrays (notebook 02) and the soft-label teacher (notebook 04)
# --------------------------------------------------------------------------------------
def _discovery(vae, small, tmp_path):
    from coda_utils import discovery

    cache = encoding.encode_dataset(small, vae, tmp_path / "latents", encoder_id="tiny", progress=False)
    return discovery.discover(cache, 3, progress=False)


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_discovery_file_is_named_and_written_again(vae, small, tmp_path, capsys, damage):
    from coda_utils import discovery

    disc = _discovery(vae, small, tmp_path)
    disc.save(tmp_path / "d.json")
    npz = tmp_path / "d.npz"
    before = npz.read_bytes()
    assert json.loads((tmp_path / "d.json").read_text())["files"]["d.npz"] == cio.file_record(npz)
    DAMAGE[damage](npz)
    for read in (discovery.load_arrays, discovery.load_discovery):  # what 03 and the figures read
        with pytest.raises(cio.CorruptFileError, match=r"d\.npz.*notebook 02 again") as err:
            read(tmp_path / "d.json")
        assert err.value.path == npz
    disc.save(tmp_path / "d.json")  # notebook 02 run again
    assert f"replaced {npz}" in capsys.readouterr().out
    assert npz.read_bytes() == before
    assert np.array_equal(discovery.load_arrays(tmp_path / "d.json")["positions"], disc.positions)


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_teacher_is_named_and_trained_again_identically(tmp_path, capsys, damage):
    from coda_utils import teachers

    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 256, (20, 1, 28, 28), generator=g, dtype=torch.uint8), torch.arange(20) % 2
    path = tmp_path / "teacher" / "convnet3_dc1.pt"
    teachers.train_teacher(x, y, x[:6], y[:6], path, epochs=1, progress=False)
    before = torch.load(path, weights_only=False)
    assert json.loads((path.parent / "convnet3_dc1.pt.json").read_text())["files"]["convnet3_dc1.pt"] == cio.file_record(path)
    teachers.train_teacher(x, y, x[:6], y[:6], path, epochs=1, progress=False)  # intact: loaded, not trained
    assert "replaced" not in capsys.readouterr().out
    DAMAGE[damage](path)
    if damage == "deleted":  # nothing to replace: simply trained
        teachers.train_teacher(x, y, x[:6], y[:6], path, epochs=1, progress=False)
    else:
        teachers.train_teacher(x, y, x[:6], y[:6], path, epochs=1, progress=False)
        assert f"replaced {path}" in capsys.readouterr().out
    after = torch.load(path, weights_only=False)  # the same weights (its training time differs)
    assert after["id"] == before["id"] and after["test_acc"] == before["test_acc"]
    assert all(torch.equal(after["state_dict"][k], v) for k, v in before["state_dict"].items())
