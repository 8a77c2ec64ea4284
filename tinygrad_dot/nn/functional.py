"""Losses and activations with PyTorch's names and semantics (``td.nn.functional``).

The losses and ``linear`` are fused ops: one forward and one hand-derived
vector-Jacobian product per input, recorded on the tape as a single node. That
is faster than composing the elementary ops (fewer nodes, fewer temporaries)
and numerically steadier (log-sum-exp, ``softmax - onehot``).
"""
from __future__ import annotations

import contextlib
import math
import numbers
import warnings

import numpy as np

from .. import ops, random
from ..autograd import is_grad_enabled, record
from ..runtime import graphs
from ..tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduction(size_average, reduce, reduction):
    """The reduction, honouring PyTorch's deprecated ``size_average``/``reduce`` pair
    (kept so that the positional order of every loss's arguments is PyTorch's)."""
    if size_average is not None or reduce is not None:
        warnings.warn("size_average and reduce are deprecated (as in PyTorch); use reduction='mean', 'sum' "
                      "or 'none'", DeprecationWarning, stacklevel=3)
        reduction = "none" if reduce is False else "sum" if size_average is False else "mean"
    _check_reduction(reduction)
    return reduction


def _constant(value, like: Tensor, name: str, dtype, shape=None):
    """A loss's constant (weight, pos_weight) as an array on ``like``'s device in the
    loss's computing ``dtype``. Gradients do not flow into it, so one that asks for
    them is refused rather than silently left at None. ``shape``: what it must
    broadcast to without growing it."""
    if isinstance(value, Tensor) and value.requires_grad and is_grad_enabled():
        raise NotImplementedError(f"{name}: gradients with respect to it are not supported; pass {name}.detach()")
    array = _tensor_like(value, like, name).array
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}")
    if shape is not None:
        try:
            grown = np.broadcast_shapes(array.shape, shape) != tuple(shape)
        except ValueError:
            grown = True
        if grown:
            raise ValueError(f"{name} of shape {tuple(array.shape)} does not broadcast to the input's shape "
                             f"{tuple(shape)}")
    return array.astype(dtype, copy=False)


def _tensor_like(value, like: Tensor, name: str) -> Tensor:
    """A target given as a tensor, NumPy array, list or number, on ``like``'s device."""
    if isinstance(value, Tensor):
        try:
            ops.check_device(like, value)
        except RuntimeError as exc:  # the shared message, prefixed with which argument it is
            raise RuntimeError(f"{name}: {exc}") from None
        return value
    if like._backend.is_array(value):
        return Tensor._wrap(value, like._backend)
    return Tensor(value, device=like._backend)


# ----------------------------------------------------------------- linear


def _check_linear(name: str, input: Tensor, weight: Tensor, bias: Tensor | None):
    """What linear() and the fused linear losses require of their operands."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a td.Tensor, got {type(input).__name__}; wrap it with td.tensor(...)")
    x, w = input.array, weight.array  # checks on the raw arrays: this runs every step
    if x.dtype != w.dtype or (bias is not None and bias.array.dtype != w.dtype):
        # One rule with matmul (and PyTorch): products never promote silently.
        raise TypeError(f"{name}: input is {x.dtype} but the weight is {w.dtype}"
                        + ("" if bias is None else f" and the bias {bias.array.dtype}")
                        + f"; convert one of them (e.g. x.to(td.{w.dtype}) or module.to(dtype=...)) "
                        "rather than mixing precisions")
    if w.ndim != 2:
        raise ValueError(f"{name}: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"{name}: input of shape {input.shape} does not match weight of shape {weight.shape} "
                         f"(its last dimension must be in_features={w.shape[1]})")
    device = input._backend.name  # a device is its name (Backend.__eq__), whichever backend object
    if weight._backend.name != device or (bias is not None and bias._backend.name != device):
        raise RuntimeError(f"{name}: input is on {input.device}, weight on {weight.device}"
                           + ("" if bias is None else f", bias on {bias.device}") + "; move them to one device")


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias`` with weight of shape (out_features, in_features).

    Backward: dW = G^T X is computed directly in W's (out, in) layout, so it needs
    no transposed copy (and never takes the X^T G route, which PyTorch on the CPU
    runs several times slower).
    """
    _check_linear("linear", input, weight, bias)
    x, w = input.array, weight.array
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


