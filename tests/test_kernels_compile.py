"""Static checks of every kernel instantiation, no GPU needed.

Every (rung, tile config, dtype, layout) the package can launch is compiled
through NVRTC for sm_80 and sm_90 with the runtime's exact options
(tinygrad_dot.gemm.compile.compile_options) and must use zero spill bytes; the
vectorized rungs' SASS must have 128-bit global loads (LDG.E.128, and 16-byte
LDGSTS for cp.async where the layout allows) and no local-memory traffic; the dmma rung's SASS
must run on the FP64 tensor cores (DMMA) and copy every operand with 16-byte LDGSTS. `pytest -s` prints registers,
shared memory and an occupancy estimate per variant.
Tools come from pip: nvidia-cuda-nvrtc-cu12 and nvidia-cuda-nvdisasm.
"""
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from tinygrad_dot.gemm import configs, nvrtc, report

ARCHS = (80, 90)
LDG_128 = re.compile(r"\bLDG\.E\.128\b")
LDGSTS_128 = re.compile(r"\bLDGSTS\.E(\.\w+)*\.128\b")


def expected_global_loads(rung, layout):
    """The 128-bit loads each vectorized rung must contain. In the cp.async rung an
    operand whose unit-stride index is m or n (A transposed, B not) is copied with
    16-byte cp.async (LDGSTS); the others (A row-major, B transposed) are staged
    through registers with 128-bit loads (LDG.E.128)."""
    if rung in ("vectorized", "warp_tiled"):
        return [LDG_128]
    if rung == "cp_async":
        a_async, b_async = layout[0] == "T", layout[1] == "N"
        return ([LDGSTS_128] if a_async or b_async else []) + ([LDG_128] if not (a_async and b_async) else [])
    if rung == "dmma":  # both operands keep their global orientation in shared memory
        return [LDGSTS_128]
    return []


# The instruction each rung's math must compile to, where it is not FFMA/DFMA:
# dmma's m8n8k4 .f64 products on the FP64 tensor cores (nvdisasm spells them
# DMMA.884 for sm_80 and DMMA.8x8x4 for sm_90).
EXPECTED_MATH = {"dmma": [re.compile(r"\bDMMA\.(884|8x8x4)\b")]}
LOCAL_MEMORY = re.compile(r"\b(LDL|STL)\b")

pytestmark = pytest.mark.skipif(not nvrtc.available(),
                                reason="libnvrtc not found (pip install nvidia-cuda-nvrtc-cu12)")


@pytest.fixture(scope="module")
def compiled():
    """{(rung, cc): (CompileResult, names)} for every rung and architecture."""
    jobs = [(rung, cc) for cc in ARCHS for rung in configs.RUNGS if cc >= configs.RUNGS[rung].min_sm]
    with ThreadPoolExecutor(max_workers=2) as pool:  # ctypes drops the GIL while NVRTC compiles
        results = list(pool.map(lambda job: report.compile_rung(*job), jobs))
    return dict(zip(jobs, results))


def test_every_variant_compiles_without_spills(compiled):
    rows = [r for (rung, cc), res in compiled.items() for r in report.reports_from(*res, cc)]
    expected = sum(1 for cc in ARCHS for rung in configs.RUNGS if cc >= configs.RUNGS[rung].min_sm
                   for _ in report.variants(rung))
    assert len(rows) == expected
    print(f"\nNVRTC {'.'.join(map(str, nvrtc.version()))}: {len(rows)} variants")
    for r in rows:
        print(r.row())
    spilled = [r.row() for r in rows if r.spill_bytes or r.stack_bytes]
    assert not spilled, "variants with spills or a stack frame:\n" + "\n".join(spilled)
    for r in rows:
        assert r.smem_bytes == r.config.smem_bytes(r.dtype), f"configs.smem_bytes is out of date for {r.row()}"
        assert r.blocks_per_sm >= 1, r.row()


def test_vectorized_rungs_sass(compiled):
    if report.nvdisasm_path() is None:
        pytest.skip("nvdisasm not found (pip install nvidia-cuda-nvdisasm)")
    checked = 0
    for (rung, cc), (result, names) in compiled.items():
        functions = report.sass(result.cubin)
        for expr, (_, _, layout) in names.items():
            text = functions[result.lowered[expr]]
            assert not LOCAL_MEMORY.search(text), f"{expr} on sm_{cc} touches local memory"
            for pattern in expected_global_loads(rung, layout) + EXPECTED_MATH.get(rung, []):
                assert pattern.search(text), f"{expr} on sm_{cc} lacks {pattern.pattern}"
                checked += 1
    assert checked > 0


def test_ptxas_log_parser():
    log = ("ptxas info    : Compiling entry function '_Zfoo' for 'sm_90'\n"
           "ptxas info    : Function properties for _Zfoo\n"
           "ptxas         .     8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n"
           "ptxas info    : Used 128 registers, used 1 barriers, 13056 bytes smem, 400 bytes cmem[0]\n")
    assert report.parse_ptxas_log(log) == {
        "_Zfoo": dict(registers=128, spill_bytes=16, stack_bytes=8, smem_bytes=13056)}


def test_nvrtc_error_names_the_source():
    with pytest.raises(nvrtc.NvrtcError, match="broken.cu"):
        nvrtc.compile_cubin("__global__ void k() { undefined_thing(); }", "broken.cu", ["--gpu-architecture=sm_80"], [])


def test_cubin_disk_cache(tmp_path, monkeypatch):
    """Cubins land on disk with their lowered names; a second lookup (as a second
    process would do) loads instead of compiling, and a damaged entry is rebuilt."""
    from tinygrad_dot.gemm import compile as gemm_compile

    monkeypatch.setenv("TINYGRAD_DOT_CACHE_DIR", str(tmp_path))
    variants = [configs.DEFAULTS[configs.F32]["smem_tiled"].instantiation(configs.F32, False, True),
                configs.DEFAULTS[configs.F64]["smem_tiled"].instantiation(configs.F64, True, False)]
    gemm_compile.precompile(variants, 80, workers=2)
    assert len(list((tmp_path / "cubin").glob("*.cubin"))) == 2
    calls = []
    real = nvrtc.compile_cubin
    monkeypatch.setattr(nvrtc, "compile_cubin", lambda *a: calls.append(a) or real(*a))
    path, lowered = gemm_compile.cached_cubin(*variants[0], 80)
    assert not calls and path.read_bytes()[:4] == b"\x7fELF" and lowered.startswith("_Z15gemm_smem_tiled")
    path.with_suffix(".json").write_text("{broken")
    assert gemm_compile.cached_cubin(*variants[0], 80)[1] == lowered and len(calls) == 1
    assert gemm_compile.cubin_key("x", 80) != gemm_compile.cubin_key("x", 90)
