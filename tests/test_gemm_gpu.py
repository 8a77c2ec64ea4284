"""GPU tests of the project's GEMM kernels (marker `gpu`; skipped without a GPU).

Every rung x dtype x layout on odd sizes (1, 7, 33, 127, 129, 1000, each in each
of M, N, K), batched and broadcast cases, misaligned operands, the batch split
past the grid limit, the autotuner end to end and the cuBLAS reference, all
against float64 NumPy. Outputs are poisoned with NaN (the tests run on a CUDA
runtime whose buffers come NaN-filled), so an element a kernel skips fails.
"""
import json

import numpy as np
import pytest

from tinygrad_dot import gemm
from tinygrad_dot.gemm import configs

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not gemm.available(),
                                 reason="needs CuPy and an NVIDIA GPU (install the cuda12 or cuda13 extra)")]

SHAPES = [(1, 7, 33), (7, 33, 127), (33, 127, 129), (127, 129, 1000), (129, 1000, 1), (1000, 1, 7)]
TOL = {configs.F32: 1e-5, configs.F64: 1e-12}


def poisoned_runtime(device_id: int):
    """The GPU's runtime, except that its output buffers come filled with NaN."""
    from tinygrad_dot.runtime.cuda import CudaRuntime

    class Poisoned(CudaRuntime):
        def empty(self, shape, dtype):
            out = super().empty(shape, dtype)
            out.fill(np.nan)
            return out

    return Poisoned(device_id)


@pytest.fixture(scope="module")
def cp():
    """CuPy, with every variant these tests launch compiled up front in parallel."""
    import cupy

    runtime = gemm.dispatcher(f"cuda:{cupy.cuda.Device().id}").runtime
    runtime.precompile([cfg.instantiation(dtype, layout[0] == "T", layout[1] == "T")
                        for dtype in (configs.F32, configs.F64)
                        for cfg in dict.fromkeys([*configs.DEFAULTS[dtype].values(), *configs.UNTUNED[dtype]])
                        if runtime.facts.cc >= configs.RUNGS[cfg.rung].min_sm and not cfg.problems(dtype)
                        for layout in configs.LAYOUTS])
    return cupy


@pytest.fixture(scope="module")
def poisoned(cp):
    return gemm.GemmDispatch(poisoned_runtime(cp.cuda.Device().id))


def host_operand(rng, rows, cols, dtype, trans):
    m = rng.standard_normal((cols, rows) if trans else (rows, cols)).astype(dtype)
    return m.T if trans else m


def to_device(cp, x):
    """Same strides on the device (a transposed host view stays a transposed view)."""
    if x.flags.c_contiguous:
        return cp.asarray(x)
    return cp.asarray(np.ascontiguousarray(x.T)).T


def check(cp, a, b, kernel, dispatch):
    c = dispatch.matmul(a, b, kernel)
    ref = np.matmul(cp.asnumpy(a).astype(np.float64), cp.asnumpy(b).astype(np.float64))
    assert c.shape == ref.shape and c.dtype == a.dtype and c.flags.c_contiguous
    host = cp.asnumpy(c)
    err = float(np.max(np.abs(host - ref)) / max(np.max(np.abs(ref)), 1e-30)) if ref.size else 0.0
    assert err < TOL[a.dtype], f"{kernel} {a.dtype} {a.shape}@{b.shape}: relative error {err:.3g}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("layout", configs.LAYOUTS)
@pytest.mark.parametrize("kernel", gemm.kernel_names() + ["auto", "cublas"])
def test_odd_sizes_all_layouts(cp, poisoned, kernel, layout, dtype, monkeypatch):
    if kernel in gemm.kernel_names() and kernel not in gemm.kernel_names(dtype):
        pytest.skip(f"{kernel} does not compute {np.dtype(dtype).name}")
    monkeypatch.setenv("TINYGRAD_DOT_AUTOTUNE", "0")  # "auto" = the untuned shape-class choice here
    rng = np.random.default_rng(1)
    for M, N, K in SHAPES:
        a = to_device(cp, host_operand(rng, M, K, dtype, layout[0] == "T"))
        b = to_device(cp, host_operand(rng, K, N, dtype, layout[1] == "T"))
        check(cp, a, b, kernel, poisoned)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kernel", gemm.kernel_names())
def test_batched_broadcast_and_misaligned(cp, poisoned, kernel, dtype):
    if kernel not in gemm.kernel_names(dtype):
        pytest.skip(f"{kernel} does not compute {np.dtype(dtype).name}")
    rng = np.random.default_rng(2)
    a = cp.asarray(rng.standard_normal((4, 129, 127)).astype(dtype))
    check(cp, a, cp.asarray(rng.standard_normal((127, 33)).astype(dtype)), kernel, poisoned)  # broadcast b, one launch
    check(cp, cp.swapaxes(a, 1, 2), cp.asarray(rng.standard_normal((4, 129, 7)).astype(dtype)), kernel, poisoned)  # A^T B
    check(cp, cp.asarray(rng.standard_normal((2, 1, 7, 33)).astype(dtype)),
          cp.asarray(rng.standard_normal((3, 33, 127)).astype(dtype)), kernel, poisoned)  # materialized
    flat = cp.asarray(rng.standard_normal(130 * 128 + 1).astype(dtype))
    mis = flat[1:].reshape(130, 128)[:, :127]  # pointer off 16-byte alignment, ld 128
    check(cp, mis, cp.asarray(rng.standard_normal((127, 129)).astype(dtype)), kernel, poisoned)


