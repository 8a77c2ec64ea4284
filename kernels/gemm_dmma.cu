// Rung 6 of the GEMM ladder: float64 on the FP64 tensor cores (DMMA, sm_80+).
//
// The one technique: the math is mma.sync.aligned.m8n8k4.row.col.f64 instead of
// DFMA. On A100 and H100 the FP64 tensor cores have twice the DFMA peak of the
// CUDA cores, and cuBLAS DGEMM runs on them, so a CUDA-core float64 kernel (rungs
// 1-5) can reach only about 0.4-0.5 of cuBLAS however well it is tiled. A DMMA is
// 256 FMAs from one instruction, so issue slots stop mattering; what is left is
// feeding it: each k step of 4 a lane reads one double of A per 8-row fragment
// and one of B per 8-column fragment (mma_f64.cuh for the lane layout).
//
// Around it, the pipeline of rung 5: STAGES slabs of shared memory filled by
// cp.async while the warps compute on the slab loaded STAGES-1 steps earlier,
// one barrier per k tile. Unlike rung 5 every operand goes through cp.async:
// the slabs keep each operand's global orientation (the m8n8k4 fragments can be
// read from either with conflict-free 64-bit loads, see td::Slab), so nothing
// is transposed through registers. The block tile BM x BN is split into warp
// tiles WM x WN, each (WM/8) x (WN/8) m8n8k4 products accumulated in registers;
// the epilogue writes a lane's two adjacent outputs per product with one
// guarded 128-bit store. Edge tiles are zero-filled by the copies, so any M, N,
// K works. float64 only: the instruction has no float32 form.
#include "mma_f64.cuh"

namespace td {

// The warp layout of the rung, with the register budget __launch_bounds__ uses.
template <int BM, int BN, int WM, int WN>
struct DmmaWarps {
    static constexpr int WARPS_N = BN / WN;
    static constexpr int NTHREADS = (BM / WM) * WARPS_N * 32;
    static constexpr int MT = WM / 8, NT = WN / 8;  // m8n8k4 products per warp and k step, along m and n
    // accumulators (2 doubles per product) and the MT + NT fragments, in 32-bit registers
    static constexpr int MIN_BLOCKS = min_blocks_for(NTHREADS, 4 * MT * NT + 2 * (MT + NT));
    static_assert(BM % WM == 0 && BN % WN == 0, "warp tiles must divide the block tile");
    static_assert(WM % 8 == 0 && WN % 8 == 0, "a warp tile is made of 8 x 8 products");
};

}  // namespace td

template <typename T, bool TRANS_A, bool TRANS_B, int BM, int BN, int BK, int WM, int WN, int STAGES>
__global__ void __launch_bounds__(td::DmmaWarps<BM, BN, WM, WN>::NTHREADS, td::DmmaWarps<BM, BN, WM, WN>::MIN_BLOCKS)
gemm_dmma(TD_GEMM_PARAMS(T)) {
    static_assert(td::IsDouble<T>::value, "gemm_dmma runs float64 only: mma.m8n8k4 has no float32 form");
    static_assert(STAGES >= 2, "a pipeline needs at least two stages");
    using Warps = td::DmmaWarps<BM, BN, WM, WN>;
    constexpr int MT = Warps::MT, NT = Warps::NT;
    // A is k-contiguous unless transposed; B is k-contiguous when transposed.
    using ASlab = td::Slab<BK, BM, !TRANS_A>;
    using BSlab = td::Slab<BK, BN, TRANS_B>;
    __shared__ __align__(16) T As[STAGES * ASlab::ELEMS];
    __shared__ __align__(16) T Bs[STAGES * BSlab::ELEMS];
    if ((int)blockIdx.z >= batch) return;  // uniform for the block, before any barrier
    const td::BatchEntry<T> e =
        td::batch_entry(blockIdx.z, A, lda, batch_stride_a, B, ldb, batch_stride_b, C, ldc, batch_stride_c);
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int wm0 = (warp / Warps::WARPS_N) * WM, wn0 = (warp % Warps::WARPS_N) * WN;
    const int k_tiles = (K + BK - 1) / BK;
    const int a_lane = ASlab::lane_offset(wm0, lane), b_lane = BSlab::lane_offset(wn0, lane);

    // Tile kt's copies into slab `slab`; a group is closed even past the last
    // tile, so that "all but STAGES-2 groups done" always means tile kt landed.
    auto issue = [&](int kt, int slab) {
        if (kt < k_tiles) {
            ASlab::template copy_async<T, Warps::NTHREADS>(As + slab * ASlab::ELEMS, e.a, lda, m0, kt * BK, M, K,
                                                          e.a_vec, tid);
            BSlab::template copy_async<T, Warps::NTHREADS>(Bs + slab * BSlab::ELEMS, e.b, ldb, n0, kt * BK, N, K,
                                                          e.b_vec, tid);
        }
        td::cp_async_commit();
    };

    double acc[MT][NT][2];
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j) acc[i][j][0] = acc[i][j][1] = 0.0;

#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) issue(s, s);
    // Slab indices advance by one with wrap-around instead of kt % STAGES: no
    // division in the loop.
    int read_slab = 0, write_slab = STAGES - 1;
    for (int kt = 0; kt < k_tiles; ++kt) {
        td::cp_async_wait<STAGES - 2>();  // this thread's copies of tile kt landed
        __syncthreads();                   // everyone's did; the slab read in step kt-1 is free
        issue(kt + STAGES - 1, write_slab);
        const T* as = As + read_slab * ASlab::ELEMS + a_lane;
        const T* bs = Bs + read_slab * BSlab::ELEMS + b_lane;
#pragma unroll
        for (int kk = 0; kk < BK; kk += 4) {
            double a[MT], b[NT];
#pragma unroll
            for (int i = 0; i < MT; ++i) a[i] = as[i * 8 * ASlab::X_STRIDE + kk * ASlab::K_STRIDE];
#pragma unroll
            for (int j = 0; j < NT; ++j) b[j] = bs[j * 8 * BSlab::X_STRIDE + kk * BSlab::K_STRIDE];
            td::mma_m8n8k4_f64_tiles<MT, NT>(acc, a, b);
        }
        read_slab = read_slab == STAGES - 1 ? 0 : read_slab + 1;
        write_slab = write_slab == STAGES - 1 ? 0 : write_slab + 1;
    }
    // Groups still open here are the empty ones issued past the last k tile.

    // Lane holds C(g, 2t) and C(g, 2t + 1) of each product: two adjacent columns.
    const int row = m0 + wm0 + (lane >> 2), col = n0 + wn0 + 2 * (lane & 3);
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
            td::store_row<T, 2, true>(e.c, ldc, row + 8 * i, col + 8 * j, M, N, acc[i][j], e.c_vec);
}
