"""Sparse tensors: the CSR layout for 2-D tensors, and sparse-times-dense products.

    S = td.sparse_csr_tensor(crow_indices, col_indices, values, size)   # or td.tensor(scipy_csr)
    S @ D, td.sparse.mm(S, D), D @ S.T          # dense results
    S[a:b], S[index_array]                      # rows (minibatches), still CSR
    S.to_dense(), D.to_sparse_csr(), S.to_scipy()

Two pieces. ``CSR`` is the matrix itself: three arrays on a device (``indptr``,
``indices``, ``values``), the shape, and a ``cache`` dict for what the products
derive from the sparsity structure once (the kernels' row segments and the CSR of
the transpose on a GPU, SciPy's index arrays on the CPU); the estimators use it
directly. ``SparseTensor`` is a Tensor whose ``array`` is a CSR, whose values are
a dense 1-D tensor (so gradients reach them through the tape as any tensor's do),
and which may stand for the transpose of the stored matrix (layout
``td.sparse_csc``: the same three arrays read by columns, made by ``S.T``).

Every product goes through the backend primitive ``backend.spmm(indptr, indices,
values, shape, dense, transpose_sparse=False, cache=None)``: SciPy on the CPU,
our CSR kernels on "cuda" and "emu". Gradients: ``S @ D`` gives ``dD = S^T G``
(the transposed product, never a materialized S^T on the CPU) and, when the
values require a gradient, ``dvalues = (G D^T)`` at the stored positions only.

Anything else on a sparse tensor (elementwise math, reductions, sparse @ sparse)
raises a TypeError naming the layout: the CSR refuses NumPy's ufuncs and
functions and any array method the dense ops reach for.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import autograd
from .backends import get_backend
from .tensor import Tensor, _check_dtype, check_device, sparse_csc, sparse_csr, strided, to_arguments
from .tensor import _sparse_input as is_sparse_input

__all__ = ["CSR", "SparseTensor", "sparse_csr_tensor", "mm", "from_scipy", "is_sparse_input", "strided",
           "sparse_csr", "sparse_csc"]

_INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


def _unsupported(what: str, layout=sparse_csr) -> TypeError:
    return TypeError(f"{what} is not supported for layout {layout!r} (a sparse tensor supports S @ D, D @ S, "
                     "td.sparse.mm, row slicing, .T, .to() and .to_dense()); convert with .to_dense() first")


class CSR:
    """A CSR matrix on a device: ``indptr`` (M + 1,), ``indices`` (nnz,), ``values`` (nnz,)
    arrays of ``backend``, ``shape`` (M, K). Row i's entries are ``indices[indptr[i]:indptr[i+1]]``
    (columns, sorted or not; duplicates add up) and the same slice of ``values``.

    ``cache`` holds what products derive from the structure (not the values) once; it
    is shared by every CSR with the same structure (``with_values``)."""

    __slots__ = ("indptr", "indices", "values", "shape", "backend", "cache")
    ndim = 2

    def __init__(self, indptr, indices, values, shape, backend, cache=None):
        self.indptr, self.indices, self.values = indptr, indices, values
        self.shape = (int(shape[0]), int(shape[1]))
        self.backend = backend
        self.cache = {} if cache is None else cache

    @property
    def dtype(self):
        return self.values.dtype

    @property
    def nnz(self) -> int:
        return int(self.values.shape[0])

    @property
    def size(self) -> int:  # as a dense array's: numel() of a sparse tensor is M * K, as PyTorch's
        return self.shape[0] * self.shape[1]

    def with_values(self, values) -> "CSR":
        """The same structure (and cache) with other values: a cast, or the values of a gradient."""
        return CSR(self.indptr, self.indices, values, self.shape, self.backend, self.cache)

    # ------------------------------------------------------------ products
    def matmul(self, dense, transpose: bool = False):
        """S @ dense, or S^T @ dense: a dense (rows, N) array of the backend."""
        return self.backend.spmm(self.indptr, self.indices, self.values, self.shape, dense,
                                 transpose_sparse=transpose, cache=self.cache)

    def rmatmul(self, dense, transpose: bool = False):
        """dense @ S (or dense @ S^T), as (S^T dense^T)^T: no transposed copy of S."""
        return self.matmul(dense.T, transpose=not transpose).T

    def row_ids(self):
        """The row of each stored entry (nnz,), made once per structure."""
        rows = self.cache.get("row_ids")
        if rows is None:
            xp = self.backend.xp
            counts = xp.diff(self.indptr)
            rows = self.cache["row_ids"] = xp.repeat(xp.arange(self.shape[0], dtype=self.indices.dtype), counts)
        return rows

    # ------------------------------------------------------------ rows
    def __getitem__(self, index) -> "CSR":  # rows only: X[a:b], X[index_array] (the estimators' minibatches)
        if isinstance(index, tuple) or isinstance(index, numbers.Integral):
            raise _unsupported(f"indexing a CSR by {index!r} (only rows: X[a:b] or X[index_array])")
        return self.rows(index)

    def row_positions(self, index):
        """(indptr of the selected rows, positions of their entries in this CSR's arrays or a
        slice of them). ``index``: a slice, or a 1-D integer array of the backend."""
        xp = self.backend.xp
        if isinstance(index, slice):
            start, stop, step = index.indices(self.shape[0])
            if step == 1:  # contiguous rows: views of the arrays, no copy
                stop = max(start, stop)
                lo, hi = int(self.indptr[start]), int(self.indptr[stop])
                return self.indptr[start:stop + 1] - lo, slice(lo, hi)
            index = xp.arange(start, stop, step)
        starts = self.indptr[index]
        lengths = self.indptr[index + 1] - starts
        indptr = xp.zeros(len(index) + 1, dtype=self.indptr.dtype)
        xp.cumsum(lengths, out=indptr[1:])
        nnz = int(indptr[-1])
        # Entry j of the selection sits at starts[row(j)] + (j - indptr[row(j)]) in this CSR.
        offsets = xp.repeat(starts - indptr[:-1], lengths.astype(np.int64))
        return indptr, offsets + xp.arange(nnz, dtype=offsets.dtype)

    def rows(self, index) -> "CSR":
        """The rows ``index`` (a slice or an integer array of the backend) as a new CSR."""
        indptr, positions = self.row_positions(index)
        return CSR(indptr, self.indices[positions], self.values[positions], (len(indptr) - 1, self.shape[1]),
                   self.backend)

    # ------------------------------------------------------------ conversions
    def to_scipy(self):
        """A scipy.sparse.csr_array on the host (the index arrays shared on the CPU)."""
        import scipy.sparse

        host = [a if self.backend.name == "cpu" else self.backend.to_numpy(a)
                for a in (self.values, self.indices, self.indptr)]
        return scipy.sparse.csr_array(tuple(host), shape=self.shape, copy=False)

    def to_dense(self):
        xp = self.backend.xp
        out = xp.zeros(self.shape, dtype=self.dtype)
        self.backend.scatter_add(out, (self.row_ids(), self.indices), self.values)  # duplicates add up
        return out

    @classmethod
    def from_scipy(cls, matrix, backend, dtype=None) -> "CSR":
        """A SciPy (host) or cupyx (GPU) sparse matrix or array of any format, as a CSR on
        ``backend``. Index arrays are shared where they need not move (a CSR input on the
        CPU); values too unless ``dtype`` asks for a cast."""
        if len(matrix.shape) != 2:
            raise ValueError(f"a sparse tensor is 2-D, got a sparse input of shape {matrix.shape}")
        matrix = matrix.tocsr()  # no copy when it already is CSR
        arrays = []
        for name, array in (("indptr", matrix.indptr), ("indices", matrix.indices), ("values", matrix.data)):
            if name != "values" and array.dtype not in _INDEX_DTYPES:
                array = array.astype(np.int64)
            arrays.append(array if backend.name == "cpu" and isinstance(array, np.ndarray) else backend.asarray(array))
        indptr, indices, values = arrays
        _check_dtype(values.dtype)
        if dtype is not None and values.dtype != dtype:
            values = values.astype(dtype)
        return cls(indptr, indices, values, matrix.shape, backend)

    # ------------------------------------------------------------ what a CSR refuses
    # NumPy hands its ufuncs (np.exp, a + b, np.matmul) and functions (np.where, np.sum) to
    # these two: the dense ops that reach a sparse tensor's array fail here, naming the layout.
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        raise _unsupported(f"{ufunc.__name__}")

    def __array_function__(self, func, types, args, kwargs):
        raise _unsupported(f"{func.__name__}")

    def __array__(self, dtype=None, copy=None):
        raise _unsupported("conversion to a dense array (np.asarray)")

    def __neg__(self):
        raise _unsupported("negation")

    def __abs__(self):
        raise _unsupported("abs")

    def __invert__(self):
        raise _unsupported("~")

    def __getattr__(self, name):  # array methods the dense ops call: .astype, .sum, .reshape, ...
        if name.startswith("__"):
            raise AttributeError(name)
        raise _unsupported(f"the array method .{name}()")

    def __repr__(self) -> str:
        return f"CSR(shape={self.shape}, nnz={self.nnz}, dtype={self.dtype}, device={self.backend.name})"


class SparseTensor(Tensor):
    """A 2-D tensor stored as CSR (layout ``td.sparse_csr``), or the transpose of one
    (``td.sparse_csc``, what ``.T`` gives). ``array`` is the ``CSR``; ``values()`` the
    dense 1-D tensor of its stored values, through which gradients flow.

    Shape, dtype, device, size(), numel() and len() are a dense tensor's; products,
    rows, transposes, moves and conversions are below; everything else raises."""

    is_sparse = True

    def __init__(self, *args, **kwargs):
        raise TypeError("build sparse tensors with td.sparse_csr_tensor(crow_indices, col_indices, values, size), "
                        "td.tensor(scipy_sparse_matrix) or dense.to_sparse_csr()")

    @classmethod
    def _of(cls, csr: CSR, values: Tensor, transposed: bool = False) -> "SparseTensor":
        t = object.__new__(cls)
        t.array, t._backend, t._values, t._transposed = csr, csr.backend, values, transposed
        return t

    # ------------------------------------------------------------ what differs from a dense tensor
    @property
    def layout(self):
        return sparse_csc if self._transposed else sparse_csr

    @property
    def shape(self) -> tuple:
        return self.array.shape[::-1] if self._transposed else self.array.shape

    def size(self, dim=None):
        from .tensor import Size

        return Size(self.shape) if dim is None else self.shape[dim]

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def requires_grad(self) -> bool:
        return self._values.requires_grad

    @requires_grad.setter
    def requires_grad(self, flag) -> None:
        self._values.requires_grad_(flag)

    @property
    def grad(self):
        """The gradient of the values on the sparsity pattern, as a sparse tensor of this layout."""
        g = self._values.grad
        return None if g is None else SparseTensor._of(self.array.with_values(g.array), g, self._transposed)

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            raise TypeError("a sparse tensor's .grad can only be reset to None (its values' gradient)")
        self._values.grad = None

    def requires_grad_(self, flag: bool = True) -> "SparseTensor":
        self._values.requires_grad_(flag)
        return self

    def detach(self) -> "SparseTensor":
        return SparseTensor._of(self.array, self._values.detach(), self._transposed)

    def values(self) -> Tensor:
        """The stored values (nnz,), a dense tensor; gradients of the products reach it."""
        return self._values

    def crow_indices(self) -> Tensor:
        self._stored("crow_indices()")
        return Tensor._wrap(self.array.indptr, self._backend)

    def col_indices(self) -> Tensor:
        self._stored("col_indices()")
        return Tensor._wrap(self.array.indices, self._backend)

    def _nnz(self) -> int:
        return self.array.nnz

    def _stored(self, what: str) -> None:
        if self._transposed:
            raise _unsupported(what, sparse_csc) from None

    # ------------------------------------------------------------ shape and rows
    @property
    def T(self):  # noqa: N802
        return SparseTensor._of(self.array, self._values, not self._transposed)

    def t(self):
        return self.T

    def transpose(self, dim0, dim1):
        if {dim0 % 2, dim1 % 2} == {0, 1}:
            return self.T
        if dim0 % 2 == dim1 % 2:
            return self
        raise ValueError(f"transpose({dim0}, {dim1}) of a 2-D tensor")

    def __getitem__(self, index):
        """Rows: ``S[a:b]`` (views of the arrays), ``S[index]`` with an integer or bool array,
        list or tensor (shuffled minibatches). The values keep their gradient."""
        self._stored("indexing")
        if isinstance(index, tuple):
            if len(index) == 2 and index[1] == slice(None):
                index = index[0]
            else:
                raise _unsupported(f"indexing by {index!r} (only rows: S[a:b] or S[index_array])")
        if isinstance(index, numbers.Integral):
            raise _unsupported(f"S[{index}] (a row as a 1-D tensor; S[{index}:{index + 1}] is a one-row CSR)")
        if not isinstance(index, slice):
            xp = self.xp
            if isinstance(index, Tensor):
                check_device(self, index)
                index = index.array
            elif not self._backend.is_array(index):
                index = self._backend.asarray(np.asarray(index))
            if index.dtype == np.bool_:
                if index.shape != (self.shape[0],):
                    raise IndexError(f"a boolean row mask of shape {index.shape} for a sparse tensor of shape "
                                     f"{self.shape}")
                index = xp.nonzero(index)[0]
            if index.ndim != 1 or index.dtype.kind not in "iu":
                raise IndexError(f"rows of a sparse tensor are picked by a slice or a 1-D integer array, got "
                                 f"{index.dtype} of shape {index.shape}")
            index = xp.where(index < 0, index + self.shape[0], index)
            if index.size and (int(index.min()) < 0 or int(index.max()) >= self.shape[0]):
                raise IndexError(f"row index out of range for a sparse tensor of {self.shape[0]} rows")
        csr = self.array
        indptr, positions = csr.row_positions(index)
        values = self._values[positions]  # recorded: the gradient goes back to these values
        rows = CSR(indptr, csr.indices[positions], values.array, (len(indptr) - 1, csr.shape[1]), self._backend)
        return SparseTensor._of(rows, values)

    # ------------------------------------------------------------ device, dtype, conversions
    def to(self, *args, device=None, dtype=None, non_blocking=False) -> "SparseTensor":
        device, dtype = to_arguments(args, device, dtype, "SparseTensor.to")
        csr, values = self.array, self._values
        if device is not None and get_backend(device).name != self.device:
            backend = get_backend(device)
            values = values.to(backend)
            with backend.scope():
                csr = CSR(backend.asarray(csr.indptr), backend.asarray(csr.indices), values.array, csr.shape, backend)
        if dtype is not None:
            values = values.to(dtype=_check_dtype(dtype))
            csr = csr.with_values(values.array)
        return self if values is self._values else SparseTensor._of(csr, values, self._transposed)

    def numpy(self):
        raise _unsupported("numpy()", self.layout)

    def to_dense(self) -> Tensor:
        """The dense tensor (differentiable: the gradient reaches the values at their positions)."""
        csr = self.array
        out = csr.to_dense()

        def vjp(g):
            return g[csr.row_ids(), csr.indices]

        dense = autograd.record(Tensor, out, self._backend, (self._values, vjp), op="to_dense")
        return dense.T if self._transposed else dense

    def to_sparse_csr(self) -> "SparseTensor":
        """CSR of the matrix this tensor stands for: itself, or for the transpose of a CSR the CSR of
        that transpose, by a stable sort of the entries by column (the values keep their gradient)."""
        if not self._transposed:
            return self
        csr, backend = self.array, self._backend
        columns = backend.to_numpy(csr.indices)
        order = np.argsort(columns, kind="stable")  # within a column, rows stay in increasing order
        indptr = np.zeros(csr.shape[1] + 1, dtype=csr.indptr.dtype)
        np.cumsum(np.bincount(columns, minlength=csr.shape[1]), out=indptr[1:])
        with backend.scope():
            order = backend.asarray(order)
            values = self._values[order]
            indices = csr.row_ids()[order].astype(csr.indices.dtype)
            return SparseTensor._of(CSR(backend.asarray(indptr), indices, values.array, self.shape, backend), values)

    def to_scipy(self):
        """A scipy.sparse.csr_array (csc_array for the td.sparse_csc layout) on the host; on the
        CPU it shares the index arrays."""
        matrix = self.array.to_scipy()
        return matrix.T if self._transposed else matrix

    def to_cupyx(self):
        """A cupyx.scipy.sparse.csr_matrix (csc_matrix for td.sparse_csc) sharing this GPU tensor's arrays."""
        if not self.device.startswith("cuda"):
            raise TypeError(f"to_cupyx() needs a tensor on a CUDA device, this one is on {self.device}; "
                            "use to_scipy() on the host")
        from cupyx.scipy.sparse import csr_matrix

        csr = self.array
        matrix = csr_matrix((self._values.array, csr.indices, csr.indptr), shape=csr.shape)
        return matrix.T if self._transposed else matrix

    def __reduce_ex__(self, protocol):
        return _rebuild, (self.to_scipy(), self.device, self._transposed, self.requires_grad)

    def __deepcopy__(self, memo):
        return _rebuild(self.to_scipy().copy(), self.device, self._transposed, self.requires_grad)

    def __repr__(self) -> str:
        csr = self.array
        extras = [f"size={self.shape}", f"nnz={csr.nnz}", f"dtype=td.{self.dtype}", f"layout={self.layout!r}"]
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.requires_grad:
            extras.append("requires_grad=True")
        return f"tensor(crow_indices/col_indices/values, {', '.join(extras)})"


