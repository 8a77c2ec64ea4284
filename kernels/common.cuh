// common.cuh: helpers shared by every rung of the GEMM ladder.
//
// What lives here, and why it is shared:
//  * operand addressing: A(m,k) and B(k,n) are read through (pointer, leading
//    dimension, transpose flag), so A^T B and A B^T (what backward produces) need
//    no transposing copy;
//  * the tile loader: copies a BK x BX tile of one operand from global memory into
//    shared memory in k-major layout smem[k * LDS + x] (x = m for A, n for B),
//    zero-filling anything outside the matrix so edge tiles never read out of
//    bounds. It picks 128-bit loads (or 16-byte cp.async) when the layout and the
//    run-time alignment allow, and falls back to scalar accesses otherwise;
//  * register-tile math (fragment loads, outer products) and the guarded epilogue;
//  * inline-PTX wrappers (cp.async) in small functions, each with an emulated twin
//    under TD_EMULATION so the same sources compile with the host C++ compiler in
//    the CPU emulation used by CI.
#pragma once

#ifdef TD_EMULATION
#include <cstring>
#endif

// The parameter list every rung's kernel shares, so dispatch is uniform:
// C = A @ B for batch entry blockIdx.z < batch, with A(m,k) at A[m*lda+k]
// (A[k*lda+m] when TRANS_A), B(k,n) at B[k*ldb+n] (B[n*ldb+k] when TRANS_B), and
// entry z of each operand starting z * batch_stride elements in (0 broadcasts).
#define TD_GEMM_PARAMS(T)                                                              \
    int M, int N, int K, const T* __restrict__ A, long long lda, long long batch_stride_a, \
        const T* __restrict__ B, long long ldb, long long batch_stride_b, T* __restrict__ C, \
        long long ldc, long long batch_stride_c, int batch

namespace td {

// ---------------------------------------------------------------- vector types
template <typename T> struct Vec16;  // the 16-byte (128-bit) vector type of T
template <> struct Vec16<float> { using type = float4; };
template <> struct Vec16<double> { using type = double2; };

// Elements of T in one 128-bit access: 4 floats or 2 doubles.
template <typename T> __host__ __device__ constexpr int vec_width() { return 16 / (int)sizeof(T); }

// A 128-bit register pack viewed either as the vector type or as elements.
template <typename T> union Pack16 {
    typename Vec16<T>::type vec;
    T elem[vec_width<T>()];
};

// The second __launch_bounds__ argument (minimum resident blocks per SM) for a
// kernel of `threads` threads whose register tile (accumulators plus fragments)
// takes `tile_regs` 32-bit registers. It caps registers at 65536 / (threads *
// blocks) just above what the tile needs plus `slack` for addresses and indices:
// without a cap ptxas may hoist more shared loads than fit and spill, or pick a
// cap on its own that is too low and spill.
__host__ __device__ constexpr int min_blocks_for(int threads, int tile_regs, int slack = 48) {
    return 65536 / (threads * (tile_regs + slack)) < 1 ? 1 : 65536 / (threads * (tile_regs + slack));
}

// Whether a tile's register budget (65536 / (threads * min_blocks_for)) has room
// for the interior path (td::InteriorCopy) beside the guarded loop: its cursors
// stay live across the K loop, about `extra` registers more than min_blocks_for's
// slack. The 256-thread 8x8 float32 tiles run at the 128-register cap of 2
// blocks per SM and spill with it, so they keep the guarded loop alone.
__host__ __device__ constexpr bool interior_fits(int threads, int tile_regs, int slack = 48, int extra = 8) {
    return tile_regs + slack + extra <= 65536 / (threads * min_blocks_for(threads, tile_regs, slack));
}

// 32-bit registers held by a rows x cols register tile and its two fragments.
template <typename T>
__host__ __device__ constexpr int tile_registers(int rows, int cols) {
    return (rows * cols + rows + cols) * (int)sizeof(T) / 4;
}

__device__ __forceinline__ bool is_aligned16(const void* p) {
    return (reinterpret_cast<unsigned long long>(p) & 15ull) == 0;
}

// A strided operand may be read with 128-bit accesses when its base pointer is
// 16-byte aligned and every row (stride ld) starts 16-byte aligned too.
template <typename T>
__device__ __forceinline__ bool vector_access_ok(const T* p, long long ld) {
    return is_aligned16(p) && (ld % vec_width<T>()) == 0;
}

// ------------------------------------------------------------- cp.async (PTX)
// Asynchronous global -> shared copy of `bytes` (4, 8 or 16) bytes of which the
// first `src_bytes` come from global memory and the rest are zero-filled. The
// zero fill is what lets edge tiles stay inside the matrix: src_bytes = 0 reads
// nothing at all.
template <int BYTES>
__device__ __forceinline__ void cp_async(void* smem_dst, const void* gmem_src, int src_bytes) {
#ifdef TD_EMULATION
    std::memcpy(smem_dst, gmem_src, (size_t)src_bytes);
    std::memset(static_cast<char*>(smem_dst) + src_bytes, 0, (size_t)(BYTES - src_bytes));
#else
    static_assert(BYTES == 4 || BYTES == 8 || BYTES == 16, "cp.async copies 4, 8 or 16 bytes");
    unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
    if (BYTES == 16) {
        // .cg caches in L2 only: the tile is reused from shared memory, not L1.
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem_src),
                     "r"(src_bytes));
    } else {
        asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(dst), "l"(gmem_src),
                     "n"(BYTES), "r"(src_bytes));
    }
