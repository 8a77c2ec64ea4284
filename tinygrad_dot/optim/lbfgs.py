"""L-BFGS with a strong-Wolfe line search: a functional minimiser and ``td.optim.LBFGS``.

Why: the estimators in ``td.models`` fit smooth, full-batch objectives (logistic
loss, ridge) whose gradient is two large matrix products. A quasi-Newton method
needs tens of such gradients where gradient descent needs thousands, so this is
the default solver; it is also what ``torch.optim.LBFGS`` offers for td models.

What: one implementation of the algorithm, used twice.

* ``minimize_lbfgs(fun, x0, ...)`` minimises ``fun(x) -> (f, g)`` over a flat
  float array, NumPy or CuPy, and never moves ``x`` to the host. Its stopping
  rules are SciPy L-BFGS-B's as scikit-learn sets them (``gtol``: max |g| <= tol;
  ``ftol``: relative reduction of f at most 64 machine epsilons).
* ``LBFGS(params, ...)`` is ``torch.optim.LBFGS``'s interface and stopping rules
  around the same line search and two-loop recursion: it flattens the
  parameters into one vector, and writes each trial point back into them.

The algorithm (Nocedal & Wright, *Numerical Optimization*, 2nd ed.):

* search direction by the two-loop recursion (Alg. 7.4) over the last m pairs
  ``s = x_{k+1} - x_k``, ``y = g_{k+1} - g_k``, with the initial inverse Hessian
  ``gamma * I``, ``gamma = s'y / y'y`` of the newest pair (eq. 7.20); a pair with
  too little curvature (``s'y`` not positive) is skipped, which keeps H positive
  definite;
* step length by the strong-Wolfe line search (Alg. 3.5, bracketing, and 3.6,
  zoom) with safeguarded cubic interpolation (eq. 3.59), c1 = 1e-4, c2 = 0.9.
  The first trial is the unit step, which is accepted in most iterations: one
  gradient evaluation per iteration. While the memory is empty the direction
  is the raw gradient, whose length says nothing about the step: the first
  trial moves x by a unit distance (SciPy's L-BFGS-B rule; the class keeps
  PyTorch's ``min(1, 1/|g|_1)``).

Host traffic: the dot products the line search branches on (``g'd``, ``max|g|``,
``s'y``, ``y'y``) are read back as Python floats, batched into one transfer
where they are needed together; the two-loop recursion keeps its scalars on
the device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..autograd import enable_grad
from .optimizer import Optimizer

__all__ = ["minimize_lbfgs", "LBFGSResult", "LBFGS"]


# ----------------------------------------------------------------------------- helpers

def _array_module(x):
    """numpy or cupy, whichever owns ``x`` (without importing cupy for NumPy input)."""
    if isinstance(x, np.ndarray):
        return np
    namespace = getattr(x, "__array_namespace__", None)
    if namespace is not None:
        return namespace()
    if type(x).__module__.split(".")[0] == "cupy":
        import cupy
        return cupy
    raise TypeError(f"expected a NumPy or CuPy array, got {type(x).__name__}")


def _host(xp, *scalars) -> list[float]:
    """Device scalars (0-d arrays) as Python floats, in one transfer for CuPy."""
    if xp is np:
        return [float(s) for s in scalars]
    return [float(v) for v in xp.stack(scalars).tolist()]


class _History:
    """The L-BFGS memory: the newest ``size`` pairs (s, y), 1/s'y, and gamma.

    The lists are held by reference so that ``LBFGS`` can keep them in its state.
    """

    def __init__(self, size: int, s: list | None = None, y: list | None = None,
                 rho: list | None = None, gamma: float = 1.0):
        self.size = size
        self.s = [] if s is None else s
        self.y = [] if y is None else y
        self.rho = [] if rho is None else rho
        self.gamma = gamma

    def __len__(self) -> int:
        return len(self.s)

    def push(self, s, y, sy: float, yy: float) -> None:
        if len(self.s) == self.size:  # drop the oldest pair
            del self.s[0], self.y[0], self.rho[0]
        self.s.append(s)
        self.y.append(y)
        self.rho.append(1.0 / sy)
        self.gamma = sy / yy

    def clear(self) -> None:
        del self.s[:], self.y[:], self.rho[:]
        self.gamma = 1.0

    def direction(self, g):
        """``-H g`` by the two-loop recursion; the scalars stay 0-d device arrays."""
        q = -g
        alphas = []
        for s, y, rho in zip(reversed(self.s), reversed(self.y), reversed(self.rho)):
            a = rho * (s @ q)
            q -= a * y
            alphas.append(a)
        if self.gamma != 1.0:
            q *= self.gamma
        for s, y, rho, a in zip(self.s, self.y, self.rho, reversed(alphas)):
            b = rho * (y @ q)
            q += (a - b) * s
        return q


@dataclass
class _Trial:
    """One evaluation along the search line: step t, f, the slope g'd, and the
    caller's payload (gradient, point, ...), which the line search does not read."""
    t: float
    f: float
    gtd: float
    data: Any = None


