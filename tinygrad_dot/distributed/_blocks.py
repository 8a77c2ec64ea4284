"""Row blocks of Dask arrays held on the workers of a dask.distributed cluster.

``RowBlocks`` computes the chunks of X (and of y and the sample weights, cut
along the same rows) once, keeps them on the workers as futures for as long as
it lives, and checks them there, chunk by chunk, before any solver moves (X's
chunks dense, NumPy or CuPy, or all SciPy-sparse, made CSR once). The
work it sends is a module-level function of this package and arrays: nothing
else is pickled to the workers. Every task is pure, so Dask can recompute a
chunk lost with a worker from its source.
"""
from __future__ import annotations

import sys
import uuid

import numpy as np

from ..tensor import _sparse_input, host_array

__all__ = ["RowBlocks", "get_client", "is_dask", "as_dask_array", "block_backend", "block_matrix"]


def is_dask(data) -> bool:
    """Whether ``data`` is a Dask collection (array, DataFrame, Series). Never imports
    Dask: data can only be one where Dask has been imported."""
    if "dask" not in sys.modules:
        return False
    import dask

    return dask.is_dask_collection(data)


def get_client(client=None):
    """The dask.distributed Client to run on (the given one, else the active one),
    checked to be connected."""
    try:
        import distributed
    except ImportError as exc:
        from .._extras import install_hint

        raise ImportError(f"fitting Dask arrays needs dask.distributed ({exc}); "
                          f"{install_hint('dask')}") from None
    if client is None:
        try:
            client = distributed.default_client()
        except ValueError:
            raise RuntimeError("td fits Dask arrays on a dask.distributed cluster, and no Client is active: "
                               "create one first (distributed.Client(...), e.g. Client(LocalCluster()))") from None
    if client.status != "running":
        raise RuntimeError(f"the Dask client has gone away (status {client.status!r}, scheduler "
                           f"{getattr(client.scheduler, 'address', None)}): reconnect or create a new Client")
    return client


def as_dask_array(data, what: str):
    """A dask array from a dask array, DataFrame or Series (``to_dask_array(lengths=True)``)."""
    if hasattr(data, "to_dask_array"):
        return data.to_dask_array(lengths=True)
    import dask.array as da

    if not isinstance(data, da.Array):
        raise TypeError(f"{what} is a {type(data).__name__}; td takes dask arrays, DataFrames or Series")
    return data


def block_backend(block):
    """The backend of a chunk: the CPU for NumPy and SciPy-sparse chunks, the chunk's GPU for CuPy ones."""
    from ..backends import get_backend

    if hasattr(block, "__cuda_array_interface__"):
        return get_backend(f"cuda:{block.device.id}")
    return get_backend("cpu")


def block_matrix(block):
    """(backend, the chunk as td's solvers take it): a dense chunk as it is, a SciPy-sparse one as
    td's CSR, by the conversion the single-machine fit makes (``CSR.from_scipy``; the arrays of a
    CSR chunk, which ``RowBlocks.load`` makes every sparse chunk, are shared, not copied)."""
    from ..sparse import CSR

    backend = block_backend(block)
    return backend, CSR.from_scipy(block, backend) if _sparse_input(block) else block


# ----------------------------------------------------------------- tasks (run on the workers)


def _summary(x, y, w, y_kind):
    """What the client checks about one chunk: shapes, dtypes, finiteness, and for the
    fits the label counts (classification) or nothing more."""
    xp = block_backend(x).xp
    out = {"x_shape": tuple(x.shape), "x_dtype": x.dtype.str}
    values = x
    if _sparse_input(x):  # its stored values are what can be NaN; the format decides whether CSR needs making
        out["x_sparse"], out["x_format"] = type(x).__name__, x.format
        out["x_gpu"] = hasattr(x.data, "__cuda_array_interface__")
        values = x.data
    # A finite sum means finite entries (scikit-learn's shortcut: one pass, no boolean temporary);
    # an overflowing sum of finite entries falls back to the entrywise check.
    out["x_finite"] = values.dtype.kind not in "fc" or bool(xp.isfinite(values.sum())) or \
        bool(xp.isfinite(values).all())
    if y is not None:
        out["y_shape"] = tuple(y.shape)
        out["y_dtype"] = y.dtype.str
        numeric = y.dtype.kind in "biuf"
        out["y_finite"] = bool(xp.isfinite(y).all()) if y.dtype.kind == "f" else True
        if y_kind == "classes" and y.ndim == 1 and (w is None or w.shape == y.shape):
            labels = host_array(y)
            weights = None if w is None else host_array(w)
            classes, index = np.unique(labels, return_inverse=True)
            out["classes"] = classes
            out["class_counts"] = np.bincount(index, minlength=len(classes))
            out["class_weight_sums"] = np.bincount(index, weights=weights, minlength=len(classes)) \
                if weights is not None else out["class_counts"].astype(np.float64)
        elif not numeric:
            out["y_numeric"] = False
    if w is not None:
        out["w_shape"] = tuple(w.shape)
        out["w_finite"] = bool(xp.isfinite(w).all()) if w.dtype.kind == "f" else True
        out["w_negative"] = bool((w < 0).any()) if w.dtype.kind in "biuf" else False
        out["w_numeric"] = w.dtype.kind in "biuf"
    return out