def _refuse(name: str):
    def method(self, *args, **kwargs):
        raise _unsupported(f"{name}", self.layout)

    method.__name__ = name
    return method


# Dense ops that would catch the CSR's TypeError and word it as a shape or dtype problem,
# and the in-place ops (a CSR's pattern cannot take a dense result): refused up front.
for _name in ("reshape", "view", "flatten", "squeeze", "unsqueeze", "expand", "repeat", "permute", "__setitem__",
              "__iadd__", "__isub__", "__imul__", "__itruediv__", "add_", "sub_", "mul_", "div_", "clamp_", "zero_",
              "fill_", "copy_"):
    setattr(SparseTensor, _name, _refuse(_name))


def _rebuild(matrix, device, transposed, requires_grad=False):
    t = from_scipy(matrix.T if transposed else matrix, device=device, requires_grad=requires_grad)
    return t.T if transposed else t


# ----------------------------------------------------------------- building


def sparse_csr_tensor(crow_indices, col_indices, values, size=None, *, dtype=None, device=None,
                      requires_grad=False) -> SparseTensor:
    """A CSR tensor from its arrays (torch.sparse_csr_tensor): ``crow_indices`` (M + 1,),
    ``col_indices`` (nnz,), ``values`` (nnz,), ``size`` (M, K) (K inferred as the largest
    column + 1 when None). Arrays may be tensors, NumPy arrays or lists; NumPy index arrays
    of int32 or int64 are used without a copy on the CPU."""
    arrays = []
    backend = get_backend(device if device is not None else
                          next((a._backend for a in (values, crow_indices, col_indices) if isinstance(a, Tensor)), None))
    for name, a in (("crow_indices", crow_indices), ("col_indices", col_indices)):
        a = a.to(backend).array if isinstance(a, Tensor) else backend.asarray(np.asarray(a))
        if a.ndim != 1 or a.dtype.kind not in "iu":
            raise TypeError(f"sparse_csr_tensor: {name} must be a 1-D integer array, got {a.dtype} of shape "
                            f"{tuple(a.shape)}")
        arrays.append(a if a.dtype in _INDEX_DTYPES else a.astype(np.int64))
    indptr, indices = arrays
    values = values.to(backend) if isinstance(values, Tensor) else Tensor(values, dtype=dtype, device=backend)
    if dtype is not None:
        values = values.to(dtype=_check_dtype(dtype))
    if values.ndim != 1:
        raise ValueError(f"sparse_csr_tensor: values must be 1-D (one per stored entry), got shape {values.shape}")
    if size is None:
        size = (indptr.shape[0] - 1, int(indices.max()) + 1 if indices.size else 0)
    M, K = (int(n) for n in size)
    if indptr.shape[0] != M + 1 or indices.shape[0] != values.shape[0] or \
            (indptr.shape[0] and int(indptr[-1]) != indices.shape[0]) or (indptr.shape[0] and int(indptr[0]) != 0):
        raise ValueError(f"sparse_csr_tensor: the arrays do not describe a {M} x {K} CSR matrix: crow_indices has "
                         f"{indptr.shape[0]} entries (want {M + 1}, from 0 to nnz), col_indices {indices.shape[0]}, "
                         f"values {values.shape[0]}")
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= K):
        raise ValueError(f"sparse_csr_tensor: column indices must lie in [0, {K}), got "
                         f"[{int(indices.min())}, {int(indices.max())}]")
    if bool((indptr[1:] < indptr[:-1]).any()):
        raise ValueError("sparse_csr_tensor: crow_indices must not decrease")
    if requires_grad:
        values = values.detach().requires_grad_(True) if values.requires_grad else values.requires_grad_(True)
    return SparseTensor._of(CSR(indptr, indices, values.array, (M, K), backend), values)


