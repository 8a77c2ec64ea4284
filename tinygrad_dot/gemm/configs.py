"""The GEMM ladder's rungs and their tile configurations, in one place.

Pure Python (no CuPy): the CUDA dispatch, the autotuner, the NVRTC compile checks
and the CPU emulation all build kernel names, launch geometry and shared-memory
sizes from these tables, so they cannot drift apart.

Every kernel has the signature
    template <typename T, bool TRANS_A, bool TRANS_B, int...tile params>
    __global__ void gemm_<rung>(int M, int N, int K,
        const T* A, long long lda, long long batch_stride_a,
        const T* B, long long ldb, long long batch_stride_b,
        T* C, long long ldc, long long batch_stride_c, int batch)
and is launched with 1-D blocks and grid (ceil(N/BN), ceil(M/BM), batch); a batch
over the 65535 grid limit is split over launches (plan.batch_chunks), and so is
an M over 65535 row tiles (plan.row_chunks).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..runtime import MAX_GRID, Signature

# The kernels' parameters (above), as launches pack them.
GEMM_SIGNATURE = Signature("i32", "i32", "i32", "ptr", "i64", "i64", "ptr", "i64", "i64", "ptr", "i64", "i64", "i32")
MAX_GRID_X, MAX_GRID_Y, MAX_GRID_Z = MAX_GRID
STATIC_SMEM_LIMIT = 48 * 1024  # bytes of static __shared__ per block
LAYOUTS = ("NN", "NT", "TN", "TT")  # first letter: A transposed?, second: B
CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def vec_width(dtype) -> int:
    """Elements per 128-bit access: 4 float32 or 2 float64."""
    return 16 // np.dtype(dtype).itemsize


@dataclass(frozen=True)
class Rung:
    name: str          # what users pass as kernel="..."
    source: str        # file under kernels/
    params: tuple      # template int parameter names, in template order
    min_sm: int        # lowest compute capability (major*10+minor) it runs on
    description: str
    dtypes: tuple = ("float32", "float64")  # what it computes in (dmma: the FP64 tensor cores only)

    @property
    def kernel(self) -> str:
        return "gemm_" + self.name


RUNGS = {
    r.name: r
    for r in (
        Rung("smem_tiled", "gemm_smem_tiled.cu", ("TILE",), 0, "shared-memory tiling, one output per thread"),
        Rung("register_blocked", "gemm_register_blocked.cu", ("BM", "BN", "BK", "TM", "TN"), 0,
             "2-D register blocking (TM x TN outputs per thread)"),
        Rung("vectorized", "gemm_vectorized.cu", ("BM", "BN", "BK", "TM", "TN"), 0,
             "128-bit global loads, padded transposed shared tiles"),
        Rung("warp_tiled", "gemm_warp_tiled.cu", ("BM", "BN", "BK", "WM", "WN", "WNITER", "TM", "TN"), 0,
             "warp tiling over 128-bit loads"),
        Rung("cp_async", "gemm_cp_async.cu", ("BM", "BN", "BK", "WM", "WN", "WNITER", "TM", "TN", "STAGES"), 80,
             "multi-stage cp.async pipeline over warp tiling"),
        Rung("dmma", "gemm_dmma.cu", ("BM", "BN", "BK", "WM", "WN", "STAGES"), 80,
             "FP64 tensor cores (mma.sync m8n8k4 .f64) fed by a cp.async pipeline", ("float64",)),
    )
}


@dataclass(frozen=True)
class KernelConfig:
    """One rung with concrete tile sizes (dtype and layout are chosen at launch)."""
    rung: str
    values: tuple

    def __post_init__(self):
        if self.rung not in RUNGS:
            raise ValueError(f"unknown GEMM kernel {self.rung!r}; known: {', '.join(RUNGS)}")
        if len(self.values) != len(RUNGS[self.rung].params):
            raise ValueError(f"{self.rung} takes {RUNGS[self.rung].params}, got {self.values}")

    @property
    def p(self) -> dict:
        return dict(zip(RUNGS[self.rung].params, self.values))

    @property
    def block_tile(self) -> tuple:
        p = self.p
        return (p["TILE"], p["TILE"]) if "TILE" in p else (p["BM"], p["BN"])

    @property
    def tile_k(self) -> int:
        """How far along K one step of the kernel's K loop goes (BK; TILE for smem_tiled)."""
        p = self.p
        return p.get("BK", p.get("TILE"))

    @property
    def threads(self) -> int:
        p = self.p
        if self.rung == "smem_tiled":
            return p["TILE"] ** 2
        if "WM" in p:
            return (p["BM"] // p["WM"]) * (p["BN"] // p["WN"]) * 32
        return (p["BM"] // p["TM"]) * (p["BN"] // p["TN"])

    def smem_bytes(self, dtype) -> int:
        """Static shared memory of the kernel (mirrors the arrays declared in kernels/)."""
        p, size = self.p, np.dtype(dtype).itemsize
        if self.rung == "smem_tiled":
            return 2 * p["TILE"] * (p["TILE"] + 1) * size
        stages = p.get("STAGES", 1)
        if self.rung == "dmma":  # td::Slab: either orientation of a line padded by 4 doubles, the larger
            slab = lambda x: max(x * (p["BK"] + 4), p["BK"] * (x + 4))  # noqa: E731
            return stages * (slab(p["BM"]) + slab(p["BN"])) * size
        pad = vec_width(dtype)  # every other 2-D rung pads its shared rows by one 128-bit vector
        return stages * p["BK"] * (p["BM"] + pad + p["BN"] + pad) * size

    def label(self) -> str:
        return f"{self.rung}<{','.join(map(str, self.values))}>"

    def name_expression(self, dtype, trans_a: bool, trans_b: bool) -> str:
        """The C++ template instantiation, as NVRTC name expressions spell it."""
        ctype = CTYPES[np.dtype(dtype)]
        args = [ctype, str(bool(trans_a)).lower(), str(bool(trans_b)).lower(), *map(str, self.values)]
        return f"{RUNGS[self.rung].kernel}<{','.join(args)}>"

    def instantiation(self, dtype, trans_a: bool, trans_b: bool) -> tuple:
        """(kernels/ source, name expression): what a runtime compiles and loads."""
        return RUNGS[self.rung].source, self.name_expression(dtype, trans_a, trans_b)

    def grid(self, M: int, N: int, batch: int) -> tuple:
        bm, bn = self.block_tile
        gy = -(-M // bm)
        if gy > MAX_GRID_Y:
            raise ValueError(f"M={M} needs {gy} row blocks of {bm}; the grid allows {MAX_GRID_Y} "
                             "(split the rows with plan.row_chunks)")
        return (-(-N // bn), gy, max(1, min(batch, MAX_GRID_Z)))

    def problems(self, dtype) -> list:
        """Reasons this config cannot be built for dtype (empty when it can)."""
        p, v, out = self.p, vec_width(dtype), []
        if np.dtype(dtype).name not in RUNGS[self.rung].dtypes:
            out.append(f"{self.rung} computes {' and '.join(RUNGS[self.rung].dtypes)} only, not {np.dtype(dtype).name} "
                       "(the FP64 tensor cores' mma.m8n8k4 has no float32 form; cp_async is the fastest float32 rung)")
        if self.threads > 1024 or self.threads < 32 and self.rung != "smem_tiled":
            out.append(f"{self.threads} threads per block")
        if self.smem_bytes(dtype) > STATIC_SMEM_LIMIT:
            out.append(f"{self.smem_bytes(dtype)} B of static shared memory > {STATIC_SMEM_LIMIT}")
        if self.rung in ("vectorized", "warp_tiled", "cp_async"):
            if p["TM"] % v or p["TN"] % v or p["BK"] % v:
                out.append(f"TM, TN and BK must be multiples of the vector width {v}")
        if self.rung == "dmma" and (p["BM"] % p["WM"] or p["BN"] % p["WN"] or p["WM"] % 8 or p["WN"] % 8
                                    or p["BK"] % 8):
            out.append("warp tiles must divide the block tile, and WM, WN and BK be multiples of 8 (m8n8k4 products)")
        return out


def C(rung, *values) -> KernelConfig:
    return KernelConfig(rung, tuple(values))


F32, F64 = np.dtype(np.float32), np.dtype(np.float64)

# The default of each rung per dtype: what kernel="<rung>" runs and what the
# emulation tests exercise.
DEFAULTS = {
    F32: {
        "smem_tiled": C("smem_tiled", 16),
        "register_blocked": C("register_blocked", 128, 128, 8, 8, 8),
        "vectorized": C("vectorized", 128, 128, 8, 8, 8),
        # BK=16, 8x16 per lane, 128 threads: room in the register budget for the
        # guard-free interior loop (td::interior_fits), 2 blocks per SM
        "warp_tiled": C("warp_tiled", 128, 128, 16, 64, 64, 4, 8, 4),
        "cp_async": C("cp_async", 128, 128, 16, 64, 64, 4, 8, 4, 2),
        "dmma": C("dmma", 64, 64, 8, 32, 32, 3),  # float64 only: problems() refuses it, so dispatch says why
    },
    # float64 has half the registers per value and half the FMA rate: smaller
    # per-thread tiles keep it free of spills with enough warps in flight.
    F64: {
        "smem_tiled": C("smem_tiled", 16),
        "register_blocked": C("register_blocked", 128, 64, 8, 8, 4),
        "vectorized": C("vectorized", 128, 64, 8, 8, 4),
        "warp_tiled": C("warp_tiled", 64, 64, 8, 32, 32, 2, 4, 4),
        "cp_async": C("cp_async", 64, 64, 8, 32, 32, 2, 4, 4, 3),
        # 4 warps of 32x32 (4 x 4 m8n8k4 products each): 128 B of shared memory
        # read per DMMA, half of what the SM's shared memory can deliver at the
        # DMMA rate; 36 KB of slabs leaves room for several blocks per SM.
        "dmma": C("dmma", 64, 64, 8, 32, 32, 3),
    },
}

# What the autotuner times for kernel="auto" (defaults of the fast rungs included).
CANDIDATES = {
    F32: [
        # (cp_async<128,128,8,64,32,2,8,4,3>, 256 threads at the 128-register cap, is out:
        # NVRTC spilled 8-28 B in some of its compiles and not in others, so CI could not
        # vouch for what the runtime would build.)
        C("cp_async", 128, 128, 16, 64, 64, 4, 8, 4, 2),
        C("cp_async", 64, 64, 8, 32, 32, 2, 4, 4, 3),
        C("warp_tiled", 128, 128, 8, 64, 32, 2, 8, 4),
        C("warp_tiled", 128, 128, 16, 64, 64, 4, 8, 4),
        C("vectorized", 128, 128, 8, 8, 8),
    ],
    F64: [
        C("cp_async", 64, 64, 8, 32, 32, 2, 4, 4, 3),
        C("cp_async", 64, 64, 8, 32, 32, 2, 4, 4, 4),
        C("cp_async", 128, 64, 8, 64, 32, 2, 4, 4, 3),
        C("cp_async", 128, 128, 8, 64, 32, 2, 4, 4, 2),
        C("warp_tiled", 64, 64, 8, 32, 32, 2, 4, 4),
        C("vectorized", 128, 64, 8, 8, 4),
        C("dmma", 64, 64, 8, 32, 32, 3),
        C("dmma", 128, 64, 8, 64, 32, 2),   # 64x32 warp tiles: 96 B of shared memory per DMMA
        C("dmma", 128, 128, 8, 64, 32, 2),  # 8 warps: half the L2 traffic per flop of 64x64 (48 KB of slabs)
        C("dmma", 32, 32, 8, 16, 16, 3),    # small problems: more blocks
    ],
}

# Untuned choice per shape class: big tiles when they fill the GPU, small ones
# when big tiles would leave most SMs idle.
# The big float32 tile: BK=16 and an 8x16 tile per lane (0.75 B of shared memory
# per FFMA), 128 threads at up to 255 registers (2 blocks per SM).
UNTUNED = {
    F32: (C("cp_async", 128, 128, 16, 64, 64, 4, 8, 4, 2), C("cp_async", 64, 64, 8, 32, 32, 2, 4, 4, 3)),
    # The FP64 tensor cores (twice the DFMA peak) on sm_80+; below that
    # untuned_config falls back to the CUDA-core warp_tiled rung.
    F64: (C("dmma", 64, 64, 8, 32, 32, 3), C("dmma", 32, 32, 8, 16, 16, 3)),
}


def untuned_config(dtype, M: int, N: int, batch: int, sm_count: int, cc: int = 90) -> KernelConfig:
    big, small = UNTUNED[np.dtype(dtype)]
    bm, bn = big.block_tile
    choice = big if math.ceil(M / bm) * math.ceil(N / bn) * batch >= sm_count else small
    if cc < RUNGS[choice.rung].min_sm:
        return DEFAULTS[np.dtype(dtype)]["warp_tiled"]
    return choice


def all_configs(dtype) -> list:
    """Every distinct config the package can launch for dtype (a rung's default for a
    dtype it does not compute in, e.g. dmma's for float32, is not one: it is there
    for kernel="dmma" to be refused with a reason)."""
    seen = dict.fromkeys([*DEFAULTS[np.dtype(dtype)].values(), *CANDIDATES[np.dtype(dtype)],
                          *UNTUNED[np.dtype(dtype)]])
    return [cfg for cfg in seen if np.dtype(dtype).name in RUNGS[cfg.rung].dtypes]
