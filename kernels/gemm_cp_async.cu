// Rung 5 of the GEMM ladder: multi-stage software pipeline with cp.async (sm_80+).
//
// The warp-tiled math of rung 4, but shared memory holds STAGES slabs of the A and
// B tiles, filled by cp.async: the copies go global -> shared without passing
// through registers and run in the background while the block computes on the
// slab loaded STAGES-1 steps earlier. So memory latency hides behind math instead
// of alternating with it. Operands that need transposing into the k-major slabs
// (A row-major, B column-major) are staged through registers instead (see below).
// Edge tiles use cp.async's zero fill (source size 0), so nothing outside the
// matrices is read. One barrier per k step suffices: the slab being overwritten
// was last read in the previous step, before this step's barrier.
#include "warp_tile.cuh"

template <typename T, bool TRANS_A, bool TRANS_B, int BM, int BN, int BK, int WM, int WN, int WNITER, int TM, int TN,
          int STAGES>
__global__ void __launch_bounds__(td::WarpTile<T, BM, BN, WM, WN, WNITER, TM, TN>::NTHREADS,
                  td::WarpTile<T, BM, BN, WM, WN, WNITER, TM, TN>::MIN_BLOCKS)
gemm_cp_async(TD_GEMM_PARAMS(T)) {
    using Tile = td::WarpTile<T, BM, BN, WM, WN, WNITER, TM, TN>;
    static_assert(STAGES >= 2, "a pipeline needs at least two stages");
    constexpr int PAD = td::vec_width<T>();
    constexpr int LDA_S = BM + PAD, LDB_S = BN + PAD;
    constexpr int A_SLAB = BK * LDA_S, B_SLAB = BK * LDB_S;
    __shared__ __align__(16) T As[STAGES * A_SLAB];
    __shared__ __align__(16) T Bs[STAGES * B_SLAB];
    if ((int)blockIdx.z >= batch) return;
    const td::BatchEntry<T> e =
        td::batch_entry(blockIdx.z, A, lda, batch_stride_a, B, ldb, batch_stride_b, C, ldc, batch_stride_c);
    const int tid = threadIdx.x;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int k_tiles = (K + BK - 1) / BK;

    // An operand whose unit-stride index is n or m (A transposed, B not) keeps its
    // orientation in the k-major slab: 16-byte cp.async straight into shared
    // memory. One whose unit-stride index is k (A row-major, B transposed) must be
    // transposed on the way, which cp.async can only do element by element; it is
    // staged through registers instead: 128-bit loads issued before the math of
    // the current tile, scattered into its slab after it, so the global latency
    // still hides behind the math.
    constexpr bool A_STAGED = !TRANS_A, B_STAGED = TRANS_B;
    using ACopy = td::TileCopy<T, BK, BM, LDA_S, Tile::NTHREADS, !TRANS_A, td::vec_width<T>()>;
    using BCopy = td::TileCopy<T, BK, BN, LDB_S, Tile::NTHREADS, TRANS_B, td::vec_width<T>()>;
    ACopy a_regs;
    BCopy b_regs;
    // The cp.async part of k tile kt (nothing past the end); a group is closed
    // either way so the group count stays uniform.
    auto issue_async = [&](int kt) {
        if (kt < k_tiles) {
            const int slab = kt % STAGES;
            if (!A_STAGED) ACopy::copy_async(As + slab * A_SLAB, e.a, lda, m0, kt * BK, M, K, e.a_vec, tid);
            if (!B_STAGED) BCopy::copy_async(Bs + slab * B_SLAB, e.b, ldb, n0, kt * BK, N, K, e.b_vec, tid);
        }
        td::cp_async_commit();
    };
    auto fetch_staged = [&](int kt) {
        if (kt < k_tiles) {
            if (A_STAGED) a_regs.fetch(e.a, lda, m0, kt * BK, M, K, e.a_vec, tid);
            if (B_STAGED) b_regs.fetch(e.b, ldb, n0, kt * BK, N, K, e.b_vec, tid);
        }
    };
    auto stash_staged = [&](int kt) {
        if (kt < k_tiles) {
            const int slab = kt % STAGES;
            if (A_STAGED) a_regs.stash(As + slab * A_SLAB, tid);
            if (B_STAGED) b_regs.stash(Bs + slab * B_SLAB, tid);
        }
    };

    Tile tile(tid);
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        issue_async(s);
        fetch_staged(s);
        stash_staged(s);
    }
    for (int kt = 0; kt < k_tiles; ++kt) {
        td::cp_async_wait<STAGES - 2>();  // this thread's copies of tile kt landed
        __syncthreads();                   // everyone's did (and stashed); slab (kt-1) % STAGES is free
        issue_async(kt + STAGES - 1);
        fetch_staged(kt + STAGES - 1);
        const int slab = kt % STAGES;
        tile.template accumulate<BK, LDA_S, LDB_S>(As + slab * A_SLAB, Bs + slab * B_SLAB);
        stash_staged(kt + STAGES - 1);     // into the free slab; read after a later barrier
    }
    // Groups still open here are the empty ones issued past the last k tile.
    tile.store(e.c, ldc, m0, n0, M, N, e.c_vec);
}
