"""A linear model's skinny products, routed to kernels/linear_skinny.cu (its header
says why the general GEMM serves them badly).

kernel="auto" takes this route for a single (unbatched) product of
  - Y = X W^T or X w (X row-major n x d; the weight read either way: layouts NT
    and NN) with k <= 16 outputs and n >= MIN_ROWS rows: the forward of nn.Linear
    and of the estimators' decision functions (k = 1 included: binary logistic
    regression, one-target regression);
  - dW = G^T X (X row-major n x d; G^T as G row-major read transposed, layout TN,
    or for k = 1 the row vector g^T, layout NN with M = 1) with k <= 16 and
    n >= MIN_ROWS: the weight gradient, split over n in chunks whose partial
    products are added in chunk order (deterministic).
Everything else goes to the GEMM ladder.
"""
from __future__ import annotations

import numpy as np

from ..runtime import Signature
from . import plan as _plan
from .dispatch import GemmCall

SOURCE = "linear_skinny.cu"
MIN_ROWS = 4096      # shorter products: the general GEMM launches as well
MAX_OUTPUTS = 16
THREADS = 256
MAX_CHUNKS = 256     # bounds the workspace of partial products (chunks x k x d)
_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

NT = Signature("i32", "i32", "i32", "ptr", "i64", "ptr", "i64", "i64", "ptr", "i64")
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


class SkinnyCall(GemmCall):
    """A planned skinny product: the GemmCall of this route (one or two kernels and a
    workspace instead of the ladder's launches), its arguments packed once."""

    __slots__ = ("kind", "kernel", "grid", "args", "reduce", "reduce_grid", "reduce_args", "chunks", "rows_per_chunk")

    def __init__(self, runtime, p: _plan.MatmulPlan, dtype, kind: str):
        super().__init__(runtime, p, None, dtype)
        self.kind, ctype = kind, _CTYPES[np.dtype(dtype)]
        if kind == "nt":
            kmax, kpt, rows = nt_tile(kmax_for(p.N))
            self.kernel = runtime.function(SOURCE, f"skinny_nt<{ctype},{kmax},{kpt}>")
            self.grid = (-(-p.M // rows), 1, 1)
            # the weight W(j, c): b's storage is k x d (NT: W^T read in place) or d x k (NN)
            w_out, w_in = (p.b.ld, 1) if p.b.trans else (1, p.b.ld)
            self.args = NT.pack((p.M, p.K, p.N, 0, p.a.ld, 0, w_out, w_in, 0, p.N))
            return
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
        # G(r, j): a's storage is n x k read transposed (TN), or the row g^T itself (NN, k = 1)
        ldg = p.a.ld if p.a.trans else 1
        self.args = TN_PARTIAL.pack((p.K, p.N, p.M, self.rows_per_chunk, 0, ldg, 0, p.b.ld, 0))
        size = p.M * p.N
        self.reduce_grid = (-(-size // THREADS), 1, 1)
        self.reduce_args = REDUCE.pack((self.chunks, size, p.N, 0, 0, p.N))

    def launch_into(self, a, b, c) -> None:
        s, block = self.args, (THREADS, 1, 1)
        if self.kind == "nt":  # NT: (n, d, k, X, ldx, W, w_out, w_in, Y, ldy)
            self.kernel(self.grid, block, (s[0], s[1], s[2], a, s[4], b, s[6], s[7], c, s[9]))
            return
        p = self.plan
        partial = self.runtime.empty((self.chunks, p.M, p.N), self.dtype)
        # TN: (n, d, k, rows_per_chunk, G, ldg, X, ldx, partial); reduce: (chunks, size, d, partial, out, ldo)
        self.kernel(self.grid, block, (s[0], s[1], s[2], s[3], a, s[5], b, s[7], partial))
        r = self.reduce_args
        self.reduce(self.reduce_grid, block, (r[0], r[1], r[2], partial, c, r[5]))


def plan(runtime, p: _plan.MatmulPlan, dtype):
    """The SkinnyCall for plan p, or None when the general GEMM should run it."""
    if p.batch_shape or p.a.copy or p.b.copy or np.dtype(dtype) not in _CTYPES or p.M * p.N * p.K == 0:
        return None  # (an empty product launches nothing: the GEMM path handles it)
    if p.layout in ("NT", "NN") and p.N <= MAX_OUTPUTS and p.M >= MIN_ROWS:
        return SkinnyCall(runtime, p, dtype, "nt")
    if (p.layout == "TN" or p.layout == "NN" and p.M == 1) and p.M <= MAX_OUTPUTS and p.K >= MIN_ROWS:
        return SkinnyCall(runtime, p, dtype, "tn")
    return None