def _all_config_params():
    return [pytest.param(dtype, cfg, id=f"{dtype.name}-{cfg.label()}")
            for dtype in (configs.F32, configs.F64) for cfg in configs.all_configs(dtype)]


@pytest.mark.parametrize("dtype, cfg", _all_config_params())
def test_every_config_through_the_launch_path(cp, poisoned, dtype, cfg):
    """Every config the autotuner may pick (not only the rung defaults), each layout,
    odd shapes, launched by gemm.prepare's launcher into a NaN-poisoned output."""
    runtime = poisoned.runtime
    if runtime.facts.cc < configs.RUNGS[cfg.rung].min_sm:
        pytest.skip(f"{cfg.rung} needs sm_{configs.RUNGS[cfg.rung].min_sm}")
    runtime.precompile([cfg.instantiation(dtype, layout[0] == "T", layout[1] == "T") for layout in configs.LAYOUTS])
    rng = np.random.default_rng(5)
    for layout in configs.LAYOUTS:
        for M, N, K in ((33, 127, 129), (129, 7, 1000), (1, 33, 7)):
            a = to_device(cp, host_operand(rng, M, K, dtype, layout[0] == "T"))
            b = to_device(cp, host_operand(rng, K, N, dtype, layout[1] == "T"))
            launcher = gemm.prepare(a, b, kernel=cfg, runtime=runtime)
            assert not launcher.call.copies  # (M = 1 may read as another layout: still in place)
            launcher.out.fill(np.nan)
            launcher()
            ref = cp.asnumpy(a).astype(np.float64) @ cp.asnumpy(b).astype(np.float64)
            host = cp.asnumpy(launcher.out)
            err = float(np.max(np.abs(host - ref)) / max(np.max(np.abs(ref)), 1e-30))
            assert err < TOL[dtype], f"{cfg.label()} {layout} {M}x{N}x{K}: relative error {err:.3g}"


def test_batch_past_the_grid_limit(cp, poisoned):
    rng = np.random.default_rng(3)
    a = cp.asarray(rng.standard_normal((70000, 3, 5)).astype(np.float32))
    check(cp, a, cp.asarray(rng.standard_normal((5, 2)).astype(np.float32)), "cp_async", poisoned)


@pytest.mark.parametrize("kernel", ["smem_tiled", "cp_async"])
def test_rows_past_the_grid_limit(cp, poisoned, kernel):
    """M over 65535 row tiles: the rows are split over launches on the host."""
    bm = configs.DEFAULTS[configs.F32][kernel].block_tile[0]
    rng = np.random.default_rng(6)
    a = cp.asarray(rng.standard_normal((bm * 65535 + 37, 3)).astype(np.float32))
    check(cp, a, cp.asarray(rng.standard_normal((3, 2)).astype(np.float32)), kernel, poisoned)
    check(cp, a[:, :2], cp.asarray(rng.standard_normal((2, 5)).astype(np.float32)).T.copy().T, kernel, poisoned)


def test_autotuner_end_to_end(cp, tmp_path, monkeypatch):
    from tinygrad_dot.gemm import autotune

    monkeypatch.setenv("TINYGRAD_DOT_CACHE_DIR", str(tmp_path))
    dispatch = gemm.GemmDispatch(poisoned_runtime(cp.cuda.Device().id), autotune.Autotuner())
    rng = np.random.default_rng(4)
    a = cp.asarray(rng.standard_normal((512, 384)).astype(np.float32))
    b = cp.asarray(rng.standard_normal((384, 256)).astype(np.float32))
    check(cp, a, b, "auto", dispatch)
    data = json.loads((tmp_path / "autotune.json").read_text())
    (dev, entries), = data["devices"].items()
    assert dev == dispatch.runtime.facts.key
    (key, choice), = entries.items()
    assert key.startswith("float32|NN|") and choice["timings_ms"]
    from tinygrad_dot.gemm import nvrtc

    if nvrtc.available():  # without our own libnvrtc, CuPy compiles and caches in its own directory
        assert list((tmp_path / "cubin").glob("*.cubin")), "compiled modules were not cached on disk"
    check(cp, a, b, "auto", gemm.GemmDispatch(dispatch.runtime, autotune.Autotuner()))  # a new process: the cache
    assert len(json.loads((tmp_path / "autotune.json").read_text())["devices"][dev]) == 1


def test_bad_input_is_reported(cp):
    a = cp.zeros((3, 4), cp.float32)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)"):
        gemm.matmul(a, cp.zeros((5, 2), cp.float32))
    with pytest.raises(TypeError, match="float32 and float64"):
        gemm.matmul(a, cp.zeros((4, 2), cp.float64))
    with pytest.raises(ValueError, match="unknown GEMM kernel"):
        gemm.matmul(a, cp.zeros((4, 2), cp.float32), kernel="fastest")
