"""The CPU code paths every process of the study runs: the same numbers on any x86-64 CPU.

Why: the libraries behind the study choose their machine code by the CPU they find. numba
compiles umap-learn and pynndescent for the host CPU (AVX-512 and AVX2 machines gave different
UMAP embeddings, hence different HDBSCAN clusters and other representatives); PyTorch's own
kernels (ATen) dispatch to AVX-512, AVX2 or plain code; oneDNN (PyTorch's convolutions) and MKL
(its matrix products) JIT-compile or pick kernels per instruction set; numpy dispatches its
loops and sorts to AVX2 / AVX-512; OpenBLAS (numpy's and scipy's BLAS: UMAP's spectral
initialisation, k-means) picks a kernel per CPU. Each choice changes the order of floating-point
operations, and a network trained for 100 epochs amplifies one rounding difference into another
accuracy.

What: :data:`PORTABLE` pins every one of them to one *portable level*, x86-64 with AVX (every
x86-64 CPU since 2011-2013, Intel Sandy Bridge and AMD Bulldozer on): the same machine code runs
on an AVX-512 server, an AVX2 laptop and an AVX-only desktop, so they compute the same bits.
:func:`pin` writes the settings into ``os.environ`` before numba, numpy or torch is loaded: it
runs when ``coda_utils`` is imported, so every notebook (their first code cell imports
``coda_utils``), ``coda_utils.scale``, the benchmarks and the tests get it, and every child
process (papermill kernels, ``accelerate launch``) inherits it. :func:`settings` returns what is
in force, with the CPU model and its instruction-set flags; ``versions.json`` of every run records
it (:meth:`coda_utils.rundir.RunDir.record_versions`).

Two things are deliberately left to the machine:

* ``OPENBLAS_CORETYPE`` (and ``OPENBLAS_L2_SIZE``): some machines set it for correctness (older
  OpenBLAS builds compute wrong results on some CPUs). When it is already set it is left as it is
  and recorded (``settings()["openblas_coretype_from"] == "environment"``); numpy's and scipy's
  BLAS calls may then take another kernel than on a machine where this module pins it, so the
  spectral initialisation of UMAP, and what follows from it, is only as portable as that
  setting.
* thread counts, when set: a reduction split over more threads adds in another order, so the
  thread count is part of the numbers. When ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``,
  ``OPENBLAS_NUM_THREADS`` and ``NUMBA_NUM_THREADS`` are not set, :func:`pin` sets them to
  :data:`THREADS` (1, as ``make study`` runs every process), not to the machine's core count; a
  stage's ``threads`` parameter and ``make study`` (one thread a process) set their own, and
  :func:`settings` records them. numba's is among them because its OpenMP threading layer shares
  PyTorch's OpenMP runtime: umap-learn's first parallel kernel sets the process's OpenMP thread
  count to ``NUMBA_NUM_THREADS`` (the core count when unset), and a network trained afterwards in
  the same process sums over that many threads. :func:`coda_utils.discovery.run_umap` restores the
  count itself (``threadpool_limits``); the pin covers every other caller of umap-learn (the
  fingerprints of :mod:`coda_utils.portability` call its steps one by one).

``CODA_NUMERICS=native`` switches the pins off (the libraries' own choice: faster on a big CPU,
CPU-dependent numbers; ``settings()["mode"]`` records it). The cost of each pin is measured by
``benchmarks/bench_numerics.py``. The evaluation's ``precision="fp32"`` (the default) is part of
the portable path; ``"bf16"`` / ``"auto"`` (bf16 where the CPU has AVX-512 BF16) is the fast path,
whose rows say so in their ``precision`` column.

What this cannot pin: oneDNN kernels may size their blocks by the CPU's cache sizes (MKL
guarantees the same results across CPUs, Intel's and others', only in the COMPATIBLE branch of its
conditional-numerical-reproducibility mode, which :data:`PORTABLE` sets and :func:`settings`
reads back from MKL as ``mkl_cnr_branch``; oneDNN gives no such guarantee), and a GPU's kernels are not
deterministic. ``tests/test_numerics.py`` runs the pipeline under an emulated older CPU and
requires identical bytes.
"""
from __future__ import annotations

import os
import platform
import sys
import warnings
from pathlib import Path

__all__ = ["PORTABLE", "LEVEL", "THREADS", "NATIVE_VARIABLE", "pin", "pinned", "settings", "cpu_info", "mkl_cnr_branch",
           "problems"]

#: the portable instruction-set level: x86-64 with AVX (no AVX2, FMA or AVX-512)
LEVEL = "x86-64+avx"

#: set to ``native`` to leave every library its own choice of code path
NATIVE_VARIABLE = "CODA_NUMERICS"

