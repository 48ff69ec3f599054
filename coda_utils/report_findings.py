"""The README's sentences that quote a result, and the study's findings (notebook 06).

Every sentence that quotes a result is rendered from its file like the tables
(:func:`full_protocol_findings`, :func:`round_trip_reading`, :func:`prior_quality`: the blocks
``full-protocol-findings``, ``vae-round-trip-reading`` and ``prior-quality`` of
:data:`coda_utils.report.BLOCKS`); :func:`findings` reads every contrast of :data:`FINDINGS` in the
published result files. Part of :mod:`coda_utils.report`, which re-exports every name here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from . import evaluation, stats
from .report_tables import PRIOR_V1_RESULTS, ROOT, SECOND_PRIOR_GENERATED, STUDY_RESULTS
from .rundir import GENERATED_METHODS, GUIDED_BY, SELECTION_GENERATION_METHODS

__all__ = ["quote", "CEILING_GOAL", "full_protocol_findings", "selection_generation_reading", "no_noise_fill_reading", "prior_text_probe_reading", "round_trip_reading", "prior_quality", "FINDINGS",
           "FINDING_SOURCES", "findings", "answers", "run_summary", "study_summary"]


# --------------------------------------------------------------------------------------------
# The README's sentences: every sentence that quotes a result is rendered from its file
# --------------------------------------------------------------------------------------------
def quote(r: Mapping) -> str:
    """A contrast as the README's sentences quote it, at the tables' rounding: ``+0.6 [+0.1, +1.2]``."""
    ci = "" if pd.isna(r["low"]) else f" [{r['low']:+.1f}, {r['high']:+.1f}]"
    return f"{r['diff']:+.1f}{ci}"


def _by_ipc(table: pd.DataFrame) -> dict:
    return {(r["contrast"], int(r["ipc"])): r for r in table.to_dict("records")}


def _at(found: dict, name: str, ipcs) -> str:
    return ", ".join(f"{quote(found[name, i])} at IPC {i}" for i in ipcs if (name, i) in found)


def _verdicts(found: dict, name: str, ipcs) -> str:
    """``not distinguishable at IPC 1 and 10, random_real higher at IPC 50``."""
    groups: dict[str, list[int]] = {}
    for i in ipcs:
        if (name, i) in found:
            groups.setdefault(found[name, i]["verdict"], []).append(i)
    return ", ".join(f"{v} at IPC {_and(i)}" for v, i in groups.items())


def _and(values) -> str:
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


#: issue 13's goal for the generator against its ceiling: G - vae_coda_r no lower than this (points)
CEILING_GOAL = -0.5


def full_protocol_findings(df: pd.DataFrame, source: str, root: str | Path = ROOT) -> str:
    """The sentences that read the full protocol's table: the VAE round trip's cost, the
    generator against its ceiling, random real and R, discovery at the largest IPC, the first
    prior beside the second, and what ``make study``'s shorter protocol changes (from
    ``results/study.csv`` and ``results/prior_v1/full_protocol.csv`` when they exist)."""
    found = _by_ipc(stats.contrasts(df))
    ipcs = sorted(int(i) for i in df["ipc"].unique())
    top = ipcs[-1]
    summary = evaluation.summarize(df)
    mean = {(r["method"], int(r["ipc"])): r for r in summary.to_dict("records")}
    sources = [f"`{source}`"]
    lines = []
    costs = [found[n, i]["diff"] for n in ("vae_coda_r - coda_r", "vae_random_real - random_real") for i in ipcs
             if (n, i) in found]
    if costs:
        lines.append(f"* **What the VAE round trip costs** (a set through the prior's VAE and back, minus the set): "
                     f"R (`vae_coda_r - coda_r`) {_at(found, 'vae_coda_r - coda_r', ipcs)}; random real "
                     f"(`vae_random_real - random_real`) {_at(found, 'vae_random_real - random_real', ipcs)}: "
                     f"{'at most ' + format(-min(costs), '.1f') + ' points' if max(costs) <= 0 else 'not always a loss'}.")
    name = "coda_g - vae_coda_r"
    if any((name, i) in found for i in ipcs):
        below = [i for i in ipcs if (name, i) in found and found[name, i]["diff"] < CEILING_GOAL]
        lines.append(f"* **CoDA-G against its ceiling** (`{name}`, the goal: no lower than {CEILING_GOAL:+.1f}): "
                     f"{_at(found, name, ipcs)}; " + ("the goal holds at every IPC" if not below else
                                                       f"the goal fails at IPC {_and(below)}")
                     + f" ({_verdicts(found, name, ipcs)}).")
    name = "coda_g - random_real"
    if any((name, i) in found for i in ipcs):
        lines.append(f"* **CoDA-G against random real** (`{name}`): {_at(found, name, ipcs)} "
                     f"({_verdicts(found, name, ipcs)}).")
    name = "coda_g - coda_r"
    if any((name, i) in found for i in ipcs):
        extra = ""
        if (name, top) in found and ("vae_coda_r - coda_r", top) in found:
            extra = (f"; at IPC {top} G - R is {found[name, top]['diff']:+.1f} where the VAE round trip alone costs R "
                     f"{found['vae_coda_r - coda_r', top]['diff']:+.1f}")
        lines.append(f"* **CoDA-G against R**, the paper's claim (`{name}`): {_at(found, name, ipcs)} "
                     f"({_verdicts(found, name, ipcs)}){extra}.")
    parts = []
    for name in ("coda_r - random_real", "kmeans - coda_r"):
        if (name, top) in found:
            parts.append(f"`{name}` {quote(found[name, top])} ({found[name, top]['verdict']})")
    if parts:
        text = f"* **Discovery at IPC {top}**: " + ", ".join(parts)
        if ("herding", top) in mean:
            h = mean["herding", top]
            text += f"; herding (one deterministic set, {int(h['networks'])} networks) {h['acc_mean']:.1f}"
        best = summary[summary["ipc"] == top].sort_values("acc_mean", ascending=False).iloc[0]
        lines.append(text + f"; the best set at IPC {top}: {best['method']} ({best['acc_mean']:.1f}).")
    v1_path = Path(root) / PRIOR_V1_RESULTS / Path(source).name
    if v1_path.is_file():
        v1 = evaluation.summarize(evaluation.read_results(v1_path))
        old = {(r["method"], int(r["ipc"])): r["acc_mean"] for r in v1.to_dict("records")}
        pairs = [(m, old[m, top], mean[m, top]["acc_mean"]) for m in ("coda_r", "random_real")
                 if (m, top) in old and (m, top) in mean]
        if pairs:
            sources.append(f"`{PRIOR_V1_RESULTS}/{Path(source).name}`")
            lines.append(f"* **The first prior beside the second** at IPC {top}, mean accuracy: " + "; ".join(
                f"{m} {a:.1f} then, {b:.1f} now" for m, a, b in pairs) + ".")
    gains = [found[n, i]["diff"] for n in ("coda_g - unguided", "coda_g - text_prompt") for i in ipcs if (n, i) in found]
    if gains:
        whose = " (the second prior's, before its fine-tuning)" if source in SECOND_PRIOR_GENERATED else ""
        lines.append(f"* **Guidance over the prior's own samples**{whose} of the same noise: `coda_g - unguided` "
                     f"{_at(found, 'coda_g - unguided', ipcs)}; `coda_g - text_prompt` "
                     f"{_at(found, 'coda_g - text_prompt', ipcs)}.")
    study_path = Path(root) / STUDY_RESULTS
    if study_path.is_file():
        study = evaluation.read_results(study_path)
        ipc = int(study["ipc"].iloc[0])
        short = {r["method"]: r["acc_mean"] for r in evaluation.summarize(study).to_dict("records")}
        diffs = {m: short[m] - mean[m, ipc]["acc_mean"] for m in short if (m, ipc) in mean}
        # generated sets of two priors are not one protocol's against another's: real selections only
        other_prior = source in SECOND_PRIOR_GENERATED
        if other_prior:
            diffs = {m: d for m, d in diffs.items() if m not in GENERATED_METHODS}
        own = [d for m, d in diffs.items() if m in ("unguided", "text_prompt")]
        rest = [d for m, d in diffs.items() if m not in ("unguided", "text_prompt")]
        s_found = _by_ipc(stats.contrasts(study))
        if rest:
            sources.append(f"`{STUDY_RESULTS}`")
            def setting(d):
                return f"{_and(sorted(d['epochs'].unique()))} epochs, {_and(sorted(d['precision'].unique()))}"

            text = (f"* **`make study`'s protocol** ({setting(study)}) against this one ({setting(df)}), IPC {ipc}, the "
                    f"same selection seeds: a method's mean moves by {min(rest):+.1f} to {max(rest):+.1f} points")
            if own:
                text += f" ({min(own):+.1f} to {max(own):+.1f} for the prior's unguided and text-prompt samples)"
            if other_prior:
                text += (" (real selections only: this file's generated sets are the second prior's, the study's "
                         "the shipped prior's)")
            elif ("coda_g - coda_r", ipc) in s_found and ("coda_g - coda_r", ipc) in found:
                a, b = s_found["coda_g - coda_r", ipc], found["coda_g - coda_r", ipc]
                text += (f"; G - R is {quote(a)} there ({a['verdict']}) and {quote(b)} here ({b['verdict']})")
            lines.append(text + ".")
    return "\n".join([f"Read from {', '.join(sources)} (95 % t intervals over selection seeds, points):", ""] + lines)


def selection_generation_reading(df: pd.DataFrame, source: str) -> str:
    """The paragraph that says what guided generation adds to each selection, per IPC, and
    whether the selection it follows matters (from ``results/selection_generation.csv``)."""
    from .report_tables import selection_generation_contrasts

    found = _by_ipc(selection_generation_contrasts(df))
    ipcs = sorted({i for _, i in found})
    adds = [f"{g} - {r}" for g, r in GUIDED_BY.items()]  # what generation adds to the selection it follows
    parts = []
    for i in ipcs:
        here = {n: found[n, i] for n in adds if (n, i) in found}
        gains = [n.split(" - ")[1] for n, r in here.items() if r["low"] > 0]
        losses = [n.split(" - ")[1] for n, r in here.items() if r["high"] < 0]
        same = [n.split(" - ")[1] for n in here if n.split(" - ")[1] not in gains + losses]
        said = ([f"adds to {_and(gains)}" ] if gains else []) + ([f"loses to {_and(losses)}"] if losses else []) + (
            [f"is not distinguishable from {_and(same)}"] if same else [])
        parts.append(f"at IPC {i} generation {'; it '.join(said)} ("
                     + ", ".join(f"`{n}` {quote(r)}" for n, r in here.items()) + ")")
    follow = []
    for other in SELECTION_GENERATION_METHODS:
        name = f"{other} - coda_g"
        if any((name, i) in found for i in ipcs):
            follow.append(f"`{name}` {_at(found, name, ipcs)} ({_verdicts(found, name, ipcs)})")
    text = ("**What generation adds to a selection** (beyond the paper; the study's protocol, rendered from `"
            f"{source}`): guided from the images a selection picked, with the same sampler, guidance scale and noise "
            "seeds, " + "; ".join(parts) + ".")
    if follow:
        text += " Which selection the generator follows: " + "; ".join(follow) + "."
    return text


def no_noise_fill_reading(df: pd.DataFrame, source: str) -> str:
    """The sentence that says, per IPC, whether R without the fill from HDBSCAN's noise beats R
    and random real on ``test`` (from ``results/no_noise_fill.csv``)."""
    from .report_tables import no_noise_fill_contrasts

    found = _by_ipc(no_noise_fill_contrasts(df))
    ipcs = sorted({i for _, i in found})
    parts = []
    for i in ipcs:
        here = [(c.name, found[c.name, i]) for c in stats.NO_NOISE_FILL_CONTRASTS if (c.name, i) in found]
        parts.append(f"at IPC {i} " + ", ".join(f"`{n}` is {quote(r)} ({r['verdict']})" for n, r in here))
    return ("**R without the noise fill on `test`** (beyond the paper; the study's protocol, rendered from `"
            f"{source}`; the variant was chosen on `target_val` by the sweep above): " + "; ".join(parts) + ".")


def round_trip_reading(df: pd.DataFrame, source: str) -> str:
    """The sentences that read the VAE candidates' table: what each candidate's reconstructions
    and round trip cost, and what each change bought (the candidates ``v1``, ``c16``, ``v2``,
    ``f2``, ``f2d`` of ``benchmarks/vae_candidates.py``; a sentence whose candidates are
    missing is left out)."""
    psnr = {c: float(p["psnr_db"].iloc[0]) for c, p in df.groupby("candidate")}
    shape = {c: str(p["latent_shape"].iloc[0]) for c, p in df.groupby("candidate")}
    label = {"vae_coda_r - coda_r": "R", "vae_random_real - random_real": "random real"}

    def cost(c, ipc, contrast="vae_coda_r - coda_r"):
        r = df[(df["candidate"] == c) & (df["ipc"] == ipc) & (df["contrast"] == contrast)]
        return None if r.empty else {"diff": r["cost"].iloc[0], "low": r["low"].iloc[0], "high": r["high"].iloc[0]}

    def costs(c):
        """``IPC 10: R -0.5 [-1.5, +0.5], random real ...; IPC 50: ...``"""
        per_ipc = []
        for i in sorted(int(i) for i in df["ipc"].dropna().unique()):
            parts = [f"{label[k]} {quote(r)}" for k in label if (r := cost(c, i, k)) is not None]
            if parts:
                per_ipc.append(f"IPC {i}: " + ", ".join(parts))
        return "; ".join(per_ipc)

    def size(c):
        return int(np.prod([int(x) for x in shape[c].split("x")]))

    lines = [f"Read from `{source}` (PSNR in dB; round-trip costs in points, 95 % paired t intervals):", ""]
    if {"v1", "c16"} <= set(psnr):
        lines.append(f"* `c16` ({shape['c16']}, the VAE stage alone) reconstructs `target` at {psnr['c16']:.1f} dB, the "
                     f"first prior's VAE `v1` ({shape['v1']}) at {psnr['v1']:.1f}. Round trip of `c16`, {costs('c16')}; of "
                     f"`v1`, {costs('v1')}.")
    if {"c16", "v2"} <= set(psnr):
        lines.append(f"* `v2` (`c16`'s encoder, its decoder fine-tuned longer) gains {psnr['v2'] - psnr['c16']:.1f} dB "
                     f"({psnr['v2']:.1f}). Round trip, {costs('v2')}.")
    if "f2" in psnr:
        same = f", the same {size('f2'):,} numbers per image as `c16`" if "c16" in psnr and size("c16") == size("f2") else ""
        lines.append(f"* `f2` ({shape['f2']}{same}, the VAE stage alone) reconstructs at {psnr['f2']:.1f} dB. Round trip, "
                     f"{costs('f2')}.")
    if {"f2", "f2d"} <= set(psnr):
        worst = max(abs(r["diff"]) for k in label for i in df["ipc"].dropna().unique()
                    if (r := cost("f2d", int(i), k)) is not None)
        lines.append(f"* `f2d` (`f2` with its decoder fine-tuned: the same encoder, so the same latent space) gains "
                     f"{psnr['f2d'] - psnr['f2']:.1f} dB ({psnr['f2d']:.1f}). Round trip, {costs('f2d')}: its largest "
                     f"cost is {worst:.1f} points.")
    return "\n".join(lines)


def prior_quality(quality: dict, source: str, root: str | Path = ROOT) -> str:
    """The shipped prior as notebook 00 measured it (``quality.json``) and as it was built
    (``training_report.json`` beside it): PSNR, prompt fidelity, Frechet distance, sizes and
    training time."""
    from .io import read_json

    names = quality.get("class_names") or [str(c) for c in sorted(quality["fidelity"]["per_class"])]
    per_class = {names[int(c)]: v for c, v in quality["fidelity"]["per_class"].items()}
    weak = {n: v for n, v in per_class.items() if v < max(per_class.values())}
    psnr = quality["psnr"]
    who = ("The second prior, before its offset-noise fine-tuning, as notebook 00 measured it"
           if "prior_v2" in str(source) else "The shipped prior as notebook 00 measures it")
    text = [f"{who}: VAE reconstructions of the {psnr['n']:,} `target` images at "
            f"{psnr['psnr_db']:.2f} dB PSNR over all pixels ({psnr['mean_image_psnr_db']:.2f} dB as the mean of per-image "
            f"PSNRs); prompt fidelity {100 * quality['fidelity']['fidelity']:.1f} % over {quality['fidelity']['n']:,} unguided "
            f"samples judged by a classifier of the prior's own `pool` ("
            + ", ".join(f"{n} {v:.0%}".replace("%", " %") for n, v in weak.items())
            + (f", every other class {max(per_class.values()):.0%}".replace("%", " %") if weak else "") + "); unguided Frechet distance to "
            f"`target` {quality['fd_unguided_target']:.4f}, {quality['fd_unguided_target'] / quality['fd_floor']:.0f}x "
            f"the floor of two disjoint `target` sets ({quality['fd_floor']:.4f})."]
    report_path = Path(root) / Path(source).parent / "training_report.json"
    sources = [f"`{source}`"]
    if report_path.is_file():
        rep = read_json(report_path)
        cfg, n = rep["config"], rep["parameters"]
        minutes = {k: rep.get(f"{k}_seconds", 0) / 60 for k in ("vae", "unet", "finetune", "decoder")}
        total = sum(minutes.values())
        tuned = (f", offset-noise fine-tuning {cfg['finetune_steps']:,} in {minutes['finetune']:.0f} min"
                 if cfg.get("finetune_steps") else "")
        base = (f" (the VAE, UNet and decoder stages are the second prior's, sha256 "
                f"{rep['base_prior']['sha256'][:12]}, which the fine-tuning started from)" if "base_prior" in rep else "")
        text.append(f"Parameters: UNet {n['unet'] / 1e6:.1f}M, VAE {n['vae'] / 1e6:.2f}M, text encoder "
                    f"{n['text_encoder'] / 1e6:.2f}M. The build's training, as its report records it (on "
                    f"{', '.join(sorted(set(rep['trained_on'].values())))}){base}: VAE {cfg['vae_steps']:,} steps in "
                    f"{minutes['vae']:.0f} min, UNet {cfg['unet_steps']:,} in {minutes['unet']:.0f} min{tuned}, decoder "
                    f"fine-tuning {cfg['decoder_steps']:,} in {minutes['decoder']:.0f} min: {int(total // 60)} h "
                    f"{total % 60:.0f} min in all.")
        sources.append(f"`{Path(source).parent / 'training_report.json'}`")
    return " ".join(text) + f" Source: {', '.join(sources)}."


# --------------------------------------------------------------------------------------------
# The study's findings (notebook 06): every contrast of FINDINGS in every published setting
# --------------------------------------------------------------------------------------------
#: the study's findings (notebook 06, "What the study found"): ``(a, b, scope)``, each read as the
#: contrast ``a - b`` in every setting of every published file of :data:`FINDING_SOURCES`. ``scope``
#: says what a finding can speak to: ``"paper"``, a question the paper's claims answer (here in the
#: embedded world, not for SDXL on ImageNet), or ``"miniature"``, a property of the miniature
#: prior (its VAE, its unguided samples)
FINDINGS = (
    ("coda_r", "random_real", "paper"),
    ("kmeans", "coda_r", "paper"),
    ("herding", "coda_r", "paper"),
    ("coda_g", "coda_r", "paper"),
    ("coda_g", "random_real", "paper"),
    ("coda_g", "unguided", "miniature"),
    ("coda_g", "vae_coda_r", "miniature"),
    ("vae_coda_r", "coda_r", "miniature"),
    ("vae_random_real", "random_real", "miniature"),
)
#: run label -> published hard-label results file (``make study``, ``make full``)
FINDING_SOURCES = {"study": "results/study.csv", "full protocol": "results/full_protocol.csv"}


def _finding_values(part: pd.DataFrame, method: str) -> pd.Series | None:
    """A method's accuracies in one setting for a contrast: one value per selection seed (its
    networks averaged), or, for a deterministic method (one set), one per network, indexed so
    that they never pair with another method's seeds (Welch's t instead of a paired t)."""
    rows = part[part["method"] == method]
    if rows.empty:
        return None
    if rows["selection_seed"].nunique() == 1 and len(rows) > 1:
        return pd.Series(rows["acc"].to_numpy(float), index=[f"network {s}" for s in rows["seed"]])
    return rows.groupby("selection_seed")["acc"].mean()


def findings(root: str | Path = ROOT, sources: dict[str, str] | None = None) -> pd.DataFrame:
    """Every contrast of :data:`FINDINGS` in every setting (IPC, epochs, ...) of the published
    hard-label result files (:data:`FINDING_SOURCES`, relative to ``root``; a missing file is
    skipped), with its 95 % t interval (:func:`coda_utils.stats.contrast`: paired by selection seed
    where both methods have the same seeds; herding, one deterministic set, by Welch's t of its
    networks against the other method's seeds).

    Returns:
        One row per (source, setting, finding): ``run``, ``source``, the setting's columns,
        ``contrast``, ``question`` (the study's, or a sentence for herding), ``scope``, ``diff``,
        ``low``, ``high``, ``verdict``, ``test``, ``n`` (e.g. ``"5 pairs"``, ``"5 vs 5"``).
    """
    questions = {c.name: c.question for c in stats.STUDY_CONTRASTS}
    rows = []
    for run, rel in (sources or FINDING_SOURCES).items():
        path = Path(root) / rel
        if not path.is_file():
            continue
        df = evaluation.read_results(path)
        setting = [c for c in stats.SETTING_COLUMNS if c in df.columns]
        for key, part in df.groupby(setting, sort=True):
            key = key if isinstance(key, tuple) else (key,)
            for a, b, scope in FINDINGS:
                va, vb = _finding_values(part, a), _finding_values(part, b)
                if va is None or vb is None:
                    continue
                c = stats.contrast(va, vb, a_name=a, b_name=b)
                name = f"{a} - {b}"
                rows.append({"run": run, "source": rel, **dict(zip(setting, key)), "contrast": name,
                             "question": questions.get(name, f"does {a}'s one deterministic set beat {b}?"),
                             "scope": scope, **{k: c[k] for k in ("diff", "low", "high", "verdict", "test")},
                             "n": f"{c['n_pairs']} pairs" if c["test"] == "paired t" else f"{c['n_a']} vs {c['n_b']}"})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# The findings as sentences (notebook 06): one answer per question, and "What we found"
# --------------------------------------------------------------------------------------------
def answers(found: pd.DataFrame) -> str:
    """One Markdown bullet per question of :func:`findings`: its contrast at every IPC and run,
    with the verdict."""
    lines = []
    for contrast in dict.fromkeys(found["contrast"]):
        rows = found[found["contrast"] == contrast]
        parts = []
        for ipc, part in rows.groupby("ipc", sort=True):
            vals = ", ".join(f"{quote(r)} ({r['run']})" for r in part.to_dict("records"))
            verdicts = list(dict.fromkeys(part["verdict"]))
            parts.append(f"IPC {ipc}: {vals}, " + (verdicts[0] if len(verdicts) == 1 else " / ".join(verdicts)))
        r0 = rows.iloc[0]
        scope = "speaks to the paper" if r0["scope"] == "paper" else "about the miniature"
        lines.append(f"- **{r0['question']}** (`{contrast}`; {scope}) {'; '.join(parts)}.")
    return "\n".join(lines)


def _finding(found: pd.DataFrame, contrast: str, run: str, ipc: int):
    r = found[(found["contrast"] == contrast) & (found["run"] == run) & (found["ipc"] == ipc)]
    return None if r.empty else r.iloc[0]


def _relation(r) -> str:
    """A verdict as a relation of A to B: above, below, not distinguishable from."""
    a, b = r["contrast"].split(" - ")
    return {"not distinguishable": "not distinguishable from", f"{a} higher": "above", f"{b} higher": "below"}.get(
        r["verdict"], r["verdict"])


def _never_below(found: pd.DataFrame, contrast: str) -> str:
    rows = found[found["contrast"] == contrast].to_dict("records")
    below = [r for r in rows if _relation(r) == "below"]
    above = [f"IPC {r['ipc']} ({r['run']})" for r in rows if _relation(r) == "above"]
    return (("never below R" if not below else f"below R in {len(below)} setting(s)")
            + (f", above it at {', '.join(above)}" if above else "") + " and not distinguishable from it elsewhere")


def run_summary(df: pd.DataFrame, summary: pd.DataFrame, contrasts: pd.DataFrame) -> str:
    """One sentence on a run's own results: its methods, seeds and epochs, the highest mean at each
    IPC and how many of its contrasts cover 0 (``summary``: ``evaluation.summarize(df)``,
    ``contrasts``: ``stats.contrasts(df)``)."""
    best = summary.sort_values("acc_mean", ascending=False).groupby("ipc", sort=True).head(1)
    undecided = int((contrasts["verdict"] == "not distinguishable").sum()) if not contrasts.empty else 0
    return (f"This run: {df['method'].nunique()} methods at IPC {', '.join(map(str, sorted(df['ipc'].unique())))}, "
            f"{int(summary['seeds'].max())} selection seeds, {', '.join(map(str, sorted(df['epochs'].unique())))} epochs; "
            "the highest mean " + ", ".join(f"at IPC {r['ipc']} is {r['method']} ({r['acc_mean']:.1f} %)"
                                            for r in best.sort_values("ipc").to_dict("records")) + ", and "
            f"{undecided} of its {len(contrasts)} contrasts cannot tell the two methods apart at this many seeds.")


def study_summary(found: pd.DataFrame) -> str:
    """The study's findings (:func:`findings`) in a few sentences: R against random real, k-means
    and herding against R, G against R, and what the VAE round trip costs."""
    lines = []
    r10s, r10f, r50 = (_finding(found, "coda_r - random_real", run, i)
                       for run, i in (("study", 10), ("full protocol", 10), ("full protocol", 50)))
    if r10s is not None and r10f is not None:
        lines.append(f"The study: at IPC 10 discovery's R is {_relation(r10s)} a random draw of real images "
                     f"({quote(r10s)} points, {r10s['epochs']} epochs; {quote(r10f)} with {r10f['epochs']}, "
                     f"{_relation(r10f)} it)"
                     + (f", and at IPC 50 {_relation(r50)} it ({quote(r50)})." if r50 is not None else "."))
    lines.append(f"k-means is {_never_below(found, 'kmeans - coda_r')}; "
                 f"herding is {_never_below(found, 'herding - coda_r')}.")
    g10s, g10f, g50 = (_finding(found, "coda_g - coda_r", run, i)
                       for run, i in (("study", 10), ("full protocol", 10), ("full protocol", 50)))
    if g10s is not None and g10f is not None and g50 is not None:
        lines.append(f"G against R at IPC 10: {quote(g10s)} with {g10s['epochs']} epochs ({_relation(g10s)} R) and "
                     f"{quote(g10f)} with {g10f['epochs']} ({_relation(g10f)} R); at IPC 50 {quote(g50)}, "
                     f"{_relation(g50)} R.")
    v10, v50 = (_finding(found, "vae_coda_r - coda_r", "full protocol", i) for i in (10, 50))
    if v10 is not None and v50 is not None:
        lines.append(f"The miniature's VAE round trip costs R {quote(v10)} points at IPC 10 ({_relation(v10)} R itself) "
                     f"and {quote(v50)} at IPC 50 ({_relation(v50)}). These answers are the embedded world's; the "
                     "paper's claims live on SDXL and ImageNet (README).")
    return " ".join(lines)


def _offset_words(leak: Mapping) -> str:
    offset = leak.get("noise_offset", 0.0)
    return f" (its training noise with an offset of std {offset:g}, as the prior's fine-tuning drew it)" if offset else ""


def prior_text_probe_reading(d: Mapping, source: str) -> str:
    """Why the prior ignores its background words, from ``benchmarks/prior_text_probe.py --out``:
    how well a noisy training latent's channel means tell the background at the schedule's first
    timesteps, how far the words move the UNet, and whether the sampler's initial noise decides
    a sample's background whatever the prompt."""
    leak, same = d["leak"], d["same_noise"]
    acc = {int(t): a for t, a in leak["accuracy"].items()}
    first = max(acc)
    moves = {(int(r["t"]), r["pair"]): r["moves"] for r in d.get("sensitivity", [])}
    t_hi = max((t for t, _ in moves), default=None)
    lines = ["| timestep t | " + " | ".join(str(t) for t in sorted(acc, reverse=True)) + " |",
             "|---|" + "---:|" * len(acc),
             "| background read off the noisy latent's channel means | "
             + " | ".join(f"{acc[t]:.0%}" for t in sorted(acc, reverse=True)) + " |"]
    text = (f"Read from `{source}`: a logistic regression reads the background (the polarity of "
            f"{leak['n']} web-transformed `pool` images) off the four channel means of the noisy latent the UNet "
            f"trains on{_offset_words(leak)} with {acc[first]:.0%} accuracy at t = {first} (chance {leak['chance']:.0%}; 5-fold "
            "cross-validation), the first timestep of sampling, where the background is decided:")
    out = [text, "", *lines, ""]
    said = []
    if t_hi is not None and (t_hi, "black vs white") in moves and (t_hi, "sneaker vs sandal") in moves:
        said.append(f"at t = {t_hi} the UNet's noise prediction moves {moves[t_hi, 'black vs white']:.3f} when "
                    f"\"black\" becomes \"white\" and {moves[t_hi, 'sneaker vs sandal']:.3f} when the class changes")
    decides = same["same_background"] >= 0.9
    said.append(f"sampled from the same initial noise, \"on a black background\" and \"on a white background\" give "
                f"the same background in {same['same_background']:.0%} of {same['n']} samples (CFG {same['cfg']:g}), "
                f"and the initial noise's channel means predict the background with {same['from_noise_means']:.0%} "
                f"accuracy (chance {same['chance']:.0%})")
    sentence = "; ".join(said)
    weight = {int(t): w for t, w in leak.get("signal", {}).items()}
    why = (f" (at t = {first} the noise the UNet predicts holds the clean latent with weight "
           f"{weight[first]:.3f}: knowing the background changes its target by little)" if first in weight else "")
    out.append(sentence[:1].upper() + sentence[1:] + ". " + (
        "So the sampler's noise, not the prompt, decides the background: the noisy latent tells the background "
        f"wherever training asked for it, and the epsilon objective gave the UNet little to learn from the words{why}."
        if decides else
        "So the prompt, not only the sampler's noise, decides the background."))
    return "\n".join(out)
