"""From a matmul call to kernel launches, on any kernel runtime, at launch speed.

A first call for an operand signature (shapes, strides, dtypes, kernel choice)
validates, plans (plan.py), chooses the config (autotuned for kernel="auto"),
loads the kernel and builds every launch's arguments except the three operand
addresses. That ``GemmCall`` is cached on the dispatcher of the device, so a later
call with the same signature is a dictionary lookup, the output allocation, three
addresses and the launches: no planning, no NumPy scalars, no string formatting,
no file or environment reads.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..runtime import graphs
from . import configs, plan as _plan
from .autotune import Autotuner

_FLOATS = (configs.F32, configs.F64)
_MAX_CACHED_CALLS = 4096  # distinct operand signatures kept per device (a training run has a handful)


@dataclass
class Launch:
    """One kernel launch of a call: everything but the operand addresses."""
    kernel: object      # the runtime's launchable function
    grid: tuple
    block: tuple
    args: tuple         # packed arguments (configs.GEMM_SIGNATURE), zeros in the address slots
    offsets: tuple      # bytes from A's, B's and C's start to this launch's first element


class GemmCall:
    """The cached plan of one operand signature on one device."""

    __slots__ = ("runtime", "plan", "config", "dtype", "out_shape", "launches", "copies", "zero_fill", "single")

    def __init__(self, runtime, p: _plan.MatmulPlan, cfg: configs.KernelConfig | None, dtype):
        self.runtime, self.plan, self.config, self.dtype = runtime, p, cfg, dtype
        self.out_shape = p.out_shape
        self.copies = p.a.copy or p.b.copy
        empty = p.M * p.N * p.batch == 0
        self.zero_fill = not empty and p.K == 0   # an empty sum: zeros, nothing to launch
        self.launches = [] if cfg is None or empty or p.K == 0 else launches(runtime, p, cfg, dtype)
        # The usual case, one launch at the operands' starts: the arrays themselves
        # are the address arguments (CuPy reads an array's pointer in C; the
        # emulator likewise), and the call needs no arithmetic on them.
        only = self.launches[0] if len(self.launches) == 1 else None
        self.single = only if only is not None and not any(only.offsets) else None

    def operands(self, a, b):
        return launch_operands(self.runtime.xp, self.plan, a, b)

    def launch_into(self, a, b, c) -> None:
        """Compute a @ b into c, operands already in their launch form (see operands)."""
        if self.zero_fill:
            c.fill(0)
            return
        k = self.single
        if k is not None:
            s = k.args  # GEMM_SIGNATURE: (M, N, K, A, lda, bsa, B, ldb, bsb, C, ldc, bsc, batch)
            k.kernel(k.grid, k.block, (s[0], s[1], s[2], a, s[4], s[5], b, s[7], s[8], c, s[10], s[11], s[12]))
            return
        if not self.launches:  # an empty product
            return
        pointer = self.runtime.pointer
        pa, pb, pc = pointer(a), pointer(b), pointer(c)
        for k in self.launches:
            s, (oa, ob, oc) = k.args, k.offsets
            k.kernel(k.grid, k.block, (s[0], s[1], s[2], pa + oa, s[4], s[5], pb + ob, s[7], s[8], pc + oc,
                                       s[10], s[11], s[12]))

    def __call__(self, a, b):
        if self.copies:
            a, b = self.operands(a, b)
        c = self.runtime.empty(self.out_shape, self.dtype)
        self.launch_into(a, b, c)
        return c


class ReferenceCall(GemmCall):
    """kernel="cublas": the vendor library's matmul (NumPy's on "emu"), the reference
    for tests and benchmarks, into a C-contiguous array like ours."""

    __slots__ = ()

    def __call__(self, a, b):
        return self.runtime.xp.ascontiguousarray(self.runtime.reference_matmul(a, b))

    def launch_into(self, a, b, c) -> None:
        c[...] = self.runtime.reference_matmul(a, b)


def launch_operands(xp, p: _plan.MatmulPlan, a, b):
    """a and b as the launches read them: a compact copy where the plan asks for one."""
    return (_plan.materialize(xp, a, p.batch_shape) if p.a.copy else a,
            _plan.materialize(xp, b, p.batch_shape) if p.b.copy else b)


def launches(runtime, p: _plan.MatmulPlan, cfg: configs.KernelConfig, dtype) -> list:
    """The launches of plan p with config cfg: the rows split past the grid's y limit
    and the batch past its z limit (the host offsets the operand addresses per
    launch), each launch's arguments packed once."""
    source, expr = cfg.instantiation(dtype, p.a.trans, p.b.trans)
    kernel = runtime.function(source, expr)
    out, size = [], np.dtype(dtype).itemsize
    for m0, rows in _plan.row_chunks(p.M, cfg.block_tile[0]):
        a_row, c_row = _plan.row_offset(p.a, m0), m0 * p.N
        for z0, count in _plan.batch_chunks(p.batch):
            args = configs.GEMM_SIGNATURE.pack((rows, p.N, p.K, 0, p.a.ld, p.a.batch_stride, 0, p.b.ld,
                                                p.b.batch_stride, 0, p.N, p.M * p.N, count))
            offsets = ((a_row + z0 * p.a.batch_stride) * size, z0 * p.b.batch_stride * size,
                       (c_row + z0 * p.M * p.N) * size)
            out.append(Launch(kernel, cfg.grid(rows, p.N, count), (cfg.threads, 1, 1), args, offsets))
    return out


