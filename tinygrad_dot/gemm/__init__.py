"""The project's own GEMM (CUDA cores; float64 also on the FP64 tensor cores), on a GPU or on
the emulated device "emu".

    matmul(a, b, kernel="auto")   C = a @ b (numpy.matmul rules) for two arrays of one device:
                                  CuPy arrays run on their GPU, NumPy arrays on "emu"
    prepare(a, b, kernel="auto")  everything of matmul but the launch: a Launcher whose
                                  call launches into launcher.out (benchmarks, GPU tests)
    dispatcher(device)            the device's GemmDispatch (its cache of planned calls)
    kernel_names(dtype=None)      the ladder's rungs, selectable by name (those computing dtype)
    available()                   CuPy importable and a GPU present (never raises)

kernel: "auto" (autotuned), a rung name, a configs.KernelConfig (one tile
configuration), or "cublas" (the vendor library, NumPy's matmul on "emu": the
reference for tests and benchmarks). Operands are read in place through their
strides (A^T, B^T views need no copy); a batch is one launch, split only past
the grid's limits, as is an M past 65535 row tiles. CuPy is imported lazily.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import configs
from .dispatch import GemmCall, GemmDispatch

__all__ = ["matmul", "prepare", "dispatcher", "Launcher", "GemmDispatch", "kernel_names", "available"]


def kernel_names(dtype=None) -> list:
    """Every rung's name, or only those that compute in dtype (dmma is float64 only)."""
    if dtype is None:
        return list(configs.RUNGS)
    return [name for name, rung in configs.RUNGS.items() if np.dtype(dtype).name in rung.dtypes]


def available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, no driver, no device: all mean "not available"
        return False


@lru_cache(maxsize=None)
def _dispatcher_of(runtime) -> GemmDispatch:
    return GemmDispatch(runtime)


def dispatcher(device) -> GemmDispatch:
    """The GemmDispatch of a device ("emu", "cuda:N") or of a runtime object."""
    from ..runtime import Runtime, get_runtime

    return _dispatcher_of(device if isinstance(device, Runtime) else get_runtime(device))


def _device_of(a) -> str:
    if hasattr(a, "__cuda_array_interface__"):
        return f"cuda:{a.device.id}"
    return "emu"


def _dispatch_for(a, runtime):
    return dispatcher(runtime if runtime is not None else _device_of(a))


def matmul(a, b, *, kernel="auto", runtime=None):
    """a @ b with the project's kernels. a: (..., M, K), b: (..., K, N), same dtype
    (float32 or float64), batch dims broadcast as numpy.matmul does. Returns a new
    C-contiguous (..., M, N) array on the operands' device. runtime: run on this
    runtime object instead of the operands' device's (e.g. a subclass in a test)."""
    return _dispatch_for(a, runtime).matmul(a, b, kernel)


class Launcher:
    """One product with everything fixed but the launch: calling it launches the
    kernels into ``out`` (the same operands and output every time)."""

    def __init__(self, call: GemmCall, a, b):
        self.call, self.runtime = call, call.runtime
        with self.runtime.activate():
            self._a, self._b = call.operands(a, b)
            self.out = call(a, b)  # the first run also allocates the output

    @property
    def config(self):
        """The tile configuration launched (None for "cublas", the skinny route or an empty product)."""
        return self.call.config

    def __call__(self):
        with self.runtime.activate():
            self.call.launch_into(self._a, self._b, self.out)
        return self.out


def prepare(a, b, *, kernel="auto", runtime=None) -> Launcher:
    """Plan (and, for kernel="auto", tune) a @ b, run it once into a fresh output,
    and return a Launcher that repeats just the launches: what a benchmark times
    and what a GPU test drives."""
    return Launcher(_dispatch_for(a, runtime).plan(a, b, kernel), a, b)
