"""tinygrad_dot: a small tensor framework with NumPy semantics, PyTorch habits,
its own CUDA GEMM kernels and an autograd tape for training linear models.

    import tinygrad_dot as td
    w = td.randn(3, 2, requires_grad=True, seed=0)
    loss = ((td.tensor([[1.0, 2.0, 3.0]]) @ w) ** 2).mean()
    loss.backward()          # w.grad now holds d loss / d w
"""
from __future__ import annotations

import numpy as _np

from . import cuda
from . import ops as _ops
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import GradcheckError, gradcheck
from .ops import cat, dot, matmul, stack, where
from .random import manual_seed
from .tensor import (Tensor, arange, eye, from_numpy, full, ones, ones_like, randn, tensor, zeros,
                     zeros_like)


def _function_of(op):
    """``td.exp(x)`` and friends: the op, taking array-likes as well as tensors."""
    def function(x, *args, **kwargs):
        return op(x if isinstance(x, Tensor) else Tensor(x), *args, **kwargs)

    function.__name__ = function.__qualname__ = op.__name__.rstrip("_")
    function.__doc__ = op.__doc__
    return function


exp, log, sqrt, abs, relu, sigmoid, tanh, clamp = map(_function_of, (
    _ops.exp, _ops.log, _ops.sqrt, _ops.abs_, _ops.relu, _ops.sigmoid, _ops.tanh, _ops.clamp))
softmax, log_softmax, logsumexp = map(_function_of, (_ops.softmax, _ops.log_softmax, _ops.logsumexp))
sum, mean, var, max, min = map(_function_of, (_ops.sum_, _ops.mean, _ops.var, _ops.max_, _ops.min_))  # noqa: A001
reshape, permute, transpose, squeeze, unsqueeze, flatten = map(_function_of, (
    _ops.reshape, _ops.permute, _ops.transpose, _ops.squeeze, _ops.unsqueeze, _ops.flatten))

from . import data, io, nn, optim  # noqa: E402  (they build on the names above)
from .io import load, save  # noqa: E402



def _installed_version() -> str:
    """The version pip installed (pyproject.toml's, one home for it); a source tree on
    PYTHONPATH that was never installed says so instead of guessing."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tinygrad_dot")
    except PackageNotFoundError:
        return "0+unknown"


__version__ = _installed_version()


def __getattr__(name):
    # td.models needs scikit-learn (the "models" extra) and td.distributed Dask (the "dask" extra):
    # imported on first use, so that `import tinygrad_dot` needs only NumPy.
    if name in ("models", "distributed"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

float16 = _np.dtype(_np.float16)
float32 = _np.dtype(_np.float32)
float64 = _np.dtype(_np.float64)
int32 = _np.dtype(_np.int32)
int64 = _np.dtype(_np.int64)
bool_ = _np.dtype(_np.bool_)

__all__ = [
    "Tensor", "tensor", "from_numpy", "zeros", "ones", "zeros_like", "ones_like", "full", "arange", "eye", "randn",
    "manual_seed",
    "dot", "matmul", "cat", "stack", "where",
    "exp", "log", "sqrt", "abs", "relu", "sigmoid", "tanh", "clamp", "softmax", "log_softmax", "logsumexp",
    "sum", "mean", "var", "max", "min", "reshape", "permute", "transpose", "squeeze", "unsqueeze", "flatten",
    "nn", "optim", "models", "distributed", "data", "io", "save", "load",
    "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "gradcheck", "GradcheckError", "cuda",
    "float16", "float32", "float64", "int32", "int64", "bool_",
]