def from_scipy(matrix, dtype=None, device=None, requires_grad=False) -> SparseTensor:
    """A SciPy sparse matrix/array (any format; CuPy's cupyx.scipy.sparse on its GPU) as a
    CSR tensor. A CSR input on the CPU keeps its index arrays (no copy)."""
    dtype = _check_dtype(dtype)
    if device is None:
        gpu = hasattr(getattr(matrix, "data", None), "__cuda_array_interface__")  # (dok, lil: no .data)
        device = f"cuda:{matrix.data.device.id}" if gpu else "cpu"
    backend = get_backend(device)
    with backend.scope():
        csr = CSR.from_scipy(matrix, backend, dtype)
    values = Tensor._wrap(csr.values, backend)
    if requires_grad:
        values.requires_grad_(True)
    return SparseTensor._of(csr, values)


def to_sparse_csr(x: Tensor) -> SparseTensor:
    """A dense 2-D tensor's nonzeros as a CSR tensor (values keep the gradient to x)."""
    if x.is_sparse:
        return x.to_sparse_csr()
    if x.ndim != 2:
        raise ValueError(f"to_sparse_csr: a CSR tensor is 2-D, got shape {x.shape}")
    xp = x.xp
    rows, cols = xp.nonzero(x.array)  # row-major order: CSR's
    M, K = x.shape
    indptr = xp.zeros(M + 1, dtype=np.int64)
    xp.cumsum(xp.bincount(rows, minlength=M), out=indptr[1:])
    values = x[Tensor._wrap(rows, x._backend), Tensor._wrap(cols, x._backend)]
    return SparseTensor._of(CSR(indptr, cols.astype(np.int64), values.array, (M, K), x._backend), values)