#endif
}

// A shared-memory address as cp.async takes it: the 32-bit shared-window offset
// on the GPU (converted once, outside any loop: the conversion reads the CTA's
// window base, two uniform instructions each time), a plain pointer when emulated.
#ifdef TD_EMULATION
using shared_addr = char*;
__device__ __forceinline__ shared_addr shared_address(void* p) { return static_cast<char*>(p); }
#else
using shared_addr = unsigned;
__device__ __forceinline__ shared_addr shared_address(void* p) {
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
#endif

// A whole 16-byte cp.async (no zero fill, so no source-size operand): for tiles
// known to lie inside the matrix.
__device__ __forceinline__ void cp_async16(shared_addr dst, const void* gmem_src) {
#ifdef TD_EMULATION
    std::memcpy(dst, gmem_src, 16);
#else
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(gmem_src));
#endif
}

// Closes the group of cp.async issued so far by this thread.
__device__ __forceinline__ void cp_async_commit() {
#ifndef TD_EMULATION
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Waits until at most PENDING of this thread's committed groups are in flight.
// (The emulated copies are synchronous, so there is never anything to wait for.)
template <int PENDING>
__device__ __forceinline__ void cp_async_wait() {
#ifndef TD_EMULATION
    asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING));
#endif
}

// ------------------------------------------------------------ operand tiles
// Copies of the BK x BX tile at (x0, k0) of an operand into smem[k * LDS + x].
//   x indexes M for operand A and N for operand B; X is that extent.
//   K_CONTIG: the operand's k index is the unit-stride one in global memory, i.e.
//     element (x, k) lives at g[x * ld + k]; otherwise at g[k * ld + x].
//     A is K_CONTIG when not transposed, B when transposed. A K_CONTIG tile is
//     transposed on its way into shared memory.
//   V: elements per access (1, or the 128-bit vector width).
//   vec_ok: run-time check that g and ld allow 128-bit accesses.
// Elements outside [0, X) x [0, K) are stored as zero, so the math needs no guard.
// Each thread handles PER_THREAD vectors, consecutive threads consecutive vectors
// along the unit-stride index (coalesced). One exception, LINE: a K_CONTIG tile of
// 128-bit vectors whose lines (BK long) split evenly over LINE_THREADS threads
// gives each thread PER_THREAD vectors of one line, LINE_THREADS vectors apart
// (neighbouring threads read neighbouring vectors). Its rounds then differ by a
// constant (LINE_THREADS * V elements in global memory, as many rows of the
// k-major slab), so the interior path (InteriorCopy) addresses all of them from
// one pointer; and a phase's transposing stores stay free of bank conflicts (see
// BANK_ROWS; the other mapping spreads a phase over every vector of a line,
// which conflicts when a line holds more than BANK_ROWS vectors).
template <typename T, int BK, int BX, int LDS, int NTHREADS, bool K_CONTIG, int V>
struct TileCopy {
    static constexpr int CONTIG_LEN = K_CONTIG ? BK : BX;  // tile extent along the unit-stride index
    static constexpr int OTHER_LEN = K_CONTIG ? BX : BK;
    static constexpr int VECS_PER_LINE = CONTIG_LEN / V;
    static constexpr int VECS = VECS_PER_LINE * OTHER_LEN;
    static constexpr int PER_THREAD = (VECS + NTHREADS - 1) / NTHREADS;
    // Transposing stores of one phase (32 lanes of 4 bytes, 16 of 8) are conflict-free
    // when the phase covers one slab row, or exactly BANK_ROWS rows one vector apart:
    // the pitch (BX + V, BX a multiple of the 128-byte bank period) shifts a row
    // V*V elements per vector, so BANK_ROWS such rows tile the banks.
    static constexpr int BANK_ROWS = V > 1 ? 128 / (int)sizeof(T) / (V * V) : 1;
    static constexpr bool LINE = K_CONTIG && V > 1 && PER_THREAD > 1 && VECS % NTHREADS == 0 &&
                                 VECS_PER_LINE % PER_THREAD == 0 &&
                                 (VECS_PER_LINE == PER_THREAD || VECS_PER_LINE / PER_THREAD == BANK_ROWS);
    static constexpr int LINE_THREADS = LINE ? VECS_PER_LINE / PER_THREAD : 1;
    static_assert(CONTIG_LEN % V == 0, "tile extent along the contiguous index must hold whole vectors");
    static_assert((LDS * (int)sizeof(T)) % 16 == 0 || V == 1 || K_CONTIG,
                  "vector stores into shared memory need 16-byte aligned rows");

