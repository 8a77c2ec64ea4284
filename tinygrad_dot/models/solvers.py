"""The numerical work behind td.models, on any backend's arrays.

Each solver spends its time in a few large matrix products, made by the
backend's ``matmul`` (NumPy on the CPU, our GEMM kernels on the GPU); what
remains is O(d^2) or O(n) vector work and a handful of scalars read back per
iteration.

* ``gram_least_squares``: linear and ridge regression, exact. One pass over X
  forms ``X^T X`` and ``X^T y``; the d x d system is equilibrated (unit
  diagonal) and solved in float64 by Cholesky, refined against float64
  residuals when X is float32 and the system ill-conditioned enough to need
  it, and handed to an SVD least-squares solve (with a warning) when it is too
  ill-conditioned for the Gram route.
* ``LogisticObjective``: the mean (sample-weighted) log-loss plus penalties and
  its gradient, fused: one product forward (``X coef^T``), one backward
  (``R^T X``), no tape. Minimised by L-BFGS (l2 / no penalty) or FISTA (l1,
  elastic net).

The logistic solvers work in *preconditioned coordinates* u, with
``coef = u / t`` and the features' weighted mean folded into the intercept,
where ``t_j`` is column j's weighted standard deviation (floored by the
penalty's curvature). That is the same minimiser as the raw problem, reached
in far fewer iterations on unscaled, offset or badly scaled features, and it
costs no copy of X.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.linalg import solve_triangular  # SciPy comes with scikit-learn, td.models' extra

from ..backends.base import loss_rows
from ..sparse import CSR, is_sparse_input, product

_ROWS_PER_CHUNK = 1 << 16  # row blocks for float64 passes over float32 data: bounded temporaries


def _row_chunks(n: int):
    for start in range(0, n, _ROWS_PER_CHUNK):
        yield slice(start, min(n, start + _ROWS_PER_CHUNK))


def weighted_mean(backend, X, share):
    """Column means of X under weights ``share`` (host float64, summing to 1), as host float64:
    one matrix-vector product on X's device."""
    if isinstance(X, CSR):
        column = X.matmul(backend.xp.asarray(share, dtype=X.dtype)[:, None], transpose=True)
        return backend.to_numpy(column)[:, 0].astype(np.float64)
    return backend.to_numpy(backend.column_sums(X, share)).astype(np.float64)


_SCALE_SAMPLE_ROWS = 1 << 14


