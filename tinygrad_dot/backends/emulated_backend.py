"""Device "emu": NumPy arrays, with every product computed by the project's CUDA
kernels running on the CPU (tinygrad_dot.runtime.emulated). Ops that have no
kernel of ours on a GPU either (elementwise math, reductions, scatter-add) run
in NumPy, as they run in CuPy there."""
from __future__ import annotations

from .base import KernelBackend
from .numpy_backend import NumpyBackend


class EmulatedBackend(KernelBackend, NumpyBackend):
    name = "emu"

    def __init__(self, runtime=None):
        """runtime: the emulated runtime to launch on (benchmarks/dispatch.py passes a
        DryRunRuntime, whose launches do nothing); td's "emu" device uses its own."""
        from ..runtime.emulated import EmulatedRuntime

        self.runtime = runtime if runtime is not None else EmulatedRuntime()
        self._attach_gemm()
