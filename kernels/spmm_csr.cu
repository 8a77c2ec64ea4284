// spmm_csr.cu: the sparse dot. C = S @ D for S in CSR (M x K, nnz nonzeros) and a
// dense D (K x N, row stride ldd), C dense (M x N, row stride ldc).
//
// Linear models on text and one-hot data multiply a matrix with a fraction of a
// percent of nonzeros by a narrow dense one (N = outputs, 1 to a few hundred):
// the work is one pass over the nonzeros, and the cost is memory traffic: the
// (column, value) pairs once, and for each pair one row of D. Two techniques,
// each in its own kernel:
//
//  1. spmm_csr_rows: a group of GROUP lanes per row of S. The lanes split the
//     columns of D (V elements each, 128-bit loads when the layout allows), and
//     each lane walks its row's nonzeros in order: the (column, value) pair is one
//     load every lane of the group makes (a broadcast), the row of D it selects is
//     read by the group coalesced. Every output is one thread's sum in a fixed
//     order, so results are bitwise identical run to run. The dispatcher picks
//     GROUP so that GROUP * V covers N (narrow outputs waste no lanes). A row is
//     summed in chunks of `segment` nonzeros, each chunk from zero, the chunk sums
//     added in order: exactly what kernel 2 computes, so the two kernels give
//     bitwise the same result and the choice between them changes only the speed.
//  2. spmm_csr_segments + spmm_csr_combine: for skewed row lengths (one row with a
//     million nonzeros would keep one group busy while the rest of the GPU idles),
//     rows are cut into segments of at most a fixed number of nonzeros (a list the
//     host builds once per sparse structure). A row of one segment is written
//     directly; the segments of a longer row write partial rows into a workspace,
//     which the combine kernel adds in segment order. No floating-point atomics:
//     the order of every sum is fixed, so this variant is deterministic too.
//
// Both take the row pointer as P (int or long long: SciPy uses either) and the
// column indices as int. Empty rows give zeros.
#include "common.cuh"

namespace td {

// acc[0..width) += v * d[0..width), with one 128-bit load when `vector` (then width == V).
template <typename T>
__device__ __forceinline__ void axpy_row(T (&acc)[vec_width<T>()], T v, const T* d, int width, bool vector) {
    constexpr int V = vec_width<T>();
    if (vector) {
        Pack16<T> p;
        p.vec = *reinterpret_cast<const typename Vec16<T>::type*>(d);
#pragma unroll
        for (int k = 0; k < V; ++k) acc[k] += v * p.elem[k];
    } else {
#pragma unroll
        for (int k = 0; k < V; ++k)  // a fixed trip count keeps acc in registers
            if (k < width) acc[k] += v * d[k];
    }
}

template <typename T>
__device__ __forceinline__ void store_row(T* c, const T (&acc)[vec_width<T>()], int width, bool vector) {
    constexpr int V = vec_width<T>();
    if (vector) {
        Pack16<T> p;
#pragma unroll
        for (int k = 0; k < V; ++k) p.elem[k] = acc[k];
        *reinterpret_cast<typename Vec16<T>::type*>(c) = p.vec;
    } else {
#pragma unroll
        for (int k = 0; k < V; ++k)
            if (k < width) c[k] = acc[k];
    }
}

// One lane's share of out[0..N) = sum over nonzeros [begin, end) of value * D[column, :]:
// columns lane*V, lane*V + GROUP*V, ... (the group's lanes together cover N), summed in
// chunks of `segment` nonzeros (each from zero, then added in order: see kernel 1).
template <typename T, typename P, int GROUP>
__device__ __forceinline__ void row_times_dense(P begin, P end, long long segment, const int* __restrict__ indices,
                                                const T* __restrict__ values, const T* __restrict__ D, long long ldd,
                                                T* __restrict__ out, int N, bool vector, int lane) {
    constexpr int V = vec_width<T>();
    for (int n0 = lane * V; n0 < N; n0 += GROUP * V) {
        const int width = min(V, N - n0);
        const bool full = vector && width == V;
        T total[V];
#pragma unroll
        for (int k = 0; k < V; ++k) total[k] = T(0);
        for (P j0 = begin; j0 < end; j0 += segment) {
            const P j1 = end - j0 < segment ? end : j0 + segment;
            T acc[V];
#pragma unroll
            for (int k = 0; k < V; ++k) acc[k] = T(0);
            for (P j = j0; j < j1; ++j) axpy_row<T>(acc, values[j], D + (long long)indices[j] * ldd + n0, width, full);
#pragma unroll
            for (int k = 0; k < V; ++k) total[k] += acc[k];
        }
        store_row<T>(out + n0, total, width, full);
    }
}

}  // namespace td