def _softmax_dim(input: Tensor, dim, name: str) -> int:
    """PyTorch's implicit dimension when ``dim`` is None (0 for 0-, 1- and 3-D input,
    1 otherwise), with its warning: the choice surprises on 3-D input."""
    if dim is not None:
        return dim
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated (as in PyTorch); pass dim=",
                  UserWarning, stacklevel=3)
    return 0 if input.ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: int | None = None, *, dtype=None) -> Tensor:
    """Softmax along ``dim``; ``dtype`` casts the input first (as PyTorch's ``dtype=``)."""
    dim = _softmax_dim(input, dim, "softmax")
    return (input if dtype is None else input.to(dtype=dtype)).softmax(dim=dim)


def log_softmax(input: Tensor, dim: int | None = None, *, dtype=None) -> Tensor:
    dim = _softmax_dim(input, dim, "log_softmax")
    return (input if dtype is None else input.to(dtype=dtype)).log_softmax(dim=dim)


def _maybe_in_place(input: Tensor, result: Tensor, inplace: bool) -> Tensor:
    """PyTorch's ``inplace=True``: the result written into the input's storage when the
    input is outside autograd. Under autograd td's tape cannot rewrite a recorded
    tensor, so the result comes back as a new tensor: what ``x = layer(x)`` uses."""
    if inplace and not (input.requires_grad and is_grad_enabled()):
        return input.copy_(result)
    return result


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return _maybe_in_place(input, input.relu(), inplace)


def sigmoid(input: Tensor) -> Tensor:
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


