"""Differentiable ops. Each one is its forward pass and, beside it, the
vector-Jacobian product of each input: ``vjp(g)`` takes the gradient of the
output and returns the gradient of that input. A vjp may return a gradient of
the broadcast shape: the tape sums it back to its input's shape (see
autograd.run_backward), so no op repeats that step. Math goes through the
inputs' backend (``x.xp`` is numpy or cupy), so every op runs on every device.

Tensor's methods and the ``td.*`` functions are one-line calls of these ops
(tensor.py, __init__.py). Names follow PyTorch; a trailing underscore means
the op changes its first argument in place (``add_``), nothing else.
"""
from __future__ import annotations

import builtins
import math
import numbers
import operator
from typing import NamedTuple

import numpy as np  # dtypes only: the math goes through each tensor's backend

from .autograd import record
from .tensor import Tensor, check_device, shape_args

# ----------------------------------------------------------------- dtypes
# Type promotion is PyTorch's (README, "dtype promotion"): the higher category
# (bool < integer < float) wins; within a category a tensor with dimensions
# outranks a 0-d tensor, which outranks a Python scalar; so float32 combined with
# int64 data or a Python float stays float32. Integers divide, average and
# compute losses in float32 (PyTorch's default float), never a silent float64.

_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}
_FLOAT32 = np.dtype(np.float32)
_INT64 = np.dtype(np.int64)
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


def _wide(x: Tensor):
    """(x's array in the width a floating reduction computes in, the result dtype)."""
    wide, dtype = _float_dtypes(x.array.dtype)
    return (x.array if wide is None else x.array.astype(wide)), dtype


def stable_sigmoid(xp, z):
    """The logistic function of an array, as 0.5 * (1 + tanh(z / 2)): never
    overflows, unlike 1 / (1 + exp(-z)), and keeps z's dtype."""
    return 0.5 * (1 + xp.tanh(0.5 * z))


# ----------------------------------------------------------------- operands


def _as_tensor(x, like: Tensor) -> Tensor:
    """An operand as a tensor on ``like``'s device (Python numbers take ``like``'s dtype
    unless their category is higher: a float with an integer tensor is float32)."""
    if isinstance(x, Tensor):
        check_device(like, x)
        return x
    if isinstance(x, numbers.Number) and not isinstance(x, bool):
        kind = like.array.dtype.kind
        if kind == "f" or (kind in "iu" and isinstance(x, numbers.Integral)):
            dtype = like.array.dtype
        else:
            dtype = None if isinstance(x, numbers.Integral) else _FLOAT32
        return Tensor._wrap(like._backend.asarray(x, dtype=dtype), like._backend)
    if like._backend.is_array(x):
        return Tensor._wrap(x, like._backend)
    if isinstance(x, (list, tuple, bool, np.ndarray, np.generic)):
        return Tensor(x, device=like._backend)
    raise TypeError(f"unsupported operand of type {type(x).__name__} for a tensor op; use a tensor or a number")


def as_tensor(x) -> Tensor:
    """A tensor as it is, anything else (a list, a NumPy array) as a new CPU tensor."""
    return x if isinstance(x, Tensor) else Tensor(x)


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


def _dim(x: Tensor, d, name: str) -> int:
    """One dimension of x given PyTorch's way, -ndim..ndim-1 (0 or -1 for a 0-d tensor),
    as a non-negative int; anything else is an error naming the shape."""
    span = builtins.max(x.ndim, 1)
    if not isinstance(d, numbers.Integral) or isinstance(d, bool) or not -span <= d < span:
        raise ValueError(f"{name}: dim {d!r} is out of range for a tensor of shape {x.shape}")
    return int(d) % span


def _index_array(index, x: Tensor, name: str):
    """An index tensor (or array) as an integer array on ``x``'s device."""
    if isinstance(index, Tensor):
        check_device(x, index)
        index = index.array
    elif not x._backend.is_array(index):
        index = x._backend.asarray(np.asarray(index))
    if index.dtype.kind not in "iu":
        raise TypeError(f"{name}: index must hold integers, got dtype {index.dtype}")
    return index


# ----------------------------------------------------------------- elementwise, binary
# Each vjp returns the gradient in the broadcast (output) shape; the tape reduces it.


def add(a, b):
    a, b = _operands(a, b)
    return record(Tensor, _broadcasting("add", operator.add, a, b), a._backend, (a, lambda g: g), (b, lambda g: g))


def sub(a, b):
    a, b = _operands(a, b)
    return record(Tensor, _broadcasting("sub", operator.sub, a, b), a._backend, (a, lambda g: g), (b, lambda g: -g))


def mul(a, b):
    a, b = _operands(a, b)
    return record(Tensor, _broadcasting("mul", operator.mul, a, b), a._backend,
                  (a, lambda g: g * b.array), (b, lambda g: g * a.array), op="mul", saved=(a, b))


