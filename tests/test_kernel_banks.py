"""Shared-memory bank conflicts of the kernels' hot loops, from their own index
arithmetic (no GPU needed).

A small host program includes the kernel headers (under the emulation header,
as device "emu" does) and evaluates, for every lane of every warp of a block,
the offset functions the kernels themselves use for each shared-memory access of
the main K loop: WarpTile::a_fragment/b_fragment (the fragment reads),
InteriorCopy::slab_offset (the stores and cp.async copies of the interior
path) and TileCopy::store_offset (the guarded stores). Python then counts, per
access, the wavefronts shared memory needs under the usual bank model: 32 banks
of 4 bytes; a 32-bit access is served for all 32 lanes at once, a 64-bit one in
two half-warp phases, a 128-bit one in four quarter-warp phases; in a phase,
each bank serves one distinct 4-byte word per wavefront (lanes reading the same
word share it). An access is conflict-free when every phase takes one wavefront.
"""
import re
import shutil
import subprocess

import numpy as np
import pytest

from tinygrad_dot.gemm import configs, sources
from tinygrad_dot.runtime import emulated

FAST = ("cp_async", "warp_tiled")

pytestmark = pytest.mark.skipif(shutil.which(emulated.compiler()) is None, reason="no host C++ compiler")


def wavefronts(width: int, addresses: list) -> list:
    """Wavefronts per phase of one warp-wide access of `width` bytes per lane at
    the given byte addresses (32 lanes)."""
    lanes_per_phase = 32 // max(1, width // 4)
    out = []
    for p in range(0, 32, lanes_per_phase):
        words_per_bank = {}
        for addr in addresses[p:p + lanes_per_phase]:
            for w in range(addr // 4, addr // 4 + max(1, width // 4)):
                words_per_bank.setdefault(w % 32, set()).add(w)
        out.append(max(len(words) for words in words_per_bank.values()))
    return out


def test_bank_model():
    """The counter itself: known patterns give their known conflict degrees."""
    assert wavefronts(4, [4 * lane for lane in range(32)]) == [1]             # consecutive words
    assert wavefronts(4, [0] * 32) == [1]                                      # one word: broadcast
    assert wavefronts(4, [128 * lane for lane in range(32)]) == [32]           # one bank, 32 words
    assert wavefronts(16, [16 * lane for lane in range(32)]) == [1, 1, 1, 1]   # 512 contiguous bytes
    assert wavefronts(16, [32 * lane for lane in range(32)]) == [2, 2, 2, 2]   # every other 16 bytes
    assert wavefronts(8, [8 * lane for lane in range(32)]) == [1, 1]


def _fast_cases():
    for dtype in (configs.F32, configs.F64):
        for cfg in configs.all_configs(dtype):
            if cfg.rung in FAST:
                for layout in configs.LAYOUTS:
                    yield dtype, cfg, layout


def _register_blocked_cases():
    for dtype in (configs.F32, configs.F64):
        for cfg in configs.all_configs(dtype):
            if cfg.rung == "register_blocked":
                yield dtype, cfg


def _pad(cfg, dtype) -> int:
    """The shared rows' pad, read off configs.smem_bytes (which the compile test
    checks against ptxas' figure for every variant)."""
    p, size, stages = cfg.p, np.dtype(dtype).itemsize, cfg.p.get("STAGES", 1)
    pad = configs.vec_width(dtype)
    assert cfg.smem_bytes(dtype) == stages * p["BK"] * (p["BM"] + p["BN"] + 2 * pad) * size, cfg.label()
    return pad


def _harness() -> str:
    lines = ['#include "common.cuh"', '#include "thread_tile.cuh"', '#include "warp_tile.cuh"', "#include <cstdio>",
             r'''
static void emit(const char* id, const char* what, int width, int warp, const int* bytes) {
    std::printf("%s|%s|%d|%d", id, what, width, warp);
    for (int l = 0; l < 32; ++l) std::printf(" %d", bytes[l]);
    std::printf("\n");
}

// Every shared access of the fast rungs' main K loop, per warp.
template <typename T, bool TA, bool TB, int BM, int BN, int BK, int WM, int WN, int WNITER, int TM, int TN, int PAD>
void fast(const char* id) {
    using Tile = td::WarpTile<T, BM, BN, WM, WN, WNITER, TM, TN>;
    constexpr int V = td::vec_width<T>(), LDA_S = BM + PAD, LDB_S = BN + PAD, S = (int)sizeof(T);
    using ACopy = td::InteriorCopy<T, BK, BM, LDA_S, Tile::NTHREADS, !TA>;
    using BCopy = td::InteriorCopy<T, BK, BN, LDB_S, Tile::NTHREADS, TB>;
    static T dummy[1], slab[2 * BK * (BM + BN + 2 * PAD)];
    int b[32];
    for (int warp = 0; warp < Tile::NTHREADS / 32; ++warp) {
        for (int k = 0; k < 2; ++k) {
            for (int wm = 0; wm < Tile::WMITER; ++wm)
                for (int i = 0; i < TM; i += V) {
                    for (int l = 0; l < 32; ++l) b[l] = (Tile(warp * 32 + l).template a_fragment<LDA_S>(slab, k, wm) - slab + i) * S;
                    emit(id, "LDS A fragment", 16, warp, b);
                }
            for (int wn = 0; wn < WNITER; ++wn)
                for (int i = 0; i < TN; i += V) {
                    for (int l = 0; l < 32; ++l) b[l] = (Tile(warp * 32 + l).template b_fragment<LDB_S>(slab, k, wn) - slab + i) * S;
                    emit(id, "LDS B fragment", 16, warp, b);
                }
        }
        for (int r = 0; r < ACopy::ROUNDS; ++r)
            for (int j = 0; j < (TA ? 1 : V); ++j) {
                for (int l = 0; l < 32; ++l) b[l] = ACopy(dummy, 0, 0, 0, warp * 32 + l).slab_offset(r, j) * S;
                emit(id, TA ? "A copy (16 B)" : "STS A (transposing)", TA ? 16 : S, warp, b);
            }
        for (int r = 0; r < BCopy::ROUNDS; ++r)
            for (int j = 0; j < (TB ? V : 1); ++j) {
                for (int l = 0; l < 32; ++l) b[l] = BCopy(dummy, 0, 0, 0, warp * 32 + l).slab_offset(r, j) * S;
                emit(id, TB ? "STS B (transposing)" : "B copy (16 B)", TB ? S : 16, warp, b);
            }
    }
}

// register_blocked's transposing store of A (scalar, k-major), with row pitch LDS.
template <typename T, int BM, int BK, int NTHREADS, int LDS>
void rb_store(const char* id) {
    using Copy = td::TileCopy<T, BK, BM, LDS, NTHREADS, true, 1>;
    int b[32];
    for (int warp = 0; warp < NTHREADS / 32; ++warp)
        for (int r = 0; r < Copy::PER_THREAD; ++r) {
            for (int l = 0; l < 32; ++l) b[l] = Copy::store_offset(r, warp * 32 + l, 0) * (int)sizeof(T);
            emit(id, "STS A (transposing)", (int)sizeof(T), warp, b);
        }
}
''', "int main() {"]
    for dtype, cfg, layout in _fast_cases():
        p = cfg.p
        ctype = configs.CTYPES[dtype]
        args = [ctype, str(layout[0] == "T").lower(), str(layout[1] == "T").lower(),
                *[str(p[k]) for k in ("BM", "BN", "BK", "WM", "WN", "WNITER", "TM", "TN")], str(_pad(cfg, dtype))]
        lines.append(f'    fast<{",".join(args)}>("{dtype.name} {cfg.label()} {layout}");')
    for dtype, cfg in _register_blocked_cases():
        p = cfg.p
        args = [configs.CTYPES[dtype], str(p["BM"]), str(p["BK"]), str(cfg.threads)]
        pad = _pad(cfg, dtype)
        lines.append(f'    rb_store<{",".join(args)},{p["BM"] + pad}>("{dtype.name} {cfg.label()}");')
        # the layout before the pad, to show the analysis sees what the review found
        lines.append(f'    rb_store<{",".join(args)},{p["BM"]}>("{dtype.name} {cfg.label()} unpadded");')
    lines.append("    return 0;\n}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def accesses(tmp_path_factory):
    """{case id: [(what, width, warp, [32 byte addresses])]}"""
    folder = tmp_path_factory.mktemp("banks")
    (folder / "banks.cpp").write_text(_harness())
    cmd = [emulated.compiler(), "-std=c++20", "-O0", "-w", "-pthread", "-include", str(emulated.HEADER),
           f"-I{sources.kernels_dir()}", str(folder / "banks.cpp"), "-o", str(folder / "banks")]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    out = subprocess.run([str(folder / "banks")], check=True, capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        case, what, width, rest = line.split("|")
        warp, *addresses = map(int, rest.split())
        found.setdefault(case, []).append((what, int(width), warp, addresses))
    return found


def _worst(rows):
    """(worst degree, description) over the accesses: wavefronts per phase."""
    worst, where = 0, ""
    for what, width, warp, addresses in rows:
        degree = max(wavefronts(width, addresses))
        if degree > worst:
            worst, where = degree, f"{what} in warp {warp}"
    return worst, where


def test_fast_rungs_hot_loops_are_bank_conflict_free(accesses):
    cases = [f"{dt.name} {cfg.label()} {layout}" for dt, cfg, layout in _fast_cases()]
    assert cases and all(c in accesses for c in cases)
    conflicted = []
    for case in cases:
        kinds = {what for what, *_ in accesses[case]}
        assert {"LDS A fragment", "LDS B fragment"} <= kinds and len(kinds) == 4, (case, kinds)
        worst, where = _worst(accesses[case])
        if worst != 1:
            conflicted.append(f"{case}: {worst}-way ({where})")
    assert not conflicted, "shared-memory bank conflicts:\n" + "\n".join(conflicted)


def test_register_blocked_store_is_padded(accesses):
    """The pad turns register_blocked's 8-way conflicted transposing store (what the
    SASS review measured) into a conflict-free one."""
    for dtype, cfg in _register_blocked_cases():
        case = f"{dtype.name} {cfg.label()}"
        assert _worst(accesses[case])[0] == 1, case
        assert _worst(accesses[case + " unpadded"])[0] == 8, case  # 8 consecutive k per thread row, one bank