def instantiations() -> dict:
    """{kernels/ source: every instantiation of it the package can launch}."""
    out = {}
    for dtype in _FLOATS:
        for cfg in configs.all_configs(dtype):
            for layout in configs.LAYOUTS:
                source, expr = cfg.instantiation(dtype, layout[0] == "T", layout[1] == "T")
                out.setdefault(source, []).append(expr)
    return out


class _Tuning:
    """The autotuner's runner (autotune.Runner) for one problem on one device."""

    def __init__(self, runtime, p: _plan.MatmulPlan, dtype, a, b, c):
        facts = runtime.facts
        self.key, self.cc, self.sm_count = facts.key, facts.cc, facts.sm_count
        self.dtype, self.layout, self.M, self.N, self.K, self.batch = dtype, p.layout, p.M, p.N, p.K, p.batch
        self.runtime, self.plan, self.operands, self.c = runtime, p, (a, b), c

    def precompile(self, cands):
        self.runtime.precompile([cfg.instantiation(self.dtype, self.plan.a.trans, self.plan.b.trans)
                                 for cfg in cands])

    def launch(self, cfg):
        GemmCall(self.runtime, self.plan, cfg, self.dtype).launch_into(*self.operands, self.c)

    def output(self):
        return self.c

    def time_ms(self, fn, n):
        return self.runtime.time_ms(fn, n)


_process_autotuner = None


def process_autotuner() -> Autotuner:
    """The process's autotuner (its cache file is read when it is first needed)."""
    global _process_autotuner
    if _process_autotuner is None:
        _process_autotuner = Autotuner()
    return _process_autotuner