def _check_probability(p) -> None:
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p!r}")


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1 / (1 - p), so
    the expected value is unchanged; the identity when not ``training`` or p = 0.

    The mask is drawn on the host from td's default generator (``td.manual_seed``
    repeats it, on every device) and applied as one product; the gradient is the
    incoming one times the same mask. ``inplace``: see _maybe_in_place.
    """
    _check_probability(p)
    if not isinstance(input, Tensor):
        raise TypeError(f"dropout: input must be a td.Tensor, got {type(input).__name__}")
    if not training or p == 0:
        return input
    dtype = input.array.dtype
    if dtype.kind != "f":
        raise TypeError(f"dropout: input must be floating point, got dtype {dtype}")
    if graphs.capturing(input._backend.name):
        # The mask comes from the host: a graph would replay the capture's mask every time.
        raise graphs.CaptureError(
            "dropout draws its mask on the host, so a CUDA graph would replay the same mask at every replay; "
            "capture the step with the model in eval() (or without dropout)")
    keep = random.generator().random(input.shape) >= p
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    mask = input._backend.asarray((keep * scale).astype(dtype))
    return _maybe_in_place(input, record(Tensor, input.array * mask, input._backend, (input, lambda g: g * mask)),
                           inplace)


# ----------------------------------------------------------------- losses


def _quiet(xp):
    """NumPy's warnings off for arithmetic whose NaN is the intended answer (inf - inf
    in a row of infinite logits, 0 / 0 in a mean over no counted rows)."""
    return np.errstate(invalid="ignore", divide="ignore") if xp is np else contextlib.nullcontext()


def _reduced_loss(per_element, local_grad, reduction, dtype, input: Tensor, target: Tensor | None = None,
                  target_grad=None, divisor=None):
    """Record a loss from its per-element values and d(per_element)/d(input).

    ``local_grad`` has the input's shape; the target's gradient (when it needs
    one) is ``target_grad``, by default ``-local_grad``, which holds for every
    difference-based loss. Both may be wider than ``dtype``, the loss's dtype
    (see _paired): the sum then accumulates in that width, and each gradient
    leaves in its tensor's dtype. ``divisor``: what the mean divides by, when not
    the element count (a weighted mean's sum of weights, an array).
    """
    xp = input.xp
    if reduction == "none":
        out = per_element
        scale = None
    elif divisor is None:
        total = per_element.sum()
        count = per_element.size
        out = total / count if reduction == "mean" else total
        scale = 1.0 / count if reduction == "mean" and count else 1.0
    else:
        with _quiet(xp):
            out = per_element.sum() / divisor if reduction == "mean" else per_element.sum()
            scale = 1.0 / divisor if reduction == "mean" else 1.0
    out = xp.asarray(out, dtype=dtype)

    def scaled(local, g):
        if scale is None:
            return local * g.reshape(per_element.shape + (1,) * (local.ndim - per_element.ndim))
        return local * (g * scale)

    edges = [(input, lambda g: ops._narrow(scaled(local_grad, g), input.array.dtype))]
    if target is not None:
        if target_grad is None:
            edges.append((target, lambda g: ops._narrow(-scaled(local_grad, g), target.array.dtype)))
        else:
            edges.append((target, lambda g: ops._narrow(scaled(target_grad, g), target.array.dtype)))
    return record(Tensor, out, input._backend, *edges)


def _paired(name, input, target):
    """Input and target arrays of a loss in the width it computes in, and the loss's dtype.

    The dtype is a floating input's (a float64 target array does not turn a float32
    model's loss into float64); for an integer input the pair's promoted dtype, and
    float32 when both hold integers (a loss is never truncated). float16 computes
    in float32."""
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


def _difference_loss(name, per, local, weight, reduction, dtype, input, target, x):
    """Record a loss of the difference input - target. ``weight`` (the input's shape, as
    PyTorch requires) multiplies each element, and a mean then divides by the sum of
    the weights, as PyTorch's weighted mse_loss and l1_loss do."""
    if weight is None:
        return _reduced_loss(per, local, reduction, dtype, input, target)
    w = _constant(weight, input, f"{name}: weight", x.dtype)
    if w.shape != x.shape:
        raise ValueError(f"{name}: weight of shape {tuple(w.shape)} must have the input's shape {input.shape}")
    return _reduced_loss(w * per, w * local, reduction, dtype, input, target, divisor=w.sum())


def mse_loss(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean",
             weight=None) -> Tensor:
    """Mean squared error: mean((input - target) ** 2); ``weight``: see _difference_loss."""
    reduction = _reduction(size_average, reduce, reduction)
    target, x, y, dtype = _paired("mse_loss", input, target)
    diff = x - y
    return _difference_loss("mse_loss", diff * diff, 2 * diff, weight, reduction, dtype, input, target, x)


def l1_loss(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean",
            weight=None) -> Tensor:
    """Mean absolute error; its gradient at a tie (input == target) is 0, as in PyTorch;
    ``weight``: see _difference_loss."""
    reduction = _reduction(size_average, reduce, reduction)
    target, x, y, dtype = _paired("l1_loss", input, target)
    diff = x - y
    xp = input.xp
    return _difference_loss("l1_loss", xp.abs(diff), xp.sign(diff), weight, reduction, dtype, input, target, x)


def binary_cross_entropy_with_logits(input: Tensor, target, weight=None, size_average=None, reduce=None,
                                     reduction: str = "mean", pos_weight=None) -> Tensor:
    """-w [p y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))] for logits z and targets y.

    ``weight`` w rescales each element, ``pos_weight`` p the positive term (both
    broadcast to the input's shape: one p per class along the last dimension, as
    in PyTorch; 1 when not given). With softplus(z) = log(1 + e^z) =
    max(z, 0) + log1p(exp(-|z|)), which never overflows, the loss is
    w [(1 + (p - 1) y) softplus(z) - p y z]; its gradient is
    w [(1 + (p - 1) y) sigmoid(z) - p y] with respect to z (sigmoid(z) - y
    without weights) and w [(p - 1) softplus(z) - p z] with respect to y.
    """
    reduction = _reduction(size_average, reduce, reduction)
    target, z, y, dtype = _paired("binary_cross_entropy_with_logits", input, target)
    xp = input.xp
    softplus = xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))
    prob = ops.stable_sigmoid(xp, z)
    if pos_weight is None:
        per, dz, dy = softplus - z * y, prob - y, -z
    else:
        p = _constant(pos_weight, input, "binary_cross_entropy_with_logits: pos_weight", z.dtype, z.shape)
        positive = p * y
        both = 1 + positive - y
        per, dz, dy = both * softplus - positive * z, both * prob - positive, (p - 1) * softplus - p * z
    if weight is not None:
        w = _constant(weight, input, "binary_cross_entropy_with_logits: weight", z.dtype, z.shape)
        per, dz, dy = w * per, w * dz, w * dy
    return _reduced_loss(per, dz, reduction, dtype, input, target, target_grad=dy)


