"""The README's results tables, generated from the published result files in ``results/``.

Every table of results in ``README.md`` sits between two markers::

    <!-- generated: study (python -m coda_utils.report readme README.md) -->
    ... written by this module, never typed ...
    <!-- end generated: study -->

and is rendered by :data:`BLOCKS` from one file of ``results/`` (one row per trained network,
or per ablation point and seed), which the commands that produce results write there:
``make study`` (``results/study.csv``), ``make full`` (``results/full_protocol.csv``),
``make soft-labels`` (``results/soft_labels.csv``, with its teachers in
``results/soft_labels_teachers.json``),
``05_ablations.ipynb`` with ``publish=True`` (``results/ablations.csv``) and
``benchmarks/bench_evaluation.py --out`` (``results/bench_evaluation_*.csv``).

``python -m coda_utils.report readme README.md`` rewrites every block; ``--check`` only
compares and exits 1 when a block and its result file disagree (``tests/test_readme.py``).
``python -m coda_utils.report collect RUN_DIR --labels hard|soft --out results/NAME.csv`` is how
a run's rows get there (:func:`collect`): hard- and soft-label rows are published apart.
``python -m coda_utils.report likeness RUN_DIR --ipc 10`` says how closely each generated (or
round-tripped) set copies the representatives it was made from (:func:`likeness`).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import evaluation, stats

__all__ = ["BLOCKS", "render_block", "update_readme", "main", "collect", "study_table", "full_protocol_table",
           "soft_label_table", "ablation_tables", "precision_table", "throughput_table", "round_trip_table",
           "likeness"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
_BEGIN = "<!-- generated: {name} (python -m coda_utils.report readme README.md) -->"
_END = "<!-- end generated: {name} -->"
_BLOCK = re.compile(r"<!-- generated: (?P<name>[\w-]+) \(python -m coda_utils\.report readme README\.md\) -->\n"
                    r"(?P<body>.*?)<!-- end generated: (?P=name) -->", re.S)

_SETTING_LABELS = {"arch": "{}", "protocol": "{} protocol", "epochs": "{} epochs", "precision": "{}"}


def _caption(df: pd.DataFrame, source: str) -> str:
    """The settings every row shares, and where the numbers come from."""
    parts = []
    for col, fmt in _SETTING_LABELS.items():
        if col in df.columns and df[col].nunique() == 1:
            parts.append(fmt.format(df[col].iloc[0]))
    return f"{', '.join(parts)}; test split (10,000 images); accuracy after the last epoch. Source: `{source}`."


def _varying(df: pd.DataFrame) -> list[str]:
    return [c for c in ("ipc", "arch", "protocol", "epochs", "precision") if c in df.columns and
            (c == "ipc" or df[c].nunique() > 1)]


def _order(summary: pd.DataFrame) -> pd.DataFrame:
    return summary.sort_values(["ipc", "acc_mean"], ascending=[True, False])


def _network_spread(summary: pd.DataFrame) -> str:
    rows = summary.dropna(subset=["net_std"])
    if rows.empty:
        return ""
    parts = [f"{r['method']} at IPC {r['ipc']}: {r['net_std']:.2f} ({r['networks']} networks on one set)"
             for r in rows.to_dict("records")]
    return ("The spread between networks trained on the same set (the pooled std over networks), shown apart "
            "from the spread over selection seeds: " + "; ".join(parts) + ".")


def study_table(df: pd.DataFrame, source: str) -> str:
    """The study's table (over selection seeds), its network spread and its contrasts."""
    summary = _order(evaluation.summarize(df))
    seeds = int(summary["seeds"].max())
    out = [_caption(df, source) + f" Mean ± std over {seeds} selection seeds (herding is deterministic: one set, "
           "its networks shown instead).", "", evaluation.format_table(summary, _varying(df))]
    spread = _network_spread(summary)
    if spread:
        out += ["", spread]
    table = stats.contrasts(df)
    if not table.empty:
        out += ["", "Paired contrasts (difference A - B in points, 95 % t interval over selection seeds, scipy):", "",
                stats.format_contrasts(table, settings=False)]
    return "\n".join(out)


