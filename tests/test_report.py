"""The README's results tables are generated from the published result files, never typed."""
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coda_utils import report

ROOT = Path(__file__).resolve().parent.parent


def test_readme_tables_match_the_result_files():
    """Every generated block of README.md equals what its result file renders (`make readme`)."""
    assert report.update_readme(ROOT / "README.md", check=True) == []


def _study_rows(methods=("random_real", "coda_r", "coda_g"), seeds=5):
    rng = np.random.default_rng(0)
    rows = []
    for i, m in enumerate(methods):
        for s in range(seeds):
            rows.append({"method": m, "ipc": 10, "arch": "convnet3", "protocol": "dc", "selection_seed": s, "seed": 1000 * s,
                         "acc": 70 + i + rng.normal(0, 0.5), "acc_best": 71.0, "train_seconds": 1.0, "epochs": 150,
                         "precision": "bf16"})
    rows += [{**rows[0], "method": "herding", "selection_seed": 0, "seed": r, "acc": 72.0 + 0.1 * r} for r in range(5)]
    return pd.DataFrame(rows)


def test_a_changed_number_in_the_readme_is_caught(tmp_path):
    (tmp_path / "results").mkdir()
    _study_rows().to_csv(tmp_path / "results" / "study.csv", index=False)
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- generated: study (python -m coda_utils.report readme README.md) -->\n"
                      "typed by hand\n<!-- end generated: study -->\n\nafter\n")
    assert report.update_readme(readme, root=tmp_path) == ["study"]
    text = readme.read_text()
    assert "typed by hand" not in text and text.endswith("\n\nafter\n") and "coda_g - random_real" in text
    assert report.update_readme(readme, root=tmp_path, check=True) == []
    first = next(line for line in text.splitlines() if line.startswith("| coda_g |"))
    tampered = first.replace(first.split("|")[2], " 99.9 ± 0.1 ")
    readme.write_text(text.replace(first, tampered))
    assert report.update_readme(readme, root=tmp_path, check=True) == ["study"]


def test_study_table_reports_seeds_networks_and_contrasts():
    text = report.study_table(_study_rows(), "results/study.csv")
    assert "Mean ± std over 5 selection seeds" in text and "| herding | 10 | 72.2 | 0.2 |" in text
    assert "| 5 x 1 |" in text and "| 1 x 5 |" in text
    assert "`coda_r - random_real`" in text and "paired t" in text and "5 pairs" in text
    assert "convnet3, dc protocol, 150 epochs, bf16" in text


def test_full_protocol_table_has_a_column_per_ipc():
    df = pd.concat([_study_rows(), _study_rows().assign(ipc=50, acc=lambda d: d.acc + 5)])
    text = report.full_protocol_table(df, "results/full_protocol.csv")
    assert "| method | IPC 10 | IPC 50 |" in text and text.count("`coda_g - coda_r`") == 2


def test_a_block_without_its_result_file_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="results/full_protocol.csv"):
        report.render_block("full-protocol", root=tmp_path)
    with pytest.raises(ValueError, match="unknown README block"):
        report.render_block("nope", root=tmp_path)


def _network_rows(protocol: str, teacher: str = "none", offset: float = 0.0) -> pd.DataFrame:
    return _study_rows(methods=("random_real", "coda_r")).assign(protocol=protocol, teacher=teacher,
                                                                 epochs=300, acc=lambda d: d.acc + offset)