def _class_targets(array, shape: tuple, device: str, ignore_index: int | None, name: str = "cross_entropy"):
    """Integer class indices (N,) for logits of ``shape`` (N, C) on ``device``, checked where
    it is cheap, and which rows count: None when all do (known on the host), else a bool mask.
    ``ignore_index`` None: no index is ignored (every row counts)."""
    n, classes = shape
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name}: target must hold integer class indices, or class probabilities of the "
                        f"input's shape {shape}; got dtype {array.dtype} and shape {tuple(array.shape)} "
                        "(convert labels with .astype(int))")
    if array.shape != (n,):
        raise ValueError(f"{name}: target shape {tuple(array.shape)} does not match input shape "
                         f"{shape}; expected ({n},)")
    if graphs.capturing(device):
        # Inside a CUDA graph capture the host may not read the device: nothing is
        # checked (docs/cuda_graphs.md says so) and the mask is always built. Elsewhere
        # the check below runs on every device (on a GPU it costs one small reduction
        # and a sync per step): an index past a row would read the next row's logit.
        return array, array != ignore_index
    # Viewed as unsigned, a negative index becomes huge, so one max() catches both ends;
    # passing it also proves that the default (negative) ignore_index is absent.
    if n and array.view(array.dtype.str.replace("i", "u")).max() >= classes:
        outside = (array < 0) | (array >= classes)
        valid = None if ignore_index is None else array != ignore_index
        wrong = array[outside if valid is None else valid & outside]
        if wrong.size:
            raise IndexError(f"{name}: target values must lie in [0, {classes})"
                             + ("" if ignore_index is None else f" or equal ignore_index={ignore_index}")
                             + f", got values in [{wrong.min()}, {wrong.max()}]")
        return array, valid
    if ignore_index is not None and 0 <= ignore_index < classes:  # an ignored class among the valid ones
        valid = array != ignore_index
        return array, None if valid.all() else valid
    return array, None


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
    if backend.name == "cpu" and z.size:  # reads the max on the host: the CPU only (see _class_targets)
        shift = z.max()
        if math.isfinite(shift):
            probs, norm = _exp_rows(z, shift, backend, xp)
            if norm.min() >= 1e-8:
                return probs, norm, _nll_rows(z, picks, shift, norm, xp)
    with _quiet(xp):  # inf - inf: no warning
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


