"""The shared style of every figure, and the image grids: one method order, one colour and one
marker per method, colour-blind-safe palettes, human axis labels, saved atomically.

Part of :mod:`coda_utils.plots`, which re-exports every name here (notebooks use ``plots.<name>``):

* **one method order** (:data:`METHOD_ORDER`, :func:`method_order`): the real selections, the
  prior's samples and CoDA-G, then the VAE ceilings, in every panel of every figure;
* **one colour and one marker per method** (:func:`method_color`, :func:`method_marker`) from Paul
  Tol's colour-blind-safe "muted" palette, the marker naming the method's family (circle: real
  images, square: generated, diamond: real images through the prior's VAE and back);
* a verdict is a colour *and* a marker, explained by a legend (:func:`verdict_style`,
  :func:`verdict_handles`);
* **human axis labels** (:func:`label`), never a raw column key;
* **image grids with gaps and class labels** that say how many of a class's images they show
  (:func:`image_grid`, :func:`set_comparison_grid`);
* **every figure saved twice** by :func:`save_figure`: a PNG (notebooks, the README) and, beside
  it, a vector PDF with its text in embedded TrueType fonts (papers);
* **one paper style** (``coda_utils/data/paper.mplstyle``, :func:`paper_style`): 8-point text, thin
  lines, the Tol palette as the colour cycle, a colour-blind-safe sequential map
  (:data:`SEQUENTIAL_CMAP`), for figures drawn at a two-column paper's widths
  (:data:`COLUMN_WIDTH`, :data:`FULL_WIDTH`) by :func:`coda_utils.plots.paper_figures`. A figure
  function's hard-coded text sizes follow the style in use (:func:`text_size`), so the notebooks'
  figures (matplotlib's default style) look as before.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .io import atomic_write
from .rundir import EXTRA_REAL_METHODS, SELECTION_GENERATION_METHODS, STUDY_METHODS

__all__ = ["PALETTE", "NEUTRAL", "OKABE_ITO", "METHOD_ORDER", "LABELS", "label", "method_order", "method_color",
           "method_marker", "verdict_style", "verdict_handles", "save_figure", "image_grid", "set_comparison_grid",
           "SEQUENTIAL_CMAP", "PAPER_STYLE", "COLUMN_WIDTH", "FULL_WIDTH", "paper_style", "text_size", "legend_below"]

# --------------------------------------------------------------------------------------------
# The shared style: one method order, one colour per method, colour-blind-safe, human labels
# --------------------------------------------------------------------------------------------
#: Paul Tol's "muted" qualitative palette: nine colours a colour-blind reader tells apart
#: (https://personal.sron.nl/~pault/), plus its pale grey for "nothing to say"
PALETTE = ("#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499")
NEUTRAL = "#BBBBBB"
#: Okabe and Ito's colour-blind-safe palette (without black), for a few categories that are not methods
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")
#: the study's methods in the order every figure draws them (:data:`coda_utils.rundir.STUDY_METHODS`,
#: the order of the study's tables): real selections, the prior's samples and CoDA-G, the VAE ceilings;
#: then guided generation from the other selections and R without the noise fill (beyond the paper)
METHOD_ORDER = STUDY_METHODS + SELECTION_GENERATION_METHODS + EXTRA_REAL_METHODS
_METHOD_COLORS = {"random_real": "#DDCC77", "coda_r": "#332288", "kmeans": "#88CCEE", "herding": "#44AA99",
                  "unguided": "#999933", "text_prompt": "#AA4499", "coda_g": "#CC6677", "vae_coda_r": "#882255",
                  "vae_random_real": "#117733", "coda_g_kmeans": "#E69F00", "coda_g_herding": "#56B4E9",
                  "coda_r_no_noise_fill": "#6699CC"}
#: a method's family by its marker: real images, generated images, real images through the VAE and back
_FAMILY_MARKERS = {"random_real": "o", "coda_r": "o", "kmeans": "o", "herding": "o", "unguided": "s",
                   "text_prompt": "s", "coda_g": "s", "vae_coda_r": "D", "vae_random_real": "D",
                   "coda_g_kmeans": "^", "coda_g_herding": "^", "coda_r_no_noise_fill": "o"}
#: contrast verdicts: colour (Okabe-Ito blue / vermillion, colour-blind safe: never red against
#: green) and marker, so that the verdict reads without colour too
_VERDICTS = {"a": ("#0072B2", "o", True), "b": ("#D55E00", "s", True), "none": ("#777777", "o", False)}
#: the colour map of every heat map: perceptually uniform and colour-blind safe (no red-green
#: diverging map; the values it shows, shares and distances, start at 0)
SEQUENTIAL_CMAP = "viridis"
#: the paper style (:func:`paper_style`) and a two-column paper's widths in inches: one column, the full text
PAPER_STYLE = Path(__file__).resolve().parent / "data" / "paper.mplstyle"
COLUMN_WIDTH = 3.3
FULL_WIDTH = 6.9
#: column keys -> axis labels a reader understands
LABELS = {
    "acc": "test accuracy (%), after the last epoch",
    "acc_best": "best test accuracy during training (%)",
    "val_acc": "accuracy on target_val (%)",
    "psnr_db": "reconstruction PSNR (dB)",
    "loss": "training loss",
    "step": "training step",
    "epoch": "epoch",
    "gamma": "guidance scale gamma",
    "guide_fraction": "share of the denoising steps guided",
    "n_neighbors": "UMAP n_neighbors",
    "min_cluster_size": "HDBSCAN min_cluster_size",
    "ipc": "images per class (IPC)",
    "features": "the space discovery clusters in",
    "variant": "guidance variant",
    "selection_seed": "selection seed",
}


def label(key: str) -> str:
    """The axis label of a column key (:data:`LABELS`; an unknown key with ``_`` as spaces)."""
    return LABELS.get(key, str(key).replace("_", " "))


def method_order(methods) -> list[str]:
    """``methods`` (any iterable, repeats allowed) in the one order of every figure: the study's
    methods as :data:`METHOD_ORDER`, then any other name alphabetically."""
    names = list(dict.fromkeys(str(m) for m in methods))
    return [m for m in METHOD_ORDER if m in names] + sorted(m for m in names if m not in METHOD_ORDER)


def method_color(method: str) -> str:
    """A method's colour, the same in every figure; a method outside the study: a palette colour
    chosen by its name (stable across runs), never one of the study's unless the palette is used up."""
    if method in _METHOD_COLORS:
        return _METHOD_COLORS[method]
    import zlib

    return PALETTE[zlib.crc32(str(method).encode()) % len(PALETTE)]


