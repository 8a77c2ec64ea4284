// Rung 4 of the GEMM ladder: warp tiling.
//
// Rung 3's loads (128-bit, padded k-major shared tiles) with the warp-tiled
// register layout of warp_tile.cuh: the block tile is split into per-warp tiles
// and each warp's lanes interleave over sub-tiles, which removes the shared-memory
// bank conflicts of rung 3's fragment reads and shortens dependency chains. This
// is the last single-buffered rung: loads and math still alternate, separated by
// barriers; rung 5 overlaps them.
#include "warp_tile.cuh"

template <typename T, bool TRANS_A, bool TRANS_B, int BM, int BN, int BK, int WM, int WN, int WNITER, int TM, int TN>
__global__ void __launch_bounds__(td::WarpTile<T, BM, BN, WM, WN, WNITER, TM, TN>::NTHREADS,
                  td::WarpTile<T, BM, BN, WM, WN, WNITER, TM, TN>::MIN_BLOCKS)
gemm_warp_tiled(int M, int N, int K,
                const T* __restrict__ A, long long lda, long long batch_stride_a,
                const T* __restrict__ B, long long ldb, long long batch_stride_b,
                T* __restrict__ C, long long ldc, long long batch_stride_c, int batch) {
    using Tile = td::WarpTile<T, BM, BN, WM, WN, WNITER, TM, TN>;
    constexpr int PAD = td::vec_width<T>();
    constexpr int LDA_S = BM + PAD, LDB_S = BN + PAD;
    __shared__ __align__(16) T As[BK * LDA_S];
    __shared__ __align__(16) T Bs[BK * LDB_S];
    const int tid = threadIdx.x;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;

    // One batch entry per blockIdx.z. (A grid-stride loop over the batch here would
    // let the compiler hoist per-row addresses out of it and spill; batches beyond
    // the 65535 grid limit are split over launches by the host instead.)
    const int z = blockIdx.z;
    if (z >= batch) return;
    {
        const T* Ab = A + z * batch_stride_a;
        const T* Bb = B + z * batch_stride_b;
        T* Cb = C + z * batch_stride_c;
        const bool a_vec = td::vector_access_ok(Ab, lda);
        const bool b_vec = td::vector_access_ok(Bb, ldb);
        Tile tile(tid);
        for (int k0 = 0; k0 < K; k0 += BK) {
            td::load_tile<T, BK, BM, LDA_S, Tile::NTHREADS, !TRANS_A, td::CopyMode::Vector>(As, Ab, lda, m0, k0, M,
                                                                                          K, a_vec, tid);
            td::load_tile<T, BK, BN, LDB_S, Tile::NTHREADS, TRANS_B, td::CopyMode::Vector>(Bs, Bb, ldb, n0, k0, N,
                                                                                         K, b_vec, tid);
            __syncthreads();
            tile.template accumulate<BK, LDA_S, LDB_S>(As, Bs);
            __syncthreads();
        }
        tile.store(Cb, ldc, m0, n0, M, N, td::vector_access_ok(Cb, ldc));
    }
}
