"""Compiling the kernels: NVRTC options in ONE place, cubins cached on disk and
modules cached in-process.

The runtime and the CI static checks both call compile_options(), so the checks
see exactly what runs. A cubin is keyed by the kernels' sha256, the options, the
NVRTC version and the instantiation, and stored under <cache>/cubin/ with its
lowered (mangled) kernel name beside it, so a second process loads instead of
recompiling.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from functools import lru_cache
from pathlib import Path

from .. import _files
from . import nvrtc, sources


def compile_options(cc: int) -> list:
    """NVRTC options for compute capability cc (e.g. 80, 90).

    -DTD_KERNELS_SHA256 carries a hash of every file under kernels/: CuPy's own
    compile cache (the fallback path without our libnvrtc) keys on the main source
    and the options only, so without it an edited header would not recompile."""
    return [
        "--std=c++17",
        f"--gpu-architecture=sm_{cc}",
        f"--include-path={sources.kernels_dir()}",
        "--ptxas-options=-v",  # register/spill report in the log (read by the CI checks)
        "-DNDEBUG",
        f"-DTD_KERNELS_SHA256={sources.kernels_sha256()[:16]}",
    ]


def atomic_write(path: Path, data: bytes) -> Path:
    """Cache files: written atomically, their folders created on demand."""
    return _files.atomic_write(path, data, make_parents=True)


def cubin_key(name_expression: str, cc: int) -> str:
    h = hashlib.sha256()
    for part in (sources.kernels_sha256(), " ".join(compile_options(cc)), str(nvrtc.version()), name_expression):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def cached_cubin(source: str, expression: str, cc: int):
    """(cubin path, lowered kernel name) of one template instantiation of
    kernels/`source`, compiling through NVRTC on a cache miss."""
    base = sources.cache_root() / "cubin" / cubin_key(expression, cc)
    cubin, meta = base.with_suffix(".cubin"), base.with_suffix(".json")
    if cubin.exists() and meta.exists():
        try:
            return cubin, json.loads(meta.read_text())["lowered"]
        except (ValueError, KeyError):
            pass  # damaged entry: rebuild it
    result = nvrtc.compile_cubin(sources.read_source(source), source, compile_options(cc), [expression])
    atomic_write(cubin, result.cubin)
    atomic_write(meta, json.dumps({"expression": expression, "lowered": result.lowered[expression]}).encode())
    return cubin, result.lowered[expression]


_own_cubins_load = True  # False after the driver refused a cubin from our NVRTC


@lru_cache(maxsize=None)
def get_function(source: str, expression: str, cc: int, device_id: int = 0):
    """A launchable kernel (CuPy's Function: kernel(grid, block, args)) for one
    instantiation on the current device, cached per process and device: a loaded
    module belongs to one context."""
    import cupy

    global _own_cubins_load
    if nvrtc.available() and _own_cubins_load:
        path, lowered = cached_cubin(source, expression, cc)
        try:
            return cupy.RawModule(path=str(path)).get_function(lowered)
        except cupy.cuda.driver.CUDADriverError as e:
            # e.g. a cubin from an NVRTC newer than the driver supports: stop using
            # our NVRTC for this process and let CuPy compile instead (once, warned).
            _own_cubins_load = False
            warnings.warn(f"the driver could not load {path.name} built by NVRTC {nvrtc.version()} from "
                          f"{nvrtc.library_path()} ({e}); compiling through CuPy from now on", RuntimeWarning,
                          stacklevel=2)
    # No libnvrtc of our own (or its cubins do not load): let CuPy compile (it adds
    # -arch itself, and caches on disk).
    opts = tuple(o for o in compile_options(cc) if not o.startswith("--gpu-architecture"))
    module = cupy.RawModule(code=sources.read_source(source), options=opts, name_expressions=[expression])
    return module.get_function(expression)


def precompile(pairs, cc: int, workers: int | None = None):
    """Fill the disk cache for [(source, expression), ...] in parallel (NVRTC runs
    outside the GIL). A no-op without a libnvrtc of our own, or once the driver has
    refused its cubins."""
    if not nvrtc.available() or not _own_cubins_load:
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers or min(16, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda pair: cached_cubin(*pair, cc), pairs))
