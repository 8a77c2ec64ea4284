"""td.models on Dask arrays: the estimators' data passes, chunk by chunk on the workers.

The parameters stay on the client and the data on the workers. What comes back
per pass is small: a summary per chunk (validation), d sums per chunk
(moments), the d x d and d x k Gram pieces summed on each worker and then
across workers (exact least squares), one scalar, one k x d array and k sums
per chunk per evaluation (L-BFGS, FISTA). The d x d solve and the optimisers
are the single-machine code (``solvers.solve_gram``, ``LogisticObjective``,
``minimize_lbfgs``, ``fista``), so the result is the same fit up to the order
of floating-point sums. The stochastic estimators are sequential by nature:
their state (O(k d)) travels from chunk to chunk, each chunk's pass running
where the chunk is, and comes back once per epoch (``sgd_fit``).

SciPy-sparse chunks (``RowBlocks.load`` makes them CSR once) become td's CSR in
each task (``block_matrix``) and go through the same per-block functions as on
one machine (``logistic_block``, ``_SGD._pass``). Least squares, which one
machine solves for sparse X by LSQR, takes the Gram route here: each chunk's
X_i^T W_i X_i is a SciPy sparse product made dense (d x d, for d up to
``SPARSE_GRAM_MAX_FEATURES``), centred afterwards.
"""
from __future__ import annotations

import copy

import numpy as np

from ..models.solvers import (LogisticObjective, gram_design, gram_pieces, logistic_block, normal_residual,
                              refine, solve_gram, svd_coef, weighted_mean)
from ..models.sgd import _check_weight_sum
from ..sparse import CSR
from ..tensor import host_array as _host
from ._blocks import RowBlocks, as_dask_array, block_backend, block_matrix, get_client

__all__ = ["least_squares_parts", "logistic_parts", "sgd_fit", "chunk_orders", "predict", "score"]


# ----------------------------------------------------------------- moments


def _plain_weights(y, w):
    """Sample weights of one chunk as host float64 (ones where none were given)."""
    return np.ones(len(y)) if w is None else _host(w).astype(np.float64)


def _class_weights_of(classes, class_weight):
    """The weights of one chunk's rows: sample weights times their class's weight."""
    def weight_of(y, w):
        weights = _plain_weights(y, w)
        if class_weight is None:
            return weights
        return weights * class_weight[np.searchsorted(classes, _host(y))]
    return weight_of


def _weighted_sums(x, y, w, weight_of):
    """(sum of the weights, weights @ x) of one chunk, by ``weighted_mean`` as on one machine (the
    product in x's dtype on its device), and for a sparse chunk weights @ (x * x) too: the
    single-machine sparse fit takes the deviations from every row's squares (there is no dense
    centred copy to subsample). Host float64."""
    weights = weight_of(y, w)
    backend, X = block_matrix(x)
    with backend.scope():
        sums = (float(weights.sum()), weighted_mean(backend, X, weights))
        if isinstance(X, CSR):
            sums += (weighted_mean(backend, X.with_values(X.values * X.values), weights),)
        return sums


def _subset_squares(x, y, w, offset, weight_of, mean, stride):
    """The strided subset's share of ``column_moments``' variance: rows whose global index is a
    multiple of ``stride`` (the chunk starts at row ``offset``): (their weight, weighted squares)."""
    rows = slice((-offset) % stride, None, stride)
    weights = weight_of(y, w)[rows]
    backend = block_backend(x)
    with backend.scope():
        centred = x[rows] - backend.asarray(mean, dtype=x.dtype)
        centred *= centred
        squares = backend.column_sums(centred, weights)
        return float(weights.sum()), backend.to_numpy(squares).astype(np.float64)


