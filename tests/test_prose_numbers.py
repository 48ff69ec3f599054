"""No typed number can drift: a number the prose states is one the code printed (issue 25).

**The rule.** Every *quoted number* in a stored notebook's markdown cells must appear among that
notebook's outputs (the text of its streams, results and displays, including the markdown a
code cell renders with ``IPython.display.Markdown``); a number a code cell prints cannot drift
from the code, a number typed into a markdown cell can, and did (00's "29.8 dB" beside its
output's 28.36 dB, 05's "about two minutes" beside "2 points in 3.6 min", 03's "by step 9",
02's "172 images"). In the README, whose results are rendered from ``results/`` into generated
blocks (``python -m coda_utils.report readme README.md``), a quoted number in the prose outside
those blocks must appear in one of its generated blocks.

**A quoted number** is, in the prose (what a reader reads as text):

* a *decimal number*: a number with a decimal point (``29.8``, ``-0.4``), a number with a
  percent sign (``0.8 %``, ``43%``), or an integer of two or more digits (``172``, ``1,300``);
  it is found when an output holds a number of the same value (the sign, thousands separators and
  trailing zeros aside: ``-0.40`` finds ``0.4``; no rounding: ``29.77`` does not find ``29.8``);
* a *typed quantity*, of any size and also written as a word: a duration (``2 h``, ``10 min``,
  ``about two minutes``, ``a minute``, ``35 s``, ``6-minute``) or a step or epoch of a run, after a
  preposition (``by step 9``, ``at epoch 30``; "step 2 moves x0" names a line of a recipe); it is
  found when an output holds the same value with the same unit (``2 min`` finds ``two minutes``,
  ``step 9`` finds ``by step 9``; ``3.6 min`` does not find ``two minutes``).

**Not quoted numbers** (what is code, a name or a reference, not a measurement):

* anything in code: inline code spans (write a constant of the method or the data as code:
  ```min_samples=3```, ```train[50000:60000]```, ```gamma = 0.05```), fenced and indented code
  blocks, math (``$...$``), link targets and bare URLs, HTML tags;
* notebook numbers (two digits with a leading zero: ``00`` ... ``09``, "notebook 02"), a
  heading's or a numbered list's leading number, section and cell references (``§2``,
  "section 3", "cell 29");
* dimensions and shapes (``32x32``, ``4x16x16``, ``50-d``, ``2-D``) and numbers that are part of a
  name (``ResNet-18``, ``ImageNet-1K``, ``SD 1.5``, ``Python 3.11, 3.12 or 3.13``, ``DPM-Solver++ 2M``,
  ``x86-64``, ``AVX-512``, ``c13``, an arXiv id);
* years (1990-2039) and the confidence level of an interval ("95 % interval").

Single-digit numbers outside typed quantities ("3 seeds", "IPC 1") are not checked: any output
holds a 3 somewhere, so "found" would mean nothing; the typed quantities are the phrases where a
single digit was wrong. The stored notebooks are regenerated after they are rewritten, so this
test reads them as they are stored; it is parametrized per notebook so that its result reads
per notebook, and each failure names the cell (index and id) and the numbers not found.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# --------------------------------------------------------------------------------------------
# What a reader reads as prose
# --------------------------------------------------------------------------------------------
_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
_MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$|\\\(.*?\\\)|\\\[.*?\\\]", re.S)
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_URL = re.compile(r"<?https?://\S+>?")
_TAG = re.compile(r"<!--.*?-->|<[^>\n]+>", re.S)
_HEADING_NUMBER = re.compile(r"^(#+\s*)\d+(?:\.\d+)*[.)·:]?", re.M)
_LIST_NUMBER = re.compile(r"^(\s*)\d+[.)](?=\s)", re.M)
_INLINE_LIST_NUMBER = re.compile(r"(?<=[;:]\s)\d+\.(?=\s)|^\d+\.(?=\s)", re.M)


def _drop_indented_code(text: str) -> str:
    """Indented code blocks: lines indented by 4+ spaces after a blank line (not list continuations)."""
    out, in_code, prev_blank = [], False, True
    for line in text.split("\n"):
        indented = line.startswith("    ") or line.startswith("\t")
        if indented and (prev_blank or in_code) and not re.match(r"\s*([-*+]|\d+[.)])\s", line):
            in_code = True
            out.append("")
        else:
            in_code = in_code and not line.strip() == "" and indented
            out.append(line)
        prev_blank = not line.strip()
    return "\n".join(out)


def prose(markdown: str) -> str:
    """The text a reader reads as prose: code, math, link targets, tags and leading heading and
    list numbers removed (each replaced by a space, so that no two numbers join)."""
    text = _FENCE.sub(" ", markdown)
    text = _drop_indented_code(text)
    text = _INLINE_CODE.sub(" ", text)
    text = _MATH.sub(" ", text)
    text = _IMAGE.sub(" ", text)
    text = _LINK.sub(r"\1", text)
    text = _TAG.sub(" ", text)
    text = _URL.sub(" ", text)
    text = _HEADING_NUMBER.sub(r"\1", text)
    text = _LIST_NUMBER.sub(r"\1", text)
    text = _INLINE_LIST_NUMBER.sub(" ", text)
    return html.unescape(text)


# --------------------------------------------------------------------------------------------
# Numbers that are names, references or conventions
# --------------------------------------------------------------------------------------------
_NOT_QUANTITIES = [
    re.compile(r"§\s*\d+(?:\.\d+)*"),
    re.compile(r"\b(?:sections?|cells?|issues?|notebooks?|stages?|chapters?|table|figure|fig\.)\s+\d+(?:\.\d+)*(?:\s*(?:,|and|-|->)\s*\d+)*",
               re.I),
    re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:\s*[x×]\s*\d+(?:\.\d+)?)+(?![\w.])"),  # 32x32, 4x16x16, 28 x 28
    re.compile(r"\b\d+-[dD]\b"),  # 50-d, 2-D
    re.compile(r"\b(?:SD|SDXL|Stable Diffusion|C?Python|CUDA|cu|macOS|Ubuntu|Debian|torch|PyTorch|numpy|version|v)\s*"
               r"\d+(?:\.\d+)*\+?(?:(?:,\s*|\s+or\s+|\s+and\s+)\d+\.\d+(?:\.\d+)*)*", re.I),  # "CPython 3.11, 3.12 or 3.13"
    re.compile(r"\barXiv[:\s]+\d{4}\.\d{4,5}", re.I),
    re.compile(r"(?<![\d,.])(?:199\d|20[0-3]\d)(?:\s*[-–]\s*(?:199\d|20[0-3]\d))?(?![\d%]|[.,]\d)"),  # years
    re.compile(r"(?<![\w-])[A-Za-z][\w+]*(?:-[A-Za-z][\w+]*)*-\d[\w+]*(?:-[\w+]+)*"),  # x86-64, ResNet-AP-10, AVX-512
    re.compile(r"\b95\s?%(?=\s+(?:\w+\s+){0,3}interval)"),  # the confidence level of an interval
]

_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
          "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40,
          "fifty": 50, "sixty": 60, "ninety": 90, "half an": 0.5, "half a": 0.5}
_UNITS = {"h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h", "min": "min", "mins": "min", "minute": "min",
          "minutes": "min", "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s", "ms": "ms",
          "millisecond": "ms", "milliseconds": "ms"}
_NUM = r"[-+−]?\d{1,3}(?:,\d{3})+(?:\.\d+)?|[-+−]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_WORD_NUM = r"half an?|" + "|".join(sorted((w for w in _WORDS if not w.startswith("half")), key=len, reverse=True))
#: a number then its unit ("35 s", "35s", "6-minute"), a number word then a space or hyphen ("two minutes", not "ones")
_DURATION = re.compile(rf"(?<![\w.])(?P<n>{_NUM}|(?i:{_WORD_NUM})(?=[\s-]))[\s-]*(?P<u>(?i:hours?|hrs?|h|minutes?|mins?|"
                       rf"min|milliseconds?|ms|seconds?|secs?|sec|s))\b")
_STEP_ANY = rf"\b(?P<u>(?i:steps?|epochs?))\s+(?P<n>\d+(?:\.\d+)?|(?i:{_WORD_NUM}))\b(?![.,]\d)"
#: in prose, a step or epoch *of the run* ("by step 9", "at epoch 30"), not a step of a recipe ("step 2 moves")
_STEP = re.compile(r"(?i:\b(?:by|at|from|until|till|after|before|to|in|on|around|near)\s+(?:the\s+)?"
                   r"(?:denoising\s+|sampling\s+|training\s+)?)" + _STEP_ANY)
_NUMBER = re.compile(rf"(?P<n>{_NUM})(?P<pct>\s?%)?")


def _value(token: str) -> float:
    token = token.replace("−", "-").replace(",", "").lstrip("+")
    if token.lower() in _WORDS:
        return float(_WORDS[token.lower()])
    if token.lower().startswith("half"):
        return 0.5
    return abs(float(token))


def _is_part_of_a_word(text: str, start: int, end: int) -> bool:
    """A number glued to a name: ``ResNet-18``, ``x86``, ``SRe2L``, ``2M``, ``c13``, ``0.2s`` excepted."""
    before = text[max(0, start - 2):start]
    after = text[end:end + 1]
    if before[-1:].isalpha() or before[-1:] in ("_", "/", "\\", "#", "."):
        return True
    if before[-1:] == "-" and before[:1].isalpha():
        return True
    return bool(after) and (after.isalpha() and after not in "x×") or after == "_"


def _masked(text: str) -> str:
    for pattern in _NOT_QUANTITIES:
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    return text


def quoted_numbers(markdown: str) -> list[tuple[str, str, float, str | None]]:
    """The quoted numbers of a markdown text: ``(kind, as written, value, unit)``; ``kind`` is
    ``"decimal"`` or ``"quantity"`` (a duration or a step / epoch, with its unit)."""
    text = _masked(prose(markdown))
    found, taken = [], []
    for pattern in (_DURATION, _STEP):
        for m in pattern.finditer(text):
            n = m.group("n")
            if n[0].isdigit() and _is_part_of_a_word(text, m.start("n"), m.start("n")):
                continue
            u = m.group("u").lower()
            unit = _UNITS.get(u, u.rstrip("s"))
            if pattern is _DURATION and u in ("s", "second", "seconds") and n.lower() in ("a", "an"):
                continue  # "a second prior"
            found.append(("quantity", " ".join(m.group(0).split()), _value(n), unit))
            taken.append(range(m.start(), m.end()))
    for m in _NUMBER.finditer(text):
        if any(r.start < m.end() and m.start() < r.stop for r in taken):
            continue
        n = m.group("n")
        start = m.start() + (1 if n[0] in "+-−" and (m.start() == 0 or text[m.start() - 1].isalnum()) else 0)
        if n[0] in "+-−" and start == m.start() + 1:
            n = n[1:]  # a hyphen after a word or a digit ("1-20") is not a sign
        if _is_part_of_a_word(text, start, m.end("n")):
            continue
        digits = n.lstrip("+-−").replace(",", "")
        if re.fullmatch(r"0\d", digits):
            continue  # a notebook number
        decimal = "." in digits or m.group("pct") or len(digits.split(".")[0].lstrip("0") or "0") >= 2
        if decimal:
            found.append(("decimal", n + ("%" if m.group("pct") else ""), _value(n), None))
    return found


# --------------------------------------------------------------------------------------------
# What the code printed
# --------------------------------------------------------------------------------------------
def output_text(nb) -> str:
    """Every text output of a notebook (streams, results, displays, errors), HTML as its text."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif out.get("output_type") == "error":
                parts.append("\n".join(out.get("traceback", [])))
            data = out.get("data", {})
            for mime in ("text/markdown", "text/plain", "text/latex"):
                if mime in data:
                    parts.append(data[mime] if isinstance(data[mime], str) else "".join(data[mime]))
            if "text/html" in data:
                parts.append(html.unescape(_TAG.sub(" ", data["text/html"] if isinstance(data["text/html"], str)
                                                    else "".join(data["text/html"]))))
    return "\n".join(parts)