def div(a, b):
    a, b = _operands(a, b)
    if a.array.dtype.kind != "f":  # true division of integers is float32, as in PyTorch
        a, b = cast(a, _FLOAT32), cast(b, _FLOAT32)
    out = _broadcasting("div", operator.truediv, a, b)
    return record(Tensor, out, a._backend, (a, lambda g: g / b.array), (b, lambda g: -g * out / b.array),
                  op="div", saved=(b,), saves_output=True)


def remainder(a, b):
    """``a % b`` with the sign of b (Python's and PyTorch's rule): a - floor(a / b) * b."""
    a, b = _operands(a, b)
    out = _broadcasting("remainder", operator.mod, a, b)
    xp = a.xp
    return record(Tensor, out, a._backend, (a, lambda g: g), (b, lambda g: -g * xp.floor_divide(a.array, b.array)),
                  op="remainder", saved=(a, b))


def _extremum(a, b, name: str, wins):
    """maximum / minimum: the winning side gets the gradient; a tie splits it in half
    (PyTorch's rule, so the two halves still sum to g)."""
    a, b = _operands(a, b)
    xp = a.xp
    out = _broadcasting(name, xp.maximum if name == "maximum" else xp.minimum, a, b)

    def share(mine, theirs):
        return lambda g: xp.where(mine == theirs, 0.5 * g, g * wins(mine, theirs))

    return record(Tensor, out, a._backend, (a, share(a.array, b.array)), (b, share(b.array, a.array)),
                  op=name, saved=(a, b))


def maximum(a, b):
    return _extremum(a, b, "maximum", operator.gt)


def minimum(a, b):
    return _extremum(a, b, "minimum", operator.lt)


def compare(a, b, fn):
    """``a <fn> b`` as a bool tensor (no gradient): ``fn`` is operator.lt, eq, ..."""
    if not isinstance(b, (Tensor, numbers.Number)) and not a._backend.is_array(b):
        return NotImplemented  # so `t == None` is False, as in PyTorch
    a, b = _operands(a, b)
    return Tensor._wrap(_broadcasting("comparison", fn, a, b), a._backend)


def bitwise(a, b, fn, symbol: str):
    """``&``, ``|``, ``^`` of bool or integer tensors (logical on bools, as in PyTorch)."""
    if not isinstance(b, (Tensor, numbers.Integral)) and not a._backend.is_array(b):
        return NotImplemented
    a, b = _operands(a, b)
    if a.array.dtype.kind == "f":
        raise TypeError(f"{symbol} takes bool or integer tensors, got {a.dtype} (shapes {a.shape} and {b.shape}); "
                        "compare first (x > 0) or cast with .bool() / .long()")
    return Tensor._wrap(_broadcasting(symbol, fn, a, b), a._backend)


def invert(x: Tensor):
    """``~x``: logical not of a bool tensor, bitwise not of an integer tensor."""
    if x.array.dtype.kind == "f":
        raise TypeError(f"~ takes a bool or integer tensor, got {x.dtype} (shape {x.shape})")
    return Tensor._wrap(~x.array, x._backend)


# ----------------------------------------------------------------- elementwise, unary


def neg(x: Tensor):
    return record(Tensor, -x.array, x._backend, (x, lambda g: -g))


def pow(x: Tensor, exponent):  # noqa: A001  (torch.pow; builtins.pow is not used here)
    if isinstance(exponent, Tensor) or not isinstance(exponent, numbers.Real) or isinstance(exponent, bool):
        raise TypeError(f"tensor ** exponent needs a real Python number exponent, got {type(exponent).__name__}")
    if exponent == 2:  # the common case (squared errors), without a generic pow
        return record(Tensor, x.array * x.array, x._backend, (x, lambda g: g * (2 * x.array)),
                      op="pow", saved=(x,))
    return record(Tensor, x.array ** exponent, x._backend,
                  (x, lambda g: g * (exponent * x.array ** (exponent - 1))), op="pow", saved=(x,))


def rpow(x: Tensor, base):
    """base ** x for a Python number base."""
    if not isinstance(base, numbers.Real) or isinstance(base, bool):
        return NotImplemented
    out = x.xp.power(_as_tensor(base, x).array, x.array)
    return record(Tensor, out, x._backend, (x, lambda g: g * out * math.log(base)), op="rpow", saves_output=True)


def exp(x: Tensor):
    out = x.xp.exp(x.array)
    return record(Tensor, out, x._backend, (x, lambda g: g * out), op="exp", saves_output=True)


def log(x: Tensor):
    return record(Tensor, x.xp.log(x.array), x._backend, (x, lambda g: g / x.array), op="log", saved=(x,))


def log1p(x: Tensor):
    return record(Tensor, x.xp.log1p(x.array), x._backend, (x, lambda g: g / (1 + x.array)),
                  op="log1p", saved=(x,))


def sqrt(x: Tensor):
    out = x.xp.sqrt(x.array)
    return record(Tensor, out, x._backend, (x, lambda g: g * 0.5 / out), op="sqrt", saves_output=True)


