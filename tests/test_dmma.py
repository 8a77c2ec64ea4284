"""The DMMA rung (kernels/gemm_dmma.cu, kernels/mma_f64.cuh): float64 on the FP64
tensor cores.

The GEMM itself runs on "emu" in test_gemm_emulation.py (every layout, odd
shapes, batches, every config). Here: the emulated mma.m8n8k4 .f64 against the
PTX ISA's fragment layout written out independently in NumPy (per-lane fragments
in, per-lane outputs out), which is what makes an emulated GEMM pass mean the
kernel indexes fragments as the hardware does; and the rung's place in dispatch
(float64 only, the untuned float64 pick on sm_80+, never a float32 choice).
"""
import ctypes
import subprocess

import numpy as np
import pytest

from tinygrad_dot import gemm
from tinygrad_dot.gemm import autotune, configs, sources
from tinygrad_dot.runtime import emulated

# Test kernels: one m8n8k4 product per warp (lane's a, b, c0, c1 from arrays
# indexed by thread), and MT x NT products at once (the batched exchange the
# GEMM's K loop uses), both through the emulation header like every kernel.
SOURCE = r"""
#include "mma_f64.cuh"

__global__ void one(const double* a, const double* b, const double* c, double* d) {
    const int tid = threadIdx.x;
    double acc[2] = {c[2 * tid], c[2 * tid + 1]};
    td::mma_m8n8k4_f64(acc, a[tid], b[tid]);
    d[2 * tid] = acc[0];
    d[2 * tid + 1] = acc[1];
}

constexpr int MT = 2, NT = 3;
__global__ void tiles(const double* a, const double* b, const double* c, double* d) {
    const int tid = threadIdx.x;
    double fa[MT], fb[NT], acc[MT][NT][2];
    for (int i = 0; i < MT; ++i) fa[i] = a[tid * MT + i];
    for (int j = 0; j < NT; ++j) fb[j] = b[tid * NT + j];
    for (int i = 0; i < MT; ++i)
        for (int j = 0; j < NT; ++j)
            for (int h = 0; h < 2; ++h) acc[i][j][h] = c[((tid * MT + i) * NT + j) * 2 + h];
    td::mma_m8n8k4_f64_tiles<MT, NT>(acc, fa, fb);
    for (int i = 0; i < MT; ++i)
        for (int j = 0; j < NT; ++j)
            for (int h = 0; h < 2; ++h) d[((tid * MT + i) * NT + j) * 2 + h] = acc[i][j][h];
}

extern "C" int run(int which, void** args, unsigned threads, char* err, size_t err_len) {
    return which == 0 ? td_emu::launch_kernel(&one, args, dim3(1), dim3(threads), 1, err, err_len)
                      : td_emu::launch_kernel(&tiles, args, dim3(1), dim3(threads), 1, err, err_len);
}
"""


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    cxx = emulated.compiler()
    emulated.compiler_version(cxx)  # a clear error when there is no compiler
    out = tmp_path_factory.mktemp("mma") / "mma.so"
    cpp = out.with_suffix(".cpp")
    cpp.write_text(SOURCE)
    subprocess.run([cxx, *emulated.CXXFLAGS, "-include", str(emulated.HEADER), f"-I{sources.kernels_dir()}",
                    str(cpp), "-o", str(out)], check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(out))


def launch(lib, which, threads, *arrays):
    holders = [ctypes.c_void_p(a.ctypes.data) for a in arrays]
    args = (ctypes.c_void_p * len(holders))(*(ctypes.cast(ctypes.pointer(h), ctypes.c_void_p) for h in holders))
    err = ctypes.create_string_buffer(256)
    assert lib.run(which, args, ctypes.c_uint(threads), err, ctypes.c_size_t(len(err))) == 0, err.value


# The PTX ISA's layout ("Matrix Fragments for mma.m8n8k4 with .f64"), lane by lane.
LANES = np.arange(32)
GROUP, IN_GROUP = LANES >> 2, LANES % 4


def fragments(A, B, C):
    """Per-lane a0 (A is 8x4: row laneid>>2, col laneid%4), b0 (B is 4x8: row
    laneid%4, col laneid>>2) and c0, c1 (row groupID, col 2*threadID_in_group + i)."""
    a = A[GROUP, IN_GROUP]
    b = B[IN_GROUP, GROUP]
    c = np.stack([C[GROUP, 2 * IN_GROUP + i] for i in (0, 1)], axis=1)
    return a, b, c


def integers(rng, *shape):
    """Small integers as doubles: every sum is exact, so any order of the FMAs agrees."""
    return rng.integers(-8, 9, size=shape).astype(np.float64)


def test_emulated_mma_matches_the_ptx_fragment_layout(lib):
    """Two warps, each its own A, B, C: lane l's outputs are D = A B + C at
    (l >> 2, 2 (l % 4) + i), and no warp sees the other's fragments."""
    rng = np.random.default_rng(0)
    warps = 2
    mats = [(integers(rng, 8, 4), integers(rng, 4, 8), integers(rng, 8, 8)) for _ in range(warps)]
    frags = [fragments(*m) for m in mats]
    a = np.concatenate([f[0] for f in frags])
    b = np.concatenate([f[1] for f in frags])
    c = np.concatenate([f[2] for f in frags]).ravel()
    d = np.full(64 * warps, np.nan)
    launch(lib, 0, 32 * warps, a, b, c, d)
    for w, (A, B, C) in enumerate(mats):
        expected = fragments(A, B, A @ B + C)[2]
        np.testing.assert_array_equal(d[64 * w:64 * (w + 1)].reshape(32, 2), expected)


