"""Differentiable ops. Each one is its forward pass and, beside it, the
vector-Jacobian product of each input: ``vjp(g)`` takes the gradient of the
output and returns the gradient of that input. Math goes through the inputs'
backend (``x.xp`` is numpy or cupy), so every op runs on every device.
"""
from __future__ import annotations

import math
import numbers
import operator

import numpy as np  # dtypes only: the math goes through each tensor's backend

from .autograd import record, unbroadcast
from .tensor import Tensor

# ----------------------------------------------------------------- dtypes
# Type promotion is PyTorch's (README, "dtype promotion"): the higher category
# (bool < integer < float) wins; within a category a tensor with dimensions
# outranks a 0-d tensor, which outranks a Python scalar; so float32 combined with
# int64 data or a Python float stays float32. Integers divide, average and
# compute losses in float32 (PyTorch's default float), never a silent float64.

_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}
_FLOAT32 = np.dtype(np.float32)
# Half-precision reductions accumulate in float32 and return the input's dtype
# (NumPy's mean and PyTorch do the same); bfloat16 goes here when it is supported.
_WIDER = {np.dtype(np.float16): _FLOAT32}


def _result_dtype(a: Tensor, b: Tensor):
    """PyTorch's result dtype for two tensors of different dtypes."""
    ca, cb = _CATEGORY[a.array.dtype.kind], _CATEGORY[b.array.dtype.kind]
    if ca != cb:
        return (a if ca > cb else b).array.dtype
    if (a.ndim == 0) != (b.ndim == 0):
        return (b if a.ndim == 0 else a).array.dtype
    return np.result_type(a.array.dtype, b.array.dtype)


def _float_dtypes(dtype):
    """(accumulator or None, result) dtypes of an op with a floating result (mean,
    var, softmax, the losses): float16 accumulates in float32; integers give float32."""
    if dtype.kind == "f":
        return _WIDER.get(dtype), dtype
    return _FLOAT32, _FLOAT32


def _narrow(array, dtype):
    return array if array.dtype == dtype else array.astype(dtype)


# ----------------------------------------------------------------- helpers


def _as_tensor(x, like: Tensor) -> Tensor:
    if isinstance(x, Tensor):
        if x._backend.name != like._backend.name:  # a device is its name (Backend.__eq__)
            raise RuntimeError(
                f"expected all tensors on one device, but found {like.device} and {x.device}; "
                f"move one with .to({like.device!r})"
            )
        return x
    if isinstance(x, numbers.Number) and not isinstance(x, bool):
        # A Python scalar takes the tensor's dtype unless its category is higher:
        # a float with an integer tensor is float32, an int with a bool tensor int64.
        kind = like.array.dtype.kind
        if kind == "f" or (kind in "iu" and isinstance(x, numbers.Integral)):
            dtype = like.array.dtype
        else:
            dtype = None if isinstance(x, numbers.Integral) else _FLOAT32
        return Tensor._wrap(like._backend.asarray(x, dtype=dtype), like._backend)
    if like._backend.is_array(x):
        return Tensor._wrap(x, like._backend)
    if isinstance(x, (list, tuple)):
        return Tensor(x, device=like._backend)
    raise TypeError(f"unsupported operand of type {type(x).__name__} for a tensor op; use a tensor or a number")


def _operands(a, b, promote: bool = True):
    """Two operands as tensors on one device (array-likes become tensors), cast to
    their common dtype by PyTorch's promotion rule (a recorded cast: gradients flow)."""
    if isinstance(a, Tensor):
        b = _as_tensor(b, a)
    elif isinstance(b, Tensor):
        a = _as_tensor(a, b)
    else:
        a = Tensor(a)
        b = _as_tensor(b, a)
    if promote and a.array.dtype != b.array.dtype:
        dtype = _result_dtype(a, b)
        a, b = cast(a, dtype), cast(b, dtype)
    return a, b


def _broadcasting(op_name, fn, a, b):
    try:
        return fn(a.array, b.array)
    except ValueError:
        raise ValueError(
            f"{op_name}: shapes {a.shape} and {b.shape} cannot be broadcast together "
            "(trailing dimensions must match or be 1)"
        ) from None