def method_marker(method: str) -> str:
    """A method's marker: ``o`` real images, ``s`` generated, ``D`` through the VAE and back
    (other names: by their prefix, ``vae_`` a diamond, else a circle)."""
    if method in _FAMILY_MARKERS:
        return _FAMILY_MARKERS[method]
    return "D" if str(method).startswith("vae_") else "o"


def verdict_style(verdict: str, a: str, b: str) -> dict:
    """How a contrast ``a - b`` with this verdict is drawn: ``color``, ``marker``, ``filled`` and
    the legend ``key`` (``"a"``: a higher, ``"b"``: b higher, ``"none"``: not distinguishable or
    too few seeds)."""
    key = "a" if verdict == f"{a} higher" else "b" if verdict == f"{b} higher" else "none"
    color, marker, filled = _VERDICTS[key]
    return {"color": color, "marker": marker, "filled": filled, "key": key}


def verdict_handles() -> list:
    """Legend handles of the three verdicts (:func:`verdict_style`), sized for the style in use
    (:func:`text_size`)."""
    from matplotlib.lines import Line2D

    text = {"a": "A higher (interval above 0)", "b": "B higher (interval below 0)",
            "none": "not distinguishable (interval covers 0)"}
    return [Line2D([], [], color=c, marker=m, ms=text_size(6), lw=text_size(2.2), mfc=c if filled else "white", mec=c,
                   label=text[k])
            for k, (c, m, filled) in _VERDICTS.items()]


