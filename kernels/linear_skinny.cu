// linear_skinny.cu: the two products of a linear model's training step, at memory speed,
// with the loss folded into the forward product.
//
// Training a linear model multiplies a tall X (n x d) by a narrow weight (k outputs,
// k up to 16) and, backwards, reduces over n: Z = X W^T and dW = G^T X. Both do
// under 8 flops per byte of X, far below any GPU's ridge point, so what counts is
// reading X once at full bandwidth, with every multiprocessor busy. The general
// GEMM does neither here: its 128-wide tiles are mostly empty when k <= 16, and for
// dW its K loop runs over all n rows in one block per 128 columns of d, a handful
// of blocks for the whole GPU. Two kernels, one technique each, and one epilogue:
//
//  1. skinny_nt (Z = X W^T, or X w): a block takes ROWS rows of X and streams them through
//     shared memory in DT-wide slabs, coalesced; the whole k x DT slab of W sits
//     beside it. Each thread computes KPT outputs of one row from shared memory.
//     X is read from global memory exactly once, by cp.async into two stages: the
//     next slab is in flight while this one is multiplied (scalar loads issued four
//     at a time kept about 8 KB in flight per multiprocessor, a quarter of what
//     HBM needs to run at full speed).
//  2. skinny_tn_partial + skinny_reduce (dW = G^T X): split-n. Block (bx, by) takes
//     a chunk of rows `by` and a band of 256 DPT columns; its rows of X and G pass
//     through shared memory a few at a time, by cp.async into two stages (coalesced,
//     the next rows in flight while these are used), and it writes a
//     k x d partial product. skinny_reduce adds the chunks' partials in chunk order.
//     No floating-point atomics: the order of every sum is fixed, so dW is bitwise
//     identical run to run, however many blocks ran. With cols = d + 1 the column
//     past X's last is read as ones, so the same pass sums G's rows: db comes free.
//  3. The loss epilogue of skinny_nt (EPI = SQUARED, SIGMOID or SOFTMAX): the step's
//     loss and its gradient with respect to Z are functions of one row of Z, so the
//     block turns its rows of Z into the rows' losses and G = dloss/dZ before
//     anything leaves the chip. Z itself never makes a round trip through memory,
//     and a training step reads X twice: here, and in (2) for dW and db.
#include "common.cuh"

namespace td {
constexpr int SKINNY_THREADS = 256;

// What skinny_nt writes for row i with outputs z = x_i W^T + bias (t: the row's targets,
// one-hot from a class label or given; s: scale times the row's sample weight):
//   LINEAR:  Y_i = z;
//   SQUARED: loss_i = sum_j (z_j - t_j)^2,               Y_i = s 2 (z - t);
//   SIGMOID: loss_i = sum_j softplus(z_j) - t_j z_j,      Y_i = s (sigmoid(z) - t);
//   SOFTMAX: loss_i = sum_j t_j (logsumexp(z) - z_j),     Y_i = s (softmax(z) sum_j t_j - t).
// The losses are unscaled and unweighted: the caller reduces them in the width it wants.
enum SkinnyEpilogue : int { LINEAR = 0, SQUARED = 1, SIGMOID = 2, SOFTMAX = 3 };

__device__ __forceinline__ float exp_of(float x) { return expf(x); }
__device__ __forceinline__ double exp_of(double x) { return exp(x); }
__device__ __forceinline__ float log_of(float x) { return logf(x); }
__device__ __forceinline__ double log_of(double x) { return log(x); }
__device__ __forceinline__ float log1p_of(float x) { return log1pf(x); }
__device__ __forceinline__ double log1p_of(double x) { return log1p(x); }
__device__ __forceinline__ float abs_of(float x) { return fabsf(x); }
__device__ __forceinline__ double abs_of(double x) { return fabs(x); }

// One row's loss and gradient (see SkinnyEpilogue); z holds the row's k outputs, bias added.
// Targets are read where they are used and G is written as it is formed: no per-row
// arrays beside z, so float64 with k = 16 stays well inside the register budget.
template <typename T, int KMAX, int EPI>
__device__ __forceinline__ void loss_row(int k, long long row, T* z, const T* __restrict__ targets,
                                         long long ldt, const long long* __restrict__ labels,
                                         const T* __restrict__ weights, T scale, T* __restrict__ Y, long long ldy,
                                         T* __restrict__ loss) {
    const long long label = labels ? labels[row] : 0;
    const T* t = targets + row * ldt;
    T* y = Y + row * ldy;
    // No such class: the row says so (NaN loss and gradient) rather than train on garbage.
    const T zero = T(0);
    const bool bad = labels && (label < 0 || label >= k);
    const T s = bad ? zero / zero : weights ? scale * weights[row] : scale;
    const auto target = [&](int j) { return labels ? T(j == label) : t[j]; };
    T l = T(0);
    if constexpr (EPI == SQUARED) {
#pragma unroll
        for (int j = 0; j < KMAX; ++j) {
            if (j < k) {
                const T e = z[j] - target(j);
                l += e * e;
                y[j] = s * T(2) * e;
            }
        }
    } else if constexpr (EPI == SIGMOID) {
#pragma unroll
        for (int j = 0; j < KMAX; ++j) {
            if (j < k) {
                // softplus(z) = max(z, 0) + log1p(exp(-|z|)) and sigmoid from exp(-|z|): exact at large |z|
                const T tj = target(j), e = exp_of(-abs_of(z[j]));
                const T p = z[j] >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
                l += (z[j] > T(0) ? z[j] : T(0)) + log1p_of(e) - tj * z[j];
                y[j] = s * (p - tj);
            }
        }
    } else {
        T peak = z[0];
#pragma unroll
        for (int j = 1; j < KMAX; ++j)
            if (j < k && z[j] > peak) peak = z[j];
        T sum = T(0), mass = T(0);
#pragma unroll
        for (int j = 0; j < KMAX; ++j) {
            if (j < k) {
                z[j] -= peak;  // shifted before any difference: no cancellation at large z
                sum += exp_of(z[j]);
                mass += target(j);
            }
        }
        const T log_sum = log_of(sum);
#pragma unroll
        for (int j = 0; j < KMAX; ++j) {
            if (j < k) {
                const T tj = target(j);
                l += tj * (log_sum - z[j]);
                y[j] = s * (exp_of(z[j]) / sum * mass - tj);
            }
        }
    }
    loss[row] = bad ? s : l;
}
}  // namespace td

