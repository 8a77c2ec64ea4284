"""Check the tape's gradients against central finite differences in float64."""
from __future__ import annotations

import numpy as np

from .tensor import Tensor


class GradcheckError(RuntimeError):
    """The analytical and numerical Jacobians disagree."""


def _as_inputs(inputs):
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    if not inputs or not all(isinstance(t, Tensor) for t in inputs):
        raise TypeError("gradcheck: inputs must be a tensor or a sequence of tensors")
    for i, t in enumerate(inputs):
        if t.dtype.kind == "f" and not np.all(np.isfinite(t.numpy())):
            raise ValueError(f"gradcheck: input {i} (shape {t.shape}) holds NaN or inf; finite differences need finite inputs")
    return inputs


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3) -> bool:
    """Compare d fn / d input from ``backward`` with central differences.

    Every floating input that requires grad is checked (all floating inputs if
    none does), each as a float64 copy. The whole Jacobian is compared, one
    backward pass per output element. Returns True, or raises GradcheckError
    naming the worst element.
    """
    inputs = _as_inputs(inputs)
    floating = [i for i, t in enumerate(inputs) if t.dtype.kind == "f"]
    checked = [i for i in floating if inputs[i].requires_grad] or floating
    if not checked:
        raise TypeError("gradcheck: no floating-point input to differentiate")
    base = [t.to(dtype=np.float64).detach() if i in floating else t for i, t in enumerate(inputs)]

    def evaluate(arrays):
        args = [Tensor._wrap(a, t._backend) if a is not None else t for a, t in zip(arrays, base)]
        for i in checked:
            args[i].requires_grad = True
        out = fn(*args)
        if not isinstance(out, Tensor):
            raise TypeError(f"gradcheck: fn must return a tensor, got {type(out).__name__}")
        return args, out

    originals = [t.array if i in checked else None for i, t in enumerate(base)]
    _, out0 = evaluate(originals)
    n_out = out0.numel()

    # Analytical Jacobian, one row per output element.
    analytical = {i: np.zeros((n_out, base[i].numel())) for i in checked}
    for row in range(n_out):
        args, out = evaluate(originals)
        seed = np.zeros(n_out)
        seed[row] = 1.0
        out.backward(Tensor(seed.reshape(out.shape), dtype=out.dtype, device=out.device))
        for i in checked:
            if args[i].grad is not None:
                analytical[i][row] = args[i].grad.numpy().ravel()

    # Numerical Jacobian, one column per input element.
    for i in checked:
        host = base[i].numpy()
        numerical = np.zeros_like(analytical[i])
        for col in range(host.size):
            columns = []
            for step in (eps, -eps):
                shifted = host.copy()
                shifted.ravel()[col] += step
                arrays = list(originals)
                arrays[i] = base[i]._backend.asarray(shifted)
                columns.append(evaluate(arrays)[1].numpy().ravel().astype(np.float64))
            numerical[:, col] = (columns[0] - columns[1]) / (2 * eps)
        error = np.abs(analytical[i] - numerical) - (atol + rtol * np.abs(numerical))
        if error.size and (error.max() > 0 or not np.isfinite(error).all()):
            row, col = np.unravel_index(np.nanargmax(np.where(np.isfinite(error), error, np.inf)), error.shape)
            where = np.unravel_index(col, base[i].shape) if base[i].ndim else ()
            raise GradcheckError(
                f"gradcheck failed for input {i} (shape {base[i].shape}) at element {tuple(map(int, where))}, "
                f"output element {row}: analytical {analytical[i][row, col]:.6g} vs numerical "
                f"{numerical[row, col]:.6g} (atol={atol}, rtol={rtol})"
            )
    return True