def test_collect_publishes_hard_and_soft_label_rows_apart(tmp_path):
    import torch

    from coda_utils import rundir

    run = rundir.RunDir(tmp_path / "run")
    hard, soft = _network_rows("dc"), _network_rows("rded", "convnet3-dc50-seed0-abc", offset=9.0)
    for m in ("random_real", "coda_r"):
        for df, protocol in ((hard, "dc"), (soft, "rded")):
            path = run.results(m, 10, protocol)
            path.parent.mkdir(parents=True, exist_ok=True)
            df[df.method == m].to_csv(path, index=False)
    assert run.eval_dir("coda_r", 10, "rded").name == "coda_r_ipc10_rded" and run.eval_dir("coda_r", 10, "dc").name == "coda_r_ipc10"
    with pytest.raises(FileNotFoundError, match="teacher"):  # a row names a teacher the run does not hold
        report.collect(run.root, "soft", tmp_path / "results" / "soft_labels.csv")
    run.teacher("convnet3", 50).parent.mkdir(parents=True)
    from coda_utils.architectures import build_model

    torch.save({"format": "coda-teacher-1", "id": "convnet3-dc50-seed0-abc", "arch": "convnet3", "test_acc": 91.05,
                "num_classes": 10, "channels": 1, "im_size": 28,
                "settings": {"protocol": "dc", "epochs": 50, "n_train": 10000},
                "state_dict": build_model("convnet3", 10, 1, 28).state_dict()}, run.teacher("convnet3", 50))
    got_hard = report.collect(run.root, "hard", tmp_path / "results" / "full_protocol.csv")
    got_soft = report.collect(run.root, "soft", tmp_path / "results" / "soft_labels.csv")
    assert set(got_hard.protocol) == {"dc"} and set(got_soft.protocol) == {"rded"} and len(got_soft) == 10
    teachers = (tmp_path / "results" / "soft_labels_teachers.json").read_text()
    assert "91.05" in teachers
    text = report.render_block("soft-labels", root=tmp_path)
    assert "Teacher `convnet3-dc50-seed0-abc`: convnet3, dc protocol, 50 epochs on 10,000 images" in text
    assert "91.0 % on the test split" in text and "| method | rded | dc | rded - dc |" in text
    assert "| 5 pairs |" in text and "+9.0" in text  # each method's soft-label rows minus its hard-label rows, by seed
    assert "| dc |" not in text.split("The same sets")[0]  # the soft-label table holds no hard-label row


def test_likeness_pairs_each_image_with_its_representative(tmp_path):
    """PSNR per image against the reference image of the same name: an offset of one grey level
    is 48.13 dB, a copy 100 dB; a set of other files cannot be paired."""
    from coda_utils import rundir, setfolder

    run = rundir.RunDir(tmp_path)
    rng = np.random.default_rng(0)
    ref = rng.integers(10, 240, size=(4, 1, 8, 8), dtype=np.uint8)
    labels, classes = [0, 0, 1, 1], ["a", "b"]
    for seed in (0, 1):
        meta = {"ipc": 2, "selection_seed": seed}
        setfolder.write_set(run.set_dir("coda_r", 2, seed), ref, labels, classes, meta)
        setfolder.write_set(run.set_dir("coda_g", 2, seed), ref + 1, labels, classes, meta)
        setfolder.write_set(run.set_dir("vae_coda_r", 2, seed), ref, labels, classes, meta)
    # a set at another IPC whose folder name starts alike (coda_r_ipc20...) is not read as IPC 2
    setfolder.write_set(run.set_dir("coda_r", 20, 0), ref, labels, classes, {"ipc": 20, "selection_seed": 0})
    df = report.likeness(tmp_path, 2, methods=("coda_g", "vae_coda_r", "unguided"))
    assert sorted(df["selection_seed"].unique()) == [0, 1] and set(df["method"]) == {"coda_g", "vae_coda_r"}
    assert np.allclose(df[df["method"] == "coda_g"]["psnr_db"], 20 * np.log10(255.0))  # mse 1: 48.13 dB
    assert np.allclose(df[df["method"] == "vae_coda_r"]["psnr_db"], 100.0)
    setfolder.write_set(run.set_dir("coda_g", 2, 0), ref[:2], [0, 1], classes, {"ipc": 2, "selection_seed": 0})
    with pytest.raises(ValueError, match="cannot be paired"):
        report.likeness(tmp_path, 2, methods=("coda_g",))


def test_numerics_table_is_one_table_per_cpu_with_the_ratio_to_native():
    rows = []
    for cpu, isa in (("CPU A", "avx avx2"), ("CPU B", "avx avx2 avx512f")):
        for config, k in (("native", 1.0), ("portable", 1.25)):
            for w, sec in (("train", 10.0), ("discover", 2.0)):
                rows.append({"cpu": cpu, "isa": isa, "configuration": config, "workload": w, "seconds": sec * k,
                             "ratio_to_native": k})
    text = report.numerics_table(pd.DataFrame(rows), "results/bench_numerics.csv")
    assert text.count("| configuration | train | discover |") == 2
    assert "CPU B (avx avx2 avx512f)" in text and "| portable | 12.5 s (1.25x) | 2.5 s (1.25x) |" in text
