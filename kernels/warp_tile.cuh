// warp_tile.cuh: the warp-tiled register layout shared by rungs 4 and 5.
//
// The block tile BM x BN is split into warp tiles WM x WN, and each warp tile into
// WMITER x WNITER sub-tiles that the warp's 32 lanes cover together, each lane
// owning a TM x TN piece of every sub-tile. Compared with rung 3's one contiguous
// TM x TN block per thread this (1) keeps a warp's shared-memory reads inside a
// small window, so a warp's fragment loads hit distinct banks or broadcast instead
// of 2-way conflicting, and (2) makes a lane's outputs spread over the warp tile,
// giving the compiler independent FMA chains and register reuse across
// sub-tiles. Tiles live in shared memory k-major: As[k * lda_s + m], Bs[k * ldb_s + n].
#pragma once
#include "common.cuh"

namespace td {

template <typename T, int BM, int BN, int WM, int WN, int WNITER, int TM, int TN>
struct WarpTile {
    static constexpr int WARPS_N = BN / WN;
    static constexpr int NTHREADS = (BM / WM) * WARPS_N * 32;
    static constexpr int WMITER = (WM * WN) / (32 * TM * TN * WNITER);
    static constexpr int WSUBM = WM / WMITER;  // sub-tile extent
    static constexpr int WSUBN = WN / WNITER;
    static constexpr int LANES_N = WSUBN / TN;  // lanes side by side along n in a sub-tile
    static constexpr int RM = WMITER * TM, RN = WNITER * TN;  // register tile per lane
    static constexpr int MIN_BLOCKS = min_blocks_for(NTHREADS, tile_registers<T>(RM, RN));
    static constexpr bool INTERIOR = interior_fits(NTHREADS, tile_registers<T>(RM, RN));
    static_assert(BM % WM == 0 && BN % WN == 0, "warp tiles must divide the block tile");
    static_assert(WMITER >= 1 && WMITER * TM * TN * WNITER * 32 == WM * WN, "warp tile must split evenly over 32 lanes");
    static_assert(WSUBN % TN == 0 && WSUBM % TM == 0 && (WSUBM / TM) * LANES_N == 32,
                  "a sub-tile must be covered by exactly 32 lanes");

    int m_off, n_off;  // this lane's first row / column inside the block tile
    T acc[RM][RN];

    __host__ __device__ __forceinline__ explicit WarpTile(int tid) {
        const int warp = tid / 32, lane = tid % 32;
        m_off = (warp / WARPS_N) * WM + (lane / LANES_N) * TM;
        n_off = (warp % WARPS_N) * WN + (lane % LANES_N) * TN;
#pragma unroll
        for (int i = 0; i < RM; ++i)
#pragma unroll
            for (int j = 0; j < RN; ++j) acc[i][j] = T(0);
    }

    // Where this lane's fragments start in the k-major slabs at step k; the
    // bank-conflict test evaluates these for every lane. (Pointer steps in this
    // order: summing the int offsets first made ptxas spill the BK=16 tiles.)
    template <int LDA_S>
    __host__ __device__ __forceinline__ const T* a_fragment(const T* As, int k, int wm) const {
        return As + k * LDA_S + m_off + wm * WSUBM;
    }
    template <int LDB_S>
    __host__ __device__ __forceinline__ const T* b_fragment(const T* Bs, int k, int wn) const {
        return Bs + k * LDB_S + n_off + wn * WSUBN;
    }

    // Accumulate one BK-deep slab of shared tiles into the registers.
    template <int BK, int LDA_S, int LDB_S>
    __device__ __forceinline__ void accumulate(const T* __restrict__ As, const T* __restrict__ Bs) {
        T a[RM], b[RN];
#pragma unroll
        for (int k = 0; k < BK; ++k) {
#pragma unroll
            for (int wm = 0; wm < WMITER; ++wm)
                load_fragment<T, TM, true>(a + wm * TM, a_fragment<LDA_S>(As, k, wm));
#pragma unroll
            for (int wn = 0; wn < WNITER; ++wn)
                load_fragment<T, TN, true>(b + wn * TN, b_fragment<LDB_S>(Bs, k, wn));
            outer_product(acc, a, b);
        }
    }

    // Guarded write of this lane's results to the block tile at (m0, n0) of C.
    __device__ __forceinline__ void store(T* __restrict__ C, long long ldc, int m0, int n0, int M, int N,
                                          bool vec_ok) const {
#pragma unroll
        for (int wm = 0; wm < WMITER; ++wm)
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int wn = 0; wn < WNITER; ++wn)
                    store_row<T, TN, true>(C, ldc, m0 + m_off + wm * WSUBM + i, n0 + n_off + wn * WSUBN, M, N,
                                           &acc[wm * TM + i][wn * TN], vec_ok);
    }
};

}  // namespace td
