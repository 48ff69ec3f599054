"""Paper-ready output: every figure also a vector PDF with embedded TrueType fonts, the paper
style, ``make paper``'s figures from the result files alone, and the LaTeX tables (booktabs),
each built by the same function as its README table and committed in step with its result file."""
import re
import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from coda_utils import evaluation, plots, plots_style, report_tables, stats

ROOT = Path(__file__).resolve().parent.parent


def _streams(pdf: bytes) -> list[bytes]:
    """Every stream of a PDF, inflated where it is Flate-compressed."""
    out = []
    for m in re.finditer(rb"<<(.*?)>>\s*stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        data = m.group(2)
        if b"/FlateDecode" in m.group(1):
            data = zlib.decompress(data)
        out.append(data)
    return out


def test_save_figure_writes_a_vector_pdf_with_truetype_fonts_beside_the_png(tmp_path):
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1, 2], [1, 0, 1], marker="o")
    ax.set_xlabel("accuracy ± std (%)")
    png = plots.save_figure(fig, tmp_path / "figs" / "small.png")  # the signature of every caller
    plt.close(fig)
    pdf = tmp_path / "figs" / "small.pdf"
    assert png == tmp_path / "figs" / "small.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    streams = _streams(data)
    page = b"\n".join(s for s in streams if b" Tf" in s or re.search(rb"\s[ml]\s", s))
    # vector: the line and the axes are path operators (moveto, lineto, stroke), not an image
    assert re.search(rb"\sm\s", page) and re.search(rb"\sl\s", page) and re.search(rb"\sS\s", page)
    assert b"/Subtype /Image" not in data
    # the text in an embedded TrueType font (pdf.fonttype 42), never a Type 3 font
    assert b"/FontFile2" in data and (b"/CIDFontType2" in data or b"/Subtype /TrueType" in data)
    assert b"/Type3" not in data
    assert b"/CreationDate" not in data  # the same figure gives the same bytes
    fig, ax = plt.subplots(figsize=(1, 1))
    assert plots.save_figure(fig, tmp_path / "only.png", 100, pdf=False).is_file()
    plt.close(fig)
    assert not (tmp_path / "only.pdf").exists()


def test_no_figure_is_saved_around_save_figure():
    """Every figure the package writes goes through save_figure (the PNG and its PDF)."""
    hits = [f"{p.name}:{i}" for p in (ROOT / "coda_utils").glob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if ".savefig(" in line]
    assert all(h.startswith("plots_style.py:") for h in hits), hits


def test_the_paper_style_is_package_data_and_applies():
    assert plots_style.PAPER_STYLE.is_file()
    assert "data/*.mplstyle" in (ROOT / "pyproject.toml").read_text()
    default = matplotlib.rcParams["font.size"]
    with plots.paper_style():
        assert matplotlib.rcParams["font.size"] == 8 and matplotlib.rcParams["pdf.fonttype"] == 42
        assert plots_style.text_size(10) == pytest.approx(8)
    assert matplotlib.rcParams["font.size"] == default and plots_style.text_size(10) == pytest.approx(default)


def _rows(ipcs=(10,), methods=("random_real", "coda_r", "coda_g", "herding"), seeds=3):
    rng = np.random.default_rng(0)
    rows = [{"method": m, "ipc": ipc, "arch": "convnet3", "protocol": "dc", "selection_seed": s, "seed": 1000 * s,
             "acc": 70 + i + rng.normal(0, 0.5), "acc_best": 71.0, "train_seconds": 1.0, "epochs": 100, "precision": "fp32", "teacher": "none"}
            for ipc in ipcs for i, m in enumerate(methods) for s in range(seeds)]
    return pd.DataFrame(rows)


def test_notebook_figures_keep_their_size():
    """Without ``width`` a figure has the notebooks' size (nbval compares "<Figure size WxH>")."""
    df = _rows()
    fig = plots.plot_seeds(df)
    assert tuple(fig.get_size_inches()) == pytest.approx((3.0 + 3.8, 0.9 + 0.46 * 4))
    plt.close(fig)
    table = stats.contrasts(df)
    fig = plots.plot_contrasts(table)
    assert tuple(fig.get_size_inches()) == pytest.approx((6.0 + 3.0, 1.2 + 0.5 * len(table)))
    plt.close(fig)