def column_moments(blocks, weight_of, *args):
    """``solvers.column_moments`` over the chunks: the weighted column means from every row, the
    deviations from the same strided subset of rows (past 16,384 rows) as on one machine, or
    for sparse chunks from every row's squares (E[x^2] - mean^2, as on one machine).
    ``weight_of(y_i, w_i, *args)`` gives a chunk's row weights. Returns (total weight, mean, std)."""
    from ..models.solvers import _SCALE_SAMPLE_ROWS

    sums = blocks.map_gather(_weighted_sums, _Bound(weight_of, args))
    total = sum(p[0] for p in sums)
    if not total > 0:
        raise ValueError("the sample weights sum to zero: at least one sample needs a positive weight")
    mean = sum(p[1] for p in sums) / total
    if blocks.sparse:
        square = sum(p[2] for p in sums) / total
        return total, mean, np.sqrt(np.maximum(square - mean * mean, 0.0))
    stride = max(1, blocks.n // _SCALE_SAMPLE_ROWS)
    chunks = [chunk + (int(offset),) for chunk, offset in zip(blocks.chunks(), blocks.offsets)]
    parts = blocks.map_gather(_subset_squares, _Bound(weight_of, args), mean, stride, chunks=chunks)
    subset_total = sum(p[0] for p in parts)
    var = sum(p[1] for p in parts) / subset_total if subset_total > 0 else np.zeros_like(mean)
    return total, mean, np.sqrt(np.maximum(var, 0.0))


class _Bound:
    """weight_of with its arguments, sent to the workers as our function and arrays."""

    def __init__(self, function, args):
        self.function, self.args = function, args

    def __call__(self, y, w):
        return self.function(*self.args)(y, w) if self.args else self.function(y, w)


def _combine(parts):
    """Chan et al.'s parallel combination of (count, mean, m2) per chunk: (mean, variance)."""
    total = sum(p[0] for p in parts)
    mean = sum(p[0] * p[1] for p in parts) / total
    m2 = sum(p[2] + p[0] * (p[1] - mean) ** 2 for p in parts)
    return mean, np.maximum(m2 / total, 0.0)


def _y_moments(x, y, w):
    """(weight, mean, squared deviations) of one chunk's targets, float64."""
    Y = _host(y).reshape(len(y), -1).astype(np.float64)
    weights = _plain_weights(y, w)
    total = float(weights.sum())
    mean = weights @ Y / total if total > 0 else np.zeros(Y.shape[1])
    return total, mean, weights @ (Y - mean) ** 2


# ----------------------------------------------------------------- least squares


def _standardized(y, y_mean, y_scale):
    """One chunk's targets standardized as the fit standardizes the whole y: (n, k) host float64."""
    return (_host(y).reshape(len(y), -1).astype(np.float64) - y_mean) / y_scale


def _design(x, y, w, y_mean, y_scale, x_mean, x_std):
    """gram_design of one chunk: (backend, A, T, shift) with T the standardized targets."""
    backend = block_backend(x)
    with backend.scope():
        T = backend.asarray(_standardized(y, y_mean, y_scale), dtype=x.dtype)
        sqrt_w = None if w is None else backend.asarray(np.sqrt(_host(w).astype(np.float64)))
        return (backend,) + gram_design(backend, x, T, sqrt_w, x_mean, x_std)


def _gram_block(x, y, w, *design_args):
    backend, A, T, shift = _design(x, y, w, *design_args)
    with backend.scope():
        return gram_pieces(backend, A, T, shift)


def _residual_block(x, y, w, coef, *design_args):
    backend, A, T, shift = _design(x, y, w, *design_args)
    with backend.scope():
        return normal_residual(backend, A, T, coef, shift)


def _qr_block(x, y, w, *design_args):
    """R and Q^T T of the chunk's float64 design (a step of a tall-skinny QR)."""
    backend, A, T, shift = _design(x, y, w, *design_args)
    A64, T64 = _host(A).astype(np.float64), _host(T).astype(np.float64)
    if shift is not None:
        A64 = A64 - shift
    Q, R = np.linalg.qr(A64)
    return R, Q.T @ T64


# The Gram route for sparse chunks ships a d x d float64 matrix from every worker and factors it on the
# client: 128 MiB and ~2e10 flops (seconds) at d = 4096, growing as d^2 and d^3. Wider sparse data
# (text features) is what the single-machine sparse fit's LSQR, which never forms the matrix, is for.
SPARSE_GRAM_MAX_FEATURES = 4096


def _sparse_gram_block(x, y, w, y_mean, y_scale, x_mean):
    """The Gram pieces of one SciPy-sparse chunk, in float64 whatever X's dtype (the single-machine
    sparse fit's LSQR computes in float64 too): A = diag(sqrt(w)) X stays sparse, A^T A is SciPy's
    sparse product and only the d x d result is dense. A is never centred, which would fill in its
    zeros: the mean comes off the pieces (``gram_pieces``' shift)."""
    from ..backends import get_backend

    A, T, sqrt_w = x.astype(np.float64), _standardized(y, y_mean, y_scale), None
    if w is not None:
        sqrt_w = np.sqrt(_host(w).astype(np.float64))
        A, T = A.multiply(sqrt_w[:, None]).tocsr(), T * sqrt_w[:, None]
    return gram_pieces(get_backend("cpu"), A, T, x_mean, sqrt_w)


def _gram_eigen_coef(G, B, alpha, longest):
    """``svd_coef``'s minimum-norm solve from the eigendecomposition G = V diag(s^2) V^T of the Gram
    matrix, where the rows of X never meet in one place to be factored (sparse chunks). G carries
    about eps times its largest eigenvalue of rounding, so eigenvalues below ``longest`` * eps
    times the largest count as zero (as singular values below ``longest`` * eps times the largest
    do in an SVD of X itself); U^T T is S^-1 V^T B."""
    eigenvalues, V = np.linalg.eigh(G)
    keep = eigenvalues > eigenvalues.max(initial=0.0) * longest * np.finfo(np.float64).eps
    s = np.sqrt(np.where(keep, eigenvalues, 0.0))
    UtT = np.divide(V.T @ B, s[:, None], out=np.zeros_like(B), where=keep[:, None])
    return svd_coef(s, UtT, V.T, alpha, longest)


def _sparse_least_squares(blocks, solver, alpha, y_mean, y_scale, x_mean):
    """(coef, solver) of sparse chunks: the float64 Gram pieces summed, then Cholesky (no refinement:
    nothing was formed in float32), or the eigen solve where the normal equations are too
    ill-conditioned (with ``solve_gram``'s warning) or ``solver="svd"`` asks for it."""
    G, B = blocks.map_gather(_sparse_gram_block, y_mean, y_scale, x_mean, reduce=True)
    if solver != "svd":
        solved = solve_gram(G, B, alpha, np.float64, stacklevel=5)
        if solved is not None:
            return solved[0], "cholesky"
    return _gram_eigen_coef(G, B, alpha, max(blocks.n, blocks.d)), "svd"


def least_squares_parts(estimator, X, y, sample_weight, alpha_of):
    """The exact least-squares fit of ``estimator`` (LinearRegression, Ridge) on Dask data:
    (coef (k, d) float64 of the standardized problem, solver used, y_mean, y_scale,
    x_mean, y's ndim, working dtype), as ``_LeastSquares.fit`` finishes them. Dense chunks:
    the Gram pieces in the working dtype (refined in float64 where needed), else a tall-skinny
    QR; sparse chunks: ``_sparse_least_squares``."""
    client = get_client()
    _begin_fit(estimator, X, y)
    blocks = RowBlocks.load(client, X, y, sample_weight, dtype_rule=estimator._dtype_rule(), y_kind="numeric")
    try:
        if blocks.sparse and blocks.d > SPARSE_GRAM_MAX_FEATURES:
            gib = blocks.d ** 2 * 8 / 2 ** 30
            raise ValueError(f"X's chunks are sparse with d = {blocks.d} features; td's Dask route solves least "
                             f"squares by the d x d Gram matrix, which it forms for sparse X of at most "
                             f"{SPARSE_GRAM_MAX_FEATURES} features (here {gib:.1f} GiB per worker, and O(d^3) to "
                             "factor): fit the SciPy matrix in memory (LSQR, no Gram matrix), fit SGDRegressor on "
                             "this Dask array (partial_fit over its chunks), or select fewer features")
        estimator.__dict__.pop("n_iter_", None)  # LSQR's iterations, which only the in-memory sparse fit sets
        estimator.n_features_in_ = blocks.d
        y_ndim = len(blocks.summaries[0]["y_shape"])
        if y_ndim == 2 and any(s["y_shape"][1] != blocks.summaries[0]["y_shape"][1] for s in blocks.summaries):
            raise ValueError("y's chunks disagree in their number of targets")
        alpha = alpha_of(1 if y_ndim == 1 else blocks.summaries[0]["y_shape"][1])
        y_parts = blocks.map_gather(_y_moments)
        if not sum(p[0] for p in y_parts) > 0:
            raise ValueError("the sample weights sum to zero: at least one sample needs a positive weight")
        y_mean, y_var = _combine(y_parts)
        if not estimator.fit_intercept:
            y_mean = np.zeros_like(y_mean)
            y_var = sum(p[2] + p[0] * p[1] ** 2 for p in y_parts) / sum(p[0] for p in y_parts)
        y_scale = np.sqrt(y_var)
        y_scale = np.where(y_scale > 0, y_scale, 1.0)
        x_mean, x_std = (None, None)
        if estimator.fit_intercept:
            _, x_mean, x_std = column_moments(blocks, _plain_weights)
        design = (y_mean, y_scale, x_mean, x_std)
        alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (len(y_mean),))
        coef, solver = None, "svd"
        if blocks.sparse:
            coef, solver = _sparse_least_squares(blocks, estimator.solver, alpha, y_mean, y_scale, x_mean)
        elif estimator.solver != "svd":
            G, B = blocks.map_gather(_gram_block, *design, reduce=True)
            solved = solve_gram(G, B, alpha, blocks.dtype, stacklevel=4)
            if solved is not None:
                coef, solve, needs_refinement = solved
                if needs_refinement:
                    coef = refine(coef, alpha, solve,
                                  lambda c: blocks.map_gather(_residual_block, c, *design, reduce=True))
                solver = "cholesky"
        if coef is None:  # SVD through a tall-skinny QR: the chunks' R factors stacked, one small SVD
            pieces = blocks.map_gather(_qr_block, *design)
            R = np.concatenate([p[0] for p in pieces])
            QtT = np.concatenate([p[1] for p in pieces])
            U, s, Vt = np.linalg.svd(R, full_matrices=False)
            coef = svd_coef(s, U.T @ QtT, Vt, alpha, max(blocks.n, blocks.d))
        return coef, solver, y_mean, y_scale, x_mean, y_ndim, blocks.dtype
    finally:
        blocks.release()


