"""Does the embedded prior follow the background words of its prompt? (issue 27: the text-prompt baseline)

The study's text-prompt baseline (notebook 03, ``text_prompt``) prompts the prior with "a {class}
on a black background" (notebook 03's ``prompt_template``): every Fashion-MNIST image has a black
background, so a prior that follows the words draws closer to ``target`` than the class name
alone. The prior's training captions carry "on a black background" / "on a white background"
for a share of its images (``PriorConfig.background_caption_p``; black for the pool's own
images, white for the inverted ones). This script measures the share of samples whose
background is dark (:func:`coda_utils.judge.dark_background`: the mean of a 3-pixel frame below
half of white) for each prompt of :data:`coda_utils.judge.ATTRIBUTE_PROMPTS` and each
classifier-free guidance scale, the same noise for every prompt
(:func:`coda_utils.judge.attribute_fidelity`), and writes ``--out`` (the README's
``attribute-fidelity`` block and the prior's model card read it).

Usage::

    python benchmarks/prior_attributes.py --out results/attribute_fidelity.csv   # ~4 min on one core
    python benchmarks/prior_attributes.py --per-class 2 --cfg 5                 # a quick look
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import coda_utils  # noqa: E402,F401  first: pins the portable code paths (coda_utils.numerics) before torch loads


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(ROOT / "data" / "models" / "fashion-prior"), help="the prior (a diffusers folder)")
    ap.add_argument("--per-class", type=int, default=10, help="samples per class and prompt (default 10)")
    ap.add_argument("--cfg", type=float, nargs="+", default=[1.0, 5.0, 10.0],
                    help="classifier-free guidance scales (default 1 5 10; the study samples at 5)")
    ap.add_argument("--steps", type=int, default=25, help="denoising steps (the study's 25)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the rows here (CSV), e.g. results/attribute_fidelity.csv")
    args = ap.parse_args(argv)

    import torch

    from coda_utils import datasets, io, judge, prior

    torch.set_num_threads(1)
    pipe = prior.load_prior(args.model, "cpu")
    names = datasets.load_fashion_mnist("target").prompts  # notebook 03's class prompts
    t0 = time.perf_counter()
    rows = judge.attribute_fidelity(pipe, names, cfg_scales=args.cfg, per_class=args.per_class, seed=args.seed,
                                    steps=args.steps)
    rows.insert(0, "model", Path(args.model).name)
    rows["steps"] = args.steps
    rows["seed"] = args.seed
    print(rows.drop(columns=["dark_by_class", "template"]).to_string(index=False))
    print(f"{int(rows['n'].sum())} samples in {time.perf_counter() - t0:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with io.atomic_write(args.out, "w") as fh:
            rows.to_csv(fh, index=False)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