def full_protocol_table(df: pd.DataFrame, source: str) -> str:
    """Methods x IPC, mean ± std over selection seeds, then the contrasts per IPC."""
    summary = evaluation.summarize(df)
    ipcs = sorted(summary["ipc"].unique())
    order = summary[summary["ipc"] == ipcs[-1]].sort_values("acc_mean", ascending=False)["method"].tolist()
    order += [m for m in summary["method"].unique() if m not in order]
    lines = [_caption(df, source) + " Mean ± std over selection seeds (seeds x networks).", "",
             "| method | " + " | ".join(f"IPC {i}" for i in ipcs) + " |", "|---|" + "---:|" * len(ipcs)]
    for m in order:
        cells = []
        for i in ipcs:
            r = summary[(summary["method"] == m) & (summary["ipc"] == i)]
            if r.empty:
                cells.append("-")
                continue
            r = r.iloc[0]
            std = "" if pd.isna(r["acc_std"]) else f" ± {r['acc_std']:.1f}"
            net = "" if pd.isna(r["net_std"]) else f", network std {r['net_std']:.1f}"
            cells.append(f"{r['acc_mean']:.1f}{std} ({r['seeds']} x {r['networks']}{net})")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    table = stats.contrasts(df)
    if not table.empty:
        lines += ["", "Paired contrasts per IPC (difference A - B in points, 95 % t interval over selection seeds):", "",
                  stats.format_contrasts(table.sort_values(["contrast", "ipc"], kind="stable"), settings=False)]
    return "\n".join(lines)


def teachers_file(results_csv: str | Path) -> Path:
    """Where :func:`collect` records the teachers of a soft-label results file."""
    results_csv = Path(results_csv)
    return results_csv.with_name(results_csv.stem + "_teachers.json")


def collect(run_dir: str | Path, labels: str, out: str | Path) -> pd.DataFrame:
    """Publish a run's rows: every network of its hard-label (``labels="hard"``) or soft-label
    (``"soft"``) evaluations into ``out`` (atomically). For soft labels the teachers the rows
    name (id, architecture, protocol, test accuracy) are written beside it
    (:func:`teachers_file`), read from the run's teacher checkpoints.

    Raises:
        FileNotFoundError: the run has no evaluation of that kind, or a row's teacher is not among
            the run's checkpoints.
    """
    from .io import atomic_write, write_json
    from .rundir import RunDir

    if labels not in ("hard", "soft"):
        raise ValueError(f"labels must be 'hard' or 'soft', got {labels!r}")
    run = RunDir(run_dir)
    files = run.all_results(soft_labels=labels == "soft")
    if not files:
        raise FileNotFoundError(f"{run.root}: no {labels}-label evaluation (eval/*/results.csv); run notebook 04 first")
    df = pd.concat([evaluation.read_results(f) for f in files], ignore_index=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, "w") as fh:
        df.to_csv(fh, index=False)
    if labels == "soft":
        found = {}
        for ckpt in sorted(run.root.glob("teacher/*.pt")):
            meta = evaluation.load_teacher(ckpt)[1]
            found[meta.get("id")] = {"id": meta.get("id"), "arch": meta.get("arch"), "test_acc": meta.get("test_acc"),
                                     "protocol": meta["settings"]["protocol"], "epochs": meta["settings"]["epochs"],
                                     "trained_on": f"{meta['settings']['n_train']:,} images (all of the run's target)"}
        missing = sorted(set(df["teacher"].astype(str)) - set(found))
        if missing:
            raise FileNotFoundError(f"{run.root}/teacher holds no checkpoint of teacher(s) {missing} named by the rows")
        write_json(teachers_file(out), {t: found[t] for t in sorted(set(df["teacher"].astype(str)))})
    print(f"{out}: {len(df)} networks from {len(files)} results files of {run.root}")
    return df


