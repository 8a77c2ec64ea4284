"""A minimal ctypes binding to NVRTC: compile CUDA C++ to a cubin with no GPU.

Used at run time (the cubin is cached on disk and loaded by CuPy) and by the
static checks in CI. libnvrtc is looked up in $TINYGRAD_DOT_NVRTC, then the pip
wheels (nvidia-cuda-nvrtc-cu12: nvidia/cuda_nvrtc/lib; CUDA 13 wheels:
nvidia/cu13/lib), then $CUDA_PATH and the system library path; with a driver
present, one no newer than the driver's CUDA major version is preferred.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import site
import sys
from dataclasses import dataclass
from functools import lru_cache


class NvrtcError(RuntimeError):
    pass


def _candidates():
    env = os.environ.get("TINYGRAD_DOT_NVRTC")
    if env:
        yield env
    roots = [*site.getsitepackages(), site.getusersitepackages(), *sys.path]
    for root in dict.fromkeys(r for r in roots if r and os.path.isdir(os.path.join(r, "nvidia"))):
        for sub in ("cu13/lib", "cuda_nvrtc/lib"):
            yield from sorted(glob.glob(os.path.join(root, "nvidia", sub, "libnvrtc.so.*")), reverse=True)
    for var in ("CUDA_PATH", "CUDA_HOME"):
        if os.environ.get(var):
            yield from sorted(glob.glob(os.path.join(os.environ[var], "lib64", "libnvrtc.so*")), reverse=True)
    found = ctypes.util.find_library("nvrtc")
    if found:
        yield found
    yield from ("libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so")


def _load(path: str):
    """The libnvrtc at path, with the prototypes we use set, or None."""
    if "builtins" in os.path.basename(path) or ".alt." in os.path.basename(path):
        return None
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    lib.nvrtcGetLoweredName.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p)]
    lib._td_path = path
    return lib


def _lib_major(lib) -> int | None:
    major, minor = ctypes.c_int(), ctypes.c_int()
    try:
        return major.value if lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)) == 0 else None
    except (AttributeError, OSError):
        return None


def _driver_major() -> int | None:
    """The CUDA major version the installed driver supports (12 for 12.x), or None
    without CuPy or a driver (CI's static checks: then any NVRTC will do)."""
    try:
        import cupy

        return int(cupy.cuda.runtime.driverGetVersion()) // 1000 or None
    except Exception:
        return None


@lru_cache(maxsize=None)
def library():
    """The loaded libnvrtc, or None when none can be found.

    $TINYGRAD_DOT_NVRTC wins when set. Otherwise, when a CUDA driver is present,
    the first NVRTC whose major version is at most the driver's CUDA major is
    preferred: a cubin from a newer toolkit may not load on an older driver (and
    if a cached cubin still fails to load, compile.get_kernel falls back to
    CuPy's own compiler). Without a driver the first one found is used."""
    env = os.environ.get("TINYGRAD_DOT_NVRTC")
    first, driver = None, None
    for path in _candidates():
        lib = _load(path)
        if lib is None:
            continue
        if env and path == env:
            return lib
        if first is None:
            first, driver = lib, _driver_major()
            if driver is None:
                return lib
        major = _lib_major(lib)
        if major is not None and major <= driver:
            return lib
    return first


def available() -> bool:
    return library() is not None


def _lib():
    lib = library()
    if lib is None:
        raise NvrtcError("libnvrtc not found: pip install nvidia-cuda-nvrtc-cu12 (or set TINYGRAD_DOT_NVRTC "
                         "to the library's path)")
    return lib


def _check(status: int, what: str):
    if status != 0:
        raise NvrtcError(f"{what} failed: {_lib().nvrtcGetErrorString(status).decode()}")


def version() -> tuple:
    major, minor = ctypes.c_int(), ctypes.c_int()
    _check(_lib().nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
    return major.value, minor.value


def library_path() -> str | None:
    lib = library()
    return lib._td_path if lib is not None else None


@dataclass
class CompileResult:
    cubin: bytes
    log: str
    lowered: dict  # name expression -> mangled symbol


def compile_cubin(source: str, name: str, options: list, name_expressions: list) -> CompileResult:
    """Compile `source` (options must select a real sm_XX architecture) and return
    the cubin, the compile log and each name expression's lowered (mangled) name."""
    lib = _lib()
    prog = ctypes.c_void_p()
    _check(lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None),
           "nvrtcCreateProgram")
    try:
        for expr in name_expressions:
            _check(lib.nvrtcAddNameExpression(prog, expr.encode()), f"nvrtcAddNameExpression({expr})")
        opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
        status = lib.nvrtcCompileProgram(prog, len(options), opts)
        size = ctypes.c_size_t()
        _check(lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)), "nvrtcGetProgramLogSize")
        buf = ctypes.create_string_buffer(size.value)
        _check(lib.nvrtcGetProgramLog(prog, buf), "nvrtcGetProgramLog")
        log = buf.value.decode(errors="replace")
        if status != 0:
            raise NvrtcError(f"NVRTC could not compile {name} with {' '.join(options)}:\n{log}")
        _check(lib.nvrtcGetCUBINSize(prog, ctypes.byref(size)), "nvrtcGetCUBINSize")
        cubin = ctypes.create_string_buffer(size.value)
        _check(lib.nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN")
        lowered = {}
        for expr in name_expressions:
            out = ctypes.c_char_p()
            _check(lib.nvrtcGetLoweredName(prog, expr.encode(), ctypes.byref(out)), f"nvrtcGetLoweredName({expr})")
            lowered[expr] = out.value.decode()
        return CompileResult(cubin.raw, log, lowered)
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
