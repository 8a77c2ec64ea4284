"""The interface every array backend implements."""
from __future__ import annotations

import contextlib

import numpy as np

_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Backend:
    """One device's array library.

    ``xp`` is the NumPy-compatible array module (numpy or cupy); the methods
    cover what ``xp`` spells differently or what the project implements itself.
    """

    name: str = "?"
    xp = None

    def scope(self):
        """Context in which this device is current (a no-op on the CPU)."""
        return contextlib.nullcontext()

    def asarray(self, data, dtype=None):
        """Host or device data -> an array on this device."""
        raise NotImplementedError

    def to_numpy(self, array):
        """A host (NumPy) copy of an array of this backend."""
        raise NotImplementedError

    def matmul(self, a, b, kernel: str = "auto"):
        """numpy.matmul for arrays of ndim >= 2 (already shape-checked)."""
        raise NotImplementedError

    def scatter_add(self, target, index, values) -> None:
        """target[index] += values, accumulating repeated indices."""
        raise NotImplementedError

    def column_sums(self, x, weights=None):
        """Sum over the rows of a 2-D array, each row times its weight when weights
        (1-D, one per row) are given: the bias gradients and the estimators' weighted
        means. A backend primitive, never a one-row product through the GEMM
        dispatch (and its autotuner)."""
        raise NotImplementedError

    def row_sums(self, x):
        """Sum over the columns of a 2-D array, one value per row (softmax's normalizers)."""
        raise NotImplementedError

    def is_array(self, obj) -> bool:
        return isinstance(obj, self.xp.ndarray)

    # A backend *is* its device: equal by name, and pickled (or deep-copied) as the name,
    # so a copy resolves to the one cached backend of that device (get_backend).
    def __eq__(self, other) -> bool:
        return self is other or (isinstance(other, Backend) and self.name == other.name)

    def __hash__(self) -> int:
        return hash(self.name)

    def __reduce__(self):
        from . import get_backend

        return get_backend, (self.name,)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class KernelBackend(Backend):
    """A device whose products run the project's kernels through its runtime
    (tinygrad_dot.runtime): a GPU, or "emu" where the same kernels run on the CPU.
    Subclasses set ``runtime`` and then call ``_attach_gemm()``."""

    runtime = None
    gemm = None  # the device's GemmDispatch (its cache of planned calls)

    @property
    def sparse_kernels(self):
        """The device's CSR SpMM dispatch (tinygrad_dot.spmm: our kernels/spmm_csr.cu)."""
        from ..spmm import dispatcher

        return dispatcher(self.runtime)

    def _attach_gemm(self):
        from ..gemm import dispatcher

        self.gemm = dispatcher(self.runtime)

    def matmul(self, a, b, kernel: str = "auto"):
        dtype = a.dtype
        if dtype is b.dtype and dtype in _KERNEL_DTYPES:  # the path of every training step
            return self.gemm.matmul(a, b, kernel)
        dtype = np.result_type(dtype, b.dtype)
        if dtype.kind != "f":
            raise TypeError(f"matmul on {self.name} supports float16/32/64 arrays, got {a.dtype} and {b.dtype}")
        # The kernels compute in float32 or float64; float16 is widened and narrowed back.
        wide = dtype if dtype in _KERNEL_DTYPES else np.dtype(np.float32)
        return self.gemm.matmul(a.astype(wide, copy=False), b.astype(wide, copy=False), kernel).astype(dtype,
                                                                                                       copy=False)

    def spmm(self, indptr, indices, values, shape, dense, transpose_sparse=False, cache=None):
        """S @ dense (or S^T @ dense) for a CSR matrix S of ``shape``, on our CSR kernels
        (``self.sparse_kernels``); ``cache``: a dict that lives as long as the sparsity structure."""
        return self.sparse_kernels.spmm(indptr, indices, values, shape, dense, transpose_sparse=transpose_sparse,
                                        cache=cache)
