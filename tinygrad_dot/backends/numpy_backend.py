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

    def spmm(self, indptr, indices, values, shape, dense, transpose_sparse=False, cache=None):
        return scipy_spmm(indptr, indices, values, shape, dense, transpose_sparse, cache)

    # Sums through BLAS (a product with weights or ones): several times faster than
    # NumPy's axis reductions over the short rows and columns of training batches.
    def column_sums(self, x, weights=None):
        if weights is None:
            weights = _ones(x.shape[0], x.dtype)
        return np.asarray(weights, dtype=x.dtype) @ x

    def row_sums(self, x):
        return x @ _ones(x.shape[1], x.dtype)


def scipy_spmm(indptr, indices, values, shape, dense, transpose_sparse=False, cache=None):
    """S @ dense (S^T @ dense with ``transpose_sparse``) for S given by CSR arrays and its shape
    (M, K), by SciPy: a (rows, N) NumPy array. ``cache`` (a dict living as long as the structure)
    keeps the index arrays SciPy settles on: it narrows int64 indices that fit to int32, a copy
    that would otherwise come with every product."""
    try:
        from scipy.sparse import csr_matrix
    except ImportError as exc:
        from .._extras import install_hint

        raise ImportError(f"sparse products on the CPU need SciPy ({exc}); {install_hint('models')}") from None
    index = cache.get("scipy_index") if cache is not None else None
    if index is not None:
        indptr, indices = index
    matrix = csr_matrix((np.asarray(values), np.asarray(indices), np.asarray(indptr)), shape=shape, copy=False)
    if cache is not None and index is None:
        cache["scipy_index"] = (matrix.indptr, matrix.indices)
    # S^T through .T: a CSC view of the same arrays, whose product SciPy computes without a transposed copy.
    return np.asarray((matrix.T if transpose_sparse else matrix) @ np.asarray(dense))


_ones_cache: dict = {}


def _ones(n: int, dtype):
    """A cached vector of n ones (read only: shared by every caller)."""
    key = (n, dtype.str)
    ones = _ones_cache.get(key)
    if ones is None:
        if len(_ones_cache) > 64:
            _ones_cache.clear()
        ones = _ones_cache[key] = np.ones(n, dtype=dtype)
        ones.flags.writeable = False
    return ones