# ----------------------------------------------------------------- classes


def _one_dimensional_y(blocks):
    for i, s in enumerate(blocks.summaries):
        if len(s["y_shape"]) != 1:
            raise ValueError(f"y should be a 1d array, got chunk {i} of shape {s['y_shape']}")


def _class_summary(blocks):
    """The labels of the whole y from the chunks' summaries, checked (1-D, class labels, at least
    two): (classes, rows per class, sample weight per class)."""
    from sklearn.utils.multiclass import check_classification_targets

    _one_dimensional_y(blocks)
    classes = np.unique(np.concatenate([s["classes"] for s in blocks.summaries]))
    counts = np.zeros(len(classes))
    label_weights = np.zeros(len(classes))
    for s in blocks.summaries:
        where = np.searchsorted(classes, s["classes"])
        counts[where] += s["class_counts"]
        label_weights[where] += s["class_weight_sums"]
    if not (classes.dtype.kind == "f" and np.all(classes == np.floor(classes))):
        check_classification_targets(classes)
    if len(classes) < 2:
        raise ValueError(f"This solver needs samples of at least 2 classes in the data, but the data contains "
                         f"only one class: {classes[0]!r}")
    return classes, counts, label_weights


def _is_balanced(class_weight) -> bool:
    return isinstance(class_weight, str) and class_weight == "balanced"