def paper_style():
    """The paper style (:data:`PAPER_STYLE`) as a context: ``with paper_style(): fig = ...``.
    Figures drawn inside it have 8-point text (:func:`text_size` scales a figure function's own
    sizes to it), thin lines and the Tol palette; the PDF's fonts are TrueType (``pdf.fonttype`` 42)."""
    import matplotlib.pyplot as plt

    return plt.style.context(str(PAPER_STYLE))


def text_size(points: float) -> float:
    """A text (or mark) size given for matplotlib's default 10-point font, scaled to the style in
    use (the default style: ``points`` itself; the paper style's 8-point font: 0.8 x ``points``)."""
    import matplotlib as mpl

    return points * float(mpl.rcParams["font.size"]) / 10.0


def legend_below(fig, handles: list, ncol: int = 2, title: str | None = None):
    """A legend under the figure's panels (a column-wide figure has no room on the right), in
    at most ``ncol`` columns, fewer when they would be wider than the figure; the panels are laid
    out above it at the height they had (the figure grows by the legend's height)."""
    renderer = fig.canvas.get_renderer()
    for n in range(max(1, ncol), 0, -1):
        leg = fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=n, frameon=False,
                         fontsize=text_size(7.5), title=title, title_fontsize=text_size(8), columnspacing=1.2,
                         handletextpad=0.4)
        if n == 1 or leg.get_window_extent(renderer).width <= fig.bbox.width:
            break
        leg.remove()
    legend_height = leg.get_window_extent(renderer).height / fig.dpi + 0.05  # inches
    w, h = fig.get_size_inches()
    fig.set_size_inches(w, h + legend_height)
    fig.tight_layout(rect=(0, legend_height / (h + legend_height), 1, 1))
    return leg


def save_figure(fig, path: str | Path, dpi: int = 150, pdf: bool = True) -> Path:
    """Save a matplotlib figure as PNG at ``path`` and (``pdf``) as PDF beside it (``path`` with
    the suffix ``.pdf``): vector, its text in embedded TrueType fonts (``pdf.fonttype`` 42, which
    journals ask for: matplotlib's default embeds Type 3 fonts), no creation date (the same figure,
    the same bytes). Each file is written atomically, its directory created. Returns the PNG's path."""
    import matplotlib as mpl

    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    files = [(path, buf.getvalue())]
    if pdf:
        vector = io.BytesIO()
        with mpl.rc_context({"pdf.fonttype": 42}):
            fig.savefig(vector, format="pdf", bbox_inches="tight", metadata={"CreationDate": None})
        files.append((path.with_suffix(".pdf"), vector.getvalue()))
    for target, data in files:
        with atomic_write(target, "wb") as fh:
            fh.write(data)
    return path


