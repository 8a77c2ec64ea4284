"""Tile-config autotuner with a persistent cache.

The first matmul for a (device, dtype, layout, shape bucket) times every candidate
config (configs.CANDIDATES) with CUDA events and keeps the fastest. Choices are
stored as JSON in <cache dir>/autotune.json (~/.cache/tinygrad_dot, or
$TINYGRAD_DOT_CACHE_DIR), grouped under a device key made of the GPU name,
compute capability, CuPy version and NVRTC version, so a driver/toolkit/GPU change
re-tunes. The file is written atomically (temp file + os.replace); a damaged file
is ignored with a warning. TINYGRAD_DOT_AUTOTUNE=0 turns tuning off: then
configs.untuned_config picks by shape class.

Everything here except time_candidates() is pure Python and tested on the CPU.
"""
from __future__ import annotations

import json
import os
import statistics
import threading
import warnings
from pathlib import Path

import numpy as np

from . import configs, sources
from .compile import atomic_write

CACHE_VERSION = 1
_lock = threading.Lock()


def tuning_enabled() -> bool:
    return os.environ.get("TINYGRAD_DOT_AUTOTUNE", "1").strip().lower() not in ("0", "false", "off", "no")


def _pow2_bucket(x: int, lo: int = 16, hi: int = 16384) -> int:
    """x rounded up to a power of two, clamped to [lo, hi]."""
    return min(hi, max(lo, 1 << max(0, int(x) - 1).bit_length()))


def shape_bucket(M: int, N: int, K: int, batch: int = 1) -> str:
    """Shapes that share a tuned config: each dimension rounded up to a power of two
    (16 .. 16384), the batch to a power of two (1 .. 4096)."""
    b = 1 if batch <= 1 else _pow2_bucket(batch, 2, 4096)
    return f"m{_pow2_bucket(M)}_n{_pow2_bucket(N)}_k{_pow2_bucket(K)}_b{b}"


def device_key(gpu_name: str, cc: int, cupy_version: str, nvrtc_version) -> str:
    nv = ".".join(map(str, nvrtc_version)) if isinstance(nvrtc_version, (tuple, list)) else str(nvrtc_version)
    return f"{gpu_name.strip()}|sm_{cc}|cupy-{cupy_version}|nvrtc-{nv}"


def entry_key(dtype, layout: str, bucket: str) -> str:
    return f"{np.dtype(dtype).name}|{layout}|{bucket}"


def cache_path() -> Path:
    return sources.cache_root() / "autotune.json"


class TuningCache:
    """The JSON file of tuned choices: {"version", "devices": {device: {entry: choice}}}."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else cache_path()

    def load(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
            if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or \
                    not isinstance(data.get("devices"), dict):
                raise ValueError("unexpected layout or version")
            return data
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as e:
            warnings.warn(f"ignoring unreadable autotune cache {self.path}: {e}", RuntimeWarning, stacklevel=2)
        return {"version": CACHE_VERSION, "devices": {}}

    def get(self, dev: str, key: str) -> configs.KernelConfig | None:
        choice = self.load()["devices"].get(dev, {}).get(key)
        try:
            return configs.KernelConfig(choice["rung"], tuple(int(v) for v in choice["values"]))
        except (TypeError, KeyError, ValueError):
            return None  # absent, or written by an incompatible version

    def put(self, dev: str, key: str, cfg: configs.KernelConfig, timings_ms: dict | None = None):
        with _lock:
            data = self.load()  # merge with what other processes wrote meanwhile
            data["devices"].setdefault(dev, {})[key] = {
                "rung": cfg.rung, "values": list(cfg.values),
                "timings_ms": {k: round(v, 5) for k, v in (timings_ms or {}).items()}}
            atomic_write(self.path, json.dumps(data, indent=1, sort_keys=True).encode())


def candidates(dtype, cc: int) -> list:
    """Candidate configs that can run on compute capability cc."""
    return [c for c in configs.CANDIDATES[np.dtype(dtype)]
            if cc >= configs.RUNGS[c.rung].min_sm and not c.problems(dtype)]


def pick_fastest(timings_ms: dict) -> str:
    """Label of the fastest candidate (ties: the first listed)."""
    if not timings_ms:
        raise ValueError("no candidate could be timed")
    return min(timings_ms, key=timings_ms.get)


def time_candidates(cands: list, launch, repeats: int = 5) -> dict:
    """{label: median ms} of launch(cfg) per candidate, timed with CUDA events after
    one warm-up launch (which also compiles). Needs CuPy and a GPU."""
    import cupy

    out = {}
    for cfg in cands:
        launch(cfg)  # compile + warm up
        times = []
        for _ in range(repeats):
            start, stop = cupy.cuda.Event(), cupy.cuda.Event()
            start.record()
            launch(cfg)
            stop.record()
            stop.synchronize()
            times.append(cupy.cuda.get_elapsed_time(start, stop))
        out[cfg.label()] = statistics.median(times)
    return out


class Autotuner:
    """Chooses the config for each (device, dtype, layout, bucket), memoized in
    process and persisted through TuningCache."""

    def __init__(self, cache: TuningCache | None = None):
        self.cache = cache or TuningCache()
        self.memo = {}

    def choose(self, dev: str, dtype, layout: str, M: int, N: int, K: int, batch: int, cc: int, sm_count: int,
               launch, precompile=None) -> configs.KernelConfig:
        """The config for this problem. launch(cfg) runs one candidate on the real
        operands (for timing); precompile(cfgs), if given, compiles them up front."""
        if not tuning_enabled():
            return configs.untuned_config(dtype, M, N, batch, sm_count, cc)
        key = entry_key(dtype, layout, shape_bucket(M, N, K, batch))
        if (dev, key) in self.memo:
            return self.memo[(dev, key)]
        cfg = self.cache.get(dev, key)
        if cfg is None or cfg.problems(dtype) or cc < configs.RUNGS[cfg.rung].min_sm:
            cands = candidates(dtype, cc)
            if precompile is not None:
                precompile(cands)
            timings = time_candidates(cands, launch)
            best = pick_fastest(timings)
            cfg = next(c for c in cands if c.label() == best)
            self.cache.put(dev, key, cfg, timings)
        self.memo[(dev, key)] = cfg
        return cfg