# ----------------------------------------------------------------- products


def mm(a, b) -> Tensor:
    """sparse @ dense or dense @ sparse (torch.sparse.mm), a dense result. A 1-D dense
    operand is a vector, as in matmul."""
    a_sparse, b_sparse = getattr(a, "is_sparse", False), getattr(b, "is_sparse", False)
    if a_sparse and b_sparse:
        raise TypeError(f"sparse @ sparse is not supported (layouts {a.layout!r} and {b.layout!r}, shapes "
                        f"{a.shape} and {b.shape}); convert one with .to_dense()")
    if not (a_sparse or b_sparse):
        raise TypeError("td.sparse.mm needs one sparse operand; use td.matmul for dense ones")
    if b_sparse:  # D @ L = (L^T D^T)^T, through the transposes (no copy of S)
        a = a if isinstance(a, Tensor) else Tensor(a, device=b._backend)
        if a.ndim == 1:  # v @ L = L^T v
            return _sparse_dense(b.T, a[:, None])[:, 0]
        return _sparse_dense(b.T, a.T).T
    b = b if isinstance(b, Tensor) else Tensor(b, device=a._backend)
    if b.ndim == 1:
        return _sparse_dense(a, b[:, None])[:, 0]
    return _sparse_dense(a, b)


matmul = mm  # what ops.matmul calls when an operand is sparse


