"""Every rung of the GEMM ladder, run on the CPU on device "emu".

The same kernel sources as on the GPU, compiled by g++ through the emulation
header (a real __syncthreads across fiber threads), launched by the same
dispatch code a GPU runs (tinygrad_dot.gemm on NumPy arrays). Shapes are a
covering set of 1, 7, 33, 65, 130 in each of M, N, K; each case runs once with
natural leading dimensions (scalar fallback: none are multiples of the vector
width) and once with padded ones (128-bit path), plus misaligned pointers and
batched/broadcast cases. "emu" poisons its output buffers with NaN, so an
element the kernel skips fails.
"""
import contextlib
import json
import warnings
import zlib

import numpy as np
import pytest

from tinygrad_dot import gemm
from tinygrad_dot.gemm import autotune, configs
from tinygrad_dot.runtime.emulated import EmulatedRuntime

from conftest import max_rel_error

# Latin square: each value appears once as M, once as N and once as K.
SHAPES = [(1, 7, 33), (7, 33, 65), (33, 65, 130), (65, 130, 1), (130, 1, 7)]
TOL = {configs.F32: 2e-6, configs.F64: 1e-14}
RUNGS = list(configs.RUNGS)
# Every rung with every dtype it computes in (dmma: float64 only; its float32
# refusal is tested in test_matmul_dispatch_end_to_end).
RUNG_DTYPES = [pytest.param(rung, dtype, id=f"{rung}-{np.dtype(dtype).name}")
               for rung in RUNGS for dtype in (np.float32, np.float64) if rung in gemm.kernel_names(dtype)]


