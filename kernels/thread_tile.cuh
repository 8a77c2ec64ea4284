// thread_tile.cuh: 2-D register blocking (rungs 2 and 3) and the single-buffered
// main loop shared by rungs 2-4.
//
// ThreadTile: each thread owns one contiguous TM x TN block of the BM x BN block
// tile and accumulates it in registers; per k step it reads TM values of A and TN
// of B from the k-major shared tiles (as 128-bit reads when VEC) and does TM*TN
// FMAs. WarpTile (warp_tile.cuh) has the same interface with a warp-aware layout.
#pragma once
#include "common.cuh"

namespace td {

template <typename T, int BM, int BN, int TM, int TN, bool VEC>
struct ThreadTile {
    static constexpr int THREADS_N = BN / TN;
    static constexpr int NTHREADS = (BM / TM) * THREADS_N;
    static constexpr int MIN_BLOCKS = min_blocks_for(NTHREADS, tile_registers<T>(TM, TN));
    static_assert(BM % TM == 0 && BN % TN == 0, "thread tiles must divide the block tile");
    static_assert(!VEC || (TM % vec_width<T>() == 0 && TN % vec_width<T>() == 0),
                  "vectorized thread tiles must hold whole 128-bit vectors");

    int m_off, n_off;  // this thread's first row / column inside the block tile
    T acc[TM][TN];

    __device__ __forceinline__ explicit ThreadTile(int tid)
        : m_off((tid / THREADS_N) * TM), n_off((tid % THREADS_N) * TN) {
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
            for (int j = 0; j < TN; ++j) acc[i][j] = T(0);
    }

    template <int BK, int LDA_S, int LDB_S>
    __device__ __forceinline__ void accumulate(const T* __restrict__ As, const T* __restrict__ Bs) {
        T a[TM], b[TN];
#pragma unroll
        for (int k = 0; k < BK; ++k) {
            load_fragment<T, TM, VEC>(a, As + k * LDA_S + m_off);
            load_fragment<T, TN, VEC>(b, Bs + k * LDB_S + n_off);
            outer_product(acc, a, b);
        }
    }

    __device__ __forceinline__ void store(T* __restrict__ C, long long ldc, int m0, int n0, int M, int N,
                                          bool vec_ok) const {
#pragma unroll
        for (int i = 0; i < TM; ++i) store_row<T, TN, VEC>(C, ldc, m0 + m_off + i, n0 + n_off, M, N, acc[i], vec_ok);
    }
};

// One block tile of C = A @ B for batch entry e: load both BK-deep tiles into
// shared memory, barrier, accumulate into the register tile, barrier, repeat.
// PAD extra elements per shared row (kept 16-byte aligned for vector access).
// Both operands' global loads are issued before either is stored to shared
// memory, so a K tile waits on global memory once, not twice.
// INTERIOR (rung 4, where td::interior_fits): a block whose tiles all lie inside
// the matrices with 128-bit access allowed (decided once) runs the K tiles that
// lie wholly inside K through td::InteriorCopy, without bounds or alignment
// tests; the last partial K tile and edge blocks take the guarded copies.
template <typename T, bool TRANS_A, bool TRANS_B, int BM, int BN, int BK, int PAD, CopyMode MODE, typename Tile,
          bool INTERIOR = false>
__device__ __forceinline__ void single_buffered_block(int M, int N, int K, const BatchEntry<T>& e, long long lda,
                                                      long long ldb, long long ldc) {
    constexpr int LDA_S = BM + PAD, LDB_S = BN + PAD;
    constexpr int V = MODE == CopyMode::Scalar ? 1 : vec_width<T>();
    __shared__ __align__(16) T As[BK * LDA_S];
    __shared__ __align__(16) T Bs[BK * LDB_S];
    const int tid = threadIdx.x;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    Tile tile(tid);
    int k0 = 0;
    if constexpr (INTERIOR) {
        static_assert(MODE == CopyMode::Vector, "the interior path moves 128-bit vectors");
        if (m0 + BM <= M && n0 + BN <= N && e.a_vec && e.b_vec) {
            InteriorCopy<T, BK, BM, LDA_S, Tile::NTHREADS, !TRANS_A> a(e.a, lda, m0, 0, tid);
            InteriorCopy<T, BK, BN, LDB_S, Tile::NTHREADS, TRANS_B> b(e.b, ldb, n0, 0, tid);
            for (; k0 <= K - BK; k0 += BK) {
                a.fetch(lda);
                b.fetch(ldb);
                a.stash(As);
                b.stash(Bs);
                __syncthreads();
                tile.template accumulate<BK, LDA_S, LDB_S>(As, Bs);
                __syncthreads();  // the next stash overwrites the tiles
            }
        }
    }
    for (; k0 < K; k0 += BK) {
        TileCopy<T, BK, BM, LDA_S, Tile::NTHREADS, !TRANS_A, V> a;
        TileCopy<T, BK, BN, LDB_S, Tile::NTHREADS, TRANS_B, V> b;
        a.fetch(e.a, lda, m0, k0, M, K, e.a_vec, tid);
        b.fetch(e.b, ldb, n0, k0, N, K, e.b_vec, tid);
        a.stash(As, tid);
        b.stash(Bs, tid);
        __syncthreads();
        tile.template accumulate<BK, LDA_S, LDB_S>(As, Bs);
        __syncthreads();  // the next load overwrites the tiles
    }
    tile.store(e.c, ldc, m0, n0, M, N, e.c_vec);
}

}  // namespace td
