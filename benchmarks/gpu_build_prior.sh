#!/bin/bash
# Build the embedded prior on a GPU (`make prior DEVICE=cuda` without make) and record what it did.
#
#   OUT=runs/prior-gpu bash benchmarks/gpu_build_prior.sh [extra papermill -p/-y arguments]
#
# Runs notebooks/00_build_prior.ipynb with device=cuda into $OUT (never over the shipped prior),
# then writes $OUT/gpu_build.json (the commit, the GPU, torch/CUDA versions, wall seconds, the
# seconds of each training stage and where it ran) and packs the built pipeline as
# $OUT/fashion-prior.tgz. Copy that over data/models/fashion-prior to ship it; the quality cells
# of notebook 00 (PSNR, prompt fidelity, Frechet distance) are in $OUT/00_build_prior.ipynb.
#
# Needs the project's packages (diffusers, transformers, papermill, matplotlib, ...): on a
# machine without them, install the wheels of requirements.lock first. Extra arguments go to
# papermill, e.g. `-p unet_steps 10` for a quick check of the script itself.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/prior-gpu}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
start=$(date +%s)
"$PY" -m papermill --log-output notebooks/00_build_prior.ipynb "$OUT/00_build_prior.ipynb" \
    -f notebooks/params/prior.yaml -p out_dir "$OUT/fashion-prior" -p work_dir "$OUT/work" -p device "$DEVICE" -p figures_dir "$OUT/figures" \
    -p progress False "$@"
end=$(date +%s)
"$PY" - "$OUT" "$((end - start))" <<'PY'
import json, subprocess, sys
from pathlib import Path

import torch

out, seconds = Path(sys.argv[1]), int(sys.argv[2])
report = json.loads((out / "fashion-prior" / "training_report.json").read_text())
quality = json.loads((out / "fashion-prior" / "quality.json").read_text())
record = {
    "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or None,
    "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    "torch": torch.__version__, "cuda": torch.version.cuda,
    "wall_seconds": seconds,
    "stage_seconds": {k: report.get(k, 0) for k in ("vae_seconds", "unet_seconds", "finetune_seconds", "decoder_seconds")},
    "trained_on": report["trained_on"],
    "config": report["config"],
    "psnr_db": quality["psnr"]["mean_image_psnr_db"], "fidelity": quality["fidelity"]["fidelity"],
    "fd_unguided_target": quality["fd_unguided_target"], "fd_floor": quality["fd_floor"],
}
(out / "gpu_build.json").write_text(json.dumps(record, indent=1) + "\n")
print(json.dumps(record, indent=1))
PY
tar czf "$OUT/fashion-prior.tgz" -C "$OUT" fashion-prior
echo "built in $((end - start)) s: $OUT/fashion-prior.tgz, $OUT/gpu_build.json"
