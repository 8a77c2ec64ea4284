"""The GEMM autotune cache under abuse, on the CPU with the emulated kernels
(device "emu"): an unwritable or misplaced cache, a file in the wrong layout,
two processes writing at once, and a fallback chosen because every candidate
failed. matmul always works and warns once at most. A "process" here is a fresh
dispatcher with a fresh autotuner, which reads the cache file anew."""
import json
import multiprocessing
import os
import stat
import types
import warnings

import numpy as np
import pytest

from tinygrad_dot import _files, gemm
from tinygrad_dot.gemm import autotune, configs
from tinygrad_dot.runtime import DeviceFacts
from tinygrad_dot.runtime.emulated import EmulatedRuntime

M, N, K = 24, 16, 8
LAYOUT_KEY = autotune.entry_key(np.float32, "NN", autotune.shape_bucket(M, N, K))


class Emu(EmulatedRuntime):
    """Device "emu" whose tuned choices live under the key "emu" (what the files below hold)."""

    @property
    def facts(self):
        real = EmulatedRuntime.facts.func(self)
        return DeviceFacts(real.name, real.cc, real.sm_count, "emu")


class FailingWhileTuning(Emu):
    """Its first `failures` launches fail, as a broken driver or kernel would."""

    def __init__(self, launches: list, failures: int):
        super().__init__()
        self.launches, self.failures = launches, failures

    def function(self, source, expression):
        real = super().function(source, expression)

        def kernel(grid, block, args, shared_mem=0):
            self.launches.append(expression)
            if len(self.launches) <= self.failures:
                raise RuntimeError("cudaErrorLaunchFailure (emulated)")
            return real(grid, block, args)

        return kernel


_process = {}


def new_process(runtime=None):
    """Start a "process": its dispatcher and autotuner are made at its first matmul
    (after the test has pointed TINYGRAD_DOT_CACHE_DIR somewhere)."""
    _process.clear()
    _process["runtime"] = runtime or Emu()


@pytest.fixture(scope="module", autouse=True)
def built():
    """The emulated kernels built once, under the default cache, before the tests
    move the cache folder about (this process reuses what it built)."""
    ones = np.ones((2, 2), np.float32)
    for cfg in configs.CANDIDATES[configs.F32]:
        gemm.matmul(ones, ones, kernel=cfg)


@pytest.fixture
def emulated(monkeypatch):
    new_process()
    monkeypatch.setenv("TINYGRAD_DOT_AUTOTUNE", "1")
    # two candidates, not all: these tests are about the cache, and each emulated
    # candidate costs a few launches (test_gemm_emulation tunes over all of them)
    monkeypatch.setitem(configs.CANDIDATES, configs.F32,
                        [configs.UNTUNED[configs.F32][0], configs.DEFAULTS[configs.F32]["vectorized"]])


def matmul_checked(rng=np.random.default_rng(5)):
    """One kernel="auto" matmul in the current "process", compared with NumPy;
    returns the RuntimeWarnings it gave."""
    if "dispatch" not in _process:
        _process["dispatch"] = gemm.GemmDispatch(_process["runtime"], autotune.Autotuner())
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = _process["dispatch"].matmul(a, b, "auto")
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)
    return [w for w in caught if issubclass(w.category, RuntimeWarning)]


def assert_one_line_warning(caught, match):
    assert len(caught) == 1, [str(w.message) for w in caught]
    assert match in str(caught[0].message) and "\n" not in str(caught[0].message)


def count_tunings(monkeypatch):
    tunings = []
    real = autotune.time_candidates

    def counting(*args, **kwargs):
        tunings.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(autotune, "time_candidates", counting)
    return tunings


