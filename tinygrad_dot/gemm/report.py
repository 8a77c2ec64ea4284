"""Static resource report of every kernel instantiation (no GPU needed).

compile_all() compiles each rung's source once per architecture through NVRTC
with the runtime's exact options, naming every (config, dtype, layout) the
package can launch, and parses ptxas' -v log into registers, spill bytes and
shared memory per variant, with an occupancy estimate. sass() disassembles a
cubin with nvdisasm (pip: nvidia-cuda-nvdisasm); hot_loop() reads the main K
loop out of that SASS: on sm_90 every instruction that is not an FMA takes an
issue slot from the FMAs, so the FMA share of that loop is a ceiling on the
fraction of peak, and its shared-memory bytes per FMA say whether shared memory
can keep up (the SM moves 128 B/clock for 128 FP32 FMA lanes: 1 B per FMA is
the roof).

`python -m tinygrad_dot.gemm.report` prints the table (`make kernel-report`);
`--json FILE` writes it as JSON, `--sass-dir DIR` writes every variant's SASS
with an index.json naming the configs the dispatcher picks untuned for 4096^3
NN on an H100 (132 SMs).
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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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
    return _compile_cached(configs.RUNGS[rung].source, names, cc, rung), names


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


# ------------------------------------------------------------- the hot K loop
_INSN = re.compile(r"/\*([0-9a-f]+)\*/\s+(@!?U?P[T0-9]+\s+)?([A-Z][A-Za-z0-9_.]*)\s*([^;]*);")
_LABEL = re.compile(r"^\s*(\.L_x_\d+):")
_TARGET = re.compile(r"`\((\.L_x_\d+)\)")
# Scalar FMAs per lane of one instruction; an MMA's m*n*k products spread over 32 lanes.
_FMA_OPS = ("FFMA", "DFMA", "DMMA", "HMMA")  # HFMA2.MMA here is a move idiom


def _fmas_per_lane(op: str) -> float:
    base = op.split(".")[0]
    if base in ("FFMA", "DFMA"):
        return 1.0
    if base == "HFMA2":
        return 2.0
    if base in ("DMMA", "HMMA"):
        m = re.search(r"\.(\d+)x(\d+)x(\d+)", op)  # sm_90 spells the shape DMMA.8x8x4, sm_80 DMMA.884
        if m:
            return int(m.group(1)) * int(m.group(2)) * int(m.group(3)) / 32
        m = re.search(r"\.(\d+)\b", op)
        digits = m.group(1) if m else ""
        shapes = {"884": (8, 8, 4), "16816": (16, 8, 16), "1688": (16, 8, 8), "16832": (16, 8, 32),
                  "16416": (16, 4, 16)}
        mnk = shapes.get(digits)
        return mnk[0] * mnk[1] * mnk[2] / 32 if mnk else 0.0
    return 0.0


def _shared_bytes(op: str) -> int:
    """Bytes per lane of a shared-memory access (LDS/STS/LDSM) from its width suffix."""
    parts = op.split(".")
    if parts[0] == "LDSM":  # ldmatrix: one 32-bit register per lane per 8x8 matrix
        return 4 * {"2": 2, "4": 4}.get(parts[-1], 1)
    for width, size in (("128", 16), ("64", 8), ("U16", 2), ("S16", 2), ("U8", 1), ("S8", 1)):
        if width in parts[1:]:
            return size
    return 4


def parse_sass(text: str) -> list:
    """[(address, predicate, opcode, operands, label or None)] for each instruction;
    label is the .L_x_ label that precedes the instruction, if any."""
    out, pending = [], None
    for line in text.splitlines():
        m = _LABEL.match(line)
        if m:
            pending = m.group(1)
            continue
        m = _INSN.search(line)
        if m:
            out.append((int(m.group(1), 16), (m.group(2) or "").strip(), m.group(3), m.group(4), pending))
            pending = None
    return out


@dataclass
class LoopStats:
    start: int          # address of the loop head (the back edge's target)
    end: int            # address of the back edge (BRA)
    instructions: int   # every instruction in [start, end], taken or not
    fmas: int           # FFMA/DFMA/DMMA/HMMA instructions
    fma_lanes: float    # scalar FMAs per lane (an MMA counts its m*n*k / 32)
    lds_bytes: int      # per lane: LDS/LDSM widths summed
    sts_bytes: int
    counts: dict = field(default_factory=dict)  # opcode (without modifiers) -> count
    predicated_off: int = 0   # @!PT instructions: never executed, still issued
    nested_loops: int = 0     # back edges inside: an inner loop left rolled
    peeled_copies: int = 1    # loops with the same FMA count (guard-free interior + guarded edge)

    @property
    def fma_share(self) -> float:
        return self.fmas / self.instructions if self.instructions else 0.0

    @property
    def lds_bytes_per_fma(self) -> float:
        return self.lds_bytes / self.fma_lanes if self.fma_lanes else float("inf")

    def as_dict(self) -> dict:
        return dict(start=self.start, end=self.end, instructions=self.instructions, fmas=self.fmas,
                    fma_share=round(self.fma_share, 4), lds_bytes_per_fma=round(self.lds_bytes_per_fma, 4),
                    lds_bytes=self.lds_bytes, sts_bytes=self.sts_bytes, predicated_off=self.predicated_off,
                    nested_loops=self.nested_loops, peeled_copies=self.peeled_copies, counts=self.counts)


def _loop_stats(insns: list, lo: int, hi: int) -> LoopStats:
    body = insns[lo:hi + 1]
    counts, fmas, lanes, lds, sts, off = {}, 0, 0.0, 0, 0, 0
    for _, pred, op, _, _ in body:
        base = op.split(".")[0]
        counts[base] = counts.get(base, 0) + 1
        if base in _FMA_OPS:
            fmas += 1
            lanes += _fmas_per_lane(op)
        elif base in ("LDS", "LDSM"):
            lds += _shared_bytes(op)
        elif base == "STS":
            sts += _shared_bytes(op)
        if pred == "@!PT":
            off += 1
    return LoopStats(body[0][0], body[-1][0], len(body), fmas, lanes, lds, sts, dict(sorted(counts.items())), off)


def hot_loop(text: str) -> LoopStats | None:
    """The main K loop of one function's SASS, or None if it has no loop with FMAs.

    Every backward branch closes a loop [target, branch]. The main K loop is the
    one with the most FMA instructions. A kernel that peels its edge tiles has two
    such loops with the same FMAs (a guard-free one for interior tiles and a
    guarded one for the last K tiles and edge blocks); the interior one, the one
    with the fewest instructions, is what a large GEMM spends its time in, and
    peeled_copies says there were several. Instructions are counted statically:
    everything between the loop head and the back edge, executed or not."""
    insns = parse_sass(text)
    where = {label: i for i, (_, _, _, _, label) in enumerate(insns) if label}
    loops = []
    for i, (addr, _, op, args, _) in enumerate(insns):
        if op.split(".")[0] != "BRA":
            continue
        m = _TARGET.search(args)
        if m and m.group(1) in where and where[m.group(1)] <= i:
            loops.append((where[m.group(1)], i))
    stats = [(lo, hi, _loop_stats(insns, lo, hi)) for lo, hi in loops]
    stats = [t for t in stats if t[2].fmas]
    if not stats:
        return None
    most = max(t[2].fmas for t in stats)
    same = [t for t in stats if t[2].fmas == most]
    lo, hi, best = min(same, key=lambda t: t[2].instructions)
    best.nested_loops = sum(1 for a, b in loops if lo <= a and b < hi)
    best.peeled_copies = len(same)
    return best


# --------------------------------------------------- one variant, fully read
@dataclass
class VariantAnalysis:
    """ptxas resources plus the hot loop of one instantiation."""
    resources: VariantReport
    loop: LoopStats | None
    expression: str
    sass: str = field(repr=False, default="")

    def as_dict(self) -> dict:
        r = self.resources
        return dict(config=r.config.label(), rung=r.config.rung, values=list(r.config.values),
                    dtype=r.dtype.name, layout=r.layout, cc=r.cc, expression=self.expression,
                    registers=r.registers, spill_bytes=r.spill_bytes, stack_bytes=r.stack_bytes,
                    smem_bytes=r.smem_bytes, threads=r.threads, blocks_per_sm=r.blocks_per_sm,
                    occupancy=round(r.occupancy, 4), hot_loop=self.loop.as_dict() if self.loop else None)

    def row(self) -> str:
        lp = self.loop
        tail = (f"loop={lp.instructions:5d} FMA={lp.fmas:5d} share={lp.fma_share:6.1%} "
                f"B/FMA={lp.lds_bytes_per_fma:.2f}" if lp else "no FMA loop")
        return f"{self.resources.row()} {tail}"


def _compile_cached(source: str, names: dict, cc: int, tag: str):
    """One NVRTC program for the name expressions in `names`, cached on disk
    (<cache>/report/) under the kernels' sha256, the options and the names."""
    base = sources.cache_root() / "report" / gemm_compile.cubin_key(tag + "\0" + "\0".join(names), cc)
    try:
        meta = json.loads(base.with_suffix(".json").read_text())
        return nvrtc.CompileResult(base.with_suffix(".cubin").read_bytes(), meta["log"], meta["lowered"])
    except (OSError, ValueError, KeyError):
        pass
    result = nvrtc.compile_cubin(sources.read_source(source), source, gemm_compile.compile_options(cc), list(names))
    gemm_compile.atomic_write(base.with_suffix(".cubin"), result.cubin)
    gemm_compile.atomic_write(base.with_suffix(".json"),
                              json.dumps({"log": result.log, "lowered": result.lowered}).encode())
    return result


