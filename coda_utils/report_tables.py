"""The README's results tables, each rendered from one published result file of ``results/``,
and the same tables for a paper in LaTeX.

Part of :mod:`coda_utils.report`, which re-exports every name here and renders the README's
generated blocks with them (:data:`coda_utils.report.BLOCKS`); the sentences that read the tables
are :mod:`coda_utils.report_findings`.

A table of results is built once, as its cells (a :class:`Table`: a DataFrame of strings and each
column's alignment, by :func:`summary_cells`, :func:`contrast_cells`, :func:`full_protocol_cells`,
:func:`round_trip_cells`, :func:`ablation_cells`), and rendered twice: :func:`to_markdown` for the
README, :func:`to_latex` (pandas' ``Styler.to_latex``, booktabs rules, LaTeX's special characters
escaped) for a paper. :func:`latex_tables` lists the paper's tables, :func:`write_latex_tables`
writes them (``python -m coda_utils.report latex --out results/tables``, run by ``make readme``,
``make publish`` and ``make paper``), :func:`check_latex_tables` compares the written ones with
their result files (``tests/test_paper.py``).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from . import evaluation, stats
from .results import _pm

__all__ = ["ROOT", "STUDY_RESULTS", "FULL_PROTOCOL_RESULTS", "SELECTION_GENERATION_RESULTS", "PRIOR_V1_RESULTS",
           "PRIOR_V2_RESULTS", "SECOND_PRIOR_GENERATED", "second_prior_note", "EARLIER_PINS",
           "earlier_pins_note", "source_notes", "set_background_table",
           "study_table", "full_protocol_table", "selection_generation_table", "selection_generation_contrasts",
           "no_noise_fill_table", "no_noise_fill_contrasts", "NO_NOISE_FILL_RESULTS",
           "teachers_file", "soft_label_table", "ablation_tables", "round_trip_table", "precision_table",
           "throughput_table", "numerics_table", "attribute_table", "Table", "to_markdown", "to_latex", "summary_cells", "contrast_cells",
           "full_protocol_cells", "round_trip_cells", "ablation_cells", "LATEX_DIR", "latex_tables",
           "write_latex_tables", "check_latex_tables"]

ROOT = Path(__file__).resolve().parent.parent
#: the published hard-label results files of ``make study`` and ``make full`` (the blocks ``study`` and
#: ``full-protocol``), which a table or a sentence of another block reads beside its own file
STUDY_RESULTS = "results/study.csv"
FULL_PROTOCOL_RESULTS = "results/full_protocol.csv"
#: selection x generation (``make selection-generation``): CoDA-G from the k-means and herding sets
SELECTION_GENERATION_RESULTS = "results/selection_generation.csv"
#: R without the fill from HDBSCAN's noise beside R and random real (``make no-noise-fill``)
NO_NOISE_FILL_RESULTS = "results/no_noise_fill.csv"
#: where the results made with the first embedded prior were moved when the second was shipped
PRIOR_V1_RESULTS = "results/prior_v1"
#: where the second prior's own measurements (its attribute fidelity, its text probe) were moved when
#: the shipped prior became its offset-noise fine-tuning
PRIOR_V2_RESULTS = "results/prior_v2"
#: result files whose generated sets the second prior made, before the shipped prior's offset-noise
#: fine-tuning (its real selections are the shipped prior's too: the fine-tuning left the VAE as it
#: was), and the command that re-runs them on the shipped prior; their captions say so
SECOND_PRIOR_GENERATED = {
    FULL_PROTOCOL_RESULTS: "`make full`",
}
#: result files made before the pins of ``coda_utils.numerics`` named MKL's one branch that every
#: vendor's CPU runs (``COMPATIBLE``) and numba's thread count: the machine that made each, and
#: what follows. Today's code gives other bits on any CPU, so their discovery (UMAP's clusters) and
#: every row after it is that machine's, not the one of ``results/study.csv`` (README, "The same
#: numbers on any x86-64 CPU"); their captions say so
_INTEL = "an Intel Xeon with AVX-512 and AMX"
_AMD = "an AMD EPYC with AVX2"
EARLIER_PINS = {
    SELECTION_GENERATION_RESULTS: (_INTEL, "its `coda_r` and `coda_g` rows follow that machine's discovery, and its "
                                           "networks on ten images per class may differ in their last digits"),
    "results/ablations_ipc50.csv": (_AMD, "every guided point follows that machine's discovery"),
    NO_NOISE_FILL_RESULTS: (_AMD, "its discovered rows follow that machine's discovery"),
    FULL_PROTOCOL_RESULTS: ("an AVX-512 machine in bf16", "its discovered and generated rows follow that machine's "
                                                          "discovery"),
}

_SETTING_LABELS = {"arch": "{}", "protocol": "{} protocol", "epochs": "{} epochs", "precision": "{}"}


class Table(NamedTuple):
    """A table as its cells, built once and rendered as Markdown (:func:`to_markdown`) or LaTeX
    (:func:`to_latex`): ``frame`` holds the cells as strings (inline Markdown: a `code` span),
    its columns the headers; ``align`` each column's alignment, ``"l"`` or ``"r"`` (or a LaTeX
    column type such as ``p{4cm}``: left in Markdown); ``latex_headers`` shorter headers for a
    paper's page (the caption says the rest), ``None``: the same headers."""
    frame: pd.DataFrame
    align: tuple[str, ...]
    latex_headers: tuple[str, ...] | None = None


