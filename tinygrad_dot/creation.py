"""Tensor creation: ``td.zeros``, ``td.rand``, ``td.linspace`` and the rest.

Random draws happen on the host, from ``random.generator(generator, seed)``
(td.manual_seed's generator unless given one), so a seed gives the same numbers
on every device; shapes are given PyTorch's ways (``f(2, 3)`` or ``f((2, 3))``).
"""
from __future__ import annotations

import numbers

import numpy as np

from . import random
from .backends import get_backend
from .tensor import Tensor, _check_dtype, shape_args

_FLOAT32 = np.dtype(np.float32)


def _made(array, device, requires_grad) -> Tensor:
    """A host array as a tensor on ``device``."""
    backend = get_backend(device)
    with backend.scope():
        t = Tensor._wrap(backend.asarray(array), backend)
    return t.requires_grad_(requires_grad) if requires_grad else t


def _float_dtype(dtype, what: str) -> np.dtype:
    dtype = _check_dtype(dtype) or _FLOAT32
    if dtype.kind != "f":
        raise TypeError(f"{what} draws floats, got dtype {dtype}")
    return dtype


def _filled(shape, value, dtype, device, requires_grad, what: str):
    backend = get_backend(device)
    dtype = _check_dtype(dtype) or _FLOAT32
    with backend.scope():
        array = backend.xp.full(shape_args(shape, what), value, dtype=dtype)
    return Tensor._wrap(array, backend).requires_grad_(requires_grad)


def zeros(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(shape, 0, dtype, device, requires_grad, "zeros")


def ones(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(shape, 1, dtype, device, requires_grad, "ones")


def empty(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor whose values are not set (here zeros: NumPy's empty memory could hold NaN)."""
    return _filled(shape, 0, dtype, device, requires_grad, "empty")


def full(*shape, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    if dtype is None and isinstance(fill_value, bool):
        dtype = np.bool_
    elif dtype is None and isinstance(fill_value, numbers.Integral):
        dtype = np.int64
    return _filled(shape, fill_value, dtype, device, requires_grad, "full")


def _like(t: Tensor, make, dtype, device, requires_grad, **kwargs) -> Tensor:
    """``make`` with t's shape, and t's dtype and device unless given others."""
    if not isinstance(t, Tensor):
        raise TypeError(f"expected a tensor to take the shape of, got {type(t).__name__}")
    return make(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad, **kwargs)


def zeros_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(t, zeros, dtype, device, requires_grad)


def ones_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(t, ones, dtype, device, requires_grad)


def empty_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(t, empty, dtype, device, requires_grad)


def full_like(t: Tensor, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(t, full, dtype, device, requires_grad, fill_value=fill_value)


def arange(start, stop=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Evenly spaced values in [start, stop): int64 for integer arguments, else float32."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        integral = all(isinstance(v, numbers.Integral) for v in (start, stop, step))
        dtype = np.int64 if integral else np.float32
    return _made(np.arange(start, stop, step, dtype=_check_dtype(dtype)), device, requires_grad)


def linspace(start, end, steps: int, dtype=None, device=None, requires_grad=False) -> Tensor:
    """``steps`` evenly spaced values from start to end, both included (float32 by default)."""
    if not isinstance(steps, numbers.Integral) or steps < 0:
        raise ValueError(f"linspace: steps must be a non-negative integer, got {steps!r}")
    values = np.linspace(start, end, int(steps), dtype=np.float64)  # computed in float64, then rounded once
    return _made(values.astype(_check_dtype(dtype) or _FLOAT32), device, requires_grad)


def logspace(start, end, steps: int, base: float = 10.0, dtype=None, device=None, requires_grad=False) -> Tensor:
    """``base ** linspace(start, end, steps)``."""
    if not isinstance(steps, numbers.Integral) or steps < 0:
        raise ValueError(f"logspace: steps must be a non-negative integer, got {steps!r}")
    values = np.power(float(base), np.linspace(start, end, int(steps), dtype=np.float64))
    return _made(values.astype(_check_dtype(dtype) or _FLOAT32), device, requires_grad)


def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _made(np.eye(n, m, dtype=_check_dtype(dtype) or _FLOAT32), device, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False, seed=None, generator=None) -> Tensor:
    """Standard normal samples (float32 by default)."""
    dtype = _float_dtype(dtype, "randn")
    sample = random.generator(generator, seed).standard_normal(shape_args(shape, "randn"))
    return _made(sample.astype(dtype), device, requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad=False, seed=None, generator=None) -> Tensor:
    """Uniform samples in [0, 1) (float32 by default)."""
    dtype = _float_dtype(dtype, "rand")
    sample = random.generator(generator, seed).random(shape_args(shape, "rand"))
    return _made(sample.astype(dtype), device, requires_grad)


def randint(low, high=None, size=None, *, dtype=None, device=None, seed=None, generator=None) -> Tensor:
    """Integers drawn uniformly from [low, high): ``randint(high, size)`` or
    ``randint(low, high, size)``, as torch.randint (int64 by default)."""
    if size is None:  # randint(high, size)
        low, high, size = 0, low, high
    if size is None or not isinstance(size, (tuple, list)):
        raise TypeError(f"randint: size must be a tuple of ints, got {size!r} (randint(high, (n,)) or "
                        "randint(low, high, (n,)))")
    if not low < high:
        raise ValueError(f"randint: low ({low}) must be below high ({high})")
    dtype = _check_dtype(dtype) or np.dtype(np.int64)
    sample = random.generator(generator, seed).integers(low, high, shape_args((size,), "randint"))
    return _made(sample.astype(dtype), device, False)


def randn_like(t: Tensor, dtype=None, device=None, requires_grad=False, seed=None, generator=None) -> Tensor:
    return _like(t, randn, dtype, device, requires_grad, seed=seed, generator=generator)


def rand_like(t: Tensor, dtype=None, device=None, requires_grad=False, seed=None, generator=None) -> Tensor:
    return _like(t, rand, dtype, device, requires_grad, seed=seed, generator=generator)