def _expand_reduced(g, shape, axis, keepdims):
    """Undo a reduction's shape change so ``g`` broadcasts against the input."""
    if axis is not None and not keepdims:
        axes = (axis,) if isinstance(axis, int) else axis
        for ax in sorted(a % len(shape) for a in axes):
            g = g.reshape(g.shape[:ax] + (1,) + g.shape[ax:])
    return g


def _axis_keepdims(axis, keepdims, dim, keepdim):
    """NumPy's axis/keepdims, or PyTorch's dim/keepdim spelling of them."""
    if dim is not None:
        if axis is not None:
            raise TypeError("pass axis= or dim=, not both")
        axis = dim
    return axis, bool(keepdims or keepdim)


def _check_axis(x: Tensor, axis):
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    for ax in axes:
        if not -x.ndim <= ax < max(x.ndim, 1):
            raise ValueError(f"axis {ax} is out of range for a tensor of shape {x.shape}")
    return axis if isinstance(axis, numbers.Integral) else axes


# ----------------------------------------------------------------- elementwise, binary


def add(a, b):
    a, b = _operands(a, b)
    return record(Tensor, _broadcasting("add", lambda x, y: x + y, a, b), a._backend,
                  (a, lambda g: unbroadcast(g, a.shape)),
                  (b, lambda g: unbroadcast(g, b.shape)))


def sub(a, b):
    a, b = _operands(a, b)
    return record(Tensor, _broadcasting("sub", lambda x, y: x - y, a, b), a._backend,
                  (a, lambda g: unbroadcast(g, a.shape)),
                  (b, lambda g: unbroadcast(-g, b.shape)))


def mul(a, b):
    a, b = _operands(a, b)
    return record(Tensor, _broadcasting("mul", lambda x, y: x * y, a, b), a._backend,
                  (a, lambda g: unbroadcast(g * b.array, a.shape)),
                  (b, lambda g: unbroadcast(g * a.array, b.shape)),
                  op="mul", saved=(a, b))


def div(a, b):
    a, b = _operands(a, b)
    if a.array.dtype.kind != "f":  # true division of integers is float32, as in PyTorch
        a, b = cast(a, _FLOAT32), cast(b, _FLOAT32)
    out = _broadcasting("div", lambda x, y: x / y, a, b)
    return record(Tensor, out, a._backend,
                  (a, lambda g: unbroadcast(g / b.array, a.shape)),
                  (b, lambda g: unbroadcast(-g * out / b.array, b.shape)),
                  op="div", saved=(b,), saves_output=True)


# ----------------------------------------------------------------- elementwise, unary


def neg(x: Tensor):
    return record(Tensor, -x.array, x._backend, (x, lambda g: -g))


def power(x: Tensor, exponent):
    if isinstance(exponent, Tensor) or not isinstance(exponent, numbers.Real) or isinstance(exponent, bool):
        raise TypeError(f"tensor ** exponent needs a real Python number exponent, got {type(exponent).__name__}")
    if exponent == 2:  # the common case (squared errors), without a generic pow
        return record(Tensor, x.array * x.array, x._backend, (x, lambda g: g * (2 * x.array)),
                      op="pow", saved=(x,))
    return record(Tensor, x.array ** exponent, x._backend,
                  (x, lambda g: g * (exponent * x.array ** (exponent - 1))), op="pow", saved=(x,))


def exp(x: Tensor):
    out = x.xp.exp(x.array)
    return record(Tensor, out, x._backend, (x, lambda g: g * out), op="exp", saves_output=True)


def log(x: Tensor):
    return record(Tensor, x.xp.log(x.array), x._backend, (x, lambda g: g / x.array), op="log", saved=(x,))


def relu(x: Tensor):
    mask = x.array > 0
    return record(Tensor, x.array * mask, x._backend, (x, lambda g: g * mask))


def sigmoid(x: Tensor):
    # 0.5 * (1 + tanh(x / 2)) never overflows, unlike 1 / (1 + exp(-x)).
    out = 0.5 * (1 + x.xp.tanh(0.5 * x.array))
    return record(Tensor, out, x._backend, (x, lambda g: g * out * (1 - out)), op="sigmoid", saves_output=True)