def soft_label_table(df: pd.DataFrame, source: str, root: str | Path = ROOT) -> str:
    """The soft-label protocol's rows (never mixed with hard labels): mean ± std over selection
    seeds, the teacher, the contrasts between methods, and each method under soft labels minus
    the same sets under the hard-label dc protocol of ``results/full_protocol.csv`` (same IPC,
    selection seeds and epochs; paired by seed)."""
    from .io import read_json

    summary = _order(evaluation.summarize(df))
    seeds = int(summary["seeds"].max())
    teachers_path = Path(root) / teachers_file(source)
    teachers = read_json(teachers_path) if teachers_path.is_file() else {}
    lines = [_caption(df, source) + f" Mean ± std over {seeds} selection seeds (herding: one set, its networks instead). "
             "A teacher relabels every augmented batch; these numbers are not comparable with the hard-label "
             "tables above.", ""]
    for t in sorted(df["teacher"].astype(str).unique()):
        info = teachers.get(t)
        lines.append(f"Teacher `{t}`: " + (f"{info['arch']}, {info['protocol']} protocol, {info['epochs']} epochs on "
                                           f"{info['trained_on']}, {info['test_acc']:.1f} % on the test split."
                                           if info else "not recorded."))
    lines += ["", evaluation.format_table(summary, _varying(df)), ""]
    table = stats.contrasts(df)
    if not table.empty:
        lines += ["Paired contrasts under soft labels (difference A - B in points, 95 % t interval over selection seeds):",
                  "", stats.format_contrasts(table, settings=False), ""]
    # the hard-label rows published beside this file (results/ or an archived prior's folder)
    hard_path = Path(root) / Path(source).parent / Path(BLOCKS["full-protocol"][0]).name
    if hard_path.is_file():
        hard = evaluation.read_results(hard_path)
        soft_seeds, hard_seeds = stats.per_seed(df), stats.per_seed(hard)
        rows = []
        for (m, ipc, epochs), part in soft_seeds.groupby(["method", "ipc", "epochs"], sort=False):
            other = hard_seeds[(hard_seeds["method"] == m) & (hard_seeds["ipc"] == ipc) & (hard_seeds["epochs"] == epochs)
                               & (hard_seeds["protocol"] == "dc")]
            a, b = part.set_index("selection_seed")["acc"], other.set_index("selection_seed")["acc"]
            b = b[b.index.isin(a.index)]
            r = stats.contrast(a, b, a_name="rded", b_name="dc") if len(b) else None
            cells = [f"{a.mean():.1f}", "-" if r is None else f"{b.mean():.1f}",
                     "-" if r is None else f"{r['diff']:+.1f}",
                     "-" if r is None or pd.isna(r["low"]) else f"[{r['low']:+.1f}, {r['high']:+.1f}]",
                     "-" if r is None else (f"{r['n_pairs']} pairs" if r["test"] == "paired t" else r["test"] or "-")]
            rows.append((a.mean(), f"| {m} | " + " | ".join(cells) + " |"))
        lines += [f"The same sets under soft labels (rded) and hard labels (dc, {_join(df['epochs'].unique())} epochs, "
                  f"`results/full_protocol.csv`), mean over selection seeds:", "",
                  "| method | rded | dc | rded - dc | 95 % interval | seeds |", "|---|---:|---:|---:|---:|---|"]
        lines += [text for _, text in sorted(rows, key=lambda r: -r[0])]
    return "\n".join(lines).rstrip("\n")


def ablation_tables(df: pd.DataFrame, source: str) -> str:
    """One table per sweep: every point's mean ± std over selection seeds on ``target_val``, and
    the chosen point's contrast with the runner-up."""
    from .ablations import choice_table

    out = [f"Accuracy on `target_val` (never `test`), mean ± std over selection seeds; ConvNet-3, dc protocol, "
           f"{_join(df['epochs'].unique())} epochs, {_join(df['precision'].unique()) if 'precision' in df else 'fp32'}. "
           f"Source: `{source}`."]
    for sweep, part in df.groupby("sweep", sort=False):
        table, note = choice_table(part)
        out += ["", f"**{sweep}**", "", table, "", note]
    return "\n".join(out)


