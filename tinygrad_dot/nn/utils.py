"""Gradient utilities (``td.nn.utils``)."""
from __future__ import annotations

import math

from ..tensor import Tensor


def zero_grads(parameters, set_to_none: bool = True) -> None:
    """Drop (default) or zero the gradients of ``parameters``: what Module.zero_grad
    and Optimizer.zero_grad do."""
    for p in parameters:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
        else:
            p.grad.zero_()


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> Tensor:
    """Scale the gradients in place so that their joint norm is at most ``max_norm``.

    As PyTorch: the norm is taken over all gradients together, the scale is
    max_norm / (total_norm + 1e-6) capped at 1, and the total norm (before
    clipping) is returned as a tensor.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    norm_type = float(norm_type)
    if not grads:
        return Tensor(0.0)
    xp = grads[0].xp
    if math.isinf(norm_type):
        per = [xp.abs(g.array).max() for g in grads]
        total = per[0] if len(per) == 1 else xp.max(xp.stack(per))
    else:
        per = [(xp.abs(g.array.astype("float64", copy=False)) ** norm_type).sum() for g in grads]
        total = sum(per) ** (1.0 / norm_type)
    total_norm = float(total)  # one synchronisation per call, as the scale needs it anyway
    if error_if_nonfinite and not math.isfinite(total_norm):
        raise RuntimeError(f"the total norm of order {norm_type} of the gradients is {total_norm}; "
                           "set error_if_nonfinite=False to clip anyway")
    scale = min(max_norm / (total_norm + 1e-6), 1.0)
    if scale < 1.0:
        for g in grads:
            g.array *= g.array.dtype.type(scale)
            g._bump()
    return Tensor._wrap(grads[0]._backend.asarray(total_norm, dtype=grads[0].dtype), grads[0]._backend)


__all__ = ["clip_grad_norm_", "zero_grads"]
