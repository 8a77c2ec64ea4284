"""CPU tests of the GEMM package's pure-Python parts: operand planning, shape
buckets, cache keys, the autotune cache file, and config tables."""
import json
import warnings

import numpy as np
import pytest

from tinygrad_dot import gemm
from tinygrad_dot.gemm import autotune, configs, plan, sources


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_DOT_CACHE_DIR", str(tmp_path))
    return tmp_path


def plan_of(a, b):
    return plan.plan_matmul(a.shape, a.strides, b.shape, b.strides, a.itemsize)


# ------------------------------------------------------------------- planning
def test_transposed_views_are_read_in_place():
    x = np.zeros((6, 5), np.float32)
    w = np.zeros((4, 5), np.float32)
    p = plan_of(x.T, np.zeros((6, 3), np.float32))  # X^T G (weight gradient)
    assert (p.M, p.N, p.K, p.layout) == (5, 3, 6, "TN") and p.a.ld == 5 and not p.a.copy
    p = plan_of(x, w.T)  # X W^T
    assert (p.M, p.N, p.K, p.layout) == (6, 4, 5, "NT") and p.b.ld == 5 and not p.b.copy


def test_padded_and_sliced_views_keep_their_leading_dimension():
    big = np.zeros((10, 12), np.float64)
    p = plan_of(big[:7, :5], big[:5, 2:9])
    assert (p.a.ld, p.b.ld, p.a.copy, p.b.copy) == (12, 12, False, False)


def test_only_doubly_strided_operands_are_copied():
    a = np.zeros((8, 8), np.float32)[::2, ::2]  # both strides non-unit
    p = plan_of(a, np.zeros((4, 3), np.float32))
    assert p.a.copy and not p.b.copy
    assert plan_of(a[::-1].copy()[::-1], np.zeros((4, 3), np.float32)).a.copy  # negative stride


def test_batch_strides_and_broadcast():
    a = np.zeros((3, 4, 5), np.float32)
    p = plan_of(a, np.zeros((5, 2), np.float32))
    assert p.batch_shape == (3,) and p.a.batch_stride == 20 and p.b.batch_stride == 0 and not p.b.copy
    p = plan_of(np.zeros((1, 4, 5), np.float32), np.zeros((3, 5, 2), np.float32))
    assert p.a.batch_stride == 0 and p.b.batch_stride == 10 and not (p.a.copy or p.b.copy)
    # (2,1) against (3,): no single stride describes a's batch over (2,3) -> copy
    p = plan_of(np.zeros((2, 1, 4, 5), np.float32), np.zeros((3, 5, 2), np.float32))
    assert p.batch_shape == (2, 3) and p.a.copy and p.b.copy and p.a.batch_stride == 20
    # a batch made of two contiguous dims flattens to one stride
    p = plan_of(np.zeros((2, 3, 4, 5), np.float32), np.zeros((5, 2), np.float32))
    assert p.batch == 6 and p.a.batch_stride == 20 and not p.a.copy


def test_bad_shapes_name_both():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)"):
        plan.plan_matmul((3, 4), (16, 4), (5, 2), (8, 4), 4)
    with pytest.raises(ValueError, match="broadcast"):
        plan.plan_matmul((2, 3, 4), (48, 16, 4), (3, 4, 2), (32, 8, 4), 4)
    with pytest.raises(ValueError, match="2 dimensions"):
        plan.plan_matmul((4,), (4,), (4, 2), (8, 4), 4)