def tanh(x: Tensor):
    out = x.xp.tanh(x.array)
    return record(Tensor, out, x._backend, (x, lambda g: g * (1 - out * out)), op="tanh", saves_output=True)


def sqrt(x: Tensor):
    out = x.xp.sqrt(x.array)
    return record(Tensor, out, x._backend, (x, lambda g: g * 0.5 / out), op="sqrt", saves_output=True)


def clamp(x: Tensor, min=None, max=None):
    if min is None and max is None:
        raise ValueError("clamp needs min, max or both")
    out = x.xp.clip(x.array, min, max)
    inside = out == x.array  # the gradient passes where the value was not clipped
    return record(Tensor, out, x._backend, (x, lambda g: g * inside))


def rpow(x: Tensor, base):
    """base ** x for a Python number base."""
    if not isinstance(base, numbers.Real) or isinstance(base, bool):
        return NotImplemented
    out = x.xp.power(_as_tensor(base, x).array, x.array)
    return record(Tensor, out, x._backend, (x, lambda g: g * out * math.log(base)), op="rpow", saves_output=True)


def abs_(x: Tensor):
    return record(Tensor, x.xp.abs(x.array), x._backend, (x, lambda g: g * x.xp.sign(x.array)),
                  op="abs", saved=(x,))


def cast(x: Tensor, dtype):
    if x.array.dtype == dtype:
        return x
    if dtype.kind != "f":  # integers and bools carry no gradient: the cast cuts the graph (as in PyTorch)
        return Tensor._wrap(x.array.astype(dtype), x._backend)
    return record(Tensor, x.array.astype(dtype), x._backend, (x, lambda g: g.astype(x.dtype)))


# ----------------------------------------------------------------- shape


