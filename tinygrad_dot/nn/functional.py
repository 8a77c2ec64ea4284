"""Losses and activations with PyTorch's names and semantics (``td.nn.functional``).

The losses and ``linear`` are fused ops: one forward and one hand-derived
vector-Jacobian product per input, recorded on the tape as a single node. That
is faster than composing the elementary ops (fewer nodes, fewer temporaries)
and numerically steadier (log-sum-exp, ``softmax - onehot``).
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from .. import ops
from ..autograd import is_grad_enabled, record
from ..tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _tensor_like(value, like: Tensor, name: str) -> Tensor:
    """A target given as a tensor, NumPy array, list or number, on ``like``'s device."""
    if isinstance(value, Tensor):
        if value._backend.name != like._backend.name:
            raise RuntimeError(f"{name} is on {value.device} but the input is on {like.device}; "
                               f"move it with .to({like.device!r})")
        return value
    if like._backend.is_array(value):
        return Tensor._wrap(value, like._backend)
    return Tensor(value, device=like._backend)


# ----------------------------------------------------------------- linear


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias`` with weight of shape (out_features, in_features).

    Backward: dW = G^T X is computed directly in W's (out, in) layout, so it needs
    no transposed copy (and never takes the X^T G route, which PyTorch on the CPU
    runs several times slower).
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"linear: input must be a td.Tensor, got {type(input).__name__}; wrap it with td.tensor(...)")
    x, w = input.array, weight.array  # checks on the raw arrays: this runs every step
    if x.dtype != w.dtype or (bias is not None and bias.array.dtype != w.dtype):
        # One rule with matmul (and PyTorch): products never promote silently.
        raise TypeError(f"linear: input is {x.dtype} but the weight is {w.dtype}"
                        + ("" if bias is None else f" and the bias {bias.array.dtype}")
                        + f"; convert one of them (e.g. x.to(td.{w.dtype}) or module.to(dtype=...)) "
                        "rather than mixing precisions")
    if w.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"linear: input of shape {input.shape} does not match weight of shape {weight.shape} "
                         f"(its last dimension must be in_features={w.shape[1]})")
    device = input._backend.name  # a device is its name (Backend.__eq__), whichever backend object
    if weight._backend.name != device or (bias is not None and bias._backend.name != device):
        raise RuntimeError(f"linear: input is on {input.device}, weight on {weight.device}"
                           + ("" if bias is None else f", bias on {bias.device}") + "; move them to one device")
    backend = input._backend
    mm = backend.matmul
    out_features = w.shape[0]
    x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])  # any leading shape -> rows
    out = mm(x2, w.T)
    if bias is not None:
        out += bias.array  # in place: the product is a fresh array
    if x.ndim != 2:
        out = out.reshape(x.shape[:-1] + (out_features,))

    def rows(g):
        return g if g.ndim == 2 else g.reshape(-1, out_features)

    def grad_input(g):
        return mm(rows(g), w).reshape(x.shape)

    def grad_weight(g):
        return mm(rows(g).T, x2)

    def grad_bias(g):
        return backend.column_sums(rows(g))

    edges = [(input, grad_input), (weight, grad_weight)]
    if bias is not None:
        edges.append((bias, grad_bias))
    return record(Tensor, out, backend, *edges, op="linear", saved=(input, weight))


# ----------------------------------------------------------------- activations


def softmax(input: Tensor, dim: int = -1) -> Tensor:
    return ops.softmax(input, axis=dim)


def log_softmax(input: Tensor, dim: int = -1) -> Tensor:
    return ops.log_softmax(input, axis=dim)


def relu(input: Tensor) -> Tensor:
    return ops.relu(input)


def sigmoid(input: Tensor) -> Tensor:
    return ops.sigmoid(input)


# ----------------------------------------------------------------- losses