def test_unwritable_cache_directory_tunes_in_memory(emulated, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    os.chmod(cache, stat.S_IRUSR | stat.S_IXUSR)
    monkeypatch.setenv("TINYGRAD_DOT_CACHE_DIR", str(cache))
    if os.geteuid() == 0:  # root writes anyway: refuse the way the folder would for anyone else
        def refuse(**kwargs):
            raise PermissionError(13, "Permission denied", kwargs.get("dir"))

        monkeypatch.setattr(_files, "tempfile", types.SimpleNamespace(mkstemp=refuse))
    tunings = count_tunings(monkeypatch)
    try:
        assert_one_line_warning(matmul_checked(), "cannot write the cache")
        assert matmul_checked() == [] and len(tunings) == 1  # the choice is kept in memory
    finally:
        os.chmod(cache, stat.S_IRWXU)
    assert not (cache / "autotune.json").exists()


@pytest.mark.parametrize("where", ["cache dir is a file", "autotune.json is a folder"])
def test_misplaced_cache_path_tunes_in_memory(emulated, tmp_path, monkeypatch, where):
    if where == "cache dir is a file":
        (tmp_path / "cache").write_text("not a folder")
    else:
        (tmp_path / "cache" / "autotune.json").mkdir(parents=True)
    monkeypatch.setenv("TINYGRAD_DOT_CACHE_DIR", str(tmp_path / "cache"))
    tunings = count_tunings(monkeypatch)
    assert_one_line_warning(matmul_checked(), "autotune cache")
    assert matmul_checked() == [] and len(tunings) == 1


_GOOD_ENTRY = {"rung": "vectorized", "values": [128, 128, 8, 8, 8], "timings_ms": {}}


@pytest.mark.parametrize("layout", [
    {"version": 1, "devices": []},
    {"version": 1, "devices": {"emu": [1, 2]}},
    {"version": 1, "devices": {"emu": {LAYOUT_KEY: "cp_async"}}},
    {"version": 1, "devices": {"emu": {LAYOUT_KEY: {"rung": ["cp_async"], "values": []}}}},
    {"version": 1, "devices": {"emu": {LAYOUT_KEY: {"rung": "cp_async", "values": "128"}}}},
    {"version": 1, "devices": {"emu": {LAYOUT_KEY: {"rung": "vectorized", "values": [1e400, 128, 8, 8, 8]}}}},
    {"version": 1, "devices": {"emu": {LAYOUT_KEY: {"rung": "vectorized", "values": [128.5, 128, 8, 8, 8]}}}},
    {"version": 1, "devices": {"emu": {LAYOUT_KEY: {"rung": "vectorized", "values": [True, 128, 8, 8, 8]}}}},
    # a well-formed config that this version never launches (nor the emulation builds)
    {"version": 1, "devices": {"emu": {LAYOUT_KEY: {"rung": "vectorized", "values": [64, 64, 8, 8, 8]}}}},
], ids=["devices-list", "device-list", "entry-str", "rung-list", "values-str", "values-inf", "values-float",
        "values-bool", "unknown-config"])
def test_valid_json_in_the_wrong_layout_is_retuned_and_repaired(emulated, tmp_path, monkeypatch, layout):
    layout = json.loads(json.dumps(layout))
    layout["devices"] = layout["devices"] if not isinstance(layout["devices"], dict) else \
        {**layout["devices"], "other-gpu": {"k": _GOOD_ENTRY}}  # well-formed entries of others survive
    (tmp_path / "autotune.json").write_text(json.dumps(layout).replace("Infinity", "1e400"))
    monkeypatch.setenv("TINYGRAD_DOT_CACHE_DIR", str(tmp_path))
    tunings = count_tunings(monkeypatch)
    caught = matmul_checked()
    assert len(caught) <= 1 and all("\n" not in str(w.message) for w in caught)
    assert len(tunings) == 1
    data = json.loads((tmp_path / "autotune.json").read_text())
    entry = data["devices"]["emu"][LAYOUT_KEY]
    assert configs.KernelConfig(entry["rung"], tuple(entry["values"])) in configs.CANDIDATES[configs.F32]
    if isinstance(layout["devices"], dict):
        assert data["devices"]["other-gpu"] == {"k": _GOOD_ENTRY}
    new_process()  # reads the repaired entry, tunes no more
    assert matmul_checked() == [] and len(tunings) == 1


def test_a_fallback_after_every_candidate_failed_is_cached(emulated, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_DOT_CACHE_DIR", str(tmp_path))
    calls, failures = [], len(configs.CANDIDATES[configs.F32])  # every candidate fails while tuning
    new_process(FailingWhileTuning(calls, failures))
    tunings = count_tunings(monkeypatch)
    caught = matmul_checked()
    assert any("no candidate ran correctly" in str(w.message) for w in caught)
    (entry,) = json.loads((tmp_path / "autotune.json").read_text())["devices"]["emu"].values()
    assert entry["fallback"] is True
    tuned = len(calls)
    new_process(FailingWhileTuning(calls, failures))
    assert matmul_checked() == [] and len(tunings) == 1 and len(calls) == tuned + 1  # launched, not tuned


def _write_entries(path, worker, count, barrier):
    cache = autotune.TuningCache(path)
    cfgs = configs.CANDIDATES[configs.F32]
    barrier.wait()
    for i in range(count):
        cache.put("dev", f"w{worker}-{i}", cfgs[i % len(cfgs)], {"x": 0.1 * i})


def test_concurrent_writers_merge_their_entries(tmp_path):
    """Two processes tuning at once: neither loses the other's entries."""
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    path, count = tmp_path / "autotune.json", 30
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_write_entries, args=(path, w, count, barrier)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    entries = json.loads(path.read_text())["devices"]["dev"]
    assert sorted(entries) == sorted(f"w{w}-{i}" for w in range(2) for i in range(count))
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
