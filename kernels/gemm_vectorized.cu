// Rung 3 of the GEMM ladder: 128-bit global loads and a padded, transposed shared
// layout.
//
// Same thread/register blocking as rung 2, but every global access along an
// operand's unit-stride index is a 128-bit load (float4 / double2: one LDG.E.128
// instead of four LDG.E), and so are the shared-memory fragment reads and the
// C stores. Both tiles are kept k-major, so when A is row-major its four
// consecutive-k values are scattered into four rows of As: the row pitch is padded
// by one 16-byte vector so those scattered stores from neighbouring threads fall
// into different banks. Whether 128-bit accesses are legal is decided at run time
// per operand (16-byte aligned base pointer and leading dimension a multiple of
// the vector width); otherwise the same code path falls back to scalar accesses.
#include "common.cuh"

template <typename T, bool TRANS_A, bool TRANS_B, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN), td::min_blocks_for((BM / TM) * (BN / TN), td::tile_registers<T>(TM, TN)))
gemm_vectorized(int M, int N, int K,
                const T* __restrict__ A, long long lda, long long batch_stride_a,
                const T* __restrict__ B, long long ldb, long long batch_stride_b,
                T* __restrict__ C, long long ldc, long long batch_stride_c, int batch) {
    constexpr int THREADS_N = BN / TN;
    constexpr int NTHREADS = (BM / TM) * THREADS_N;
    constexpr int PAD = td::vec_width<T>();
    constexpr int LDA_S = BM + PAD, LDB_S = BN + PAD;
    static_assert(BM % TM == 0 && BN % TN == 0, "thread tiles must divide the block tile");
    static_assert(TM % td::vec_width<T>() == 0 && TN % td::vec_width<T>() == 0,
                  "thread tiles must hold whole 128-bit vectors");
    __shared__ __align__(16) T As[BK * LDA_S];
    __shared__ __align__(16) T Bs[BK * LDB_S];
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
        T* Cb = C + z * batch_stride_c;
        const bool a_vec = td::vector_access_ok(Ab, lda);
        const bool b_vec = td::vector_access_ok(Bb, ldb);
        const bool c_vec = td::vector_access_ok(Cb, ldc);
        T acc[TM][TN] = {};
        T a[TM], b[TN];
        for (int k0 = 0; k0 < K; k0 += BK) {
            td::load_tile<T, BK, BM, LDA_S, NTHREADS, !TRANS_A, td::CopyMode::Vector>(As, Ab, lda, m0, k0, M, K,
                                                                                    a_vec, tid);
            td::load_tile<T, BK, BN, LDB_S, NTHREADS, TRANS_B, td::CopyMode::Vector>(Bs, Bb, ldb, n0, k0, N, K,
                                                                                   b_vec, tid);
            __syncthreads();
#pragma unroll
            for (int k = 0; k < BK; ++k) {
                td::load_fragment<T, TM, true>(a, As + k * LDA_S + tm0);
                td::load_fragment<T, TN, true>(b, Bs + k * LDB_S + tn0);
                td::outer_product(acc, a, b);
            }
            __syncthreads();
        }
#pragma unroll
        for (int i = 0; i < TM; ++i)
            td::store_row<T, TN, true>(Cb, ldc, m0 + tm0 + i, n0 + tn0, M, N, acc[i], c_vec);
    }
}