def relu(x: Tensor):
    mask = x.array > 0
    # where(), not x * mask: a negative input times False is -0.0, which would print as "-0."
    return record(Tensor, x.xp.where(mask, x.array, 0), x._backend, (x, lambda g: g * mask))


def sigmoid(x: Tensor):
    out = stable_sigmoid(x.xp, x.array)
    return record(Tensor, out, x._backend, (x, lambda g: g * out * (1 - out)), op="sigmoid", saves_output=True)


def tanh(x: Tensor):
    out = x.xp.tanh(x.array)
    return record(Tensor, out, x._backend, (x, lambda g: g * (1 - out * out)), op="tanh", saves_output=True)


def abs(x: Tensor):  # noqa: A001
    return record(Tensor, x.xp.abs(x.array), x._backend, (x, lambda g: g * x.xp.sign(x.array)),
                  op="abs", saved=(x,))


def sign(x: Tensor):
    """-1, 0 or 1; its gradient is zero everywhere (as in PyTorch)."""
    return record(Tensor, x.xp.sign(x.array), x._backend, (x, lambda g: x.xp.zeros_like(g)))


def clamp(x: Tensor, min=None, max=None):  # noqa: A002
    if min is None and max is None:
        raise ValueError("clamp needs min, max or both")
    out = x.xp.clip(x.array, min, max)
    inside = out == x.array  # the gradient passes where the value was not clipped
    return record(Tensor, out, x._backend, (x, lambda g: g * inside))


def cast(x: Tensor, dtype):
    if x.array.dtype == dtype:
        return x
    if dtype.kind != "f":  # integers and bools carry no gradient: the cast cuts the graph (as in PyTorch)
        return Tensor._wrap(x.array.astype(dtype), x._backend)
    return record(Tensor, x.array.astype(dtype), x._backend, (x, lambda g: g.astype(x.dtype)))


def to_device(x: Tensor, backend):
    """A copy on another device; the gradient comes back to ``x``'s device."""
    if backend.name == x._backend.name:
        return x
    with backend.scope():
        array = backend.asarray(x.array)

    def to(g):
        return x._backend.asarray(g)

    return record(Tensor, array, backend, (x, to))


# ----------------------------------------------------------------- shape


def reshape(x: Tensor, *shape):
    shape = shape_args(shape, "reshape", free=True)
    try:
        out = x.array.reshape(shape)
    except (ValueError, TypeError):
        raise ValueError(f"cannot reshape a tensor of shape {x.shape} (size {x.numel()}) into shape {shape}") from None
    return record(Tensor, out, x._backend, (x, lambda g: g.reshape(x.shape)), view_of=x)


def permute(x: Tensor, *axes):
    """Reorder axes (reverse them when none are given), as numpy.transpose."""
    try:
        axes = shape_args(axes, "permute", free=True)
        axes = tuple(range(x.ndim))[::-1] if not axes else tuple(a % x.ndim for a in axes)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"axes {axes} are not a permutation of the {x.ndim} axes of shape {x.shape}") from None
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"axes {axes} are not a permutation of the {x.ndim} axes of shape {x.shape}")
    inverse = tuple(sorted(range(x.ndim), key=axes.__getitem__))
    return record(Tensor, x.array.transpose(axes), x._backend, (x, lambda g: g.transpose(inverse)), view_of=x)


def transpose(x: Tensor, dim0: int, dim1: int):
    """Swap two axes, as torch.transpose (numpy.swapaxes)."""
    axes = list(range(x.ndim))
    dim0, dim1 = _dim(x, dim0, "transpose"), _dim(x, dim1, "transpose")
    if x.ndim:
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
    return permute(x, axes)


def t(x: Tensor):
    """The transpose of a tensor of at most 2 dimensions, as torch.t."""
    if x.ndim > 2:
        raise ValueError(f"t() takes a tensor of at most 2 dimensions, got shape {x.shape}; use transpose or permute")
    return permute(x)


def squeeze(x: Tensor, dim=None):
    dims = range(x.ndim) if dim is None else [_dim(x, d, "squeeze") for d in ((dim,) if isinstance(dim, int) else dim)]
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if not (i in dims and n == 1)))


def unsqueeze(x: Tensor, dim: int):
    if not -x.ndim - 1 <= dim <= x.ndim:
        raise ValueError(f"unsqueeze: dim {dim} is out of range for shape {x.shape}")
    dim = dim % (x.ndim + 1)
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1):
    if x.ndim == 0:
        return reshape(x, 1)
    start, end = _dim(x, start_dim, "flatten"), _dim(x, end_dim, "flatten")
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {x.shape}")
    return reshape(x, x.shape[:start] + (-1,) + x.shape[end + 1:])