def operand(rng, rows, cols, dtype, trans, padded, offset=0):
    """A rows x cols matrix stored row-major (or column-major when trans), with the
    leading dimension padded to a multiple of 8 elements if asked, starting
    `offset` elements into its buffer (to misalign the pointer)."""
    inner, outer = (rows, cols) if trans else (cols, rows)
    ld = -(-inner // 8) * 8 if padded else inner
    buf = rng.standard_normal(outer * ld + offset).astype(dtype)
    m = buf[offset:offset + outer * ld].reshape(outer, ld)[:, :inner]
    return m.T if trans else m


def check(a, b, cfg):
    c = gemm.matmul(a, b, kernel=cfg)
    ref = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert c.shape == ref.shape and c.dtype == a.dtype
    err = max_rel_error(c, ref)
    assert err < TOL[a.dtype], f"{cfg.label()} {a.dtype} {a.shape}@{b.shape}: relative error {err:.3g}"


@pytest.mark.parametrize("layout", configs.LAYOUTS)
@pytest.mark.parametrize("rung, dtype", RUNG_DTYPES)
def test_rung_odd_shapes(rung, layout, dtype):
    cfg = configs.DEFAULTS[np.dtype(dtype)][rung]
    rng = np.random.default_rng(zlib.crc32(f"{rung}{layout}".encode()))
    for padded in (False, True):
        for M, N, K in SHAPES:
            a = operand(rng, M, K, dtype, layout[0] == "T", padded)
            b = operand(rng, K, N, dtype, layout[1] == "T", padded)
            check(a, b, cfg)


@pytest.mark.parametrize("rung, dtype", RUNG_DTYPES)
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
    """The harness itself: "emu" hands out NaN-filled outputs, and a result left NaN
    fails the comparison."""
    out = gemm.dispatcher("emu").runtime.empty((4, 5), np.float32)
    assert np.isnan(out).all()
    c = gemm.matmul(np.ones((4, 3), np.float32), np.ones((3, 5), np.float32), kernel="smem_tiled")
    c[1, 2] = np.nan
    assert not max_rel_error(c, np.full((4, 5), 3.0)) < 1.0


# One thread per block: the splits past CUDA's real grid limits (65535 row tiles,
# 65535 batch entries) cost 65,536 emulated threads, not 65,536 blocks of 256.
ONE_THREAD = configs.KernelConfig("smem_tiled", (1,))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_rows_and_batch_split_past_the_real_grid_limits(dtype):
    """M past 65535 row tiles and a batch past 65535 entries: the dispatch splits
    them over launches, offsetting A's and C's addresses (by rows for row-major A,
    by elements for A^T); every element is written (the output starts as NaN)."""
    rng = np.random.default_rng(21)
    rows = configs.MAX_GRID_Y + 3
    b = rng.standard_normal((2, 3)).astype(dtype)
    for a in (rng.standard_normal((rows, 2)).astype(dtype),             # row-major A
              rng.standard_normal((2, rows)).astype(dtype).T):          # A^T, read in place
        call = gemm.dispatcher("emu").plan(a, b, ONE_THREAD)
        assert [k.grid for k in call.launches] == [(3, configs.MAX_GRID_Y, 1), (3, 3, 1)]
        check(a, b, ONE_THREAD)
    batched = rng.standard_normal((configs.MAX_GRID_Z + 2, 1, 2)).astype(dtype)
    call = gemm.dispatcher("emu").plan(batched, b, ONE_THREAD)
    assert [k.grid[2] for k in call.launches] == [configs.MAX_GRID_Z, 2]
    check(batched, b, ONE_THREAD)


def test_a_launch_the_driver_would_refuse_fails_on_emu():
    """The emulator checks launches against CUDA's limits, as cuLaunchKernel does."""
    runtime = gemm.dispatcher("emu").runtime
    cfg = configs.DEFAULTS[configs.F32]["smem_tiled"]
    kernel = runtime.function(*cfg.instantiation(configs.F32, False, False))
    args = configs.GEMM_SIGNATURE.pack((1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1))
    with pytest.raises(ValueError, match="grid y = 65536 > 65535"):
        kernel((1, 65536, 1), (256, 1, 1), args)
    with pytest.raises(ValueError, match="2048 threads per block > 1024"):
        kernel((1, 1, 1), (2048, 1, 1), args)


def test_matmul_dispatch_end_to_end():
    """tinygrad_dot.gemm.matmul on "emu": every kernel choice over batched, broadcast,
    transposed and materialized operands; the second call of a signature comes from
    the plan cache; bad operands get clear errors."""
    rng = np.random.default_rng(11)
    for dtype in (np.float32, np.float64):
        a = rng.standard_normal((3, 65, 33)).astype(dtype)
        b = rng.standard_normal((7, 65)).astype(dtype)
        for kernel in ["auto", "cublas", *gemm.kernel_names(dtype)]:
            for _ in range(2):  # planned, then from the cache
                c = gemm.matmul(np.swapaxes(a, 1, 2), b.T, kernel=kernel)  # batched TT, broadcast b
                ref = np.matmul(np.swapaxes(a, 1, 2).astype(np.float64), b.T.astype(np.float64))
                assert c.flags.c_contiguous and max_rel_error(c, ref) < TOL[np.dtype(dtype)], kernel
        c = gemm.matmul(rng.standard_normal((2, 1, 7, 33)).astype(dtype),
                        rng.standard_normal((3, 33, 5)).astype(dtype), kernel="auto")  # materialized
        assert c.shape == (2, 3, 7, 5) and not np.isnan(c).any()
        assert (gemm.matmul(np.ones((3, 0), dtype), np.ones((0, 4), dtype)) == 0).all()  # K = 0: zeros
        assert gemm.matmul(np.ones((0, 5), dtype), np.ones((5, 4), dtype)).shape == (0, 4)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)"):
        gemm.matmul(np.zeros((3, 4), np.float32), np.zeros((5, 2), np.float32))
    with pytest.raises(TypeError, match="float32 and float64"):
        gemm.matmul(np.zeros((3, 4), np.float32), np.zeros((4, 2), np.float64))
    with pytest.raises(RuntimeError, match="dmma computes float64 only, not float32"):
        gemm.matmul(np.zeros((3, 4), np.float32), np.zeros((4, 2), np.float32), kernel="dmma")
    with pytest.raises(ValueError, match="unknown GEMM kernel 'fastest'"):
        gemm.matmul(np.zeros((3, 4), np.float32), np.zeros((4, 2), np.float32), kernel="fastest")
    with pytest.raises(TypeError, match="two arrays of that device"):
        gemm.matmul([[1.0]], np.zeros((1, 1), np.float32))


