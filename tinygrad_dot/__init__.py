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
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import GradcheckError, gradcheck
from .ops import (abs_ as abs, dot, exp, log, log_softmax, logsumexp, matmul, relu, sigmoid, softmax, tanh)
from .tensor import Tensor, ones, ones_like, randn, tensor, zeros, zeros_like
from . import data, io, models, nn, optim  # noqa: E402  (they build on the names above)
from .io import load, save

__version__ = "0.1.0"

float16 = _np.dtype(_np.float16)
float32 = _np.dtype(_np.float32)
float64 = _np.dtype(_np.float64)
int32 = _np.dtype(_np.int32)
int64 = _np.dtype(_np.int64)
bool_ = _np.dtype(_np.bool_)

__all__ = [
    "Tensor", "tensor", "zeros", "ones", "zeros_like", "ones_like", "randn",
    "dot", "matmul", "exp", "log", "relu", "sigmoid", "tanh", "abs", "softmax", "log_softmax", "logsumexp",
    "nn", "optim", "models", "data", "io", "save", "load",
    "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "gradcheck", "GradcheckError", "cuda",
    "float16", "float32", "float64", "int32", "int64", "bool_",
]
