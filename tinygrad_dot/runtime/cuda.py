"""The kernel runtime of a CUDA GPU: CuPy for buffers, streams and events; our
NVRTC build (tinygrad_dot.gemm.compile) and the driver for modules; CuPy's
Function for launches. CuPy is imported when a runtime is made, never at import."""
from __future__ import annotations

import contextlib
from functools import cached_property

from . import DeviceFacts, Runtime

_CURRENT = contextlib.nullcontext()


class CudaRuntime(Runtime):
    def __init__(self, device_id: int):
        import cupy

        self.xp = cupy
        self.id = device_id
        self.name = f"cuda:{device_id}"
        self._device = cupy.cuda.Device(device_id)
        self._get_device = cupy.cuda.runtime.getDevice

    @cached_property
    def facts(self) -> DeviceFacts:
        from ..gemm import nvrtc, sources
        from ..gemm.autotune import device_key

        cupy = self.xp
        props = cupy.cuda.runtime.getDeviceProperties(self.id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        cc = props["major"] * 10 + props["minor"]
        nv = nvrtc.version() if nvrtc.available() else cupy.cuda.nvrtc.getVersion()
        return DeviceFacts(name=name, cc=cc, sm_count=props["multiProcessorCount"],
                           key=device_key(name, cc, f"cupy-{cupy.__version__}|nvrtc-{'.'.join(map(str, nv))}",
                                          sources.kernels_sha256()))

    def function(self, source: str, expression: str):
        from ..gemm.compile import get_function

        with self._device:
            return get_function(source, expression, self.facts.cc, self.id)

    def precompile(self, pairs) -> None:
        from ..gemm.compile import precompile

        precompile(list(pairs), self.facts.cc)

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype)

    def pointer(self, array) -> int:
        return array.data.ptr

    def owns(self, array) -> bool:
        return isinstance(array, self.xp.ndarray) and array.data.device_id == self.id

    def activate(self):
        # Entering cupy's Device costs more than asking which device is current: on
        # the usual one-GPU machine there is nothing to switch.
        return _CURRENT if self._get_device() == self.id else self._device

    def reference_matmul(self, a, b):
        """kernel="cublas": CuPy's matmul (cuBLAS), the reference for tests and benchmarks."""
        return self.xp.matmul(a, b)

    def reference_spmm(self, indptr, indices, values, shape, dense):
        """kernel="cusparse": cuSPARSE through cupyx, the reference for tests and benchmarks."""
        from cupyx.scipy.sparse import csr_matrix

        return csr_matrix((values, indices, indptr), shape=shape) @ dense

    def time_ms(self, fn, n: int) -> float:
        """ms per call of n back-to-back calls between ONE pair of CUDA events."""
        cuda = self.xp.cuda
        start, stop = cuda.Event(), cuda.Event()
        start.record()
        for _ in range(n):
            fn()
        stop.record()
        stop.synchronize()
        return cuda.get_elapsed_time(start, stop) / n