def printed(text: str) -> tuple[set[float], set[tuple[float, str]]]:
    """The numbers of a text, and its (value, unit) quantities."""
    values = {_value(m.group(0)) for m in re.finditer(_NUM, text)}
    for m in re.finditer(r"(?<![\w.])\d+,\d+(?:,\d+)*", text):  # "1,2" in a tuple: 1 and 2 too
        values |= {float(p) for p in m.group(0).split(",")}
    quantities = set()
    for pattern in (_DURATION, re.compile(_STEP_ANY)):
        for m in pattern.finditer(text):
            u = m.group("u").lower()
            quantities.add((_value(m.group("n")), _UNITS.get(u, u.rstrip("s"))))
    return values, quantities


def missing(markdown: str, values: set[float], quantities: set[tuple[float, str]]) -> list[str]:
    """The quoted numbers of ``markdown`` that the printed ``values`` / ``quantities`` lack."""
    out = []
    for kind, written, value, unit in quoted_numbers(markdown):
        ok = (value, unit) in quantities if kind == "quantity" else value in values
        if not ok:
            out.append(written)
    return out


def notebook_problems(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    values, quantities = printed(output_text(nb))
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        lost = missing(cell.source, values, quantities)
        if lost:
            problems.append(f"cell {i} (id {cell.get('id', '?')}): {', '.join(repr(x) for x in lost)}")
    return problems


# --------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_number_in_a_notebooks_markdown_is_printed_by_its_code(path):
    problems = notebook_problems(path)
    assert not problems, (f"{path.name}: numbers typed in markdown that no output of the notebook prints "
                          "(print them from a code cell, e.g. IPython.display.Markdown, or write a constant "
                          "as code):\n  " + "\n  ".join(problems))


def readme_problems(path: Path = ROOT / "README.md") -> list[str]:
    """README: the quoted numbers of its prose (outside the generated blocks) that none of its
    generated blocks holds, per section (``## ...`` / ``### ...`` heading)."""
    text = _FENCE.sub(" ", path.read_text())  # before splitting at headings: a "# comment" in code is none
    block = re.compile(r"<!-- generated: (?P<name>[\w-]+) .*?-->\n(?P<body>.*?)<!-- end generated: (?P=name) -->", re.S)
    values, quantities = printed("\n".join(m.group("body") for m in block.finditer(text)))
    problems = []
    for section in re.split(r"(?m)^(?=#{1,3} )", block.sub(" ", text)):
        title = section.split("\n", 1)[0].strip()
        lost = missing(section, values, quantities)
        if lost:
            problems.append(f"{title}: {', '.join(repr(x) for x in lost)}")
    return problems


def test_every_number_in_the_readmes_prose_is_rendered():
    problems = readme_problems()
    assert not problems, ("README.md: numbers typed in prose that no generated block holds (render the sentence "
                          "from its result file in coda_utils/report.py, or remove it):\n  " + "\n  ".join(problems))


# --------------------------------------------------------------------------------------------
# The rule itself, on the issue's examples
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("markdown, printed_text, lost", [
    ("VAE PSNR 29.8 dB on target.", "PSNR 28.36 dB (29.77 per image)", ["29.8"]),
    ("`make prior`: about 2 h 10 min on 2 CPU cores.", "training: 101.5 + 137.7 + 52.6 min", ["2 h", "10 min"]),
    ("50 epochs (about two minutes).", "2 points in 3.6 min; 50 epochs", ["two minutes"]),
    ("the silhouette appears by step 9", "x0 at step 0, step 3, step 6", ["by step 9"]),
    ("the largest cluster has 172 images", "largest: 201 images", ["172"]),
    ("collapses to 0.8 % at gamma 1.0", "accuracy 0.8% at gamma 1.0", []),
    ("G - R is -0.4 [-0.5, -0.3]", "-0.40 [-0.50, -0.30]", []),
    ("in about a minute", "measured in 58.2 s", ["a minute"]),
    ("in about a minute", "took 1 min", []),
    ("a one-minute build and a two-point sweep", "2 points in 3.6 min", ["one-minute"]),
])
def test_the_rule_catches_the_issues_examples(markdown, printed_text, lost):
    assert missing(markdown, *printed(printed_text)) == lost


@pytest.mark.parametrize("markdown", [
    "# 00 · Build the embedded prior",
    "Notebook 02 picked IPC representatives; notebooks 01 -> 06 chain.",
    "1. flatten; 2. UMAP to `50` dimensions; 3. HDBSCAN (`min_samples=3`)",
    "VAE 32x32 -> 4x16x16, ResNet-18, ResNet-AP-10 on ImageNet-1K, SD 1.5 or SDXL, DPM-Solver++ 2M, UMAP 50-d",
    "CoDA (ICLR 2026, arXiv 2512.03844), section 3, §2.1, cell 29",
    "the paired difference with its 95 % interval",
    "the split `train[50000:60000]` and [the docs](docs/method.md#section-12) at https://example.org/v12.5",
    "a second prior, one seed, 3 seeds, IPC 1, the other ones",
    "    x0 = (x_t - sigma_t * eps_c) / alpha_t     # 1. an indented code block: 12.5\n",
])
def test_names_references_and_code_are_not_quoted_numbers(markdown):
    assert quoted_numbers(markdown) == []