def analyses_from(result, names, cc: int) -> list:
    functions = sass(result.cubin)
    out = []
    for rep, (expr, _) in zip(reports_from(result, names, cc), names.items()):
        text = functions[result.lowered[expr]]
        out.append(VariantAnalysis(rep, hot_loop(text), expr, text))
    return out


def analyse(cfg, dtype, layout: str = "NN", cc: int = 90) -> VariantAnalysis:
    """Compile just one instantiation (cached) and read its resources and hot loop:
    what the CI check of the untuned pick needs, without compiling the ladder."""
    dtype = np.dtype(dtype)
    expr = cfg.name_expression(dtype, layout[0] == "T", layout[1] == "T")
    names = {expr: (cfg, dtype, layout)}
    result = _compile_cached(configs.RUNGS[cfg.rung].source, names, cc, "variant")
    return analyses_from(result, names, cc)[0]


UNTUNED_SHAPE = (4096, 4096, 4096)
H100_SMS = 132


def untuned_picks() -> dict:
    """dtype name -> the config configs.untuned_config picks for 4096^3 NN on an H100."""
    M, N, _ = UNTUNED_SHAPE
    return {dt.name: configs.untuned_config(dt, M, N, 1, H100_SMS, 90) for dt in (configs.F32, configs.F64)}