def test_row_chunks_respect_the_grid_limit():
    """An M past 65535 row tiles is split on the host; each launch's grid fits."""
    cfg = configs.DEFAULTS[configs.F32]["smem_tiled"]  # 16-row tiles
    M = 16 * 65535 * 2 + 5
    chunks = list(plan.row_chunks(M, cfg.block_tile[0]))
    assert chunks == [(0, 16 * 65535), (16 * 65535, 16 * 65535), (2 * 16 * 65535, 5)]
    assert all(cfg.grid(rows, 7, 1)[1] <= configs.MAX_GRID_Y for _, rows in chunks)
    assert list(plan.row_chunks(100, 16)) == [(0, 100)]
    with pytest.raises(ValueError, match="row_chunks"):
        cfg.grid(M, 7, 1)
    a = np.zeros((5, 8), np.float32)
    p = plan_of(a, np.zeros((8, 3), np.float32))
    assert plan.row_offset(p.a, 2) == 16
    p = plan_of(np.zeros((8, 5), np.float32).T, np.zeros((8, 3), np.float32))
    assert p.a.trans and plan.row_offset(p.a, 2) == 2


def test_dimensions_past_int32_are_a_clear_error():
    big = 2**31
    for a, b in (((big, 4), (4, 2)), ((3, 4), (4, big)), ((3, big), (big, 2))):
        with pytest.raises(ValueError, match=r"2\*\*31") as e:
            plan.plan_matmul(a, (4 * a[1], 4), b, (4 * b[1], 4), 4)
        assert str(a) in str(e.value) and str(b) in str(e.value)
    assert plan.plan_matmul((2**31 - 1, 1), (4, 4), (1, 1), (4, 4), 4).M == 2**31 - 1


def _int32(x: int) -> int:
    """x as a CUDA int holds it (two's complement wrap-around)."""
    return int(np.array(x, np.int64).astype(np.int32))