def expand(x: Tensor, *sizes):
    """A broadcast view (read only) to ``sizes``; -1 keeps a dimension. The gradient is
    summed back over the repeats by the tape, as for any broadcast."""
    sizes = shape_args(sizes, "expand", free=True)
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: {len(sizes)} sizes {sizes} for a tensor of {x.ndim} dimensions (shape {x.shape})")
    shape = tuple(x.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(sizes))
    try:
        out = x.xp.broadcast_to(x.array, shape)
    except ValueError:
        raise ValueError(f"expand: shape {x.shape} cannot be expanded to {sizes} "
                         "(only dimensions of size 1 grow, and new ones go in front)") from None
    return record(Tensor, out, x._backend, (x, lambda g: g), view_of=x)


def repeat(x: Tensor, *repeats):
    """Tile ``x`` ``repeats[i]`` times along dimension i (torch.repeat, numpy.tile);
    the gradient of each element is the sum over its copies."""
    repeats = shape_args(repeats, "repeat")
    if len(repeats) < x.ndim:
        raise ValueError(f"repeat: {len(repeats)} repeats {repeats} for a tensor of {x.ndim} dimensions "
                         f"(shape {x.shape}); give at least one per dimension")
    padded = (1,) * (len(repeats) - x.ndim) + x.shape
    out = x.xp.tile(x.array.reshape(padded), repeats)
    pairs = tuple(n for pair in zip(repeats, padded) for n in pair)  # (r0, s0, r1, s1, ...)

    def vjp(g):
        return g.reshape(pairs).sum(axis=tuple(range(0, len(pairs), 2))).reshape(x.shape)

    return record(Tensor, out, x._backend, (x, vjp))


def clone(x: Tensor):
    return record(Tensor, x.array.copy(), x._backend, (x, lambda g: g))


# ----------------------------------------------------------------- indexing


def _array_index(x: Tensor, index):
    """A tensor index as backend arrays, and the tensors it came from (the vjp scatters
    through them, so backward checks that they did not change). Boolean masks become
    their nonzero() positions: the same selection, and one the scatter-add accepts."""
    items = index if isinstance(index, tuple) else (index,)
    tensors, out = [], []
    for item in items:
        if isinstance(item, Tensor):
            check_device(x, item)
            tensors.append(item)
            item = item.array
        elif isinstance(item, (list, np.ndarray)) and not x._backend.is_array(item):
            item = x._backend.asarray(np.asarray(item))  # host indices go where the data is (CuPy wants its own)
        if x._backend.is_array(item) and item.dtype == np.bool_:
            out.extend(item.nonzero())
            continue
        out.append(item)
    return tuple(out), tuple(tensors)


def getitem(x: Tensor, index):
    if isinstance(index, (int, slice)) or index is None or index is Ellipsis:
        tensors, advanced = (), False  # the common basic index, without the scan below
    else:
        index, tensors = _array_index(x, index)
        advanced = builtins.any(not isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in index)
    try:
        out = x.array[index]
    except IndexError as exc:
        raise IndexError(f"index {index!r} is invalid for a tensor of shape {x.shape}: {exc}") from None

    def vjp(g):
        full = x.xp.zeros(x.shape, dtype=g.dtype)
        if advanced:
            x._backend.scatter_add(full, index, g)  # repeated indices accumulate
        else:
            full[index] = g
        return full

    return record(Tensor, out, x._backend, (x, vjp), op="getitem", saved=tensors, view_of=x)


def _along(index, dim: int, xp):
    """The advanced index that picks ``index[..., i, ...]`` along ``dim`` and the
    position itself along every other dimension (gather's and scatter_add's index)."""
    grids = []
    for d, n in enumerate(index.shape):
        if d == dim:
            grids.append(index)
        else:
            grids.append(xp.arange(n).reshape([-1 if e == d else 1 for e in range(index.ndim)]))
    return tuple(grids)


def _check_along(name: str, x: Tensor, dim: int, index, other_shape=None):
    dim = _dim(x, dim, name)
    if index.ndim != x.ndim:
        raise ValueError(f"{name}: index of shape {tuple(index.shape)} does not fit a tensor of shape {x.shape} "
                         "(the index needs as many dimensions)")
    for d, n in enumerate(index.shape):
        if (d != dim and n > x.shape[d]) or (other_shape is not None and n > other_shape[d]):
            raise ValueError(f"{name}: index of shape {tuple(index.shape)} is larger than shape {x.shape}"
                             + ("" if other_shape is None else f" or {tuple(other_shape)}")
                             + f" in dimension {d}")
    return dim


def gather(x: Tensor, dim: int, index):
    """``out[i][j] = x[i][index[i][j]]`` for dim=1 (torch.gather); the gradient
    scatter-adds back, so an index repeated gets the sum."""
    index_tensor = index if isinstance(index, Tensor) else None
    index = _index_array(index, x, "gather")
    dim = _check_along("gather", x, dim, index)
    where = _along(index, dim, x.xp)
    try:
        out = x.array[where]
    except IndexError:
        raise IndexError(f"gather: index values must lie in [0, {x.shape[dim]}) along dim {dim}") from None

    def vjp(g):
        full = x.xp.zeros(x.shape, dtype=g.dtype)
        x._backend.scatter_add(full, where, g)
        return full

    return record(Tensor, out, x._backend, (x, vjp), op="gather", saved=(index_tensor,) if index_tensor is not None else ())


