"""The CPU backend: NumPy."""
from __future__ import annotations

import numpy as np

from .base import Backend


class NumpyBackend(Backend):
    name = "cpu"
    xp = np

    def asarray(self, data, dtype=None):
        if hasattr(data, "__cuda_array_interface__"):  # GPU data coming home
            from .cupy_backend import import_cupy

            data = import_cupy().asarray(data).get()
        return np.asarray(data, dtype=dtype)

    def to_numpy(self, array):
        return np.array(array, copy=True)

    def matmul(self, a, b, kernel: str = "auto"):
        if kernel != "auto":
            raise ValueError(f"kernel={kernel!r} selects a CUDA GEMM kernel; CPU tensors always use NumPy")
        return np.matmul(a, b)

    def scatter_add(self, target, index, values) -> None:
        np.add.at(target, index, values)
