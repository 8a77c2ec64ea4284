// Rung 3 of the GEMM ladder: 128-bit global loads and a padded, transposed shared
// layout.
//
// Same thread/register blocking as rung 2, but every global access along an
// operand's unit-stride index is a 128-bit load (float4 / double2: one LDG.E.128
// instead of four LDG.E), and so are the shared-memory fragment reads and the
// C stores. Both tiles are kept k-major, so when A is row-major its four
// consecutive-k values are scattered into four rows of As: the row pitch, padded
// by one 16-byte vector as in rung 2, sends those scattered stores from
// neighbouring threads to different banks and keeps every row 16-byte aligned for
// the 128-bit stores. Whether 128-bit accesses are legal is decided at run time
// per operand (16-byte aligned base pointer and leading dimension a multiple of
// the vector width); otherwise the same code path falls back to scalar accesses.
#include "thread_tile.cuh"

template <typename T, bool TRANS_A, bool TRANS_B, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__(td::ThreadTile<T, BM, BN, TM, TN, true>::NTHREADS,
                                  td::ThreadTile<T, BM, BN, TM, TN, true>::MIN_BLOCKS)
gemm_vectorized(TD_GEMM_PARAMS(T)) {
    if ((int)blockIdx.z >= batch) return;
    const td::BatchEntry<T> e =
        td::batch_entry(blockIdx.z, A, lda, batch_stride_a, B, ldb, batch_stride_b, C, ldc, batch_stride_c);
    td::single_buffered_block<T, TRANS_A, TRANS_B, BM, BN, BK, td::vec_width<T>(), td::CopyMode::Vector,
                              td::ThreadTile<T, BM, BN, TM, TN, true>>(M, N, K, e, lda, ldb, ldc);
}