def column_moments(backend, X, share):
    """Weighted column means (exact) and standard deviations (host float64).

    The deviations only precondition the solvers (any positive scale gives the same
    optimum), so past 16,384 rows they come from an evenly strided subset: a pass
    over all of X would cost as much as a third of a logistic fit."""
    xp = backend.xp
    mean = weighted_mean(backend, X, share)
    if isinstance(X, CSR):  # E[x^2] - mean^2 from the squared values: no centred (dense) copy of X
        share_x = xp.asarray(share, dtype=X.dtype)[:, None]
        square = backend.to_numpy(X.with_values(X.values * X.values).matmul(share_x, transpose=True))
        return mean, np.sqrt(np.maximum(square[:, 0].astype(np.float64) - mean * mean, 0.0))
    rows = slice(None, None, max(1, X.shape[0] // _SCALE_SAMPLE_ROWS))
    sample_share = share[rows] / share[rows].sum() if share[rows].sum() > 0 else share[rows]
    centred = X[rows] - xp.asarray(mean, dtype=X.dtype)
    centred *= centred
    var = backend.to_numpy(backend.column_sums(centred, sample_share)).astype(np.float64)
    return mean, np.sqrt(np.maximum(var, 0.0))


# ----------------------------------------------------------------- least squares


class IllConditionedWarning(UserWarning):
    """The Gram matrix was too ill-conditioned for the normal equations; an SVD solve was used."""


def gram_least_squares(backend, X, T, sqrt_w, alpha, x_mean=None, x_std=None, solver="auto"):
    """Minimise sum_i w_i ||t_i - coef (x_i - x_mean)||^2 + alpha ||coef||^2.

    ``X`` (n, d) and ``T`` (n, k) are backend arrays of the working dtype, T
    already centred by its weighted mean where there is an intercept (which is
    then ``y_mean - coef x_mean``, unpenalised); ``sqrt_w`` (n,) the square
    roots of the sample weights, or None; ``x_mean``, ``x_std`` the features'
    weighted moments (host float64), or None for no intercept. ``alpha`` is a
    scalar or one value per target. Returns (coef (k, d) float64 on the host,
    the solver used).

    The pieces are separate so that data split in blocks of rows (td's Dask
    route) solves by the same code: ``gram_design`` and ``gram_pieces`` per
    block, the pieces summed, ``solve_gram`` once, ``refine`` with the block
    residuals of ``normal_residual`` summed.
    """
    A, T, shift = gram_design(backend, X, T, sqrt_w, x_mean, x_std)
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (T.shape[1],))
    if solver == "svd":
        return _svd_solve(backend, A, T, alpha, shift), "svd"
    G, B = gram_pieces(backend, A, T, shift)
    solved = solve_gram(G, B, alpha, X.dtype, stacklevel=5)
    if solved is None:
        return _svd_solve(backend, A, T, alpha, shift), "svd"
    coef, solve, needs_refinement = solved
    if needs_refinement:
        coef = refine(coef, alpha, solve, lambda c: normal_residual(backend, A, T, c, shift))
    return coef, "cholesky"


def gram_design(backend, X, T, sqrt_w, x_mean=None, x_std=None):
    """(A, T, shift): the rows the normal equations are formed from, with the mean
    ``shift`` still to subtract from A's rows (None where A is already centred)."""
    xp = backend.xp
    if x_mean is not None and sqrt_w is None and np.all(x_mean ** 2 <= 16 * x_std ** 2):
        # Offsets within a few deviations: centre the Gram matrix afterwards (G - n m m^T)
        # and spare the copy of X; it would lose float32's digits where the mean dwarfs the spread.
        return X, T, x_mean
    A = X - xp.asarray(x_mean, dtype=X.dtype) if x_mean is not None else X
    if sqrt_w is not None:
        A = A * sqrt_w.astype(X.dtype)[:, None]
        T = T * sqrt_w.astype(X.dtype)[:, None]
    return A, T, None


def gram_pieces(backend, A, T, shift, sqrt_w=None):
    """(A - e shift^T)^T (A - e shift^T) and (A - e shift^T)^T T as host float64 (d x d, d x k),
    e = ones, or ``sqrt_w`` where A's and T's rows are scaled by the square roots of the weights.
    Over blocks of rows the pieces add up to those of the whole (``shift`` is the global weighted
    mean, so the blocks' A^T e add up to (e^T e) shift). A may be a SciPy sparse block (td's
    Dask route, which cannot centre it without filling in its zeros): A^T A is then SciPy's
    sparse product, made dense."""
    if is_sparse_input(A):
        G, B = (A.T @ A).toarray().astype(np.float64), np.asarray(A.T @ T, dtype=np.float64)
    else:
        G = backend.to_numpy(backend.matmul(A.T, A)).astype(np.float64)
        B = backend.to_numpy(backend.matmul(A.T, T)).astype(np.float64)
    if shift is not None:
        count, t_sum = (A.shape[0], T.sum(axis=0)) if sqrt_w is None else (sqrt_w @ sqrt_w, sqrt_w @ T)
        G -= count * np.outer(shift, shift)
        B -= np.outer(shift, backend.to_numpy(t_sum).astype(np.float64))
    return G, B


def solve_gram(G, B, alpha, dtype, stacklevel=2):
    """Solve (G + alpha_j I) coef_j = B[:, j] for every target j (host float64).

    The system is equilibrated (unit diagonal, so the condition estimate measures
    collinearity, not the features' units) and factored by Cholesky, once per
    distinct penalty. Returns (coef (k, d), solve, needs_refinement), where
    ``solve(rhs, j)`` applies the factors to another right-hand side and
    ``needs_refinement`` says the Gram matrix formed in ``dtype`` may have lost more
    than ~1e-5 of the solution; or None, with an ``IllConditionedWarning``, where the
    normal equations are too ill-conditioned (the caller solves by SVD instead)."""
    d = G.shape[0]
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (B.shape[1],))
    diag = np.diag(G)
    D = np.where(diag > 0, 1.0 / np.sqrt(np.where(diag > 0, diag, 1.0)), 1.0)
    Gs = G * D[:, None] * D[None, :]
    eps = float(np.finfo(dtype).eps)
    factors, worst = {}, 1.0  # one Cholesky factorisation per distinct penalty (usually one)
    for a in np.unique(alpha):
        factors[a], cond = _cholesky_or_none(Gs + np.diag(a * D * D), eps)
        worst = max(worst, cond)
        if factors[a] is None:
            warnings.warn(
                f"the Gram matrix X^T X ({d} x {d}) is singular or too ill-conditioned for the normal "
                f"equations in {np.dtype(dtype).name} (collinear or constant features?); solving by SVD "
                "least squares instead (minimum-norm solution where X is rank-deficient)",
                IllConditionedWarning, stacklevel=stacklevel)
            return None

    def solve(rhs, j):  # (G + alpha_j I)^-1 rhs through the equilibrated factors
        return _cho_solve(factors[alpha[j]], rhs * D) * D

    coef = np.stack([solve(B[:, j], j) for j in range(len(alpha))])
    return coef, solve, worst * eps > 1e-5


