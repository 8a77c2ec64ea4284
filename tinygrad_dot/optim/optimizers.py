"""SGD, Adam, AdamW, Adagrad and RMSprop with torch.optim's update rules and defaults.

Each ``_update`` is the per-parameter loop of the corresponding torch.optim
algorithm (single-tensor path), written with in-place array operations. ``g`` is
the gradient; ``w`` the parameter's array.

A CUDA graph replays array work, not Python: an update whose numbers come from a
Python step counter (Adam's bias corrections, Adagrad's lr_decay) would replay the
captured step's numbers forever. Such an optimizer refuses to be captured, unless
(Adam and AdamW, as in PyTorch) ``capturable=True`` keeps the step count on the
device and computes the bias corrections there.
"""
from __future__ import annotations

import math

import numpy as np

from ..runtime import graphs
from .optimizer import Optimizer


def _refuse_capture(optimizer, p, why: str) -> None:
    if graphs.capturing(p._backend.name):
        raise graphs.CaptureError(f"{type(optimizer).__name__}.step() inside a CUDA graph capture: {why}, which "
                                  "every replay would repeat")


def _step_dtype(w):
    return np.float64 if w.dtype == np.float64 else np.float32


def _with_weight_decay(g, w, weight_decay):
    """L2 penalty folded into the gradient (a new array; the .grad is left untouched)."""
    return g + weight_decay * w if weight_decay else g


class SGD(Optimizer):
    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _update(self, p, g, group, state):
        w = p.array
        if group["weight_decay"]:
            g = g + group["weight_decay"] * w
        momentum = group["momentum"]
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = p.xp.array(g)  # an array even for a 0-d g (a NumPy scalar)
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * g
            g = g + momentum * buf if group["nesterov"] else buf
        w -= group["lr"] * g


class Adam(Optimizer):
    """Adam; with ``amsgrad`` the running maximum of the second moment is used."""

    _decoupled = False  # AdamW decays the weights directly instead of through the gradient

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, capturable: bool = False):
        if not all(0.0 <= b < 1.0 for b in betas) or len(betas) != 2:
            raise ValueError(f"invalid betas {betas!r}: two numbers in [0, 1)")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, capturable=capturable))

    def _update(self, p, g, group, state):
        xp, w = p.xp, p.array
        lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
        capturable = group["capturable"]
        if not capturable:
            _refuse_capture(self, p, "its bias corrections come from a Python step count (construct it with "
                                     "capturable=True to keep the count on the device)")
        if not state:
            # capturable: a 0-d device array, float32 (float64 for float64 parameters) as PyTorch's step
            # tensor: a float16 count would stop at 2048
            state["step"] = xp.zeros((), dtype=_step_dtype(w)) if capturable else 0
            state["exp_avg"] = xp.zeros_like(w)
            state["exp_avg_sq"] = xp.zeros_like(w)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(w)
        elif capturable and not p._backend.is_array(state["step"]):  # a count restored from a plain state
            state["step"] = xp.asarray(state["step"], dtype=_step_dtype(w))
        state["step"] += 1
        step = state["step"]
        if capturable:  # the corrections as device arrays: every replay reads the count it has reached
            correction1 = 1 - beta1 ** step
            correction2_root = xp.sqrt(1 - beta2 ** step)
        else:
            correction1, correction2_root = 1 - beta1 ** step, math.sqrt(1 - beta2 ** step)
        if self._decoupled:
            w *= 1 - lr * weight_decay
        else:
            g = _with_weight_decay(g, w, weight_decay)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * (g * g)
        if group["amsgrad"]:
            v = xp.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        denom = xp.sqrt(v)
        denom /= correction2_root
        denom += group["eps"]
        w -= (lr / correction1) * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay: w <- w (1 - lr wd) before the Adam step."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, capturable: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         capturable=capturable)


class Adagrad(Optimizer):
    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10):
        if lr_decay < 0 or initial_accumulator_value < 0:
            raise ValueError("lr_decay and initial_accumulator_value must be >= 0")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps))

    def _update(self, p, g, group, state):
        xp, w = p.xp, p.array
        if group["lr_decay"]:  # (before any state moves: a refused step changes nothing)
            _refuse_capture(self, p, "its lr_decay schedule comes from a Python step count")
        if not state:
            state["step"] = 0
            state["sum"] = xp.full_like(w, group["initial_accumulator_value"])
        state["step"] += 1
        g = _with_weight_decay(g, w, group["weight_decay"])
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        state["sum"] += g * g
        std = xp.sqrt(state["sum"])
        std += group["eps"]
        w -= clr * (g / std)


class RMSprop(Optimizer):
    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"invalid alpha {alpha!r}: a number in [0, 1]")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def _update(self, p, g, group, state):
        xp, w = p.xp, p.array
        alpha, momentum = group["alpha"], group["momentum"]
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(w)
            if momentum > 0:
                state["momentum_buffer"] = xp.zeros_like(w)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(w)
        state["step"] += 1
        g = _with_weight_decay(g, w, group["weight_decay"])
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * (g * g)
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg *= alpha
            grad_avg += (1 - alpha) * g
            avg = xp.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = xp.sqrt(square_avg)
        avg += group["eps"]
        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += g / avg
            w -= group["lr"] * buf
        else:
            w -= group["lr"] * (g / avg)
