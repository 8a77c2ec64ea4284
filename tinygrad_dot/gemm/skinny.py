"""A linear model's skinny products and its fused training step, on
kernels/linear_skinny.cu (its header says why the general GEMM serves them badly).

kernel="auto" matmul takes this route for a single (unbatched) product of
  - Z = X W^T or X w (X row-major n x d; the weight read either way: layouts NT
    and NN) with k <= 16 outputs and n >= MIN_ROWS rows: the forward of nn.Linear
    and of the estimators' decision functions (k = 1 included: binary logistic
    regression, one-target regression);
  - dW = G^T X (X row-major n x d; G^T as G row-major read transposed, layout TN,
    or for k = 1 the row vector g^T, layout NN with M = 1) with k <= 16 and
    n >= MIN_ROWS: nn.Linear's weight gradient, split over n in chunks whose
    partial products are added in chunk order (deterministic);
  - X^T G (layout TN with N = k <= 16): the gradient of a d x k weight (X @ w), the
    same kernels with the sum written transposed.
Everything else goes to the GEMM ladder.

``LinearDispatch`` (a device's ``backend.linear``) runs a training step's two
passes over X: ``loss`` (Z = X W^T + b with the loss epilogue: the rows' losses
and G = dloss/dZ, Z never stored) and ``grad`` (dW = G^T X and db = sum of G's
rows, one pass). It takes any n: a fused step is one launch where the unfused one
is a product and a dozen elementwise ops.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..runtime import Signature, graphs
from . import plan as _plan
from .dispatch import GemmCall

SOURCE = "linear_skinny.cu"
MIN_ROWS = 4096      # shorter products: the general GEMM launches as well
MAX_OUTPUTS = 16
THREADS = 256
MAX_CHUNKS = 256     # bounds the workspace of partial products (chunks x k x cols)
_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
# td::SkinnyEpilogue: what the forward kernel does with a row of Z (kernels/linear_skinny.cu)
EPILOGUES = {"linear": 0, "squared": 1, "sigmoid": 2, "softmax": 3}
_MAX_CACHED_CALLS = 1024

# (n, d, k, X, ldx, W, w_out, w_in, bias, targets, ldt, labels, weights, scale, Y, ldy, loss)
NT = {dtype: Signature("i32", "i32", "i32", "ptr", "i64", "ptr", "i64", "i64", "ptr", "ptr", "i64", "ptr", "ptr",
                       "f32" if dtype == np.float32 else "f64", "ptr", "i64", "ptr") for dtype in _CTYPES}
# (n, d, cols, k, rows_per_chunk, G, ldg, X, ldx, partial)
TN_PARTIAL = Signature("i32", "i32", "i32", "i32", "i64", "ptr", "i64", "ptr", "i64", "ptr")
# (chunks, size, cols, d, partial, out, out_j, out_c, db)
REDUCE = Signature("i32", "i64", "i32", "i32", "ptr", "ptr", "i64", "i64", "ptr")


def kmax_for(k: int) -> int:
    return next(m for m in (4, 8, 16) if k <= m)


def nt_tile(kmax: int) -> tuple:
    """(KMAX, KPT, rows per block): KPT outputs per thread, so a block's rows of X fit
    static shared memory in float64 too."""
    kpt = 2 if kmax == 4 else 4
    return kmax, kpt, THREADS // (kmax // kpt)


def tn_columns_per_thread(kmax: int, dtype) -> int:
    """DPT: accumulators DPT x KMAX within 48 32-bit registers, which keeps every instantiation
    clear of the 128-register cap of 2 blocks per multiprocessor (at 64 some sat at 125-126,
    where NVRTC's spill reports have not been repeatable); the kernel is bound by memory, so
    fewer columns per thread cost nothing but a wider grid."""
    return max(1, min(4, 48 // (kmax * np.dtype(dtype).itemsize // 4)))


def nt_expression(dtype, k: int, epilogue: str) -> str:
    kmax, kpt, _ = nt_tile(kmax_for(k))
    return f"skinny_nt<{_CTYPES[np.dtype(dtype)]},{kmax},{kpt},{EPILOGUES[epilogue]}>"


def instantiations() -> list:
    out = []
    for dtype, ctype in _CTYPES.items():
        for kmax in (4, 8, 16):
            out += [nt_expression(dtype, kmax, epilogue) for epilogue in EPILOGUES]
            out.append(f"skinny_tn_partial<{ctype},{kmax},{tn_columns_per_thread(kmax, dtype)}>")
        out.append(f"skinny_reduce<{ctype}>")
    return out


class _ForwardLaunch:
    """skinny_nt over X (n x d, row stride ldx) and a k x d weight W(j, c) at
    W[j * w_out + c * w_in]: the launch and its arguments, packed once; a call
    fills in the addresses (and the loss epilogue's scale)."""

    __slots__ = ("kernel", "grid", "args")

    def __init__(self, runtime, dtype, n, d, k, ldx, w_out, w_in, epilogue="linear", ldt=0):
        _, _, rows = nt_tile(kmax_for(k))
        self.kernel = runtime.function(SOURCE, nt_expression(dtype, k, epilogue))
        self.grid = (-(-n // rows), 1, 1)
        self.args = NT[np.dtype(dtype)].pack((n, d, k, 0, ldx, 0, w_out, w_in, 0, 0, ldt, 0, 0, 1, 0, k, 0))

    def __call__(self, x, w, y, bias=0, targets=0, labels=0, weights=0, scale=None, loss=0):
        s = self.args
        self.kernel(self.grid, (THREADS, 1, 1), (s[0], s[1], s[2], x, s[4], w, s[6], s[7], bias, targets, s[10],
                                                 labels, weights, s[13] if scale is None else type(s[13])(scale),
                                                 y, s[15], loss))


class _GradientLaunch:
    """skinny_tn_partial + skinny_reduce: G^T X (G n x k, row stride ldg; X n x d, row
    stride ldx) into out[j * out_j + c * out_c], and with ``bias`` G's column sums into
    db, split over n in chunks for every multiprocessor (deterministic: see the kernel)."""

    __slots__ = ("runtime", "dtype", "kernel", "grid", "args", "reduce", "reduce_grid", "reduce_args", "workspace")

    def __init__(self, runtime, dtype, n, d, k, ldg, ldx, out_j, out_c, bias=False):
        kmax, ctype = kmax_for(k), _CTYPES[np.dtype(dtype)]
        dpt = tn_columns_per_thread(kmax, dtype)
        cols = d + 1 if bias else d
        self.runtime, self.dtype = runtime, dtype
        self.kernel = runtime.function(SOURCE, f"skinny_tn_partial<{ctype},{kmax},{dpt}>")
        self.reduce = runtime.function(SOURCE, f"skinny_reduce<{ctype}>")
        gx = -(-cols // (THREADS * dpt))
        # Enough chunks of rows for ~4 blocks per multiprocessor, each chunk at least 64 rows.
        chunks = max(1, min(MAX_CHUNKS, -(-4 * runtime.facts.sm_count // gx), -(-n // 64)))
        rows_per_chunk = -(-n // chunks)
        chunks = -(-n // rows_per_chunk)
        self.grid = (gx, chunks, 1)
        self.args = TN_PARTIAL.pack((n, d, cols, k, rows_per_chunk, 0, ldg, 0, ldx, 0))
        self.workspace = (chunks, k, cols)
        self.reduce_grid = (-(-(k * cols) // THREADS), 1, 1)
        self.reduce_args = REDUCE.pack((chunks, k * cols, cols, d, 0, 0, out_j, out_c, 0))

    def __call__(self, g, x, out, db=0):
        s, r, block = self.args, self.reduce_args, (THREADS, 1, 1)
        partial = self.runtime.empty(self.workspace, self.dtype)
        self.kernel(self.grid, block, (s[0], s[1], s[2], s[3], s[4], g, s[6], x, s[8], partial))
        self.reduce(self.reduce_grid, block, (r[0], r[1], r[2], r[3], partial, out, r[6], r[7], db))


class SkinnyCall(GemmCall):
    """A planned skinny matmul: the GemmCall of this route (one or two kernels and a
    workspace instead of the ladder's launches)."""

    __slots__ = ("kind", "launch", "swap")

    def __init__(self, runtime, p: _plan.MatmulPlan, dtype, kind: str):
        super().__init__(runtime, p, None, dtype)
        self.kind, self.swap = kind, kind == "tn_t"
        if kind == "nt":  # Z = X W^T: b's storage is k x d (NT: W^T read in place) or d x k (NN)
            w_out, w_in = (p.b.ld, 1) if p.b.trans else (1, p.b.ld)
            self.launch = _ForwardLaunch(runtime, dtype, p.M, p.K, p.N, p.a.ld, w_out, w_in)
        elif kind == "tn":  # G^T X: a's storage is G, n x k read transposed (TN), or g^T itself (NN, k = 1)
            self.launch = _GradientLaunch(runtime, dtype, p.K, p.N, p.M, p.a.ld if p.a.trans else 1, p.b.ld,
                                          p.N, 1)
        else:  # "tn_t", X^T G: a's storage is X (n x d), b is G (n x k); G^T X written as its transpose
            self.launch = _GradientLaunch(runtime, dtype, p.K, p.M, p.N, p.b.ld, p.a.ld, 1, p.N)

    def launch_into(self, a, b, c) -> None:
        if self.swap:  # X^T G: the launch takes G first
            a, b = b, a
        self.launch(a, b, c)


def plan(runtime, p: _plan.MatmulPlan, dtype):
    """The SkinnyCall for plan p, or None when the general GEMM should run it."""
    if p.batch_shape or p.a.copy or p.b.copy or np.dtype(dtype) not in _CTYPES or p.M * p.N * p.K == 0:
        return None  # (an empty product launches nothing: the GEMM path handles it)
    if p.layout in ("NT", "NN") and p.N <= MAX_OUTPUTS and p.M >= MIN_ROWS:
        return SkinnyCall(runtime, p, dtype, "nt")
    if p.K >= MIN_ROWS and (p.layout == "TN" or p.layout == "NN" and p.M == 1):
        if p.M <= MAX_OUTPUTS:
            return SkinnyCall(runtime, p, dtype, "tn")
        if p.layout == "TN" and p.N <= MAX_OUTPUTS:
            return SkinnyCall(runtime, p, dtype, "tn_t")
    return None


# ----------------------------------------------------------------- the fused training step


def _rows(x, itemsize):
    """Row stride in elements of a 2-D array with unit column stride, else None."""
    if x.ndim != 2 or x.strides[1] != itemsize and x.shape[1] > 1 or x.strides[0] % itemsize or x.strides[0] < 0:
        return None
    return x.strides[0] // itemsize


def _vector(v, n, dtype) -> bool:
    return v is None or v.shape == (n,) and v.dtype == dtype and (n < 2 or v.strides[0] == v.itemsize)


def _layout(v):
    """What planning reads of an operand (None when absent): its cache key part."""
    return None if v is None else (v.shape, v.strides, v.dtype)


class LinearDispatch:
    """One device's fused training-step kernels (see the module docstring). As in
    GemmDispatch, a call's operand layouts key a cache of planned launches: the first
    call of a signature checks the operands and plans (or records that the kernels
    decline them: None); a later one is a dictionary lookup, the device checks, the
    output allocation and the launch."""

    def __init__(self, runtime):
        self.runtime = runtime
        self._calls = {}
        self._owns = runtime.owns
        runtime.declare(SOURCE, instantiations())

    def _planned(self, key, check):
        """The cached launch for ``key``, else planned and cached: ``check()`` gives None for
        operands the kernels do not take (cached too: they go another way, capture or not),
        else the launch's constructor, which may not run inside a CUDA graph capture."""
        try:
            return self._calls[key]
        except KeyError:
            pass
        make = check()
        if make is not None:
            if graphs.capturing(self.runtime.name):
                raise graphs.CaptureError(f"the fused linear-model step {key[0]} on {self.runtime.name} met a new "
                                          "shape inside a CUDA graph capture; run the step once before capturing")
            with self.runtime.activate():
                make = make()
        if len(self._calls) >= _MAX_CACHED_CALLS:
            self._calls.clear()
        self._calls[key] = make
        return make

    def _on_device(self, *operands) -> bool:
        owns = self._owns
        return all(v is None or owns(v) for v in operands)

    def loss(self, epilogue, x, w, bias=None, targets=None, labels=None, weights=None, scale=1.0):
        """(losses (n,), G (n, k)) of the loss epilogue ``epilogue`` (td::SkinnyEpilogue) on
        Z = x w^T + bias, or None when these operands do not suit the kernel (the
        caller then computes it another way). ``labels`` int64 (n,) or ``targets``
        (n, k); ``weights`` (n,) multiply G's rows, as ``scale`` does."""
        key = ("loss", epilogue, _layout(x), _layout(w), _layout(bias), _layout(targets), _layout(labels),
               _layout(weights))
        launch = self._planned(key, lambda: self._check_loss(epilogue, x, w, bias, targets, labels, weights))
        if launch is None or not self._on_device(x, w, bias, targets, labels, weights):
            return None
        n, k = x.shape[0], w.shape[0]
        g, losses = self.runtime.empty((n, k), x.dtype), self.runtime.empty((n,), x.dtype)
        with self.runtime.activate():
            launch(x, w, g, 0 if bias is None else bias, 0 if targets is None else targets,
                   0 if labels is None else labels, 0 if weights is None else weights, scale, losses)
        return losses, g

    def _check_loss(self, epilogue, x, w, bias, targets, labels, weights):
        """None for operands the forward kernel does not take, else its launch's constructor."""
        dtype, size = x.dtype, x.dtype.itemsize
        if x.ndim != 2 or w.ndim != 2:
            return None
        (n, d), k = x.shape, w.shape[0]
        ldx, ldt = _rows(x, size), 0 if targets is None else _rows(targets, size)
        if dtype not in _CTYPES or not 0 < k <= MAX_OUTPUTS or n == 0 or ldx is None or ldt is None or \
                w.dtype != dtype or w.shape[1] != d or any(s % size for s in w.strides) or \
                not (_vector(bias, k, dtype) and _vector(weights, n, dtype)) or \
                (targets is not None and (targets.dtype != dtype or targets.shape != (n, k))) or \
                (labels is not None and not _vector(labels, n, np.dtype(np.int64))):
            return None
        w_out, w_in = w.strides[0] // size, w.strides[1] // size
        return lambda: _ForwardLaunch(self.runtime, dtype, n, d, k, ldx, w_out, w_in, epilogue, ldt)

    def grad(self, g, x, bias: bool):
        """(dW = g^T x (k, d), db = g's column sums (k,) or None without ``bias``) in one
        pass over x, or None when these operands do not suit the kernel."""
        launch = self._planned(("grad", _layout(g), _layout(x), bias), lambda: self._check_grad(g, x, bias))
        if launch is None or not self._on_device(g, x):
            return None
        k, d = g.shape[1], x.shape[1]
        dw = self.runtime.empty((k, d), x.dtype)
        db = self.runtime.empty((k,), x.dtype) if bias else None
        with self.runtime.activate():
            launch(g, x, dw, 0 if db is None else db)
        return dw, db

    def _check_grad(self, g, x, bias):
        """None for operands the dW/db kernels do not take, else their launch's constructor."""
        dtype, size = x.dtype, x.dtype.itemsize
        if x.ndim != 2 or g.ndim != 2:
            return None
        (n, d), k = x.shape, g.shape[1]
        ldx, ldg = _rows(x, size), _rows(g, size)
        if dtype not in _CTYPES or g.dtype != dtype or not 0 < k <= MAX_OUTPUTS or n == 0 or d == 0 or \
                ldx is None or ldg is None or g.shape[0] != n:
            return None
        return lambda: _GradientLaunch(self.runtime, dtype, n, d, k, ldg, ldx, d, 1, bias)


@lru_cache(maxsize=None)
def dispatcher(runtime) -> LinearDispatch:
    return LinearDispatch(runtime)