def to_markdown(table: Table) -> str:
    """A :class:`Table` as a Markdown (GitHub) table."""
    lines = ["| " + " | ".join(map(str, table.frame.columns)) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in table.align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table.frame.astype(str).itertuples(index=False, name=None)]
    return "\n".join(lines)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                  "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _latex_cell(text) -> str:
    """One cell's text in LaTeX: the special characters escaped, a `code` span in ``\\texttt``,
    ``±`` as ``$\\pm$``, a number's minus sign as ``$-$`` and a cell that is only ``-`` (no value) as ``--``."""
    text = str(text)
    if text.strip() == "-":
        return "--"
    out = []
    for i, part in enumerate(re.split(r"`([^`]*)`", text)):
        part = re.sub(r"[\\&%$#_{}~^]", lambda m: _LATEX_SPECIAL[m.group(0)], part)
        if i % 2:
            out.append(r"\texttt{" + part + "}")
        else:
            out.append(re.sub(r"(?<![\w.])-(?=\d)", "$-$", part).replace("±", r"$\pm$"))
    return "".join(out)


def to_latex(table: Table, comment: str = "") -> str:
    """A :class:`Table` as a LaTeX ``tabular`` with booktabs rules (``\\toprule``, ``\\midrule``,
    ``\\bottomrule``; ``\\usepackage{booktabs}``) by pandas' ``Styler.to_latex``, every cell and
    header through :func:`_latex_cell`; ``comment`` (the caption, the source) above it as ``%`` lines."""
    import textwrap

    frame = table.frame.astype(str)
    if table.latex_headers is not None:
        frame = frame.set_axis(list(table.latex_headers), axis=1)
    styler = frame.style.hide(axis="index").format(_latex_cell).format_index(_latex_cell, axis=1)
    body = styler.to_latex(hrules=True, column_format="".join(table.align))
    comment = comment.replace("±", "+/-")  # the file stays ASCII
    lines = [f"% {line}" for par in comment.split("\n") for line in (textwrap.wrap(par, 98) or [""])] if comment else []
    return "\n".join(lines + [body.rstrip("\n")]) + "\n"


_COUNT_HEADERS = ["acc (final), mean ± std over selection seeds", "network std", "acc_best (secondary, selected on test)",
                  "seeds x networks"]