def _balanced(counts):
    """class_weight="balanced" from the rows per class of the whole y (scikit-learn's rule)."""
    return counts.sum() / (len(counts) * counts)


# ----------------------------------------------------------------- logistic regression


def _targets(x, y, w, classes, class_weight, total, dtype):
    """One chunk's (targets (n, k), weights / total) in the working dtype, on x's device: built
    once per fit where the chunk lives and kept there (``map_groups``), so that no evaluation
    copies them from the host to a GPU again."""
    index = np.searchsorted(classes, _host(y))
    weights = _class_weights_of(classes, class_weight)(y, w) / total
    k = 1 if len(classes) == 2 else len(classes)
    if k == 1:
        T = index.reshape(-1, 1).astype(dtype)
    else:
        T = np.zeros((len(index), k), dtype=dtype)
        T[np.arange(len(index)), index] = 1
    backend = block_backend(x)
    with backend.scope():
        return backend.asarray(T), backend.asarray(weights, dtype=dtype)


def _logistic_eval(x, targets, coef, intercept, need_grad):
    """logistic_block on one chunk (its X block and its (targets, weights), already on x's
    device), the results as host NumPy; what crosses to the device is the coefficients."""
    T, weights = targets
    backend, X = block_matrix(x)
    with backend.scope():
        loss, RtX, r_sum = logistic_block(backend, X, T, weights, backend.asarray(coef), backend.asarray(intercept),
                                          need_grad)
        return float(loss), None if RtX is None else backend.to_numpy(RtX), \
            None if r_sum is None else backend.to_numpy(r_sum)