def scatter_add(x: Tensor, dim: int, index, src):
    """A copy of ``x`` with ``out[i][index[i][j]] += src[i][j]`` for dim=1 (torch.scatter_add)."""
    index_tensor = index if isinstance(index, Tensor) else None
    index = _index_array(index, x, "scatter_add")
    src = _as_tensor(src, x)
    if src.array.dtype != x.array.dtype:
        raise TypeError(f"scatter_add: src is {src.dtype} but the tensor is {x.dtype}")
    dim = _check_along("scatter_add", x, dim, index, src.shape)
    where = _along(index, dim, x.xp)
    part = tuple(slice(0, n) for n in index.shape)  # src may be larger than index: only this part is used
    out = x.array.copy()
    try:
        x._backend.scatter_add(out, where, src.array[part])
    except IndexError:
        raise IndexError(f"scatter_add: index values must lie in [0, {x.shape[dim]}) along dim {dim}") from None

    def src_vjp(g):
        full = x.xp.zeros(src.shape, dtype=g.dtype)
        full[part] = g[where]
        return full

    return record(Tensor, out, x._backend, (x, lambda g: g), (src, src_vjp),
                  op="scatter_add", saved=(index_tensor,) if index_tensor is not None else ())


def masked_fill(x: Tensor, mask, value):
    """``x`` with ``value`` where the bool ``mask`` (broadcast to x's shape) holds."""
    mask_tensor = mask if isinstance(mask, Tensor) else None
    if mask_tensor is not None:
        check_device(x, mask)
        mask = mask.array
    elif not x._backend.is_array(mask):
        mask = x._backend.asarray(np.asarray(mask))
    if mask.dtype != np.bool_:
        raise TypeError(f"masked_fill: mask must be a bool tensor, got dtype {mask.dtype}")
    value = _as_tensor(value, x)
    if value.ndim:
        raise ValueError(f"masked_fill: value must be a number or a 0-d tensor, got shape {value.shape}")
    xp = x.xp
    out = xp.where(mask, value.array.astype(x.array.dtype), x.array)
    if out.shape != x.shape:
        raise ValueError(f"masked_fill: mask of shape {tuple(mask.shape)} does not broadcast to shape {x.shape}")
    return record(Tensor, out, x._backend, (x, lambda g: xp.where(mask, 0, g)),
                  (value, lambda g: xp.where(mask, g, 0).sum()),
                  op="masked_fill", saved=(mask_tensor,) if mask_tensor is not None else ())


def where(condition, a, b):
    """Elements of a where condition holds, else of b (broadcasting all three)."""
    a, b = _operands(a, b)
    if isinstance(condition, Tensor):
        check_device(a, condition)
        cond = condition.array
    else:
        cond = a._backend.asarray(condition)
    xp = a.xp
    out = xp.where(cond, a.array, b.array)
    return record(Tensor, out, a._backend,
                  (a, lambda g: xp.where(cond, g, 0)), (b, lambda g: xp.where(cond, 0, g)),
                  op="where", saved=(condition,) if isinstance(condition, Tensor) else ())


