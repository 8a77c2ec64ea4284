"""The Tensor: an array on a device, plus what autograd needs to know about it."""
from __future__ import annotations

import copy
import math
import numbers
import operator

import numpy as np

from . import autograd
from .backends import Backend, canonical_device, get_backend

_FLOAT_KINDS = "f"
_NUMERIC_KINDS = "biuf"


def _from_data(data, dtype):
    """Python data or a NumPy array -> a NumPy array with tensor dtype rules:
    Python floats become float32 (as in PyTorch); arrays keep their dtype."""
    if _sparse_input(data):
        raise TypeError(f"Tensor() builds dense tensors; td.tensor(data) makes a CSR tensor of a sparse "
                        f"{type(data).__name__}")
    if isinstance(data, np.ndarray) or isinstance(data, np.generic):
        array = np.array(data, copy=True)  # a tensor never aliases the caller's array (td.from_numpy does)
        from_python = False
    else:
        try:
            array = np.asarray(data)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"td.tensor: cannot build a tensor from {type(data).__name__} data ({exc})") from None
        from_python = True
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(
            f"td.tensor: data must be numeric (bool, int or float), got dtype {array.dtype} "
            f"from {type(data).__name__}"
        )
    if dtype is not None:
        return array.astype(dtype, copy=False)
    if from_python and array.dtype == np.float64:
        return array.astype(np.float32)
    return array


def _check_dtype(dtype):
    if dtype is None:
        return None
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"unknown dtype {dtype!r}") from None
    if dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(f"unsupported dtype {dtype}: tensors hold bool, integer or float data")
    return dtype


def shape_args(args, what: str, free: bool = False) -> tuple:
    """A shape given PyTorch's ways, ``f(2, 3)`` or ``f((2, 3))`` / ``f([2, 3])``, as a
    tuple of ints; ``free`` allows -1 (reshape's and expand's "whatever fits")."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    lowest = -1 if free else 0
    if not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= lowest for n in args):
        raise ValueError(f"{what}: a shape is {'integers >= -1' if free else 'non-negative integers'}, got {args}")
    return tuple(int(n) for n in args)


def check_device(a: "Tensor", b: "Tensor") -> None:
    """Two tensors of one op must be on one device (a device is its name, whichever backend object)."""
    if a._backend.name != b._backend.name:
        raise RuntimeError(f"expected all tensors on one device, but found {a.device} (shape {a.shape}) and "
                           f"{b.device} (shape {b.shape}); move one with .to({a.device!r})")


def host_array(array) -> np.ndarray:
    """Any array, NumPy or on a GPU (anything with __cuda_array_interface__, or a tensor),
    as a NumPy array on the host (a GPU array is copied; a NumPy array is returned as is)."""
    if isinstance(array, Tensor):
        return array.numpy()
    if hasattr(array, "__cuda_array_interface__"):
        from .backends.cupy_backend import import_cupy

        return import_cupy().asnumpy(array)
    return np.asarray(array)


def _is_device(name: str) -> bool:
    """Whether a string names a device (``t.to("cuda")``) rather than a dtype (``t.to("float64")``)."""
    try:
        canonical_device(name)
    except ValueError:
        return False
    return True


def to_arguments(args, device=None, dtype=None, what: str = "to") -> tuple:
    """(device, dtype) from PyTorch's forms of ``.to``: (device), (dtype), (device, dtype),
    (tensor: its device and dtype), after the keywords ``device=`` and ``dtype=``."""
    if len(args) > 2:
        raise TypeError(f"{what} takes (device), (dtype), (device, dtype) or (tensor), got {len(args)} "
                        "positional arguments")
    for arg in args:
        if isinstance(arg, Tensor):
            device, dtype = arg.device, arg.dtype
        elif isinstance(arg, Backend) or (isinstance(arg, str) and _is_device(arg)):
            device = arg
        else:
            dtype = arg
    return device, dtype


class Size(tuple):
    """What ``tensor.size()`` returns: a tuple of ints (torch.Size)."""

    def numel(self) -> int:
        return math.prod(self)

    def __repr__(self) -> str:
        return f"td.Size({list(self)})"


class Layout:
    """How a tensor stores its elements (torch.layout): ``td.strided`` (a dense array),
    ``td.sparse_csr`` or ``td.sparse_csc`` (tinygrad_dot.sparse)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"td.{self.name}"