def reshape(x: Tensor, *shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    try:
        out = x.array.reshape(shape)
    except (ValueError, TypeError):
        raise ValueError(f"cannot reshape a tensor of shape {x.shape} (size {x.size}) into shape {shape}") from None
    return record(Tensor, out, x._backend, (x, lambda g: g.reshape(x.shape)), view_of=x)


def permute(x: Tensor, *axes):
    """Reorder axes (reverse them when none are given), as numpy.transpose."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    try:
        axes = tuple(range(x.ndim))[::-1] if not axes else tuple(a % x.ndim for a in axes)
    except (TypeError, ZeroDivisionError):
        raise ValueError(f"axes {axes} are not a permutation of the {x.ndim} axes of shape {x.shape}") from None
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"axes {axes} are not a permutation of the {x.ndim} axes of shape {x.shape}")
    inverse = tuple(sorted(range(x.ndim), key=axes.__getitem__))
    return record(Tensor, x.array.transpose(axes), x._backend, (x, lambda g: g.transpose(inverse)), view_of=x)


def transpose(x: Tensor, dim0: int, dim1: int):
    """Swap two axes, as torch.transpose (numpy.swapaxes)."""
    axes = list(range(x.ndim))
    try:
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
    except IndexError:
        raise ValueError(f"transpose({dim0}, {dim1}): axis out of range for shape {x.shape}") from None
    return permute(x, axes)


def t(x: Tensor):
    """The transpose of a tensor of at most 2 dimensions, as torch.t."""
    if x.ndim > 2:
        raise ValueError(f"t() takes a tensor of at most 2 dimensions, got shape {x.shape}; use transpose or permute")
    return permute(x)


def squeeze(x: Tensor, dim=None):
    dims = range(x.ndim) if dim is None else [dim % max(x.ndim, 1)] if isinstance(dim, int) else [d % x.ndim for d in dim]
    shape = tuple(n for i, n in enumerate(x.shape) if not (i in dims and n == 1))
    return reshape(x, shape)


def unsqueeze(x: Tensor, dim: int):
    if not -x.ndim - 1 <= dim <= x.ndim:
        raise ValueError(f"unsqueeze: dim {dim} is out of range for shape {x.shape}")
    dim = dim % (x.ndim + 1)
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1):
    if x.ndim == 0:
        return reshape(x, 1)
    start, end = start_dim % x.ndim, end_dim % x.ndim
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {x.shape}")
    return reshape(x, x.shape[:start] + (-1,) + x.shape[end + 1:])


def clone(x: Tensor):
    return record(Tensor, x.array.copy(), x._backend, (x, lambda g: g))


def getitem(x: Tensor, index):
    index_tensors = ()  # the vjp scatters through these arrays: changing them would misplace gradients
    if isinstance(index, Tensor):
        index_tensors, index = (index,), index.array
    elif isinstance(index, tuple):
        index_tensors = tuple(i for i in index if isinstance(i, Tensor))
        index = tuple(i.array if isinstance(i, Tensor) else i for i in index)
    try:
        out = x.array[index]
    except IndexError as exc:
        raise IndexError(f"index {index!r} is invalid for a tensor of shape {x.shape}: {exc}") from None

    def vjp(g):
        full = x.xp.zeros(x.shape, dtype=g.dtype)
        x._backend.scatter_add(full, index, g)
        return full

    return record(Tensor, out, x._backend, (x, vjp), op="getitem", saved=index_tensors, view_of=x)


# ----------------------------------------------------------------- reductions


def _spread(x: Tensor, g):
    """``g`` broadcast to the shape of ``x`` as a full array (cheaper than xp.broadcast_to)."""
    out = x.xp.empty(x.array.shape, dtype=g.dtype)
    out[...] = g
    return out


def sum_(x: Tensor, axis=None, keepdims=False, *, dim=None, keepdim=None):
    axis, keepdims = _axis_keepdims(axis, keepdims, dim, keepdim)
    axis = _check_axis(x, axis)
    wide = _WIDER.get(x.array.dtype)
    out = x.array.sum(axis=axis, keepdims=keepdims, dtype=wide)
    if wide is not None:
        out = out.astype(x.array.dtype)
    return record(Tensor, out, x._backend,
                  (x, lambda g: _spread(x, _expand_reduced(g, x.shape, axis, keepdims))))


def _reduced_count(x: Tensor, axis) -> int:
    if axis is None:
        return x.size
    count = 1
    for ax in (axis,) if isinstance(axis, numbers.Integral) else axis:
        count *= x.shape[ax]
    return count


def mean(x: Tensor, axis=None, keepdims=False, *, dim=None, keepdim=None):
    axis, keepdims = _axis_keepdims(axis, keepdims, dim, keepdim)
    axis = _check_axis(x, axis)
    wide, dtype = _float_dtypes(x.array.dtype)
    total = x.array.sum(axis=axis, keepdims=keepdims, dtype=wide)
    count = _reduced_count(x, axis)
    scale = 1.0 / count if count else float("nan")  # the mean of nothing is NaN, as in NumPy
    return record(Tensor, _narrow(total * scale, dtype), x._backend,
                  (x, lambda g: _spread(x, _expand_reduced(g * scale, x.shape, axis, keepdims))))


def var(x: Tensor, axis=None, keepdims=False, *, correction: int = 1, dim=None, keepdim=None):
    """Variance with PyTorch's default ``correction=1`` (unbiased); ``correction=0``
    is NumPy's. Fewer than ``correction + 1`` values give NaN."""
    axis, keepdims = _axis_keepdims(axis, keepdims, dim, keepdim)
    axis = _check_axis(x, axis)
    wide, dtype = _float_dtypes(x.array.dtype)
    a = x.array if wide is None else x.array.astype(wide)
    count = _reduced_count(x, axis)
    centered = a - a.sum(axis=axis, keepdims=True) * (1.0 / count if count else float("nan"))
    scale = 1.0 / (count - correction) if count > correction else float("nan")
    out = (centered * centered).sum(axis=axis, keepdims=keepdims) * scale
    return record(Tensor, _narrow(out, dtype), x._backend,
                  (x, lambda g: _narrow(_expand_reduced(g, x.shape, axis, keepdims) * (2 * scale) * centered,
                                        x.array.dtype)))


def _extreme(reducer: str):
    def extreme(x: Tensor, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_keepdims(axis, keepdims, dim, keepdim)
        axis = _check_axis(x, axis)
        if _reduced_count(x, axis) == 0:
            raise ValueError(f"{reducer}() of an empty selection: shape {x.shape}, axis {axis}")
        out = getattr(x.array, reducer)(axis=axis, keepdims=keepdims)

        def vjp(g):
            # Ties share the gradient equally, so it sums to g.
            hit = x.array == _expand_reduced(out, x.shape, axis, keepdims)
            share = hit / hit.sum(axis=axis, keepdims=True)
            return share * _expand_reduced(g, x.shape, axis, keepdims)

        return record(Tensor, out, x._backend, (x, vjp), op=reducer, saved=(x,), saves_output=True)

    extreme.__name__ = reducer
    return extreme


max_ = _extreme("max")
min_ = _extreme("min")


# logsumexp, log_softmax and softmax compute in ``wide`` (float32 for float16 input)
# and return the input's dtype; their vjps work in ``wide`` too.


def logsumexp(x: Tensor, axis=None, keepdims=False, *, dim=None, keepdim=None):
    axis, keepdims = _axis_keepdims(axis, keepdims, dim, keepdim)
    axis = _check_axis(x, axis)
    xp = x.xp
    wide, dtype = _float_dtypes(x.array.dtype)
    a = x.array if wide is None else x.array.astype(wide)
    peak = a.max(axis=axis, keepdims=True)
    peak = xp.where(xp.isfinite(peak), peak, 0)  # all -inf rows stay -inf, not NaN
    lse = xp.log(xp.exp(a - peak).sum(axis=axis, keepdims=True)) + peak
    out = lse if keepdims else lse.reshape(()) if axis is None else lse.squeeze(axis=axis)
    return record(Tensor, _narrow(out, dtype), x._backend,
                  (x, lambda g: _narrow(_expand_reduced(g, x.shape, axis, keepdims) * xp.exp(a - lse), dtype)),
                  op="logsumexp", saved=(x,))


def log_softmax(x: Tensor, axis=-1, *, dim=None):
    axis = _check_axis(x, axis if dim is None else dim)
    xp = x.xp
    wide, dtype = _float_dtypes(x.array.dtype)
    a = x.array if wide is None else x.array.astype(wide)
    shifted = a - a.max(axis=axis, keepdims=True)
    out = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
    return record(Tensor, _narrow(out, dtype), x._backend,
                  (x, lambda g: _narrow(g - xp.exp(out) * g.sum(axis=axis, keepdims=True, dtype=wide), dtype)),
                  op="log_softmax", saves_output=True)


def softmax(x: Tensor, axis=-1, *, dim=None):
    axis = _check_axis(x, axis if dim is None else dim)
    wide, dtype = _float_dtypes(x.array.dtype)
    a = x.array if wide is None else x.array.astype(wide)
    shifted = a - a.max(axis=axis, keepdims=True)
    e = x.xp.exp(shifted)
    out = e / e.sum(axis=axis, keepdims=True)
    return record(Tensor, _narrow(out, dtype), x._backend,
                  (x, lambda g: _narrow(out * (g - (g * out).sum(axis=axis, keepdims=True)), dtype)),
                  op="softmax", saves_output=True)


# ----------------------------------------------------------------- products


def _swap_last(a):
    return a.swapaxes(-1, -2)


def matmul(a, b, *, kernel: str = "auto"):
    """numpy.matmul semantics: 1-D operands are promoted and the added axis
    removed; leading (batch) axes broadcast. Gradients: dA = G B^T, dB = A^T G,
    each summed back over broadcast batch axes."""
    a, b = _operands(a, b, promote=False)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least 1 dimension, got shapes {a.shape} and {b.shape}; "
                         "use * to multiply by a scalar")
    if a.array.dtype != b.array.dtype:
        # As in PyTorch (and nn.Linear): a product never promotes silently, since a float64
        # result doubles the memory and, on a GPU, halves the speed of everything after it.
        raise TypeError(f"matmul: the operands have different dtypes, {a.dtype} (shape {a.shape}) and "
                        f"{b.dtype} (shape {b.shape}); convert one, e.g. b.to(td.{a.dtype})")
    a2 = a.array[None, :] if a.ndim == 1 else a.array
    b2 = b.array[:, None] if b.ndim == 1 else b.array
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
                         f"{a2.shape[-1]} (last dim of the first) != {b2.shape[-2]} "
                         f"({'only' if b.ndim == 1 else 'second-to-last'} dim of the second)")
    batch_a, batch_b = a2.shape[:-2], b2.shape[:-2]
    for da, db in zip(batch_a[::-1], batch_b[::-1]):
        if da != db and da != 1 and db != 1:
            raise ValueError(f"matmul: batch dimensions of shapes {a.shape} and {b.shape} cannot be broadcast")
    out = a._backend.matmul(a2, b2, kernel=kernel)
    out_shape = out.shape
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]
    mm = a._backend.matmul

    def full(g):  # restore the promoted axes that the output dropped
        return g.reshape(out_shape)

    return record(Tensor, out, a._backend,
                  (a, lambda g: unbroadcast(mm(full(g), _swap_last(b2), kernel=kernel), a2.shape).reshape(a.shape)),
                  (b, lambda g: unbroadcast(mm(_swap_last(a2), full(g), kernel=kernel), b2.shape).reshape(b.shape)),
                  op="matmul", saved=(a, b))


