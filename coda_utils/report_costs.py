"""What each stage and each method costs (``benchmarks/bench_costs.py``): the README's table and figure.

The reviewers' question behind the "training-free" claim: what do discovery and guided generation
cost in wall-clock time and memory beside the baselines' selections and beside training one
network? ``results/costs.csv`` holds one row per stage x method x class size x IPC, each measured
in a fresh process; :func:`cost_table` renders it (the README block ``costs``,
:data:`coda_utils.report.BLOCKS`): every measurement, how each stage's time grows with the class
size and with IPC (the exponent ``k`` of ``seconds ~ x**k``, the slope of a least-squares line in
log-log, :func:`growth`), and the per-class comparison at one class size and IPC.
:func:`plot_costs` draws the growth (``figures/costs.png``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .plots_style import NEUTRAL, OKABE_ITO, method_color, method_marker, save_figure

__all__ = ["STAGES", "growth", "cost_table", "plot_costs"]

#: the stages in the pipeline's order, with their human names
STAGES = {
    "imports": "a process that only imports",
    "encoding": "stage 1: encoding (VAE)",
    "compile": "stage 2: numba compile of UMAP",
    "umap": "stage 2: UMAP",
    "hdbscan": "stage 2: HDBSCAN",
    "postprocess": "stage 2: exactly-IPC post-processing",
    "selection": "selection",
    "generation": "stage 3: generation",
    "evaluation": "stage 4: evaluation, one ConvNet-3",
}
_METHOD_ORDER = ["vae", "coda_r", "kmeans", "herding", "random_real", "coda_g", "unguided", "convnet3"]
_METHOD_NAMES = {"vae": "the prior's VAE", "coda_r": "CoDA", "kmeans": "k-means", "herding": "herding",
                 "random_real": "random real", "coda_g": "CoDA-G (guided)", "unguided": "unguided", "convnet3": "ConvNet-3"}
_UNITS = {"input image": "image", "class": "class", "generated image": "generated image", "image-epoch": "image-epoch",
          "process": "process"}


def _dur(seconds: float) -> str:
    """A duration with its unit, at a precision a reader uses (``12 s``, ``3.4 s``, ``56 ms``, ``7 µs``)."""
    if seconds is None or pd.isna(seconds):
        return "-"
    s = float(seconds)
    if s >= 10:
        return f"{s:.0f} s"
    if s >= 1:
        return f"{s:.1f} s"
    if s >= 0.01:
        return f"{s * 1e3:.0f} ms"
    if s >= 0.001:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def _int(x) -> str:
    return "-" if x is None or pd.isna(x) else f"{int(x)}"


def _mb(x) -> str:
    return "-" if x is None or pd.isna(x) else f"{float(x):.0f}"


def _ordered(df: pd.DataFrame) -> pd.DataFrame:
    stage = df["stage"].map({s: i for i, s in enumerate(STAGES)}).fillna(len(STAGES))
    method = df["method"].map({m: i for i, m in enumerate(_METHOD_ORDER)}).fillna(len(_METHOD_ORDER))
    return (df.assign(_s=stage, _m=method, _n=df["n_per_class"].astype(float).fillna(-1), _i=df["ipc"].astype(float).fillna(-1))
            .sort_values(["_s", "_m", "_n", "_i"], kind="stable").drop(columns=["_s", "_m", "_n", "_i"]))


def _size_grid_ipc(df: pd.DataFrame):
    """The IPC at which the class sizes were varied (the IPC of most class sizes among the
    post-processing and selection rows); ``None`` when none varies."""
    rows = df[df["stage"].isin(["postprocess", "selection"]) & df["ipc"].notna()]
    if rows.empty:
        return None
    sizes = rows.groupby("ipc")["n_per_class"].nunique()
    return int(sizes.idxmax())


def growth(df: pd.DataFrame) -> pd.DataFrame:
    """How each stage's seconds grow: for every stage and method measured at two or more class
    sizes (at one IPC) or at two or more IPCs (at the largest class size), the exponent ``k`` of
    ``seconds ~ x**k`` (the slope of ``log seconds`` on ``log x``, ``numpy.polyfit``). Columns:
    ``stage, method, variable`` (``n_per_class`` or ``ipc``), ``exponent, low, high, points, at``
    (the other variable's value)."""
    df = df[df["stage"] != "imports"]
    out = []
    for (stage, method), part in _ordered(df).groupby(["stage", "method"], sort=False):
        # class size: at the size grid's IPC (stages without IPC: every row)
        ipc = _size_grid_ipc(df) if part["ipc"].notna().any() else None
        by_size = part[part["ipc"] == ipc] if ipc is not None else part[part["ipc"].isna()]
        by_size = by_size[by_size["n_per_class"].notna()]
        # IPC: at the largest class size (evaluation has no class size: every row)
        big = part["n_per_class"].max()
        by_ipc = part[part["n_per_class"] == big] if pd.notna(big) else part
        by_ipc = by_ipc[by_ipc["ipc"].notna()]
        for variable, rows, at in (("n_per_class", by_size, ipc), ("ipc", by_ipc, big)):
            rows = rows[rows["seconds"] > 0]
            x = rows[variable].astype(float).to_numpy()
            if len(np.unique(x)) < 2:
                continue
            y = rows["seconds"].astype(float).to_numpy()
            k = float(np.polyfit(np.log(x), np.log(y), 1)[0])
            out.append({"stage": stage, "method": method, "variable": variable, "exponent": k, "low": x.min(),
                        "high": x.max(), "points": len(x), "at": None if at is None or pd.isna(at) else int(at)})
    return pd.DataFrame(out, columns=["stage", "method", "variable", "exponent", "low", "high", "points", "at"])


def _caption(df: pd.DataFrame, source: str) -> str:
    r = df.iloc[0]
    devices = ", ".join(dict.fromkeys(df["device"].astype(str)))
    loads = pd.concat([df["load_before"], df["load_after"]]).astype(float)
    threads = int(r["threads"])
    shared = ("" if loads.max() <= 1 else
              f" The machine was shared: the load went above 1 ({(df[['load_before', 'load_after']].max(axis=1) > 1).sum()} "
              f"of {len(df)} rows), so those seconds are upper bounds.")
    return (f"{r['cpu']} ({int(r['cores'])} cores), {threads} thread{'s' if threads > 1 else ''} per process, device "
            f"{devices}; {int(r['n_classes'])} classes of Fashion-MNIST `target`, the shipped prior; "
            f"{str(r['date'])[:10]}, commit `{r['commit']}`. Every measurement ran in a fresh process: seconds "
            f"exclude its imports and setup (reading the data, loading the model), peak RSS is the process's "
            f"high-water mark; \"over imports\" subtracts a process that only imports the same modules, \"over setup\" "
            f"the same process once its data were read and its model loaded (UMAP: once compiled), i.e. the stage's "
            f"own working memory. The 1-minute load average before and after each process went from {loads.min():.2f} to {loads.max():.2f} "
            f"(the benchmark's own busy thread counts for up to 1).{shared} Source: `{source}`.")


def _measurements(df: pd.DataFrame) -> list[str]:
    gpu = df["peak_gpu_mb"].notna().any() if "peak_gpu_mb" in df else False
    head = ("| stage | method | images per class | IPC | seconds | per unit | peak RSS (MB) | over imports (MB) | "
            "over setup (MB) |" + (" peak GPU (MB) |" if gpu else "") + " load (1 min) |")
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if gpu else "") + "---:|"]
    for r in _ordered(df).to_dict("records"):
        stage = STAGES.get(r["stage"], r["stage"])
        if r["stage"] == "imports":
            method, unit, seconds, inc, own = f"as {r['method']}", "-", "-", "-", "-"
        else:
            method = _METHOD_NAMES.get(r["method"], r["method"])
            unit = f"{_dur(r['per_unit_s'])} per {_UNITS.get(r['unit'], r['unit'])}"
            seconds, inc, own = _dur(r["seconds"]), _mb(r["rss_increment_mb"]), _mb(r.get("rss_over_setup_mb"))
        if r["stage"] == "evaluation" and pd.notna(r.get("epochs")):
            stage = f"{stage}, {int(r['epochs'])} epochs"
        load = f"{float(r['load_before']):.2f} → {float(r['load_after']):.2f}"
        lines.append(f"| {stage} | {method} | {_int(r['n_per_class'])} | {_int(r['ipc'])} | {seconds} | {unit} | "
                     f"{_mb(r['peak_rss_mb'])} | {inc} | {own} |" + (f" {_mb(r.get('peak_gpu_mb'))} |" if gpu else "")
                     + f" {load} |")
    return lines