class _Emulated(EmulatedRuntime):
    """"emu" with its own device key, so this test's tuning starts from nothing."""

    @property
    def facts(self):
        real = EmulatedRuntime.facts.func(self)
        return type(real)(real.name, real.cc, real.sm_count, "emu-under-test")


def test_autotuned_dispatch_end_to_end(monkeypatch, tmp_path):
    """kernel="auto" with tuning on: every candidate runs (emulated) on the real
    operands, its output is checked against the first's, and the choice is cached."""
    monkeypatch.setenv("TINYGRAD_DOT_AUTOTUNE", "1")
    dispatch = gemm.GemmDispatch(_Emulated(), autotune.Autotuner(autotune.TuningCache(tmp_path / "autotune.json")))
    rng = np.random.default_rng(12)
    a = rng.standard_normal((40, 33)).astype(np.float32)
    b = rng.standard_normal((33, 20)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no candidate dropped
        c = dispatch.matmul(a, b.T.copy().T, kernel="auto")
    assert max_rel_error(c, a.astype(np.float64) @ b) < TOL[configs.F32]
    (entry,) = json.loads((tmp_path / "autotune.json").read_text())["devices"]["emu-under-test"].values()
    assert len(entry["timings_ms"]) == len(configs.CANDIDATES[configs.F32])  # none dropped


class _Activated(_Emulated):
    """Records whether this device was made current around each launch, allocation
    and reference product (on a GPU: the operands' device, not whichever is current)."""

    def __init__(self):
        super().__init__()
        self.depth, self.seen = 0, []

    @contextlib.contextmanager
    def activate(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def function(self, source, expression):
        real = super().function(source, expression)

        def kernel(grid, block, args, shared_mem=0):
            self.seen.append(("launch", self.depth))
            return real(grid, block, args)

        return kernel

    def empty(self, shape, dtype):
        self.seen.append(("empty", self.depth))
        return super().empty(shape, dtype)

    def reference_matmul(self, a, b):
        self.seen.append(("cublas", self.depth))
        return super().reference_matmul(a, b)


def test_launches_allocations_and_the_reference_run_on_the_operands_device():
    runtime = _Activated()
    dispatch = gemm.GemmDispatch(runtime)
    a, b = np.ones((5, 3), np.float32), np.ones((3, 4), np.float32)
    for kernel in ("warp_tiled", "warp_tiled", "cublas"):  # planned, cached, reference
        assert (dispatch.matmul(a, b, kernel) == 3).all()
    assert runtime.seen and all(depth == 1 for _, depth in runtime.seen), runtime.seen
    assert {what for what, _ in runtime.seen} == {"launch", "empty", "cublas"}


def test_prepare_launches_into_its_output():
    """gemm.prepare: the launcher the benchmark times and the GPU tests drive."""
    rng = np.random.default_rng(13)
    a, b = rng.standard_normal((33, 65)).astype(np.float32), rng.standard_normal((65, 7)).astype(np.float32)
    launcher = gemm.prepare(a, b, kernel="warp_tiled")
    assert launcher.config == configs.DEFAULTS[configs.F32]["warp_tiled"]
    launcher.out.fill(np.nan)
    assert launcher() is launcher.out and max_rel_error(launcher.out, a.astype(np.float64) @ b) < TOL[configs.F32]
    assert gemm.prepare(a, b, kernel="cublas")().shape == (33, 7)
