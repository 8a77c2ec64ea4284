"""Sparse (CSR) times dense on the project's kernels (kernels/spmm_csr.cu), on a GPU
or on the emulated device "emu", through the same runtime seam as the GEMM.

    dispatcher(runtime).spmm(indptr, indices, values, shape, dense,
                             transpose_sparse=False, kernel="auto", cache=None) -> C

C = S @ D (or S^T @ D) with S given by its CSR arrays and shape (M, K). What the
kernels need beyond the arrays is read from the sparsity structure on the host:
the longest row (which kernel), the row segments of the load-balanced kernel, and
for S^T the CSR of the transpose (a stable counting sort by column, so each
output is summed in increasing row order: deterministic, no atomics). Pass a dict
as ``cache`` that lives as long as the structure (a sparse tensor keeps one) and
these are built once; without one they are rebuilt per call.

kernel: "rows" (a group of lanes per row), "segments" (rows cut into segments of
at most SEGMENT nonzeros, partial rows combined in order), "auto", or "cusparse"
(the vendor library through CuPy on a GPU, SciPy on "emu": the reference for
tests). "auto" with a ``cache`` times both kernels on the first call (the
device's clock, median of 3) and keeps the faster for that structure; without a
cache, or with TINYGRAD_DOT_AUTOTUNE=0, it takes the segments when the longest
row is far above the mean (SKEW) and the rows kernel otherwise.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .runtime import Signature, graphs

SOURCE = "spmm_csr.cu"
SEGMENT = 512      # nonzeros per segment of the load-balanced kernel
SKEW = 16          # "auto" takes segments when the longest row exceeds SKEW x the mean (and SEGMENT)
THREADS = 256
GROUPS = (1, 2, 4, 8, 16, 32)
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double",
           np.dtype(np.int32): "int", np.dtype(np.int64): "long long"}

ROWS = Signature("i32", "i32", "i64", "ptr", "ptr", "ptr", "ptr", "i64", "ptr", "i64")
SEGMENTS = Signature("i64", "i32", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "i64", "ptr", "i64", "ptr", "i64")
COMBINE = Signature("i64", "i32", "ptr", "ptr", "ptr", "ptr", "i64", "ptr", "i64")


def group_for(n: int, dtype) -> int:
    """Lanes per row: the fewest whose 128-bit accesses cover n columns (at most a warp)."""
    per_lane = 16 // np.dtype(dtype).itemsize
    return next((g for g in GROUPS if g * per_lane >= n), GROUPS[-1])


def instantiations() -> list:
    """Every kernel of spmm_csr.cu the dispatch may launch."""
    out = []
    for t in _FLOATS:
        for p in (np.dtype(np.int32), np.dtype(np.int64)):
            for g in GROUPS:
                out += [f"spmm_csr_rows<{_CTYPES[t]},{_CTYPES[p]},{g}>", f"spmm_csr_segments<{_CTYPES[t]},{_CTYPES[p]},{g}>"]
        out.append(f"spmm_csr_combine<{_CTYPES[t]}>")
    return out


class Structure:
    """What the kernels need from a sparsity pattern, read once on the host."""

    def __init__(self, xp, indptr_host: np.ndarray, M: int):
        lengths = np.diff(indptr_host)
        self.max_row = int(lengths.max()) if M else 0
        self.mean_row = float(lengths.mean()) if M else 0.0
        self._xp, self._indptr, self._segments = xp, indptr_host, None

    def skewed(self) -> bool:
        return self.max_row > max(SEGMENT, SKEW * self.mean_row)

    def segments(self):
        """(seg_row, seg_begin, seg_end, seg_slot, long_rows, first, count) on the device:
        each row cut into pieces of at most SEGMENT nonzeros (an empty row is one empty
        segment); pieces of rows with more than one get consecutive workspace slots."""
        if self._segments is None:
            indptr = self._indptr.astype(np.int64)
            lengths = np.diff(indptr)
            pieces = np.maximum(1, -(-lengths // SEGMENT))
            seg_row = np.repeat(np.arange(len(lengths)), pieces)
            first_piece = np.concatenate([[0], np.cumsum(pieces)])[:-1]
            begin = indptr[seg_row] + (np.arange(len(seg_row)) - first_piece[seg_row]) * SEGMENT
            end = np.minimum(begin + SEGMENT, indptr[seg_row + 1])
            long_rows = np.flatnonzero(pieces > 1)
            in_long = pieces[seg_row] > 1
            slot = np.full(len(seg_row), -1, dtype=np.int64)
            slot[in_long] = np.arange(int(in_long.sum()))
            first = slot[first_piece[long_rows]] if len(long_rows) else np.zeros(0, np.int64)
            xp, p = self._xp, self._indptr.dtype
            self._segments = (xp.asarray(seg_row.astype(np.int32)), xp.asarray(begin.astype(p)),
                              xp.asarray(end.astype(p)), xp.asarray(slot), xp.asarray(long_rows.astype(np.int32)),
                              xp.asarray(first.astype(np.int64)), xp.asarray(pieces[long_rows].astype(np.int32)),
                              int(in_long.sum()))
        return self._segments


class Transpose:
    """The CSR arrays of S^T, from a stable counting sort of S's nonzeros by column: the
    nonzeros of each row of S^T keep S's row order, so every sum has a fixed order."""

    def __init__(self, xp, indptr_host: np.ndarray, indices_host: np.ndarray, M: int, K: int):
        order = np.argsort(indices_host, kind="stable")
        rows = np.repeat(np.arange(M, dtype=np.int32), np.diff(indptr_host))
        counts = np.bincount(indices_host, minlength=K)
        self.indptr = xp.asarray(np.concatenate([[0], np.cumsum(counts)]).astype(indptr_host.dtype))
        self.indices = xp.asarray(rows[order])
        self.order = xp.asarray(order)  # values of S^T = values of S taken in this order