def _growth_lines(df: pd.DataFrame) -> list[str]:
    g = growth(df)
    if g.empty:
        return []
    lines = ["How the seconds grow: the exponent k of seconds ~ x^k, fitted in log-log (`numpy.polyfit`) over the "
             "rows above (1: linear; 0: constant).", "",
             "| stage | method | k, class size | over class sizes | k, IPC | over IPCs |", "|---|---|---:|---|---:|---|"]
    for (stage, method), part in g.groupby(["stage", "method"], sort=False):
        cells = []
        for variable, other in (("n_per_class", "IPC"), ("ipc", "per class")):
            row = part[part["variable"] == variable]
            if row.empty:
                cells += ["-", "-"]
                continue
            r = row.iloc[0]
            where = ("" if r["at"] is None or pd.isna(r["at"]) else
                     f" at IPC {int(r['at'])}" if variable == "n_per_class" else f" at {int(r['at'])} per class")
            cells += [f"{r['exponent']:.2f}", f"{int(r['low'])}-{int(r['high'])} ({int(r['points'])} points){where}"]
        lines.append(f"| {STAGES.get(stage, stage)} | {_METHOD_NAMES.get(method, method)} | " + " | ".join(cells) + " |")
    return lines


def _per_class_lines(df: pd.DataFrame) -> list[str]:
    """The training-free comparison: per class, at the largest class size and the size grid's IPC."""
    ipc = _size_grid_ipc(df)
    big = df["n_per_class"].max()
    if ipc is None or pd.isna(big):
        return []

    def pick(stage, method=None, n=None, i=None):
        m = df["stage"] == stage
        if method is not None:
            m &= df["method"] == method
        if n is not None:
            m &= df["n_per_class"] == n
        if i is not None:
            m &= df["ipc"] == i
        return df[m]

    train = pick("evaluation", i=ipc)
    items = [
        ("encoding (stage 1; CoDA, k-means and herding select from its latents)", [pick("encoding", n=big)]),
        ("CoDA-R: discovery (UMAP + HDBSCAN + exactly-IPC)",
         [pick("umap", n=big), pick("hdbscan", n=big), pick("postprocess", n=big, i=ipc)]),
        ("CoDA-G: guided generation of the class's images", [pick("generation", "coda_g", i=ipc)]),
        ("unguided generation", [pick("generation", "unguided", i=ipc)]),
        ("k-means selection", [pick("selection", "kmeans", n=big, i=ipc)]),
        ("herding selection", [pick("selection", "herding", n=big, i=ipc)]),
        ("random real selection", [pick("selection", "random_real", n=big, i=ipc)]),
    ]
    if not train.empty:
        epochs = int(train["epochs"].iloc[0])
        items.append((f"training one ConvNet-3 on the set, {epochs} epochs", [train]))
    rows = []
    for name, parts in items:
        if any(p.empty for p in parts):
            continue
        sec = sum(float(p["per_class_s"].iloc[0]) for p in parts)
        rss = max(float(p["peak_rss_mb"].max()) for p in parts)
        rows.append((name, sec, rss))
    if not rows:
        return []
    ref = rows[-1][1] if not train.empty else None
    compile_s = pick("compile")["seconds"]
    lines = [f"Per class, at {int(big)} images per class and IPC {ipc} (each process's seconds over its "
             f"{int(df['n_classes'].iloc[0])} classes)"
             + ("" if compile_s.empty else f"; CoDA-R's process also pays the numba compile once, "
                                           f"{_dur(compile_s.median())} (median over its processes)")
             + ":", "",
             "| what | seconds per class | relative to training one network | peak RSS of its processes (MB) |",
             "|---|---:|---:|---:|"]
    for name, sec, rss in rows:
        rel = "-" if not ref else f"{sec / ref:.2g}x"
        lines.append(f"| {name} | {_dur(sec)} | {rel} | {rss:.0f} |")
    return lines


