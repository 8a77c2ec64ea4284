"""The skinny products of a linear model (kernels/linear_skinny.cu) on device "emu":
routing by kernel="auto", results against float64 on odd shapes with NaN-poisoned
outputs, bitwise determinism of the split-n weight gradient, a training step, and
the NVRTC compile of every instantiation (zero spills, sm_80 and sm_90)."""
import numpy as np
import pytest

import tinygrad_dot as td
from tinygrad_dot import gemm
from tests import kernel_checks
from tinygrad_dot.gemm import skinny

from conftest import max_rel_error

TOL = {np.float32: 3e-6, np.float64: 1e-13}
N_ROWS = skinny.MIN_ROWS + 37  # tall enough to be routed, not a multiple of any tile


def test_routing():
    dispatch = gemm.dispatcher("emu")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N_ROWS, 33)).astype(np.float32)
    W = rng.standard_normal((10, 33)).astype(np.float32)
    G = rng.standard_normal((N_ROWS, 10)).astype(np.float32)
    assert dispatch.plan(X, W.T).kind == "nt"                 # forward: X W^T
    assert dispatch.plan(G.T, X).kind == "tn"                 # weight gradient: G^T X
    assert dispatch.plan(X.T, G).kind == "tn_t"               # of a d x k weight (X @ w): X^T G
    general = [dispatch.plan(X[:100], W.T),                   # short: the GEMM ladder
               dispatch.plan(X, rng.standard_normal((33, 17)).astype(np.float32)),  # NN, 17 outputs
               dispatch.plan(X, W.T, "warp_tiled"),           # a named rung is that rung
               dispatch.plan(np.stack([X[:5000]] * 2), W.T)]  # batched
    assert not any(isinstance(call, skinny.SkinnyCall) for call in general)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_forward_and_weight_gradient_against_float64(dtype):
    rng = np.random.default_rng(1)
    for d, k in ((33, 2), (130, 7), (5, 16)):
        X = rng.standard_normal((N_ROWS, d)).astype(dtype)
        W = rng.standard_normal((k, d)).astype(dtype)
        G = rng.standard_normal((N_ROWS, k)).astype(dtype)
        Y = gemm.matmul(X, W.T)
        assert Y.shape == (N_ROWS, k) and max_rel_error(Y, X.astype(np.float64) @ W.T) < TOL[dtype], (d, k)
        dW = gemm.matmul(G.T, X)
        assert dW.shape == (k, d) and max_rel_error(dW, G.T.astype(np.float64) @ X) < TOL[dtype], (d, k)
        strided = np.zeros((N_ROWS, d + 3), dtype)[:, :d]  # a row stride other than d
        strided[...] = X
        assert max_rel_error(gemm.matmul(G.T, strided), G.T.astype(np.float64) @ X) < TOL[dtype]


def test_the_weight_gradient_is_bitwise_repeatable():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((3 * N_ROWS, 64)).astype(np.float32)
    G = rng.standard_normal((3 * N_ROWS, 10)).astype(np.float32)
    call = gemm.dispatcher("emu").plan(G.T, X)
    assert call.launch.grid[1] > 1  # split over n: one row of blocks per chunk
    first = gemm.matmul(G.T, X)
    assert np.array_equal(first, gemm.matmul(G.T, X))


def test_a_linear_layer_step_on_emu_matches_the_cpu():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((N_ROWS, 20)).astype(np.float32)
    y = rng.integers(0, 5, N_ROWS)
    grads = {}
    for device in ("cpu", "emu"):
        td.manual_seed(0)
        layer = td.nn.Linear(20, 5).to(device)
        loss = td.nn.functional.cross_entropy(layer(td.tensor(X, device=device)), td.tensor(y, device=device))
        loss.backward()
        grads[device] = (float(loss), layer.weight.grad.numpy())
    assert abs(grads["emu"][0] - grads["cpu"][0]) < 1e-5 * abs(grads["cpu"][0])
    assert max_rel_error(grads["emu"][1], grads["cpu"][1]) < 1e-4


@pytest.mark.parametrize("cc", [80, 90])
def test_every_instantiation_compiles_without_spills(cc):
    assert not kernel_checks.spilled(skinny.SOURCE, skinny.instantiations(), cc)


