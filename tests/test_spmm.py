"""Our CSR SpMM kernels (kernels/spmm_csr.cu) on device "emu", against SciPy in
float64: random sparse matrices with empty rows, one very long row, sorted and
unsorted column indices, int32 and int64 index arrays, narrow and wide dense
operands, S @ D and S^T @ D, both kernels; outputs start as NaN on "emu", so an
element no kernel writes fails. Plus the NVRTC compile of every instantiation
(zero spills, sm_80 and sm_90) and determinism."""
import numpy as np
import pytest

sp = pytest.importorskip("scipy.sparse", reason="the reference products come from SciPy")

from tinygrad_dot import gemm, spmm  # noqa: E402
from tests import kernel_checks  # noqa: E402

from conftest import max_rel_error  # noqa: E402

TOL = {np.float32: 2e-6, np.float64: 1e-13}


def skewed_csr(rng, M, K, density, dtype, index_dtype, long_row=None, sort=True):
    """A random CSR matrix with about a fifth of its rows empty and, if asked, one row
    holding `long_row` nonzeros; column indices sorted or shuffled within rows."""
    S = sp.random(M, K, density=density, format="csr", dtype=np.float64, random_state=rng)
    S = sp.csr_matrix(S.multiply((rng.random((M, 1)) > 0.2)))  # empty rows
    if long_row:
        dense_row = np.zeros((1, K))
        dense_row[0, rng.choice(K, size=min(long_row, K), replace=False)] = rng.standard_normal(min(long_row, K))
        S = sp.vstack([S[: M // 2], sp.csr_matrix(dense_row), S[M // 2 + 1:]]).tocsr()
    S.sort_indices()
    indptr, indices, values = S.indptr.astype(index_dtype), S.indices.astype(index_dtype), S.data.astype(dtype)
    if not sort:  # the same matrix with each row's (column, value) pairs in another order
        for r in range(M):
            lo, hi = indptr[r], indptr[r + 1]
            perm = lo + rng.permutation(hi - lo)
            indices[lo:hi], values[lo:hi] = indices[perm], values[perm]
    return indptr, indices, values, S


DISPATCH = None


def dispatch():
    global DISPATCH
    if DISPATCH is None:
        DISPATCH = spmm.dispatcher(gemm.dispatcher("emu").runtime)
    return DISPATCH


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64], ids=["i32", "i64"])
@pytest.mark.parametrize("kernel", ["rows", "segments", "auto"])
def test_products_against_scipy(dtype, index_dtype, kernel):
    rng = np.random.default_rng([7, int(np.dtype(dtype).itemsize), int(np.dtype(index_dtype).itemsize)])
    for M, K, N, long_row, sort in ((97, 61, 3, None, True), (130, 77, 33, 1500, False), (5, 2000, 130, 1800, True),
                                    (40, 9, 1, None, False)):
        indptr, indices, values, S = skewed_csr(rng, M, K, 0.08, dtype, index_dtype, long_row, sort)
        D = rng.standard_normal((K, N)).astype(dtype)
        G = rng.standard_normal((M, N)).astype(dtype)
        out = dispatch().spmm(indptr, indices, values, (M, K), D, kernel=kernel)
        assert out.shape == (M, N) and out.dtype == dtype
        assert max_rel_error(out, S @ D.astype(np.float64)) < TOL[dtype], (M, K, N)
        back = dispatch().spmm(indptr, indices, values, (M, K), G, transpose_sparse=True, kernel=kernel)
        assert back.shape == (K, N) and max_rel_error(back, S.T @ G.astype(np.float64)) < TOL[dtype], (M, K, N)


def test_segments_cover_long_rows_in_order_and_results_repeat_bitwise():
    rng = np.random.default_rng(3)
    indptr, indices, values, S = skewed_csr(rng, 64, 5000, 0.01, np.float32, np.int32, long_row=4000)
    D = rng.standard_normal((5000, 10)).astype(np.float32)
    first = dispatch().spmm(indptr, indices, values, (64, 5000), D, kernel="auto")  # no cache: by the row lengths
    cache = {}
    dispatch().spmm(indptr, indices, values, (64, 5000), D, kernel="segments", cache=cache)
    assert cache["structure"].skewed() and cache["structure"].max_row == 4000  # auto took the segments
    again = dispatch().spmm(indptr, indices, values, (64, 5000), D, kernel="segments", cache=cache)
    assert np.array_equal(first, again)  # a fixed summation order: no atomics
    rows = dispatch().spmm(indptr, indices, values, (64, 5000), D, kernel="rows")
    assert np.array_equal(first, rows)  # the same chunked order in both kernels: the choice is speed only
    seg_row, begin, end, slot, long_rows, *_ = cache["structure"].segments()
    assert np.all(end - begin <= spmm.SEGMENT) and np.array_equal(np.unique(seg_row), np.arange(64))
    assert max_rel_error(first, S @ D.astype(np.float64)) < TOL[np.float32]


def test_auto_times_both_kernels_once_per_structure(monkeypatch):
    monkeypatch.setenv("TINYGRAD_DOT_AUTOTUNE", "1")
    rng = np.random.default_rng(5)
    indptr, indices, values, S = skewed_csr(rng, 50, 40, 0.1, np.float64, np.int32)
    D = rng.standard_normal((40, 6))
    cache = {}
    out = dispatch().spmm(indptr, indices, values, (50, 40), D, cache=cache)
    assert cache["choice"] in ("rows", "segments") and max_rel_error(out, S @ D) < TOL[np.float64]
    cache["choice"] = "segments"  # a later call takes the stored choice without timing again
    assert np.array_equal(dispatch().spmm(indptr, indices, values, (50, 40), D, cache=cache),
                          dispatch().spmm(indptr, indices, values, (50, 40), D, kernel="segments"))


def test_empty_and_degenerate_shapes():
    indptr = np.zeros(4, np.int32)
    empty = np.zeros(0, np.int32)
    out = dispatch().spmm(indptr, empty, np.zeros(0, np.float32), (3, 5), np.ones((5, 2), np.float32))
    assert out.shape == (3, 2) and not out.any()  # empty rows give zeros (the output started as NaN)
    assert dispatch().spmm(np.zeros(1, np.int32), empty, np.zeros(0, np.float64), (0, 5),
                           np.ones((5, 2))).shape == (0, 2)


def test_the_reference_and_bad_input():
    rng = np.random.default_rng(4)
    indptr, indices, values, S = skewed_csr(rng, 20, 30, 0.2, np.float64, np.int32)
    D = rng.standard_normal((30, 4))
    ref = dispatch().spmm(indptr, indices, values, (20, 30), D, kernel="cusparse")
    assert max_rel_error(ref, S @ D) < 1e-14
    with pytest.raises(ValueError, match=r"rows must number 30"):
        dispatch().spmm(indptr, indices, values, (20, 30), D[:29])
    with pytest.raises(TypeError, match="same dtype"):
        dispatch().spmm(indptr, indices, values, (20, 30), D.astype(np.float32))
    with pytest.raises(ValueError, match="unknown SpMM kernel"):
        dispatch().spmm(indptr, indices, values, (20, 30), D, kernel="fastest")
    with pytest.raises(ValueError, match=r"indptr \(21,\) \(want \(31,\)\)"):
        dispatch().spmm(indptr, indices, values, (30, 30), D)


@pytest.mark.parametrize("cc", [80, 90])
def test_every_instantiation_compiles_without_spills(cc):
    assert not kernel_checks.spilled(spmm.SOURCE, spmm.instantiations(), cc)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_on_the_gpu_against_cusparse(dtype):
    import cupy as cp

    rng = np.random.default_rng(6)
    gpu = spmm.dispatcher(gemm.dispatcher("cuda:0").runtime)
    for M, K, N, long_row in ((2000, 3000, 10, 2500), (500, 70, 130, None)):
        indptr, indices, values, S = skewed_csr(rng, M, K, 0.01, dtype, np.int32, long_row, sort=False)
        D = rng.standard_normal((K, N)).astype(dtype)
        G = rng.standard_normal((M, N)).astype(dtype)
        dev = [cp.asarray(x) for x in (indptr, indices, values)]
        for kernel in ("rows", "segments", "auto"):
            out = cp.asnumpy(gpu.spmm(*dev, (M, K), cp.asarray(D), kernel=kernel))
            assert max_rel_error(out, S @ D.astype(np.float64)) < TOL[dtype], (M, K, N, kernel)
            back = cp.asnumpy(gpu.spmm(*dev, (M, K), cp.asarray(G), transpose_sparse=True, kernel=kernel))
            assert max_rel_error(back, S.T @ G.astype(np.float64)) < TOL[dtype], (M, K, N, kernel)
        ref = cp.asnumpy(gpu.spmm(*dev, (M, K), cp.asarray(D), kernel="cusparse"))
        assert max_rel_error(ref, S @ D.astype(np.float64)) < 10 * TOL[dtype]


def test_a_capture_needs_the_structure_read_before_it():
    """Inside a CUDA graph capture the host cannot read the sparsity structure: a cache
    warmed by an earlier call is required, and its absence is a clear error."""
    import tinygrad_dot as td

    rng = np.random.default_rng(7)
    indptr, indices, values, S = skewed_csr(rng, 30, 20, 0.2, np.float32, np.int32)
    D = rng.standard_normal((20, 3)).astype(np.float32)
    with pytest.raises(td.cuda.CaptureError, match="Warm up before capturing"):
        with td.cuda.graph(td.cuda.CUDAGraph(), device="emu"):
            dispatch().spmm(indptr, indices, values, (30, 20), D, cache={})


def test_the_device_benchmark_runs_on_emu(tmp_path):
    """benchmarks/sparse.py --device (ours vs cuSPARSE) end to end on the emulator, small:
    every kernel agrees with the reference (the emulator's timings mean nothing)."""
    import importlib
    import json

    bench = importlib.import_module("benchmarks.sparse")
    out = tmp_path / "sparse-device.json"
    assert bench.main(["--device", "emu", "--spmm-shape", "200,3000", "--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["measured_on_gpu"] is False and len(report["rows"]) == 4 * 3
    assert all(row[f"{p} max_rel_diff"] < 1e-5 for row in report["rows"] for p in ("S@D", "S^T@G"))


def test_a_capture_after_an_untuned_warm_up(monkeypatch):
    """With tuning off, the warm-up's choice (by row-length skew) is kept in the cache
    as a timed one is, so the capture finds everything it needs."""
    import tinygrad_dot as td

    monkeypatch.setenv("TINYGRAD_DOT_AUTOTUNE", "0")
    rng = np.random.default_rng(8)
    indptr, indices, values, S = skewed_csr(rng, 30, 20, 0.2, np.float32, np.int32)
    D = rng.standard_normal((20, 3)).astype(np.float32)
    cache = {}
    warm = dispatch().spmm(indptr, indices, values, (30, 20), D, cache=cache)
    graph = td.cuda.CUDAGraph()
    with td.cuda.graph(graph, device="emu"):
        out = dispatch().spmm(indptr, indices, values, (30, 20), D, cache=cache)
    out[...] = np.nan
    graph.replay()
    assert np.array_equal(out, warm)