strided, sparse_csr, sparse_csc = Layout("strided"), Layout("sparse_csr"), Layout("sparse_csc")

_DEFAULT_DTYPES = (np.dtype(np.float32), np.dtype(np.int64), np.dtype(np.bool_))  # repr leaves these out


class Tensor:
    """An n-dimensional array on a device ('cpu' or 'cuda:N') with autograd.

    ``array`` is the backend array itself (numpy.ndarray or cupy.ndarray). The
    class body is the whole surface: storage, autograd and conversions first,
    then the ops grouped by kind (arithmetic, comparisons and logic, reductions,
    shape, indexing, in place), each one line calling the op in ops.py that
    holds its forward pass and its vector-Jacobian products.
    """

    __array_priority__ = 1000  # numpy scalars/arrays on the left defer to our operators
    # Class-level defaults: an op result only sets what differs (op overhead matters).
    requires_grad = False
    grad = None
    _parents = None  # ((parent, vjp), ...) for a recorded op result; None for a leaf
    _stamp = 0
    _saved = None  # (op name, ((counter, version, array), ...)): what backward() checks
    # The version counter of this tensor's storage: a one-element list shared by every
    # tensor that aliases the storage (views, detach(), .data). Made on first need
    # (see _shared_counter), so op results that are never saved nor changed pay nothing.
    _counter = None
    layout = strided  # sparse tensors are tinygrad_dot.sparse.SparseTensor, which override what differs
    is_sparse = False

    def __init__(self, data, dtype=None, device=None, requires_grad=False):
        dtype = _check_dtype(dtype)
        if isinstance(data, Tensor):
            backend = get_backend(device if device is not None else data._backend)
            array = backend.asarray(data.array if backend.name == data._backend.name else data._backend.to_numpy(data.array),
                                    dtype=dtype)
            array = array.copy() if array is data.array else array
        elif hasattr(data, "__cuda_array_interface__"):  # GPU data stays on the GPU unless told otherwise
            from .backends.cupy_backend import import_cupy

            data = import_cupy().asarray(data)  # a view of any CUDA array (CuPy, PyTorch, Numba)
            backend = get_backend(device if device is not None else f"cuda:{data.device.id}")
            array = backend.asarray(data, dtype=dtype)
            array = array.copy() if array is data else array
        else:
            backend = get_backend(device)
            array = backend.asarray(_from_data(data, dtype))
        self.array = array
        self._backend = backend
        self.grad = None
        self._parents = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, array, backend: Backend) -> "Tensor":
        """Fast path for op results: no validation, no copy."""
        if isinstance(array, np.generic):
            # NumPy returns scalars from 0-d arithmetic and full reductions; a tensor
            # holds an array, so that in-place updates and .grad of 0-d tensors work.
            array = np.asarray(array)
        t = object.__new__(cls)
        t.array = array
        t._backend = backend
        return t

    def _alias(self, array) -> "Tensor":
        """A tensor outside autograd over (part of) this tensor's storage: it shares the version counter."""
        t = Tensor._wrap(array, self._backend)
        t._counter = self._shared_counter()
        return t

    # ------------------------------------------------------------ pickling and copying
    def __reduce_ex__(self, protocol):
        # Data, device *name* and flags: the backend object is looked up again when loading,
        # so a copy works with every other tensor on that device.
        return _rebuild, (type(self), self.numpy(), self.device, self.dtype.str, self.requires_grad)

    def __deepcopy__(self, memo):
        if self._parents is not None:
            raise RuntimeError("only tensors created explicitly by the user (graph leaves) support deepcopy, "
                               f"this one (shape {self.shape}) is the result of recorded ops; use .detach() first")
        rebuild, args = self.__reduce_ex__(2)
        new = memo[id(self)] = rebuild(*args)
        if self.grad is not None:  # as PyTorch: a deep copy keeps the gradient (a pickle does not)
            new.grad = copy.deepcopy(self.grad, memo)
        return new

    # ------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple:
        return tuple(self.array.shape)

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def device(self) -> str:
        return self._backend.name

    @property
    def xp(self):
        """The array module of this tensor's backend (numpy or cupy)."""
        return self._backend.xp

    @property
    def is_leaf(self) -> bool:
        return self._parents is None

    @property
    def grad_fn(self):
        """The op that computed this tensor (``<MulBackward>``), None for a leaf."""
        return autograd.grad_fn(self)

    @property
    def data(self) -> "Tensor":
        """The same storage as a tensor outside autograd (PyTorch's ``.data``). Unlike
        PyTorch's, it shares the version counter: changing it under a live graph is caught."""
        return self._alias(self.array)

    def size(self, dim=None):
        """The shape (a td.Size), or the length of one dimension, as torch's size()."""
        if dim is None:
            return Size(self.array.shape)
        if not -self.ndim <= dim < self.ndim:
            raise IndexError(f"size({dim}): dimension out of range for a tensor of shape {self.shape}")
        return self.array.shape[dim]

    def numel(self) -> int:
        return self.array.size

    def dim(self) -> int:
        return self.array.ndim

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.array.shape[0]

    # ------------------------------------------------------------ version counters (see autograd)
    @property
    def _version(self) -> int:
        """How many in-place changes this tensor's storage has seen (PyTorch's ``_version``)."""
        return 0 if self._counter is None else self._counter[0]

    def _shared_counter(self) -> list:
        counter = self._counter
        if counter is None:
            counter = self._counter = [0]
        return counter

    def _begin_in_place(self, name: str) -> None:
        """Refuse an in-place change that the tape cannot see (PyTorch refuses it too)."""
        if self.requires_grad and autograd.is_grad_enabled():
            if self._parents is None:
                raise RuntimeError(
                    f"a leaf tensor that requires grad (shape {self.shape}, {self.dtype}) is being used in an "
                    f"in-place operation ({name}); do it under td.no_grad() (as optimizer steps do) or on a "
                    "tensor that does not require grad")
            raise RuntimeError(
                f"in-place {name} on a tensor computed by recorded ops (shape {self.shape}) is not recorded on "
                "the tape and would corrupt the gradient; use the out-of-place form, or td.no_grad()")

    def _bump(self) -> None:
        """Record one in-place change of the storage, so a backward() that saved it can tell."""
        counter = self._counter
        if counter is None:  # (inline _shared_counter: optimizer steps bump every parameter)
            self._counter = [1]
        else:
            counter[0] += 1

    # ------------------------------------------------------------ autograd
    def requires_grad_(self, flag: bool = True) -> "Tensor":
        if flag and self.dtype.kind not in _FLOAT_KINDS:
            raise TypeError(f"only floating-point tensors can require gradients, this one is {self.dtype}")
        if not flag and self._parents is not None:
            raise RuntimeError("requires_grad can only be turned off on leaf tensors; use .detach()")
        self.requires_grad = bool(flag)
        return self

    def detach(self) -> "Tensor":
        return self._alias(self.array)

    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Accumulate the gradient of this tensor into every leaf that requires one."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: no input of the "
                               "computation had requires_grad=True (or it ran under td.no_grad())")
        if gradient is None:
            if self.array.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a scalar output, this one has shape "
                                   f"{self.shape}; pass gradient= of that shape")
            grad = self.xp.ones(self.shape, dtype=self.dtype)
        else:
            if isinstance(gradient, Tensor):
                check_device(self, gradient)
            grad = gradient.array if isinstance(gradient, Tensor) else self._backend.asarray(gradient)
            if tuple(grad.shape) != self.shape:
                raise ValueError(f"backward(): gradient has shape {tuple(grad.shape)}, the tensor has shape {self.shape}")
            grad = grad.astype(self.dtype, copy=False)
        autograd.run_backward(self, grad, retain_graph=retain_graph)

    # ------------------------------------------------------------ host, device and dtype
    def numpy(self) -> np.ndarray:
        """A host copy as a NumPy array (never shares memory with the tensor)."""
        return self._backend.to_numpy(self.array)

    def __array__(self, dtype=None, copy=None):
        array = self.numpy()
        return array if dtype is None else array.astype(dtype, copy=False)

    def item(self):
        if self.array.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.array.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.array.size != 1:
            raise ValueError(f"the truth value of a tensor with shape {self.shape} is ambiguous")
        return bool(self.item())

    def to(self, *args, device=None, dtype=None, non_blocking=False) -> "Tensor":
        """Move and/or cast, as torch's ``to``: ``t.to('cuda')``, ``t.to(td.float64)``,
        ``t.to('cpu', td.float64)``, ``t.to(other)`` (other's device and dtype).
        Differentiable: the gradient flows back to this tensor."""
        device, dtype = to_arguments(args, device, dtype, "Tensor.to")
        out = self
        if device is not None:
            out = ops.to_device(out, get_backend(device))
        if dtype is not None:
            out = ops.cast(out, _check_dtype(dtype))
        return out

    def type(self, dtype=None):
        """The dtype's name (``'td.float32'``) without an argument, else a cast to ``dtype``."""
        return f"td.{self.dtype}" if dtype is None else self.to(dtype=dtype)

    def cpu(self): return self.to("cpu")
    def cuda(self, index: int = 0): return self.to(f"cuda:{index}")
    def float(self): return self.to(dtype=np.float32)
    def double(self): return self.to(dtype=np.float64)
    def half(self): return self.to(dtype=np.float16)
    def long(self): return self.to(dtype=np.int64)
    def int(self): return self.to(dtype=np.int32)
    def bool(self): return self.to(dtype=np.bool_)
    def to_dense(self): return self  # (a sparse tensor's makes the dense one)
    def to_sparse_csr(self): return _sparse().to_sparse_csr(self)

    # ------------------------------------------------------------ the surface
    # Every method below is one call of the op in ops.py that holds its forward pass
    # and its vector-Jacobian products; td.<name>(x, ...) calls the same op.

    # ---------------------------------------------- arithmetic (broadcasting, PyTorch's promotion)
    def __add__(self, other): return ops.add(self, other)
    def __radd__(self, other): return ops.add(other, self)
    def __sub__(self, other): return ops.sub(self, other)
    def __rsub__(self, other): return ops.sub(other, self)
    def __mul__(self, other): return ops.mul(self, other)
    def __rmul__(self, other): return ops.mul(other, self)
    def __truediv__(self, other): return ops.div(self, other)
    def __rtruediv__(self, other): return ops.div(other, self)
    def __mod__(self, other): return ops.remainder(self, other)
    def __rmod__(self, other): return ops.remainder(other, self)
    def __matmul__(self, other): return ops.matmul(self, other)
    def __rmatmul__(self, other): return ops.matmul(other, self)
    def __pow__(self, exponent): return ops.pow(self, exponent)
    def __rpow__(self, base): return ops.rpow(self, base)
    def __neg__(self): return ops.neg(self)
    def __abs__(self): return ops.abs(self)
    def add(self, other): return ops.add(self, other)
    def sub(self, other): return ops.sub(self, other)
    def mul(self, other): return ops.mul(self, other)
    def div(self, other): return ops.div(self, other)
    def pow(self, exponent): return ops.pow(self, exponent)
    def remainder(self, other): return ops.remainder(self, other)
    def matmul(self, other): return ops.matmul(self, other)
    def dot(self, other): return ops.dot(self, other)
    def maximum(self, other): return ops.maximum(self, other)
    def minimum(self, other): return ops.minimum(self, other)
    def neg(self): return ops.neg(self)
    def abs(self): return ops.abs(self)
    def sign(self): return ops.sign(self)
    def exp(self): return ops.exp(self)
    def log(self): return ops.log(self)
    def log1p(self): return ops.log1p(self)
    def sqrt(self): return ops.sqrt(self)
    def relu(self): return ops.relu(self)
    def sigmoid(self): return ops.sigmoid(self)
    def tanh(self): return ops.tanh(self)
    def clamp(self, min=None, max=None): return ops.clamp(self, min, max)  # noqa: A002
    clip = clamp

    # ---------------------------------------------- comparisons and logic (bool results, no gradient)
    def __lt__(self, other): return ops.compare(self, other, operator.lt)
    def __le__(self, other): return ops.compare(self, other, operator.le)
    def __gt__(self, other): return ops.compare(self, other, operator.gt)
    def __ge__(self, other): return ops.compare(self, other, operator.ge)
    def __eq__(self, other): return ops.compare(self, other, operator.eq)
    def __ne__(self, other): return ops.compare(self, other, operator.ne)
    __hash__ = object.__hash__  # identity, as in PyTorch (== is elementwise)
    def __and__(self, other): return ops.bitwise(self, other, operator.and_, "&")
    def __rand__(self, other): return ops.bitwise(self, other, operator.and_, "&")
    def __or__(self, other): return ops.bitwise(self, other, operator.or_, "|")
    def __ror__(self, other): return ops.bitwise(self, other, operator.or_, "|")
    def __xor__(self, other): return ops.bitwise(self, other, operator.xor, "^")
    def __rxor__(self, other): return ops.bitwise(self, other, operator.xor, "^")
    def __invert__(self): return ops.invert(self)
    def logical_not(self): return ops.invert(self.bool())

    # ---------------------------------------------- reductions (dim=/keepdim= or axis=/keepdims=)
    def sum(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return ops.sum(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def mean(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return ops.mean(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
        return ops.var(self, dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
        return ops.std(self, dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims)

    def norm(self, p=2, dim=None, keepdim=False): return ops.norm(self, p, dim, keepdim)

    def max(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return ops.max(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def min(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return ops.min(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def amax(self, dim=None, keepdim=False): return ops.amax(self, dim, keepdim)
    def amin(self, dim=None, keepdim=False): return ops.amin(self, dim, keepdim)
    def argmax(self, dim=None, keepdim=False, *, axis=None): return ops.argmax(self, dim, keepdim, axis=axis)
    def argmin(self, dim=None, keepdim=False, *, axis=None): return ops.argmin(self, dim, keepdim, axis=axis)
    def any(self, dim=None, keepdim=False): return ops.any(self, dim, keepdim)
    def all(self, dim=None, keepdim=False): return ops.all(self, dim, keepdim)

    def logsumexp(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return ops.logsumexp(self, dim, keepdim, axis=axis, keepdims=keepdims)

    def softmax(self, dim=-1, *, axis=None): return ops.softmax(self, dim, axis=axis)
    def log_softmax(self, dim=-1, *, axis=None): return ops.log_softmax(self, dim, axis=axis)

    # ---------------------------------------------- shape
    @property
    def T(self): return ops.permute(self)  # noqa: N802
    def reshape(self, *shape): return ops.reshape(self, *shape)
    def view(self, *shape): return ops.reshape(self, *shape)
    def permute(self, *dims): return ops.permute(self, *dims)
    def transpose(self, dim0, dim1): return ops.transpose(self, dim0, dim1)
    def t(self): return ops.t(self)
    def squeeze(self, dim=None): return ops.squeeze(self, dim)
    def unsqueeze(self, dim): return ops.unsqueeze(self, dim)
    def flatten(self, start_dim=0, end_dim=-1): return ops.flatten(self, start_dim, end_dim)
    def expand(self, *sizes): return ops.expand(self, *sizes)
    def expand_as(self, other): return ops.expand(self, other.shape)
    def repeat(self, *repeats): return ops.repeat(self, *repeats)
    def clone(self): return ops.clone(self)

    # ---------------------------------------------- indexing (basic, integer-array and bool-mask)
    def __getitem__(self, index): return ops.getitem(self, index)
    def gather(self, dim, index): return ops.gather(self, dim, index)
    def scatter_add(self, dim, index, src): return ops.scatter_add(self, dim, index, src)
    def masked_fill(self, mask, value): return ops.masked_fill(self, mask, value)

    # ---------------------------------------------- in place: outside the tape, counted by _bump
    def __setitem__(self, index, value): ops.setitem(self, index, value)
    def __iadd__(self, other): return ops.in_place(self, "+=", operator.iadd, other)
    def __isub__(self, other): return ops.in_place(self, "-=", operator.isub, other)
    def __imul__(self, other): return ops.in_place(self, "*=", operator.imul, other)
    def __itruediv__(self, other): return ops.in_place(self, "/=", operator.itruediv, other)
    def add_(self, other, *, alpha=1): return ops.add_(self, other, alpha)
    def sub_(self, other, *, alpha=1): return ops.sub_(self, other, alpha)
    def mul_(self, other): return ops.mul_(self, other)
    def div_(self, other): return ops.div_(self, other)
    def clamp_(self, min=None, max=None): return ops.clamp_(self, min, max)  # noqa: A002
    def zero_(self): return ops.zero_(self)
    def fill_(self, value): return ops.fill_(self, value)
    def copy_(self, src): return ops.copy_(self, src)

    # ------------------------------------------------------------ printing
    def __repr__(self) -> str:
        values = self.numpy()
        if values.dtype.kind == "f":
            values = values + 0.0  # -0.0 + 0.0 is +0.0: a zero never prints as "-0."
        body = np.array2string(values, separator=", ", prefix="tensor(")
        extras = []
        if self.dtype not in _DEFAULT_DTYPES:
            extras.append(f"dtype=td.{self.dtype}")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self._parents is not None:
            extras.append(f"grad_fn={self.grad_fn!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"tensor({body}{''.join(', ' + e for e in extras)})"


def _rebuild(cls, data, device: str, dtype: str, requires_grad: bool) -> Tensor:
    """The inverse of Tensor.__reduce_ex__ (module level, so that pickle can find it)."""
    backend = get_backend(device)
    t = cls._wrap(backend.asarray(np.asarray(data, dtype=np.dtype(dtype))), backend)
    return t.requires_grad_(requires_grad) if requires_grad else t


def tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Build a tensor: Python floats become float32, NumPy arrays keep their dtype; a SciPy
    (or cupyx) sparse matrix becomes a CSR tensor (tinygrad_dot.sparse)."""
    if _sparse_input(data):
        return _sparse().from_scipy(data, dtype=dtype, device=device, requires_grad=requires_grad)
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A CPU tensor that shares memory with a NumPy array (torch.from_numpy)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy takes a numpy.ndarray, got {type(array).__name__}")
    _check_dtype(array.dtype)
    return Tensor._wrap(array, get_backend("cpu"))


def _sparse_input(data) -> bool:
    return hasattr(data, "tocsr") and hasattr(data, "nnz")  # SciPy's or cupyx's, without importing either


def _sparse():
    from . import sparse  # (sparse builds on Tensor)

    return sparse


from . import ops  # noqa: E402  (ops builds on Tensor; the methods above look it up when called)