def round_trip_table(df: pd.DataFrame, source: str) -> str:
    """The latent-space candidates of the embedded prior: PSNR, and what passing a real set
    through the VAE and back costs a ConvNet-3 (paired by selection seed)."""
    settings = df.dropna(subset=["ipc"]) if "ipc" in df else df.iloc[:0]
    epochs = _join(settings["epochs"].astype(int).unique()) if len(settings) else "-"
    cols = [(int(i), c) for i in sorted(settings["ipc"].unique()) for c in ("vae_coda_r - coda_r", "vae_random_real - random_real")]
    label = {"vae_coda_r - coda_r": "R", "vae_random_real - random_real": "random real"}
    lines = [f"VAE candidates for the embedded prior (trained on `pool` only). PSNR: posterior-mean reconstructions of the "
             f"10,000 `target` images, 28x28 area, mean over images. Round-trip cost: accuracy of a set passed through the "
             f"VAE and back minus that of the set itself (ConvNet-3, dc {epochs} epochs, the same network seeds), points, "
             f"mean and 95 % paired t interval over selection seeds. Source: `{source}`.", "",
             "| candidate | latents | PSNR (dB) | " + " | ".join(f"{label[c]}, IPC {i}" for i, c in cols) + " |",
             "|---|---|---:|" + "---:|" * len(cols)]
    for cand, part in df.groupby("candidate", sort=False):
        first = part.iloc[0]
        cells = []
        for i, c in cols:
            r = part[(part.get("ipc") == i) & (part.get("contrast") == c)] if "ipc" in part else part.iloc[:0]
            if r.empty:
                cells.append("-")
                continue
            r = r.iloc[0]
            ci = "" if pd.isna(r["low"]) else f" [{r['low']:+.1f}, {r['high']:+.1f}]"
            cells.append(f"{r['cost']:+.1f}{ci} ({int(r['seeds'])} seeds)")
        lines.append(f"| {cand} | {first['latent_shape']} | {first['psnr_db']:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _join(values) -> str:
    return ", ".join(str(v) for v in sorted(values))


def precision_table(df: pd.DataFrame, source: str) -> str:
    """The benchmark's accuracy check: the same set, the same network seeds, fp32 against
    another path (bf16, or the fast path of ``--fast``)."""
    from scipy import stats as st

    other = next((p for p in df["precision"].unique() if p != "fp32"), None)
    where = f", {df['device'].iloc[0]}" if "device" in df else ""
    lines = [f"The same random-real set (IPC 10, seed 0), network seeds {df['seed'].min()}-{df['seed'].max()}, "
             f"ConvNet-3, dc {int(df['epochs'].iloc[0])} epochs, 10,000 test images{where}. Source: `{source}`.", "",
             "| path | acc (final), mean ± std over networks | networks | seconds per network (train + test) |",
             "|---|---:|---|---:|"]
    for p, part in df.groupby("precision", sort=True):
        lines.append(f"| {p} | {part['acc'].mean():.2f} ± {part['acc'].std(ddof=1):.2f} | "
                     f"{', '.join(f'{a:.2f}' for a in part['acc'])} | {part['seconds'].mean():.0f} |")
    # the two paths train networks of the same seeds (the same initialization and batches): paired
    both = df.pivot_table(index="seed", columns="precision", values="acc").dropna()
    if other in both and len(both) >= 2:
        a, b = both[other].to_numpy(), both["fp32"].to_numpy()
        ci = st.ttest_rel(a, b).confidence_interval(0.95)
        lines += ["", f"{other} - fp32: {(a - b).mean():+.2f} points, 95 % interval [{ci.low:+.2f}, {ci.high:+.2f}] "
                  f"(paired t over {len(a)} network seeds, scipy): {stats.verdict(ci.low, ci.high, other, 'fp32')}."]
    return "\n".join(lines)


def throughput_table(df: pd.DataFrame, source: str) -> str:
    """The benchmark's throughput: img/s, the ratio to fp32, the share of the machine's limit."""
    lines = [f"One thread of this project's 2-core CPU, the other core idle, best of the benchmark's repeats. "
             f"Source: `{source}`.", "",
             "| IPC | path | train img/s | x fp32 | of the machine's limit | test img/s | x fp32 | one network, 300 epochs + test |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in df.to_dict("records"):
        test = "-" if pd.isna(r["test_img_s"]) else f"{r['test_img_s']:.0f}"
        test_x = "-" if pd.isna(r["test_ratio"]) else f"{r['test_ratio']:.2f}x"
        network = "-" if pd.isna(r["network_seconds"]) else f"{r['network_seconds']:.0f} s"
        lines.append(f"| {r['ipc']} | {r['path']} | {r['train_img_s']:.0f} | {r['train_ratio']:.2f}x | "
                     f"{r['of_limit']:.0%} | {test} | {test_x} | {network} |")
    return "\n".join(lines)


def numerics_table(df: pd.DataFrame, source: str) -> str:
    """What each pin of :mod:`coda_utils.numerics` costs (``benchmarks/bench_numerics.py``):
    seconds per workload and the ratio to the libraries' own code paths, one table per CPU."""
    lines = []
    for cpu, part in df.groupby("cpu", sort=False):
        workloads = list(dict.fromkeys(part["workload"]))
        lines += [f"{cpu} ({part['isa'].iloc[0]}), one thread, best of the benchmark's repeats. Source: `{source}`.", "",
                  "| configuration | " + " | ".join(workloads) + " |", "|---|" + "---:|" * len(workloads)]
        for config, rows in part.groupby("configuration", sort=False):
            by = rows.set_index("workload")
            lines.append(f"| {config} | " + " | ".join(
                f"{by.loc[w, 'seconds']:.1f} s ({by.loc[w, 'ratio_to_native']:.2f}x)" for w in workloads) + " |")
        lines.append("")
    return "\n".join(lines)


#: where the results made with the first embedded prior were moved when the second was shipped
PRIOR_V1_RESULTS = "results/prior_v1"

#: block name -> (result file under the repository root, renderer)
BLOCKS: dict[str, tuple[str, Callable[[pd.DataFrame, str], str]]] = {
    "study": ("results/study.csv", study_table),
    "full-protocol": ("results/full_protocol.csv", full_protocol_table),
    "soft-labels": ("results/soft_labels.csv", soft_label_table),
    "ablations": ("results/ablations.csv", ablation_tables),
    "vae-round-trip": ("results/vae_round_trip.csv", round_trip_table),
    "precision": ("results/bench_evaluation_accuracy.csv", precision_table),
    "precision-fast": ("results/bench_evaluation_accuracy_fast.csv", precision_table),
    "throughput": ("results/bench_evaluation_throughput.csv", throughput_table),
    "numerics": ("results/bench_numerics.csv", numerics_table),
    # the first embedded prior's (4x8x8 latents) published results, kept for comparison with the second's
    "full-protocol-prior-v1": (f"{PRIOR_V1_RESULTS}/full_protocol.csv", full_protocol_table),
    "soft-labels-prior-v1": (f"{PRIOR_V1_RESULTS}/soft_labels.csv", soft_label_table),
    "ablations-prior-v1": (f"{PRIOR_V1_RESULTS}/ablations.csv", ablation_tables),
}


def _read(path: Path) -> pd.DataFrame:
    if path.name.startswith(("bench_", "ablations", "vae_round_trip")):
        return pd.read_csv(path)
    return evaluation.read_results(path)


def render_block(name: str, root: str | Path = ROOT) -> str:
    """The text of block ``name`` from its result file under ``root``."""
    if name not in BLOCKS:
        raise ValueError(f"unknown README block {name!r}; known: {', '.join(BLOCKS)}")
    rel, render = BLOCKS[name]
    path = Path(root) / rel
    if not path.is_file():
        raise FileNotFoundError(f"README block {name!r} is generated from {rel}, which does not exist; "
                                f"run the command that writes it (see coda_utils/report.py)")
    extra = {"root": Path(root)} if render is soft_label_table else {}  # it also reads the teachers and the dc rows
    return render(_read(path), rel, **extra).rstrip("\n") + "\n"


def update_readme(readme: str | Path, root: str | Path = ROOT, check: bool = False) -> list[str]:
    """Rewrite every generated block of ``readme`` from its result file (``check``: only compare).
    Returns the names of the blocks that differed. A block whose result file does not exist yet
    is left as it is (with a message) when rewriting, and is an error when checking."""
    readme = Path(readme)
    text = readme.read_text()
    changed = []

    def replace(m: re.Match) -> str:
        name = m.group("name")
        try:
            body = render_block(name, root)
        except FileNotFoundError as e:
            if check:
                raise
            print(f"{readme}: block {name!r} left as it is: {e}", file=sys.stderr)
            return m.group(0)
        if body != m.group("body"):
            changed.append(name)
        return _BEGIN.format(name=name) + "\n" + body + _END.format(name=name)

    new = _BLOCK.sub(replace, text)
    if not check and new != text:
        from .io import atomic_write

        with atomic_write(readme, "w") as fh:
            fh.write(new)
    return changed


def likeness(run_dir: str | Path, ipc: int, methods: tuple[str, ...] = ("coda_g", "vae_coda_r", "unguided", "text_prompt"),
             reference: str = "coda_r") -> pd.DataFrame:
    """How closely each method's images copy the reference set's: for every selection seed of
    ``reference`` at ``ipc`` in the run, the mean over images of the PSNR (dB, 8-bit pixels) of a
    method's image against the reference image of the same file name (same class and rank: a
    generated image and the representative it was made from). One row per method and seed;
    a method's set that is missing or unfinished is skipped. Images that are equal count as
    100 dB."""
    from . import rundir, setfolder

    run = rundir.RunDir(run_dir)
    rows = []
    for ref_dir in run.set_dirs(reference, ipc):
        meta = setfolder.read_manifest(ref_dir) if setfolder.is_finished(ref_dir) else {}
        if "selection_seed" not in meta:
            continue
        seed = int(meta["selection_seed"])
        ref = setfolder.read_set(ref_dir)
        for m in methods:
            other_dir = run.set_dir(m, ipc, seed)
            if not setfolder.is_finished(other_dir):
                continue
            other_meta = setfolder.read_manifest(other_dir)
            # read_set orders images by class, then file name: equal file lists pair image with image
            if sorted(other_meta.get("files", [])) != sorted(meta.get("files", [])) or other_meta.get("classes") != meta.get("classes"):
                raise ValueError(f"{other_dir} and {ref_dir} hold different files: they are not one image per "
                                 "representative, so their images cannot be paired")
            other = setfolder.read_set(other_dir)
            a, b = ref.images.double(), other.images.double()
            mse = ((a - b) ** 2).flatten(1).mean(1).clamp(min=255.0 ** 2 * 1e-10)
            rows.append({"method": m, "reference": reference, "ipc": ipc, "selection_seed": seed,
                         "images": len(a), "psnr_db": float((10 * np.log10(255.0 ** 2 / mse.numpy())).mean())})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("readme", help="rewrite (or --check) the generated blocks of a README")
    p.add_argument("readme", type=Path)
    p.add_argument("--check", action="store_true", help="only compare; exit 1 if a block differs from its results")
    c = sub.add_parser("collect", help="publish a run's hard- or soft-label rows into one results file")
    c.add_argument("run_dir", type=Path)
    c.add_argument("--labels", choices=["hard", "soft"], required=True)
    c.add_argument("--out", type=Path, required=True)
    k = sub.add_parser("likeness", help="how closely each method's images copy their representatives (PSNR)")
    k.add_argument("run_dir", type=Path)
    k.add_argument("--ipc", type=int, required=True)
    k.add_argument("--reference", default="coda_r")
    args = parser.parse_args(argv)
    if args.command == "likeness":
        df = likeness(args.run_dir, args.ipc, reference=args.reference)
        if df.empty:
            print(f"{args.run_dir}: no finished {args.reference} sets at IPC {args.ipc} with sets to compare")
            return 1
        out = df.groupby("method", sort=False)["psnr_db"].agg(["mean", "std", "count"])
        print(f"mean per-image PSNR (dB) to the {args.reference} image of the same name, IPC {args.ipc}, "
              "mean and std over selection seeds:")
        print(out.round(2).to_string())
        return 0
    if args.command == "collect":
        collect(args.run_dir, args.labels, args.out)
        return 0
    changed = update_readme(args.readme, check=args.check)
    verb = "differ from their result files" if args.check else "rewritten"
    print(f"{args.readme}: {len(changed)} block(s) {verb}" + (f": {', '.join(changed)}" if changed else ""))
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
