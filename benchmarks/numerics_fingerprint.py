"""Where do two CPUs stop computing the same bits? One fingerprint per stage, per CPU.

The stages and probes are :mod:`coda_utils.portability`'s (its docstring lists them): the encoding
and discovery chain on fixed inputs, one probe per library (OpenBLAS, ARPACK, numpy's math, numba,
MKL, PyTorch's math, oneDNN) and two short trainings on real images. Run on a new CPU, it prints
this machine's hashes and every stage that differs from the committed blocks of
``results/numerics_fingerprint.csv``; the first one names the library whose code path is not
yet the same everywhere. ``tests/test_numerics.py`` runs the same comparison without the
trainings (notebook 04's stored outputs cover them) in ``make test``.

Usage (under a minute, one thread; ``--out`` keeps one block of rows per CPU model)::

    python benchmarks/numerics_fingerprint.py --out results/numerics_fingerprint.csv
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
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None,
                    help="CSV to update (e.g. results/numerics_fingerprint.csv): this CPU's rows replace its earlier "
                         "ones; blocks made with other pins (another MKL branch) are dropped")
    args = ap.parse_args(argv)

    import pandas as pd

    from coda_utils import io, portability

    head = portability.machine()
    print(f"{head['cpu']} ({head['flags']}), numerics {head['mode']}, OpenBLAS core {head['openblas_core']}, "
          f"MKL branch {head['mkl_branch']}")
    rows = portability.fingerprint(args.seed)
    for r in rows:
        print(f"{r['stage']:24s} {r['sha256']}  {r['summary']}", flush=True)
    ref_path = args.out if args.out is not None else portability.REFERENCE
    if ref_path.exists():
        diff = portability.differences(rows, portability.read_reference(ref_path))
        print("\n" + ("\n".join(["differs from the reference:"] + diff) if diff else f"every stage equals {ref_path}'s"))
    if args.out is not None:
        df = pd.DataFrame(rows)
        if args.out.exists():
            old = portability.read_reference(args.out)
            # another CPU's block stays, unless it was made with another MKL pin (then it is no reference)
            same_pin = (old["mkl_branch"] == head["mkl_branch"]) if "mkl_branch" in old.columns else False
            keep = ((old["cpu"] != head["cpu"]) | (old["flags"] != head["flags"])) & same_pin
            df = pd.concat([old[keep], df], ignore_index=True)
        with io.atomic_write(args.out, "w") as fh:
            df[list(portability.MACHINE_COLUMNS) + ["stage", "sha256", "summary"]].to_csv(fh, index=False)
        wide = df.pivot_table(index="stage", columns="cpu", values="sha256", aggfunc="first", sort=False)
        print(f"\nwrote {args.out}\n{wide.to_string()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