def summary_cells(summary: pd.DataFrame, settings) -> Table:
    """:func:`coda_utils.results.summarize`'s rows (one table: hard or soft labels) as cells,
    the columns of :func:`coda_utils.results.format_table` with these ``settings``: the headline
    mean ± std over selection seeds, the spread between networks on one set, ``acc_best``, the
    count of seeds x networks."""
    settings = list(settings)
    rows = []
    for r in summary.to_dict("records"):
        net = "-" if pd.isna(r.get("net_std", np.nan)) else f"{r['net_std']:.1f}"
        count = f"{r['seeds']} x {r['networks']}" if "seeds" in r else str(r["n"])
        rows.append([str(r["method"])] + [str(r[c]) for c in settings]
                    + [_pm(r["acc_mean"], r["acc_std"]), net, _pm(r["acc_best_mean"], r["acc_best_std"]), count])
    names = ["IPC" if c == "ipc" else c for c in settings]
    return Table(pd.DataFrame(rows, columns=["method"] + names + _COUNT_HEADERS), ("l",) * (1 + len(settings)) + ("r",) * 4,
                 tuple(["method"] + names + ["acc (final)", "network std", "acc_best", "seeds x networks"]))


def contrast_cells(table: pd.DataFrame) -> Table:
    """:func:`coda_utils.stats.contrasts`'s rows as cells, the columns of
    :func:`coda_utils.stats.format_contrasts` (``settings=False``: the IPC the only setting):
    the difference in points, its 95 % interval, the test, the seeds it rests on, the verdict."""
    rows = []
    for r in table.to_dict("records"):
        ci = "-" if pd.isna(r["low"]) else f"[{r['low']:+.1f}, {r['high']:+.1f}]"
        n = f"{r['n_pairs']} pairs" if r["test"] == "paired t" else f"{r['n_a']} vs {r['n_b']}"
        rows.append([f"`{r['contrast']}`", r["question"], str(r["ipc"]), f"{r['diff']:+.1f}", ci, r["test"] or "-", n,
                     r["verdict"]])
    headers = ["contrast", "question", "IPC", "difference (points)", "95 % interval", "test", "seeds", "verdict"]
    return Table(pd.DataFrame(rows, columns=headers), ("l", "p{4.2cm}", "l", "r", "r", "l", "r", "p{2.6cm}"),
                 ("contrast", "question", "IPC", "A - B", "95 % interval", "test", "seeds", "verdict"))


def _caption(df: pd.DataFrame, source: str) -> str:
    """The settings every row shares, and where the numbers come from."""
    parts = []
    for col, fmt in _SETTING_LABELS.items():
        if col in df.columns and df[col].nunique() == 1:
            parts.append(fmt.format(df[col].iloc[0]))
    return (f"{', '.join(parts)}; test split (10,000 images); accuracy after the last epoch. Source: `{source}`."
            + source_notes(source))


def source_notes(source: str) -> str:
    """Every caption warning a result file carries: :func:`second_prior_note`, then
    :func:`earlier_pins_note` ("" for a file with neither)."""
    return second_prior_note(source) + earlier_pins_note(source)


def earlier_pins_note(source: str) -> str:
    """The caption's warning for a file of :data:`EARLIER_PINS` ("" for any other)."""
    if source not in EARLIER_PINS:
        return ""
    machine, consequence = EARLIER_PINS[source]
    return (f" It was made on {machine}, before the pins that give every CPU the same bits (MKL's branch, numba's "
            f"threads): today's code computes other bits, and {consequence}.")


def second_prior_note(source: str) -> str:
    """The caption's warning for a file of :data:`SECOND_PRIOR_GENERATED` ("" for any other)."""
    if source not in SECOND_PRIOR_GENERATED:
        return ""
    return (" Its generated sets were made by the second prior, before the shipped prior's offset-noise fine-tuning "
            f"(its real selections are unchanged: the fine-tuning left the VAE as it was); {SECOND_PRIOR_GENERATED[source]} "
            "re-runs them on the shipped prior.")


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


