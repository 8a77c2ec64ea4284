// Rung 2 of the GEMM ladder: 2-D register blocking.
//
// Each thread now computes a TM x TN block of C (8 x 8 by default) held in
// registers (td::ThreadTile). Per k step it loads TM values of A and TN values of
// B from shared memory and does TM*TN FMAs: 64 FMAs for 16 shared loads instead of
// 1 for 2, which moves the bottleneck from shared memory to the FMA pipes. The
// block tile grows to BM x BN (128 x 128) so each global element is reused 128
// times. The A tile is stored k-major (transposed), so a thread's TM values of A
// are consecutive in shared memory, like its TN values of B. Global loads here
// are still scalar; rung 3 vectorizes them. The k-major A tile's rows are padded
// by 4 elements: the transposing stores of 8 consecutive threads (consecutive k,
// same m) would otherwise land 128 words apart, all in one bank (an 8-way
// conflict on every store); with the pad they land in 8 different banks, and
// rows stay 16-byte aligned for the 128-bit fragment reads.
#include "thread_tile.cuh"

template <typename T, bool TRANS_A, bool TRANS_B, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__(td::ThreadTile<T, BM, BN, TM, TN, false>::NTHREADS,
                                  td::ThreadTile<T, BM, BN, TM, TN, false>::MIN_BLOCKS)
gemm_register_blocked(TD_GEMM_PARAMS(T)) {
    if ((int)blockIdx.z >= batch) return;
    const td::BatchEntry<T> e =
        td::batch_entry(blockIdx.z, A, lda, batch_stride_a, B, ldb, batch_stride_b, C, ldc, batch_stride_c);
    td::single_buffered_block<T, TRANS_A, TRANS_B, BM, BN, BK, td::vec_width<T>(), td::CopyMode::Scalar,
                              td::ThreadTile<T, BM, BN, TM, TN, false>>(M, N, K, e, lda, ldb, ldc);
}