def _as_working(block, dtype):
    """The chunk as every pass takes it: in the working dtype, and a sparse chunk in SciPy's CSR
    (CSC, COO converted once here, as the single-machine fit's validation converts them)."""
    if _sparse_input(block):
        block = block.tocsr()
    return block.astype(dtype, copy=False)


def _add(a, b):
    if isinstance(a, tuple):
        return tuple(_add(p, q) for p, q in zip(a, b))
    return a + b


def _each(function, chunks, args, extras=None):
    """On a worker: ``function(*chunk, [extra,] *args)`` for each of the chunks it holds, in order
    (``extras``: one more argument per chunk, e.g. a list kept on the worker by ``map_groups``)."""
    return [function(*chunk, *(() if extras is None else (extras[j],)), *args) for j, chunk in enumerate(chunks)]


def _link(function, chunk, extras, j, state, args):
    """On a worker: one link of ``RowBlocks.chain``, ``function(*chunk, [extras[j],] state, *args)``."""
    return function(*chunk, *(() if extras is None else (extras[j],)), state, *args)


def _sum_each(function, chunks, args, extras=None):
    """On a worker: the sum of ``_each``'s results, added in chunk order."""
    total = None
    for value in _each(function, chunks, args, extras):
        total = value if total is None else _add(total, value)
    return total


# ----------------------------------------------------------------- the blocks