def _study(df: pd.DataFrame, source: str) -> tuple[str, Table, pd.DataFrame]:
    """The study's caption, its table's cells and its summary (the README's and the paper's)."""
    summary = _order(evaluation.summarize(df))
    seeds = int(summary["seeds"].max())
    caption = (_caption(df, source) + f" Mean ± std over {seeds} selection seeds (herding is deterministic: one set, "
               "its networks shown instead).")
    return caption, summary_cells(summary, _varying(df)), summary


_STUDY_CONTRASTS = "Paired contrasts (difference A - B in points, 95 % t interval over selection seeds, scipy):"
_FULL_CONTRASTS = "Paired contrasts per IPC (difference A - B in points, 95 % t interval over selection seeds):"


def study_table(df: pd.DataFrame, source: str) -> str:
    """The study's table (over selection seeds), its network spread and its contrasts."""
    caption, cells, summary = _study(df, source)
    out = [caption, "", to_markdown(cells)]
    spread = _network_spread(summary)
    if spread:
        out += ["", spread]
    table = stats.contrasts(df)
    if not table.empty:
        out += ["", _STUDY_CONTRASTS, "", to_markdown(contrast_cells(table))]
    return "\n".join(out)


def full_protocol_cells(df: pd.DataFrame) -> Table:
    """Methods x IPC: each cell the mean ± std over selection seeds, seeds x networks (and the
    spread between networks on one set where a set has several); the methods in the order of
    the largest IPC's means."""
    summary = evaluation.summarize(df)
    ipcs = sorted(summary["ipc"].unique())
    order = summary[summary["ipc"] == ipcs[-1]].sort_values("acc_mean", ascending=False)["method"].tolist()
    order += [m for m in summary["method"].unique() if m not in order]
    rows = []
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
        rows.append([m] + cells)
    return Table(pd.DataFrame(rows, columns=["method"] + [f"IPC {i}" for i in ipcs]), ("l",) + ("r",) * len(ipcs))


def _full_protocol_contrasts(df: pd.DataFrame) -> pd.DataFrame:
    return stats.contrasts(df).pipe(lambda t: t.sort_values(["contrast", "ipc"], kind="stable") if not t.empty else t)


def _cells_then_contrasts(caption: str, df: pd.DataFrame, table: pd.DataFrame, header: str) -> str:
    """A caption, methods x IPC (:func:`full_protocol_cells`), then ``header`` and the contrasts
    ``table`` (left out when empty)."""
    lines = [caption, "", to_markdown(full_protocol_cells(df))]
    if not table.empty:
        lines += ["", header, "", to_markdown(contrast_cells(table))]
    return "\n".join(lines)


def full_protocol_table(df: pd.DataFrame, source: str) -> str:
    """Methods x IPC, mean ± std over selection seeds, then the contrasts per IPC."""
    return _cells_then_contrasts(_caption(df, source) + " Mean ± std over selection seeds (seeds x networks).", df,
                                 _full_protocol_contrasts(df), _FULL_CONTRASTS)


_SG_CONTRASTS = ("Selection x generation, paired contrasts per IPC (difference A - B in points, 95 % t interval over "
                 "selection seeds; herding is one set, entered with its networks, Welch t):")


def _ordered_contrasts(df: pd.DataFrame, pairs) -> pd.DataFrame:
    """:func:`coda_utils.stats.contrasts` of ``pairs`` per IPC, in their order."""
    table = stats.contrasts(df, pairs)
    if table.empty:
        return table
    order = {c.name: i for i, c in enumerate(pairs)}
    return table.assign(_o=table["contrast"].map(order)).sort_values(["ipc", "_o"], kind="stable").drop(columns="_o")