def _reduced_loss(per_element, local_grad, reduction, dtype, input: Tensor, target: Tensor | None = None):
    """Record a loss from its per-element values and d(per_element)/d(input).

    ``local_grad`` has the input's shape; the target's gradient (when it needs
    one) is its negative, which holds for every difference-based loss here. Both
    may be wider than ``dtype``, the loss's dtype (see _paired): the sum then
    accumulates in that width, and each gradient leaves in its tensor's dtype.
    """
    xp = input.xp
    if reduction == "none":
        out = per_element
        scale = None
    else:
        total = per_element.sum()
        count = per_element.size
        out = total / count if reduction == "mean" else total
        scale = 1.0 / count if reduction == "mean" and count else 1.0
    out = xp.asarray(out, dtype=dtype)

    def grad_input(g):
        if scale is None:
            return local_grad * g.reshape(per_element.shape + (1,) * (local_grad.ndim - per_element.ndim))
        return local_grad * (g * scale)

    edges = [(input, lambda g: ops._narrow(grad_input(g), input.array.dtype))]
    if target is not None:
        edges.append((target, lambda g: ops._narrow(-grad_input(g), target.array.dtype)))
    return record(Tensor, out, input._backend, *edges)


def _paired(name, input, target, reduction):
    """Input and target arrays of a loss in the width it computes in, and the loss's dtype.

    The dtype is a floating input's (a float64 target array does not turn a float32
    model's loss into float64); for an integer input the pair's promoted dtype, and
    float32 when both hold integers (a loss is never truncated). float16 computes
    in float32."""
    _check_reduction(reduction)
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a tensor, got {type(input).__name__}")
    target = _tensor_like(target, input, f"{name}: target")
    if target.shape != input.shape:
        # PyTorch only warns here and broadcasts, which turns (n, 1) vs (n,) into an
        # (n, n) loss that trains silently wrong; a clear error is kinder.
        raise ValueError(f"{name}: input shape {input.shape} and target shape {target.shape} differ; "
                         "reshape one of them (e.g. target.reshape(-1, 1) or input.reshape(-1))")
    x, y = input.array, target.array
    common = x.dtype if x.dtype.kind == "f" or x.dtype == y.dtype else ops._result_dtype(input, target)
    wide, dtype = ops._float_dtypes(common)
    wide = wide or dtype
    return target, x.astype(wide, copy=False), y.astype(wide, copy=False), dtype


def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """Mean squared error: mean((input - target) ** 2)."""
    target, x, y, dtype = _paired("mse_loss", input, target, reduction)
    diff = x - y
    return _reduced_loss(diff * diff, 2 * diff, reduction, dtype, input, target)


def l1_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """Mean absolute error; its gradient at a tie (input == target) is 0, as in PyTorch."""
    target, x, y, dtype = _paired("l1_loss", input, target, reduction)
    diff = x - y
    return _reduced_loss(input.xp.abs(diff), input.xp.sign(diff), reduction, dtype, input, target)


def binary_cross_entropy_with_logits(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """-[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))], computed as
    max(z, 0) - z y + log1p(exp(-|z|)), which never overflows.
    Gradient with respect to z: sigmoid(z) - y."""
    target, z, y, dtype = _paired("binary_cross_entropy_with_logits", input, target, reduction)
    if target.requires_grad:
        raise NotImplementedError("binary_cross_entropy_with_logits: gradients with respect to the target "
                                  "are not supported; pass target.detach()")
    xp = input.xp
    per = xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))
    prob = 0.5 * (1 + xp.tanh(0.5 * z))  # sigmoid without overflow
    return _reduced_loss(per, prob - y, reduction, dtype, input)


def _class_targets(target, logits: Tensor):
    """Integer class indices (N,) on the logits' device, checked where it is cheap."""
    n, classes = logits.shape
    if isinstance(target, Tensor):
        if target._backend.name != logits._backend.name:
            raise RuntimeError(f"cross_entropy: target is on {target.device} but the input is on {logits.device}")
        array = target.array
    elif logits._backend.is_array(target):
        array = target
    else:
        array = logits._backend.asarray(np.asarray(target))
    if array.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class indices, got dtype {array.dtype} "
                        "(convert labels with .astype(int); class probabilities are not supported)")
    if array.shape != (n,):
        raise ValueError(f"cross_entropy: target shape {tuple(array.shape)} does not match input shape "
                         f"{logits.shape}; expected ({n},)")
    # Checked on the host only (on a GPU it would synchronise every step). Viewed as unsigned,
    # a negative index becomes huge, so one max() catches both ends.
    if isinstance(array, np.ndarray) and n and array.view(array.dtype.str.replace("i", "u")).max() >= classes:
        raise IndexError(f"cross_entropy: target values must lie in [0, {classes}), got "
                         f"[{array.min()}, {array.max()}]")
    return array


