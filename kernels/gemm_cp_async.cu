// Rung 5 of the GEMM ladder: multi-stage software pipeline with cp.async (sm_80+),
// and a main loop that does nothing per K tile but copies, one barrier and math.
//
// The warp-tiled math of rung 4, but shared memory holds STAGES slabs of the A and
// B tiles, filled by cp.async: the copies go global -> shared without passing
// through registers and run in the background while the block computes on the
// slab loaded STAGES-1 steps earlier. So memory latency hides behind math instead
// of alternating with it. Operands that need transposing into the k-major slabs
// (A row-major, B column-major) are staged through registers instead (see below).
// One barrier per k step suffices: the slab being overwritten was last read in
// the previous step, before this step's barrier.
//
// On sm_90 every instruction that is not an FFMA takes an issue slot from one, so
// the per-tile bookkeeping is paid in FLOPs. Interior blocks (whole tiles in M
// and N, 128-bit access allowed: decided once) therefore run a guard-free loop
// over the K tiles that lie wholly inside K: copy cursors advanced by one pointer
// add per tile (td::InteriorCopy), the stage offsets rotated by an add and a
// select instead of `kt % STAGES`, the shared window's base converted once, and
// no bounds or alignment tests. Edge blocks and the last STAGES-1 (or partial)
// K tiles run the guarded loop, whose loads zero-fill outside the matrices
// (cp.async's source size 0 reads nothing); so do tiles without the registers
// to spare for the interior path (td::interior_fits).
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
    constexpr int STAGE = A_SLAB + B_SLAB;  // a stage: A's slab, then B's (one offset addresses both)
    __shared__ __align__(16) T smem[STAGES * STAGE];
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
    auto a_slab = [&](int kt) { return smem + (kt % STAGES) * STAGE; };
    auto b_slab = [&](int kt) { return smem + (kt % STAGES) * STAGE + A_SLAB; };

    // The guarded copies of k tile kt (nothing past the end); a cp.async group is
    // closed either way so the group count stays uniform.
    ACopy a_regs;
    BCopy b_regs;
    auto issue_async = [&](int kt) {
        if (kt < k_tiles) {
            if (!A_STAGED) ACopy::copy_async(a_slab(kt), e.a, lda, m0, kt * BK, M, K, e.a_vec, tid);
            if (!B_STAGED) BCopy::copy_async(b_slab(kt), e.b, ldb, n0, kt * BK, N, K, e.b_vec, tid);
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
            if (A_STAGED) a_regs.stash(a_slab(kt), tid);
            if (B_STAGED) b_regs.stash(b_slab(kt), tid);
        }
    };

    Tile tile(tid);
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        issue_async(s);
        fetch_staged(s);
        stash_staged(s);
    }
    int kt = 0;
    const int k_whole = K / BK;  // k tiles that lie wholly inside K
    if (Tile::INTERIOR && m0 + BM <= M && n0 + BN <= N && e.a_vec && e.b_vec && k_whole > STAGES - 1) {
        td::InteriorCopy<T, BK, BM, LDA_S, Tile::NTHREADS, !TRANS_A> a(e.a, lda, m0, (STAGES - 1) * BK, tid);
        td::InteriorCopy<T, BK, BN, LDB_S, Tile::NTHREADS, TRANS_B> b(e.b, ldb, n0, (STAGES - 1) * BK, tid);
        const td::shared_addr base = td::shared_address(smem);
        int rd = 0, wr = (STAGES - 1) * STAGE;  // stages read (tile kt) and filled (tile kt+STAGES-1) now
        for (; kt < k_whole - (STAGES - 1); ++kt) {
            td::cp_async_wait<STAGES - 2>();  // this thread's copies of tile kt landed
            __syncthreads();                   // everyone's did (and stashed); stage wr is free
            if constexpr (A_STAGED) a.fetch(lda); else a.copy_async(base + wr * (int)sizeof(T), lda);
            if constexpr (B_STAGED) b.fetch(ldb); else b.copy_async(base + (wr + A_SLAB) * (int)sizeof(T), ldb);
            td::cp_async_commit();
            tile.template accumulate<BK, LDA_S, LDB_S>(smem + rd, smem + rd + A_SLAB);
            if constexpr (A_STAGED) a.stash(smem + wr);
            if constexpr (B_STAGED) b.stash(smem + wr + A_SLAB);
            wr = rd;
            rd = rd == (STAGES - 1) * STAGE ? 0 : rd + STAGE;
        }
    }
    for (; kt < k_tiles; ++kt) {
        td::cp_async_wait<STAGES - 2>();
        __syncthreads();
        issue_async(kt + STAGES - 1);
        fetch_staged(kt + STAGES - 1);
        tile.template accumulate<BK, LDA_S, LDB_S>(a_slab(kt), b_slab(kt));
        stash_staged(kt + STAGES - 1);     // into the free slab; read after a later barrier
    }
    // Groups still open here are the empty ones issued past the last k tile.
    tile.store(e.c, ldc, m0, n0, M, N, e.c_vec);
}
