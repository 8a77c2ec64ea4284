"""Kernel runtimes: what it takes to run the project's CUDA kernels on one device.

A runtime is a device as the kernels see it, in one object:

    facts                 name, compute capability, SM count, and the key tuned choices are stored under
    function(src, expr)   a launchable kernel: a template instantiation of a kernels/ source,
                          called as kernel(grid, block, args)
    declare(src, exprs)   the instantiations of a source that may be asked for
    precompile(pairs)     build many instantiations up front (in parallel)
    empty / pointer       output buffers and the addresses the kernels receive
    activate()            a context in which this device is current
    time_ms(fn, n)        milliseconds per call of fn over n back-to-back calls (the autotuner's clock)

Two implementations: ``CudaRuntime`` (CuPy, NVRTC, the driver: runtime/cuda.py) and
``EmulatedRuntime`` (the same sources built by the host C++ compiler through
cuda_emulation.h, on NumPy buffers: runtime/emulated.py, device "emu"). The
GEMM dispatch (tinygrad_dot.gemm) plans, tunes and launches through this
interface only, so everything above the kernels runs unchanged on both.

Kernel arguments are built once for both: a ``Signature`` names each parameter's
C type and packs plain Python ints into what a launch takes.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

_NOTHING_TO_SWITCH = contextlib.nullcontext()
__all__ = ["DeviceFacts", "Signature", "Runtime", "get_runtime", "MAX_GRID", "MAX_BLOCK_THREADS"]

# CUDA's launch limits on every GPU we target (and enforced by the emulator, so a
# launch the driver would refuse fails on "emu" too).
MAX_GRID = (2**31 - 1, 65535, 65535)  # blocks in x, y, z
MAX_BLOCK_THREADS = 1024


@dataclass(frozen=True)
class DeviceFacts:
    name: str       # e.g. "NVIDIA H100 80GB HBM3", "emulated on the CPU"
    cc: int         # compute capability as major*10+minor (what NVRTC's sm_XX says)
    sm_count: int   # multiprocessors: how many blocks run at once (the untuned choice reads it)
    key: str        # device, toolchain and kernel sources: tuned choices are stored under it


class Signature:
    """A kernel's parameter types, in order: "i32" (int), "i64" (long long), "f32"
    (float), "f64" (double) or "ptr".

    pack() turns plain numbers into launch arguments: NumPy int32, float32 and
    float64 scalars (CuPy passes a Python int as 64 bits and a float as a double),
    Python ints for the 64-bit ints and addresses (0: a null pointer); an array
    given for a "ptr" stays an array (both runtimes pass its address). Both runtimes take the packed tuple, so a launch is built once."""

    SIZES = {"i32": 4, "i64": 8, "f32": 4, "f64": 8, "ptr": 8}
    _SCALARS = {"i32": np.int32, "f32": np.float32, "f64": np.float64}

    def __init__(self, *types: str):
        unknown = [t for t in types if t not in self.SIZES]
        if unknown:
            raise ValueError(f"unknown kernel parameter types {unknown}; use {sorted(self.SIZES)}")
        self.types = types
        self.pointer_slots = tuple(i for i, t in enumerate(types) if t == "ptr")

    def pack(self, values) -> tuple:
        if len(values) != len(self.types):
            raise TypeError(f"the kernel takes {len(self.types)} arguments ({', '.join(self.types)}), "
                            f"got {len(values)}")
        scalars = self._SCALARS
        return tuple(scalars[t](v) if t in scalars else v if t == "ptr" and not isinstance(v, int) else int(v)
                     for t, v in zip(self.types, values))

    def __repr__(self) -> str:
        return f"Signature{self.types}"


class Runtime:
    """The interface both runtimes implement (see the module docstring)."""

    name: str = "?"       # the device's name, as td spells it ("cuda:0", "emu")
    xp = None             # array module of its buffers (cupy or numpy)

    @property
    def facts(self) -> DeviceFacts:
        raise NotImplementedError

    def function(self, source: str, expression: str):
        """The launchable kernel `expression` (a template instantiation, e.g.
        gemm_warp_tiled<float,false,false,...>) of kernels/`source`."""
        raise NotImplementedError

    def declare(self, source: str, expressions) -> None:
        """Every instantiation of `source` that may be asked for: a runtime that builds
        a source at a time (the emulator) builds them together, once."""

    def precompile(self, pairs) -> None:
        """Build [(source, expression), ...] ahead of their first launch."""

    def empty(self, shape, dtype):
        raise NotImplementedError

    def pointer(self, array) -> int:
        raise NotImplementedError

    def owns(self, array) -> bool:
        """array is a buffer of this device."""
        raise NotImplementedError

    def activate(self):
        return _NOTHING_TO_SWITCH

    def time_ms(self, fn, n: int) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def get_runtime(device: str) -> Runtime:
    """The runtime of a device name: "emu" or "cuda:N" (one object per device)."""
    from ..backends import get_backend

    backend = get_backend(device)
    runtime = getattr(backend, "runtime", None)
    if runtime is None:
        raise ValueError(f"device {backend.name!r} runs no kernels of ours (NumPy does its matmul); "
                         "kernel runtimes exist for 'cuda:N' and 'emu'")
    return runtime