#: the environment of the portable level, variable by variable (what each library reads)
PORTABLE: dict[str, str] = {
    # numba (umap-learn, pynndescent): compile for a Sandy Bridge (AVX) CPU, with that CPU's
    # features only (an empty feature string: numba would otherwise add the host's +avx2,+fma)
    "NUMBA_CPU_NAME": "sandybridge",
    "NUMBA_CPU_FEATURES": "",
    # PyTorch's own kernels: the plain (compiler-vectorised) build, not the AVX2 / AVX-512 one
    "ATEN_CPU_CAPABILITY": "default",
    # oneDNN (PyTorch's convolutions): JIT kernels for AVX at most
    "ONEDNN_MAX_CPU_ISA": "AVX",
    "DNNL_MAX_CPU_ISA": "AVX",
    # MKL (PyTorch's matrix products): conditional numerical reproducibility, its COMPATIBLE branch
    # (SSE2 without the rcpps/rsqrtps estimates). The only branch besides AUTO that MKL honours on
    # non-Intel CPUs: any other name (AVX, AVX2, ...) falls back to AUTO on an AMD CPU, and oneMKL
    # 2024 runs AVX as its SSE4_2 branch on an Intel one, so the two vendors computed other bits
    "MKL_CBWR": "COMPATIBLE",
    # numpy: the loops and sorts of its baseline (x86-64-v2), none of its AVX2 / AVX-512 ones
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
    # OpenBLAS (numpy's and scipy's BLAS): the Sandy Bridge (AVX) kernels; left alone if set
    "OPENBLAS_CORETYPE": "Sandybridge",
}