def _join(tensors, dim, join: str, part):
    """cat and stack: ``xp.<join>`` (concatenate or stack) the arrays along
    ``dim``; input i's gradient is the slice ``part(i, tensors)`` of g on that axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{join} needs at least one tensor")
    first = as_tensor(tensors[0])
    tensors = [first] + [_as_tensor(t, first) for t in tensors[1:]]
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
        start = builtins.sum(t.shape[dim] for t in tensors[:i])
        return slice(start, start + tensors[i].shape[dim])

    return _join(tensors, dim, "concatenate", part)


def stack(tensors, dim: int = 0):
    """Join tensors along a new axis (torch.stack / numpy.stack)."""
    return _join(tensors, dim, "stack", lambda i, tensors: i)


# ----------------------------------------------------------------- reductions


class _Reduction:
    """The dim/keepdim plumbing every reduction shares: NumPy's ``axis``/``keepdims``
    or PyTorch's ``dim``/``keepdim``, checked against x; how many values each output
    reduces; and ``regrow(g)``, which undoes the reduction's shape change so that a
    gradient (or the output) broadcasts against x again."""

    __slots__ = ("axis", "keepdims", "ndim")

    def __init__(self, x: Tensor, dim, keepdim, axis, keepdims, name: str):
        if axis is not None:
            if dim is not None:
                raise TypeError(f"{name}: pass dim= or axis=, not both")
            dim = axis
        self.ndim = x.ndim
        self.keepdims = bool(keepdim or keepdims)
        if dim is None:
            self.axis = None
            return
        dims = [_dim(x, d, name) for d in ((dim,) if isinstance(dim, numbers.Integral) else dim)]
        # a 0-d tensor reduces over dim 0 or -1 as PyTorch allows: over nothing
        self.axis = () if x.ndim == 0 else tuple(sorted(set(dims)))
        if len(self.axis) != len(dims) and x.ndim:
            raise ValueError(f"{name}: dim {dim} repeats a dimension")

    def count(self, x: Tensor) -> int:
        if self.axis is None:
            return x.array.size
        return math.prod(x.shape[d] for d in self.axis)

    def regrow(self, g):
        if self.keepdims or self.axis is None and not self.ndim:
            return g
        if self.axis is None:
            return g.reshape((1,) * self.ndim)
        shape = list(g.shape)
        for d in self.axis:
            shape.insert(d, 1)
        return g.reshape(shape)


def _spread(x: Tensor, g):
    """``g`` broadcast to the shape of ``x`` as a full array (cheaper than xp.broadcast_to)."""
    out = x.xp.empty(x.array.shape, dtype=g.dtype)
    out[...] = g
    return out


def sum(x: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001
    r = _Reduction(x, dim, keepdim, axis, keepdims, "sum")
    wide = _WIDER.get(x.array.dtype)
    out = x.array.sum(axis=r.axis, keepdims=r.keepdims, dtype=wide)
    if wide is not None:
        out = out.astype(x.array.dtype)
    return record(Tensor, out, x._backend, (x, lambda g: _spread(x, r.regrow(g))))


def mean(x: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None):
    r = _Reduction(x, dim, keepdim, axis, keepdims, "mean")
    wide, dtype = _float_dtypes(x.array.dtype)
    total = x.array.sum(axis=r.axis, keepdims=r.keepdims, dtype=wide)
    count = r.count(x)
    scale = 1.0 / count if count else float("nan")  # the mean of nothing is NaN, as in NumPy
    return record(Tensor, _narrow(total * scale, dtype), x._backend, (x, lambda g: _spread(x, r.regrow(g * scale))))


def _correction(unbiased, correction) -> float:
    if unbiased is not None and correction is not None:
        raise TypeError("pass unbiased= or correction=, not both")
    if correction is not None:
        return correction
    return 1 if unbiased is None or unbiased else 0


def var(x: Tensor, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
    """Variance with PyTorch's default ``correction=1`` (``unbiased=True``);
    ``correction=0`` (``unbiased=False``) is NumPy's. Fewer than ``correction + 1``
    values give NaN."""
    r = _Reduction(x, dim, keepdim, axis, keepdims, "var")
    correction = _correction(unbiased, correction)
    a, dtype = _wide(x)
    count = r.count(x)
    centered = a - a.sum(axis=r.axis, keepdims=True) * (1.0 / count if count else float("nan"))
    scale = 1.0 / (count - correction) if count > correction else float("nan")
    out = (centered * centered).sum(axis=r.axis, keepdims=r.keepdims) * scale
    return record(Tensor, _narrow(out, dtype), x._backend,
                  (x, lambda g: _narrow(r.regrow(g) * (2 * scale) * centered, x.array.dtype)))


def std(x: Tensor, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
    """The square root of var (same arguments)."""
    return sqrt(var(x, dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims))


def norm(x: Tensor, p=2, dim=None, keepdim=False):
    """The vector p-norm over ``dim`` (all elements by default; "fro" is p=2)."""
    if p in (2, "fro"):
        r = _Reduction(x, dim, keepdim, None, None, "norm")
        a, dtype = _wide(x)
        out = x.xp.sqrt((a * a).sum(axis=r.axis, keepdims=r.keepdims))

        def vjp(g):  # x / |x| with 0 where the norm is 0 (PyTorch's subgradient there)
            grown = r.regrow(out)
            safe = x.xp.where(grown == 0, 1, grown)
            return _narrow(r.regrow(g) * a / safe, x.array.dtype)

        return record(Tensor, _narrow(out, dtype), x._backend, (x, vjp), op="norm", saved=(x,))
    if p == math.inf:
        return amax(abs(x), dim, keepdim)
    if p == -math.inf:
        return amin(abs(x), dim, keepdim)
    if not isinstance(p, numbers.Real) or p <= 0:
        raise ValueError(f"norm: p must be a positive number, inf or 'fro', got {p!r}")
    if p == 1:
        return sum(abs(x), dim, keepdim)
    return pow(sum(pow(abs(x), p), dim, keepdim), 1.0 / p)


def _extreme(x: Tensor, dim, keepdim, axis, keepdims, reducer: str):
    """amax / amin (and max / min without dim): ties share the gradient equally, so it sums to g."""
    r = _Reduction(x, dim, keepdim, axis, keepdims, reducer)
    if r.count(x) == 0:
        raise ValueError(f"{reducer}() of an empty selection: shape {x.shape}, dim {r.axis}")
    out = getattr(x.array, reducer)(axis=r.axis, keepdims=r.keepdims)

    def vjp(g):
        hit = x.array == r.regrow(out)
        share = hit / hit.sum(axis=r.axis, keepdims=True, dtype=g.dtype)
        return share * r.regrow(g)

    return record(Tensor, out, x._backend, (x, vjp), op=reducer, saved=(x,), saves_output=True)


def amax(x: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None):
    return _extreme(x, dim, keepdim, axis, keepdims, "max")


def amin(x: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None):
    return _extreme(x, dim, keepdim, axis, keepdims, "min")


class ValuesIndices(NamedTuple):
    """What max and min with a dim return (torch.return_types.max)."""
    values: Tensor
    indices: Tensor


def _arg(x: Tensor, dim, keepdim: bool, reducer: str):
    """argmax / argmin as an int64 array (the first of equal extremes, as NumPy and PyTorch)."""
    if x.array.size == 0:
        raise ValueError(f"{reducer}() of an empty tensor (shape {x.shape})")
    if dim is None:
        out = getattr(x.array, reducer)()
        return x.xp.asarray(out, dtype=_INT64).reshape((1,) * x.ndim if keepdim else ())
    dim = _dim(x, dim, reducer)
    if x.ndim == 0:
        return x.xp.zeros((), dtype=_INT64)
    return getattr(x.array, reducer)(axis=dim, keepdims=keepdim).astype(_INT64, copy=False)


def argmax(x: Tensor, dim=None, keepdim=False, *, axis=None):
    return Tensor._wrap(_arg(x, dim if axis is None else axis, keepdim, "argmax"), x._backend)


def argmin(x: Tensor, dim=None, keepdim=False, *, axis=None):
    return Tensor._wrap(_arg(x, dim if axis is None else axis, keepdim, "argmin"), x._backend)


def _max_or_min(x: Tensor, dim, keepdim, axis, keepdims, reducer: str, elementwise):
    """PyTorch's three forms: max(x) a tensor, max(x, dim) (values, indices), max(x, y) elementwise."""
    x = as_tensor(x)
    if isinstance(dim, (tuple, list)):
        raise TypeError(f"{reducer}(dim=...) takes one dimension, got {dim}; amax/amin reduce over several")
    if isinstance(dim, Tensor) or (dim is not None and not isinstance(dim, numbers.Integral)):
        return elementwise(x, dim)
    dim = dim if axis is None else axis
    if dim is None:
        return _extreme(x, None, False, None, None, reducer)
    keep = bool(keepdim or keepdims)
    dim = _dim(x, dim, reducer)
    indices = _arg(x, dim, True, "arg" + reducer)
    along = _along(indices, dim, x.xp) if x.ndim else ()
    values = x.array[along]

    def vjp(g):  # the whole gradient goes to the chosen element (PyTorch's rule for max with dim)
        full = x.xp.zeros(x.shape, dtype=g.dtype)
        full[along] = g if keep or not x.ndim else x.xp.expand_dims(g, dim)
        return full

    if not keep and x.ndim:
        values, indices = values.squeeze(dim), indices.squeeze(dim)
    out = record(Tensor, values, x._backend, (x, vjp), op=reducer)
    return ValuesIndices(out, Tensor._wrap(indices, x._backend))