def cost_table(df: pd.DataFrame, source: str = "results/costs.csv") -> str:
    """The README's block ``costs``: a caption (machine, threads, load, source), every
    measurement (seconds, per-unit cost, peak RSS and its increment over the imports), how each
    stage grows with the class size and IPC (:func:`growth`), and the per-class comparison of
    discovery, generation and the selections with training one network."""
    parts = [_caption(df, source), "", *_measurements(df)]
    g = _growth_lines(df)
    if g:
        parts += ["", *g]
    p = _per_class_lines(df)
    if p:
        parts += ["", *p]
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------------------------
# The figure
# --------------------------------------------------------------------------------------------
#: how a series is drawn: colour, marker, line style (CoDA's discovery steps share CoDA-R's colour)
def _style(stage: str, method: str) -> dict:
    if stage in ("umap", "hdbscan", "postprocess"):
        return {"color": method_color("coda_r"), "marker": {"umap": "o", "hdbscan": "^", "postprocess": "v"}[stage],
                "ls": {"umap": "-", "hdbscan": "--", "postprocess": ":"}[stage]}
    if stage == "encoding":
        return {"color": OKABE_ITO[0], "marker": "P", "ls": "-"}
    if stage == "evaluation":
        return {"color": OKABE_ITO[3], "marker": "X", "ls": "-"}
    return {"color": method_color(method), "marker": method_marker(method), "ls": "-" if stage == "generation" else "-."}


