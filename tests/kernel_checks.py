"""Checks shared by the tests of kernel files outside the GEMM ladder."""
from tinygrad_dot.gemm import compile as gemm_compile, nvrtc, report, sources


def spilled(source: str, names: list, cc: int) -> dict:
    """Compile every instantiation `names` of kernels/`source` for sm_<cc> with the
    runtime's NVRTC options; {mangled name: ptxas stats} of those that spill or use a
    stack frame (empty when all are clean). Fails if ptxas reported on fewer kernels."""
    result = nvrtc.compile_cubin(sources.read_source(source), source, gemm_compile.compile_options(cc), names)
    stats = report.parse_ptxas_log(result.log)
    assert len(stats) == len(names), result.log[:2000]
    return {name: s for name, s in stats.items() if s["spill_bytes"] or s["stack_bytes"]}
