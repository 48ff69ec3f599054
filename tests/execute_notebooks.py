"""Execute every notebook with small parameters (papermill) into a directory, for nbval.

`make nbval` runs this, then `pytest --nbval` over the executed copies (in name order, which
is the order of the stages): nbval re-runs each notebook and compares every output with the
papermill run (numbers that legitimately change
between runs, like timings, are sanitized by tests/nbval_sanitize.cfg). Outputs of these runs
go under the target directory only, never into data/models/ or figures/.

Usage: python tests/execute_notebooks.py OUT_DIR [NOTEBOOK ...]
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import papermill as pm

ROOT = Path(__file__).resolve().parent.parent


def small_parameters(out: Path) -> dict[str, tuple[str, dict]]:
    """Output notebook name -> (source notebook, the small parameters it runs with in CI).

    01 -> 06 share one run directory, as they do with their defaults: 02 reads the cache 01
    writes, 03 the discoveries of 02, 04 evaluates a selection (random real), a set of 02 (R)
    and its VAE round trip over two selection seeds, and random real under the soft-label
    protocol (a one-epoch teacher), and 06 draws their tables and contrasts."""
    run = str(out / "runs" / "study")
    figures = str(out / "figures")
    small = dict(class_limit=3, per_class_limit=120)
    seeds = [0, 1]
    evaluate = dict(ipc=3, selection_seeds=seeds, repeats=1, epochs=3, test_limit=500, run_dir=run, threads=1, progress=False)
    return {
        "00_build_prior.ipynb": ("00_build_prior.ipynb", dict(
            vae_steps=6, unet_steps=6, decoder_steps=4, vae_batch=16, unet_batch=16, vae_channels=[8, 8, 8], unet_channels=[16, 16, 16],
            text_width=16, latent_passes=1, pool_limit=500, judge_steps=5, fidelity_samples=20, fd_target_images=200,
            sampling_steps=4, out_dir=str(out / "runs" / "prior" / "fashion-prior"), work_dir=str(out / "runs" / "prior" / "work"),
            judge_dir=str(out / "runs" / "prior" / "judge"), figures_dir=figures, write_card=True, progress=False)),
        "01_encode.ipynb": ("01_encode.ipynb", dict(**small, run_dir=run, figures_dir=figures, progress=False)),
        "02_discover.ipynb": ("02_discover.ipynb", dict(ipc=3, selection_seeds=seeds, **small, run_dir=run, figures_dir=figures,
                                                        progress=False)),
        "03_generate.ipynb": ("03_generate.ipynb", dict(ipc=3, selection_seeds=seeds, **small, steps=4, batch_size=5,
                                                        trajectory_class=1, run_dir=run, figures_dir=figures, threads=1,
                                                        progress=False)),
        "04_evaluate.ipynb": ("04_evaluate.ipynb", dict(method="random_real", **evaluate)),
        "04_evaluate_coda_r.ipynb": ("04_evaluate.ipynb", dict(method="coda_r", **evaluate)),
        "04_evaluate_rded.ipynb": ("04_evaluate.ipynb", dict(method="random_real", **{**evaluate, "epochs": 2},
                                                             protocol="rded", teacher_epochs=1)),
        "04_evaluate_vae_coda_r.ipynb": ("04_evaluate.ipynb", dict(method="vae_coda_r", **evaluate)),
        "05_ablations.ipynb": ("05_ablations.ipynb", dict(
            ipc=2, class_limit=3, per_class_limit=60, n_neighbors_grid=[6], min_cluster_size_grid=[5, 8],
            gamma_grid=[0.0, 0.1], guide_fraction_grid=[0.5], variant_gamma_grid=[0.1], ipc_grid=[1], features_grid=["pixels"],
            selection_seeds=seeds, steps=3, epochs=2, out_dir=str(out / "runs" / "ablations"), figures_dir=figures,
            progress=False)),
        # 06 redraws what 02-05 saved above
        "06_figures.ipynb": ("06_figures.ipynb", dict(run_dir=run, ipc=3, ablations_dir=str(out / "runs" / "ablations"),
                                                      figures_dir=figures)),
    }


def main(argv: list[str]) -> int:
    out = Path(argv[1]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    params = small_parameters(out / "work")
    names = argv[2:] or sorted(params)
    for name in names:
        source, parameters = params[name]
        src = ROOT / "notebooks" / source
        if not src.exists():
            print(f"skipping {name}: {source} is not in notebooks/")
            continue
        t0 = time.perf_counter()
        pm.execute_notebook(src, out / name, parameters=parameters, cwd=str(ROOT), progress_bar=False,
                            kernel_name="python3")
        print(f"executed {name} in {time.perf_counter() - t0:.0f} s")
    # nbval re-executes the notebooks from scratch: remove what the papermill runs wrote, so
    # that nothing (a results file, a checkpoint) is resumed instead of recomputed.
    shutil.rmtree(out / "work", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
