// Rung 1 of the GEMM ladder: shared-memory tiling.
//
// Each block computes a TILE x TILE tile of C with one output per thread. For each
// step along K the block first stages a TILE x TILE tile of A and of B in shared
// memory (one element per thread, coalesced along the unit-stride index), then
// every thread reads its row of A and column of B from shared memory. Each global
// element is loaded once per block instead of once per output: TILE times less
// global traffic than the naive kernel. Still one FMA per two shared loads, so the
// kernel is bound by shared-memory bandwidth; rung 2 fixes that.
// (The shared signature, TD_GEMM_PARAMS, is described in common.cuh.)
#include "common.cuh"

template <typename T, bool TRANS_A, bool TRANS_B, int TILE>
__global__ void __launch_bounds__(TILE * TILE, td::min_blocks_for(TILE * TILE, td::tile_registers<T>(1, 1)))
gemm_smem_tiled(TD_GEMM_PARAMS(T)) {
    constexpr int NTHREADS = TILE * TILE;
    // k-major tiles; the +1 pad keeps the transposed stores free of bank conflicts.
    __shared__ T As[TILE * (TILE + 1)];
    __shared__ T Bs[TILE * (TILE + 1)];
    if ((int)blockIdx.z >= batch) return;
    const td::BatchEntry<T> e =
        td::batch_entry(blockIdx.z, A, lda, batch_stride_a, B, ldb, batch_stride_b, C, ldc, batch_stride_c);
    const int tid = threadIdx.x;
    const int row = tid / TILE, col = tid % TILE;  // a warp shares row: As reads broadcast
    const int m0 = blockIdx.y * TILE, n0 = blockIdx.x * TILE;
    T acc = T(0);
    for (int k0 = 0; k0 < K; k0 += TILE) {
        td::load_tile<T, TILE, TILE, TILE + 1, NTHREADS, !TRANS_A, td::CopyMode::Scalar>(As, e.a, lda, m0, k0, M, K,
                                                                                       false, tid);
        td::load_tile<T, TILE, TILE, TILE + 1, NTHREADS, TRANS_B, td::CopyMode::Scalar>(Bs, e.b, ldb, n0, k0, N, K,
                                                                                      false, tid);
        __syncthreads();
#pragma unroll
        for (int k = 0; k < TILE; ++k) acc += As[k * (TILE + 1) + row] * Bs[k * (TILE + 1) + col];
        __syncthreads();  // the next load overwrites the tiles
    }
    if (m0 + row < M && n0 + col < N) e.c[(long long)(m0 + row) * ldc + n0 + col] = acc;
}