def _cholesky_or_none(system, eps):
    """(Cholesky factor, condition estimate), the factor None where the system is numerically
    singular: past cond = 1 / (10 eps) the normal equations have lost the digits that the data
    carries. The estimate is exact (eigenvalues) up to d = 2048 and beyond that the squared
    ratio of the largest to the smallest pivot, a lower bound."""
    try:
        L = np.linalg.cholesky(system)
    except np.linalg.LinAlgError:
        return None, np.inf
    pivots = np.diag(L)
    if pivots.min() <= 0:
        return None, np.inf
    if len(system) <= 2048:
        eigenvalues = np.linalg.eigvalsh(system)
        cond = eigenvalues[-1] / eigenvalues[0] if eigenvalues[0] > 0 else np.inf
    else:
        cond = (pivots.max() / pivots.min()) ** 2
    return (L if cond * eps <= 0.1 else None), cond


def _cho_solve(L, rhs):
    return solve_triangular(L, solve_triangular(L, rhs, lower=True), lower=True, trans="T")


def refine(coef, alpha, solve, residual, steps: int = 2):
    """Mixed-precision iterative refinement: a Gram matrix formed in float32 gives a
    solution off by about cond * eps32; residuals of the normal equations computed in
    float64 (``residual(coef)``: (k, d), the data part B - G coef, see
    ``normal_residual``) and solved with the same factors shrink that error by
    cond * eps32 per step."""
    for _ in range(steps):
        step = np.stack([solve(r, j) for j, r in enumerate(residual(coef) - alpha[:, None] * coef)])
        coef = coef + step
        if np.abs(step).max() <= 1e-12 * max(np.abs(coef).max(), 1e-300):
            break
    return coef


def normal_residual(backend, A, T, coef, shift):
    """(A - shift)^T (T - (A - shift) coef^T), transposed to (k, d), in float64 (row chunks of
    A converted on the fly): the data part of the normal equations' residual."""
    xp, mm = backend.xp, backend.matmul
    residual = np.zeros_like(coef)
    for rows in _row_chunks(A.shape[0]):
        a64 = A[rows].astype(np.float64)
        if shift is not None:
            a64 -= xp.asarray(shift)
        fitted = mm(a64, xp.asarray(coef.T))
        residual += backend.to_numpy(mm(a64.T, T[rows].astype(np.float64) - fitted)).T
    return residual


def _svd_solve(backend, A, T, alpha, shift=None):
    """Minimum-norm (ridge-regularised) least squares by SVD of the float64 data."""
    xp = backend.xp
    A64, T64 = A.astype(np.float64), T.astype(np.float64)
    if shift is not None:
        A64 -= xp.asarray(shift)
    U, s, Vt = xp.linalg.svd(A64, full_matrices=False)
    return svd_coef(backend.to_numpy(s), backend.to_numpy(U.T @ T64), backend.to_numpy(Vt), alpha, max(A.shape))


def svd_coef(s, UtT, Vt, alpha, longest):
    """coef (k, d) from the thin SVD A = U diag(s) Vt (host float64), singular values below
    ``longest`` * eps * max(s) treated as zero (minimum norm)."""
    cutoff = s.max(initial=0.0) * longest * np.finfo(np.float64).eps
    coef = np.empty((UtT.shape[1], Vt.shape[1]))
    for j, a in enumerate(alpha):
        factor = np.divide(s, s * s + a, out=np.zeros_like(s), where=s > cutoff)
        coef[j] = Vt.T @ (factor * UtT[:, j])
    return coef