def product(backend, a, b):
    """a @ b for backend arrays of which one may be a CSR (the estimators' products):
    backend.spmm for a sparse operand, backend.matmul otherwise."""
    if isinstance(a, CSR):
        return a.matmul(b)
    if isinstance(b, CSR):
        return b.rmatmul(a)
    return backend.matmul(a, b)


def _sparse_dense(S: SparseTensor, D: Tensor) -> Tensor:
    """L @ D for the logical matrix L of S (its CSR, or the CSR's transpose), D dense 2-D."""
    check_device(S, D)
    if D.ndim != 2:
        raise ValueError(f"sparse @ dense: the dense operand must be 1-D or 2-D, got shape {D.shape}")
    if D.is_sparse:
        raise TypeError("sparse @ sparse is not supported; convert one with .to_dense()")
    if S.dtype != D.dtype:
        raise TypeError(f"sparse @ dense: the operands have different dtypes, {S.dtype} ({S.layout!r}, shape "
                        f"{S.shape}) and {D.dtype} (shape {D.shape}); convert one, e.g. .to(td.{S.dtype})")
    if S.dtype not in (np.float32, np.float64):  # one rule on every device (the kernels compute in these)
        raise TypeError(f"sparse @ dense computes in float32 or float64, got {S.dtype} ({S.layout!r}, shape "
                        f"{S.shape}); convert with .to(td.float32)")
    if S.shape[1] != D.shape[0]:
        raise ValueError(f"sparse @ dense: shapes {S.shape} ({S.layout!r}) and {D.shape} are not aligned: "
                         f"{S.shape[1]} != {D.shape[0]}")
    csr, t = S.array, S._transposed
    out = csr.matmul(D.array, transpose=t)

    def grad_dense(g):  # d(L D)/dD: L^T G
        return csr.matmul(g, transpose=not t)

    def grad_values(g):
        # dL = G D^T, read at the stored entries only: entry (r, c) of the CSR is L[r, c]
        # (or L[c, r] for the transpose), its gradient the dot of a row of G and a row of D.
        rows, cols = csr.row_ids(), csr.indices
        if t:
            rows, cols = cols, rows
        return (g[rows] * D.array[cols]).sum(axis=1)

    return autograd.record(Tensor, out, S._backend, (D, grad_dense), (S._values, grad_values), op="sparse_mm",
                           saved=(D, S._values))