    // Where vector i of the tile comes from and goes to.
    struct Slot {
        bool active;       // this thread has a vector i (the last round may be partial)
        long long src;     // element offset in global memory
        int dst;           // element offset in shared memory of its first element
        int valid;         // how many of its V elements lie inside the matrix
    };

    __host__ __device__ __forceinline__ static Slot slot(int round, int tid, long long ld, int x0, int k0, int X,
                                                         int K) {
        const int i = LINE ? (tid / LINE_THREADS) * VECS_PER_LINE + round * LINE_THREADS + tid % LINE_THREADS
                           : round * NTHREADS + tid;
        const int o = i / VECS_PER_LINE;        // offset along the strided index
        const int c = (i % VECS_PER_LINE) * V;  // offset along the unit-stride index
        const int gc = (K_CONTIG ? k0 : x0) + c, go = (K_CONTIG ? x0 : k0) + o;
        Slot s;
        s.active = VECS % NTHREADS == 0 || i < VECS;
        s.src = (long long)go * ld + gc;
        s.dst = K_CONTIG ? c * LDS + o : o * LDS + c;  // element (c + j, o) lands at dst + j * (K_CONTIG ? LDS : 1)
        s.valid = (go < (K_CONTIG ? X : K)) ? max(0, min(V, (K_CONTIG ? K : X) - gc)) : 0;
        return s;
    }

    // Where element j of this thread's vector `round` lands in shared memory.
    __host__ __device__ __forceinline__ static int store_offset(int round, int tid, int j) {
        return slot(round, tid, 0, 0, 0, 0, 0).dst + j * (K_CONTIG ? LDS : 1);
    }

    T staged[PER_THREAD][V];  // register staging between fetch() and stash()