// Y (n x k, row stride ldy) = X (n x d, row stride ldx) times W^T plus bias (k, or null),
// W(j, c) = W[j * w_out + c * w_in] (a k x d weight read either way: nn.Linear's W^T, or a
// d x k matrix as in X @ w); with a loss epilogue, Y is G and loss (n) the rows' losses
// (td::SkinnyEpilogue; targets n x k with row stride ldt, or labels (n) of classes;
// weights (n) or null). ROWS x (KMAX / KPT) threads: thread t computes outputs
// [j0, j0 + KPT) of row t / (KMAX / KPT).
template <typename T, int KMAX, int KPT, int EPI>
__global__ void __launch_bounds__(td::SKINNY_THREADS, 2)
skinny_nt(int n, int d, int k, const T* __restrict__ X, long long ldx, const T* __restrict__ W, long long w_out,
          long long w_in, const T* __restrict__ bias, const T* __restrict__ targets, long long ldt,
          const long long* __restrict__ labels, const T* __restrict__ weights, T scale, T* __restrict__ Y,
          long long ldy, T* __restrict__ loss) {
    constexpr int THREADS = td::SKINNY_THREADS;
    constexpr int GROUPS = KMAX / KPT;                // threads per row
    constexpr int ROWS = THREADS / GROUPS;            // rows per block
    // Columns of X per slab: two stages of ROWS x DT (the next slab lands while this one is
    // used) stay within 48 KB of static shared memory in float64 as in float32.
    constexpr int DT = sizeof(T) == 4 ? 32 : 16;
    constexpr int X_PER_THREAD = ROWS * DT / THREADS, W_PER_THREAD = (KMAX * DT + THREADS - 1) / THREADS;
    static_assert(ROWS * DT % THREADS == 0, "every thread copies the same number of X elements");
    static_assert(KMAX <= DT, "the epilogue gathers a row's outputs in a row of xs");
    __shared__ T xs[2][ROWS][DT + 1];                 // +1: a warp's rows fall in distinct banks
    __shared__ T ws[2][KMAX][DT + 1];
    const int tid = threadIdx.x;
    const long long row0 = (long long)blockIdx.x * ROWS;
    const int r = tid / GROUPS, j0 = (tid % GROUPS) * KPT;
    // Slab c0 into stage st by cp.async, coalesced (consecutive threads, consecutive columns of
    // a row); what lies past X's or W's edge is zero-filled without a read. The copies are in
    // flight while the other stage is multiplied: the bytes a multiprocessor has in flight,
    // not its FMAs, bound a product this skinny. A thread copies the same column of every slab
    // (THREADS is a multiple of DT): its rows are RSTEP apart, its source pointers whole rows.
    constexpr int RSTEP = THREADS / DT;
    static_assert(THREADS % DT == 0, "a thread's column is the same in every round");
    const int cc = tid % DT, rr0 = tid / DT;
    const auto fetch = [&](int st, int c0) {
        const bool column = c0 + cc < d;
        const T* x = X + (row0 + rr0) * ldx + c0 + cc;
#pragma unroll
        for (int u = 0; u < X_PER_THREAD; ++u) {
            const bool inside = column && row0 + rr0 + u * RSTEP < n;
            td::cp_async<sizeof(T)>(&xs[st][rr0 + u * RSTEP][cc], inside ? x + u * RSTEP * ldx : X,
                                    inside ? sizeof(T) : 0);
        }
        const T* w = W + (long long)rr0 * w_out + (long long)(c0 + cc) * w_in;
#pragma unroll
        for (int u = 0; u < W_PER_THREAD; ++u) {
            const int jj = rr0 + u * RSTEP;
            if (jj < KMAX) {
                const bool inside = column && jj < k;
                td::cp_async<sizeof(T)>(&ws[st][jj][cc], inside ? w + (long long)u * RSTEP * w_out : W,
                                        inside ? sizeof(T) : 0);
            }
        }
        td::cp_async_commit();
    };
    T acc[KPT];
#pragma unroll
    for (int j = 0; j < KPT; ++j) acc[j] = T(0);
    if (d > 0) fetch(0, 0);  // (no copy may be left in flight into xs, which the epilogue reuses)
    for (int c0 = 0, st = 0; c0 < d; c0 += DT, st ^= 1) {
        if (c0 + DT < d) {  // the next slab into the other stage, freed by the last barrier below
            fetch(st ^ 1, c0 + DT);
            td::cp_async_wait<1>();
        } else {
            td::cp_async_wait<0>();
        }
        __syncthreads();  // this slab has landed, every thread's copies of it
#pragma unroll 8
        for (int cc = 0; cc < DT; ++cc) {
            const T x = xs[st][r][cc];
#pragma unroll
            for (int j = 0; j < KPT; ++j) acc[j] += x * ws[st][j0 + j][cc];
        }
        __syncthreads();  // every thread is done with this stage before it is refilled (or gathered in)
    }
#pragma unroll
    for (int j = 0; j < KPT; ++j) acc[j] += (bias && j0 + j < k) ? bias[j0 + j] : T(0);
    if constexpr (EPI == td::LINEAR) {
        const long long row = row0 + r;
        if (row < n) {
#pragma unroll
            for (int j = 0; j < KPT; ++j)
                if (j0 + j < k) Y[row * ldy + j0 + j] = acc[j];
        }
    } else {
        // A row's outputs are spread over GROUPS threads: gather them in xs (free after the
        // loop's last barrier), then one thread per row takes the loss.
#pragma unroll
        for (int j = 0; j < KPT; ++j) xs[0][r][j0 + j] = acc[j];
        __syncthreads();
        const long long row = row0 + tid;
        if (tid < ROWS && row < n) {
            T z[KMAX];
#pragma unroll
            for (int j = 0; j < KMAX; ++j) z[j] = xs[0][tid][j];
            td::loss_row<T, KMAX, EPI>(k, row, z, targets, ldt, labels, weights, scale, Y, ldy, loss);
        }
    }
}