class DaskLogisticObjective(LogisticObjective):
    """LogisticObjective whose data term is summed over the chunks on the workers: each
    evaluation sends the coefficients and gets back one scalar, one k x d array and k
    numbers per chunk."""

    def __init__(self, backend, blocks, targets, k, l2, l1, mean, scale, fit_intercept):
        self.blocks, self.targets = blocks, targets
        self._setup(backend, k, blocks.d, l2, l1, mean, scale, fit_intercept)

    def _data_terms(self, coef, intercept, need_grad):
        parts = self.blocks.map_gather(_logistic_eval, np.asarray(coef), np.asarray(intercept), need_grad,
                                       chunks=[(x,) for x in self.blocks.x], group_extras=self.targets)
        loss = np.float64(sum(p[0] for p in parts))
        if not need_grad:
            return loss, None, None
        return loss, sum(p[1] for p in parts), sum(p[2] for p in parts)


def logistic_parts(estimator, X, y, sample_weight):
    """LogisticRegression's data on Dask: (backend, dtype, classes, class priors, total
    weight, mean, std, make_objective), as ``LogisticRegression._solve`` takes them."""
    from sklearn.utils.class_weight import compute_class_weight

    from ..backends import get_backend

    client = get_client()
    estimator._penalty_split(1.0)  # parameter errors before any data moves
    _begin_fit(estimator, X, y)
    blocks = RowBlocks.load(client, X, y, sample_weight, dtype_rule=estimator._dtype_rule(), y_kind="classes")
    estimator.n_features_in_ = blocks.d
    classes, counts, label_weights = _class_summary(blocks)
    class_weight = None
    if estimator.class_weight is not None:
        class_weight = _balanced(counts) if _is_balanced(estimator.class_weight) else \
            compute_class_weight(estimator.class_weight, classes=classes, y=classes)
    per_class = label_weights * (class_weight if class_weight is not None else 1.0)
    total = float(per_class.sum())
    if not total > 0:
        raise ValueError("the sample weights sum to zero: at least one sample needs a positive weight")
    _, mean, std = column_moments(blocks, _class_weights_of, classes, class_weight)
    k = 1 if len(classes) == 2 else len(classes)
    targets = blocks.map_groups(_targets, classes, class_weight, total, blocks.dtype)
    backend = get_backend("cpu")  # the parameters live on the client

    def make_objective(l2, l1, scale):
        return DaskLogisticObjective(backend, blocks, targets, k, l2, l1, mean, scale, estimator.fit_intercept)

    return backend, blocks.dtype, classes, per_class / total, total, mean, std, make_objective


# ----------------------------------------------------------------- stochastic gradient descent