    // Global -> registers (128-bit loads where allowed), zero outside the matrix.
    __device__ __forceinline__ void fetch(const T* __restrict__ g, long long ld, int x0, int k0, int X, int K,
                                          bool vec_ok, int tid) {
#pragma unroll
        for (int r = 0; r < PER_THREAD; ++r) {
            const Slot s = slot(r, tid, ld, x0, k0, X, K);
            if (!s.active) break;
            if (V > 1 && vec_ok && s.valid == V) {
                Pack16<T> p;
                p.vec = *reinterpret_cast<const typename Vec16<T>::type*>(g + s.src);
#pragma unroll
                for (int j = 0; j < V; ++j) staged[r][j] = p.elem[j];
            } else {
#pragma unroll
                for (int j = 0; j < V; ++j) staged[r][j] = j < s.valid ? g[s.src + j] : T(0);
            }
        }
    }

    // Registers -> shared memory: one 128-bit store, or V scattered ones when the
    // tile is transposed on the way.
    __device__ __forceinline__ void stash(T* __restrict__ smem, int tid) const {
#pragma unroll
        for (int r = 0; r < PER_THREAD; ++r) {
            const Slot s = slot(r, tid, 0, 0, 0, 0, 0);
            if (!s.active) break;
            if (!K_CONTIG && V > 1) {
                Pack16<T> p;
#pragma unroll
                for (int j = 0; j < V; ++j) p.elem[j] = staged[r][j];
                *reinterpret_cast<typename Vec16<T>::type*>(smem + s.dst) = p.vec;
            } else {
#pragma unroll
                for (int j = 0; j < V; ++j) smem[store_offset(r, tid, j)] = staged[r][j];
            }
        }
    }

    // Global -> shared with cp.async, no registers involved: 16-byte copies when the
    // tile keeps its global orientation, element-sized ones when it is transposed.
    __device__ __forceinline__ static void copy_async(T* __restrict__ smem, const T* __restrict__ g, long long ld,
                                                      int x0, int k0, int X, int K, bool vec_ok, int tid) {
#pragma unroll
        for (int r = 0; r < PER_THREAD; ++r) {
            const Slot s = slot(r, tid, ld, x0, k0, X, K);
            if (!s.active) break;
            if (!K_CONTIG && V > 1 && vec_ok) {
                // a partial vector at the edge is zero-filled; src_bytes 0 reads nothing
                cp_async<16>(smem + s.dst, s.valid > 0 ? g + s.src : g, s.valid * (int)sizeof(T));
            } else {
#pragma unroll
                for (int j = 0; j < V; ++j)
                    cp_async<sizeof(T)>(smem + s.dst + j * (K_CONTIG ? LDS : 1), j < s.valid ? g + s.src + j : g,
                                        j < s.valid ? (int)sizeof(T) : 0);
            }
        }
    }
};

// The interior path: copies of whole tiles for a block whose tiles all lie inside
// the matrix, with 128-bit access allowed (the caller checks that once per block,
// and runs the guarded TileCopy for edge blocks and the last K tile). Nothing is
// tested or recomputed per tile: the cursor holds round 0's source pointer and
// slab offset, every other round sits at a fixed distance from it (an immediate
// offset in the instruction, or one runtime stride between rows), and
// next_tile() advances the pointer by one K tile. Same slots as TileCopy
// (TileCopy::slot).
template <typename T, int BK, int BX, int LDS, int NTHREADS, bool K_CONTIG>
struct InteriorCopy {
    static constexpr int V = vec_width<T>();
    using Copy = TileCopy<T, BK, BX, LDS, NTHREADS, K_CONTIG, V>;
    static constexpr int ROUNDS = Copy::PER_THREAD;
    static constexpr int LINES_PER_ROUND = NTHREADS / Copy::VECS_PER_LINE;  // when not Copy::LINE
    static_assert(Copy::VECS % NTHREADS == 0 && (Copy::LINE || ROUNDS == 1 || NTHREADS % Copy::VECS_PER_LINE == 0),
                  "interior copies need whole rounds of whole lines");
    // Distance between consecutive rounds in the slab (elements).
    static constexpr int LINE_STEP = Copy::LINE_THREADS * V;  // along a line between rounds, when Copy::LINE
    static constexpr int DST_STEP = Copy::LINE ? LINE_STEP * LDS : K_CONTIG ? LINES_PER_ROUND : LINES_PER_ROUND * LDS;
    using Vec = typename Vec16<T>::type;