def selection_generation_contrasts(df: pd.DataFrame) -> pd.DataFrame:
    """:data:`coda_utils.stats.SELECTION_GENERATION_CONTRASTS` per IPC, in their order."""
    return _ordered_contrasts(df, stats.SELECTION_GENERATION_CONTRASTS)


def no_noise_fill_contrasts(df: pd.DataFrame) -> pd.DataFrame:
    """:data:`coda_utils.stats.NO_NOISE_FILL_CONTRASTS` per IPC, in their order."""
    return _ordered_contrasts(df, stats.NO_NOISE_FILL_CONTRASTS)


def _selection_generation_caption(df: pd.DataFrame, source: str) -> str:
    return (_caption(df, source) + " Guided generation (the study's sampler, gamma and noise seeds) from each selection's "
            "images: `coda_g` from R, `coda_g_kmeans` from the k-means set, `coda_g_herding` from herding's one set; "
            "mean ± std over selection seeds (seeds x networks; herding: its networks).")


def selection_generation_table(df: pd.DataFrame, source: str) -> str:
    """Selection x generation: methods x IPC (:func:`full_protocol_cells`), then the contrasts
    of :func:`selection_generation_contrasts`."""
    return _cells_then_contrasts(_selection_generation_caption(df, source), df, selection_generation_contrasts(df),
                                 _SG_CONTRASTS)


_NF_CONTRASTS = ("R without the noise fill, paired contrasts per IPC (difference A - B in points, 95 % t interval "
                 "over selection seeds):")


def _no_noise_fill_caption(df: pd.DataFrame, source: str) -> str:
    return (_caption(df, source) + " `coda_r_no_noise_fill` (beyond the paper): discovery without the exactly-IPC "
            "step's fill from HDBSCAN's noise, beside R and random real of the same seeds; mean ± std over selection "
            "seeds (seeds x networks).")


def no_noise_fill_table(df: pd.DataFrame, source: str) -> str:
    """R without the noise fill: methods x IPC (:func:`full_protocol_cells`), then the contrasts
    of :func:`no_noise_fill_contrasts`."""
    return _cells_then_contrasts(_no_noise_fill_caption(df, source), df, no_noise_fill_contrasts(df), _NF_CONTRASTS)


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
    lines += ["", to_markdown(summary_cells(summary, _varying(df))), ""]
    table = stats.contrasts(df)
    if not table.empty:
        lines += ["Paired contrasts under soft labels (difference A - B in points, 95 % t interval over selection seeds):",
                  "", to_markdown(contrast_cells(table)), ""]
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
           f"Source: `{source}`.{source_notes(source)}"]
    for sweep, part in df.groupby("sweep", sort=False):
        table, note = choice_table(part)
        out += ["", f"**{sweep}**", "", table, "", note]
    return "\n".join(out)


def _round_trip(df: pd.DataFrame, source: str) -> tuple[str, Table]:
    """The round-trip table's caption and cells (the README's and the paper's)."""
    settings = df.dropna(subset=["ipc"]) if "ipc" in df else df.iloc[:0]
    epochs = _join(settings["epochs"].astype(int).unique()) if len(settings) else "-"
    cols = [(int(i), c) for i in sorted(settings["ipc"].unique()) for c in ("vae_coda_r - coda_r", "vae_random_real - random_real")]
    label = {"vae_coda_r - coda_r": "R", "vae_random_real - random_real": "random real"}
    caption = (f"VAE candidates for the embedded prior (trained on `pool` only). PSNR: posterior-mean reconstructions of the "
               f"10,000 `target` images, 28x28 area, mean over images. Round-trip cost: accuracy of a set passed through the "
               f"VAE and back minus that of the set itself (ConvNet-3, dc {epochs} epochs, the same network seeds), points, "
               f"mean and 95 % paired t interval over selection seeds. Source: `{source}`.")
    rows = []
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
        rows.append([str(cand), str(first["latent_shape"]), f"{first['psnr_db']:.1f}"] + cells)
    headers = ["candidate", "latents", "PSNR (dB)"] + [f"{label[c]}, IPC {i}" for i, c in cols]
    return caption, Table(pd.DataFrame(rows, columns=headers), ("l", "l", "r") + ("r",) * len(cols))


