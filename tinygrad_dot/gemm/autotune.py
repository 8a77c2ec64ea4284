"""Tile-config autotuner with a persistent cache.

The first matmul for a (device, dtype, layout, shape bucket) times every candidate
config (configs.CANDIDATES) on the device's clock (CUDA events on a GPU, the
host clock on "emu") and keeps the fastest. Choices are stored as JSON in
<cache dir>/autotune.json (~/.cache/tinygrad_dot, or $TINYGRAD_DOT_CACHE_DIR),
grouped under a device key made of the device's name, compute capability,
toolchain (CuPy and NVRTC versions, or the host compiler) and the kernels'
sha256, so a toolkit/GPU change or an edit of the kernels re-tunes. Writers hold a lock
file (autotune.json.lock) while they read, merge and atomically replace the file,
so processes tuning at once keep each other's entries. The cache never fails a
matmul: a damaged file, or parts of it in an unknown layout, are ignored, and a
cache that cannot be read or written (unwritable folder, a file where the folder
should be) leaves the choices in memory; either gives one warning per process.
When every candidate fails, the untuned fallback is cached like a tuned choice,
so later calls do not tune again. TINYGRAD_DOT_AUTOTUNE=0 turns tuning off: then
configs.untuned_config picks by shape class.

The tuner drives one problem through a runner (see ``Runner``): the GEMM
dispatch hands it one built on the device's runtime, tests hand it their own.
Each candidate's output is checked against the first one's while tuning; a
wrong or failing candidate is dropped.
"""
from __future__ import annotations

import contextlib
import json
import os
import statistics
import threading
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np

from . import configs, sources
from .compile import atomic_write

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: writers still merge, without the inter-process lock
    fcntl = None

CACHE_VERSION = 1
_lock = threading.Lock()  # threads of one process; the lock file orders processes


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


def device_key(device_name: str, cc: int, toolchain: str, kernels_sha256: str) -> str:
    """Device, toolchain and kernel sources: a choice tuned for other kernels is not reused."""
    return f"{device_name.strip()}|sm_{cc}|{toolchain}|kernels-{kernels_sha256[:16]}"


def entry_key(dtype, layout: str, bucket: str) -> str:
    return f"{np.dtype(dtype).name}|{layout}|{bucket}"


def cache_path() -> Path:
    return sources.cache_root() / "autotune.json"


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock across processes on the file `path` (created if missing, and
    kept: deleting a lock file lets two writers lock different files)."""
    if fcntl is None:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _parse_choice(choice) -> configs.KernelConfig | None:
    """The config an entry names, or None when it is not one this version wrote."""
    if not isinstance(choice, dict) or not isinstance(choice.get("rung"), str) or \
            not isinstance(choice.get("values"), list) or \
            not all(type(v) is int for v in choice["values"]):  # no floats, bools or strings
        return None
    try:
        return configs.KernelConfig(choice["rung"], tuple(choice["values"]))
    except ValueError:
        return None


class TuningCache:
    """The JSON file of tuned choices: {"version", "devices": {device: {entry: choice}}}."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else cache_path()
        self._warned = False

    def _warn(self, message: str):
        """One warning per cache object (the process's autotuner has one): a broken
        cache must not flood a training loop."""
        if not self._warned:
            self._warned = True
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    def load(self) -> dict:
        """The file's contents, with every part not in the expected layout dropped."""
        empty = {"version": CACHE_VERSION, "devices": {}}
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return empty
        except (OSError, ValueError) as e:  # unreadable, not a file, not UTF-8, not JSON
            self._warn(f"ignoring unreadable autotune cache {self.path}: {e}")
            return empty
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or \
                not isinstance(data.get("devices"), dict):
            self._warn(f"ignoring unreadable autotune cache {self.path}: unexpected layout or version")
            return empty
        devices = {dev: entries for dev, entries in data["devices"].items() if isinstance(entries, dict)}
        devices = {dev: {k: v for k, v in entries.items() if isinstance(v, dict)} for dev, entries in devices.items()}
        if devices != data["devices"]:
            self._warn(f"ignoring entries of unexpected layout in the autotune cache {self.path}")
        return {"version": CACHE_VERSION, "devices": devices}

    def get(self, dev: str, key: str) -> configs.KernelConfig | None:
        return _parse_choice(self.load()["devices"].get(dev, {}).get(key))

    def put(self, dev: str, key: str, cfg: configs.KernelConfig, timings_ms: dict | None = None,
            fallback: bool = False) -> bool:
        """Record a choice (fallback: the untuned config, taken because every
        candidate failed). Other processes' entries written meanwhile are kept. False,
        with a warning, when the file cannot be written."""
        entry = {"rung": cfg.rung, "values": list(cfg.values),
                 "timings_ms": {k: round(v, 5) for k, v in (timings_ms or {}).items()}}
        if fallback:
            entry["fallback"] = True
        try:
            with _lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with _locked(self.path.with_name(self.path.name + ".lock")):
                    data = self.load()  # read-merge-replace under the lock: no writer's entries are lost
                    data["devices"].setdefault(dev, {})[key] = entry
                    atomic_write(self.path, json.dumps(data, indent=1, sort_keys=True).encode())
        except OSError as e:
            self._warn(f"autotune: cannot write the cache {self.path} ({type(e).__name__}: {e}); "
                       "keeping tuned choices in memory only")
            return False
        return True