    const T* src;        // round 0 of the next tile
    int dst;             // round 0's element offset within a slab
    Vec staged[ROUNDS];  // register staging between fetch() and stash()

    // ld is the operand's leading dimension, passed again on every call rather than
    // kept (with the strides derived from it) in registers across the K loop: a
    // kernel parameter can be reread from the constant bank, and registers are
    // what these tiles run short of.
    __host__ __device__ __forceinline__ InteriorCopy(const T* g, long long ld, int x0, int k0, int tid) {
        const typename Copy::Slot s = Copy::slot(0, tid, ld, x0, k0, 0, 0);
        src = g + s.src;
        dst = s.dst;
    }

    __device__ __forceinline__ const T* source(int r, long long ld) const {
        return src + (Copy::LINE ? (long long)r * LINE_STEP : r * LINES_PER_ROUND * ld);
    }
    __device__ __forceinline__ void next_tile(long long ld) { src += K_CONTIG ? (long long)BK : BK * ld; }

    // Where element j of round r's vector lands in a slab (the bank-conflict test
    // evaluates this for every lane): V rows apart when transposed, else adjacent.
    __host__ __device__ __forceinline__ int slab_offset(int r, int j) const {
        return dst + r * DST_STEP + j * (K_CONTIG ? LDS : 1);
    }

    // Global -> registers, then on to the next tile.
    __device__ __forceinline__ void fetch(long long ld) {
#pragma unroll
        for (int r = 0; r < ROUNDS; ++r) staged[r] = *reinterpret_cast<const Vec*>(source(r, ld));
        next_tile(ld);
    }

    // Registers -> slab: one 128-bit store per round, or V scattered ones (k-major transpose).
    __device__ __forceinline__ void stash(T* __restrict__ slab) const {
#pragma unroll
        for (int r = 0; r < ROUNDS; ++r) {
            if (K_CONTIG) {
                Pack16<T> p;
                p.vec = staged[r];
#pragma unroll
                for (int j = 0; j < V; ++j) slab[slab_offset(r, j)] = p.elem[j];
            } else {
                *reinterpret_cast<Vec*>(slab + slab_offset(r, 0)) = staged[r];
            }
        }
    }

    // Global -> slab with whole 16-byte cp.async (operands that keep their
    // orientation), then on to the next tile. slab is the slab's shared address.
    __device__ __forceinline__ void copy_async(shared_addr slab, long long ld) {
        static_assert(!K_CONTIG, "a k-contiguous tile is transposed on its way: stage it (fetch/stash)");
#pragma unroll
        for (int r = 0; r < ROUNDS; ++r) cp_async16(slab + slab_offset(r, 0) * (int)sizeof(T), source(r, ld));
        next_tile(ld);
    }
};

// How load_tile moves a tile.
enum class CopyMode {
    Scalar,  // one element per access (rungs 1-2: the plain baseline)
    Vector,  // 128-bit global loads where alignment allows, through registers
    Async,   // cp.async (see TileCopy::copy_async)
};

