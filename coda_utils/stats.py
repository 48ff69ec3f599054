"""Contrasts between methods over selection seeds, with 95 % confidence intervals.

One distilled set is one draw (of the random-real pick, of discovery's UMAP, of the
generator's noise), so "method A beats method B" is a statement about two distributions over
selection seeds. For each experiment setting (IPC, architecture, protocol, epochs, precision):

1. every selection seed's networks are averaged (:func:`per_seed`), one value per set;
2. a contrast ``A - B`` is **paired by selection seed** when both methods were evaluated on the
   same seeds: seed ``s`` of every method is evaluated with the same network seeds, and for
   ``coda_g - coda_r``, ``coda_g - unguided`` and ``coda_g - text_prompt`` the two sets also
   share the representatives or the per-image noise of seed ``s``. The interval is scipy's
   one-sample t interval of the differences (``scipy.stats.ttest_rel``); the pairs are
   independent across seeds, so the interval is valid whatever the pairing shares. When every
   seed's difference is the same value the interval has zero width at that value (p 0, or 1
   for a difference of 0), where scipy would give NaN.
3. when the seeds differ, Welch's t interval over the per-seed values
   (``scipy.stats.ttest_ind(equal_var=False)``) is used instead; a deterministic method (one set,
   herding) enters with its networks' values, whose spread is the networks' alone, and is never
   paired (its networks are not the other method's seeds).

An interval that covers 0 means "not distinguishable" at this number of seeds; nothing here is
a claim about more draws than were made.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Contrast", "STUDY_CONTRASTS", "SELECTION_GENERATION_CONTRASTS", "per_seed", "contrast", "contrasts", "format_contrasts", "verdict"]

#: the columns that make one experiment setting (besides the method)
SETTING_COLUMNS = ["ipc", "arch", "protocol", "epochs", "precision", "teacher"]


@dataclass(frozen=True)
class Contrast:
    """``a - b``, and the question it answers."""

    a: str
    b: str
    question: str

    @property
    def name(self) -> str:
        return f"{self.a} - {self.b}"


#: discovery against chance, asked by the study and again beside R without the noise fill
_R_VS_RANDOM = Contrast("coda_r", "random_real", "does discovery pick better real images than chance?")

#: the questions the study asks, in the order of its tables
STUDY_CONTRASTS = (
    Contrast("coda_g", "unguided", "does CoDA guidance improve the prior's samples?"),
    Contrast("coda_g", "text_prompt", "does guidance beat prompt engineering?"),
    _R_VS_RANDOM,
    Contrast("kmeans", "coda_r", "does k-means nearest-real beat discovery?"),
    Contrast("coda_g", "coda_r", "do guided samples match the representatives they follow?"),
    Contrast("coda_g", "random_real", "do guided samples beat random real images?"),
    Contrast("coda_g", "vae_coda_r", "does the generator lose anything beyond its VAE?"),
    Contrast("vae_coda_r", "coda_r", "what does the VAE round trip cost R?"),
    Contrast("vae_random_real", "random_real", "what does the VAE round trip cost random real?"),
)

#: selection x generation (beyond the paper): what guided generation adds to a selection, and
#: whether the selection it follows matters (:data:`coda_utils.rundir.SELECTION_GENERATION_METHODS`)
SELECTION_GENERATION_CONTRASTS = (
    Contrast("coda_g", "coda_r", "what does generation add to discovery's selection?"),
    Contrast("coda_g_kmeans", "kmeans", "what does generation add to k-means' selection?"),
    Contrast("coda_g_herding", "herding", "what does generation add to herding's selection?"),
    Contrast("coda_g_kmeans", "coda_g", "does guided generation do better from k-means' images than from R?"),
    Contrast("coda_g_herding", "coda_g", "does guided generation do better from herding's images than from R?"),
)

#: R without the exactly-IPC step's fill from HDBSCAN's noise (beyond the paper, issue 27; ``make
#: no-noise-fill``): the variant of notebook 05's IPC-50 selection sweep above discovery on target_val
NO_NOISE_FILL_CONTRASTS = (
    Contrast("coda_r_no_noise_fill", "coda_r", "does R improve without the fill from HDBSCAN's noise?"),
    Contrast("coda_r_no_noise_fill", "random_real", "does R without the noise fill beat random real images?"),
    _R_VS_RANDOM,
)


def per_seed(df: pd.DataFrame, value: str = "acc") -> pd.DataFrame:
    """One row per (method, setting, selection seed): ``value`` averaged over that set's
    networks, with ``networks`` (their count)."""
    keys = ["method"] + [c for c in SETTING_COLUMNS if c in df.columns] + ["selection_seed"]
    if "selection_seed" not in df.columns:
        df = df.assign(selection_seed=0)
    out = df.groupby(keys, sort=True).agg(**{value: (value, "mean"), "networks": (value, "size")})
    return out.reset_index()


def verdict(low: float, high: float, a: str, b: str) -> str:
    """``"a higher"``, ``"b higher"`` or ``"not distinguishable"`` (the interval covers 0)."""
    if pd.isna(low) or pd.isna(high):
        return "too few seeds"
    if low > 0:
        return f"{a} higher"
    if high < 0:
        return f"{b} higher"
    return "not distinguishable"


def contrast(a: pd.Series, b: pd.Series, level: float = 0.95, a_name: str = "a", b_name: str = "b",
             paired: bool = True) -> dict:
    """The contrast ``mean(a) - mean(b)`` of two methods' per-seed values (Series indexed by
    selection seed), with its ``level`` confidence interval (see the module docstring);
    ``paired=False``: Welch's t whatever the indices (a deterministic method's networks).

    Returns:
        ``diff``, ``low``, ``high``, ``p`` (two-sided), ``test`` (``"paired t"`` or
        ``"Welch t"``), ``n_a``, ``n_b``, ``n_pairs`` and ``verdict``.
    """
    from scipy import stats

    a, b = a.dropna(), b.dropna()
    common = a.index.intersection(b.index)
    out = {"n_a": len(a), "n_b": len(b), "n_pairs": 0, "diff": float(a.mean() - b.mean()) if len(a) and len(b) else np.nan,
           "low": np.nan, "high": np.nan, "p": np.nan, "test": ""}
    paired = paired and len(common) >= 2 and len(common) == len(a) == len(b)
    if paired:
        d = a.loc[common].to_numpy(float) - b.loc[common].to_numpy(float)
        out.update(n_pairs=len(common), diff=float(d.mean()), test="paired t")
        if np.ptp(d) > 0:
            res = stats.ttest_rel(a.loc[common].to_numpy(float), b.loc[common].to_numpy(float))
            ci = res.confidence_interval(level)
            out.update(low=float(ci.low), high=float(ci.high), p=float(res.pvalue))
        else:  # every seed's difference is the same: no spread, the interval is that value (scipy gives NaN)
            out.update(low=float(d[0]), high=float(d[0]), p=0.0 if d[0] != 0 else 1.0)
    elif len(a) >= 2 and len(b) >= 2:
        out["test"] = "Welch t"
        res = stats.ttest_ind(a.to_numpy(float), b.to_numpy(float), equal_var=False)
        ci = res.confidence_interval(level)
        out.update(low=float(ci.low), high=float(ci.high), p=float(res.pvalue))
    out["verdict"] = verdict(out["low"], out["high"], a_name, b_name)
    return out


def contrasts(df: pd.DataFrame, pairs=STUDY_CONTRASTS, value: str = "acc", level: float = 0.95) -> pd.DataFrame:
    """Every contrast of ``pairs`` in every experiment setting of ``df`` (network rows as
    :func:`coda_utils.evaluation.read_results` reads them) where both methods were evaluated.

    Returns:
        One row per (setting, contrast): the setting's columns, ``contrast``, ``question``,
        and the fields of :func:`contrast`.
    """
    seeds = per_seed(df, value)
    setting = [c for c in SETTING_COLUMNS if c in seeds.columns]
    rows = []
    for key, part in seeds.groupby(setting, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        values, one_set = {}, set()
        for m, g in part.groupby("method"):
            if len(g) == 1 and int(g["networks"].iloc[0]) >= 2:  # one set (herding): its networks' values
                nets = df[df["method"] == m].merge(pd.DataFrame([dict(zip(setting, key))]), on=setting)
                values[m] = nets[value].reset_index(drop=True)
                one_set.add(m)
            else:
                values[m] = g.set_index("selection_seed")[value]
        for c in pairs:
            if c.a in values and c.b in values:
                rows.append({**dict(zip(setting, key)), "contrast": c.name, "question": c.question,
                             **contrast(values[c.a], values[c.b], level, c.a, c.b,
                                        paired=not {c.a, c.b} & one_set)})
    return pd.DataFrame(rows)


def format_contrasts(table: pd.DataFrame, settings: bool = True) -> str:
    """A markdown table of :func:`contrasts`: difference in points, its 95 % interval, the test,
    the seeds it rests on and the verdict."""
    setting = [c for c in SETTING_COLUMNS if c in table.columns] if settings else ["ipc"]
    if "teacher" in setting and (table["teacher"].astype(str) == "none").all():
        setting.remove("teacher")  # hard labels only: no teacher to name
    headers = ["contrast", "question"] + [("IPC" if c == "ipc" else c) for c in setting] + [
        "difference (points)", "95 % interval", "test", "seeds", "verdict"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * (2 + len(setting)) + ["---:", "---:", "---", "---:", "---"]) + "|"]
    for r in table.to_dict("records"):
        ci = "-" if pd.isna(r["low"]) else f"[{r['low']:+.1f}, {r['high']:+.1f}]"
        n = f"{r['n_pairs']} pairs" if r["test"] == "paired t" else f"{r['n_a']} vs {r['n_b']}"
        lines.append("| " + " | ".join([f"`{r['contrast']}`", r["question"]] + [str(r[c]) for c in setting]
                                       + [f"{r['diff']:+.1f}", ci, r["test"] or "-", n, r["verdict"]]) + " |")
    return "\n".join(lines)