def _sass_name(a: VariantAnalysis) -> str:
    r = a.resources
    label = re.sub(r"[^A-Za-z0-9]+", "_", r.config.label()).strip("_")
    return f"{label}_{r.dtype.name}_{r.layout}_sm{r.cc}.sass"


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tinygrad_dot.gemm.report", description=__doc__.split("\n")[0])
    parser.add_argument("--json", metavar="FILE", help="write every variant's figures to FILE as JSON")
    parser.add_argument("--sass-dir", metavar="DIR", help="write each variant's SASS and an index.json there")
    parser.add_argument("--cc", type=int, action="append", help="architectures (default: 80 and 90)")
    parser.add_argument("--rung", action="append", choices=list(configs.RUNGS), help="only these rungs (default: all)")
    args = parser.parse_args(argv)
    ccs = tuple(args.cc or (80, 90))
    print(f"NVRTC {'.'.join(map(str, nvrtc.version()))} from {nvrtc.library_path()}")
    found = []
    for cc in ccs:
        for rung in args.rung or configs.RUNGS:
            if cc >= configs.RUNGS[rung].min_sm:
                found.extend(analyses_from(*compile_rung(rung, cc), cc))
    for a in found:
        print(a.row())
    # The untuned picks for 4096^3 NN on sm_90, compiled alone if their rung was left out.
    picks = {}
    for name, cfg in untuned_picks().items():
        match = [a for a in found if a.resources.config == cfg and a.resources.dtype.name == name
                 and a.resources.layout == "NN" and a.resources.cc == 90]
        picks[name] = match[0] if match else analyse(cfg, np.dtype(name), "NN", 90)
        print(f"untuned {name} pick for 4096^3 NN on an H100: {picks[name].row()}")
    if args.json:
        doc = dict(nvrtc=".".join(map(str, nvrtc.version())), kernels_sha256=sources.kernels_sha256(),
                   untuned_4096={name: a.as_dict() for name, a in picks.items()},
                   variants=[a.as_dict() for a in found])
        gemm_compile.atomic_write(Path(args.json), json.dumps(doc, indent=1).encode())
    if args.sass_dir:
        out = Path(args.sass_dir)
        out.mkdir(parents=True, exist_ok=True)
        index = dict(shape=list(UNTUNED_SHAPE), layout="NN", sm_count=H100_SMS, untuned={}, variants={})
        for a in [*found, *picks.values()]:
            (out / _sass_name(a)).write_text(a.sass)
            index["variants"][_sass_name(a)] = a.expression
        for name, a in picks.items():
            index["untuned"][name] = dict(config=a.resources.config.label(), expression=a.expression,
                                          sass=_sass_name(a))
        (out / "index.json").write_text(json.dumps(index, indent=1))


if __name__ == "__main__":
    main()
