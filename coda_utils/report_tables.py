"""The README's results tables, each rendered from one published result file of ``results/``.

Part of :mod:`coda_utils.report`, which re-exports every name here and renders the README's
generated blocks with them (:data:`coda_utils.report.BLOCKS`); the sentences that read the tables
are :mod:`coda_utils.report_findings`.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import evaluation, stats

__all__ = ["ROOT", "STUDY_RESULTS", "FULL_PROTOCOL_RESULTS", "PRIOR_V1_RESULTS", "study_table", "full_protocol_table",
           "teachers_file", "soft_label_table", "ablation_tables", "round_trip_table", "precision_table",
           "throughput_table", "numerics_table"]

ROOT = Path(__file__).resolve().parent.parent
#: the published hard-label results files of ``make study`` and ``make full`` (the blocks ``study`` and
#: ``full-protocol``), which a table or a sentence of another block reads beside its own file
STUDY_RESULTS = "results/study.csv"
FULL_PROTOCOL_RESULTS = "results/full_protocol.csv"
#: where the results made with the first embedded prior were moved when the second was shipped
PRIOR_V1_RESULTS = "results/prior_v1"

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
    hard_path = Path(root) / Path(source).parent / Path(FULL_PROTOCOL_RESULTS).name
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