def sparse_least_squares(backend, X, T, weights, alpha, x_mean=None, max_iter=None, tol=1e-10):
    """Minimise sum_i w_i ||t_i - coef (x_i - x_mean)||^2 + alpha ||coef||^2 by LSQR (Paige &
    Saunders, scipy.sparse.linalg.lsqr), for X a CSR (or any X the products take) too wide
    for the Gram matrix: LSQR only multiplies by X and X^T. The centring and the weights live
    in the operator, A = diag(sqrt(w)) (X - 1 x_mean^T), so X stays as it is (scikit-learn's
    way with sparse input); ``alpha`` is LSQR's damping squared, one value per target.

    ``T`` (n, k) host float64, already centred where there is an intercept; ``weights`` (n,)
    host float64. Products run in float64 (a float32 X gets float64 values, its index arrays
    shared). Returns (coef (k, d) float64, iterations per target)."""
    from scipy.sparse.linalg import LinearOperator, lsqr

    if isinstance(X, CSR) and X.dtype != np.float64:
        X = X.with_values(X.values.astype(np.float64))
    n, d = X.shape
    sqrt_w = np.sqrt(weights)
    m = np.zeros(d) if x_mean is None else np.asarray(x_mean, dtype=np.float64)

    def matvec(v):
        v = np.asarray(v, dtype=np.float64).reshape(d)
        xv = backend.to_numpy(product(backend, X, backend.asarray(v[:, None])))[:, 0]
        return sqrt_w * (xv - m @ v)

    def rmatvec(u):
        su = sqrt_w * np.asarray(u, dtype=np.float64).reshape(n)
        xtu = backend.to_numpy(product(backend, backend.asarray(su[None, :]), X))[0]
        return xtu - m * su.sum()

    operator = LinearOperator((n, d), matvec=matvec, rmatvec=rmatvec, dtype=np.float64)
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (T.shape[1],))
    coef, iterations = np.zeros((T.shape[1], d)), []
    for j in range(T.shape[1]):
        result = lsqr(operator, sqrt_w * T[:, j], damp=float(np.sqrt(alpha[j])), atol=tol, btol=tol,
                      conlim=1e12, iter_lim=max_iter)
        coef[j], iterations = result[0], iterations + [int(result[2])]
    return coef, iterations


# ----------------------------------------------------------------- logistic loss


def logistic_block(backend, X, Y, weights, coef, intercept, need_grad: bool = True):
    """One block of rows' share of the logistic data term, on X's device: (loss, RtX, r_sum)
    with loss = sum_i w_i loss(z_i, y_i) (a 0-d float64 array), RtX = R^T X (k, d) and
    r_sum = sum_i r_i (k,) in float64, R the weighted residuals (probabilities minus
    targets); RtX and r_sum are None without ``need_grad``. z = X coef^T + intercept in X's
    dtype; ``coef`` (k, d) and ``intercept`` (k,) are float64 arrays of the backend. Over
    blocks of rows the three add up to those of the whole.

    Binary (k = 1): loss = softplus(z) - y z; multinomial: logsumexp(z) - z_y. Dense X
    takes the backend's fused linear-model step (two passes over X: the loss epilogue,
    then R^T X with r_sum; on "cuda"/"emu" our kernels/linear_skinny.cu)."""
    epilogue = "sigmoid" if Y.shape[1] == 1 else "softmax"
    coef, intercept = coef.astype(X.dtype), intercept.astype(X.dtype)
    if backend.name == "cpu" and not coef.any():
        # Every fit starts at coef = 0, where Z is the intercept: no pass over X (which the fit has
        # checked finite, so 0 * X is 0). (On a GPU the question would cost a sync per evaluation.)
        Z = backend.xp.zeros((X.shape[0], len(intercept)), dtype=X.dtype) + intercept
        losses, R = loss_rows(backend.xp, epilogue, Z, Y, weights=weights)
    elif isinstance(X, CSR):
        Z = product(backend, X, coef.T) + intercept
        losses, R = loss_rows(backend.xp, epilogue, Z, Y, weights=weights)
    else:
        losses, R = backend.linear_loss(epilogue, X, coef, intercept, Y, weights=weights)
    # Summed in float64 (the line search compares values of f).
    loss = weights.astype(np.float64) @ losses.astype(np.float64)
    if not need_grad:
        return loss, None, None
    if isinstance(X, CSR):
        return loss, product(backend, R.T, X).astype(np.float64), backend.column_sums(R).astype(np.float64)
    RtX, r_sum = backend.linear_grad(R, X, bias=True)
    return loss, RtX.astype(np.float64), r_sum.astype(np.float64)


