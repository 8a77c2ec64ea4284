"""The interface every array backend implements."""
from __future__ import annotations

import contextlib
import functools

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

    # A linear model's training step, fused where the device has kernels for it. The
    # contract, which loss_rows below computes with array ops and the loss epilogue of
    # kernels/linear_skinny.cu (td::SkinnyEpilogue) in one launch:
    # for Z = x w^T + bias and targets t (given, or one-hot from int64 ``labels``),
    #   "squared": loss_i = sum_j (z_ij - t_ij)^2,                 dloss_i/dz_i = 2 (z_i - t_i)
    #   "sigmoid": loss_i = sum_j softplus(z_ij) - t_ij z_ij,      dloss_i/dz_i = sigmoid(z_i) - t_i
    #   "softmax": loss_i = sum_j t_ij (logsumexp(z_i) - z_ij),    dloss_i/dz_i = softmax(z_i) sum_j t_ij - t_i
    # and G_i = scale * weights_i * dloss_i/dz_i. A label outside [0, k) makes its row NaN.
    def linear_loss(self, epilogue: str, x, w, bias=None, targets=None, labels=None, weights=None, scale=1.0):
        """(the rows' losses (n,), G (n, k)) for x (n, d) and weight w (k, d): see above."""
        z = self.matmul(x, w.T)
        if bias is not None:
            z += bias
        return loss_rows(self.xp, epilogue, z, targets, labels, weights, scale)

    def linear_grad(self, g, x, bias: bool):
        """(g^T x (k, d), g's column sums (k,), or None without ``bias``): the weight and bias
        gradients of a linear layer."""
        return self.matmul(g.T, x), self.column_sums(g) if bias else None

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

    @functools.cached_property  # (looked up on every product: once per backend, not an import per call)
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

    @functools.cached_property
    def linear(self):
        """The device's fused training-step kernels (tinygrad_dot.gemm.skinny.LinearDispatch)."""
        from ..gemm.skinny import dispatcher

        return dispatcher(self.runtime)

    def linear_loss(self, epilogue: str, x, w, bias=None, targets=None, labels=None, weights=None, scale=1.0):
        fused = self.linear.loss(epilogue, x, w, bias, targets, labels, weights, scale)
        return fused if fused is not None else super().linear_loss(epilogue, x, w, bias, targets, labels, weights,
                                                                   scale)

    def linear_grad(self, g, x, bias: bool):
        fused = self.linear.grad(g, x, bias)
        return fused if fused is not None else super().linear_grad(g, x, bias)

    def spmm(self, indptr, indices, values, shape, dense, transpose_sparse=False, cache=None):
        """S @ dense (or S^T @ dense) for a CSR matrix S of ``shape``, on our CSR kernels
        (``self.sparse_kernels``); ``cache``: a dict that lives as long as the sparsity structure."""
        return self.sparse_kernels.spmm(indptr, indices, values, shape, dense, transpose_sparse=transpose_sparse,
                                        cache=cache)


def loss_rows(xp, epilogue: str, z, targets=None, labels=None, weights=None, scale=1.0):
    """(losses (n,), G (n, k)) of ``Backend.linear_loss`` from the outputs z (n, k), which
    it overwrites; in z's dtype, on any array module."""
    n, k = z.shape
    if labels is not None:
        targets = (labels[:, None] == xp.arange(k)).astype(z.dtype)
    if epilogue == "squared":
        z -= targets
        losses = (z * z).sum(axis=1)
        z *= 2
    elif epilogue == "sigmoid":
        # softplus(z) = max(z, 0) + log1p(exp(-|z|)), sigmoid from exp(-|z|): exact at large |z| of either sign
        e = xp.exp(-xp.abs(z))
        losses = (xp.maximum(z, 0) + xp.log1p(e) - targets * z).sum(axis=1)
        z = xp.where(z >= 0, 1, e) / (1 + e) - targets
    elif epilogue == "softmax":
        z -= z.max(axis=1, keepdims=True)
        e = xp.exp(z)
        total = e.sum(axis=1, keepdims=True)
        log_total = xp.log(total)
        losses = (targets * (log_total - z)).sum(axis=1)  # shifted before the difference: no cancellation
        z = e / total * targets.sum(axis=1, keepdims=True) - targets
    else:
        raise ValueError(f"unknown loss epilogue {epilogue!r}; choose 'squared', 'sigmoid' or 'softmax'")
    if labels is not None:
        bad = (labels < 0) | (labels >= k)
        losses = xp.where(bad, xp.nan, losses).astype(z.dtype, copy=False)
        z = xp.where(bad[:, None], xp.nan, z)
    scale = z.dtype.type(scale)
    z *= scale if weights is None else weights[:, None] * scale
    return losses, z
