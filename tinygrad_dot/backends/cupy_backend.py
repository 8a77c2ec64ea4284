"""The CUDA backend: CuPy arrays, with matmul on the project's own GEMM kernels.

CuPy is imported here and nowhere in the op layer, so the package imports and
runs on machines without CuPy or without a GPU.
"""
from __future__ import annotations

from .base import KernelBackend



def import_cupy():
    """CuPy, or a RuntimeError saying what is missing and how to get it."""
    try:
        import cupy
    except ImportError as exc:
        from .._extras import cuda_hint

        raise RuntimeError(f"device 'cuda' needs CuPy, which is not installed ({exc}); {cuda_hint()}") from None
    return cupy


def gpu_count() -> int:
    """Number of visible CUDA GPUs; 0 when CuPy, the driver or a GPU is missing. Never raises."""
    try:
        cupy = import_cupy()
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


class CupyBackend(KernelBackend):
    def __init__(self, index: int):
        cupy = import_cupy()
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # no driver, or a driver too old for this CuPy
            raise RuntimeError(
                f"device 'cuda:{index}': CuPy is installed but cannot reach a CUDA GPU ({exc}). "
                "Check the NVIDIA driver, or use device='cpu'."
            ) from None
        if index >= count:
            raise RuntimeError(f"device 'cuda:{index}' does not exist: this machine has {count} CUDA GPU(s)")
        import cupyx

        self.xp = cupy
        self._scatter_add = cupyx.scatter_add
        self.index = index
        self.name = f"cuda:{index}"
        self._device = cupy.cuda.Device(index)
        from ..runtime.cuda import CudaRuntime

        self.runtime = CudaRuntime(index)
        self._attach_gemm()

    def scope(self):
        return self._device

    def asarray(self, data, dtype=None):
        with self._device:
            return self.xp.asarray(data, dtype=dtype)

    def to_numpy(self, array):
        return self.xp.asnumpy(array)

    def scatter_add(self, target, index, values) -> None:
        with self._device:
            self._scatter_add(target, index, values)

    def column_sums(self, x, weights=None):
        with self._device:
            if weights is None:
                return x.sum(axis=0)
            return _weighted_column_sum(self.xp)(self.xp.asarray(weights, dtype=x.dtype)[:, None], x, axis=0)

    def row_sums(self, x):
        with self._device:
            return x.sum(axis=1)


_weighted_column_sum_kernel = None


def _weighted_column_sum(cupy):
    """sum_i w_i x_ij as one fused CuPy reduction (no n x d temporary)."""
    global _weighted_column_sum_kernel
    if _weighted_column_sum_kernel is None:
        _weighted_column_sum_kernel = cupy.ReductionKernel(
            "T w, T x", "T y", "w * x", "a + b", "y = a", "0", "td_weighted_column_sum")
    return _weighted_column_sum_kernel
