// Rung 2 of the GEMM ladder: 2-D register blocking.
//
// Each thread now computes a TM x TN block of C (8 x 8 by default) held in
// registers. Per k step it loads TM values of A and TN values of B from shared
// memory and does TM*TN FMAs: 64 FMAs for 16 shared loads instead of 1 for 2,
// which moves the bottleneck from shared memory to the FMA pipes. The block tile
// grows to BM x BN (128 x 128) so each global element is reused 128 times. The A
// tile is stored k-major (transposed), so a thread's TM values of A are
// consecutive in shared memory, like its TN values of B. Global loads here are
// still scalar; rung 3 vectorizes them.
#include "common.cuh"

template <typename T, bool TRANS_A, bool TRANS_B, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN), td::min_blocks_for((BM / TM) * (BN / TN), td::tile_registers<T>(TM, TN)))
gemm_register_blocked(int M, int N, int K,
                      const T* __restrict__ A, long long lda, long long batch_stride_a,
                      const T* __restrict__ B, long long ldb, long long batch_stride_b,
                      T* __restrict__ C, long long ldc, long long batch_stride_c, int batch) {
    constexpr int THREADS_N = BN / TN;
    constexpr int NTHREADS = (BM / TM) * THREADS_N;
    static_assert(BM % TM == 0 && BN % TN == 0, "thread tiles must divide the block tile");
    __shared__ T As[BK * BM];
    __shared__ T Bs[BK * BN];
    const int tid = threadIdx.x;
    const int tm0 = (tid / THREADS_N) * TM, tn0 = (tid % THREADS_N) * TN;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;

    // One batch entry per blockIdx.z. (A grid-stride loop over the batch here would
    // let the compiler hoist per-row addresses out of it and spill; batches beyond
    // the 65535 grid limit are split over launches by the host instead.)
    const int z = blockIdx.z;
    if (z >= batch) return;
    {
        const T* Ab = A + z * batch_stride_a;
        const T* Bb = B + z * batch_stride_b;
        T acc[TM][TN] = {};
        T a[TM], b[TN];
        for (int k0 = 0; k0 < K; k0 += BK) {
            td::load_tile<T, BK, BM, BM, NTHREADS, !TRANS_A, td::CopyMode::Scalar>(As, Ab, lda, m0, k0, M, K,
                                                                                 false, tid);
            td::load_tile<T, BK, BN, BN, NTHREADS, TRANS_B, td::CopyMode::Scalar>(Bs, Bb, ldb, n0, k0, N, K,
                                                                                false, tid);
            __syncthreads();
#pragma unroll
            for (int k = 0; k < BK; ++k) {
                td::load_fragment<T, TM, false>(a, As + k * BM + tm0);
                td::load_fragment<T, TN, false>(b, Bs + k * BN + tn0);
                td::outer_product(acc, a, b);
            }
            __syncthreads();
        }
        T* Cb = C + z * batch_stride_c;
#pragma unroll
        for (int i = 0; i < TM; ++i)
            td::store_row<T, TN, false>(Cb, ldc, m0 + tm0 + i, n0 + tn0, M, N, acc[i], false);
    }
}