def test_paper_figures_from_the_result_files_alone(tmp_path):
    """A fresh clone has results/ and no run folder: the results figures are drawn at a
    paper's widths, the run folder's are skipped with a line saying why."""
    results = tmp_path / "results"
    results.mkdir()
    _rows().to_csv(results / "study.csv", index=False)
    said = []
    written = plots.paper_figures(tmp_path / "paper", results, run_dir=tmp_path / "runs" / "study", log=said.append)
    assert sorted(p.name for p in written) == ["contrasts_study.png", "results_study.png"]
    assert all(p.with_suffix(".pdf").is_file() for p in written)
    assert any(line.startswith("skipped sets_ipc10") and "no run folder" in line for line in said)
    assert any("full_protocol.csv does not exist" in line for line in said)
    from PIL import Image

    width = Image.open(tmp_path / "paper" / "results_study.png").size[0] / 300  # inches at the paper's 300 dpi
    assert width <= plots.COLUMN_WIDTH + 0.05
    assert re.search(rb"/MediaBox \[ 0 0 ([\d.]+)", (tmp_path / "paper" / "results_study.pdf").read_bytes())


def test_verdicts_and_heat_maps_are_colour_blind_safe():
    from matplotlib.colors import rgb_to_hsv, to_rgb

    colors = {plots.verdict_style(v, "a", "b")["color"] for v in ("a higher", "b higher", "not distinguishable")}
    assert len(colors) == 3
    greens = [c for c in colors if 75 <= rgb_to_hsv(to_rgb(c))[0] * 360 <= 165 and rgb_to_hsv(to_rgb(c))[1] > 0.2]
    assert not greens  # blue against vermillion, never red against green
    fig = plots.plot_overlap({"coda_r": np.eye(3)}, [0, 1, 2])
    assert fig.axes[0].collections[0].get_cmap().name == plots.SEQUENTIAL_CMAP == "viridis"
    plt.close(fig)


def test_markdown_and_latex_come_from_one_builder():
    """The README's Markdown of a table is the cells' Markdown, the same text as the notebooks'
    formatters (results.format_table, stats.format_contrasts): one summary, two renderers."""
    df = _rows(ipcs=(1, 10))
    summary = evaluation.summarize(df)
    cells = report_tables.summary_cells(summary, ["ipc"])
    assert report_tables.to_markdown(cells) == evaluation.format_table(summary, ["ipc"])
    table = stats.contrasts(df)
    assert report_tables.to_markdown(report_tables.contrast_cells(table)) == stats.format_contrasts(table, settings=False)
    tex = report_tables.to_latex(report_tables.contrast_cells(table), "caption ± 95 %")
    assert r"\texttt{coda\_r - random\_real}" in tex and r"95 \% interval" in tex and "±" not in tex
    assert tex.startswith("% caption +/- 95 %") and all(r in tex for r in (r"\toprule", r"\midrule", r"\bottomrule"))


def test_latex_cells_escape_the_special_characters():
    cell = report_tables._latex_cell
    assert cell("vae_coda_r") == r"vae\_coda\_r"
    assert cell("76.0 ± 1.0") == r"76.0 $\pm$ 1.0"
    assert cell("-2.3 [-4.4, +0.3]") == r"$-$2.3 [$-$4.4, +0.3]"
    assert cell("-") == "--" and cell("5 %, a&b #1 {x} ~ ^") == r"5 \%, a\&b \#1 \{x\} \textasciitilde{} \textasciicircum{}"
    assert cell("`coda_g - coda_r`") == r"\texttt{coda\_g - coda\_r}"


def test_committed_latex_tables_match_their_result_files():
    """results/tables/*.tex equal what their result files render now (`make readme`, `make
    paper`), each a booktabs tabular in ASCII; no table without a source."""
    folder = ROOT / report_tables.LATEX_DIR
    names = set(report_tables.latex_tables(ROOT))
    assert names >= {"study", "study_contrasts", "full_protocol", "full_protocol_contrasts", "vae_round_trip"}
    assert report_tables.check_latex_tables(report_tables.LATEX_DIR, ROOT) == []
    assert {p.stem for p in folder.glob("*.tex")} == names
    for path in folder.glob("*.tex"):
        text = path.read_text()
        assert text.isascii(), path.name
        assert all(r in text for r in (r"\begin{tabular}", r"\toprule", r"\midrule", r"\bottomrule")), path.name
        assert "_" not in re.sub(r"\\_", "", "\n".join(line for line in text.splitlines() if not line.startswith("%")))