template <typename T, typename P, int GROUP>
__global__ void __launch_bounds__(256, 4)  // 64 registers: memory-bound, 4 blocks keep loads in flight
spmm_csr_rows(int M, int N, long long segment, const P* __restrict__ indptr, const int* __restrict__ indices,
              const T* __restrict__ values, const T* __restrict__ D, long long ldd, T* __restrict__ C,
              long long ldc) {
    const long long row = (long long)blockIdx.x * (blockDim.x / GROUP) + threadIdx.x / GROUP;
    if (row >= M) return;  // no barriers below: threads past the last row simply leave
    const bool vector = td::vector_access_ok(D, ldd) && td::vector_access_ok(C, ldc);
    td::row_times_dense<T, P, GROUP>(indptr[row], indptr[row + 1], segment, indices, values, D, ldd, C + row * ldc, N,
                                     vector, threadIdx.x % GROUP);
}

// Segment s covers nonzeros [seg_begin[s], seg_end[s]) of row seg_row[s]; its partial
// row goes to C's row when seg_slot[s] < 0 (the row's only segment), else to workspace
// row seg_slot[s] (ldw elements apart).
template <typename T, typename P, int GROUP>
__global__ void __launch_bounds__(256, 4)  // 64 registers: memory-bound, 4 blocks keep loads in flight
spmm_csr_segments(long long segments, int N, const int* __restrict__ seg_row, const P* __restrict__ seg_begin,
                  const P* __restrict__ seg_end, const long long* __restrict__ seg_slot,
                  const int* __restrict__ indices, const T* __restrict__ values, const T* __restrict__ D,
                  long long ldd, T* __restrict__ C, long long ldc, T* __restrict__ W, long long ldw) {
    const long long s = (long long)blockIdx.x * (blockDim.x / GROUP) + threadIdx.x / GROUP;
    if (s >= segments) return;
    const long long slot = seg_slot[s];
    T* out = slot < 0 ? C + (long long)seg_row[s] * ldc : W + slot * ldw;
    const bool vector = td::vector_access_ok(D, ldd) && td::vector_access_ok(C, ldc) && td::vector_access_ok(W, ldw);
    td::row_times_dense<T, P, GROUP>(seg_begin[s], seg_end[s], seg_end[s] - seg_begin[s] + 1, indices, values, D, ldd,
                                     out, N, vector, threadIdx.x % GROUP);
}

// Row long_rows[r] of C = the sum, in order, of workspace rows first[r] .. first[r] + count[r] - 1.
template <typename T>
__global__ void __launch_bounds__(256, 4)  // 64 registers: memory-bound, 4 blocks keep loads in flight
spmm_csr_combine(long long rows, int N, const int* __restrict__ long_rows, const long long* __restrict__ first,
                 const int* __restrict__ count, const T* __restrict__ W, long long ldw, T* __restrict__ C,
                 long long ldc) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;  // one (row, column) per thread
    if (i >= rows * N) return;
    const long long r = i / N;
    const int n = (int)(i % N);
    const T* w = W + first[r] * ldw + n;
    T acc = T(0);
    for (int k = 0; k < count[r]; ++k) acc += w[(long long)k * ldw];
    C[(long long)long_rows[r] * ldc + n] = acc;
}