class GemmDispatch:
    """matmul on one device's runtime, with its cache of planned calls."""

    def __init__(self, runtime, autotuner: Autotuner | None = None):
        self.runtime = runtime
        self.autotuner = autotuner
        self._calls = {}
        self._owns, self._activate = runtime.owns, runtime.activate
        for source, exprs in instantiations().items():
            runtime.declare(source, exprs)
        from . import skinny  # (it builds on GemmCall, defined here)

        runtime.declare(skinny.SOURCE, skinny.instantiations())

    def matmul(self, a, b, kernel="auto"):
        """a @ b (numpy.matmul rules, at least 2-D, two float32 or two float64 arrays of
        this device) into a new C-contiguous array."""
        try:
            call = self._calls.get((a.shape, a.strides, b.shape, b.strides, a.dtype, b.dtype, kernel))
        except (AttributeError, TypeError):  # not arrays, or an unhashable kernel: plan() says what is wrong
            call = None
        if call is None or not (self._owns(a) and self._owns(b)):
            call = self.plan(a, b, kernel)
        with self._activate():
            return call(a, b)

    @property
    def planned(self) -> list:
        """The operand signatures with a cached plan: (a.shape, a.strides, b.shape,
        b.strides, a.dtype, b.dtype, kernel) each."""
        return list(self._calls)

    def forget(self) -> None:
        """Drop every cached plan (the next call of each signature plans again)."""
        self._calls.clear()

    def plan(self, a, b, kernel="auto") -> GemmCall:
        """The call for this operand signature, from the cache or planned (and cached)."""
        self._check(a, b, kernel)
        key = (a.shape, a.strides, b.shape, b.strides, a.dtype, b.dtype, kernel)
        call = self._calls.get(key)
        if call is None:
            if graphs.capturing(self.runtime.name):  # planning may autotune: never inside a CUDA graph
                raise graphs.not_warmed_up(self.runtime.name, a, b, kernel)
            p = _plan.plan_matmul(a.shape, a.strides, b.shape, b.strides, a.itemsize)
            with self.runtime.activate():
                if kernel == "cublas":
                    call = ReferenceCall(self.runtime, p, None, a.dtype)
                else:  # a linear model's skinny products have kernels of their own (gemm/skinny.py)
                    from . import skinny

                    call = (skinny.plan(self.runtime, p, a.dtype) if kernel == "auto" else None) or \
                        GemmCall(self.runtime, p, self._config(p, a, b, kernel), a.dtype)
            if len(self._calls) >= _MAX_CACHED_CALLS:  # a program sweeping shapes: start over
                self._calls.clear()
            self._calls[key] = call
        return call

    def _check(self, a, b, kernel):
        rt = self.runtime
        if not (rt.owns(a) and rt.owns(b)):
            raise TypeError(f"matmul on {rt.name} takes two arrays of that device, got {_describe(a)} and "
                            f"{_describe(b)}")
        if a.dtype != b.dtype or a.dtype not in _FLOATS:
            raise TypeError(f"matmul on {rt.name} needs two float32 or two float64 arrays, got {a.dtype} and "
                            f"{b.dtype} (shapes {a.shape} and {b.shape})")
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"matmul operands need at least 2 dimensions, got shapes {a.shape} and {b.shape}")
        if not (isinstance(kernel, str) and (kernel in ("auto", "cublas") or kernel in configs.RUNGS)
                or isinstance(kernel, configs.KernelConfig)):
            raise ValueError(f"unknown GEMM kernel {kernel!r}; choose 'auto', 'cublas', one of "
                             f"{list(configs.RUNGS)} or a gemm.configs.KernelConfig")

    def _config(self, p, a, b, kernel) -> configs.KernelConfig | None:
        """The config the launches use (None when there is nothing to launch)."""
        if p.M * p.N * p.batch == 0 or p.K == 0:
            return None
        facts = self.runtime.facts
        if kernel == "auto":
            a, b = launch_operands(self.runtime.xp, p, a, b)
            c = self.runtime.empty(p.out_shape, a.dtype)
            return (self.autotuner or process_autotuner()).choose(_Tuning(self.runtime, p, a.dtype, a, b, c))
        cfg = kernel if isinstance(kernel, configs.KernelConfig) else configs.DEFAULTS[a.dtype][kernel]
        problems = cfg.problems(a.dtype)
        if facts.cc < configs.RUNGS[cfg.rung].min_sm:
            problems.append(f"needs compute capability {configs.RUNGS[cfg.rung].min_sm / 10:.1f}+, "
                            f"{facts.name} has {facts.cc / 10:.1f}")
        if problems:
            raise RuntimeError(f"GEMM kernel {cfg.label()} cannot run {a.dtype} here: {'; '.join(problems)}")
        return cfg


def _describe(x) -> str:
    return f"{type(x).__module__}.{type(x).__name__} of shape {getattr(x, 'shape', '?')}"