class RowBlocks:
    """X (and y, sample weights) of one fit, as futures of their row chunks on the workers.

    ``x``, ``y``, ``w`` are lists of futures, chunk by chunk (``y``, ``w`` None where
    not given); ``rows`` the rows per chunk; ``summaries`` what ``_summary`` found.
    Build with ``RowBlocks.load``.

    A pass over the data (``map_gather``) is one task per worker, over the chunks that
    worker holds, not one per chunk: a task costs the scheduler milliseconds, and an
    optimiser makes dozens of passes. Results come back chunk by chunk (or summed on
    each worker, then across workers), so they do not depend on where chunks live.
    """

    def __init__(self, client, x, y, w, dtype):
        self.client, self.x, self.y, self.w = client, x, y, w
        self.dtype = np.dtype(dtype)
        self.sparse = False  # SciPy-sparse chunks (all or none: ``_check``)
        self._groups = self._where = None

    def _set_rows(self, rows):
        self.rows = rows
        self.n = int(sum(rows))
        self.offsets = np.concatenate([[0], np.cumsum(rows)]).astype(int)

    def where(self, i: int) -> str:
        return f"chunk {i} (rows {self.offsets[i]}-{self.offsets[i + 1] - 1})" if self.offsets[i + 1] > \
            self.offsets[i] else f"chunk {i} (no rows)"

    @classmethod
    def load(cls, client, X, y=None, sample_weight=None, dtype_rule=None, y_kind="numeric", n_features=None):
        """Compute and check the chunks of X, y, sample_weight on the workers.

        ``dtype_rule``: a dtype or a list of accepted ones (the first is the default),
        as for scikit-learn's validate_data; ``y_kind``: "numeric" or "classes";
        ``n_features``: the width X must have (predicting), or None.
        """
        import dask.array as da
        from distributed import wait

        X = as_dask_array(X, "X")
        if X.ndim != 2:
            raise ValueError(f"Expected a 2D dask array for X, got shape {X.shape}: reshape it with "
                             "X.reshape(-1, 1) for a single feature")
        if X.dtype.kind not in "biuf":
            raise ValueError(f"X holds {X.dtype} values; a numeric array is required")
        if n_features is not None and not np.isnan(X.shape[1]) and X.shape[1] != n_features:
            raise ValueError(f"X has {X.shape[1]} features, but the model is expecting {n_features} features")
        if len(X.chunks[1]) > 1:
            X = X.rechunk({1: -1})  # whole rows per chunk: the solvers work on blocks of rows
        nblocks = X.numblocks[0]
        parts = {"y": y, "w": sample_weight}
        for name, value in parts.items():
            if value is None:
                continue
            label = "y" if name == "y" else "sample_weight"
            if is_dask(value):
                value = as_dask_array(value, label)
            else:
                value = np.asarray(value)
                if value.ndim == 0 and name != "w":
                    raise ValueError(f"{label} must be an array of one entry per sample")
                if any(np.isnan(c) for c in X.chunks[0]):
                    raise ValueError(f"{label} is a NumPy array and X's chunk sizes are unknown: pass "
                                     f"{label} as a dask array cut like X, or call X.compute_chunk_sizes()")
                if value.ndim == 0:  # one weight for every sample
                    value = np.full(int(X.shape[0]), float(value))
                if value.shape[0] != X.shape[0]:
                    raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                                     f"[{X.shape[0]}, {value.shape[0]}] (X, {label})")
                value = da.from_array(value, chunks=(X.chunks[0],) + value.shape[1:])
            if value.ndim not in (1, 2) or (name == "w" and value.ndim != 1):
                raise ValueError(f"{label} must be {'1-D' if name == 'w' else '1-D or 2-D'}, got shape {value.shape}")
            if value.ndim == 2 and len(value.chunks[1]) > 1:
                value = value.rechunk({1: -1})
            if value.numblocks[0] != nblocks:
                raise ValueError(f"{label}'s chunks do not line up with X's rows: X has {nblocks} row chunks, "
                                 f"{label} has {value.numblocks[0]}; rechunk it as X, e.g. "
                                 f"{label}.rechunk({{0: X.chunks[0]}})")
            known = not any(np.isnan(c) for c in X.chunks[0] + value.chunks[0])
            if known and value.chunks[0] != X.chunks[0]:
                i = next(i for i, (a, b) in enumerate(zip(X.chunks[0], value.chunks[0])) if a != b)
                start_x, start_v = sum(X.chunks[0][:i]), sum(value.chunks[0][:i])
                raise ValueError(f"{label}'s chunks do not line up with X's rows: X chunk {i} holds rows "
                                 f"{start_x}-{start_x + X.chunks[0][i] - 1}, {label} chunk {i} rows "
                                 f"{start_v}-{start_v + value.chunks[0][i] - 1}; rechunk it as X, e.g. "
                                 f"{label}.rechunk({{0: X.chunks[0]}})")
            parts[name] = value
        # One compute for all: X and y built from one source (a DataFrame) share its tasks.
        delayed = [X.to_delayed().ravel().tolist()]
        for name in ("y", "w"):
            if parts[name] is not None:
                delayed.append(parts[name].to_delayed().ravel().tolist())
        computed = client.compute(sum(delayed, []))
        x_blocks = computed[:nblocks]
        rest = computed[nblocks:]
        y_blocks = w_blocks = None
        if parts["y"] is not None:
            y_blocks, rest = rest[:nblocks], rest[nblocks:]
        if parts["w"] is not None:
            w_blocks = rest[:nblocks]
        wait(computed)
        blocks = cls(client, x_blocks, y_blocks, w_blocks, X.dtype)
        blocks.summaries = blocks.map_gather(_summary, y_kind)
        blocks._set_rows([s["x_shape"][0] for s in blocks.summaries])
        blocks._check(X, n_features, y_kind)
        dtype = blocks._working_dtype(dtype_rule)
        if dtype != X.dtype or any(s.get("x_format", "csr") != "csr" for s in blocks.summaries):
            blocks.x = blocks.map(_as_working, dtype, chunks=[(f,) for f in x_blocks])
            wait(blocks.x)
            del x_blocks, computed
        blocks.dtype = dtype
        return blocks

    def _check(self, X, n_features, y_kind):
        """Clear errors, naming the chunk, for what the fit cannot take."""
        widths = [s["x_shape"][1] if len(s["x_shape"]) == 2 else None for s in self.summaries]
        d = widths[0]
        self.sparse = "x_sparse" in self.summaries[0]

        def kind(s):
            return f"a sparse matrix ({s['x_sparse']})" if "x_sparse" in s else "dense"

        for i, s in enumerate(self.summaries):
            if ("x_sparse" in s) != self.sparse:  # the passes take one kind of block (CSR or dense) throughout
                raise ValueError(f"X's chunks mix sparse and dense: {self.where(i)} is {kind(s)}, chunk 0 is "
                                 f"{kind(self.summaries[0])}; make them one kind, e.g. "
                                 "X.map_blocks(scipy.sparse.csr_matrix) or X.map_blocks(lambda b: b.toarray())")
            if s.get("x_gpu"):  # the sparse passes are SciPy's and td's CSR on the CPU
                raise ValueError(f"X {self.where(i)} is a sparse matrix on a GPU ({s['x_sparse']}); td fits Dask "
                                 "arrays of SciPy-sparse chunks on the CPU, not cupyx ones: move them to the host "
                                 "(X.map_blocks(lambda b: b.get())) or densify them (b.toarray())")
            if len(s["x_shape"]) != 2:
                raise ValueError(f"X {self.where(i)} has shape {s['x_shape']}; every chunk must be 2-D")
            if widths[i] != d:
                raise ValueError(f"X's chunks disagree in width: {self.where(i)} has {widths[i]} columns, "
                                 f"chunk 0 has {d}")
            if np.dtype(s["x_dtype"]) != X.dtype:
                raise ValueError(f"X's chunks disagree in dtype: {self.where(i)} holds {np.dtype(s['x_dtype'])} "
                                 f"values where X is declared {X.dtype}")
            if not np.isnan(X.chunks[0][i]) and s["x_shape"][0] != X.chunks[0][i]:
                raise ValueError(f"X {self.where(i)} holds {s['x_shape'][0]} rows where its chunks declare "
                                 f"{X.chunks[0][i]}")
        if d == 0 or self.n == 0:
            raise ValueError(f"Found array with shape ({self.n}, {d}) while a minimum of 1 sample and 1 feature "
                             "is required")
        if n_features is not None and d != n_features:
            raise ValueError(f"X has {d} features, but the model is expecting {n_features} features")
        self.d = d
        for i, s in enumerate(self.summaries):
            if not s["x_finite"]:
                raise ValueError(f"Input X contains NaN or infinity in {self.where(i)}")
        for i, s in enumerate(self.summaries):
            if "y_shape" in s:
                if s["y_shape"][0] != s["x_shape"][0]:
                    raise ValueError(f"y's chunks do not line up with X's rows: X {self.where(i)} holds "
                                     f"{s['x_shape'][0]} rows, y's chunk {i} {s['y_shape'][0]}; rechunk y as X")
                if not s["y_finite"]:
                    raise ValueError(f"Input y contains NaN or infinity in {self.where(i)}")
                if y_kind == "numeric" and s.get("y_numeric") is False:
                    raise ValueError(f"y holds {np.dtype(s['y_dtype'])} values in {self.where(i)}; "
                                     "a numeric target is required")
            if "w_shape" in s:
                if s["w_shape"][0] != s["x_shape"][0]:
                    raise ValueError(f"sample_weight's chunks do not line up with X's rows: X {self.where(i)} "
                                     f"holds {s['x_shape'][0]} rows, sample_weight's chunk {i} {s['w_shape'][0]}")
                if not s["w_numeric"] or not s["w_finite"] or s["w_negative"]:
                    raise ValueError(f"sample_weight must be finite and non-negative; {self.where(i)} is not")

    def _working_dtype(self, rule):
        if rule is None:
            return self.dtype
        if isinstance(rule, list):
            return self.dtype if self.dtype in [np.dtype(r) for r in rule] else np.dtype(rule[0])
        return np.dtype(rule)

    def chunks(self):
        """(x_i, y_i, w_i) futures of every chunk (None for what was not given)."""
        n = len(self.x)
        return list(zip(self.x, self.y or [None] * n, self.w or [None] * n))

    @property
    def groups(self):
        """[(worker address, indices of chunks of X it holds)], looked up once. A worker's chunks
        are split into batches of at most a quarter of its memory_limit, so that a task's inputs
        fit in memory even where the worker keeps most of its chunks spilled to disk."""
        if self._groups is None:
            who = self.client.who_has(self.x)
            sizes = self.client.nbytes(keys=[f.key for f in self.x], summary=False)
            limits = {address: info.get("memory_limit") or 0
                      for address, info in self.client.scheduler_info(n_workers=-1)["workers"].items()}
            by_worker = {}
            for i, f in enumerate(self.x):
                holders = who.get(f.key) or (None,)
                by_worker.setdefault(holders[0], []).append(i)
            groups = []
            for address, indices in by_worker.items():
                cap = limits.get(address, 0) / 4 or float("inf")
                batch, used = [], 0
                for i in indices:
                    size = sizes.get(self.x[i].key, 0) or 0
                    if batch and used + size > cap:
                        groups.append((address, batch))
                        batch, used = [], 0
                    batch.append(i)
                    used += size
                groups.append((address, batch))
            self._groups = groups
        return self._groups

    def map(self, function, *args, chunks=None):
        """Futures of ``function(*chunk_i, *args)``, one task per chunk, run where chunk i of X is
        (results that stay on the workers); ``chunks`` defaults to ``self.chunks()``."""
        chunks = self.chunks() if chunks is None else chunks
        return [self.client.submit(function, *chunk, *args, pure=False, allow_other_workers=True,
                                   workers=self._holder(i)[0])
                for i, chunk in enumerate(chunks)]

    def _holder(self, i: int):
        """([address of the worker holding chunk i of X] or None, its group's index in ``groups``,
        chunk i's place in that group)."""
        if self._where is None:
            self._where = {c: (address, g, j) for g, (address, indices) in enumerate(self.groups)
                           for j, c in enumerate(indices)}
        address, g, j = self._where[i]
        return None if address is None else [address], g, j

    def chain(self, function, order, state, *args, chunks=None, group_extras=None):
        """The future of ``state`` after ``state = function(*chunk_i, state, *args)`` for each i in
        ``order`` in turn: one task per chunk, run where the chunk is, the state handed from task
        to task by the workers (keep it small) and nothing sent to the client before the last.
        ``chunks``, ``group_extras`` (futures from ``map_groups``): as for ``map_gather``."""
        chunks = self.chunks() if chunks is None else chunks
        for i in order:
            workers, g, j = self._holder(i)
            state = self.client.submit(_link, function, chunks[i], None if group_extras is None else group_extras[g],
                                       j, state, args, key=f"td-{function.__name__}-{uuid.uuid4().hex}",
                                       allow_other_workers=True, workers=workers)
        return state

    def map_groups(self, function, *args, chunks=None):
        """Futures, one per group of ``groups``, each holding the list of ``function(*chunk_i, *args)``
        over its chunks: per-chunk results that stay on the workers (pass them to ``map_gather``
        as ``group_extras``) at the cost of one task per worker instead of one per chunk."""
        chunks = self.chunks() if chunks is None else chunks
        return [self.client.submit(_each, function, [chunks[i] for i in indices], args,
                                   key=f"td-{function.__name__}-{uuid.uuid4().hex}", allow_other_workers=True,
                                   workers=None if address is None else [address])
                for address, indices in self.groups]

    def map_gather(self, function, *args, chunks=None, reduce: bool = False, group_extras=None):
        """``function(*chunk_i, *args)`` for every chunk, one task per worker over the chunks it
        holds: the results in chunk order, or with ``reduce`` their sum (arrays or tuples of
        arrays; added in chunk order on each worker, then across workers on the client).
        ``group_extras``: futures from ``map_groups``; chunk i then gets its entry as an
        argument after the chunk's own. If a worker is lost, its task runs elsewhere and
        Dask recomputes the chunks it needs."""
        chunks = self.chunks() if chunks is None else chunks
        groups = self.groups
        futures = [self.client.submit(_sum_each if reduce else _each, function, [chunks[i] for i in indices], args,
                                      None if group_extras is None else group_extras[g],
                                      key=f"td-{function.__name__}-{uuid.uuid4().hex}", allow_other_workers=True,
                                      workers=None if address is None else [address])
                   for g, (address, indices) in enumerate(groups)]
        results = self.client.gather(futures)
        if reduce:
            total = None
            for value in results:
                total = value if total is None else _add(total, value)
            return total
        out = [None] * len(chunks)
        for (_, indices), values in zip(groups, results):
            for i, value in zip(indices, values):
                out[i] = value
        return out

    def release(self):
        self.x = self.y = self.w = None
