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


# --------------------------------------------------------------------------------------------
# The README's sentences: rendered from the result files, and no quoted contrast without a source
# --------------------------------------------------------------------------------------------
def test_readme_sentences_quote_no_contrast_their_source_lacks():
    """A contrast a README sentence quotes outside the generated blocks ("+0.5 [-0.1, +1.1]") is
    one of its section's result files (and the sentences that quote many are generated blocks)."""
    assert report.stale_quotes(ROOT / "README.md") == []


def test_a_stale_quoted_contrast_is_caught(tmp_path):
    (tmp_path / "results").mkdir()
    _study_rows().to_csv(tmp_path / "results" / "study.csv", index=False)
    readme = tmp_path / "README.md"
    readme.write_text("## study\n\n<!-- generated: study (python -m coda_utils.report readme README.md) -->\n"
                      "<!-- end generated: study -->\n\n## other\n\nno block here\n")
    report.update_readme(readme, root=tmp_path)
    text = readme.read_text()
    r = report.stats.contrasts(_study_rows())
    real = report.quote(r[r["contrast"] == "coda_g - coda_r"].iloc[0])
    good = text.replace("## other", f"G - R is {real} here.\n\n## other")
    readme.write_text(good)
    assert report.stale_quotes(readme, tmp_path) == []
    readme.write_text(good.replace(real, "+0.5, [-0.1, +1.1]"))  # typed by hand, then the file changed
    problems = report.stale_quotes(readme, tmp_path)
    assert len(problems) == 1 and "'+0.5, [-0.1, +1.1]' is not a contrast of the result files" in problems[0]
    readme.write_text(good + f"G - R was {real}.\n")  # under a heading without a generated block
    assert report.stale_quotes(readme, tmp_path) == [f"## other: '{real}' is not a contrast of no generated block in "
                                                     "this section"]


def _full_rows():
    rows = []
    for ipc, shift in ((1, -20.0), (10, 0.0), (50, 6.0)):
        for i, m in enumerate(("random_real", "coda_r", "coda_g", "vae_coda_r", "vae_random_real", "unguided",
                               "text_prompt", "kmeans")):
            for s in range(5):
                acc = 70 + shift + {"unguided": -20, "text_prompt": -19}.get(m, 0.3 * i) + 0.2 * ((s * (i + 1)) % 3)
                rows.append({"method": m, "ipc": ipc, "arch": "convnet3", "protocol": "dc", "selection_seed": s,
                             "seed": 1000 * s, "acc": acc, "acc_best": acc, "train_seconds": 1.0, "epochs": 300,
                             "precision": "bf16"})
    return pd.DataFrame(rows)


def test_full_protocol_findings_quote_the_files_contrasts(tmp_path):
    df = _full_rows()
    text = report.full_protocol_findings(df, "results/full_protocol.csv", root=tmp_path)
    table = report.stats.contrasts(df)
    for name in ("coda_g - coda_r", "coda_g - vae_coda_r", "coda_g - random_real", "vae_coda_r - coda_r"):
        for r in table[table["contrast"] == name].to_dict("records"):
            assert f"{report.quote(r)} at IPC {r['ipc']}" in text
    assert "the best set at IPC 50" in text and "make study" not in text  # no study file under tmp_path
    (tmp_path / "results").mkdir()
    study = df[df["ipc"] == 10].assign(epochs=100, precision="fp32", acc=lambda d: d.acc - 0.5)
    study.to_csv(tmp_path / "results" / "study.csv", index=False)
    text = report.full_protocol_findings(df, "results/full_protocol.csv", root=tmp_path)
    assert "(100 epochs, fp32) against this one (300 epochs, bf16)" in text and "-0.5 to -0.5 points" in text


