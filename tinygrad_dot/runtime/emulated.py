"""Device "emu": the project's CUDA kernels run on the CPU.

The kernels/ sources are compiled by the host C++ compiler with cuda_emulation.h
force-included: every CUDA thread of a block is a fiber and __syncthreads a real
barrier; blocks are spread over the CPU's cores. Buffers are NumPy arrays.
Everything above the kernels (planning, autotuning, argument packing, launch
checks) is the code a GPU runs, so this device is for learning (step through a
real GEMM in a debugger), for CI, and for checking a kernel change without a GPU.
It is slow: a 256 x 256 x 256 product takes on the order of a second.

Builds: one shared library per kernels/ source, holding every instantiation asked
for with it, made once into <cache>/emulation/<hash of everything that goes in>
and loaded from there by later processes. A launch is checked against CUDA's
limits (grid, threads per block) before it runs, and fresh output buffers are
poisoned with NaN, so a kernel that skips an element shows.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
import warnings
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from . import MAX_BLOCK_THREADS, MAX_GRID, DeviceFacts, Runtime
from . import recording

HEADER = Path(__file__).with_name("cuda_emulation.h")
CXXFLAGS = ("-std=c++20", "-O2", "-fPIC", "-shared", "-pthread", "-Wall", "-Wno-unknown-pragmas",
            "-Wno-unused-variable", "-Wno-unused-but-set-variable")
EMULATED_CC = 90  # the architecture the kernels are built for: every rung, cp.async included
ENTRY = ("extern \"C\" int {symbol}(void** args, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,\n"
         "                          unsigned bz, int workers, char* err, size_t err_len) {{\n"
         "    return td_emu::launch_kernel(&{expression}, args, dim3(gx, gy, gz), dim3(bx, by, bz), workers,\n"
         "                                 err, err_len);\n}}\n")


def compiler() -> str:
    """The host C++ compiler: $CXX, else g++."""
    return os.environ.get("CXX") or "g++"


@lru_cache(maxsize=None)
def compiler_version(cxx: str) -> str:
    try:
        out = subprocess.run([cxx, "-dumpfullversion", "-dumpversion"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise RuntimeError(f"device 'emu' builds the CUDA kernels with a host C++ compiler, and {cxx!r} does not "
                           f"run ({e}); install g++ (or set CXX to a C++20 compiler)") from None
    return f"{Path(cxx).name}-{out.stdout.strip()}"


def _glue(source: str, expressions: list) -> str:
    from ..gemm import sources

    lines = [f'#include "{sources.kernels_dir() / source}"', ""]
    lines += [ENTRY.format(symbol=f"td_emu_{i}", expression=expr) for i, expr in enumerate(expressions)]
    return "\n".join(lines)


def _build_key(source: str, expressions: list, cxx: str) -> str:
    from ..gemm import sources

    h = hashlib.sha256()
    for part in (sources.kernels_sha256(), HEADER.read_text(), ENTRY, " ".join(CXXFLAGS), compiler_version(cxx),
                 source, "\n".join(expressions)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


_built = {}  # build key -> library, for this process


def build_library(source: str, expressions: list) -> Path:
    """The shared library of these instantiations (built on a cache miss; atomic, so
    processes building at once never load half a library)."""
    from ..gemm import sources

    cxx = compiler()
    key = _build_key(source, expressions, cxx)
    if key in _built and _built[key].exists():  # built by this process (perhaps under another cache folder)
        return _built[key]
    out_dir = sources.cache_root() / "emulation" / key
    so = out_dir / "kernels.so"
    if so.exists():
        _built[key] = so
        return so
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # an unwritable or misplaced cache folder: build for this process only
        out_dir = _scratch_dir() / key
        warnings.warn(f"device 'emu': cannot write the build cache under {sources.cache_root()} "
                      f"({type(e).__name__}: {e}); building into {out_dir} for this process", RuntimeWarning,
                      stacklevel=2)
        so = out_dir / "kernels.so"
        if so.exists():
            return so
        out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        cpp = Path(tmp) / (Path(source).stem + ".cpp")
        cpp.write_text(_glue(source, expressions))
        tmp_so = Path(tmp) / so.name
        cmd = [cxx, *CXXFLAGS, "-include", str(HEADER), str(cpp), "-o", str(tmp_so)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"building the emulated kernels of {source} failed:\n{' '.join(cmd)}\n"
                               f"{proc.stdout}{proc.stderr}")
        os.replace(tmp_so, so)
    _built[key] = so
    return so


@lru_cache(maxsize=None)
def _scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="tinygrad_dot-emu-"))


def _argument(value):
    """A packed launch argument as the bytes a kernel parameter holds: 4 for a NumPy
    int32, 8 for a Python int (an address or a 64-bit int), and an array's address
    for an array, as CuPy passes them."""
    if isinstance(value, np.ndarray):
        return np.array(value.ctypes.data, dtype=np.uint64)
    if isinstance(value, np.generic):
        return np.array(value)
    if isinstance(value, int):
        return np.array(value if value < 2**63 else value - 2**64, dtype=np.int64)
    raise TypeError(f"a kernel argument must be an int or a NumPy scalar, got {type(value).__name__}")


class EmulatedKernel:
    """One instantiation, called like CuPy's Function: kernel(grid, block, args)."""

    def __init__(self, entry, expression: str):
        self._entry = entry
        self._entry.restype = ctypes.c_int
        self.expression = expression

    def __call__(self, grid, block, args, shared_mem: int = 0):
        grid, block = _dims(grid), _dims(block)
        problems = [f"grid {d} = {g} > {limit}" for d, g, limit in zip("xyz", grid, MAX_GRID) if g > limit]
        if block[0] * block[1] * block[2] > MAX_BLOCK_THREADS:
            problems.append(f"{block[0] * block[1] * block[2]} threads per block > {MAX_BLOCK_THREADS}")
        if min(grid + block) < 1:
            problems.append("an empty grid or block")
        if problems:  # what cuLaunchKernel refuses with CUDA_ERROR_INVALID_VALUE
            raise ValueError(f"launch of {self.expression} refused: {'; '.join(problems)}")
        capture = recording._state  # a CUDA graph capturing: this launch becomes one of its steps
        if capture is not None:
            capture.before_launch(self, args)
        values = [_argument(v) for v in args]  # kept alive through the call
        pointers = (ctypes.c_void_p * max(1, len(values)))(*(v.ctypes.data for v in values))
        err = ctypes.create_string_buffer(512)
        rc = self._entry(pointers, *map(ctypes.c_uint, grid + block), ctypes.c_int(os.cpu_count() or 1), err,
                         ctypes.c_size_t(len(err)))
        if rc:
            raise RuntimeError(f"emulated {self.expression} failed: {err.value.decode()}")
        if capture is not None:
            capture.add_launch(self, grid, block, args)