def _cubic_min(a: _Trial, b: _Trial, lo: float, hi: float) -> float:
    """Minimiser of the cubic matching f and slope at a and b (N&W eq. 3.59),
    clipped to [lo, hi]; the midpoint when the cubic has no minimiser there."""
    if a.t == b.t:
        return 0.5 * (lo + hi)
    d1 = a.gtd + b.gtd - 3.0 * (a.f - b.f) / (a.t - b.t)
    disc = d1 * d1 - a.gtd * b.gtd
    if not disc >= 0.0 or not math.isfinite(disc):  # also catches NaN/inf from a non-finite f
        return 0.5 * (lo + hi)
    d2 = math.copysign(math.sqrt(disc), b.t - a.t)
    denom = b.gtd - a.gtd + 2.0 * d2
    if denom == 0.0:
        return 0.5 * (lo + hi)
    t = b.t - (b.t - a.t) * (b.gtd + d2 - d1) / denom
    return min(max(t, lo), hi) if math.isfinite(t) else 0.5 * (lo + hi)


def strong_wolfe(phi: Callable[[float], _Trial], f0: float, gtd0: float, t: float, *,
                 c1: float = 1e-4, c2: float = 0.9, max_ls: int = 25,
                 min_width: float = 0.0, f_noise: float = 0.0) -> tuple[_Trial | None, int]:
    """Find t with f(t) <= f0 + c1 t gtd0 and |f'(t)| <= c2 |gtd0| (N&W Alg. 3.5/3.6).

    ``phi(t)`` evaluates the objective at step t and returns a ``_Trial``. Returns
    (accepted trial, evaluations). When the strong-Wolfe point is not found
    within ``max_ls`` evaluations, the accepted trial is the lowest one that
    satisfies sufficient decrease; None when there is none (no progress possible).

    ``f_noise`` (absolute) is how far rounding can move f. Within it, a difference
    of f values says nothing, so sufficient decrease is judged from the slopes
    instead, by the trapezoid estimate ``f(t) - f0 ~ t (gtd0 + gtd(t)) / 2`` (the
    approximate Wolfe condition of Hager & Zhang, SIAM J. Optim. 16, 2005). This
    lets the search finish close to the optimum, where f is flat to rounding.
    """
    def armijo(tr):
        if tr.f <= f0 + c1 * tr.t * gtd0:
            return True
        return tr.f <= f0 + f_noise and tr.gtd <= (2 * c1 - 1) * gtd0  # False for NaN f

    curvature = lambda tr: abs(tr.gtd) <= -c2 * gtd0  # noqa: E731
    prev = _Trial(0.0, f0, gtd0)
    nfev = 0
    # Bracketing phase (Alg. 3.5): grow t until the interval [prev, cur] holds a Wolfe point.
    while True:
        cur = phi(t)
        nfev += 1
        decrease = armijo(cur)
        if decrease and curvature(cur):  # a strong-Wolfe point, whatever its f against prev's
            return cur, nfev
        if not decrease or (nfev > 1 and cur.f >= prev.f):
            lo, hi = prev, cur
            break
        if cur.gtd >= 0:  # past a minimiser along the line
            lo, hi = cur, prev
            break
        if nfev >= max_ls:
            return cur, nfev  # still descending: take the farthest decrease found
        # Extrapolate: at least 1% further, at most 10x, guided by the cubic.
        t_next = _cubic_min(prev, cur, cur.t + 0.01 * (cur.t - prev.t), 10.0 * cur.t)
        prev, t = cur, t_next
    # Zoom phase (Alg. 3.6): lo is the best point with sufficient decrease and
    # its slope points towards hi, so the interval keeps a Wolfe point.
    while nfev < max_ls:
        width = abs(hi.t - lo.t)
        if width <= min_width or width <= 1e-15 * max(lo.t, hi.t):
            break  # the interval is below what the caller can resolve
        left, right = min(lo.t, hi.t), max(lo.t, hi.t)
        # Keep the trial off the ends so that every step shrinks the interval by >= 10%.
        cur = phi(_cubic_min(lo, hi, left + 0.1 * width, right - 0.1 * width))
        nfev += 1
        decrease = armijo(cur)
        if decrease and curvature(cur):
            return cur, nfev
        if not decrease or cur.f >= lo.f:
            hi = cur
        else:
            if cur.gtd * (hi.t - lo.t) >= 0:
                hi = lo
            lo = cur
    return (lo if lo.t > 0 else None), nfev