class SpmmDispatch:
    """spmm on one device's runtime."""

    def __init__(self, runtime):
        self.runtime = runtime
        self._kernels = {}
        runtime.declare(SOURCE, instantiations())

    def _kernel(self, name: str, dtype, index_dtype=None, group=None):
        """The launchable instantiation, looked up once per (name, dtypes, group)."""
        key = (name, dtype, index_dtype, group)
        kernel = self._kernels.get(key)
        if kernel is None:
            args = [_CTYPES[np.dtype(dtype)]] + ([_CTYPES[np.dtype(index_dtype)]] if index_dtype is not None else [])
            args += [str(group)] if group is not None else []
            kernel = self._kernels[key] = self.runtime.function(SOURCE, f"{name}<{','.join(args)}>")
        return kernel

    def spmm(self, indptr, indices, values, shape, dense, transpose_sparse=False, kernel="auto", cache=None):
        rt, xp = self.runtime, self.runtime.xp
        M, K = (int(d) for d in shape)
        _check(rt, indptr, indices, values, (M, K), dense, transpose_sparse, kernel)
        cache = {"_per_call": True} if cache is None else cache
        if graphs.capturing(rt.name):
            _check_warm(rt.name, cache, transpose_sparse, kernel)
        with rt.activate():
            dense = xp.ascontiguousarray(dense)
            if indices.dtype != np.int32:  # the kernels read int column indices
                narrow = cache.get("indices32")
                if narrow is None:
                    narrow = cache["indices32"] = _narrow_columns(indices, K)
                indices = narrow
            if transpose_sparse:
                t = cache.get("transpose")
                if t is None:
                    t = cache["transpose"] = Transpose(xp, _host(xp, indptr), _host(xp, indices), M, K)
                indptr, indices, values, (M, K) = t.indptr, t.indices, values[t.order], (K, M)
                structure = cache.get("transpose_structure")
                if structure is None:
                    structure = cache["transpose_structure"] = Structure(xp, _host(xp, indptr), M)
            else:
                structure = cache.get("structure")
                if structure is None:
                    structure = cache["structure"] = Structure(xp, _host(xp, indptr), M)
            N = dense.shape[1]
            if kernel == "cusparse":
                return xp.ascontiguousarray(rt.reference_spmm(indptr, indices, values, (M, K), dense))
            out = rt.empty((M, N), dense.dtype)
            if M == 0 or N == 0:
                return out
            group = group_for(N, dense.dtype)

            def rows():
                self._kernel("spmm_csr_rows", dense.dtype, indptr.dtype, group)(
                    (-(-M // (THREADS // group)), 1, 1), (THREADS, 1, 1),
                    ROWS.pack((M, N, SEGMENT, indptr, indices, values, dense, N, out, N)))

            def segments():
                self._segments(structure, indices, values, dense, out, group)

            if kernel == "auto":
                kernel = self._choose(cache, "transpose_choice" if transpose_sparse else "choice", structure,
                                      {"rows": rows, "segments": segments})
            (segments if kernel == "segments" else rows)()
            return out

    def _choose(self, cache: dict, key: str, structure, runs: dict) -> str:
        """The kernel for this structure: timed once per cache (see the module docstring)."""
        from .gemm.autotune import tuning_enabled

        if key not in cache:
            if cache.get("_per_call") or not tuning_enabled():
                choice = "segments" if structure.skewed() else "rows"
                if not cache.get("_per_call"):
                    cache[key] = choice  # a capture later finds it, as it finds a timed one
                return choice
            timings = {}
            for name, run in runs.items():
                run()  # warm-up (and the build of the segment list)
                timings[name] = sorted(self.runtime.time_ms(run, 1) for _ in range(3))[1]
            cache[key] = min(timings, key=timings.get)
        return cache[key]

    def _segments(self, structure, indices, values, dense, out, group):
        N = out.shape[1]
        seg_row, begin, end, slot, long_rows, first, count, slots = structure.segments()
        ldw = -(-N // 4) * 4  # rows of the workspace start 16-byte aligned
        work = self.runtime.empty((max(slots, 1), ldw), dense.dtype)
        per_block = THREADS // group
        segments = len(seg_row)
        self._kernel("spmm_csr_segments", dense.dtype, begin.dtype, group)(
            (-(-segments // per_block), 1, 1), (THREADS, 1, 1),
            SEGMENTS.pack((segments, N, seg_row, begin, end, slot, indices, values, dense, N, out, N, work, ldw)))
        rows = len(long_rows)
        if rows:
            self._kernel("spmm_csr_combine", dense.dtype)(
                (-(-(rows * N) // THREADS), 1, 1), (THREADS, 1, 1),
                COMBINE.pack((rows, N, long_rows, first, count, work, ldw, out, N)))


def _host(xp, array) -> np.ndarray:
    return array if xp is np else xp.asnumpy(array)


def _check(rt, indptr, indices, values, shape, dense, transpose_sparse, kernel):
    M, K = shape
    arrays = {"indptr": indptr, "indices": indices, "values": values, "dense": dense}
    foreign = [f"{name} ({type(a).__name__})" for name, a in arrays.items() if not rt.owns(a)]
    if foreign:
        raise TypeError(f"spmm on {rt.name} takes arrays of that device; not: {', '.join(foreign)}")
    if kernel not in ("auto", "rows", "segments", "cusparse"):
        raise ValueError(f"unknown SpMM kernel {kernel!r}; choose 'auto', 'rows', 'segments' or 'cusparse'")
    if values.dtype not in _FLOATS or dense.dtype != values.dtype:
        raise TypeError(f"spmm needs float32 or float64 values and a dense operand of the same dtype, got values "
                        f"{values.dtype} and dense {dense.dtype}")
    if indptr.dtype not in (np.int32, np.int64) or indices.dtype not in (np.int32, np.int64):
        raise TypeError(f"CSR index arrays must be int32 or int64, got indptr {indptr.dtype} and indices "
                        f"{indices.dtype}")
    if indptr.shape != (M + 1,) or indices.ndim != 1 or values.shape != indices.shape:
        raise ValueError(f"CSR arrays do not describe a {M} x {K} matrix: indptr {indptr.shape} (want ({M + 1},)), "
                         f"indices {indices.shape}, values {values.shape}")
    inner = M if transpose_sparse else K
    if dense.ndim != 2 or dense.shape[0] != inner:
        raise ValueError(f"spmm: a {M} x {K} sparse matrix{' (transposed)' if transpose_sparse else ''} times a dense "
                         f"operand of shape {dense.shape}: its rows must number {inner}")


def _check_warm(device: str, cache: dict, transpose_sparse: bool, kernel: str) -> None:
    """Inside a CUDA graph capture nothing may be read back to the host: the structure
    (and, for "auto", the timed choice) must come from a warm-up call with this cache."""
    needed = ["transpose", "transpose_structure"] if transpose_sparse else ["structure"]
    if kernel == "auto":
        needed.append("transpose_choice" if transpose_sparse else "choice")
    missing = [name for name in needed if name not in cache]
    if missing:
        raise graphs.CaptureError(
            f"a sparse product on {device} needs its sparsity structure read on the host ({', '.join(missing)} not "
            "cached), which a CUDA graph capture cannot do. Warm up before capturing: run the captured code once "
            "with the same sparse tensor (its cache)")


def _narrow_columns(indices, K):
    if K > np.iinfo(np.int32).max:
        raise ValueError(f"spmm: {K} columns do not fit the kernels' 32-bit column indices")
    return indices.astype(np.int32)


@lru_cache(maxsize=None)
def dispatcher(runtime) -> SpmmDispatch:
    return SpmmDispatch(runtime)