def test_k_and_n_within_a_tile_of_int32_are_refused_at_the_exact_limit():
    """The kernels step K by BK in 32-bit ints (k_tiles = (K + BK - 1) / BK, k0 += BK)
    and index columns up to the end of a BN-wide tile: within a tile of 2**31 that
    overflows and the kernel writes garbage, so the planner refuses such shapes."""
    def plan_k(K):
        return plan.plan_matmul((3, K), (4 * K, 4), (K, 2), (8, 4), 4)

    def plan_n(N):
        return plan.plan_matmul((3, 4), (16, 4), (4, N), (4 * N, 4), 4)

    assert plan_k(plan.K_LIMIT).K == plan.K_LIMIT and plan_n(plan.N_LIMIT).N == plan.N_LIMIT
    with pytest.raises(ValueError, match=rf"K={plan.K_LIMIT + 1} is over the kernels' limit of {plan.K_LIMIT} "
                                         rf"for K \(2\*\*31 - {plan.TILE_K_MAX}: the K loop"):
        plan_k(plan.K_LIMIT + 1)
    with pytest.raises(ValueError, match=rf"N={plan.N_LIMIT + 1} is over the kernels' limit of {plan.N_LIMIT}"):
        plan_n(plan.N_LIMIT + 1)
    for dtype in (configs.F32, configs.F64):
        for cfg in configs.all_configs(dtype):  # whichever config runs, its arithmetic stays in range
            bk, bn = cfg.tile_k, cfg.block_tile[1]
            assert _int32(plan.K_LIMIT + bk - 1) == plan.K_LIMIT + bk - 1  # k_tiles' numerator
            k_tiles = (plan.K_LIMIT + bk - 1) // bk
            assert _int32(k_tiles * bk) == k_tiles * bk                    # k0 after the last step
            n_end = -(-plan.N_LIMIT // bn) * bn
            assert _int32(n_end) == n_end                                   # end of the last column tile
    # the limit is tight: one more would overflow for the config with the largest tile
    assert _int32(plan.K_LIMIT + 1 + plan.TILE_K_MAX - 1) < 0
    assert _int32(-(-(plan.N_LIMIT + 1) // plan.TILE_N_MAX) * plan.TILE_N_MAX) < 0


def test_batch_chunks_respect_the_grid_limit():
    assert list(plan.batch_chunks(5)) == [(0, 5)]
    assert list(plan.batch_chunks(70000)) == [(0, 65535), (65535, 4465)]


# --------------------------------------------------------------------- tables
def test_config_tables_are_consistent():
    for dtype in (configs.F32, configs.F64):
        assert list(configs.DEFAULTS[dtype]) == gemm.kernel_names()
        for cfg in configs.all_configs(dtype):
            assert cfg.problems(dtype) == [], (cfg, dtype)
            assert cfg.name_expression(dtype, True, False).startswith(f"gemm_{cfg.rung}<{configs.CTYPES[dtype]},true,false,")
    with pytest.raises(ValueError, match="unknown GEMM kernel"):
        configs.KernelConfig("nope", ())
    assert configs.C("cp_async", 128, 128, 32, 64, 32, 2, 8, 4, 4).problems(configs.F32)  # too much smem


def test_untuned_config_by_shape_class():
    big, small = configs.UNTUNED[configs.F32]
    assert configs.untuned_config(np.float32, 4096, 4096, 1, 132) == big
    assert configs.untuned_config(np.float32, 256, 256, 1, 132) == small
    assert configs.untuned_config(np.float32, 4096, 4096, 1, 132, cc=75).rung == "warp_tiled"  # no cp.async


def test_kernels_sha256_definition(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.cu").write_bytes(b"B")
    (tmp_path / "sub" / "a.cuh").write_bytes(b"A")
    (tmp_path / "sub.cu").write_bytes(b"C")  # "sub.cu" < "sub/a.cuh" as strings, but not as paths
    import hashlib
    expected = hashlib.sha256(b"kernels/b.cu\0B" + b"kernels/sub/a.cuh\0A" + b"kernels/sub.cu\0C").hexdigest()
    assert sources.kernels_sha256(tmp_path) == expected


def test_kernels_sha256_matches_the_repository_definition():
    """The figure results files carry: repo-relative posix paths in pathlib order."""
    import hashlib
    import pathlib

    root = pathlib.Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for p in sorted((root / "kernels").rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    assert sources.kernels_sha256() == h.hexdigest()


def test_package_imports_without_cupy():
    assert isinstance(gemm.available(), bool)
    assert "cp_async" in gemm.kernel_names()


# ------------------------------------------------------------------- autotune
def test_shape_buckets():
    assert autotune.shape_bucket(1, 7, 33) == "m16_n16_k64_b1"
    assert autotune.shape_bucket(1000, 1024, 1025) == "m1024_n1024_k2048_b1"
    assert autotune.shape_bucket(10**6, 64, 64, 64) == "m16384_n64_k64_b64"
    assert autotune.shape_bucket(100, 100, 100, 3) == autotune.shape_bucket(128, 128, 128, 4)


def test_device_key_composition():
    key = autotune.device_key("NVIDIA H100 80GB HBM3 ", 90, "cupy-13.6.0|nvrtc-12.9", "0123456789abcdef" * 4)
    assert key == "NVIDIA H100 80GB HBM3|sm_90|cupy-13.6.0|nvrtc-12.9|kernels-0123456789abcdef"
    assert key != autotune.device_key("NVIDIA H100 80GB HBM3", 90, "cupy-13.6.0|nvrtc-12.9", "f" * 64)  # edited
    assert autotune.entry_key(np.float64, "TN", "m16_n16_k16_b1") == "float64|TN|m16_n16_k16_b1"


def test_cache_round_trip_is_atomic(cache_dir):
    cache = autotune.TuningCache()
    assert cache.path == cache_dir / "autotune.json"
    cfg = configs.UNTUNED[configs.F32][1]
    cache.put("devA", "float32|NN|b", cfg, {cfg.label(): 0.5})
    cache.put("devB", "float32|NN|b", configs.UNTUNED[configs.F32][0])
    assert autotune.TuningCache().get("devA", "float32|NN|b") == cfg
    assert autotune.TuningCache().get("devB", "float32|NN|b") == configs.UNTUNED[configs.F32][0]
    assert autotune.TuningCache().get("devC", "float32|NN|b") is None
    # no temp files left; the lock file stays (deleting it would let two writers lock different files)
    assert sorted(p.name for p in cache_dir.iterdir()) == ["autotune.json", "autotune.json.lock"]
    assert json.loads((cache_dir / "autotune.json").read_text())["version"] == autotune.CACHE_VERSION


@pytest.mark.parametrize("content", ["{not json", '{"version": 999, "devices": {}}', "[]"])
def test_damaged_cache_is_ignored_with_a_warning(cache_dir, content):
    (cache_dir / "autotune.json").write_text(content)
    with pytest.warns(RuntimeWarning, match="ignoring unreadable autotune cache"):
        assert autotune.TuningCache().get("dev", "k") is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        autotune.TuningCache().put("dev", "k", configs.UNTUNED[configs.F64][0])  # rewrites a good file
    assert autotune.TuningCache().get("dev", "k") == configs.UNTUNED[configs.F64][0]


class Problem:
    """An autotune.Runner whose launches, output and clock the test supplies: the
    tuner's logic without kernels. Its clock says a candidate's time is
    cost[label] ms (default 1), whatever the launches do."""

    def __init__(self, key="gpu|sm_90", dtype=np.float32, layout="NN", shape=(64, 64, 64, 1), cc=90, sm_count=132,
                 launch=None, output=None, precompile=None, cost=None):
        self.key, self.dtype, self.layout, self.cc, self.sm_count = key, np.dtype(dtype), layout, cc, sm_count
        self.M, self.N, self.K, self.batch = shape
        self._launch, self._output, self._precompile = launch, output, precompile
        self.cost, self.launched, self.timed = cost or {}, [], []

    def precompile(self, cands):
        if self._precompile is not None:
            self._precompile(cands)

    def launch(self, cfg):
        self.launched.append(cfg)
        if self._launch is not None:
            self._launch(cfg)

    def output(self):
        return self._output

    def time_ms(self, fn, n):
        for _ in range(n):
            fn()
        self.timed.append(n)
        return self.cost.get(self.launched[-1].label(), 1.0)


def test_autotuner_times_once_then_reuses(cache_dir):
    cands = autotune.candidates(np.float32, 90)
    fast = {cands[2].label(): 0.1}
    problem = Problem(layout="NT", shape=(1000, 1000, 1000, 1), cost=fast)
    tuner = autotune.Autotuner()
    assert tuner.choose(problem) == cands[2] and problem.timed
    again = Problem(layout="NT", shape=(1000, 1000, 1000, 1))
    assert tuner.choose(again) == cands[2] and not again.launched                 # memoized in process
    assert autotune.Autotuner().choose(again) == cands[2] and not again.launched  # persisted: a new process
    other = Problem(layout="NN", shape=(1000, 1000, 1000, 1))
    assert autotune.Autotuner().choose(other) in cands and other.launched          # new layout: tuned again
    assert all(c.rung != "cp_async" for c in autotune.candidates(np.float32, 75))


def test_tuning_off_uses_shape_class_default(cache_dir, monkeypatch):
    monkeypatch.setenv("TINYGRAD_DOT_AUTOTUNE", "0")
    problem = Problem(dtype=np.float64, launch=lambda cfg: pytest.fail("launched with tuning off"))
    cfg = autotune.Autotuner().choose(problem)
    assert cfg == configs.untuned_config(np.float64, 64, 64, 1, 132, 90)
    assert not (cache_dir / "autotune.json").exists()


def test_time_candidates_drops_wrong_or_failing_candidates():
    """Each candidate's output is compared with the first one's; a wrong one, one
    leaving an element unwritten, or one whose compile fails is dropped with a
    warning instead of aborting the matmul."""
    from tinygrad_dot.gemm.nvrtc import NvrtcError

    cands = configs.all_configs(np.float32)[:5]
    good = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    c = np.empty_like(good)

    def launch(cfg):
        i = cands.index(cfg)
        if i == 2:
            raise NvrtcError("NVRTC could not compile")
        c[...] = good
        if i == 1:
            c[0, 0] += 1.0          # wrong value
        if i == 3:
            c[2, 3] = np.nan        # left unwritten: stays poisoned (the NaN stands in for it)

    with pytest.warns(RuntimeWarning, match="dropping candidate") as rec:
        timings = autotune.time_candidates(cands, Problem(launch=launch, output=c), repeats=2)
    assert list(timings) == [cands[0].label(), cands[4].label()]
    msgs = " ".join(str(w.message) for w in rec)
    assert cands[1].label() in msgs and cands[2].label() in msgs and cands[3].label() in msgs
    assert "NvrtcError" in msgs and "differs from" in msgs

    # the first candidate failing: the next working one becomes the reference
    with pytest.warns(RuntimeWarning, match="dropping candidate"):
        timings = autotune.time_candidates([cands[2], cands[4], cands[0]], Problem(launch=launch, output=c), repeats=1)
    assert list(timings) == [cands[4].label(), cands[0].label()]


def test_autotuner_falls_back_when_every_candidate_fails(cache_dir):
    def launch(cfg):
        raise RuntimeError("cudaErrorLaunchFailure")

    def precompile(cands):
        raise RuntimeError("compile failed")

    with pytest.warns(RuntimeWarning) as rec:
        cfg = autotune.Autotuner().choose(Problem(key="gpu", launch=launch, precompile=precompile,
                                                  output=np.zeros((64, 64), np.float32)))
    assert any("no candidate ran correctly" in str(w.message) for w in rec)
    assert cfg == configs.untuned_config(np.float32, 64, 64, 1, 132, 90)
    # the fallback is cached like a tuned choice: a new process does not tune again
    (entry,) = json.loads((cache_dir / "autotune.json").read_text())["devices"]["gpu"].values()
    assert entry["fallback"] is True and entry["timings_ms"] == {}
    assert autotune.Autotuner().choose(Problem(key="gpu", launch=lambda cfg: pytest.fail("tuned again"))) == cfg


def test_cupy_fallback_compile_options_change_with_any_header(tmp_path, monkeypatch):
    """Without our libnvrtc, CuPy compiles and caches by (source, options): the
    options must carry the hash of every kernel file, headers included."""
    import shutil
    import sys
    import types

    from tinygrad_dot.gemm import compile as gemm_compile
    from tinygrad_dot.gemm import nvrtc

    seen = []

    class RawModule:
        def __init__(self, code, options, name_expressions):
            seen.append(options)

        def get_function(self, name):
            return name

    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(RawModule=RawModule))
    monkeypatch.setattr(nvrtc, "available", lambda: False)
    kdir = tmp_path / "kernels"
    shutil.copytree(sources.kernels_dir(), kdir)
    monkeypatch.setattr(sources, "kernels_dir", lambda: kdir)
    get = gemm_compile.get_function.__wrapped__  # bypass the in-process cache
    instance = configs.DEFAULTS[configs.F32]["smem_tiled"].instantiation(np.float32, False, False)
    get(*instance, 90)
    (kdir / "common.cuh").write_text((kdir / "common.cuh").read_text() + "\n// edited\n")
    get(*instance, 90)
    first, second = seen
    assert f"-DTD_KERNELS_SHA256={sources.kernels_sha256(kdir)[:16]}" in second
    assert first != second and not any(o.startswith("--gpu-architecture") for o in first)


def test_timing_groups_launches_between_one_event_pair():
    """Short launches are timed N at a time on the device's clock (one pair of CUDA
    events per group: host overhead overlaps instead of adding to each), in the
    autotuner and the benchmark alike; cuBLAS goes through the same helper."""
    import importlib
    import types

    assert autotune.launches_per_group(2.0) == 1 and autotune.launches_per_group(0.01) == 100
    assert autotune.launches_per_group(0.0) == 200 and autotune.launches_per_group(5.0, at_least=4) == 4

    cfg = configs.DEFAULTS[configs.F32]["smem_tiled"]
    problem = Problem(cost={cfg.label(): 0.01})  # 10 us per launch: groups of 100
    timings = autotune.time_candidates([cfg], problem, repeats=3)
    assert problem.timed == [1, 100, 100, 100] and len(problem.launched) == 1 + 1 + 300  # warm-up, probe, groups
    assert timings == {cfg.label(): 0.01}

    groups = []

    def time_ms(fn, n):
        for _ in range(n):
            fn()
        groups.append(n)
        return 0.01

    bench = importlib.import_module("benchmarks.gemm")
    done = []
    seconds = bench.time_gpu(types.SimpleNamespace(time_ms=time_ms), [lambda: done.append(0), lambda: done.append(1)],
                             20)
    assert groups == [1] + [100] * 5 and len(done) == 2 + 1 + 5 * 100 and done[:4] == [0, 1, 0, 1]
    assert seconds == 0.01 / 1e3


@pytest.fixture
def fresh_nvrtc():
    from tinygrad_dot.gemm import nvrtc

    nvrtc.library.cache_clear()
    yield nvrtc
    nvrtc.library.cache_clear()


def test_nvrtc_no_newer_than_the_driver_is_preferred(fresh_nvrtc, monkeypatch):
    import types

    nvrtc = fresh_nvrtc
    paths = ["/w/nvidia/cu13/lib/libnvrtc.so.13", "/w/nvidia/cuda_nvrtc/lib/libnvrtc.so.12"]
    monkeypatch.delenv("TINYGRAD_DOT_NVRTC", raising=False)
    monkeypatch.setattr(nvrtc, "_candidates", lambda: iter(paths))
    monkeypatch.setattr(nvrtc, "_load", lambda p: types.SimpleNamespace(_td_path=p))
    monkeypatch.setattr(nvrtc, "_lib_major", lambda lib: int(lib._td_path.rsplit(".", 1)[1]))
    for driver, expected in ((12, paths[1]), (13, paths[0]), (None, paths[0]), (11, paths[0])):
        monkeypatch.setattr(nvrtc, "_driver_major", lambda d=driver: d)
        nvrtc.library.cache_clear()
        assert nvrtc.library_path() == expected, driver
    monkeypatch.setenv("TINYGRAD_DOT_NVRTC", paths[0])  # an explicit choice wins
    monkeypatch.setattr(nvrtc, "_candidates", lambda: iter([paths[0], *paths]))
    monkeypatch.setattr(nvrtc, "_driver_major", lambda: 12)
    nvrtc.library.cache_clear()
    assert nvrtc.library_path() == paths[0]


def test_unloadable_cubin_falls_back_to_cupy_compile_once(monkeypatch, tmp_path):
    import sys
    import types

    from tinygrad_dot.gemm import compile as gemm_compile
    from tinygrad_dot.gemm import nvrtc

    class CUDADriverError(RuntimeError):
        pass

    made = []

    class RawModule:
        def __init__(self, path=None, code=None, options=(), name_expressions=()):
            made.append("path" if path else "code")
            self.path = path

        def get_function(self, name):
            if self.path:
                raise CUDADriverError("CUDA_ERROR_UNSUPPORTED_PTX_VERSION")
            return name

    cuda = types.SimpleNamespace(driver=types.SimpleNamespace(CUDADriverError=CUDADriverError))
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(RawModule=RawModule, cuda=cuda))
    monkeypatch.setattr(nvrtc, "available", lambda: True)
    monkeypatch.setattr(nvrtc, "version", lambda: (13, 0))
    monkeypatch.setattr(gemm_compile, "cached_cubin", lambda *a: (tmp_path / "x.cubin", "_Z4gemm"))
    monkeypatch.setattr(gemm_compile, "_own_cubins_load", True)
    get = gemm_compile.get_function.__wrapped__
    cfg = configs.DEFAULTS[configs.F32]["smem_tiled"]
    with pytest.warns(RuntimeWarning, match="compiling through CuPy"):
        assert get(*cfg.instantiation(np.float32, False, True), 90) == cfg.name_expression(np.float32, False, True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert get(*cfg.instantiation(np.float64, True, False), 90) == cfg.name_expression(np.float64, True, False)
    assert made == ["path", "code", "code"]  # the driver refused once; no further cubin tried