def dot(a, b):
    """numpy.dot for inputs of up to 2 dimensions."""
    a, b = _operands(a, b)
    if a.ndim > 2 or b.ndim > 2:
        raise ValueError(f"td.dot takes inputs of up to 2 dimensions, got shapes {a.shape} and {b.shape}; "
                         "use td.matmul for batched products")
    if a.ndim == 0 or b.ndim == 0:
        return mul(a, b)
    if a.shape[-1] != b.shape[0]:
        raise ValueError(f"dot: shapes {a.shape} and {b.shape} not aligned: "
                         f"{a.shape[-1]} (dim {a.ndim - 1}) != {b.shape[0]} (dim 0)")
    return matmul(a, b)


# ----------------------------------------------------------------- selection and joining


def where(condition, a, b):
    """Elements of a where condition holds, else of b (broadcasting all three)."""
    a, b = _operands(a, b)
    cond = condition.array if isinstance(condition, Tensor) else a._backend.asarray(condition)
    xp = a.xp
    out = xp.where(cond, a.array, b.array)
    return record(Tensor, out, a._backend,
                  (a, lambda g: unbroadcast(xp.where(cond, g, 0), a.shape)),
                  (b, lambda g: unbroadcast(xp.where(cond, 0, g), b.shape)),
                  op="where", saved=(condition,) if isinstance(condition, Tensor) else ())


