"""A few-minute check of the CUDA code paths, to run first on a new GPU machine.

Usage::

    python benchmarks/check_cuda.py                 # cuda, float16 for the diffusion parts
    python benchmarks/check_cuda.py --device cpu    # the same checks on a CPU (slow but works)

It checks, each with a timing and a PASS/FAIL line, on an SDXL-*shaped* pipeline with random
weights (SDXL's structure and widths, 128x128 latents; no download needed):

1. encoding: a batch of Fashion-MNIST images through the SDXL-shaped VAE into a latent cache
   (the VAE in float32: SDXL's own VAE overflows in float16 unless it is the fp16-fix one);
2. guided generation: CoDA-guided SDXL-shaped generation in float16, with the refiner
   handoff, deterministic for a seed and pulled toward the representative latents;
3. an evaluation step: a ConvNet-3 trained for a few epochs on a random real IPC-10 subset.

The exit status is the number of failed checks.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coda_utils import alignment, baselines, datasets, encoding, evaluation  # noqa: E402
from coda_utils.tiny_pipelines import tiny_sdxl_pipeline  # noqa: E402


def check_encoding(work: Path, pipe, device: str) -> str:
    data = encoding.limit_dataset(datasets.load_fashion_mnist("target"), class_limit=2, per_class_limit=32)
    cache = encoding.encode_dataset(data, pipe.vae, work / "latents", encoder_id="sdxl-shaped", batch_size=16,
                                    device=device, dtype=torch.float32, progress=False)
    z = cache.latents(0)
    assert z.shape[1:] == (4, 128, 128) and torch.isfinite(torch.as_tensor(z, dtype=torch.float32)).all()
    return f"{len(data)} images -> latents {tuple(z.shape[1:])}"


def check_generation(pipe, refiner, device: str) -> str:
    # back to the pipeline's dtype after the fp32 encoding; SDXL's pipeline upcasts the VAE
    # itself for decoding (force_upcast), as it overflows in float16
    pipe.vae.to(pipe.unet.dtype)
    size = pipe.unet.config.sample_size
    z = torch.randn(2, 4, size, size, generator=torch.Generator().manual_seed(0))
    seeds = [alignment.sample_seed(0, 0, k) for k in range(2)]
    guided = alignment.GuidanceConfig(gamma=0.05)
    a, _ = alignment.generate(pipe, ["a photo of a sneaker"] * 2, seeds, z, guided, 5.0, 10, refiner=refiner)
    b, _ = alignment.generate(pipe, ["a photo of a sneaker"] * 2, seeds, z, guided, 5.0, 10, refiner=refiner)
    assert torch.equal(a, b), "same seeds gave different images"
    _, g = alignment.generate(pipe, ["a photo of a sneaker"] * 2, seeds, z, guided, 5.0, 10, record=True)
    _, u = alignment.generate(pipe, ["a photo of a sneaker"] * 2, seeds, z, alignment.GuidanceConfig(gamma=0.0), 5.0,
                              10, record=True)
    dist = [float((s.x0_after[-1] - z).flatten(1).norm(dim=1).mean()) for s in (g, u)]
    assert dist[0] < dist[1], f"guided x0 is not closer to its representative: {dist}"
    return f"images {tuple(a.shape[1:])}, final x0 distance guided {dist[0]:.1f} vs unguided {dist[1]:.1f}"


def check_evaluation(device: str) -> str:
    target, test = datasets.load_fashion_mnist("target"), datasets.load_fashion_mnist("test")
    idx = baselines.random_real(target, 10, seed=0)
    out = []
    for precision in ("fp32", "auto"):  # auto: bf16 autocast on a GPU that has it
        res = evaluation.train_and_evaluate(target.load(idx), target.labels[idx], test.load(range(2000)),
                                            test.labels[:2000], "convnet3", evaluation.get_protocol("dc", 10, 20), 0,
                                            device=device, progress=False, precision=precision)
        assert res["acc"] > 30, f"accuracy {res['acc']:.1f} % after 20 epochs is implausibly low ({res['precision']})"
        out.append(f"{res['precision']} {res['acc']:.1f} % in {res['train_seconds']:.1f} s")
    return "ConvNet-3, IPC 10, 20 epochs, 2,000 test images: " + ", ".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--width", type=int, default=320, help="UNet base channels (320: SDXL's)")
    args = ap.parse_args()
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            print("FAIL: torch sees no CUDA device (torch.cuda.is_available() is False)")
            return 1
        print(f"{torch.cuda.get_device_name()} | torch {torch.__version__} | CUDA {torch.version.cuda}")
    dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    work = Path(tempfile.mkdtemp(prefix="check-cuda-"))
    base, refiner = tiny_sdxl_pipeline(work, sample_size=128, width=args.width, refiner=True)
    base, refiner = base.to(args.device, dtype), refiner.to(args.device, dtype)
    checks = {"encoding": lambda: check_encoding(work, base, args.device),
              "guided generation": lambda: check_generation(base, refiner, args.device),
              "evaluation": lambda: check_evaluation(args.device)}
    failed = 0
    for name, fn in checks.items():
        t0 = time.perf_counter()
        try:
            msg = fn()
            print(f"PASS {name:<18} {time.perf_counter() - t0:6.1f} s  {msg}")
        except Exception:  # report and go on with the other checks
            failed += 1
            print(f"FAIL {name:<18} {time.perf_counter() - t0:6.1f} s")
            traceback.print_exc()
    if args.device.startswith("cuda"):
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    return failed


if __name__ == "__main__":
    sys.exit(main())