def test_both_passes_stream_x_by_cp_async():
    """skinny_nt's slabs and skinny_tn_partial's row tiles of X travel by cp.async (LDGSTS in
    the SASS), double-buffered: the bytes in flight, not registers holding loaded values, are
    what keeps HBM busy here."""
    import re

    from tinygrad_dot.gemm import compile as gemm_compile, nvrtc, report, sources

    if report.nvdisasm_path() is None:
        pytest.skip("nvdisasm not found (pip install nvidia-cuda-nvdisasm)")
    names = [skinny.nt_expression(dtype, k, epilogue) for dtype in (np.float32, np.float64) for k in (1, 16)
             for epilogue in ("linear", "softmax")]
    names += [name for name in skinny.instantiations() if name.startswith("skinny_tn_partial")]
    result = nvrtc.compile_cubin(sources.read_source(skinny.SOURCE), skinny.SOURCE, gemm_compile.compile_options(90),
                                 names)
    functions = report.sass(result.cubin)
    for name in names:
        text = functions[result.lowered[name]]
        assert re.search(r"\bLDGSTS\b", text), f"{name}: no cp.async (LDGSTS) in its SASS"
        assert not re.search(r"\b(LDL|STL)\b", text), f"{name} touches local memory"


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_on_the_gpu_against_cublas(dtype):
    """The same products on a GPU against float64 cuBLAS (every element compared: one a
    kernel skipped holds stale memory or NaN and fails), and dW bitwise repeatable."""
    import cupy as cp

    rng = np.random.default_rng(4)
    for d, k in ((33, 2), (257, 10), (784, 16)):
        X = cp.asarray(rng.standard_normal((N_ROWS * 4, d)).astype(dtype))
        W = cp.asarray(rng.standard_normal((k, d)).astype(dtype))
        G = cp.asarray(rng.standard_normal((N_ROWS * 4, k)).astype(dtype))
        assert gemm.dispatcher(f"cuda:{X.device.id}").plan(X, W.T).kind == "nt"
        Y, dW = gemm.matmul(X, W.T), gemm.matmul(G.T, X)
        assert max_rel_error(cp.asnumpy(Y), cp.asnumpy(X.astype(cp.float64) @ W.T.astype(cp.float64))) < TOL[dtype]
        ref = cp.asnumpy(G.T.astype(cp.float64) @ X.astype(cp.float64))
        assert max_rel_error(cp.asnumpy(dW), ref) < TOL[dtype] and cp.array_equal(dW, gemm.matmul(G.T, X))


def test_the_bandwidth_benchmark_runs_on_emu(tmp_path):
    """benchmarks/linear.py end to end on the emulator (its figures mean nothing there):
    the products agree with float64, and the training losses of emu (tape, fused, fused
    + CUDA graph) and of the CPU agree."""
    import importlib
    import json

    bench = importlib.import_module("benchmarks.linear")
    out = tmp_path / "linear.json"
    assert bench.main(["--device", "emu", "--rows", str(N_ROWS), "--features", "8", "--steps", "2",
                       "--outputs", "1,10", "--groups", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["measured_on_gpu"] is False and report["kernels_sha256"]
    assert all(row["max_rel_err"] < 1e-5 for row in report["bandwidth"]["cases"])
    rows = report["linear_regression"]
    assert set(rows) == {"td emu", "td emu fused", "td emu fused+graph", "td cpu"}
    assert report["linear_regression_speedups"] == {}  # (PyTorch runs on a GPU only)
    losses = [row["final_loss"] for row in rows.values()]
    assert max(losses) - min(losses) < 1e-4 * max(losses)


def test_one_output_and_the_x_w_orientation_are_routed_too():
    """k = 1 (binary logistic regression, one-target regression) and X @ w with w stored
    d x k take the skinny kernels as well; empty products do not reach them."""
    dispatch = gemm.dispatcher("emu")
    rng = np.random.default_rng(5)
    X = rng.standard_normal((N_ROWS, 19))
    for k in (1, 3):
        w = rng.standard_normal((19, k))                       # X @ w: layout NN
        W = rng.standard_normal((k, 19))                       # X @ W^T: NT (NN when k = 1)
        g = rng.standard_normal((N_ROWS, k))                   # g^T X: TN (NN with M = 1 when k = 1)
        for a, b in ((X, w), (X, W.T), (g.T, X), (X.T, g)):
            assert isinstance(dispatch.plan(a, b), skinny.SkinnyCall), (k, a.shape, b.shape)
            assert max_rel_error(gemm.matmul(a, b), a @ b) < TOL[np.float64], (k, a.shape, b.shape)
    assert gemm.matmul(X[:, :0], np.ones((0, 2))).shape == (N_ROWS, 2)      # K = 0: zeros, no launch
    assert gemm.matmul(np.ones((2, N_ROWS)), X[:, :0]).shape == (2, 0)      # N = 0
    launcher = gemm.prepare(X, w)
    launcher.out.fill(np.nan)
    assert launcher() is launcher.out and max_rel_error(launcher.out, X @ w) < TOL[np.float64]