def _exp_rows(z, shift, backend, xp):
    """exp(z - shift) and its row sums (a column, to divide the rows by)."""
    probs = z - shift
    xp.exp(probs, out=probs)
    return probs, backend.row_sums(probs)[:, None]


def _softmax_rows(z, picks, backend, xp):
    """exp(z - shift), its row sums and -log softmax(z)[y] of each row, shifted by the max.

    On the host one global max is used when it is finite and safe (NumPy's per-row
    max over short rows costs as much as the rest of the loss); per-row maxima
    otherwise: when some row lies far below the global max (its sum of exponentials
    comes out too small), or a NaN or inf logit makes the global max useless for
    every row. A row holding NaN, +inf or only -inf then gets a NaN loss (inf - inf),
    as in PyTorch, and poisons no other row."""
    if xp is np and z.size:
        shift = z.max()
        if math.isfinite(shift):
            probs, norm = _exp_rows(z, shift, backend, xp)
            if norm.min() >= 1e-8:
                return probs, norm, _nll_rows(z, picks, shift, norm, xp)
    with np.errstate(invalid="ignore") if xp is np else contextlib.nullcontext():  # inf - inf: no warning
        shift = z.max(axis=1, keepdims=True)
        probs, norm = _exp_rows(z, shift, backend, xp)
        return probs, norm, _nll_rows(z, picks, shift.reshape(-1), norm, xp)


def _nll_rows(z, picks, shift, norm, xp):
    # -log softmax(z)[y] = log(sum exp(z - shift)) - (z[y] - shift)
    picked = z.reshape(-1)[picks]
    picked -= shift  # before the log term: no cancellation at large z
    per = xp.log(norm).reshape(-1)
    per -= picked
    return per


def cross_entropy(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of logits (N, C) against integer classes (N,).

    Forward through log-sum-exp (logits of 1e4 stay finite); the gradient is
    (softmax(input) - onehot(target)) times the incoming gradient, divided by N
    for ``reduction="mean"``. A NaN or +inf logit makes only its own sample's
    loss NaN (as in PyTorch). float16 logits compute in float32.
    """
    _check_reduction(reduction)
    if not isinstance(input, Tensor):
        raise TypeError(f"cross_entropy: input must be a tensor, got {type(input).__name__}")
    if input.ndim != 2:
        raise ValueError(f"cross_entropy: input must be logits of shape (N, C), got shape {input.shape}")
    labels = _class_targets(target, input)
    xp, backend = input.xp, input._backend
    dtype = input.array.dtype
    z = input.array
    if dtype.kind != "f" or dtype in ops._WIDER:  # integers and float16 compute in float32
        wide, dtype = ops._float_dtypes(dtype)
        z = z.astype(wide)
    n, classes = z.shape
    # Flat positions of the target logits: 1-D fancy indexing is cheaper than z[rows, labels].
    picks = xp.arange(0, n * classes, classes)
    picks += labels
    probs, norm, per = _softmax_rows(z, picks, backend, xp)
    if reduction == "none":
        out = ops._narrow(per, dtype)
    else:
        out = xp.asarray(per.sum() / n if reduction == "mean" else per.sum(), dtype=dtype)
    if not (input.requires_grad and is_grad_enabled()):
        return Tensor._wrap(out, backend)

    # d loss / d logits = (softmax - onehot) [/ n], built in place in the exp buffer; the
    # vjp then only scales it by the incoming gradient.
    dlogits = probs
    dlogits /= norm
    dlogits.reshape(-1)[picks] -= 1
    if reduction == "mean":
        dlogits *= dlogits.dtype.type(1.0 / n) if n else 0
    dlogits = ops._narrow(dlogits, dtype)

    def grad_input(g):
        return dlogits * (g.reshape(n, 1) if reduction == "none" else g)

    return record(Tensor, out, backend, (input, grad_input))


__all__ = ["linear", "softmax", "log_softmax", "relu", "sigmoid", "mse_loss", "l1_loss",
           "binary_cross_entropy_with_logits", "cross_entropy"]