def round_trip_cells(df: pd.DataFrame) -> Table:
    """The latent-space candidates' cells: latents, PSNR, each round-trip cost with its interval."""
    return _round_trip(df, "")[1]


def _from_markdown(text: str) -> Table:
    """A Markdown table's cells (a table another module renders as Markdown only)."""
    lines = [line.strip() for line in text.strip().splitlines()]
    split = lambda line: [c.strip() for c in line.strip("|").split("|")]  # noqa: E731
    align = tuple("r" if c.endswith(":") else "l" for c in split(lines[1]))
    return Table(pd.DataFrame([split(line) for line in lines[2:]], columns=split(lines[0])), align)


def ablation_cells(points: pd.DataFrame) -> tuple[Table, str]:
    """One sweep's cells (every point's mean ± std over selection seeds on ``target_val``, its
    seeds) and the sentence on the chosen point, as :func:`coda_utils.ablations.choice_table`
    summarizes them (its Markdown read back: one summary, not a second)."""
    from .ablations import choice_table

    table, note = choice_table(points)
    return _from_markdown(table), note


def round_trip_table(df: pd.DataFrame, source: str) -> str:
    """The latent-space candidates of the embedded prior: PSNR, and what passing a real set
    through the VAE and back costs a ConvNet-3 (paired by selection seed)."""
    caption, cells = _round_trip(df, source)
    return "\n".join([caption, "", to_markdown(cells)])


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


