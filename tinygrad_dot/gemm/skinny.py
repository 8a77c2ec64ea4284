"""A linear model's skinny products, routed to kernels/linear_skinny.cu (its header
says why the general GEMM serves them badly).

kernel="auto" takes this route for a single (unbatched) product of
  - Y = X W^T (layout NT: X row-major n x d, W row-major k x d read as W^T) with
    k <= 16 outputs and n >= MIN_ROWS rows: the forward of nn.Linear and of the
    estimators' decision functions;
  - dW = G^T X (layout TN: G row-major n x k read as G^T, X row-major n x d) with
    k <= 16 and n >= MIN_ROWS: the weight gradient, split over n in chunks whose
    partial products are added in chunk order (deterministic).
Everything else goes to the GEMM ladder.
"""
from __future__ import annotations

import numpy as np

from ..runtime import Signature
from . import plan as _plan

SOURCE = "linear_skinny.cu"
MIN_ROWS = 4096      # shorter products: the general GEMM launches as well
MAX_OUTPUTS = 16
THREADS = 256
MAX_CHUNKS = 256     # bounds the workspace of partial products (chunks x k x d)
_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

NT = Signature("i32", "i32", "i32", "ptr", "i64", "ptr", "i64", "ptr", "i64")
TN_PARTIAL = Signature("i32", "i32", "i32", "i64", "ptr", "i64", "ptr", "i64", "ptr")
REDUCE = Signature("i32", "i64", "i32", "ptr", "ptr", "i64")


def kmax_for(k: int) -> int:
    return next(m for m in (4, 8, 16) if k <= m)


def nt_tile(kmax: int) -> tuple:
    """(KMAX, KPT, rows per block): KPT outputs per thread, so a block's rows of X fit
    static shared memory in float64 too."""
    kpt = 2 if kmax == 4 else 4
    return kmax, kpt, THREADS // (kmax // kpt)


def tn_columns_per_thread(kmax: int, dtype) -> int:
    """DPT: accumulators DPT x KMAX stay within 64 32-bit registers."""
    return max(1, min(4, 64 // (kmax * np.dtype(dtype).itemsize // 4)))


def instantiations() -> list:
    out = []
    for dtype, ctype in _CTYPES.items():
        for kmax in (4, 8, 16):
            _, kpt, _ = nt_tile(kmax)
            out.append(f"skinny_nt<{ctype},{kmax},{kpt}>")
            out.append(f"skinny_tn_partial<{ctype},{kmax},{tn_columns_per_thread(kmax, dtype)}>")
        out.append(f"skinny_reduce<{ctype}>")
    return out


class SkinnyCall:
    """A planned skinny product (the GemmCall of this route)."""

    config = None  # not a GEMM tile config: prepare()'s launcher reruns the whole call

    def __init__(self, runtime, p: _plan.MatmulPlan, dtype, kind: str):
        self.runtime, self.plan, self.dtype, self.kind = runtime, p, np.dtype(dtype), kind
        ctype = _CTYPES[self.dtype]
        if kind == "nt":
            kmax, kpt, rows = nt_tile(kmax_for(p.N))
            self.kernel = runtime.function(SOURCE, f"skinny_nt<{ctype},{kmax},{kpt}>")
            self.grid = (-(-p.M // rows), 1, 1)
        else:
            kmax = kmax_for(p.M)
            dpt = tn_columns_per_thread(kmax, dtype)
            self.kernel = runtime.function(SOURCE, f"skinny_tn_partial<{ctype},{kmax},{dpt}>")
            self.reduce = runtime.function(SOURCE, f"skinny_reduce<{ctype}>")
            gx = -(-p.N // (THREADS * dpt))
            # Enough chunks of rows for ~4 blocks per multiprocessor, each chunk at least 64 rows.
            chunks = max(1, min(MAX_CHUNKS, -(-4 * runtime.facts.sm_count // gx), -(-p.K // 64)))
            self.rows_per_chunk = -(-p.K // chunks)
            self.chunks = -(-p.K // self.rows_per_chunk)
            self.grid = (gx, self.chunks, 1)

    def operands(self, a, b):
        return a, b

    def __call__(self, a, b):
        p, rt = self.plan, self.runtime
        out = rt.empty(p.out_shape, self.dtype)
        if self.kind == "nt":
            # Y (M x N) = X (M x K, row stride lda) times W^T, W = b's storage (N x K, row stride ldb)
            self.kernel(self.grid, (THREADS, 1, 1), NT.pack((p.M, p.K, p.N, a, p.a.ld, b, p.b.ld, out, p.N)))
            return out
        # dW (M x N) = G^T X: G = a's storage (K x M, row stride lda), X = b (K x N, row stride ldb)
        partial = rt.empty((self.chunks, p.M, p.N), self.dtype)
        self.kernel(self.grid, (THREADS, 1, 1),
                    TN_PARTIAL.pack((p.K, p.N, p.M, self.rows_per_chunk, a, p.a.ld, b, p.b.ld, partial)))
        size = p.M * p.N
        self.reduce((-(-size // THREADS), 1, 1), (THREADS, 1, 1),
                    REDUCE.pack((self.chunks, size, p.N, partial, out, p.N)))
        return out


def plan(runtime, p: _plan.MatmulPlan, dtype):
    """The SkinnyCall for plan p, or None when the general GEMM should run it."""
    if p.batch_shape or p.a.copy or p.b.copy or np.dtype(dtype) not in _CTYPES:
        return None
    if p.layout == "NT" and p.N <= MAX_OUTPUTS and p.M >= MIN_ROWS:
        return SkinnyCall(runtime, p, dtype, "nt")
    if p.layout == "TN" and p.M <= MAX_OUTPUTS and p.K >= MIN_ROWS:
        return SkinnyCall(runtime, p, dtype, "tn")
    return None