// Copy the BK x BX tile at (x0, k0) of an operand into smem[k * LDS + x] now
// (for Async: issue the copies), see TileCopy.
template <typename T, int BK, int BX, int LDS, int NTHREADS, bool K_CONTIG, CopyMode MODE>
__device__ __forceinline__ void load_tile(T* __restrict__ smem, const T* __restrict__ g, long long ld, int x0,
                                          int k0, int X, int K, bool vec_ok, int tid) {
    using Copy = TileCopy<T, BK, BX, LDS, NTHREADS, K_CONTIG, MODE == CopyMode::Scalar ? 1 : vec_width<T>()>;
    if (MODE == CopyMode::Async) {
        Copy::copy_async(smem, g, ld, x0, k0, X, K, vec_ok, tid);
    } else {
        Copy copy;
        copy.fetch(g, ld, x0, k0, X, K, vec_ok, tid);
        copy.stash(smem, tid);
    }
}

// ------------------------------------------------------------- register math
// Load N consecutive shared-memory values into registers, as 128-bit reads when
// VEC (the caller guarantees 16-byte alignment of s then).
template <typename T, int N, bool VEC>
__device__ __forceinline__ void load_fragment(T* __restrict__ reg, const T* __restrict__ s) {
    constexpr int V = vec_width<T>();
    if (VEC && N % V == 0) {
#pragma unroll
        for (int i = 0; i < N; i += V) {
            Pack16<T> p;
            p.vec = *reinterpret_cast<const typename Vec16<T>::type*>(s + i);
#pragma unroll
            for (int j = 0; j < V; ++j) reg[i + j] = p.elem[j];
        }
    } else {
#pragma unroll
        for (int i = 0; i < N; ++i) reg[i] = s[i];
    }
}

// acc[i][j] += a[i] * b[j]: one k step of a register-blocked tile.
template <typename T, int RM, int RN>
__device__ __forceinline__ void outer_product(T (&acc)[RM][RN], const T (&a)[RM], const T (&b)[RN]) {
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
        for (int j = 0; j < RN; ++j) acc[i][j] += a[i] * b[j];
}

// Write N consecutive results of row m, starting at column n, with guards; as
// 128-bit stores when VEC, the run-time alignment allows and the row is whole.
template <typename T, int N, bool VEC>
__device__ __forceinline__ void store_row(T* __restrict__ C, long long ldc, int m, int n, int M, int Ncols,
                                          const T* vals, bool vec_ok) {
    if (m >= M) return;
    T* dst = C + (long long)m * ldc + n;
    constexpr int V = vec_width<T>();
    if (VEC && N % V == 0 && vec_ok && n + N <= Ncols) {
#pragma unroll
        for (int i = 0; i < N; i += V) {
            Pack16<T> p;
#pragma unroll
            for (int j = 0; j < V; ++j) p.elem[j] = vals[i + j];
            *reinterpret_cast<typename Vec16<T>::type*>(dst + i) = p.vec;
        }
    } else {
#pragma unroll
        for (int j = 0; j < N; ++j)
            if (n + j < Ncols) dst[j] = vals[j];
    }
}

// ------------------------------------------------------------------ batches
// The operands of batch entry z (batch stride 0 broadcasts an operand) and
// whether each may use 128-bit accesses. Each block handles the one entry
// z = blockIdx.z: a grid-stride loop over the batch would let the compiler hoist
// per-row addresses out of it and spill, so the host splits batches beyond the
// 65535 grid limit over several launches instead.
template <typename T>
struct BatchEntry {
    const T* a;
    const T* b;
    T* c;
    bool a_vec, b_vec, c_vec;
};

template <typename T>
__device__ __forceinline__ BatchEntry<T> batch_entry(int z, const T* A, long long lda, long long batch_stride_a,
                                                     const T* B, long long ldb, long long batch_stride_b, T* C,
                                                     long long ldc, long long batch_stride_c) {
    BatchEntry<T> e;
    e.a = A + z * batch_stride_a;
    e.b = B + z * batch_stride_b;
    e.c = C + z * batch_stride_c;
    e.a_vec = vector_access_ok(e.a, lda);
    e.b_vec = vector_access_ok(e.b, ldb);
    e.c_vec = vector_access_ok(e.c, ldc);
    return e;
}

}  // namespace td