def attribute_table(df: pd.DataFrame, source: str) -> str:
    """Whether the prior follows the background words of its prompt (``benchmarks/prior_attributes.py``,
    :func:`coda_utils.judge.attribute_fidelity`): per prompt and guidance scale, the share of
    samples with a dark background and its 95 % interval (Clopper-Pearson, scipy), and a sentence
    on the text-prompt baseline's prompt at the study's scale against the plain prompt of the
    same noise."""
    from scipy.stats import binomtest

    def share(r) -> str:
        k = int(round(r["dark_share"] * r["n"]))
        ci = binomtest(k, int(r["n"])).proportion_ci()
        return f"{r['dark_share']:.0%} [{ci.low:.0%}, {ci.high:.0%}]"

    import ast

    cfgs = sorted(df["cfg"].unique())
    n = _join(df["n"].unique())
    classes = len(ast.literal_eval(str(df["dark_by_class"].iloc[0])))
    lines = [f"Share of samples with a dark background (mean of a 3-pixel frame below half of white), 95 % "
             f"Clopper-Pearson interval; {n} samples per cell ({_join((df['n'] // classes).unique())} for each of "
             f"{classes} classes), "
             f"{_join(df['steps'].unique())} steps, the same noise for every prompt. Source: `{source}`.", "",
             "| prompt | asks for | " + " | ".join(f"CFG {c:g}" for c in cfgs) + " |",
             "|---|---|" + "---:|" * len(cfgs)]
    for prompt, part in df.groupby("prompt", sort=False):
        by = part.set_index("cfg")
        asks = part["asks"].iloc[0]
        lines.append(f"| `{part['template'].iloc[0]}` | {'no background' if asks == '-' else asks + ' background'} | "
                     + " | ".join(share(by.loc[c]) for c in cfgs) + " |")
    study = 5.0 if 5.0 in cfgs else cfgs[len(cfgs) // 2]
    at = df[df["cfg"] == study].set_index("prompt")
    if {"black", "white", "plain"} <= set(at.index):
        b, w, p = (float(at.loc[k, "dark_share"]) for k in ("black", "white", "plain"))
        follows = b - w
        lines += ["", f"At CFG {study:g} (the study's), \"on a black background\" gives a dark background in {b:.0%} of "
                  f"the samples, \"on a white background\" in {w:.0%} and the class name alone in {p:.0%}: the words "
                  f"move the share by {follows * 100:+.0f} points, so the prior "
                  + ("follows" if follows >= 0.5 else "does not follow") + " its background words, and the text-prompt "
                  "baseline's prompt " + ("asks the prior for something it draws." if b >= 0.9 else
                                         f"obeys its background words in {b:.0%} of its images (the goal: 90 %).")]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The paper's tables: the same cells in LaTeX, under results/tables/
# --------------------------------------------------------------------------------------------
#: where ``python -m coda_utils.report latex`` writes the paper's tables (``make readme``, ``make paper``)
LATEX_DIR = "results/tables"


def latex_tables(root: str | Path = ROOT) -> dict[str, tuple[Table, str, str]]:
    """The paper's tables from the published result files under ``root`` that exist: name ->
    (cells, source, caption), each built by the same function as its README table: ``study`` and
    ``study_contrasts`` (``results/study.csv``), ``full_protocol`` and ``full_protocol_contrasts``
    (``results/full_protocol.csv``), ``selection_generation`` and ``selection_generation_contrasts``
    (``results/selection_generation.csv``), ``no_noise_fill`` and ``no_noise_fill_contrasts``
    (``results/no_noise_fill.csv``), ``vae_round_trip`` (``results/vae_round_trip.csv``) and
    ``ablation_<sweep>`` (``results/ablations.csv``; ``ablation_selection_ipc50``:
    ``results/ablations_ipc50.csv``)."""
    root = Path(root)
    out = {}
    if (root / STUDY_RESULTS).is_file():
        df = evaluation.read_results(root / STUDY_RESULTS)
        caption, cells, _ = _study(df, STUDY_RESULTS)
        out["study"] = (cells, STUDY_RESULTS, caption)
        table = stats.contrasts(df)
        if not table.empty:
            out["study_contrasts"] = (contrast_cells(table), STUDY_RESULTS, _STUDY_CONTRASTS.rstrip(":") + ".")
    if (root / FULL_PROTOCOL_RESULTS).is_file():
        df = evaluation.read_results(root / FULL_PROTOCOL_RESULTS)
        out["full_protocol"] = (full_protocol_cells(df), FULL_PROTOCOL_RESULTS,
                                _caption(df, FULL_PROTOCOL_RESULTS) + " Mean ± std over selection seeds (seeds x networks).")
        table = _full_protocol_contrasts(df)
        if not table.empty:
            out["full_protocol_contrasts"] = (contrast_cells(table), FULL_PROTOCOL_RESULTS,
                                              _FULL_CONTRASTS.rstrip(":") + f". Source: `{FULL_PROTOCOL_RESULTS}`.")
    # the experiments beyond the paper: methods x IPC, then their contrasts
    for name, source, caption, contrasts_of, header in (
            ("selection_generation", SELECTION_GENERATION_RESULTS, _selection_generation_caption,
             selection_generation_contrasts, _SG_CONTRASTS),
            ("no_noise_fill", NO_NOISE_FILL_RESULTS, _no_noise_fill_caption, no_noise_fill_contrasts, _NF_CONTRASTS)):
        if not (root / source).is_file():
            continue
        df = evaluation.read_results(root / source)
        out[name] = (full_protocol_cells(df), source, caption(df, source))
        table = contrasts_of(df)
        if not table.empty:
            out[f"{name}_contrasts"] = (contrast_cells(table), source, header.rstrip(":") + f". Source: `{source}`.")
    source = "results/vae_round_trip.csv"
    if (root / source).is_file():
        caption, cells = _round_trip(pd.read_csv(root / source), source)
        out["vae_round_trip"] = (cells, source, caption)
    for source, suffix in (("results/ablations.csv", ""), ("results/ablations_ipc50.csv", "_ipc50")):
        if not (root / source).is_file():
            continue
        df = pd.read_csv(root / source)
        head = ablation_tables(df, source).split("\n", 1)[0]
        for sweep, part in df.groupby("sweep", sort=False):
            cells, note = ablation_cells(part)
            out[f"ablation_{sweep}{suffix}"] = (cells, source, f"The {sweep} sweep. {head}" + (f"\n{note}" if note else ""))
    return out


def _latex_file(name: str, cells: Table, source: str, caption: str) -> str:
    return to_latex(cells, f"{name}: generated by `python -m coda_utils.report latex` from {source}; do not edit "
                           f"(tests/test_paper.py re-renders it). Needs \\usepackage{{booktabs}}.\n{caption}")


def write_latex_tables(out_dir: str | Path = LATEX_DIR, root: str | Path = ROOT) -> list[Path]:
    """Write every table of :func:`latex_tables` as ``out_dir/<name>.tex`` (atomically; a
    relative ``out_dir`` is under ``root``); returns the files written."""
    from .io import atomic_write

    out_dir = Path(root) / out_dir
    written = []
    for name, (cells, source, caption) in latex_tables(root).items():
        path = out_dir / f"{name}.tex"
        with atomic_write(path, "w") as fh:
            fh.write(_latex_file(name, cells, source, caption))
        written.append(path)
    return written


def check_latex_tables(out_dir: str | Path = LATEX_DIR, root: str | Path = ROOT) -> list[str]:
    """The tables of :func:`latex_tables` whose file under ``out_dir`` is missing or differs from
    what its result file renders now (``[]``: every table in step with its source)."""
    out_dir = Path(root) / out_dir
    stale = []
    for name, (cells, source, caption) in latex_tables(root).items():
        path = out_dir / f"{name}.tex"
        if not path.is_file() or path.read_text() != _latex_file(name, cells, source, caption):
            stale.append(name)
    return stale


def set_background_table(df: pd.DataFrame, source: str) -> str:
    """The backgrounds of a run's generated sets (``benchmarks/set_backgrounds.py``,
    :func:`coda_utils.judge.set_backgrounds`): per method, the share of dark backgrounds as mean ±
    std over selection seeds with its range, and the mean absolute difference from the same
    seed's unguided set; then a sentence on the text-prompt baseline against its goal."""
    diff = next(c for c in df.columns if c.startswith("diff_to_"))
    reference = diff[len("diff_to_"):]
    lines = [f"Generated sets of IPC {_join(df['ipc'].unique())}, {_join(df['n'].unique())} images each: share with a "
             "dark background (mean of a 3-pixel frame below half of white), mean ± std over selection seeds and its "
             f"range; mean absolute difference from the same seed's `{reference}` set (the same noise in the same "
             f"order), grey levels of 255. Source: `{source}`.", "",
             f"| method | dark background | range over seeds | difference from `{reference}` | seeds |",
             "|---|---:|---:|---:|---:|"]
    for method, part in df.groupby("method", sort=False):
        d = part["dark_share"] * 100
        lines.append(f"| {method} | {d.mean():.1f} ± {d.std(ddof=1):.1f} % | {d.min():.0f}-{d.max():.0f} % | "
                     f"{part[diff].mean():.1f} | {len(part)} |")
    if "text_prompt" in set(df["method"]):
        t = df[df["method"] == "text_prompt"]["dark_share"]
        lines += ["", f"The text-prompt sets (\"on a black background\") have a dark background in {t.min():.0%} to "
                  f"{t.max():.0%} of their images, seed by seed: "
                  + ("at or above the goal of 90 % in every set." if t.min() >= 0.9 else
                     f"below the goal of 90 % in {int((t < 0.9).sum())} of {len(t)} sets.")]
    return "\n".join(lines)
