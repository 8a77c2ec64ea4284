// linear_skinny.cu: the two products of a linear model's training step, at memory speed.
//
// Training a linear model multiplies a tall X (n x d) by a narrow weight (k outputs,
// k up to 16) and, backwards, reduces over n: Y = X W^T and dW = G^T X. Both do
// under 8 flops per byte of X, far below any GPU's ridge point, so what counts is
// reading X once at full bandwidth, with every multiprocessor busy. The general
// GEMM does neither here: its 128-wide tiles are mostly empty when k <= 16, and for
// dW its K loop runs over all n rows in one block per 128 columns of d, a handful
// of blocks for the whole GPU. Two kernels, one technique each:
//
//  1. skinny_nt (Y = X W^T, or X w): a block takes ROWS rows of X and streams them through
//     shared memory in DT-wide slabs, coalesced; the whole k x DT slab of W sits
//     beside it. Each thread computes KPT outputs of one row from shared memory.
//     X is read from global memory exactly once.
//  2. skinny_tn_partial + skinny_reduce (dW = G^T X): split-n. Block (bx, by) takes
//     a chunk of rows `by` and DPT columns of d per thread; it reads its rows of X
//     coalesced, the k values of G for each row as one broadcast, and writes a
//     k x d partial product. skinny_reduce adds the chunks' partials in chunk order.
//     No floating-point atomics: the order of every sum is fixed, so dW is bitwise
//     identical run to run, however many blocks ran.
#include "common.cuh"

namespace td {
constexpr int SKINNY_THREADS = 256;
}

// Y (n x k, row stride ldy) = X (n x d, row stride ldx) times W^T, W(j, c) = W[j * w_out + c * w_in]
// (a k x d weight read either way: nn.Linear's W^T, or a d x k matrix as in X @ w).
// ROWS x (KMAX / KPT) threads: thread t computes outputs [j0, j0 + KPT) of row t / (KMAX / KPT).
template <typename T, int KMAX, int KPT>
__global__ void __launch_bounds__(td::SKINNY_THREADS, 2)
skinny_nt(int n, int d, int k, const T* __restrict__ X, long long ldx, const T* __restrict__ W, long long w_out,
          long long w_in, T* __restrict__ Y, long long ldy) {
    constexpr int GROUPS = KMAX / KPT;                // threads per row
    constexpr int ROWS = td::SKINNY_THREADS / GROUPS;  // rows per block
    constexpr int DT = 32;                            // columns of X per slab
    __shared__ T xs[ROWS][DT + 1];                    // +1: a warp's rows fall in distinct banks
    __shared__ T ws[KMAX][DT + 1];
    const int tid = threadIdx.x;
    const long long row0 = (long long)blockIdx.x * ROWS;
    const int r = tid / GROUPS, j0 = (tid % GROUPS) * KPT;
    T acc[KPT];
#pragma unroll
    for (int j = 0; j < KPT; ++j) acc[j] = T(0);
    for (int c0 = 0; c0 < d; c0 += DT) {
        // Coalesced: consecutive threads read consecutive columns of one row.
        for (int i = tid; i < ROWS * DT; i += td::SKINNY_THREADS) {
            const int rr = i / DT, cc = i % DT;
            const long long row = row0 + rr;
            xs[rr][cc] = (row < n && c0 + cc < d) ? X[row * ldx + c0 + cc] : T(0);
        }
        for (int i = tid; i < KMAX * DT; i += td::SKINNY_THREADS) {
            const int jj = i / DT, cc = i % DT;
            ws[jj][cc] = (jj < k && c0 + cc < d) ? W[(long long)jj * w_out + (long long)(c0 + cc) * w_in] : T(0);
        }
        __syncthreads();
#pragma unroll 8
        for (int cc = 0; cc < DT; ++cc) {
            const T x = xs[r][cc];
#pragma unroll
            for (int j = 0; j < KPT; ++j) acc[j] += x * ws[j0 + j][cc];
        }
        __syncthreads();  // the next slab overwrites xs and ws
    }
    const long long row = row0 + r;
    if (row < n) {
#pragma unroll
        for (int j = 0; j < KPT; ++j)
            if (j0 + j < k) Y[row * ldy + j0 + j] = acc[j];
    }
}

// partial[chunk] (k x d, contiguous) = G[rows of chunk]^T X[rows of chunk], G n x k (row
// stride ldg), X n x d (row stride ldx); chunk = blockIdx.y covers rows_per_chunk rows.
// Thread t of block bx owns columns (bx * 256 + t) + i * gridDim.x * 256, i < DPT.
template <typename T, int KMAX, int DPT>
__global__ void __launch_bounds__(td::SKINNY_THREADS, 2)
skinny_tn_partial(int n, int d, int k, long long rows_per_chunk, const T* __restrict__ G, long long ldg,
                  const T* __restrict__ X, long long ldx, T* __restrict__ partial) {
    const long long r0 = (long long)blockIdx.y * rows_per_chunk;
    const long long r1 = min((long long)n, r0 + rows_per_chunk);
    const int stride = gridDim.x * td::SKINNY_THREADS;
    const int c0 = blockIdx.x * td::SKINNY_THREADS + threadIdx.x;
    T acc[DPT][KMAX];
#pragma unroll
    for (int i = 0; i < DPT; ++i)
#pragma unroll
        for (int j = 0; j < KMAX; ++j) acc[i][j] = T(0);
    for (long long r = r0; r < r1; ++r) {
        T g[KMAX];
#pragma unroll
        for (int j = 0; j < KMAX; ++j) g[j] = j < k ? G[r * ldg + j] : T(0);  // the same for every thread
#pragma unroll
        for (int i = 0; i < DPT; ++i) {
            const int c = c0 + i * stride;
            const T x = c < d ? X[r * ldx + c] : T(0);  // consecutive threads, consecutive columns
#pragma unroll
            for (int j = 0; j < KMAX; ++j) acc[i][j] += g[j] * x;
        }
    }
    T* out = partial + (long long)blockIdx.y * k * d;
#pragma unroll
    for (int i = 0; i < DPT; ++i) {
        const int c = c0 + i * stride;
        if (c < d) {
#pragma unroll
            for (int j = 0; j < KMAX; ++j)
                if (j < k) out[(long long)j * d + c] = acc[i][j];
        }
    }
}

// out (k x d, row stride ldo) = sum over chunks, in chunk order, of partial[chunk] (k x d).
template <typename T>
__global__ void __launch_bounds__(td::SKINNY_THREADS)
skinny_reduce(int chunks, long long size, int d, const T* __restrict__ partial, T* __restrict__ out, long long ldo) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= size) return;
    T acc = T(0);
    for (int c = 0; c < chunks; ++c) acc += partial[(long long)c * size + i];
    out[(i / d) * ldo + i % d] = acc;
}