def chunk_orders(random_state, n_chunks: int, shuffle: bool):
    """The order of the chunks in each epoch of an SGD fit on Dask: a fresh permutation per epoch
    from a generator seeded by ``(seed, 1)``, seed drawn from ``random_state`` as the
    estimator draws its shuffling stream's (which stays apart: the rows within a chunk are
    shuffled as partial_fit shuffles them); 0, 1, ... every epoch without ``shuffle``."""
    from sklearn.utils import check_random_state

    rng = np.random.default_rng([check_random_state(random_state).randint(np.iinfo(np.int32).max), 1])
    while True:
        yield rng.permutation(n_chunks) if shuffle else np.arange(n_chunks)


def _sgd_rows(x, y, w, estimator):
    """On a worker, once per fit: the targets and weights of one chunk as partial_fit makes them
    (``_SGD._rows``: the targets and loss weights on x's device), kept there for every epoch;
    X itself stays out of it (it is the chunk's own future)."""
    targets, class_weights = estimator._targets(_host(y), None)
    counts = estimator._counts(None if w is None else _host(w).astype(np.float64))
    return estimator._rows(block_backend(x), x, targets, counts, class_weights)._replace(X=None)


def _weight_sum(x, rows):
    return rows.weight_sum


def _sgd_chunk(x, rows, state, factor):
    """On a worker: partial_fit's pass over one chunk (``_SGD._pass`` on x's device), continuing
    from ``state`` = (estimator, per-output loss sums so far); returns the state after it,
    the estimator's arrays on the host. Works on a copy: ``state`` may be the previous task's
    result, held in this worker's memory, and a task must stay pure for Dask to rerun it."""
    estimator, total = copy.deepcopy(state)
    backend, X = block_matrix(x)
    with backend.scope():
        W, b, loss = estimator._pass(backend, rows._replace(X=X), factor)
        estimator._set_coef(backend.to_numpy(W), backend.to_numpy(b))
        estimator._move_state(backend.to_numpy)
        return estimator, total + backend.to_numpy(loss).astype(np.float64)


def sgd_fit(estimator, X, y, coef_init, intercept_init, sample_weight):
    """SGDClassifier/SGDRegressor.fit on Dask data. Each epoch runs partial_fit's pass over every
    chunk, the chunks in a seeded order (``chunk_orders``): a chain of tasks, each run where
    its chunk is, taking the estimator's state (coefficients, step counter, shuffling stream,
    Adam's moments, l1 totals: O(k d)) and handing it to the next; the client gets the state
    back once per epoch and applies fit's stopping rule. The iterates are those of a loop of
    partial_fit over the chunks in that order (classes and "balanced" class weights taken
    from the whole y up front)."""
    from sklearn.base import clone

    client = get_client()
    if estimator.early_stopping:
        raise ValueError("early_stopping=True holds out a validation set, which a fit on Dask arrays does not cut: "
                         "set early_stopping=False (tol and n_iter_no_change then stop on the training loss), or "
                         "score a held-out Dask array yourself between partial_fit calls")
    _begin_fit(estimator, X, y)
    blocks = RowBlocks.load(client, X, y, sample_weight, dtype_rule=estimator._dtype_rule(),
                            y_kind="classes" if estimator._classifier else "numeric")
    try:
        estimator.n_features_in_ = blocks.d
        worker = clone(estimator).set_params(verbose=0)  # what travels: parameters, classes, the state
        if estimator._classifier:
            classes, counts, _ = _class_summary(blocks)
            if _is_balanced(estimator.class_weight):
                worker.set_params(class_weight=dict(zip(classes.tolist(), _balanced(counts))))
            estimator.classes_ = worker.classes_ = classes
            outputs = 1 if len(classes) == 2 else len(classes)  # one-vs-rest, one output for two classes
        else:
            _one_dimensional_y(blocks)
            outputs = 1
        # The starting point (a coef_init of the wrong shape is an error) before any pass over the data.
        estimator._start(*estimator._fresh_start(coef_init, intercept_init), blocks.d, outputs, blocks.dtype)
        rows = blocks.map_groups(_sgd_rows, worker)
        weight_sum = blocks.map_gather(_weight_sum, chunks=[(x,) for x in blocks.x], group_extras=rows, reduce=True)
        _check_weight_sum(weight_sum)
        orders = chunk_orders(estimator.random_state, len(blocks.x), estimator.shuffle)

        def run_epoch(factor):
            for name in ("coef_", "intercept_") + estimator._stream_state:
                setattr(worker, name, getattr(estimator, name, None))
            last = blocks.chain(_sgd_chunk, next(orders), (worker, np.zeros(len(weight_sum))), factor,
                                chunks=[(x,) for x in blocks.x], group_extras=rows)
            after, total = last.result()
            for name in estimator._stream_state:
                setattr(estimator, name, getattr(after, name))
            return np.atleast_2d(after.coef_), np.atleast_1d(after.intercept_), total

        estimator._train(run_epoch, weight_sum, estimator.max_iter, stop=True)
    finally:
        blocks.release()


