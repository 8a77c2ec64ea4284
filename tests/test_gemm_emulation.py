"""Every rung of the GEMM ladder, run on the CPU through the CUDA emulation.

The same kernel sources as on the GPU, compiled by g++ with tests/emulation's
header (a real __syncthreads across fiber threads). Shapes are a covering set of
1, 7, 33, 65, 130 in each of M, N, K; each case runs once with natural leading
dimensions (scalar fallback: none are multiples of the vector width) and once with
padded ones (128-bit path), plus misaligned pointers and batched/broadcast cases.
Output buffers are poisoned with NaN, so an element the kernel skips fails.
"""
import warnings
import zlib

import numpy as np
import pytest

from tests.emulation.emulator import emulated_matmul, library
from tinygrad_dot.gemm import configs

# Latin square: each value appears once as M, once as N and once as K.
SHAPES = [(1, 7, 33), (7, 33, 65), (33, 65, 130), (65, 130, 1), (130, 1, 7)]
TOL = {configs.F32: 2e-6, configs.F64: 1e-14}
RUNGS = list(configs.RUNGS)


def operand(rng, rows, cols, dtype, trans, padded, offset=0):
    """A rows x cols matrix stored row-major (or column-major when trans), with the
    leading dimension padded to a multiple of 8 elements if asked, starting
    `offset` elements into its buffer (to misalign the pointer)."""
    inner, outer = (rows, cols) if trans else (cols, rows)
    ld = -(-inner // 8) * 8 if padded else inner
    buf = rng.standard_normal(outer * ld + offset).astype(dtype)
    m = buf[offset:offset + outer * ld].reshape(outer, ld)[:, :inner]
    return m.T if trans else m


def rel_err(c, ref):
    return float(np.max(np.abs(c - ref)) / max(np.max(np.abs(ref)), 1e-30))


def check(a, b, cfg, **kw):
    c = emulated_matmul(a, b, cfg, **kw)
    ref = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert c.shape == ref.shape and c.dtype == a.dtype
    err = rel_err(c, ref)
    assert err < TOL[a.dtype], f"{cfg.label()} {a.dtype} {a.shape}@{b.shape}: relative error {err:.3g}"


@pytest.fixture(scope="module", autouse=True)
def built():
    library()  # build (or load from cache) once, outside the per-test timing


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("layout", configs.LAYOUTS)
@pytest.mark.parametrize("rung", RUNGS)
def test_rung_odd_shapes(rung, layout, dtype):
    cfg = configs.DEFAULTS[np.dtype(dtype)][rung]
    rng = np.random.default_rng(zlib.crc32(f"{rung}{layout}".encode()))
    for padded in (False, True):
        for M, N, K in SHAPES:
            a = operand(rng, M, K, dtype, layout[0] == "T", padded)
            b = operand(rng, K, N, dtype, layout[1] == "T", padded)
            check(a, b, cfg)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("rung", RUNGS)
def test_rung_misaligned_and_batched(rung, dtype):
    cfg = configs.DEFAULTS[np.dtype(dtype)][rung]
    rng = np.random.default_rng(7)
    # pointers one element past a 16-byte boundary with aligned-looking strides
    check(operand(rng, 65, 33, dtype, False, True, offset=1), operand(rng, 33, 130, dtype, True, True, offset=1), cfg)
    # strided batch with a broadcast operand: one launch, batch stride 0 for b
    a = rng.standard_normal((3, 33, 65)).astype(dtype)
    b = rng.standard_normal((65, 7)).astype(dtype)
    check(a, b, cfg)
    check(np.swapaxes(a, 1, 2), rng.standard_normal((33, 7)).astype(dtype), cfg)  # batched A^T B
    # a batch larger than the grid's z limit (lowered to 2 here): split launches
    check(a, rng.standard_normal((3, 65, 7)).astype(dtype), cfg, max_grid_z=2)
    # M past the grid's y limit (lowered to 1 row tile here): rows split over launches,
    # A's pointer offset by rows (row-major) or by elements (A^T), with the batch split too
    tall = rng.standard_normal((2, 140, 33)).astype(dtype)
    check(tall, b[:33], cfg, max_grid_y=1, max_grid_z=1)
    check(np.swapaxes(rng.standard_normal((2, 33, 140)).astype(dtype), 1, 2), b[:33].T.copy().T, cfg, max_grid_y=1)
    # broadcast batch dims on both sides that need materializing
    check(rng.standard_normal((2, 1, 7, 33)).astype(dtype), rng.standard_normal((3, 33, 65)).astype(dtype), cfg)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_untuned_configs(dtype):
    """The configs used when autotuning is off (small and large tiles)."""
    rng = np.random.default_rng(3)
    for cfg in configs.UNTUNED[np.dtype(dtype)]:
        for M, N, K in SHAPES[1:4]:
            check(operand(rng, M, K, dtype, False, True), operand(rng, K, N, dtype, True, False), cfg)
            check(operand(rng, M, K, dtype, True, False), operand(rng, K, N, dtype, False, True), cfg)


def _extra_configs():
    """Every launchable config that test_rung_odd_shapes does not already cover
    (autotune candidates and untuned choices beyond the rung defaults)."""
    return [pytest.param(dtype, cfg, id=f"{np.dtype(dtype).name}-{cfg.label()}")
            for dtype in (configs.F32, configs.F64)
            for cfg in configs.all_configs(dtype) if cfg not in configs.DEFAULTS[dtype].values()]


@pytest.mark.parametrize("dtype, cfg", _extra_configs())
def test_every_candidate_config(dtype, cfg):
    """Whatever the autotuner picks must be correct: each config, every layout, odd
    shapes with partial tiles (natural and padded leading dimensions)."""
    rng = np.random.default_rng(zlib.crc32(cfg.label().encode()))
    for layout in configs.LAYOUTS:
        for padded, (M, N, K) in ((False, (65, 130, 33)), (True, (130, 7, 65)), (False, (1, 33, 7))):
            a = operand(rng, M, K, dtype, layout[0] == "T", padded)
            b = operand(rng, K, N, dtype, layout[1] == "T", padded)
            check(a, b, cfg)


def test_poison_is_detected():
    """The harness itself: a result left NaN must fail the comparison."""
    cfg = configs.DEFAULTS[configs.F32]["smem_tiled"]
    a = np.ones((4, 3), np.float32)
    c = emulated_matmul(a, np.ones((3, 5), np.float32), cfg)
    c[1, 2] = np.nan
    assert not rel_err(c, np.full((4, 5), 3.0)) < 1.0


def test_matmul_dispatch_end_to_end(monkeypatch):
    """tinygrad_dot.gemm.matmul with a stand-in CuPy whose kernels are the emulated
    ones: checks the launch arguments, pointer offsets and batch splitting of the
    real dispatch code."""
    from tests.emulation import fake_cupy
    from tinygrad_dot import gemm
    from tinygrad_dot.gemm import plan

    fake_cupy.install(monkeypatch)
    monkeypatch.setattr(plan, "batch_chunks", lambda batch: ((z, 1) for z in range(batch)))  # split every entry
    rows = plan.row_chunks
    monkeypatch.setattr(plan, "row_chunks", lambda M, bm: rows(M, bm, max_grid_y=1))  # one row tile per launch
    monkeypatch.setenv("TINYGRAD_DOT_AUTOTUNE", "0")
    rng = np.random.default_rng(11)
    dev = fake_cupy.on_device
    for dtype in (np.float32, np.float64):
        a = rng.standard_normal((3, 65, 33)).astype(dtype)
        b = rng.standard_normal((7, 65)).astype(dtype)
        for kernel in ["auto", *gemm.kernel_names()]:
            c = gemm.matmul(dev(np.swapaxes(a, 1, 2)), dev(b.T), kernel=kernel)  # batched TT, broadcast b
            ref = np.matmul(np.swapaxes(a, 1, 2).astype(np.float64), b.T.astype(np.float64))
            assert rel_err(np.asarray(c), ref) < TOL[np.dtype(dtype)], kernel
        tall = rng.standard_normal((2, 17, 140)).astype(dtype)
        x = np.swapaxes(tall, 1, 2)  # A^T in f32, row-major A in f64
        x = x if dtype == np.float32 else np.ascontiguousarray(x)
        for kernel in gemm.kernel_names():  # M = 140: several row tiles, each its own launch
            c = gemm.matmul(dev(x), dev(b[:, :17].T), kernel=kernel)
            ref = np.matmul(x.astype(np.float64), b[:, :17].T.astype(np.float64))
            assert rel_err(np.asarray(c), ref) < TOL[np.dtype(dtype)], kernel
        c = gemm.matmul(dev(rng.standard_normal((2, 1, 7, 33)).astype(dtype)),
                        dev(rng.standard_normal((3, 33, 5)).astype(dtype)), kernel="auto")  # materialized
        assert c.shape == (2, 3, 7, 5) and not np.isnan(np.asarray(c)).any()
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)"):
        gemm.matmul(dev(np.zeros((3, 4), np.float32)), dev(np.zeros((5, 2), np.float32)))
    with pytest.raises(TypeError, match="float32 and float64"):
        gemm.matmul(dev(np.zeros((3, 4), np.float32)), dev(np.zeros((4, 2), np.float64)))


def test_autotuned_dispatch_end_to_end(monkeypatch, tmp_path):
    """kernel="auto" with tuning on, through the stand-in CuPy: every candidate runs
    (emulated) on the real operands, its output is checked against the first's,
    and the choice is cached."""
    import json

    from tests.emulation import fake_cupy
    from tinygrad_dot import gemm

    fake_cupy.install(monkeypatch)
    monkeypatch.setenv("TINYGRAD_DOT_AUTOTUNE", "1")
    monkeypatch.setenv("TINYGRAD_DOT_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(12)
    a = rng.standard_normal((40, 33)).astype(np.float32)
    b = rng.standard_normal((33, 20)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no candidate dropped
        c = gemm.matmul(fake_cupy.on_device(a), fake_cupy.on_device(b.T.copy().T), kernel="auto")
    assert rel_err(np.asarray(c), a.astype(np.float64) @ b) < TOL[configs.F32]
    (entry,) = json.loads((tmp_path / "autotune.json").read_text())["devices"]["emu"].values()
    assert len(entry["timings_ms"]) == len(configs.CANDIDATES[configs.F32])  # none dropped
