// Rung 4 of the GEMM ladder: warp tiling.
//
// Rung 3's loads (128-bit, padded k-major shared tiles) with the warp-tiled
// register layout of warp_tile.cuh: the block tile is split into per-warp tiles
// and each warp's lanes interleave over sub-tiles, which removes the shared-memory
// bank conflicts of rung 3's fragment reads and shortens dependency chains. This
// is the last single-buffered rung: loads and math still alternate, separated by
// barriers; rung 5 overlaps them.
//
// Its interior blocks (whole tiles, 128-bit access allowed: decided once) run a
// K loop without per-tile bounds and alignment tests (single_buffered_block's
// INTERIOR path, td::InteriorCopy): on sm_90 each instruction that is not an FFMA
// takes an issue slot from one. Tiles without the registers to spare for it
// (td::interior_fits: the 256-thread 8x8 float32 tiles) keep the guarded loop.
#include "thread_tile.cuh"
#include "warp_tile.cuh"

template <typename T, bool TRANS_A, bool TRANS_B, int BM, int BN, int BK, int WM, int WN, int WNITER, int TM, int TN>
__global__ void __launch_bounds__(td::WarpTile<T, BM, BN, WM, WN, WNITER, TM, TN>::NTHREADS,
                                  td::WarpTile<T, BM, BN, WM, WN, WNITER, TM, TN>::MIN_BLOCKS)
gemm_warp_tiled(TD_GEMM_PARAMS(T)) {
    if ((int)blockIdx.z >= batch) return;
    const td::BatchEntry<T> e =
        td::batch_entry(blockIdx.z, A, lda, batch_stride_a, B, ldb, batch_stride_b, C, ldc, batch_stride_c);
    td::single_buffered_block<T, TRANS_A, TRANS_B, BM, BN, BK, td::vec_width<T>(), td::CopyMode::Vector,
                              td::WarpTile<T, BM, BN, WM, WN, WNITER, TM, TN>,
                              td::WarpTile<T, BM, BN, WM, WN, WNITER, TM, TN>::INTERIOR>(M, N, K, e, lda, ldb, ldc);
}