// partial[chunk] (k x cols, contiguous) = G[rows of chunk]^T X[rows of chunk], G n x k (row
// stride ldg), X n x d (row stride ldx), and column d (when cols = d + 1) read as ones:
// the chunk's sums of G. chunk = blockIdx.y covers rows_per_chunk rows. Block bx owns the
// CW = 256 DPT columns from bx CW; thread t the columns bx CW + t + 256 i, i < DPT.
// The chunk's rows pass through shared memory RT at a time, by cp.async into two stages
// (the next RT rows of X and G in flight while these are multiplied, ~16 KB a stage): one
// row of scalar loads per thread at a time kept only ~8 KB in flight per multiprocessor.
template <typename T, int KMAX, int DPT>
__global__ void __launch_bounds__(td::SKINNY_THREADS, 2)
skinny_tn_partial(int n, int d, int cols, int k, long long rows_per_chunk, const T* __restrict__ G, long long ldg,
                  const T* __restrict__ X, long long ldx, T* __restrict__ partial) {
    constexpr int THREADS = td::SKINNY_THREADS, CW = THREADS * DPT;
    constexpr int RT = 16384 / (CW * (int)sizeof(T)) < 8 ? 16384 / (CW * (int)sizeof(T)) : 8;
    static_assert(RT >= 1 && RT * KMAX <= THREADS, "one thread per G value of a stage");
    __shared__ T xs[2][RT][CW];
    __shared__ T gs[2][RT][KMAX];
    const int tid = threadIdx.x;
    const long long r0 = (long long)blockIdx.y * rows_per_chunk;
    const long long r1 = min((long long)n, r0 + rows_per_chunk);
    const int c0 = blockIdx.x * CW + tid;  // this thread's first column; the others 256 apart
    // Rows [r, r + RT) of X (this block's columns) and G into stage st; past the chunk's last
    // row, X's last column or G's k-th, zero-filled without a read.
    const auto fetch = [&](int st, long long r) {
#pragma unroll 1
        for (int q = 0; q < RT; ++q) {  // (copies hold no registers: a rolled loop keeps as many in flight)
            const bool row = r + q < r1;
            const T* x = X + (r + q) * ldx + c0;
#pragma unroll
            for (int i = 0; i < DPT; ++i) {
                const bool inside = row && c0 + i * THREADS < d;
                td::cp_async<sizeof(T)>(&xs[st][q][tid + i * THREADS], inside ? x + i * THREADS : X,
                                        inside ? sizeof(T) : 0);
            }
        }
        if (tid < RT * KMAX) {
            const int q = tid / KMAX, j = tid % KMAX;
            const bool inside = r + q < r1 && j < k;
            td::cp_async<sizeof(T)>(&gs[st][q][j], inside ? G + (r + q) * ldg + j : G, inside ? sizeof(T) : 0);
        }
        td::cp_async_commit();
    };
    T acc[DPT][KMAX];
#pragma unroll
    for (int i = 0; i < DPT; ++i)
#pragma unroll
        for (int j = 0; j < KMAX; ++j) acc[i][j] = T(0);
    if (r0 < r1) fetch(0, r0);  // (r0 and r1 are the block's: every thread takes the same branches)
    for (long long r = r0, st = 0; r < r1; r += RT, st ^= 1) {
        if (r + RT < r1) {
            fetch(st ^ 1, r + RT);
            td::cp_async_wait<1>();
        } else {
            td::cp_async_wait<0>();
        }
        __syncthreads();  // these RT rows have landed
#pragma unroll 1
        for (int q = 0; q < RT; ++q) {  // (rolled: unrolled, the compiler hoists every row's reads)
            T x[DPT];
#pragma unroll
            for (int i = 0; i < DPT; ++i)  // column d is the ones column (rows past r1 have g = 0)
                x[i] = c0 + i * THREADS == d ? T(1) : xs[st][q][tid + i * THREADS];
#pragma unroll
            for (int j = 0; j < KMAX; ++j) {
                const T g = gs[st][q][j];
#pragma unroll
                for (int i = 0; i < DPT; ++i) acc[i][j] += g * x[i];
            }
        }
        __syncthreads();  // every thread is done with this stage before it is refilled
    }
    T* out = partial + (long long)blockIdx.y * k * cols;
#pragma unroll
    for (int i = 0; i < DPT; ++i) {
        const int c = c0 + i * THREADS;
        if (c < cols) {
#pragma unroll
            for (int j = 0; j < KMAX; ++j)
                if (j < k) out[(long long)j * cols + c] = acc[i][j];
        }
    }
}

// Sum over chunks, in chunk order, of partial[chunk] (k x cols): element (j, c) goes to
// out[j * out_j + c * out_c] (dW as k x d, or as its transpose d x k) for c < d, and
// to db[j] for c = d.
template <typename T>
__global__ void __launch_bounds__(td::SKINNY_THREADS)
skinny_reduce(int chunks, long long size, int cols, int d, const T* __restrict__ partial, T* __restrict__ out,
              long long out_j, long long out_c, T* __restrict__ db) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= size) return;
    T acc = T(0);
    for (int c = 0; c < chunks; ++c) acc += partial[(long long)c * size + i];
    const long long j = i / cols, c = i % cols;
    if (c < d)
        out[j * out_j + c * out_c] = acc;
    else
        db[j] = acc;
}
