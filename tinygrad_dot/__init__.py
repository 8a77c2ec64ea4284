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
from .autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .creation import (arange, empty, empty_like, eye, full, full_like, linspace, logspace, ones, ones_like, rand,
                       rand_like, randint, randn, randn_like, zeros, zeros_like)
from .gradcheck import GradcheckError, gradcheck
from .ops import cat, dot, matmul, maximum, minimum, stack, where
from .random import manual_seed
from .tensor import Size, Tensor, from_numpy, sparse_csc, sparse_csr, strided, tensor


def _function(op):
    """``td.exp(x)`` and friends, the one form of every td.* function of a tensor: the op
    itself, with array-likes (lists, NumPy arrays) accepted as its first argument."""
    def function(x, *args, **kwargs):
        return op(x if isinstance(x, Tensor) else Tensor(x), *args, **kwargs)

    function.__name__ = function.__qualname__ = op.__name__
    function.__doc__ = op.__doc__
    return function


exp, log, log1p, sqrt, abs, sign = map(_function, (_ops.exp, _ops.log, _ops.log1p, _ops.sqrt, _ops.abs, _ops.sign))
relu, sigmoid, tanh, clamp = map(_function, (_ops.relu, _ops.sigmoid, _ops.tanh, _ops.clamp))
softmax, log_softmax, logsumexp = map(_function, (_ops.softmax, _ops.log_softmax, _ops.logsumexp))
sum, mean, var, std, norm = map(_function, (_ops.sum, _ops.mean, _ops.var, _ops.std, _ops.norm))  # noqa: A001
max, min, amax, amin, argmax, argmin = map(_function, (  # noqa: A001
    _ops.max, _ops.min, _ops.amax, _ops.amin, _ops.argmax, _ops.argmin))
any, all = map(_function, (_ops.any, _ops.all))  # noqa: A001
reshape, permute, transpose, squeeze, unsqueeze, flatten = map(_function, (
    _ops.reshape, _ops.permute, _ops.transpose, _ops.squeeze, _ops.unsqueeze, _ops.flatten))
gather, scatter_add, masked_fill = map(_function, (_ops.gather, _ops.scatter_add, _ops.masked_fill))

from . import data, io, nn, optim, sparse  # noqa: E402  (they build on the names above)
from .sparse import sparse_csr_tensor  # noqa: E402
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
int8, int16, uint8 = _np.dtype(_np.int8), _np.dtype(_np.int16), _np.dtype(_np.uint8)
# PyTorch's other spellings (td.long, td.bool, ...); not in __all__, so that a star import
# does not hide Python's own float, int and bool.
half, float, double, int, long, bool = float16, float32, float64, int32, int64, bool_  # noqa: A001

__all__ = [
    "Tensor", "Size", "tensor", "from_numpy", "zeros", "ones", "empty", "full", "zeros_like", "ones_like",
    "empty_like", "full_like", "arange", "linspace", "logspace", "eye", "randn", "rand", "randint", "randn_like",
    "rand_like", "manual_seed",
    "dot", "matmul", "cat", "stack", "where", "maximum", "minimum",
    "exp", "log", "log1p", "sqrt", "abs", "sign", "relu", "sigmoid", "tanh", "clamp", "softmax", "log_softmax",
    "logsumexp", "sum", "mean", "var", "std", "norm", "max", "min", "amax", "amin", "argmax", "argmin", "any", "all",
    "reshape", "permute", "transpose", "squeeze", "unsqueeze", "flatten", "gather", "scatter_add", "masked_fill",
    "strided", "sparse_csr", "sparse_csc", "sparse_csr_tensor", "sparse",
    "nn", "optim", "models", "distributed", "data", "io", "save", "load",
    "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "inference_mode", "gradcheck", "GradcheckError",
    "cuda", "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool_",
]