#: variables the machine may set for correctness: never overridden, only recorded
_MACHINE_OWNED = ("OPENBLAS_CORETYPE",)
#: variables that cap an instruction set: a lower cap already in force (an older CPU, or an
#: emulation of one) is kept, since the portable level is at or below it anyway
_ISA_ORDER = ["SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
              "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512",
              "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "ALL", "DEFAULT"]
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
#: the thread count of PyTorch, MKL and OpenBLAS when the environment names none (not the core count)
THREADS = 1
#: where each pinned variable is read: once the module is loaded the setting is fixed
_READ_BY = {"NUMBA_CPU_NAME": "numba", "NUMBA_CPU_FEATURES": "numba", "NPY_DISABLE_CPU_FEATURES": "numpy",
            "OPENBLAS_CORETYPE": "numpy"}

_state: dict = {}


def _is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def _lower_isa(a: str, b: str) -> str:
    ia = _ISA_ORDER.index(a.upper()) if a.upper() in _ISA_ORDER else len(_ISA_ORDER)
    ib = _ISA_ORDER.index(b.upper()) if b.upper() in _ISA_ORDER else len(_ISA_ORDER)
    return a if ia <= ib else b


def pin(environ=None) -> dict[str, str]:
    """Write :data:`PORTABLE` into ``environ`` (``os.environ``) and return what was set.

    A variable the machine owns (``OPENBLAS_CORETYPE``) is kept when set; an instruction-set
    cap already lower than the portable level is kept; every other pinned variable is set.
    Does nothing (and returns ``{}``) with ``CODA_NUMERICS=native`` or on a CPU that is not
    x86-64 (ARM machines run one code path per build already; their numbers are their own).
    Warns when numba or numpy was imported before with other settings, which then cannot
    take effect in this process (import ``coda_utils`` first).
    """
    env = os.environ if environ is None else environ
    if env.get(NATIVE_VARIABLE, "").lower() == "native" or not _is_x86():
        if environ is None:
            _state.update(mode="native" if _is_x86() else f"native ({platform.machine()})", source={})
        return {}
    applied, source = {}, {}
    for name, value in PORTABLE.items():
        have = env.get(name)
        if name in _MACHINE_OWNED and have is not None and have != value:
            source[name] = "environment"
            continue
        if name.endswith("MAX_CPU_ISA") and have:
            value = _lower_isa(have, value)
        elif name == "NPY_DISABLE_CPU_FEATURES" and have:  # the union: a feature off stays off
            value = " ".join(dict.fromkeys(have.replace(",", " ").split() + value.split()))
        env[name] = value
        applied[name] = value
        source[name] = "coda_utils.numerics"
    for name in _THREAD_VARIABLES:
        if not env.get(name):
            env[name] = applied[name] = str(THREADS)
            source[name] = "coda_utils.numerics"
    if environ is None:
        late = sorted({mod for name, mod in _READ_BY.items() if name in applied and mod in sys.modules
                       and _loaded_with.get(mod, {}).get(name) != applied[name]})
        if late:
            warnings.warn(f"{', '.join(late)} was imported before coda_utils, so the portable CPU code paths "
                          f"(coda_utils.numerics) cannot all take effect in this process: its numbers may depend "
                          f"on this CPU. Import coda_utils first (or start Python with these variables set: "
                          f"python -m coda_utils.numerics --env).", RuntimeWarning, stacklevel=2)
        _state.update(mode="portable", source=source, late=late)
    return applied


# what numba / numpy saw when first imported (None: imported after pin())
_loaded_with: dict[str, dict[str, str | None]] = {
    mod: {name: os.environ.get(name) for name, m in _READ_BY.items() if m == mod}
    for mod in ("numba", "numpy") if mod in sys.modules
}


def pinned() -> bool:
    """Whether this process runs the portable code paths."""
    return _state.get("mode") == "portable" and not _state.get("late")


def cpu_info() -> dict:
    """The CPU's model name and the instruction-set flags that decide code paths."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key == "flags":
                    wanted = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
                              "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")
                    have = set(value.split())
                    flags = [w for w in wanted if w in have]
                    break
    except OSError:
        pass
    return {"machine": platform.machine(), "model": model, "isa_flags": flags}


#: MKL's names of its conditional-numerical-reproducibility branches (``mkl_cbwr.h``)
_MKL_BRANCHES = {1: "OFF", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1", 8: "SSE4_2", 9: "AVX",
                 10: "AVX2", 11: "AVX512_MIC", 12: "AVX512", 13: "AVX512_MIC_E1", 14: "AVX512_E1"}


def mkl_cnr_branch() -> str | None:
    """The code branch MKL runs in this process, as MKL itself reports it (``mkl_cbwr_get``), or
    ``None`` where PyTorch carries no MKL (an ARM or macOS build). ``MKL_CBWR=AVX`` reads back as
    ``SSE4_2`` on an Intel CPU (oneMKL 2024 has no AVX branch) and would be ``AUTO`` on an AMD one:
    only ``COMPATIBLE`` is the same branch on every x86-64 CPU."""
    import ctypes

    import torch

    lib = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        handle = ctypes.CDLL(str(lib))
    except OSError:
        return None
    for name in ("mkl_cbwr_get", "mkl_serv_cbwr_get"):
        get = getattr(handle, name, None)
        if get is not None:
            get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
            code = get(1)  # MKL_CBWR_BRANCH
            return _MKL_BRANCHES.get(code, str(code))
    return None


def settings() -> dict:
    """Everything that decides the CPU code paths of this process, for ``versions.json``: the
    mode (``portable`` / ``native``), the pinned variables and where each came from, thread
    variables, the CPU, and what the loaded libraries report (torch's capability, numpy's
    dispatched features, OpenBLAS's core)."""
    out = {"mode": _state.get("mode", "unpinned"), "level": LEVEL if _state.get("mode") == "portable" else None,
           "variables": {name: os.environ.get(name) for name in PORTABLE},
           "sources": dict(_state.get("source", {})),
           "imported_too_early": list(_state.get("late", [])),
           "threads": {name: os.environ.get(name) for name in _THREAD_VARIABLES},
           "cpu": cpu_info()}
    if "torch" in sys.modules:
        import torch

        out["torch_threads"] = torch.get_num_threads()
        out["mkl_cnr_branch"] = mkl_cnr_branch()
        try:
            out["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        except Exception:  # pragma: no cover - older torch
            pass
    if "numpy" in sys.modules:
        try:
            from numpy._core._multiarray_umath import __cpu_features__ as features

            out["numpy_cpu_features"] = sorted(k for k, v in features.items() if v and k.startswith(("X86_", "AVX512_")))
        except ImportError:  # pragma: no cover
            pass
    return out


def problems() -> list[str]:
    """Why this process would not give the portable numbers (empty when it does)."""
    out = []
    if _state.get("mode") != "portable":
        out.append(f"numerics mode is {_state.get('mode', 'unpinned')!r}, not 'portable'")
    for mod in _state.get("late", []):
        out.append(f"{mod} was imported before coda_utils: its code paths are this CPU's")
    if "torch" in sys.modules and _state.get("mode") == "portable":  # portable: an x86-64 CPU
        branch = mkl_cnr_branch()
        if branch not in (None, PORTABLE["MKL_CBWR"]):
            out.append(f"MKL runs its {branch} branch, not {PORTABLE['MKL_CBWR']} (MKL_CBWR): its products are this CPU's")
    for name, value in PORTABLE.items():
        if _state.get("source", {}).get(name) == "environment":
            out.append(f"{name}={os.environ.get(name)} was set by the machine and kept (portable value: {value})")
    return out


def _main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(description="The portable CPU code paths of coda_utils.")
    parser.add_argument("--env", action="store_true", help="print the pinned variables as shell assignments")
    args = parser.parse_args(argv)
    if args.env:
        env = dict(os.environ)
        pin(env)
        print(" ".join(f"{k}={env[k]!r}" if env[k] == "" or " " in env[k] else f"{k}={env[k]}"
                       for k in PORTABLE if k in env))
        return 0
    import numpy  # noqa: F401  (so that settings() reports them)
    import torch  # noqa: F401

    from coda_utils import numerics  # the module's state (this file runs as __main__ too)

    print(json.dumps(numerics.settings(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
