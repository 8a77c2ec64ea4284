"""Static resource report of every kernel instantiation (no GPU needed).

compile_all() compiles each rung's source once per architecture through NVRTC
with the runtime's exact options, naming every (config, dtype, layout) the
package can launch, and parses ptxas' -v log into registers, spill bytes and
shared memory per variant, with an occupancy estimate. sass() disassembles a
cubin with nvdisasm (pip: nvidia-cuda-nvdisasm) for instruction-level checks.
Run `python -m tinygrad_dot.gemm.report` for the table.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import site
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from . import compile as gemm_compile
from . import configs, nvrtc, sources

# Per-SM limits used by the occupancy estimate (A100 = sm_80, H100 = sm_90).
SM_LIMITS = {
    80: dict(regs=65536, smem=164 * 1024, threads=2048, blocks=32),
    90: dict(regs=65536, smem=228 * 1024, threads=2048, blocks=32),
}
RESERVED_SMEM_PER_BLOCK = 1024  # the driver reserves 1 KB of shared memory per block


@dataclass
class VariantReport:
    config: configs.KernelConfig
    dtype: object
    layout: str
    cc: int
    registers: int
    spill_bytes: int  # spill stores + spill loads
    stack_bytes: int
    smem_bytes: int
    threads: int

    @property
    def blocks_per_sm(self) -> int:
        lim = SM_LIMITS[self.cc]
        warps = -(-self.threads // 32)
        regs_per_warp = -(-max(self.registers, 1) * 32 // 256) * 256  # allocated in 256-register units
        by_regs = lim["regs"] // (regs_per_warp * warps)
        by_smem = lim["smem"] // (self.smem_bytes + RESERVED_SMEM_PER_BLOCK)
        return min(by_regs, by_smem, lim["threads"] // self.threads, lim["blocks"])

    @property
    def occupancy(self) -> float:
        """Resident warps per SM over the maximum (64)."""
        return self.blocks_per_sm * (-(-self.threads // 32)) / 64

    def row(self) -> str:
        return (f"sm_{self.cc} {self.config.label():44s} {self.dtype.name:7s} {self.layout} "
                f"regs={self.registers:3d} spill={self.spill_bytes:4d}B smem={self.smem_bytes:6d}B "
                f"threads={self.threads:4d} blocks/SM={self.blocks_per_sm:2d} occupancy={self.occupancy:.0%}")


_ENTRY = re.compile(r"Compiling entry function '(\S+)' for 'sm_(\d+)'")
_SPILL = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")


def parse_ptxas_log(log: str) -> dict:
    """mangled name -> dict(registers, spill_bytes, stack_bytes, smem_bytes)."""
    out, current = {}, None
    for line in log.splitlines():
        m = _ENTRY.search(line)
        if m:
            current = out.setdefault(m.group(1), dict(registers=0, spill_bytes=0, stack_bytes=0, smem_bytes=0))
            continue
        if current is None:
            continue
        m = _SPILL.search(line)
        if m:
            current["stack_bytes"] = int(m.group(1))
            current["spill_bytes"] = int(m.group(2)) + int(m.group(3))
        m = _USED.search(line)
        if m:
            current["registers"] = int(m.group(1))
            sm = _SMEM.search(line)
            current["smem_bytes"] = int(sm.group(1)) if sm else 0
    return out


def variants(rung: str):
    """(config, dtype, trans_a, trans_b) of every instantiation of one rung."""
    for dtype in (configs.F32, configs.F64):
        for cfg in configs.all_configs(dtype):
            if cfg.rung == rung:
                for layout in configs.LAYOUTS:
                    yield cfg, dtype, layout[0] == "T", layout[1] == "T"


def compile_rung(rung: str, cc: int):
    """Compile every instantiation of one rung for sm_<cc> in one NVRTC program.
    Returns (CompileResult, {name expression: (config, dtype, layout)}). Results
    are cached on disk (<cache>/report/), keyed like the runtime's cubins."""
    names = {cfg.name_expression(dt, ta, tb): (cfg, dt, ("T" if ta else "N") + ("T" if tb else "N"))
             for cfg, dt, ta, tb in variants(rung)}
    source = configs.RUNGS[rung].source
    base = sources.cache_root() / "report" / gemm_compile.cubin_key(rung + "\0" + "\0".join(names), cc)
    try:
        meta = json.loads(base.with_suffix(".json").read_text())
        return nvrtc.CompileResult(base.with_suffix(".cubin").read_bytes(), meta["log"], meta["lowered"]), names
    except (OSError, ValueError, KeyError):
        pass
    result = nvrtc.compile_cubin(sources.read_source(source), source, gemm_compile.compile_options(cc), list(names))
    gemm_compile.atomic_write(base.with_suffix(".cubin"), result.cubin)
    gemm_compile.atomic_write(base.with_suffix(".json"),
                              json.dumps({"log": result.log, "lowered": result.lowered}).encode())
    return result, names


def reports_from(result, names, cc: int) -> list:
    stats = parse_ptxas_log(result.log)
    out = []
    for expr, (cfg, dtype, layout) in names.items():
        s = stats.get(result.lowered[expr])
        if s is None:
            raise RuntimeError(f"ptxas printed no resource line for {expr} on sm_{cc}")
        out.append(VariantReport(cfg, dtype, layout, cc, s["registers"], s["spill_bytes"], s["stack_bytes"],
                                 s["smem_bytes"], cfg.threads))
    return out


def compile_all(ccs=(80, 90)) -> list:
    """VariantReports of every instantiation for each architecture."""
    out = []
    for cc in ccs:
        for rung in configs.RUNGS:
            if cc >= configs.RUNGS[rung].min_sm:
                out.extend(reports_from(*compile_rung(rung, cc), cc))
    return out


def nvdisasm_path():
    found = shutil.which("nvdisasm")
    if found:
        return found
    for root in [*site.getsitepackages(), site.getusersitepackages(), *sys.path]:
        for hit in sorted(glob.glob(os.path.join(root or ".", "nvidia", "*", "bin", "nvdisasm"))):
            return hit
    return None


def sass(cubin: bytes) -> dict:
    """mangled function name -> its SASS text, via nvdisasm."""
    tool = nvdisasm_path()
    if tool is None:
        raise FileNotFoundError("nvdisasm not found: pip install nvidia-cuda-nvdisasm")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([tool, "-c", f.name], check=True, capture_output=True, text=True).stdout
    out, current = {}, None
    for line in text.splitlines():
        m = re.match(r"\s*\.section\s+\.text\.(\S+?),", line)
        if m:
            current = m.group(1)
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def main():
    print(f"NVRTC {'.'.join(map(str, nvrtc.version()))} from {nvrtc.library_path()}")
    for r in compile_all():
        print(r.row())


if __name__ == "__main__":
    main()
