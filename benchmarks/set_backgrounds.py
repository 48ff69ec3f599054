"""The backgrounds of a run's generated sets: does the text-prompt baseline draw what it asks for? (issue 27)

``benchmarks/prior_attributes.py`` asks the prior on fresh noise; this reads the sets a run made
(notebook 03: ``unguided``, ``text_prompt``, ``coda_g`` of every selection seed) and writes, per set,
its share of dark backgrounds (:func:`coda_utils.judge.dark_background`) and its mean absolute
difference in grey levels from the same seed's unguided set (the same noise in the same order), with
:func:`coda_utils.judge.set_backgrounds`. The README's ``set-backgrounds`` block reads ``--out``.

Usage (after ``make study``; seconds)::

    python benchmarks/set_backgrounds.py --run runs/study --ipc 10 --out results/set_backgrounds.csv
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import coda_utils  # noqa: E402,F401  first: pins the portable code paths (coda_utils.numerics) before torch loads


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "study", help="the run folder (make study's runs/study)")
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--methods", nargs="+", default=["unguided", "text_prompt", "coda_g"])
    ap.add_argument("--out", type=Path, default=None, help="write the rows here (CSV), e.g. results/set_backgrounds.csv")
    args = ap.parse_args(argv)

    from coda_utils import io, judge

    if not (args.run / "sets").is_dir():
        raise SystemExit(f"--run {args.run} holds no sets/ folder: run make study first (or pass its run folder)")
    df = judge.set_backgrounds(args.run, args.ipc, args.methods)
    if df.empty:
        raise SystemExit(f"--run {args.run}: no set of {args.methods} at IPC {args.ipc} beside an unguided set")
    print(df.to_string(index=False))
    if args.out is not None:
        with io.atomic_write(args.out, "w") as fh:
            df.to_csv(fh, index=False)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