# ----------------------------------------------------------------- prediction


def _begin_fit(estimator, X, y):
    """What every fit on Dask data does first: refuse a missing y (scikit-learn's message) and
    take feature_names_in_ from a Dask DataFrame's columns (scikit-learn's rule), else none."""
    from sklearn.utils.validation import _check_feature_names

    if y is None:
        raise ValueError(f"{type(estimator).__name__} requires y to be passed, but the target y is None.")
    _check_feature_names(estimator, getattr(X, "_meta", None) if hasattr(X, "columns") else None, reset=True)


def _predict_block(block, estimator, method):
    return getattr(estimator, method)(block)


def predict(estimator, X, method: str):
    """``estimator.method`` over the chunks of X: a lazy dask array, one output chunk per
    row chunk. The fitted estimator (our class, its arrays) is what goes to the workers."""
    from sklearn.base import clone
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    columns = getattr(X, "columns", None)
    X = as_dask_array(X, "X")
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D dask array for X, got shape {X.shape}")
    if not np.isnan(X.shape[1]) and X.shape[1] != estimator.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} features, but {type(estimator).__name__} is expecting "
                         f"{estimator.n_features_in_} features as input.")
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and columns is not None and list(columns) != list(names):
        raise ValueError("The feature names should match those that were passed during fit.")
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    worker_copy = clone(estimator)
    for name in estimator._fitted_attributes:
        setattr(worker_copy, name, getattr(estimator, name))  # not feature_names_in_: chunks are arrays
    coef = np.atleast_2d(estimator.coef_)
    classes = getattr(estimator, "classes_", None)
    if method == "predict" and classes is not None:
        return X.map_blocks(_predict_block, worker_copy, method, drop_axis=1, dtype=classes.dtype)
    width = {"predict_proba": len(classes) if classes is not None else 0,
             "predict_log_proba": len(classes) if classes is not None else 0}.get(method, coef.shape[0])
    one_column = method in ("predict", "decision_function") and np.ndim(estimator.coef_) == 1 or \
        (method == "decision_function" and coef.shape[0] == 1)
    if one_column:
        return X.map_blocks(_predict_block, worker_copy, method, drop_axis=1, dtype=coef.dtype)
    return X.map_blocks(_predict_block, worker_copy, method, chunks=(X.chunks[0], (width,)), dtype=coef.dtype)


def score(estimator, X, y, sample_weight, metric):
    """``metric(y, prediction, sample_weight=)`` with the prediction computed on the workers;
    only y, the prediction and the weights (O(n), never X) come back."""
    import dask

    prediction = predict(estimator, X, "predict")
    y = as_dask_array(y, "y") if hasattr(y, "dask") or hasattr(y, "to_dask_array") else y
    sample_weight = as_dask_array(sample_weight, "sample_weight") if hasattr(sample_weight, "dask") or \
        hasattr(sample_weight, "to_dask_array") else sample_weight
    prediction, y, sample_weight = dask.compute(prediction, y, sample_weight)
    from ..models.base import host_numpy

    return float(metric(host_numpy(y), host_numpy(prediction), sample_weight=host_numpy(sample_weight)))