def test_round_trip_reading_and_prior_quality_render_their_files():
    rows = [{"candidate": c, "latent_shape": shape, "psnr_db": psnr, "vae_parameters": 1, "ipc": ipc, "epochs": 300,
             "contrast": k, "seeds": 3, "cost": cost, "low": cost - 0.5, "high": cost + 0.5}
            for c, shape, psnr, cost in (("v1", "4x8x8", 22.48, -2.0), ("c16", "16x8x8", 22.7, -1.9),
                                         ("f2", "4x16x16", 29.03, -0.9), ("f2d", "4x16x16", 29.77, -0.4))
            for ipc in (10, 50) for k in ("vae_coda_r - coda_r", "vae_random_real - random_real")]
    text = report.round_trip_reading(pd.DataFrame(rows), "results/vae_round_trip.csv")
    assert "gains 0.7 dB (29.8)" in text and "the same 1,024 numbers per image as `c16`" in text
    assert "IPC 50: R -0.4 [-0.9, +0.1]" in text and "its largest cost is 0.4 points" in text and "`v2`" not in text
    quality = {"psnr": {"psnr_db": 28.364, "mean_image_psnr_db": 29.766, "n": 10000},
               "fidelity": {"fidelity": 0.927, "per_class": {"0": 1.0, "1": 0.54}, "n": 1000},
               "fd_unguided_target": 0.0496, "fd_floor": 0.00155, "class_names": ["T-shirt/top", "Shirt"]}
    text = report.prior_quality(quality, "nowhere/quality.json")
    assert "28.36 dB PSNR" in text and "92.7 %" in text and "Shirt 54 %, every other class 100 %" in text
    assert "32x the floor" in text and "training_report" not in text


def test_findings_read_every_published_file_with_intervals(tmp_path):
    """Notebook 06's findings: every contrast of report.FINDINGS in every setting of the published
    files, paired by seed, herding (one set) by Welch's t of its networks; a missing file is skipped."""
    (tmp_path / "results").mkdir()
    df = _study_rows(methods=("random_real", "coda_r", "kmeans"))
    df.to_csv(tmp_path / "results" / "study.csv", index=False)
    found = report.findings(root=tmp_path)
    assert set(found["run"]) == {"study"}  # no full_protocol.csv: skipped
    rows = found.set_index("contrast")
    assert set(rows.index) == {"coda_r - random_real", "kmeans - coda_r", "herding - coda_r"}
    assert rows.loc["coda_r - random_real", "test"] == "paired t" and rows.loc["coda_r - random_real", "n"] == "5 pairs"
    assert rows.loc["herding - coda_r", "test"] == "Welch t" and rows.loc["herding - coda_r", "n"] == "5 vs 5"
    assert (found["low"] <= found["diff"]).all() and (found["diff"] <= found["high"]).all()
    assert set(found["scope"]) == {"paper"}


def test_the_findings_sentences_quote_the_rows_they_read():
    found = report.findings()
    bullets = report.answers(found).splitlines()
    assert len(bullets) == found["contrast"].nunique() and all(b.startswith("- **") for b in bullets)
    text = report.study_summary(found)
    g = found[(found["contrast"] == "coda_g - coda_r") & (found["run"] == "study") & (found["ipc"] == 10)].iloc[0]
    assert f"G against R at IPC 10: {report.quote(g)} with {g['epochs']} epochs" in text
    assert text.count("k-means is ") == 1 and "herding is " in text


def _selection_generation_rows():
    rows = []
    base = {"coda_r": 70.0, "kmeans": 71.0, "herding": 69.0, "coda_g": 68.0, "coda_g_kmeans": 68.5, "coda_g_herding": 69.0}
    for ipc, shift in ((1, -30.0), (10, 0.0)):
        for m, acc in base.items():
            for s in range(5):
                one_set = m == "herding"
                rows.append({"method": m, "ipc": ipc, "arch": "convnet3", "protocol": "dc",
                             "selection_seed": 0 if one_set else s, "seed": 1000 * s,
                             "acc": acc + shift + 0.3 * ((s * 7) % 3), "acc_best": acc, "train_seconds": 1.0,
                             "epochs": 100, "precision": "fp32"})
    return pd.DataFrame(rows)