def cross_entropy(input: Tensor, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of logits (N, C) against integer classes (N,) or class
    probabilities (N, C); also (C,) and (N, C, d1, ...) logits, as in PyTorch.

    Forward through log-sum-exp (logits of 1e4 stay finite); the gradient is
    (softmax(input) - onehot(target)) times the incoming gradient, divided by N
    for ``reduction="mean"``. A NaN or +inf logit makes only its own sample's
    loss NaN (as in PyTorch). float16 logits compute in float32. ``weight``
    (one per class), ``ignore_index`` and ``label_smoothing`` have PyTorch's
    meaning, weighted means included (see _cross_entropy_options).
    """
    reduction = _reduction(size_average, reduce, reduction)
    if not isinstance(input, Tensor):
        raise TypeError(f"cross_entropy: input must be a tensor, got {type(input).__name__}")
    # Options are checked only when given: ABC isinstance checks cost on every step.
    if ignore_index != -100 and (isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral)):
        raise TypeError(f"cross_entropy: ignore_index must be an int, got {ignore_index!r}")
    if label_smoothing and (not isinstance(label_smoothing, numbers.Real) or not 0.0 <= label_smoothing <= 1.0):
        raise ValueError(f"cross_entropy: label_smoothing must lie in [0, 1], got {label_smoothing!r}")
    if input.ndim != 2:
        return _class_layouts(cross_entropy, "cross_entropy", input, target, reduction, weight=weight,
                              ignore_index=ignore_index, label_smoothing=label_smoothing)
    target = _tensor_like(target, input, "cross_entropy: target")
    if target.array.dtype.kind == "f" and target.shape == input.shape:
        return _cross_entropy_probabilities(input, target, weight, label_smoothing, reduction)
    labels, valid = _class_targets(target.array, input.shape, input._backend.name, ignore_index)
    xp, backend = input.xp, input._backend
    dtype = input.array.dtype
    z = input.array
    if dtype.kind != "f" or dtype in ops._WIDER:  # integers and float16 compute in float32
        wide, dtype = ops._float_dtypes(dtype)
        z = z.astype(wide)
    n, classes = z.shape
    if valid is not None:
        labels = xp.where(valid, labels, 0)  # ignored rows pick class 0, then count for nothing
    # Flat positions of the target logits: 1-D fancy indexing is cheaper than z[rows, labels].
    picks = xp.arange(0, n * classes, classes)
    picks += labels
    probs, norm, per = _softmax_rows(z, picks, backend, xp)
    if valid is not None or weight is not None or label_smoothing:
        return _cross_entropy_options(input, z, labels, picks, probs, norm, per, valid, weight, label_smoothing,
                                      reduction, dtype)
    out = _reduce_rows(per, n, reduction, dtype, xp)
    if not (input.requires_grad and is_grad_enabled()):
        return Tensor._wrap(out, backend)

    # d loss / d logits = (softmax - onehot) [/ n], built in place in the exp buffer; the
    # vjp then only scales it by the incoming gradient.
    dlogits = probs
    dlogits /= norm
    dlogits.reshape(-1)[picks] -= 1
    if reduction == "mean":
        dlogits *= dlogits.dtype.type(1.0 / n) if n else 0
    return _record_rows(input, out, ops._narrow(dlogits, dtype), reduction)


def _reduce_rows(per, divisor, reduction, dtype, xp):
    """A row-wise loss's output from its rows' losses; a mean divides by ``divisor``."""
    if reduction == "none":
        return ops._narrow(per, dtype)
    return xp.asarray(per.sum() / divisor if reduction == "mean" else per.sum(), dtype=dtype)


def _record_rows(input: Tensor, out, dlogits, reduction):
    """Record a row-wise loss whose d loss / d logits, already scaled for the mean, is
    ``dlogits``: the vjp only scales it by the incoming gradient (one per row for "none")."""
    def grad_input(g):
        return dlogits * (g.reshape(-1, 1) if reduction == "none" else g)

    return record(Tensor, out, input._backend, (input, grad_input))


def _class_weights(weight, input: Tensor, classes: int, dtype, name: str):
    """``weight=`` of a loss over classes: one value per class, in the computing dtype."""
    w = _constant(weight, input, f"{name}: weight", dtype)
    if w.shape != (classes,):
        raise ValueError(f"{name}: weight must hold one value per class, shape ({classes},), got shape "
                         f"{tuple(w.shape)}")
    return w


def _counted(row_weight, valid, n: int, dtype, xp):
    """What a mean over rows divides by: the summed class weights of the rows that count
    (PyTorch's weighted mean), or their number without weights."""
    if row_weight is None:
        counted = n if valid is None else valid.sum()
    else:
        counted = (row_weight if valid is None else xp.where(valid, row_weight, 0)).sum()
    return xp.asarray(counted, dtype=dtype)


def _cross_entropy_options(input, z, labels, picks, probs, norm, per, valid, weight, smoothing, reduction, dtype):
    """cross_entropy with class weights w, ignored rows or label smoothing e.

    With C classes, a counted row i of class y has the loss
        (1 - e) w[y] (-log p[y]) + (e / C) sum_c w[c] (-log p[c])
    (w = 1 without ``weight``), an ignored row 0; the mean divides the sum by
    sum_i w[y_i] over the counted rows, not by their number (PyTorch's weighted
    mean, NaN when no row counts). The gradient of a counted row with respect to
    its logits is p (a + (e / C) sum(w)) - a onehot(y) - (e / C) w, a = (1 - e) w[y].
    """
    xp, backend = input.xp, input._backend
    n, classes = z.shape
    smoothing = float(smoothing)
    w = None if weight is None else _class_weights(weight, input, classes, z.dtype, "cross_entropy")
    row_weight = None if w is None else w[labels]
    a = 1.0 - smoothing if w is None else (1.0 - smoothing) * row_weight  # coefficient of -log p[y]
    loss = per * a
    if smoothing:
        minus_log_p = (per + z.reshape(-1)[picks])[:, None] - z  # log-sum-exp - z: each >= 0, no cancellation
        spread = backend.row_sums(minus_log_p if w is None else minus_log_p * w)
        loss += (smoothing / classes) * spread
    if valid is not None:
        loss = xp.where(valid, loss, 0)  # where, not a product: an ignored row's NaN stays out
    counted = _counted(row_weight, valid, n, z.dtype, xp) if reduction == "mean" else None
    with _quiet(xp):
        out = _reduce_rows(loss, counted, reduction, dtype, xp)
    if not (input.requires_grad and is_grad_enabled()):
        return Tensor._wrap(out, backend)

    total_weight = classes if w is None else w.sum()
    coefficient = a + (smoothing / classes) * total_weight
    dlogits = probs
    dlogits /= norm
    dlogits *= coefficient if w is None else coefficient[:, None]
    dlogits.reshape(-1)[picks] -= a
    if smoothing:
        dlogits -= (smoothing / classes) * (1.0 if w is None else w)
    if valid is not None:
        dlogits = xp.where(valid[:, None], dlogits, 0)
    if reduction == "mean":  # when no row counts, every row is 0 and stays 0 (PyTorch's gradient)
        dlogits /= xp.where(counted == 0, 1, counted)
    return _record_rows(input, out, ops._narrow(dlogits, dtype), reduction)


def _cross_entropy_probabilities(input, target, weight, smoothing, reduction):
    """cross_entropy against class probabilities t (N, C), PyTorch's soft targets.

    Row i: -sum_c w[c] t'[i, c] log p[i, c] with t' = (1 - e) t + e / C; the mean
    divides by N (not by weights, as in PyTorch for this form). Gradients:
    p s - w t' with respect to the logits, s = sum_c w[c] t'[c] per row, and
    -(1 - e) w log p with respect to the probabilities.
    """
    xp, backend = input.xp, input._backend
    z, dtype = input.array, input.array.dtype
    if dtype.kind != "f" or dtype in ops._WIDER:
        wide, dtype = ops._float_dtypes(dtype)
        z = z.astype(wide)
    n, classes = z.shape
    w = 1.0 if weight is None else _class_weights(weight, input, classes, z.dtype, "cross_entropy")
    with _quiet(xp):
        shift = z.max(axis=1, keepdims=True)
        probs, norm = _exp_rows(z, shift, backend, xp)
        log_p = z - shift
        log_p -= xp.log(norm)
    smoothed = target.array.astype(z.dtype)
    if smoothing:
        smoothed = (1.0 - smoothing) * smoothed + smoothing / classes
    weighted = smoothed * w
    per = -backend.row_sums(weighted * log_p)
    out = _reduce_rows(per, n, reduction, dtype, xp)
    scale = 1.0 / n if reduction == "mean" and n else 1.0

    def rows(g):  # the incoming gradient as a column, times the mean's 1/n
        return (g.reshape(n, 1) if reduction == "none" else g) * scale

    dlogits = probs
    dlogits /= norm
    dlogits *= backend.row_sums(weighted)[:, None]
    dlogits -= weighted
    dlogits = ops._narrow(dlogits, dtype)
    dtarget = -(1.0 - smoothing) * w * log_p
    return record(Tensor, out, backend,
                  (input, lambda g: dlogits * rows(g)),
                  (target, lambda g: ops._narrow(dtarget * rows(g), target.array.dtype)))


def _class_layouts(loss, name, input, target, reduction, **options):
    """PyTorch's other layouts of a loss over classes, (C,) and (N, C, d1, ...): the class
    axis moves last and the rest become the rows of the (N, C) case (recorded
    reshapes, so gradients flow)."""
    if input.ndim == 0:
        raise ValueError(f"{name}: input must have shape (C,), (N, C) or (N, C, d1, ...), got a 0-d tensor")
    target = _tensor_like(target, input, f"{name}: target")
    expected = () if input.ndim == 1 else (input.shape[0],) + input.shape[2:]
    classes = input.shape[0 if input.ndim == 1 else 1]

    def as_rows(t):
        return t.reshape(1, classes) if t.ndim == 1 else t.permute(0, *range(2, t.ndim), 1).reshape(-1, classes)

    if loss is cross_entropy and target.array.dtype.kind == "f" and target.shape == input.shape:
        target = as_rows(target)  # class probabilities
    elif target.shape == expected:
        target = target.reshape(-1)
    else:
        raise ValueError(f"{name}: target shape {target.shape} does not match input shape {input.shape}; "
                         f"expected {expected}" + (f" (classes) or {input.shape} (class probabilities)"
                                                   if loss is cross_entropy else ""))
    out = loss(as_rows(input), target, reduction=reduction, **options)
    return out.reshape(expected) if reduction == "none" else out


def nll_loss(input: Tensor, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities (N, C) (log_softmax's output) against
    integer classes (N,): -w[y] input[y] per row, 0 for an ignored row, the mean
    divided by the summed w[y] of the rows that count (as cross_entropy, which is
    nll_loss(log_softmax(z), y)); also the (C,) and (N, C, d1, ...) layouts. The
    gradient is -w[y] / (that sum) at each row's class and 0 elsewhere."""
    reduction = _reduction(size_average, reduce, reduction)
    if not isinstance(input, Tensor):
        raise TypeError(f"nll_loss: input must be a tensor, got {type(input).__name__}")
    if input.ndim != 2:
        return _class_layouts(nll_loss, "nll_loss", input, target, reduction, weight=weight,
                              ignore_index=ignore_index)
    labels, valid = _class_targets(_tensor_like(target, input, "nll_loss: target").array, input.shape,
                                   input._backend.name, ignore_index,
                                   "nll_loss")
    xp = input.xp
    x, dtype = input.array, input.array.dtype
    if dtype.kind != "f":
        raise TypeError(f"nll_loss: input must hold floating log-probabilities, got dtype {dtype}")
    wide, _ = ops._float_dtypes(dtype)
    x = x if wide is None else x.astype(wide)
    n, classes = x.shape
    if valid is not None:
        labels = xp.where(valid, labels, 0)
    picks = xp.arange(0, n * classes, classes)
    picks += labels
    row_weight = None if weight is None else _class_weights(weight, input, classes, x.dtype, "nll_loss")[labels]
    if row_weight is None:
        coefficient = 1.0 if valid is None else valid.astype(x.dtype)
    else:
        coefficient = row_weight if valid is None else xp.where(valid, row_weight, 0)
    per = -x.reshape(-1)[picks] * coefficient
    if valid is not None:
        per = xp.where(valid, per, 0)  # an ignored row's NaN stays out
    counted = _counted(row_weight, valid, n, x.dtype, xp) if reduction == "mean" else None
    with _quiet(xp):
        out = _reduce_rows(per, counted, reduction, dtype, xp)
    if not (input.requires_grad and is_grad_enabled()):
        return Tensor._wrap(out, input._backend)
    dinput = xp.zeros_like(x)
    dinput.reshape(-1)[picks] = -coefficient
    if reduction == "mean":
        dinput /= xp.where(counted == 0, 1, counted)
    return _record_rows(input, out, ops._narrow(dinput, dtype), reduction)


# ----------------------------------------------------------------- a linear layer and its loss, fused


def linear_cross_entropy(input: Tensor, weight: Tensor, target, bias: Tensor | None = None,
                         reduction: str = "mean") -> Tensor:
    """``cross_entropy(linear(input, weight, bias), target, reduction=reduction)`` as one
    step: target holds class indices (N,) or class probabilities (N, C). See
    _linear_loss; for class weights, ignore_index or label smoothing compose the two."""
    return _linear_loss("softmax", "linear_cross_entropy", input, weight, target, bias, reduction)


def linear_binary_cross_entropy_with_logits(input: Tensor, weight: Tensor, target, bias: Tensor | None = None,
                                            reduction: str = "mean") -> Tensor:
    """``binary_cross_entropy_with_logits(linear(input, weight, bias), target, reduction=reduction)``
    as one step (target of the output's shape). See _linear_loss."""
    return _linear_loss("sigmoid", "linear_binary_cross_entropy_with_logits", input, weight, target, bias,
                        reduction)


def linear_mse_loss(input: Tensor, weight: Tensor, target, bias: Tensor | None = None,
                    reduction: str = "mean") -> Tensor:
    """``mse_loss(linear(input, weight, bias), target, reduction=reduction)`` as one step
    (target of the output's shape). See _linear_loss."""
    return _linear_loss("squared", "linear_mse_loss", input, weight, target, bias, reduction)


_COMPOSED = {"softmax": cross_entropy, "sigmoid": binary_cross_entropy_with_logits, "squared": mse_loss}


def _linear_loss(epilogue, name, input, weight, target, bias, reduction):
    """A linear layer's output and its loss in one fused step, without the logits.

    Forward, one pass over the input: Z = x W^T + b, each row's loss and the
    gradient G = dloss/dZ (``Backend.linear_loss``: on "cuda" and "emu" for up to 16
    outputs, one launch of kernels/linear_skinny.cu with the loss as its epilogue).
    Backward, a second pass: dW = G^T x with db = G's column sums
    (``Backend.linear_grad``, one split-n launch), and dx = G W when the input needs it.
    A training step thus reads x twice and never writes the logits.

    Results are those of the composed ops (tests hold them to it), with one
    difference in layout: input of more than two dimensions (batch, ..., features)
    has its leading dimensions taken as rows and the outputs along the last one, so
    linear_cross_entropy's classes lie along the last dimension (a language model's
    head: cross_entropy(logits.reshape(-1, C), target.reshape(-1))), where
    cross_entropy itself takes them from dimension 1. reduction="none" of the
    elementwise losses (one value per output) runs composed. The target is not
    differentiated (one that requires grad is refused)."""
    _check_reduction(reduction)
    _check_linear(name, input, weight, bias)
    x, w = input.array, weight.array
    k, backend = w.shape[0], input._backend
    if bias is not None and bias.shape != (k,):
        raise ValueError(f"{name}: bias of shape {bias.shape} does not match weight of shape {weight.shape}; "
                         f"expected ({k},)")
    if epilogue != "softmax" and reduction == "none":  # elementwise losses: PyTorch gives (N, C) of them
        return _COMPOSED[epilogue](linear(input, weight, bias), target, reduction="none")
    lead = input.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])
    n = x2.shape[0]
    target = _tensor_like(target, input, f"{name}: target")
    if target.requires_grad and is_grad_enabled():
        raise ValueError(f"{name}: the target requires grad, and the fused step does not differentiate it "
                         f"(its gradient needs the logits, which it never stores); use "
                         f"{_COMPOSED[epilogue].__name__}(linear(...), target), or pass target.detach()")
    t, labels = target.array, None
    if epilogue == "softmax" and t.shape == lead:  # class indices, one per row
        if t.dtype.kind not in "iu":
            raise TypeError(f"{name}: target of shape {target.shape} must hold integer class indices (or be "
                            f"class probabilities of shape {lead + (k,)}), got dtype {t.dtype}")
        labels = t.reshape(-1)
        # (Inside a CUDA graph capture nothing can be read back to check: a label out of
        # range then makes its row NaN in the kernel, and the loss NaN, not a wrong step.)
        if not graphs.capturing(backend.name):
            _class_targets(labels, (n, k), backend.name, None, name)
        labels, t = labels.astype(np.int64, copy=False), None
    else:
        if t.shape != lead + (k,):
            raise ValueError(f"{name}: target shape {target.shape} does not match the output's shape "
                             f"{lead + (k,)}" + (f" (or class indices of shape {lead})" if epilogue == "softmax"
                                                 else ""))
        if t.dtype.kind not in "biuf":
            raise TypeError(f"{name}: target must be numeric, got {t.dtype}")
        t = t.reshape(n, k).astype(x.dtype, copy=False)
    count = n if epilogue == "softmax" else n * k  # what a mean divides by: rows, or elements
    scale = 1.0 / count if reduction == "mean" and count else 1.0
    losses, G = backend.linear_loss(epilogue, x2, w, None if bias is None else bias.array, t, labels, None, scale)
    if reduction == "none":
        out = losses.reshape(lead)
    else:
        out = losses.sum()
        if reduction == "mean":  # (the mean of no rows is NaN, as in PyTorch)
            out = out * out.dtype.type(scale if count else np.nan)
    if not is_grad_enabled():
        return Tensor._wrap(out, backend)
    step = [None, None, None]  # the incoming gradient, G times it, (dW, db): shared by the edges

    def scaled(g):
        if step[0] is not g:
            step[:] = g, G * (g.reshape(-1, 1) if reduction == "none" else g), None
        return step[1]

    def weight_and_bias(g):  # one pass over x for both
        scaled(g)
        if step[2] is None:
            step[2] = backend.linear_grad(step[1], x2, bias is not None)
        return step[2]

    edges = [(input, lambda g: backend.matmul(scaled(g), w).reshape(x.shape)),
             (weight, lambda g: weight_and_bias(g)[0])]
    if bias is not None:
        edges.append((bias, lambda g: weight_and_bias(g)[1]))
    return record(Tensor, out, backend, *edges, op=name, saved=(input, weight))


__all__ = ["linear", "softmax", "log_softmax", "relu", "sigmoid", "tanh", "dropout", "mse_loss", "l1_loss",
           "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss", "linear_cross_entropy",
           "linear_binary_cross_entropy_with_logits", "linear_mse_loss"]