def _dims(d) -> tuple:
    d = (d,) if isinstance(d, int) else tuple(d)
    return tuple(int(x) for x in d) + (1,) * (3 - len(d))


class EmulatedRuntime(Runtime):
    """The kernel runtime of device "emu" (see the module docstring)."""

    name = "emu"
    xp = np

    def __init__(self):
        self._functions = {}
        self._declared = {}
        self._lock = threading.Lock()

    @cached_property
    def facts(self) -> DeviceFacts:
        from ..gemm import sources

        cxx = compiler_version(compiler())
        emu = hashlib.sha256(HEADER.read_bytes() + ENTRY.encode()).hexdigest()[:8]
        return DeviceFacts(name=f"emulated on the CPU ({cxx})", cc=EMULATED_CC, sm_count=os.cpu_count() or 1,
                           key=f"emulated|sm_{EMULATED_CC}|{cxx}|emu-{emu}|kernels-{sources.kernels_sha256()[:16]}")

    def declare(self, source: str, expressions) -> None:
        """One compiler run builds every declared instantiation of a source together
        (the first time any of them is needed), not one run per instantiation."""
        self._declared[source] = list(dict.fromkeys(expressions))

    def function(self, source: str, expression: str):
        fn = self._functions.get((source, expression))
        if fn is None:
            self.precompile([(source, expression)])
            fn = self._functions[(source, expression)]
        return fn

    def precompile(self, pairs) -> None:
        by_source = {}
        for source, expr in pairs:
            if (source, expr) not in self._functions:
                by_source.setdefault(source, list(self._declared.get(source, ())))
                if expr not in by_source[source]:
                    by_source[source].append(expr)
        if not by_source:
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(len(by_source), os.cpu_count() or 1)) as pool:
            built = dict(zip(by_source, pool.map(lambda item: build_library(*item), by_source.items())))
        with self._lock:
            for source, exprs in by_source.items():
                lib = ctypes.CDLL(str(built[source]))
                for i, expr in enumerate(exprs):
                    self._functions[(source, expr)] = EmulatedKernel(getattr(lib, f"td_emu_{i}"), expr)

    def empty(self, shape, dtype):
        out = recording.xp.empty(shape, dtype)  # an array of "emu" (recorded while a graph captures)
        if out.dtype.kind in "fc":
            out.fill(np.nan)  # poisoned: an element no kernel writes shows as NaN
        return out

    def pointer(self, array) -> int:
        if recording._state is not None:  # a launch will reach it by address: the graph keeps it alive
            recording._state.keep(array)
        return array.__array_interface__["data"][0]

    def owns(self, array) -> bool:
        return isinstance(array, np.ndarray)

    def reference_matmul(self, a, b):
        """kernel="cublas" on this device: NumPy's matmul stands in for cuBLAS."""
        return np.matmul(a, b)

    def reference_spmm(self, indptr, indices, values, shape, dense):
        """kernel="cusparse" on this device: SciPy stands in for cuSPARSE (through the
        recording, so that a CUDA graph captures it like any other op of "emu")."""
        return recording.run(_scipy_spmm, (indptr, indices, values, shape, dense), {}, "reference_spmm")

    def time_ms(self, fn, n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) * 1e3 / n


class DryRunRuntime(EmulatedRuntime):
    """Benchmark-only: everything of "emu" but the kernels, which return at once.

    benchmarks/dispatch.py measures the host's share of a GPU-path matmul with it:
    planning, the plan cache, output allocation and argument packing run as on a
    GPU; nothing is computed and no compiler is needed. Outputs come zeroed (so the
    autotuner's comparison of candidates agrees) and mean nothing."""

    @cached_property
    def facts(self) -> DeviceFacts:
        from ..gemm import sources

        return DeviceFacts(name="emulated, launches skipped", cc=EMULATED_CC, sm_count=os.cpu_count() or 1,
                           key=f"dry-run|sm_{EMULATED_CC}|kernels-{sources.kernels_sha256()[:16]}")

    def function(self, source: str, expression: str):
        return _skip

    def precompile(self, pairs) -> None:
        pass

    def empty(self, shape, dtype):
        return np.zeros(shape, dtype)


def _scipy_spmm(indptr, indices, values, shape, dense):
    from scipy.sparse import csr_matrix

    return np.asarray(csr_matrix((values, indices, indptr), shape=shape) @ dense)


def _skip(grid, block, args, shared_mem: int = 0):
    """A launch that does nothing (DryRunRuntime)."""


def available() -> bool:
    """A host C++ compiler is on the PATH (the only thing device "emu" needs)."""
    return shutil.which(compiler()) is not None
