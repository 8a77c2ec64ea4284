"""Build and run the CUDA kernels on the CPU through cuda_emulation.h (CI only).

The same kernel sources are compiled by the host g++ with the emulation header
force-included; a generated glue file per rung instantiates each (config, dtype,
layout) and exports it as an extern "C" entry point. The shared library is built
once into a cache directory keyed by a hash of everything that goes into it.
Launches go through tinygrad_dot.gemm.plan, exactly like the CUDA path.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from tinygrad_dot.gemm import configs, plan, sources

HERE = Path(__file__).resolve().parent
HEADER = HERE / "cuda_emulation.h"
CXXFLAGS = ["-std=c++20", "-O2", "-fPIC", "-shared", "-Wall", "-Wno-unknown-pragmas", "-Wno-unused-variable",
            "-Wno-unused-but-set-variable", "-pthread"]
ENTRY_ARGS = ("int M, int N, int K, const void* A, long long lda, long long bsa, const void* B, long long ldb, "
              "long long bsb, void* C, long long ldc, long long bsc, int batch, unsigned gx, unsigned gy, "
              "unsigned gz, unsigned bx, int workers, char* err, size_t err_len")


def instantiations():
    """(symbol, config, dtype, trans_a, trans_b) for every variant the emulation builds:
    every config the package can launch (rung defaults, autotune candidates and
    untuned choices), so no candidate the autotuner may pick goes untested."""
    out = []
    for dtype in (configs.F32, configs.F64):
        for cfg in configs.all_configs(dtype):
            for layout in configs.LAYOUTS:
                ta, tb = layout[0] == "T", layout[1] == "T"
                out.append((f"td_emu_{len(out)}", cfg, dtype, ta, tb))
    return out


def _glue(rung: str) -> str:
    lines = [f'#include "{sources.kernels_dir() / configs.RUNGS[rung].source}"', ""]
    for sym, cfg, dtype, ta, tb in instantiations():
        if cfg.rung != rung:
            continue
        ctype = configs.CTYPES[dtype]
        lines.append(
            f'extern "C" int {sym}({ENTRY_ARGS}) {{\n'
            f"    return td_emu::launch(dim3(gx, gy, gz), dim3(bx), [&] {{\n"
            f"        {cfg.name_expression(dtype, ta, tb)}(M, N, K, (const {ctype}*)A, lda, bsa,\n"
            f"            (const {ctype}*)B, ldb, bsb, ({ctype}*)C, ldc, bsc, batch);\n"
            f"    }}, workers, err, err_len);\n}}\n")
    return "\n".join(lines)


def _build_key() -> str:
    h = hashlib.sha256(sources.kernels_sha256().encode())
    for p in (HEADER, Path(__file__), Path(configs.__file__)):
        h.update(p.read_bytes())
    h.update(" ".join(CXXFLAGS).encode())
    return h.hexdigest()[:20]


@lru_cache(maxsize=None)
def library() -> ctypes.CDLL:
    out_dir = sources.cache_root() / "emulation" / _build_key()
    so = out_dir / "libtd_gemm_emu.so"
    if not so.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            objs, procs = [], []
            for rung in configs.RUNGS:
                cpp = Path(tmp) / f"{rung}.cpp"
                cpp.write_text(_glue(rung))
                obj = cpp.with_suffix(".o")
                objs.append(str(obj))
                cmd = ["g++", *CXXFLAGS, "-c", "-include", str(HEADER), str(cpp), "-o", str(obj)]
                procs.append((cmd, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))
            for cmd, proc in procs:
                log = proc.communicate()[0].decode()
                if proc.returncode:
                    raise RuntimeError(f"emulation build failed: {' '.join(cmd)}\n{log}")
            tmp_so = Path(tmp) / so.name
            subprocess.run(["g++", *CXXFLAGS, *objs, "-o", str(tmp_so)], check=True)
            os.replace(tmp_so, so)  # atomic: concurrent test processes never see half a library
    return ctypes.CDLL(str(so))


_SYMBOLS = {(cfg, dtype, ta, tb): sym for sym, cfg, dtype, ta, tb in instantiations()}


def emulated_matmul(a: np.ndarray, b: np.ndarray, cfg: configs.KernelConfig, *, workers: int | None = None,
                    poison: bool = True, max_grid_z: int = configs.MAX_GRID_Z,
                    max_grid_y: int = configs.MAX_GRID_Y) -> np.ndarray:
    """numpy.matmul(a, b) computed by the emulated kernel `cfg`, reading a and b in
    place through their strides as the CUDA path does. max_grid_z / max_grid_y
    lower the grid's limits so a test can exercise the batch and row splits over
    several launches."""
    if a.dtype != b.dtype or a.dtype not in (configs.F32, configs.F64):
        raise TypeError(f"emulated_matmul needs two float32 or two float64 arrays, got {a.dtype} and {b.dtype}")
    p, a, b = plan.plan_operands(np, a, b)
    c = np.empty(p.out_shape, a.dtype)
    if poison:
        c.fill(np.nan)  # an element the kernel does not write fails the comparison
    if c.size == 0:
        return c
    fn = getattr(library(), _SYMBOLS[(cfg, a.dtype, p.a.trans, p.b.trans)])
    fn.restype = ctypes.c_int
    ll, ptr, item = ctypes.c_longlong, ctypes.c_void_p, a.itemsize
    err = ctypes.create_string_buffer(512)
    launches = [(m0, rows, z0, count) for m0, rows in plan.row_chunks(p.M, cfg.block_tile[0], max_grid_y)
                for z0, count in plan.batch_chunks(p.batch, max_grid_z)]
    for m0, rows, z0, count in launches:
        gx, gy, gz = cfg.grid(rows, p.N, count)
        a_off, c_off = plan.row_offset(p.a, m0) + z0 * p.a.batch_stride, m0 * p.N + z0 * p.M * p.N
        rc = fn(ctypes.c_int(rows), ctypes.c_int(p.N), ctypes.c_int(p.K),
                ptr(a.ctypes.data + a_off * item), ll(p.a.ld), ll(p.a.batch_stride),
                ptr(b.ctypes.data + z0 * p.b.batch_stride * item), ll(p.b.ld), ll(p.b.batch_stride),
                ptr(c.ctypes.data + c_off * item), ll(p.N), ll(p.M * p.N), ctypes.c_int(count),
                ctypes.c_uint(gx), ctypes.c_uint(gy), ctypes.c_uint(gz), ctypes.c_uint(cfg.threads),
                ctypes.c_int(workers or os.cpu_count() or 1), err, ctypes.c_size_t(len(err)))
        if rc:
            raise RuntimeError(f"emulated {cfg.label()} failed: {err.value.decode()}")
    return c


def emulated_raw_kernel(cfg: configs.KernelConfig, dtype, trans_a: bool, trans_b: bool):
    """A stand-in for the cupy.RawKernel of this instantiation: called as
    kernel(grid, block, args) with the same argument tuple the CUDA dispatch
    builds, it runs the emulated kernel. Lets tests drive tinygrad_dot.gemm.matmul
    end to end on the CPU."""
    fn = getattr(library(), _SYMBOLS[(cfg, np.dtype(dtype), trans_a, trans_b)])
    fn.restype = ctypes.c_int
    types = [ctypes.c_int] * 3 + [ctypes.c_void_p, ctypes.c_longlong, ctypes.c_longlong] * 3 + [ctypes.c_int]

    def launch(grid, block, args):
        if len(args) != len(types) or tuple(block) != (cfg.threads,):
            raise TypeError(f"bad launch of {cfg.label()}: block {block}, {len(args)} arguments")
        err = ctypes.create_string_buffer(512)
        rc = fn(*(t(int(v)) for t, v in zip(types, args)), *(ctypes.c_uint(g) for g in grid),
                ctypes.c_uint(block[0]), ctypes.c_int(os.cpu_count() or 1), err, ctypes.c_size_t(len(err)))
        if rc:
            raise RuntimeError(f"emulated {cfg.label()} failed: {err.value.decode()}")

    return launch