def _series_name(stage: str, method: str) -> str:
    if stage in ("umap", "hdbscan", "postprocess"):
        return {"umap": "CoDA: UMAP", "hdbscan": "CoDA: HDBSCAN", "postprocess": "CoDA: exactly-IPC"}[stage]
    if stage == "encoding":
        return "encoding (VAE)"
    if stage == "evaluation":
        return "training one ConvNet-3"
    if stage == "generation":
        return f"generation: {_METHOD_NAMES.get(method, method)}"
    return f"selection: {_METHOD_NAMES.get(method, method)}"


def plot_costs(df: pd.DataFrame, path: str | Path | None = None):
    """Seconds per class against the class size (left) and against IPC (right), log-log, one
    line per stage and method with its fitted exponent ``k`` in the legend (:func:`growth`); the
    numba compile, paid once per process, as a grey line. Saved with :func:`save_figure` when
    ``path`` is given; returns the figure."""
    import matplotlib.pyplot as plt

    df = _ordered(df[df["stage"] != "imports"])
    g = growth(df)
    ipc, big = _size_grid_ipc(df), df["n_per_class"].max()
    r = df.iloc[0]
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 6.0))
    panels = (("n_per_class", "images per class", f"at IPC {ipc}"),
              ("ipc", "images per class of the set (IPC)", f"at {int(big)} images per class" if pd.notna(big) else ""))
    for ax, (variable, xlabel, where) in zip(axes, panels):
        for (stage, method), part in df[df["stage"] != "compile"].groupby(["stage", "method"], sort=False):
            k = g[(g["stage"] == stage) & (g["method"] == method) & (g["variable"] == variable)]
            if k.empty:
                continue
            k = k.iloc[0]
            rows = part[part[variable].notna()]
            if variable == "n_per_class":
                rows = rows[rows["ipc"] == ipc] if rows["ipc"].notna().any() else rows
            elif pd.notna(big) and rows["n_per_class"].notna().any():
                rows = rows[rows["n_per_class"] == big]
            rows = rows.sort_values(variable)
            st = _style(stage, method)
            ax.plot(rows[variable].astype(float), rows["per_class_s"].astype(float), color=st["color"], ls=st["ls"],
                    marker=st["marker"], ms=6, lw=1.8, label=f"{_series_name(stage, method)} (k = {k['exponent']:.2f})")
        comp = df[df["stage"] == "compile"]["seconds"]
        if variable == "n_per_class" and not comp.empty:
            ax.axhline(comp.median(), color=NEUTRAL, lw=1.5, ls="--", zorder=0)
            ax.annotate("numba compile of UMAP, once per process", (0.02, comp.median()), xycoords=("axes fraction", "data"),
                        xytext=(0, 4), textcoords="offset points", fontsize=8, color="#555555", va="bottom")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("seconds per class")
        ax.set_title(f"against {'the class size' if variable == 'n_per_class' else 'IPC'} ({where})", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        # under its panel: a legend inside would cover the lines (and the compile line)
        ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
        xs = sorted(df[variable].dropna().astype(int).unique())
        if xs:
            ax.set_xticks(xs)
            ax.set_xticklabels([str(x) for x in xs])
            ax.minorticks_off()
    threads = int(r["threads"])
    fig.suptitle(f"What each stage costs: {r['cpu']}, {threads} thread{'s' if threads > 1 else ''}, "
                 f"{int(r['n_classes'])} classes of Fashion-MNIST (k: seconds ~ x^k)", fontsize=11)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