class LogisticObjective:
    """f(u, b) = (1/S) sum_i w_i loss(z_i, y_i) + l2 / 2 ||coef||^2 (+ l1 ||coef||_1, for the
    proximal solver), with z = X coef^T + b - coef m, coef = u / t.

    Binary: one output, loss = softplus(z) - y z. Multinomial: k outputs,
    loss = logsumexp(z) - z_y. The parameter vector is ``[u.ravel(), b]``, float64,
    on the backend; products run in X's dtype. The data term comes from
    ``_data_terms`` (``logistic_block`` over all of X here; summed over the chunks of a
    Dask array in ``td.distributed``).
    """

    def __init__(self, backend, X, Y, weights, l2, l1, mean, scale, fit_intercept):
        self.X = X
        self.Y = Y  # (n, k) one-hot (k = number of classes) or (n, 1) 0/1
        self.weights = weights  # (n,) sample weights summing to 1, X's dtype
        self._setup(backend, Y.shape[1], X.shape[1], l2, l1, mean, scale, fit_intercept)

    def _setup(self, backend, k, d, l2, l1, mean, scale, fit_intercept):
        self.backend, self.xp = backend, backend.xp
        self.k, self.d = k, d
        self.binary = self.k == 1
        self.l2, self.l1 = float(l2), float(l1)
        self.mean = self.xp.asarray(mean if fit_intercept else np.zeros(self.d))
        self.scale = self.xp.asarray(scale)
        self.fit_intercept = fit_intercept
        self.size = self.k * self.d + (self.k if fit_intercept else 0)
        self.n_evaluations = 0

    def unpack(self, params):
        """Parameters -> (coef (k, d), intercept (k,)) in raw feature units, float64."""
        coef = params[: self.k * self.d].reshape(self.k, self.d) / self.scale
        bias = params[self.k * self.d:] if self.fit_intercept else self.xp.zeros(self.k)
        return coef, bias - coef @ self.mean

    def pack(self, coef, intercept):
        coef, intercept = self.xp.asarray(coef, dtype=np.float64), self.xp.asarray(intercept, dtype=np.float64)
        u = (coef * self.scale).ravel()
        if not self.fit_intercept:
            return u
        return self.xp.concatenate([u, intercept + coef @ self.mean])

    def _data_terms(self, coef, intercept, need_grad):
        """(loss, R^T X, r_sum) of the data: see ``logistic_block``."""
        return logistic_block(self.backend, self.X, self.Y, self.weights, coef, intercept, need_grad)

    def smooth_value(self, params) -> float:
        return self.value_and_grad(params, need_grad=False)[0]

    graphed = None  # a GraphedEvaluation after capture_evaluations()

    def capture_evaluations(self) -> None:
        """Evaluate through a CUDA graph from now on (LogisticRegression(cuda_graph=True))."""
        self.graphed = GraphedEvaluation(lambda params: self._evaluate(params, True), self.backend)

    def value_and_grad(self, params, need_grad: bool = True):
        """The smooth part (data loss + l2) and, unless ``need_grad`` is False, its gradient."""
        self.n_evaluations += 1
        if self.graphed is not None:  # the gradient comes along; the value is the same, bit for bit
            value, grad = self.graphed(params)
            return float(value), grad if need_grad else None
        value, grad = self._evaluate(params, need_grad)
        return float(value), grad  # one scalar read back

    def _evaluate(self, params, need_grad: bool):
        """value_and_grad on the device: the value a 0-d array, nothing read back."""
        xp = self.xp
        coef, intercept = self.unpack(params)
        loss, RtX, r_sum = self._data_terms(coef, intercept, need_grad)
        value = loss + 0.5 * self.l2 * (coef * coef).sum()
        if not need_grad:
            return value, None
        grad_coef = RtX - r_sum[:, None] * self.mean[None, :]
        grad_coef += self.l2 * coef
        grad_u = (grad_coef / self.scale).ravel()
        grad = xp.concatenate([grad_u, r_sum]) if self.fit_intercept else grad_u
        return value, grad

    def prox_l1(self, params, step):
        """argmin_v l1 ||v / t||_1 + ||v - params||^2 / (2 step): soft thresholding of u."""
        xp = self.xp
        out = params.copy()
        u = out[: self.k * self.d].reshape(self.k, self.d)
        threshold = step * self.l1 / self.scale
        u[...] = xp.sign(u) * xp.maximum(xp.abs(u) - threshold, 0)
        return out


