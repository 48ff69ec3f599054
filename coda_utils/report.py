"""The README's results tables and the sentences that read them, generated from the published
result files in ``results/`` (and the shipped prior's ``quality.json``).

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

A sentence that quotes a result is a block too: ``full-protocol-findings``,
``vae-round-trip-reading`` and ``prior-quality`` render the README's reading of a table
(:func:`full_protocol_findings`, :func:`round_trip_reading`, :func:`prior_quality`), so a fresh
``make full`` rewrites the sentences with the tables. A contrast quoted by hand outside a block
(``+0.5 [-0.1, +1.1]``) must be one of its section's result files (:func:`stale_quotes`).

``python -m coda_utils.report readme README.md`` rewrites every block; ``--check`` only
compares and exits 1 when a block and its result file disagree or a quoted contrast has no
source (``tests/test_report.py``; ``tests/test_prose_numbers.py`` fails on a number typed in the
README's prose that no block holds).
``python -m coda_utils.report collect RUN_DIR --labels hard|soft --out results/NAME.csv`` is how
a run's rows get there (:func:`collect`): hard- and soft-label rows are published apart.
``python -m coda_utils.report ablations OUT_DIR --out results/NAME.csv`` publishes a notebook-05
folder's points (``results/ablations_ipc50.csv`` from ``runs/ablations-ipc50``).
``python -m coda_utils.report likeness RUN_DIR --ipc 10`` says how closely each generated (or
round-tripped) set copies the representatives it was made from (:func:`likeness`).
``python -m coda_utils.report latex --out results/tables`` writes the paper's tables in LaTeX
(:func:`~coda_utils.report_tables.write_latex_tables`; ``--check`` compares), ``python -m
coda_utils.report paper --out figures/paper [--run-dir runs/study]`` redraws the results figures
for a paper (:func:`coda_utils.plots.paper_figures`); ``make paper`` runs both.

The tables are :mod:`coda_utils.report_tables`, the sentences and the study's findings
:mod:`coda_utils.report_findings`; this module re-exports every name of both (``report.<name>``),
and holds the generated blocks (:data:`BLOCKS`, :func:`render_block`, :func:`update_readme`), the
check of quoted contrasts (:func:`stale_quotes`), :func:`collect`, :func:`likeness` and the CLI.
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
# the tables, the sentences and the findings, re-exported: report.<name> as before the split (the
# underscored names too)
from .report_findings import (_and, _at, _by_ipc, _finding_values, _verdicts, CEILING_GOAL, FINDING_SOURCES, FINDINGS,
                              answers, findings, full_protocol_findings, prior_quality, quote, round_trip_reading,
                              no_noise_fill_reading, prior_text_probe_reading, run_summary, selection_generation_reading, study_summary)
from .report_costs import cost_table
from .report_tables import (_SETTING_LABELS, _caption, _join, _network_spread, _order, _varying, FULL_PROTOCOL_RESULTS,
                            NO_NOISE_FILL_RESULTS, PRIOR_V1_RESULTS, PRIOR_V2_RESULTS, ROOT, SELECTION_GENERATION_RESULTS, STUDY_RESULTS, ablation_tables, attribute_table, full_protocol_table, set_background_table,
                            no_noise_fill_table, numerics_table, precision_table, round_trip_table, selection_generation_table,
                            soft_label_table, study_table, teachers_file, throughput_table)

__all__ = ["BLOCKS", "render_block", "update_readme", "main", "collect", "study_table", "full_protocol_table",
           "soft_label_table", "ablation_tables", "precision_table", "throughput_table", "round_trip_table",
           "likeness", "full_protocol_findings", "round_trip_reading", "prior_quality", "quote", "stale_quotes"]

RESULTS = ROOT / "results"
_BEGIN = "<!-- generated: {name} (python -m coda_utils.report readme README.md) -->"
_END = "<!-- end generated: {name} -->"
_BLOCK = re.compile(r"<!-- generated: (?P<name>[\w-]+) \(python -m coda_utils\.report readme README\.md\) -->\n"
                    r"(?P<body>.*?)<!-- end generated: (?P=name) -->", re.S)


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


#: block name -> (result file under the repository root, renderer)
BLOCKS: dict[str, tuple[str, Callable[[pd.DataFrame, str], str]]] = {
    "study": (STUDY_RESULTS, study_table),
    "full-protocol": (FULL_PROTOCOL_RESULTS, full_protocol_table),
    "soft-labels": ("results/soft_labels.csv", soft_label_table),
    "ablations": ("results/ablations.csv", ablation_tables),
    # why discovery falls below random real at IPC 50 (notebooks/params/ipc50.yaml, issue 27)
    "ablations-ipc50": ("results/ablations_ipc50.csv", ablation_tables),
    # does guided generation add anything to the selection it follows (make selection-generation, issue 27)
    "selection-generation": (SELECTION_GENERATION_RESULTS, selection_generation_table),
    "selection-generation-reading": (SELECTION_GENERATION_RESULTS, selection_generation_reading),
    # R without the fill from HDBSCAN's noise on test (make no-noise-fill, issue 27)
    "no-noise-fill": (NO_NOISE_FILL_RESULTS, no_noise_fill_table),
    "no-noise-fill-reading": (NO_NOISE_FILL_RESULTS, no_noise_fill_reading),
    "vae-round-trip": ("results/vae_round_trip.csv", round_trip_table),
    "precision": ("results/bench_evaluation_accuracy.csv", precision_table),
    "precision-fast": ("results/bench_evaluation_accuracy_fast.csv", precision_table),
    "throughput": ("results/bench_evaluation_throughput.csv", throughput_table),
    "numerics": ("results/bench_numerics.csv", numerics_table),
    # does the prior follow its prompt's background words (benchmarks/prior_attributes.py; the text-prompt baseline)
    "attribute-fidelity": ("results/attribute_fidelity.csv", attribute_table),
    # what the study's text-prompt sets drew (benchmarks/set_backgrounds.py --out results/set_backgrounds.csv)
    "set-backgrounds": ("results/set_backgrounds.csv", set_background_table),
    # why the prior ignored them (benchmarks/prior_text_probe.py --out results/prior_text_probe.json)
    "prior-text-probe": ("results/prior_text_probe.json", prior_text_probe_reading),
    # what each stage and method costs (benchmarks/bench_costs.py --out results)
    "costs": ("results/costs.csv", cost_table),
    # the sentences that quote a result, rendered from its file like the tables
    "full-protocol-findings": ("results/full_protocol.csv", full_protocol_findings),
    "vae-round-trip-reading": ("results/vae_round_trip.csv", round_trip_reading),
    "prior-quality": ("data/models/fashion-prior/quality.json", prior_quality),
    # the first embedded prior's (4x8x8 latents) published results, kept for comparison with the second's
    "full-protocol-prior-v1": (f"{PRIOR_V1_RESULTS}/full_protocol.csv", full_protocol_table),
    "soft-labels-prior-v1": (f"{PRIOR_V1_RESULTS}/soft_labels.csv", soft_label_table),
    "ablations-prior-v1": (f"{PRIOR_V1_RESULTS}/ablations.csv", ablation_tables),
    # the second prior's (before its offset-noise fine-tuning) background words, and why it ignored them
    "attribute-fidelity-prior-v2": (f"{PRIOR_V2_RESULTS}/attribute_fidelity.csv", attribute_table),
    "prior-text-probe-prior-v2": (f"{PRIOR_V2_RESULTS}/prior_text_probe.json", prior_text_probe_reading),
    # the second prior's model-card measurements (its quality.json and training_report.json, copied)
    "prior-quality-prior-v2": (f"{PRIOR_V2_RESULTS}/quality.json", prior_quality),
}


def _read(path: Path) -> pd.DataFrame | dict:
    if path.suffix == ".json":
        from .io import read_json

        return read_json(path)
    if path.name.startswith(("bench_", "ablations", "vae_round_trip", "costs", "attribute_fidelity", "set_backgrounds")):
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
    import inspect

    # a renderer that also reads files beside its own (the teachers, the dc rows, ...) takes the root
    extra = {"root": Path(root)} if "root" in inspect.signature(render).parameters else {}
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


#: a contrast as a sentence quotes it: a signed difference and its interval, "+0.6 [+0.1, +1.2]" or "+0.5, [-0.1, +1.1]"
QUOTED_CONTRAST = re.compile(r"(?<![\w.])([+\-−]\d+(?:\.\d+)?),?\s+\[([+\-−]\d+(?:\.\d+)?),\s*([+\-−]\d+(?:\.\d+)?)\]")
_TABLE_CONTRAST = re.compile(r"\|\s*([+\-−]\d+(?:\.\d+)?)\s*\|\s*\[([+\-−]\d+(?:\.\d+)?),\s*([+\-−]\d+(?:\.\d+)?)\]")


def _contrast_triples(text: str) -> set[tuple[str, str, str]]:
    """Every contrast a rendered text states, in its table rows and its sentences."""
    norm = lambda t: tuple(x.replace("−", "-") for x in t)  # noqa: E731
    return {norm(m.groups()) for pattern in (QUOTED_CONTRAST, _TABLE_CONTRAST) for m in pattern.finditer(text)}


def stale_quotes(readme: str | Path, root: str | Path = ROOT) -> list[str]:
    """The contrasts a README sentence quotes outside the generated blocks that are not among the
    contrasts of its section's source files (the result files of the generated blocks under the
    same ``##`` / ``###`` heading, as this module renders them). A section that quotes a contrast
    and has no generated block is a problem too: the quote has no source."""
    text = re.sub(r"(?ms)^```.*?^```[^\n]*$", " ", Path(readme).read_text())  # code is no sentence
    problems = []
    for section in re.split(r"(?m)^(?=#{2,3} )", text):
        title = section.split("\n", 1)[0].strip()
        names = [m.group("name") for m in _BLOCK.finditer(section)]
        prose = _BLOCK.sub(" ", section)
        quoted = {tuple(x.replace("−", "-") for x in m.groups()): m.group(0) for m in QUOTED_CONTRAST.finditer(prose)}
        if not quoted:
            continue
        known = set()
        for name in names:
            try:
                known |= _contrast_triples(render_block(name, root))
            except (FileNotFoundError, ValueError):
                continue
        for triple, written in quoted.items():
            if triple not in known:
                where = (f"the result files of its blocks ({', '.join(BLOCKS[n][0] for n in names if n in BLOCKS)})"
                         if names else "no generated block in this section")
                problems.append(f"{title}: {' '.join(written.split())!r} is not a contrast of {where}")
    return problems


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
    a = sub.add_parser("ablations", help="publish an ablation folder's points (notebook 05) into one results file")
    a.add_argument("out_dir", type=Path, help="notebook 05's out_dir, e.g. runs/ablations-ipc50")
    a.add_argument("--out", type=Path, required=True, help="the results file, e.g. results/ablations_ipc50.csv")
    t = sub.add_parser("latex", help="write (or --check) the paper's LaTeX tables from results/*.csv (booktabs)")
    t.add_argument("--out", type=Path, default=Path("results/tables"), help="their folder (default results/tables)")
    t.add_argument("--check", action="store_true", help="only compare; exit 1 if a table differs from its results")
    f = sub.add_parser("paper", help="redraw the results figures for a paper (PDF + PNG) from results/*.csv")
    f.add_argument("--out", type=Path, default=Path("figures/paper"), help="their folder (default figures/paper)")
    f.add_argument("--run-dir", type=Path, default=None, help="a run folder for the figures of its sets (runs/study)")
    f.add_argument("--ipc", type=int, default=10, help="the IPC of the run folder's figures")
    args = parser.parse_args(argv)
    if args.command == "latex":
        from .report_tables import check_latex_tables, latex_tables, write_latex_tables

        if args.check:
            stale = check_latex_tables(args.out)
            print(f"{args.out}: {len(stale)} of {len(latex_tables())} table(s) differ from their result files"
                  + (f": {', '.join(stale)}" if stale else ""))
            return 1 if stale else 0
        written = write_latex_tables(args.out)
        print(f"{args.out}: wrote {len(written)} table(s): {', '.join(p.stem for p in written)}")
        return 0
    if args.command == "paper":
        from .plots import paper_figures

        written = paper_figures(ROOT / args.out, ROOT / "results", args.run_dir, ipc=args.ipc)
        print(f"{args.out}: {len(written)} figure(s), each a PDF and a PNG")
        return 0
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
    if args.command == "ablations":
        from .ablations import collect as collect_points
        from .io import atomic_write

        points = collect_points(args.out_dir)
        if points.empty:
            print(f"{args.out_dir}: no finished ablation point (point.json + results.csv); run notebook 05 first")
            return 1
        with atomic_write(args.out, "w") as fh:
            points.to_csv(fh, index=False)
        print(f"{args.out}: {len(points)} rows (point x selection seed) from {args.out_dir}")
        return 0
    changed = update_readme(args.readme, check=args.check)
    verb = "differ from their result files" if args.check else "rewritten"
    print(f"{args.readme}: {len(changed)} block(s) {verb}" + (f": {', '.join(changed)}" if changed else ""))
    stale = stale_quotes(args.readme)
    for problem in stale:
        print(f"{args.readme}: a sentence quotes a contrast its source does not hold: {problem}")
    return 1 if (args.check and (changed or stale)) else 0


if __name__ == "__main__":
    sys.exit(main())