# ----------------------------------------------------------------------------- functional core

@dataclass
class LBFGSResult:
    """What ``minimize_lbfgs`` found: the point, f and gradient there, iterations,
    objective evaluations (each one f and g), whether a convergence test
    (not the iteration limit or a failed line search) stopped it, and why."""
    x: Any
    fun: float
    grad: Any
    nit: int
    nfev: int
    converged: bool
    message: str


_FTOL = 64 * float(np.finfo(np.float64).eps)  # scikit-learn's ftol for SciPy's L-BFGS-B


def minimize_lbfgs(fun: Callable, x0, *, max_iter: int = 100, tol: float = 1e-4, ftol: float = _FTOL,
                   history_size: int = 10, max_ls: int = 20, c1: float = 1e-4, c2: float = 0.9,
                   f_noise: float | None = None, xp=None, callback: Callable | None = None) -> LBFGSResult:
    """Minimise ``fun`` from ``x0`` by L-BFGS with a strong-Wolfe line search.

    ``fun(x)`` returns ``(f, g)``: the objective as a Python float and its gradient,
    an array of x's array module, shape and dtype. ``x0`` is a flat float array
    (NumPy or CuPy; ``xp`` overrides the detected module); it is not modified.

    Stops, like SciPy's L-BFGS-B with scikit-learn's settings, when ``max|g| <= tol``,
    when ``(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol`` (default ``64 * eps``
    of float64, scikit-learn's), or after ``max_iter`` iterations. A failed line
    search restarts once from the steepest descent direction (the memory may be
    stale); a second failure stops, unconverged. ``f_noise`` is the relative
    rounding error of f (default 16 eps of x's dtype): below it the line search
    judges decrease by the slopes. Still, sum the objective in float64 when
    the data are float32: a precise f is what makes the line search cheap.
    ``callback(x)``, if given, runs after each iteration.
    """
    xp = _array_module(x0) if xp is None else xp
    if x0.ndim != 1 or x0.dtype.kind != "f":
        raise ValueError(f"x0 must be a flat float array, got shape {tuple(x0.shape)} and dtype {x0.dtype}")
    if f_noise is None:
        f_noise = 16 * float(np.finfo(x0.dtype).eps)
    x = x0.copy()
    f, g = fun(x)
    f, nfev = float(f), 1
    if not math.isfinite(f):
        raise ValueError(f"the objective is {f} at x0")
    gmax, = _host(xp, xp.abs(g).max())

    def evaluate(t, x, d, g):
        """f at x + t d, with what the line search and the memory update read: the
        slope g'd, max|g| and y'y (y = g_new - g), in one transfer."""
        xt = x + t * d
        ft, gt = fun(xt)
        yt = gt - g
        gtd, gtmax, yy = _host(xp, gt @ d, xp.abs(gt).max(), yt @ yt)
        return _Trial(t, float(ft), gtd, (xt, gt, yt, gtmax, yy))

    hist = _History(history_size)
    nit, converged, message = 0, True, "max|g| <= tol"
    while gmax > tol:
        if nit >= max_iter:
            converged, message = False, f"reached max_iter={max_iter}"
            break
        d = hist.direction(g) if len(hist) else None
        gtd, = _host(xp, g @ d) if d is not None else (0.0,)
        t = 1.0
        if not gtd < 0:  # empty memory, or H lost positive definiteness to rounding: steepest descent
            hist.clear()
            d = -g
            gtd, = _host(xp, -(g @ g))
            # A unit move: on logistic fits this takes one evaluation where PyTorch's
            # min(1, 1/|g|_1) often takes two (a step too short for the curvature condition).
            t = 1.0 / math.sqrt(-gtd) if gtd < 0 else 1.0
        trial, evals = strong_wolfe(lambda t, x=x, d=d, g=g: evaluate(t, x, d, g), f, gtd, t, c1=c1, c2=c2,
                                    max_ls=max_ls, f_noise=f_noise * abs(f))
        nfev += evals
        if trial is None:
            if len(hist):  # retry along -g before giving up
                hist.clear()
                continue
            converged, message = False, "the line search found no decrease (f is flat to rounding along -g)"
            break
        x_new, g_new, y, gmax, yy = trial.data
        # s = t d, so s'y = t (g_new'd - g'd) comes from host scalars already read; the curvature
        # condition keeps this difference >= (1 - c2)|g'd|, far from cancellation.
        sy = trial.t * (trial.gtd - gtd)
        if sy > float(np.finfo(x0.dtype).eps) * yy:  # positive curvature: keeps H positive definite
            hist.push(trial.t * d, y, sy, yy)
        nit += 1
        f_old, x, f, g = f, x_new, trial.f, g_new
        if callback is not None:
            callback(x)
        if gmax <= tol:
            break
        if f > f_old:  # accepted on the slopes alone, f within rounding of f_old: f can't guide us further
            converged, message = False, "f is flat to rounding (within f_noise) before max|g| <= tol"
            break
        if f_old - f <= ftol * max(abs(f_old), abs(f), 1.0):
            message = "relative reduction of f <= ftol"
            break
    return LBFGSResult(x=x, fun=f, grad=g, nit=nit, nfev=nfev, converged=converged, message=message)