def test_selection_generation_table_and_reading_quote_the_same_contrasts():
    df = _selection_generation_rows()
    source = "results/selection_generation.csv"
    table = report.selection_generation_table(df, source)
    text = report.selection_generation_reading(df, source)
    from coda_utils.report_tables import selection_generation_contrasts

    contrasts = selection_generation_contrasts(df)
    assert list(contrasts["contrast"].unique()) == [c.name for c in report.stats.SELECTION_GENERATION_CONTRASTS]
    herd = contrasts[contrasts["contrast"] == "coda_g_herding - herding"]
    assert set(herd["test"]) == {"Welch t"}  # one set, its networks: never paired with the seeds
    for r in contrasts.to_dict("records"):
        assert f"`{r['contrast']}`" in table and report.quote(r) in text
    # what generation does to each selection, said per IPC from the intervals
    assert "at IPC 10 generation loses to coda_r and kmeans" in text and "IPC 1" in text
    assert "| coda_g_kmeans |" in table


def test_no_noise_fill_table_and_reading_quote_the_same_paired_contrasts():
    rows = []
    base = {"coda_r": 70.0, "coda_r_no_noise_fill": 71.5, "random_real": 70.2}
    for ipc in (10, 50):
        for m, acc in base.items():
            for s in range(5):
                rows.append({"method": m, "ipc": ipc, "arch": "convnet3", "protocol": "dc", "selection_seed": s,
                             "seed": 1000 * s, "acc": acc + (ipc == 50) * 10 + 0.3 * ((s * 7) % 3) + 0.1 * (m == "coda_r") * s,
                             "acc_best": acc, "train_seconds": 1.0, "epochs": 100, "precision": "fp32"})
    df = pd.DataFrame(rows)
    source = "results/no_noise_fill.csv"
    table = report.no_noise_fill_table(df, source)
    text = report.no_noise_fill_reading(df, source)
    from coda_utils.report_tables import no_noise_fill_contrasts

    contrasts = no_noise_fill_contrasts(df)
    assert list(contrasts["contrast"].unique()) == [c.name for c in report.stats.NO_NOISE_FILL_CONTRASTS]
    assert set(contrasts["test"]) == {"paired t"} and sorted(contrasts["ipc"].unique()) == [10, 50]
    for r in contrasts.to_dict("records"):
        assert f"`{r['contrast']}`" in table and report.quote(r) in text
    r = contrasts[(contrasts["contrast"] == "coda_r_no_noise_fill - coda_r") & (contrasts["ipc"] == 50)].iloc[0]
    assert r["verdict"] == "coda_r_no_noise_fill higher" and f"at IPC 50 `coda_r_no_noise_fill - coda_r` is {report.quote(r)}" in text
    assert "| coda_r_no_noise_fill |" in table


def test_captions_say_which_files_hold_the_second_priors_generated_sets():
    """A table of a file whose generated sets the second prior made says so in its caption (and
    names the command that re-runs it); the study's, re-run on the shipped prior, does not."""
    from coda_utils.report_tables import SECOND_PRIOR_GENERATED, _caption, second_prior_note

    df = pd.DataFrame({"arch": ["convnet3"], "epochs": [300]})
    for source, command in SECOND_PRIOR_GENERATED.items():
        assert "second prior" in _caption(df, source) and command in second_prior_note(source)
    assert "second prior" not in _caption(df, "results/study.csv") and second_prior_note("results/study.csv") == ""
    assert "second prior" not in report.render_block("ablations")  # notebook 05's gamma sweep, re-run


def test_captions_say_which_files_were_made_with_earlier_pins():
    """A table of a file made before today's numerics pins says on which machine, and what follows
    from it; the study's, re-made with them, does not."""
    from coda_utils.report_tables import EARLIER_PINS, _caption, earlier_pins_note

    df = pd.DataFrame({"arch": ["convnet3"], "epochs": [100]})
    for source, (machine, consequence) in EARLIER_PINS.items():
        assert machine in _caption(df, source) and consequence in earlier_pins_note(source)
    assert EARLIER_PINS["results/selection_generation.csv"][0] in report.render_block("selection-generation")
    for made_now in ("results/study.csv", "results/ablations.csv"):  # re-made with today's pins
        assert earlier_pins_note(made_now) == "" and "before the pins" not in _caption(df, made_now)
    assert "before the pins" not in report.render_block("ablations")
