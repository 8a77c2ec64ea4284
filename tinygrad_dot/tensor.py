"""The Tensor: an array on a device, plus what autograd needs to know about it."""
from __future__ import annotations

import copy
import numbers

import numpy as np

from . import autograd, random
from .backends import Backend, canonical_device, get_backend

_FLOAT_KINDS = "f"
_NUMERIC_KINDS = "biuf"


def _host_array(data, dtype):
    """Python data or a NumPy array -> a NumPy array with tensor dtype rules:
    Python floats become float32 (as in PyTorch); arrays keep their dtype."""
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


class Tensor:
    """An n-dimensional array on a device ('cpu' or 'cuda:N') with autograd.

    ``array`` is the backend array itself (numpy.ndarray or cupy.ndarray).
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
            array = backend.asarray(_host_array(data, dtype))
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
    def size(self) -> int:
        return int(self.array.size)

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
    def data(self) -> "Tensor":
        """The same storage as a tensor outside autograd (PyTorch's ``.data``). Unlike
        PyTorch's, it shares the version counter: changing it under a live graph is caught."""
        return self._alias(self.array)

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

    def numel(self) -> int:
        return self.size

    def dim(self) -> int:
        return self.ndim

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.array.shape[0]

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
            if self.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a scalar output, this one has shape "
                                   f"{self.shape}; pass gradient= of that shape")
            grad = self.xp.ones(self.shape, dtype=self.dtype)
        else:
            grad = gradient.array if isinstance(gradient, Tensor) else self._backend.asarray(gradient)
            if isinstance(gradient, Tensor) and gradient._backend.name != self._backend.name:
                raise RuntimeError(f"backward(): gradient is on {gradient.device}, the tensor on {self.device}")
            if tuple(grad.shape) != self.shape:
                raise ValueError(f"backward(): gradient has shape {tuple(grad.shape)}, the tensor has shape {self.shape}")
            grad = grad.astype(self.dtype, copy=False)
        autograd.run_backward(self, grad, retain_graph=retain_graph)

    # ------------------------------------------------------------ host / device
    def numpy(self) -> np.ndarray:
        """A host copy as a NumPy array (never shares memory with the tensor)."""
        return self._backend.to_numpy(self.array)

    def __array__(self, dtype=None, copy=None):
        array = self.numpy()
        return array if dtype is None else array.astype(dtype, copy=False)

    def item(self):
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.array.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def to(self, device=None, dtype=None) -> "Tensor":
        """Move to a device and/or cast: ``t.to('cuda')``, ``t.to(np.float64)``, ``t.to('cpu', 'float64')``.
        Differentiable: the gradient flows back to this tensor."""
        if device is not None and not isinstance(device, Backend):
            try:
                canonical_device(device)
            except ValueError:
                if dtype is None:  # t.to(dtype)
                    device, dtype = None, device
                else:
                    raise
        out = self
        if device is not None:
            target = get_backend(device)
            if target.name != self._backend.name:
                with target.scope():
                    array = target.asarray(self.array)
                source = self._backend
                out = autograd.record(Tensor, array, target, (self, source.asarray))
        if dtype is not None:
            from . import ops

            out = ops.cast(out, _check_dtype(dtype))
        return out

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Tensor":
        return self.to(f"cuda:{index}")

    def float(self) -> "Tensor":
        return self.to(dtype=np.float32)

    def double(self) -> "Tensor":
        return self.to(dtype=np.float64)

    # ------------------------------------------------------------ in place (outside autograd)
    def zero_(self) -> "Tensor":
        return self._fill(0, "zero_")

    def fill_(self, value) -> "Tensor":
        return self._fill(value, "fill_")

    def _fill(self, value, name: str) -> "Tensor":
        self._begin_in_place(name)
        self.array[...] = value
        self._bump()
        return self

    def copy_(self, src) -> "Tensor":
        self._begin_in_place("copy_")
        src = src if isinstance(src, Tensor) else Tensor(src)
        array = src.array if src._backend.name == self._backend.name else self._backend.asarray(src.numpy())
        try:
            self.array[...] = array
        except ValueError:
            raise ValueError(f"copy_: cannot copy shape {src.shape} into shape {self.shape}") from None
        self._bump()
        return self

    # ------------------------------------------------------------ printing
    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        extras = []
        if self.dtype != np.float32:
            extras.append(f"dtype={self.dtype}")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.requires_grad:
            extras.append("requires_grad=True")
        return f"tensor({body}{''.join(', ' + e for e in extras)})"

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError(f"the truth value of a tensor with shape {self.shape} is ambiguous")
        return bool(self.item())


def _rebuild(cls, data, device: str, dtype: str, requires_grad: bool) -> Tensor:
    """The inverse of Tensor.__reduce_ex__ (module level, so that pickle can find it)."""
    backend = get_backend(device)
    t = cls._wrap(backend.asarray(np.asarray(data, dtype=np.dtype(dtype))), backend)
    return t.requires_grad_(requires_grad) if requires_grad else t


def tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Build a tensor: Python floats become float32, NumPy arrays keep their dtype."""
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def _shape_args(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if not all(isinstance(n, numbers.Integral) and n >= 0 for n in shape):
        raise ValueError(f"a shape is non-negative integers, got {shape}")
    return tuple(int(n) for n in shape)


def _filled(shape, value, dtype, device, requires_grad):
    backend = get_backend(device)
    dtype = _check_dtype(dtype) or np.dtype(np.float32)
    with backend.scope():
        array = backend.xp.full(_shape_args(shape), value, dtype=dtype)
    return Tensor._wrap(array, backend).requires_grad_(requires_grad)


def zeros(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(shape, 0, dtype, device, requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(shape, 1, dtype, device, requires_grad)


def zeros_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A CPU tensor that shares memory with a NumPy array (torch.from_numpy)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy takes a numpy.ndarray, got {type(array).__name__}")
    _check_dtype(array.dtype)
    return Tensor._wrap(array, get_backend("cpu"))


def full(*shape, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    if dtype is None and isinstance(fill_value, bool):
        dtype = np.bool_
    elif dtype is None and isinstance(fill_value, numbers.Integral):
        dtype = np.int64
    return _filled(shape, fill_value, dtype, device, requires_grad)


def arange(start, stop=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Evenly spaced values in [start, stop): int64 for integer arguments, else float32."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        integral = all(isinstance(v, numbers.Integral) for v in (start, stop, step))
        dtype = np.int64 if integral else np.float32
    return Tensor(np.arange(start, stop, step, dtype=_check_dtype(dtype)), device=device,
                  requires_grad=requires_grad)


def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return Tensor(np.eye(n, m, dtype=_check_dtype(dtype) or np.float32), device=device, requires_grad=requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False, seed=None, generator=None) -> Tensor:
    """Standard normal samples, drawn on the host by a NumPy generator so that a
    seed gives the same numbers on every device (default: td.manual_seed's generator)."""
    rng = random.generator(generator, seed)
    dtype = _check_dtype(dtype) or np.dtype(np.float32)
    if dtype.kind != "f":
        raise TypeError(f"randn draws floats, got dtype {dtype}")
    sample = rng.standard_normal(_shape_args(shape)).astype(dtype)
    return Tensor(sample, device=device, requires_grad=requires_grad)