def candidates(dtype, cc: int) -> list:
    """Candidate configs that can run on compute capability cc."""
    return [c for c in configs.CANDIDATES[np.dtype(dtype)]
            if cc >= configs.RUNGS[c.rung].min_sm and not c.problems(dtype)]


def pick_fastest(timings_ms: dict) -> str:
    """Label of the fastest candidate (ties: the first listed)."""
    if not timings_ms:
        raise ValueError("no candidate could be timed")
    return min(timings_ms, key=timings_ms.get)


# Largest max|C - C_first| / max|C_first| a candidate may show against the first
# candidate's output: the kernels differ only in summation order.
AGREE_TOL = {configs.F32: 1e-4, configs.F64: 1e-10}


def _disagreement(out, ref) -> float:
    """max|out - ref| / max|ref| (NaN when out holds a NaN that ref does not). Works
    for cupy and numpy arrays alike."""
    scale = float(abs(ref).max()) if ref.size else 0.0
    return float(abs(out - ref).max()) / max(scale, 1e-300) if ref.size else 0.0


def launches_per_group(one_ms: float, at_least: int = 1, target_ms: float = 1.0, cap: int = 200) -> int:
    """How many launches to time between one event pair: enough to span ~target_ms,
    so the host's per-call overhead overlaps the GPU work instead of being counted
    once per (short) launch."""
    want = int(-(-target_ms // max(one_ms, 1e-4)))
    return max(at_least, min(cap, want))


class Runner(Protocol):
    """One problem, as the tuner sees it: where it runs and how to run a candidate."""

    key: str          # the device key choices are stored under (device_key)
    cc: int           # compute capability: which rungs can run
    sm_count: int     # for the untuned choice
    dtype: np.dtype
    layout: str       # "NN", "NT", "TN" or "TT"
    M: int
    N: int
    K: int
    batch: int

    def precompile(self, cands: list) -> None:
        """Build every candidate up front (in parallel)."""

    def launch(self, cfg) -> None:
        """One launch of candidate cfg on the real operands."""

    def output(self):
        """The array the launches write (or None: then outputs are not compared)."""

    def time_ms(self, fn, n: int) -> float:
        """ms per call of n back-to-back calls of fn, on the device's clock."""


def _time_launches(runner, fn, repeats: int) -> list:
    """repeats figures of ms per launch, each over a group of back-to-back launches."""
    n = launches_per_group(runner.time_ms(fn, 1))
    return [runner.time_ms(fn, n) for _ in range(repeats)]


def time_candidates(cands: list, runner, repeats: int = 5) -> dict:
    """{label: median ms per launch} of runner.launch(cfg) per candidate, after one
    warm-up launch (which also compiles). Each of the `repeats` figures times a
    group of back-to-back launches (launches_per_group) on the runner's clock and
    divides by the count.

    When runner.output() gives the output array, it is poisoned with NaN before
    each warm-up, and a candidate whose output disagrees with the first working
    candidate's (relative error above AGREE_TOL), or whose compile or launch raises,
    is dropped with a RuntimeWarning instead of failing the matmul. (If the first
    output is not finite, e.g. NaN in the operands, no comparison is made.)"""
    out, ref, ref_label, check = {}, None, None, runner.output() is not None
    for cfg in cands:
        try:
            if check:
                runner.output().fill(np.nan)
            runner.launch(cfg)  # compile + warm up
            if check:
                c = runner.output()
                if ref is None:
                    ref, ref_label = c.copy(), cfg.label()
                    if ref.size and not float(abs(ref).max()) < float("inf"):
                        # NaN/inf in the operands (or a skipped element): nothing to compare against
                        check, ref = False, None
                else:
                    err = _disagreement(c, ref)
                    tol = AGREE_TOL.get(np.dtype(c.dtype), 1e-4)
                    if not err <= tol:
                        raise ValueError(f"its output differs from {ref_label}'s by a relative {err:.3g} "
                                         f"(> {tol:g})")
            times = _time_launches(runner, lambda: runner.launch(cfg), repeats)
        except Exception as e:  # NvrtcError, CUDA launch/driver errors, wrong results
            warnings.warn(f"autotune: dropping candidate {cfg.label()}: {type(e).__name__}: {e}",
                          RuntimeWarning, stacklevel=2)
            if ref_label == cfg.label():
                ref = ref_label = None  # the reference came from this failing candidate: take the next one's
            continue
        out[cfg.label()] = statistics.median(times)
    return out


class Autotuner:
    """Chooses the config for each (device, dtype, layout, bucket), memoized in
    process and persisted through TuningCache."""

    def __init__(self, cache: TuningCache | None = None):
        self.cache = cache or TuningCache()
        self.memo = {}

    def choose(self, run: Runner) -> configs.KernelConfig:
        """The config for run's problem: memoized, else from the cache file, else timed
        (see time_candidates) and stored."""
        dtype, dev = run.dtype, run.key
        if not tuning_enabled():
            return configs.untuned_config(dtype, run.M, run.N, run.batch, run.sm_count, run.cc)
        key = entry_key(dtype, run.layout, shape_bucket(run.M, run.N, run.K, run.batch))
        if (dev, key) in self.memo:
            return self.memo[(dev, key)]
        cfg = self.cache.get(dev, key)
        # a cached choice counts only if it is a config this version launches (and
        # the emulation tests): the file may be older, edited or damaged
        if cfg not in configs.all_configs(dtype) or run.cc < configs.RUNGS[cfg.rung].min_sm:
            cands = candidates(dtype, run.cc)
            try:
                run.precompile(cands)
            except Exception as e:  # the failing candidate fails again, alone, in time_candidates
                warnings.warn(f"autotune: precompiling candidates failed ({type(e).__name__}: {e})",
                              RuntimeWarning, stacklevel=2)
            timings = time_candidates(cands, run)
            if not timings:
                cfg = configs.untuned_config(dtype, run.M, run.N, run.batch, run.sm_count, run.cc)
                warnings.warn(f"autotune: no candidate ran correctly; using the untuned {cfg.label()} "
                              "(cached: later calls do not tune again)", RuntimeWarning, stacklevel=2)
                self.cache.put(dev, key, cfg, fallback=True)
            else:
                best = pick_fastest(timings)
                cfg = next(c for c in cands if c.label() == best)
                self.cache.put(dev, key, cfg, timings)
        self.memo[(dev, key)] = cfg
        return cfg
