"""The project's own GEMM on NVIDIA GPUs (CUDA cores), with a CPU-only core.

    matmul(a, b, kernel="auto")  C = a @ b for cupy arrays (numpy.matmul rules)
    kernel_names()               the ladder's rungs, selectable by name
    available()                  CuPy importable and a GPU present (never raises)

CuPy is imported lazily: this package imports without it. Operands are read in
place through their strides (A^T, B^T views need no copy); a batch is one launch
(split only past the grid's 65535 limit, as is an M past 65535 row tiles); kernel="cublas" returns cupy.matmul,
the reference for tests and benchmarks.
"""
from __future__ import annotations

import numpy as np

from . import configs, plan as _plan, sources

__all__ = ["matmul", "kernel_names", "available", "device_info"]

_autotuner = None


def kernel_names() -> list:
    return list(configs.RUNGS)


def available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, no driver, no device: all mean "not available"
        return False


_device_info = {}


def device_info(device_id: int) -> dict:
    """name, cc (e.g. 90), sm_count and the autotune device key of a GPU."""
    if device_id not in _device_info:
        import cupy

        from . import nvrtc

        props = cupy.cuda.runtime.getDeviceProperties(device_id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        cc = props["major"] * 10 + props["minor"]
        nv = nvrtc.version() if nvrtc.available() else cupy.cuda.nvrtc.getVersion()
        from .autotune import device_key

        _device_info[device_id] = dict(name=name, cc=cc, sm_count=props["multiProcessorCount"],
                                       key=device_key(name, cc, cupy.__version__, nv, sources.kernels_sha256()))
    return _device_info[device_id]


def _check_operands(cupy, a, b):
    if not isinstance(a, cupy.ndarray) or not isinstance(b, cupy.ndarray):
        raise TypeError(f"gemm.matmul takes two cupy arrays, got {type(a).__name__} and {type(b).__name__}")
    if a.dtype != b.dtype or a.dtype not in (configs.F32, configs.F64):
        raise TypeError(f"gemm.matmul needs two float32 or two float64 arrays, got {a.dtype} and {b.dtype} "
                        f"(shapes {a.shape} and {b.shape})")
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"gemm.matmul operands need at least 2 dimensions, got shapes {a.shape} and {b.shape}")
    if a.device.id != b.device.id:
        raise ValueError(f"gemm.matmul operands are on different devices: cuda:{a.device.id} (shape {a.shape}) "
                         f"and cuda:{b.device.id} (shape {b.shape})")


def _launch(cfg, p, a, b, c, cc: int):
    from .compile import get_kernel

    kernel = get_kernel(cfg, c.dtype.str, p.a.trans, p.b.trans, cc, c.device.id)
    item = c.dtype.itemsize
    for m0, rows in _plan.row_chunks(p.M, cfg.block_tile[0]):
        a_row, c_row = _plan.row_offset(p.a, m0), m0 * p.N
        for z0, count in _plan.batch_chunks(p.batch):
            args = (np.int32(rows), np.int32(p.N), np.int32(p.K),
                    np.uint64(a.data.ptr + (a_row + z0 * p.a.batch_stride) * item), np.int64(p.a.ld),
                    np.int64(p.a.batch_stride),
                    np.uint64(b.data.ptr + z0 * p.b.batch_stride * item), np.int64(p.b.ld), np.int64(p.b.batch_stride),
                    np.uint64(c.data.ptr + (c_row + z0 * p.M * p.N) * item), np.int64(p.N), np.int64(p.M * p.N),
                    np.int32(count))
            kernel(cfg.grid(rows, p.N, count), (cfg.threads,), args)


def matmul(a, b, *, kernel: str = "auto"):
    """a @ b on the GPU with the project's kernels. a: (..., M, K), b: (..., K, N),
    same dtype (float32 or float64), batch dims broadcast as numpy.matmul does.
    Returns a new C-contiguous (..., M, N) cupy array of that dtype.
    kernel: "auto" (autotuned fastest), a rung from kernel_names(), or "cublas"."""
    import cupy

    _check_operands(cupy, a, b)
    if kernel == "cublas":
        _plan.plan_matmul(a.shape, a.strides, b.shape, b.strides, a.itemsize)  # same shape errors
        with a.device:  # the operands' GPU, not whichever is current
            return cupy.ascontiguousarray(cupy.matmul(a, b))
    with a.device:
        c, run = _prepare(cupy, a, b, kernel)
        if run is not None:
            run()
    return c


def _prepare(cupy, a, b, kernel: str):
    """Everything of matmul but the launch: (c, run) where run() launches the chosen
    kernel into c with the plan and config fixed (None when nothing needs launching).
    The benchmark times run() so host-side planning is not counted per launch.
    Call it (and run) inside `with a.device:`."""
    if kernel != "auto" and kernel not in configs.RUNGS:
        raise ValueError(f"unknown GEMM kernel {kernel!r}; choose 'auto', 'cublas' or one of {kernel_names()}")
    p, a, b = _plan.plan_operands(cupy, a, b)
    c = cupy.empty(p.out_shape, a.dtype)
    if c.size == 0:
        return c, None
    if p.K == 0:
        c.fill(0)
        return c, None
    info = device_info(a.device.id)
    if kernel == "auto":
        global _autotuner
        if _autotuner is None:
            from .autotune import Autotuner

            _autotuner = Autotuner()
        from .compile import precompile

        cfg = _autotuner.choose(
            info["key"], a.dtype, p.layout, p.M, p.N, p.K, p.batch, info["cc"], info["sm_count"],
            launch=lambda cand: _launch(cand, p, a, b, c, info["cc"]),
            precompile=lambda cands: precompile([(x, a.dtype, p.a.trans, p.b.trans) for x in cands], info["cc"]),
            result=lambda: c)
    else:
        cfg = configs.DEFAULTS[a.dtype][kernel]
        if info["cc"] < configs.RUNGS[kernel].min_sm:
            raise RuntimeError(f"GEMM kernel {kernel!r} needs compute capability "
                               f"{configs.RUNGS[kernel].min_sm / 10:.1f}+, {info['name']} has {info['cc'] / 10:.1f}")
    return c, lambda: _launch(cfg, p, a, b, c, info["cc"])