# ----------------------------------------------------------------------------- td.optim.LBFGS

class LBFGS(Optimizer):
    """``torch.optim.LBFGS``: full-batch L-BFGS over all parameters as one vector.

    ``step(closure)`` runs up to ``max_iter`` iterations (``max_eval`` closure calls,
    default ``max_iter * 5 // 4``); the closure zeroes the gradients, computes the
    loss, calls ``backward()`` and returns the loss. Without ``line_search_fn`` each
    iteration takes the fixed step ``lr`` (the first one scaled by ``min(1, 1/|g|_1)``);
    with ``line_search_fn="strong_wolfe"`` the step satisfies the strong Wolfe
    conditions. An iteration stops the step early when ``max|g| <= tolerance_grad``,
    or when the step or the change of the loss is below ``tolerance_change``.
    The memory persists across ``step`` calls. One parameter group only, as in PyTorch.
    """

    def __init__(self, params, lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None):
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"line_search_fn must be None or 'strong_wolfe', got {line_search_fn!r}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change, history_size=history_size,
                                      line_search_fn=line_search_fn))
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._flat_params = self.param_groups[0]["params"]
        devices = {p.device for p in self._flat_params}
        if len(devices) != 1:
            raise ValueError(f"LBFGS needs all parameters on one device, got {sorted(devices)}")

    # The parameters as one flat vector (a copy), and back.
    def _gather_flat(self):
        xp = self._flat_params[0].xp
        return xp.concatenate([p.array.ravel() for p in self._flat_params])

    def _gather_flat_grad(self):
        xp = self._flat_params[0].xp
        return xp.concatenate([xp.zeros(p.numel(), p.dtype) if p.grad is None else p.grad.array.ravel()
                               for p in self._flat_params])

    def _set_flat(self, flat) -> None:
        offset = 0
        for p in self._flat_params:
            p.array[...] = flat[offset:offset + p.numel()].reshape(p.shape)
            offset += p.numel()
            bump = getattr(p, "_bump", None)  # tell autograd's version counter (where it exists) of the change
            if bump is not None:
                bump()

    def _evaluate(self, closure) -> float:
        with enable_grad():  # step() may run under no_grad; the closure needs the tape
            return float(closure())

    def step(self, closure=None):
        """Run up to ``max_iter`` L-BFGS iterations; returns the loss before them."""
        if closure is None:
            raise RuntimeError("LBFGS.step needs a closure that re-evaluates the loss (it calls it repeatedly)")
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        xp = self._flat_params[0].xp
        state = self.state.setdefault(id(self._flat_params[0]), {"func_evals": 0, "n_iter": 0})

        with enable_grad():
            orig_loss = closure()
        loss = float(orig_loss)
        evals = 1
        state["func_evals"] += 1
        g = self._gather_flat_grad()
        if _host(xp, xp.abs(g).max())[0] <= tol_grad:
            return orig_loss

        hist = _History(group["history_size"], state.setdefault("old_stps", []), state.setdefault("old_dirs", []),
                        state.setdefault("ro", []), state.get("H_diag", 1.0))
        d, t = state.get("d"), state.get("t")
        prev_g, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                hist.clear()
                d = -g
            else:  # learn from the last step, then the new direction
                s, y = t * d, g - prev_g
                sy, yy = _host(xp, s @ y, y @ y)
                if sy > 1e-10:
                    hist.push(s, y, sy, yy)
                d = hist.direction(g)
            prev_g, prev_loss = g, loss
            gtd, g_l1 = _host(xp, g @ d, xp.abs(g).sum())
            t = min(1.0, 1.0 / g_l1) * lr if state["n_iter"] == 1 else lr
            if gtd > -tol_change:  # not a descent direction (to the tolerance): nothing left to gain
                break

            if group["line_search_fn"] == "strong_wolfe":
                x0 = self._gather_flat()
                dmax, = _host(xp, xp.abs(d).max())
                last = [None]

                def phi(step, x0=x0, d=d):
                    xt = x0 + step * d
                    self._set_flat(xt)
                    last[0] = xt
                    ft = self._evaluate(closure)
                    gt = self._gather_flat_grad()
                    gtd_t, = _host(xp, gt @ d)
                    return _Trial(step, ft, gtd_t, (xt, gt))

                trial, ls_evals = strong_wolfe(phi, loss, gtd, t, max_ls=25,
                                               min_width=tol_change / dmax if dmax > 0 else 0.0)
                if trial is None:  # no decrease found: stay at the start of the line
                    self._set_flat(x0)
                    t, g = 0.0, prev_g
                else:
                    if last[0] is not trial.data[0]:
                        self._set_flat(trial.data[0])
                    t, loss, g = trial.t, trial.f, trial.data[1]
                opt_cond = _host(xp, xp.abs(g).max())[0] <= tol_grad
            else:
                self._set_flat(self._gather_flat() + t * d)
                ls_evals = 0
                opt_cond = False
                if n_iter != max_iter:  # PyTorch skips the evaluation after the last iteration
                    loss = self._evaluate(closure)
                    g = self._gather_flat_grad()
                    opt_cond = _host(xp, xp.abs(g).max())[0] <= tol_grad
                    ls_evals = 1
            evals += ls_evals
            state["func_evals"] += ls_evals

            if n_iter == max_iter or evals >= max_eval or opt_cond:
                break
            if t == 0.0 or _host(xp, xp.abs(d).max())[0] * abs(t) <= tol_change:  # the step no longer moves x
                break
            if abs(loss - prev_loss) < tol_change:
                break

        state.update(d=d, t=t, prev_flat_grad=prev_g, prev_loss=prev_loss, H_diag=hist.gamma)
        return orig_loss

    def state_dict(self) -> dict:
        # The memory lists change in place on the next step: hand out copies (the arrays in them never change).
        packed = super().state_dict()
        for values in packed["state"].values():
            for key, value in values.items():
                if isinstance(value, list):
                    values[key] = list(value)
        return packed

    def _restore(self, value, p, name):
        """State arrays are flat vectors over all parameters (or lists of them), not shaped like ``p``."""
        if isinstance(value, (list, tuple)):
            return [self._restore(v, p, name) for v in value]
        if isinstance(value, (int, float, str)) or value is None:
            return value
        array = value.numpy() if hasattr(value, "numpy") and not isinstance(value, np.ndarray) else value
        return p._backend.asarray(array).astype(p.dtype, copy=True)