def image_grid(images: torch.Tensor | np.ndarray, rows: int, row_labels: Sequence[str] | None = None,
               col_labels: Sequence[str] | None = None, title: str | None = None, cell: float = 0.9,
               gap: int = 2, width: float | None = None):
    """Show ``uint8`` images ``N x C x H x W`` (row-major, ``rows`` rows) as one grid figure.

    Images are tiled into a single array with a thin gray gap (visible on white and black backgrounds), so the figure stays crisp for
    hundreds of small images. Row labels go on the left, column labels on top. ``width``: the
    figure's width in inches (a paper's, :data:`FULL_WIDTH`): the cell size follows from it and
    the column labels are slanted so that neighbours do not overlap.
    """
    import matplotlib.pyplot as plt

    x = torch.as_tensor(np.asarray(images))
    if x.ndim == 3:
        x = x[:, None]
    n, c, h, w = x.shape
    cols = int(np.ceil(n / rows))
    if width is not None:
        cell = (width - (1.0 if row_labels else 0)) / cols
    canvas = torch.full((c, rows * (h + gap) - gap, cols * (w + gap) - gap), 128, dtype=torch.uint8)  # mid-gray gaps
    for i in range(n):
        r, k = divmod(i, cols)
        canvas[:, r * (h + gap):r * (h + gap) + h, k * (w + gap):k * (w + gap) + w] = x[i]
    if width is None:
        figsize = (max(2.0, cols * cell) + (1.4 if row_labels else 0), max(1.0, rows * cell) + 0.4)
    else:
        figsize = (width, rows * cell + (0.5 if col_labels else 0.1) + (0.2 if title else 0))
    fig, ax = plt.subplots(figsize=figsize)
    arr = canvas.permute(1, 2, 0).numpy()
    ax.imshow(arr[..., 0] if c == 1 else arr, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([k * (w + gap) + w / 2 for k in range(cols)] if col_labels else [])
    if col_labels:
        ax.set_xticklabels(col_labels, fontsize=text_size(8))
        ax.xaxis.tick_top()
        if width is not None:
            for t in ax.get_xticklabels():
                t.set(rotation=30, horizontalalignment="left", rotation_mode="anchor")
    ax.set_yticks([r * (h + gap) + h / 2 for r in range(rows)] if row_labels else [])
    if row_labels:
        ax.set_yticklabels(row_labels, fontsize=text_size(9))
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    if title:
        ax.set_title(title, fontsize=text_size(11), pad=14 if col_labels and width is None else 6)
    fig.tight_layout()
    return fig


def set_comparison_grid(columns: dict[str, torch.Tensor], num_classes: int, ipc: int, row_labels: Sequence[str],
                        shown: int = 5, title: str | None = None, width: float | None = None):
    """Several distilled sets side by side: one row per class (labelled), the first ``shown``
    images of each set (``columns[name]``: ``uint8`` images in class order, ``ipc`` per class),
    a blank column between two sets, each set's name over its group. The title says how many of
    a class's ``ipc`` images are shown. ``width``: the figure's width in inches (:func:`image_grid`)."""
    shown = min(shown, ipc)
    if set(columns) <= set(METHOD_ORDER):  # the study's methods: in the one order of every figure
        columns = {k: columns[k] for k in method_order(columns)}
    channels = max(int(x.shape[1]) for x in columns.values())  # a grayscale set next to RGB ones is shown as RGB
    columns = {k: x.expand(-1, channels, -1, -1) if x.shape[1] != channels else x for k, x in columns.items()}
    first = next(iter(columns.values()))
    blank = torch.full_like(first[:1], 255)[0]  # white: the gap between two sets
    names = list(columns)
    grid = torch.cat([torch.stack([t for i, k in enumerate(names)
                                   for t in ([blank] if i else []) + [columns[k][c * ipc + j] for j in range(shown)]])
                      for c in range(num_classes)])
    cols = [c for i, k in enumerate(names) for c in ([""] if i else []) + [k if j == shown // 2 else "" for j in range(shown)]]
    note = f"first {shown} of {ipc} images per class" if shown < ipc else f"all {ipc} images per class"
    return image_grid(grid, rows=num_classes, row_labels=row_labels, col_labels=cols,
                      title=f"{title} ({note})" if title else note, width=width)


def _palette(k: int) -> list:
    """Distinct cluster colours without grey (grey marks points in no cluster): the colour-blind
    safe :data:`PALETTE` for up to nine clusters; beyond that colours repeat in any palette a
    colour-blind reader can tell apart, so more clusters add matplotlib's tab20 (without its greys)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    base = [to_rgba(c) for c in PALETTE]
    if k <= len(PALETTE):
        return base
    return base + [plt.get_cmap("tab20")(i) for i in range(20) if i not in (14, 15)]
