"""Device "emu": NumPy arrays, with every product computed by the project's CUDA
kernels running on the CPU (tinygrad_dot.runtime.emulated). Ops that have no
kernel of ours on a GPU either (elementwise math, reductions, scatter-add) run
in NumPy, as they run in CuPy there.

Its arrays are ``EmuArray`` (NumPy arrays whose work a CUDA graph capture can
record, tinygrad_dot.runtime.recording) and its ``xp`` is NumPy giving those, so
that ``td.cuda.graph`` captures and replays a step on "emu" as on a GPU."""
from __future__ import annotations

import numpy as np

from ..runtime import recording
from .base import KernelBackend
from .numpy_backend import NumpyBackend


class EmulatedBackend(KernelBackend, NumpyBackend):
    name = "emu"
    xp = recording.xp

    def __init__(self, runtime=None):
        """runtime: the emulated runtime to launch on (benchmarks/dispatch.py passes a
        DryRunRuntime, whose launches do nothing); td's "emu" device uses its own."""
        from ..runtime.emulated import EmulatedRuntime

        self.runtime = runtime if runtime is not None else EmulatedRuntime()
        self._attach_gemm()

    def asarray(self, data, dtype=None):
        if type(data) is recording.EmuArray and (dtype is None or data.dtype == dtype):
            return data  # already this device's, as np.asarray gives an array back
        if hasattr(data, "__cuda_array_interface__"):  # GPU data coming home
            data = NumpyBackend.asarray(self, data)
        return recording.run(np.asarray, (data,), {} if dtype is None else {"dtype": dtype}, "asarray")

    def to_numpy(self, array):
        if recording._state is not None:
            recording._state.check("numpy() (a copy to the host) of an 'emu' array")
        return np.array(array, copy=True)  # a plain ndarray: the host's