def max(x, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001
    """max(x): the largest element; max(x, dim): (values, indices); max(x, y): maximum(x, y)."""
    return _max_or_min(x, dim, keepdim, axis, keepdims, "max", maximum)


def min(x, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001
    """min(x): the smallest element; min(x, dim): (values, indices); min(x, y): minimum(x, y)."""
    return _max_or_min(x, dim, keepdim, axis, keepdims, "min", minimum)


def any(x: Tensor, dim=None, keepdim=False):  # noqa: A001
    r = _Reduction(x, dim, keepdim, None, None, "any")
    return Tensor._wrap(x.xp.asarray(x.array.any(axis=r.axis, keepdims=r.keepdims)), x._backend)


def all(x: Tensor, dim=None, keepdim=False):  # noqa: A001
    r = _Reduction(x, dim, keepdim, None, None, "all")
    return Tensor._wrap(x.xp.asarray(x.array.all(axis=r.axis, keepdims=r.keepdims)), x._backend)


# logsumexp, log_softmax and softmax compute in ``wide`` (float32 for float16 input)
# and return the input's dtype; their vjps work in ``wide`` too.


def logsumexp(x: Tensor, dim=None, keepdim=False, *, axis=None, keepdims=None):
    r = _Reduction(x, dim, keepdim, axis, keepdims, "logsumexp")
    xp = x.xp
    a, dtype = _wide(x)
    peak = a.max(axis=r.axis, keepdims=True)
    peak = xp.where(xp.isfinite(peak), peak, 0)  # all -inf rows stay -inf, not NaN
    lse = xp.log(xp.exp(a - peak).sum(axis=r.axis, keepdims=True)) + peak
    out = lse if r.keepdims else lse.reshape(()) if r.axis is None else lse.squeeze(axis=r.axis)
    return record(Tensor, _narrow(out, dtype), x._backend,
                  (x, lambda g: _narrow(r.regrow(g) * xp.exp(a - lse), dtype)), op="logsumexp", saved=(x,))


def _softmax_dim(x: Tensor, dim, axis, name: str) -> int:
    return _Reduction(x, dim if axis is None else axis, False, None, None, name).axis


def log_softmax(x: Tensor, dim=-1, *, axis=None):
    axis = _softmax_dim(x, dim, axis, "log_softmax")
    xp = x.xp
    a, dtype = _wide(x)
    shifted = a - a.max(axis=axis, keepdims=True)
    out = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
    return record(Tensor, _narrow(out, dtype), x._backend,
                  (x, lambda g: _narrow(g - xp.exp(out) * g.sum(axis=axis, keepdims=True, dtype=out.dtype), dtype)),
                  op="log_softmax", saves_output=True)


def softmax(x: Tensor, dim=-1, *, axis=None):
    axis = _softmax_dim(x, dim, axis, "softmax")
    a, dtype = _wide(x)
    e = x.xp.exp(a - a.max(axis=axis, keepdims=True))
    out = e / e.sum(axis=axis, keepdims=True)
    return record(Tensor, _narrow(out, dtype), x._backend,
                  (x, lambda g: _narrow(out * (g - (g * out).sum(axis=axis, keepdims=True)), dtype)),
                  op="softmax", saves_output=True)


# ----------------------------------------------------------------- products


def _swap_last(a):
    return a.swapaxes(-1, -2)


def matmul(a, b, *, kernel: str = "auto"):
    """numpy.matmul semantics: 1-D operands are promoted and the added axis
    removed; leading (batch) axes broadcast. Gradients: dA = G B^T, dB = A^T G
    (the tape sums them over broadcast batch axes)."""
    a, b = _operands(a, b, promote=False)
    if a.is_sparse or b.is_sparse:  # sparse @ dense and dense @ sparse: tinygrad_dot.sparse
        from . import sparse

        return sparse.matmul(a, b)
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

    # Each gradient drops the axis its operand was promoted by (a 1-D operand's); the
    # tape sums the rest (broadcast batch axes) back to the operand's shape.
    def grad_a(g):
        d = mm(full(g), _swap_last(b2), kernel=kernel)
        return d[..., 0, :] if a.ndim == 1 else d

    def grad_b(g):
        d = mm(_swap_last(a2), full(g), kernel=kernel)
        return d[..., 0] if b.ndim == 1 else d

    return record(Tensor, out, a._backend, (a, grad_a), (b, grad_b), op="matmul", saved=(a, b))


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


# ----------------------------------------------------------------- in place (outside the tape)
# Each one is refused on a tensor that requires grad while grad mode is on, and
# bumps the storage's version counter (see autograd) once it has changed it.


def in_place(x: Tensor, name: str, fn, other, alpha=1):
    """x = fn(x, other [* alpha]) in x's storage: ``fn`` is an in-place operator (operator.iadd, ...)."""
    x._begin_in_place(name)
    value = _as_tensor(other, x).array
    if alpha != 1:
        value = value * alpha
    try:
        x.array = fn(x.array, value)  # NumPy's and CuPy's in-place operators return x.array itself
    except ValueError:
        raise ValueError(f"in-place {name}: shape {tuple(value.shape)} cannot be broadcast to {x.shape}") from None
    except TypeError:
        raise TypeError(f"in-place {name}: a {value.dtype} result cannot be stored in a {x.dtype} tensor") from None
    x._bump()
    return x


def add_(x: Tensor, other, alpha=1):
    return in_place(x, "add_", operator.iadd, other, alpha)


def sub_(x: Tensor, other, alpha=1):
    return in_place(x, "sub_", operator.isub, other, alpha)


def mul_(x: Tensor, other):
    return in_place(x, "mul_", operator.imul, other)


def div_(x: Tensor, other):
    return in_place(x, "div_", operator.itruediv, other)


def clamp_(x: Tensor, min=None, max=None):  # noqa: A002
    if min is None and max is None:
        raise ValueError("clamp_ needs min, max or both")
    x._begin_in_place("clamp_")
    x.xp.clip(x.array, min, max, out=x.array)
    x._bump()
    return x


def fill_(x: Tensor, value, name: str = "fill_"):
    x._begin_in_place(name)
    x.array[...] = value
    x._bump()
    return x


def zero_(x: Tensor):
    return fill_(x, 0, "zero_")


def copy_(x: Tensor, src):
    x._begin_in_place("copy_")
    src = as_tensor(src)
    array = src.array if src._backend.name == x._backend.name else x._backend.asarray(src.numpy())
    try:
        x.array[...] = array
    except ValueError:
        raise ValueError(f"copy_: cannot copy shape {src.shape} into shape {x.shape}") from None
    x._bump()
    return x


def setitem(x: Tensor, index, value):
    x._begin_in_place("item assignment")
    if not isinstance(index, (int, slice)):
        index, _ = _array_index(x, index)
    value = _as_tensor(value, x)
    try:
        x.array[index] = value.array
    except (ValueError, IndexError, TypeError) as exc:
        raise type(exc)(f"cannot assign shape {value.shape} to index {index!r} of a tensor of shape {x.shape}: {exc}") from None
    x._bump()