def test_emulated_mma_tiles_are_independent_products(lib):
    """mma_m8n8k4_f64_tiles<2, 3>: acc[i][j] += A_i B_j for every pair, one exchange."""
    rng = np.random.default_rng(1)
    MT, NT, threads = 2, 3, 64
    As = [[integers(rng, 8, 4) for _ in range(MT)] for _ in range(threads // 32)]
    Bs = [[integers(rng, 4, 8) for _ in range(NT)] for _ in range(threads // 32)]
    Cs = [[[integers(rng, 8, 8) for _ in range(NT)] for _ in range(MT)] for _ in range(threads // 32)]
    a = np.zeros((threads, MT))
    b = np.zeros((threads, NT))
    c = np.zeros((threads, MT, NT, 2))
    for w in range(threads // 32):
        lanes = slice(32 * w, 32 * (w + 1))
        for i in range(MT):
            a[lanes, i] = fragments(As[w][i], Bs[w][0], Cs[w][i][0])[0]
        for j in range(NT):
            b[lanes, j] = fragments(As[w][0], Bs[w][j], Cs[w][0][j])[1]
        for i in range(MT):
            for j in range(NT):
                c[lanes, i, j] = fragments(As[w][i], Bs[w][j], Cs[w][i][j])[2]
    d = np.full(c.shape, np.nan)
    launch(lib, 1, threads, a, b, c, d)
    for w in range(threads // 32):
        for i in range(MT):
            for j in range(NT):
                expected = fragments(As[w][i], Bs[w][j], As[w][i] @ Bs[w][j] + Cs[w][i][j])[2]
                np.testing.assert_array_equal(d[32 * w:32 * (w + 1), i, j], expected)


def test_float64_only():
    """dmma is never a float32 choice and says why when asked for one by name."""
    assert "dmma" not in gemm.kernel_names(np.float32) and "dmma" in gemm.kernel_names(np.float64)
    assert not [c for c in configs.all_configs(configs.F32) if c.rung == "dmma"]
    assert not [c for c in autotune.candidates(np.float32, 90) if c.rung == "dmma"]
    assert all(configs.untuned_config(np.float32, m, m, 1, 132, 90).rung != "dmma" for m in (64, 4096))
    (problem,) = configs.DEFAULTS[configs.F32]["dmma"].problems(configs.F32)
    assert "float64 only" in problem
    with pytest.raises(RuntimeError, match="dmma computes float64 only, not float32"):
        gemm.matmul(np.ones((9, 5), np.float32), np.ones((5, 3), np.float32), kernel="dmma")


def test_float64_dispatch_picks_dmma_on_sm80_and_up():
    """Untuned float64 runs on the FP64 tensor cores from sm_80 (both shape
    classes), on the CUDA-core warp_tiled rung below; "auto" tunes over dmma."""
    for cc in (80, 90):
        assert {configs.untuned_config(np.float64, m, m, 1, 132, cc).rung for m in (64, 4096)} == {"dmma"}
    assert configs.untuned_config(np.float64, 4096, 4096, 1, 132, 75).rung == "warp_tiled"
    assert {c.rung for c in autotune.candidates(np.float64, 80)} >= {"dmma", "cp_async"}
    assert not [c for c in autotune.candidates(np.float64, 75) if c.rung == "dmma"]
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 37, 21)), rng.standard_normal((21, 45))
    call = gemm.dispatcher("emu").plan(a, b, "dmma")
    assert call.config == configs.DEFAULTS[configs.F64]["dmma"]
    c = gemm.matmul(a, b, kernel="dmma")
    np.testing.assert_allclose(c, a @ b, rtol=0, atol=1e-13 * np.abs(a @ b).max())


def test_fragment_reads_are_free_of_bank_conflicts():
    """td::Slab's pitch rule, for every dmma config and both orientations of each
    operand: a 64-bit shared load is served per half-warp, and lane 4g + t reads
    element (x0 + g, k0 + t) at g * X_STRIDE + t * K_STRIDE doubles; the 16 lanes
    of a half-warp must hit 16 distinct 8-byte bank pairs (offsets mod 16 doubles).
    The pitch is a line plus 4 doubles, as in mma_f64.cuh and configs.smem_bytes."""
    def pitch_ok(x_stride, k_stride):
        for half in (LANES[:16], LANES[16:]):
            banks = {((lane >> 2) * x_stride + (lane & 3) * k_stride) % 16 for lane in half}
            if len(banks) != 16:
                return False
        return True

    configs_seen = 0
    for cfg in configs.all_configs(configs.F64):
        if cfg.rung != "dmma":
            continue
        p = cfg.p
        for line in (p["BM"], p["BN"]):
            assert pitch_ok(p["BK"] + 4, 1), cfg.label()    # k-contiguous slab: (x, k) at x * LD + k
            assert pitch_ok(1, line + 4), cfg.label()        # x-contiguous slab: (x, k) at k * LD + x
        configs_seen += 1
    assert configs_seen >= 2
    assert not pitch_ok(1, 64 + 2)  # the rule has teeth: rung 5's pad of one vector would conflict 2-way