class GraphedEvaluation:
    """An objective's loss-and-gradient evaluation captured once in a CUDA graph and
    replayed for every later call: the solver's Python and the dozens of array ops
    of an evaluation become one graph launch. The values are those of the eager
    evaluation (bit for bit on "emu").

    The first call runs eagerly: the warm-up, which plans (and autotunes) the GEMM
    signatures, as a capture cannot. The second captures on a static copy of its
    parameters; from then on a call copies its parameters into the static ones,
    replays, and returns the static value and a copy of the static gradient (the
    next replay overwrites it, and L-BFGS keeps gradients)."""

    def __init__(self, evaluate, backend):
        from ..runtime.graphs import CUDAGraph

        if backend.name == "cpu":
            raise ValueError("cuda_graph=True captures the solver's loss-and-gradient evaluation in a CUDA graph, "
                             "which needs device 'cuda'/'cuda:N' or 'emu' (CUDA emulated on the CPU); this fit "
                             "runs on 'cpu' (set device=, or pass the data on one of those devices), or set "
                             "cuda_graph=False")
        self.evaluate, self.backend = evaluate, backend
        self.graph, self.warm = CUDAGraph(), False
        self.params = self.value = self.grad = None

    def __call__(self, params):
        if not self.warm:
            self.warm = True
            return self.evaluate(params)
        if self.params is None:
            from ..runtime.graphs import graph

            self.params = params.copy()
            with graph(self.graph, device=self.backend.name):
                self.value, self.grad = self.evaluate(self.params)
        else:
            self.backend.xp.copyto(self.params, params)
        self.graph.replay()
        return self.value, self.grad.copy()


def fista(objective, x0, max_iter: int, tol: float):
    """Accelerated proximal gradient (Beck & Teboulle 2009) with backtracking on the
    Lipschitz constant and O'Donoghue & Candes' adaptive restart. Stops when the
    largest coordinate change is at most ``tol`` times the largest coefficient
    (scikit-learn's saga rule). Returns (params, iterations, converged, why it stopped)."""
    xp = objective.xp
    x, y, momentum = x0, x0, 1.0
    lipschitz = 1.0
    value_y, grad_y = objective.value_and_grad(y)
    for iteration in range(1, max_iter + 1):
        while True:  # backtracking: the quadratic model at y must bound f at the step
            step = 1.0 / lipschitz
            candidate = objective.prox_l1(y - step * grad_y, step)
            diff = candidate - y
            bound = value_y + float(grad_y @ diff) + 0.5 * lipschitz * float(diff @ diff)
            value_c = objective.smooth_value(candidate)
            if value_c <= bound * (1 + 1e-12) + 1e-300:
                break
            if lipschitz > 1e20:  # no step decreases f: never accept one that raises it
                return x, iteration - 1, False, "the backtracking found no step that decreases the objective"
            lipschitz *= 2.0
        change = float(xp.abs(candidate - x).max())
        size = float(xp.abs(candidate).max())
        next_momentum = 0.5 * (1 + math.sqrt(1 + 4 * momentum * momentum))
        if float((y - candidate) @ (candidate - x)) > 0:  # the momentum points uphill: restart
            next_momentum, y = 1.0, candidate
        else:
            y = candidate + ((momentum - 1) / next_momentum) * (candidate - x)
        x, momentum = candidate, next_momentum
        if not math.isfinite(value_c):
            return x, iteration, False, "the objective became non-finite"
        if change <= tol * max(size, 1e-12):
            return x, iteration, True, "converged"
        lipschitz *= 0.9  # let the step grow back where the curvature allows
        value_y, grad_y = objective.value_and_grad(y)
    return x, max_iter, False, f"reached max_iter={max_iter}"