def _join(tensors, dim, join: str, part):
    """cat and stack: ``xp.<join>`` (concatenate or stack) the arrays along
    ``dim``; input i's gradient is the slice ``part(i, tensors)`` of g on that axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{join} needs at least one tensor")
    first = tensors[0] if isinstance(tensors[0], Tensor) else Tensor(tensors[0])
    tensors = [first] + [t if isinstance(t, Tensor) else Tensor(t, device=first.device) for t in tensors[1:]]
    for t in tensors[1:]:
        _as_tensor(t, first)  # one device
    try:
        out = getattr(first.xp, join)([t.array for t in tensors], axis=dim)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"{join} along dim {dim}: shapes {[t.shape for t in tensors]} do not fit ({exc})") from None
    lead = (slice(None),) * (dim % out.ndim)

    def vjp(i):
        index = lead + (part(i, tensors),)
        return lambda g: g[index]

    return record(Tensor, out, first._backend, *[(t, vjp(i)) for i, t in enumerate(tensors)])


def cat(tensors, dim: int = 0):
    """Join tensors along an existing axis (torch.cat / numpy.concatenate)."""
    def part(i, tensors):
        start = sum(t.shape[dim] for t in tensors[:i])
        return slice(start, start + tensors[i].shape[dim])

    return _join(tensors, dim, "concatenate", part)


def stack(tensors, dim: int = 0):
    """Join tensors along a new axis (torch.stack / numpy.stack)."""
    return _join(tensors, dim, "stack", lambda i, tensors: i)


# ----------------------------------------------------------------- in-place updates (outside the tape)
# Each one is refused on a tensor that requires grad while grad mode is on, and
# bumps the storage's version counter (see autograd) once it has changed it.


def _in_place(name, update):
    def method(self, other):
        self._begin_in_place(name)
        value = _as_tensor(other, self)
        try:
            self.array = update(self.array, value.array)  # NumPy's and CuPy's in-place operators return self.array
        except ValueError:
            raise ValueError(f"in-place {name}: shape {value.shape} cannot be broadcast to {self.shape}") from None
        except TypeError:
            raise TypeError(f"in-place {name}: a {value.dtype} result cannot be stored in a {self.dtype} tensor") from None
        self._bump()
        return self
    method.__name__ = name
    return method


def setitem(self, index, value):
    self._begin_in_place("item assignment")
    if isinstance(index, Tensor):
        index = index.array
    value = _as_tensor(value, self)
    try:
        self.array[index] = value.array
    except (ValueError, IndexError, TypeError) as exc:
        raise type(exc)(f"cannot assign shape {value.shape} to index {index!r} of a tensor of shape {self.shape}: {exc}") from None
    self._bump()


# ----------------------------------------------------------------- comparisons (no gradient)


def _compare(fn):
    def compare(a, b):
        if not isinstance(b, (Tensor, numbers.Number)) and not a._backend.is_array(b):
            return NotImplemented  # so `t == None` is False, as in PyTorch
        a, b = _operands(a, b)
        return Tensor._wrap(_broadcasting("comparison", fn, a, b), a._backend)
    return compare


# ----------------------------------------------------------------- Tensor methods and operators

Tensor.__add__ = add
Tensor.__radd__ = lambda self, other: add(other, self)
Tensor.__sub__ = sub
Tensor.__rsub__ = lambda self, other: sub(other, self)
Tensor.__mul__ = mul
Tensor.__rmul__ = lambda self, other: mul(other, self)
Tensor.__truediv__ = div
Tensor.__rtruediv__ = lambda self, other: div(other, self)
Tensor.__neg__ = neg
Tensor.__pow__ = power
Tensor.__matmul__ = matmul
Tensor.__rmatmul__ = lambda self, other: matmul(other, self)
Tensor.__getitem__ = getitem
Tensor.__lt__ = _compare(lambda x, y: x < y)
Tensor.__le__ = _compare(lambda x, y: x <= y)
Tensor.__gt__ = _compare(lambda x, y: x > y)
Tensor.__ge__ = _compare(lambda x, y: x >= y)
Tensor.__eq__ = _compare(lambda x, y: x == y)
Tensor.__ne__ = _compare(lambda x, y: x != y)
Tensor.__abs__ = abs_
Tensor.__rpow__ = rpow
Tensor.__iadd__ = _in_place("+=", operator.iadd)
Tensor.__isub__ = _in_place("-=", operator.isub)
Tensor.__imul__ = _in_place("*=", operator.imul)
Tensor.__itruediv__ = _in_place("/=", operator.itruediv)
Tensor.add_ = _in_place("add_", operator.iadd)
Tensor.sub_ = _in_place("sub_", operator.isub)
Tensor.mul_ = _in_place("mul_", operator.imul)
Tensor.div_ = _in_place("div_", operator.itruediv)
Tensor.__setitem__ = setitem
Tensor.T = property(permute)
Tensor.reshape = reshape
Tensor.view = reshape
Tensor.permute = permute
Tensor.transpose = transpose
Tensor.t = t
Tensor.squeeze = squeeze
Tensor.unsqueeze = unsqueeze
Tensor.flatten = flatten
Tensor.clone = clone
Tensor.sum = sum_
Tensor.mean = mean
Tensor.var = var
Tensor.max = max_
Tensor.min = min_
Tensor.sqrt = sqrt
Tensor.clamp = clamp
Tensor.clip = clamp
Tensor.logsumexp = logsumexp
Tensor.log_softmax = log_softmax
Tensor.softmax = softmax
Tensor.exp = exp
Tensor.log = log
Tensor.relu = relu
Tensor.sigmoid = sigmoid
Tensor.tanh = tanh
Tensor.abs = abs_
Tensor.pow = power
Tensor.matmul = matmul
Tensor.dot = dot
Tensor.argmax = lambda self, axis=None, *, dim=None: Tensor._wrap(
    self.array.argmax(axis=axis if dim is None else dim), self._backend)
Tensor.argmin = lambda self, axis=None, *, dim=None: Tensor._wrap(
    self.array.argmin(axis=axis if dim is None else dim), self._backend)
