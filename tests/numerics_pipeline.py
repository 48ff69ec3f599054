"""The study's pipeline at tiny sizes, in one process, for tests/test_numerics.py:

    python tests/numerics_pipeline.py OUT_DIR [--emulate LEVEL]

encode (the shipped prior's VAE) -> discovery (UMAP + HDBSCAN, exactly IPC) -> CoDA-guided
generation (PNG files) -> a short ConvNet-3 evaluation; prints one JSON line of what each stage
produced (hashes of the latent files, the representatives, the PNG bytes, the accuracies and the
trained weights), plus what the process saw of its CPU.

``--emulate avx2`` / ``--emulate avx`` makes the process believe it runs on an older CPU, before
any library is loaded: numba's host detection (llvmlite) returns a Haswell / Sandy Bridge CPU
without the newer features, oneDNN is capped (``ONEDNN_MAX_CPU_ISA``), MKL is capped
(``MKL_ENABLE_INSTRUCTIONS``), numpy's newer dispatch targets are disabled
(``NPY_DISABLE_CPU_FEATURES``) and PyTorch's kernels are those of that CPU
(``ATEN_CPU_CAPABILITY``). OpenBLAS's core is the machine's to set (``OPENBLAS_CORETYPE``) and
is not emulated.
"""
import hashlib
import json
import os
import sys
from pathlib import Path

#: per emulated level: (numba CPU name, features it lacks, oneDNN / MKL cap, ATen capability, numpy off)
LEVELS = {
    "avx2": ("haswell", ("avx512",), "AVX2", "avx2", "X86_V4 AVX512_ICL AVX512_SPR"),
    "haswell": ("haswell", ("avx512", "sha", "adx", "rdseed", "clflushopt", "clwb", "clzero", "xsaves", "rdpid",
                            "wbnoinvd", "vaes", "vpclmulqdq", "mwaitx", "sse4a", "gfni", "avxvnni", "amx"),
                "AVX2", "avx2", "X86_V4 AVX512_ICL AVX512_SPR"),
    "avx": ("sandybridge", ("avx2", "fma", "f16c", "bmi", "bmi2", "movbe", "avx512", "avxvnni", "vaes", "vpclmulqdq",
                            "gfni", "adx", "rdseed", "sha", "amx", "avxifma", "avxneconvert", "avxvnniint"),
            "AVX", "default", "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"),
}


def emulate(level: str) -> None:
    """Make this process see an older CPU (call before importing numba, numpy or torch)."""
    cpu, lacks, cap, aten, npy_off = LEVELS[level]
    import llvmlite.binding as ll

    real = ll.get_host_cpu_features

    def features():
        fm = real()
        for k in list(fm):
            if any(k.startswith(p) for p in lacks):
                fm[k] = False
        return fm

    ll.get_host_cpu_name = lambda: cpu
    ll.get_host_cpu_features = features
    os.environ.update(ONEDNN_MAX_CPU_ISA=cap, DNNL_MAX_CPU_ISA=cap, MKL_ENABLE_INSTRUCTIONS=cap,
                      ATEN_CPU_CAPABILITY=aten, NPY_DISABLE_CPU_FEATURES=npy_off)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def run(out: Path) -> dict:
    import coda_utils  # noqa: F401  (first: it pins the CPU code paths before numpy and torch load)
    import numpy as np
    import torch

    from coda_utils import alignment, datasets, discovery, encoding, evaluation, numerics, setfolder

    torch.set_num_threads(1)
    root = Path(__file__).resolve().parent.parent
    report = {"numerics": numerics.settings()["variables"], "pinned": numerics.pinned()}
    import llvmlite.binding as ll

    report["host_cpu_seen"] = ll.get_host_cpu_name()
    report["torch_capability"] = torch.backends.cpu.get_cpu_capability()

    # 1. encode 3 classes x 60 images of target
    data = encoding.limit_dataset(datasets.load_fashion_mnist("target"), class_limit=3, per_class_limit=60)
    pipe = alignment.load_pipeline(root / "data/models/fashion-prior")
    cache = encoding.encode_dataset(data, pipe, out / "latents", progress=False)
    report["latents"] = {p.name: _sha(p.read_bytes()) for p in sorted((out / "latents").glob("*.npy"))}
    # 2. discovery: UMAP + HDBSCAN, exactly 2 representatives a class
    disc = discovery.discover(cache, ipc=2, seed=0, progress=False)
    report["representatives"] = disc.positions.tolist()
    # numba's parallel kernels share PyTorch's OpenMP runtime: what they leave is what training sums over
    report["torch_threads_after_discovery"] = torch.get_num_threads()
    report["embedding"] = _sha(np.ascontiguousarray(disc.per_class[0].embedding).tobytes()) \
        if getattr(disc.per_class[0], "embedding", None) is not None else None
    # 3. CoDA-guided generation, 6 steps
    target = data.with_policy(cache.policy)
    z_reps = [disc.latents[c * 2:(c + 1) * 2] for c in range(3)]
    set_dir = alignment.generate_set(pipe, out / "coda_g", target.classes, target.prompts, ipc=2, z_reps=z_reps,
                                     guidance=alignment.GuidanceConfig(gamma=0.2), steps=6, seed=0, batch_size=6,
                                     native_size=cache.policy.native, resize=cache.policy.mode, progress=False)
    report["png"] = {str(p.relative_to(set_dir)): _sha(p.read_bytes()) for p in sorted(Path(set_dir).rglob("*.png"))}
    # 4. a short evaluation: ConvNet-3, dc, 15 epochs on the generated set, 600 test images
    s = setfolder.read_set(set_dir)
    test = datasets.load_fashion_mnist("test")
    pick = np.flatnonzero(np.isin(test.labels, [0, 1, 2]))[:600]
    test_x, test_y = test.load(pick, size=tuple(s.images.shape[-2:]), resize="pad"), test.labels[pick]
    r = evaluation.train_and_evaluate(s.images, s.labels, test_x, test_y, "convnet3",
                                      evaluation.get_protocol("dc", 2, epochs=15, num_classes=3), seed=0,
                                      progress=False, num_classes=3, return_model=True)
    report["accuracy"] = r["acc"]
    report["train_loss"] = r["train_loss"]
    report["weights"] = _sha(b"".join(p.detach().numpy().tobytes() for p in r["model"].parameters()))
    return report


if __name__ == "__main__":
    out = Path(sys.argv[1])
    if "--emulate" in sys.argv:
        emulate(sys.argv[sys.argv.index("--emulate") + 1])
    print(json.dumps(run(out)))
