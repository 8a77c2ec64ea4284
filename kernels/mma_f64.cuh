// mma_f64.cuh: the FP64 tensor-core instruction (mma.sync m8n8k4 .f64, sm_80+) and
// what the DMMA rung needs around it.
//
// One warp computes D(8x8) = A(8x4) B(4x8) + C(8x8) in doubles. Each lane holds
// one element of A, one of B and two of C/D (PTX ISA, "Matrix Fragments for
// mma.m8n8k4 with .f64 floating point type"), with lane = 4 * g + t:
//     g = lane >> 2 (groupID), t = lane & 3 (threadID_in_group)
//     A (row-major fragment):    a0 = A(g, t)
//     B (column-major fragment): b0 = B(t, g)
//     C, D:                      c_i = C(g, 2 t + i), i = 0, 1
// So a lane reads operand element (x = g, k = t) of both A (x = m) and B (x = n):
// one index rule for both operands, which is what FragmentReader encodes.
//
// Under TD_EMULATION (device "emu", CUDA threads as fibers) the instruction is
// emulated by exchanging the fragments of each warp through per-block scratch
// with barriers. The emulator's barrier is block-wide, so an emulated mma must be
// executed by every warp of the block the same number of times (true in a GEMM's
// K loop, where every warp runs every k step).
#pragma once
#include "common.cuh"

namespace td {

template <typename T> struct IsDouble { static constexpr bool value = false; };
template <> struct IsDouble<double> { static constexpr bool value = true; };

#ifdef TD_EMULATION
// The m8n8k4 rule itself, for one lane: d += A B restricted to the two outputs
// this lane holds, reading A(g, k) from lane 4 g + k's a and B(k, n) from lane
// 4 n + k's b. a and b point at lane 0's value of one fragment; consecutive lanes
// are `stride` doubles apart.
inline void mma_m8n8k4_f64_lane(int lane, const double* a, const double* b, int stride, double (&d)[2]) {
    const int g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 2; ++i) {
        const int n = 2 * t + i;
        double sum = d[i];
        for (int k = 0; k < 4; ++k) sum += a[(4 * g + k) * stride] * b[(4 * n + k) * stride];
        d[i] = sum;
    }
}
#endif

// MT x NT independent m8n8k4 products of one warp: acc[i][j] += A_i B_j, where
// lane's a[i] and b[j] are its fragments of A_i and B_j. On the GPU MT * NT DMMA
// instructions; emulated, one exchange of all MT + NT fragments per call (two
// barriers), not one per product.
template <int MT, int NT>
__device__ __forceinline__ void mma_m8n8k4_f64_tiles(double (&acc)[MT][NT][2], const double (&a)[MT],
                                                     const double (&b)[NT]) {
#ifdef TD_EMULATION
    constexpr int SLOTS = MT + NT;
    // [warp][lane][fragment]: __shared__ is per block in the emulation (one OS
    // thread runs a block's fibers), sized for CUDA's largest block (32 warps).
    static thread_local double scratch[32][32][SLOTS];
    const unsigned tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const int warp = (int)(tid / 32), lane = (int)(tid % 32);
    for (int i = 0; i < MT; ++i) scratch[warp][lane][i] = a[i];
    for (int j = 0; j < NT; ++j) scratch[warp][lane][MT + j] = b[j];
    __syncthreads();  // the warp's fragments are all published
    for (int i = 0; i < MT; ++i)
        for (int j = 0; j < NT; ++j)
            mma_m8n8k4_f64_lane(lane, &scratch[warp][0][i], &scratch[warp][0][MT + j], SLOTS, acc[i][j]);
    __syncthreads();  // everyone has read them: the next call may overwrite
#else
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
            // Not volatile: a pure function of its operands, so ptxas may
            // interleave the DMMAs with the next k step's fragment loads.
            asm("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0, %1}, {%2}, {%3}, {%0, %1};\n"
                : "+d"(acc[i][j][0]), "+d"(acc[i][j][1])
                : "d"(a[i]), "d"(b[j]));
#endif
}

// One m8n8k4 product: d += A B for this lane's fragments (see the top of the file).
__device__ __forceinline__ void mma_m8n8k4_f64(double (&d)[2], double a, double b) {
    double acc[1][1][2] = {{{d[0], d[1]}}};
    const double fa[1] = {a}, fb[1] = {b};
    mma_m8n8k4_f64_tiles<1, 1>(acc, fa, fb);
    d[0] = acc[0][0][0];
    d[1] = acc[0][0][1];
}

// ------------------------------------------------------------ shared slabs
// A BK x BX tile of one operand (x = m for A, n for B) kept in shared memory in
// the orientation it has in global memory, so every operand is copied with
// 16-byte cp.async, transposed layouts included (no register staging):
//   K_CONTIG (unit stride along k: A row-major, B transposed): (x, k) at x * LD + k
//   otherwise (unit stride along x):                          (x, k) at k * LD + x
// A warp's fragment read touches (x0 + g, k0 + t) for g < 8, t < 4; a 64-bit
// shared load is served per half-warp (4 values of g by 4 of t) and is free of
// bank conflicts when its 16 offsets differ modulo 16 doubles (128 bytes, the 32
// banks). The 4 lines it spans then have to start at 0, 4, 8, 12 (mod 16), i.e.
// LD = 4 or 12 (mod 16): a line (a multiple of 8 doubles) plus 4.
template <int BK, int BX, bool K_CONTIG>
struct Slab {
    static constexpr int PAD = 4;
    static constexpr int LD = K_CONTIG ? BK + PAD : BX + PAD;
    static constexpr int X_STRIDE = K_CONTIG ? LD : 1;  // elements between (x, k) and (x + 1, k)
    static constexpr int K_STRIDE = K_CONTIG ? 1 : LD;
    // Both orientations get the same slab size, so the shared-memory footprint
    // does not depend on the layout (configs.py mirrors this).
    static constexpr int ELEMS = BX * (BK + PAD) > BK * (BX + PAD) ? BX * (BK + PAD) : BK * (BX + PAD);
    static_assert(BK % 8 == 0 && BX % 8 == 0, "slab lines of whole fragments (8 along x, 2 k steps of 4)");
    static_assert(LD % 16 == 4 || LD % 16 == 12, "a pitch of 4 or 12 (mod 16) doubles: conflict-free fragment reads");

    // Issue the cp.async copies of the tile at (x0, k0) (zero-filled outside
    // [0, X) x [0, K)). TileCopy copies in global orientation when told the
    // operand is not k-contiguous; for a k-contiguous operand the roles of its
    // two indices are swapped (k is the contiguous one, x the strided one).
    template <typename T, int NTHREADS>
    __device__ __forceinline__ static void copy_async(T* __restrict__ smem, const T* __restrict__ g, long long ld,
                                                      int x0, int k0, int X, int K, bool vec_ok, int tid) {
        if (K_CONTIG)
            TileCopy<T, BX, BK, LD, NTHREADS, false, vec_width<T>()>::copy_async(smem, g, ld, k0, x0, K, X, vec_ok,
                                                                               tid);
        else
            TileCopy<T, BK, BX, LD, NTHREADS, false, vec_width<T>()>::copy_async(smem, g, ld, x0, k0, X, K, vec_ok,
                                                                               tid);
    }

    // This lane's offset of element (x_warp + g, t): add F * 8 * X_STRIDE for
    // fragment F along x and kk * K_STRIDE for k step kk (both compile-time).
    __device__ __forceinline__ static int lane_offset(int x_warp, int lane) {
        return (x_warp + (lane >> 2)) * X_STRIDE + (lane & 3) * K_STRIDE;
    }
};

}  // namespace td
