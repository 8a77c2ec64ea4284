"""In-place parameter initialisers with PyTorch's names and formulas (``td.nn.init``).

Random numbers are drawn on the host by a NumPy generator (``generator=`` or
``seed=``; neither draws from fresh OS entropy), so a seed gives the same
weights on every device, then copied into the tensor's storage.
"""
from __future__ import annotations

import math

import numpy as np

from .. import random
from ..tensor import Tensor


def _fill(tensor: Tensor, values) -> Tensor:
    """Write ``values`` (host data or a number) into the tensor's storage, outside autograd (as
    PyTorch's init runs under no_grad), and record the change for backward()'s version check."""
    if isinstance(values, np.ndarray):
        values = tensor._backend.asarray(values.astype(tensor.dtype, copy=False))
    tensor.array[...] = values
    tensor._bump()
    return tensor


def _fans(tensor: Tensor):
    """(fan_in, fan_out) as PyTorch computes them: dims 1 and 0 times the receptive field."""
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor of at least 2 dimensions, got shape {tensor.shape}")
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def calculate_gain(nonlinearity: str, param=None) -> float:
    if nonlinearity in ("linear", "sigmoid", "identity"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def zeros_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 0)


def ones_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 1)


def constant_(tensor: Tensor, val: float) -> Tensor:
    return _fill(tensor, val)


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None, seed=None) -> Tensor:
    return _fill(tensor, random.generator(generator, seed).uniform(a, b, size=tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None, seed=None) -> Tensor:
    return _fill(tensor, random.generator(generator, seed).normal(mean, std, size=tensor.shape))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None, seed=None) -> Tensor:
    fan_in, fan_out = _fans(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator=generator, seed=seed)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None, seed=None) -> Tensor:
    fan_in, fan_out = _fans(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator=generator, seed=seed)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator=None, seed=None) -> Tensor:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = _fans(tensor)[0 if mode == "fan_in" else 1]
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return uniform_(tensor, -bound, bound, generator=generator, seed=seed)


__all__ = ["calculate_gain", "zeros_", "ones_", "constant_", "uniform_", "normal_", "xavier_uniform_",
           "xavier_normal_", "kaiming_uniform_"]
