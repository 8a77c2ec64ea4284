// cuda_emulation.h: run the project's CUDA kernels on the CPU (device "emu").
//
// Force-included (g++ -include) before a kernel source. It supplies the CUDA
// keywords, built-in index variables, vector types and a REAL __syncthreads:
// every CUDA thread of a block is a ucontext fiber; __syncthreads() switches back
// to the block's scheduler, which resumes each fiber once per round, so no fiber
// passes barrier i before all of them have reached it. Blocks of a grid are
// spread over a few OS threads; everything per-block (the built-in indices and
// __shared__ arrays, which become static thread_local) is thread_local, and a
// block runs start to end on one OS thread, so blocks never share them.
//
// It checks indexing, guards, barriers and the pipeline logic of the kernels, and
// lets a debugger step through one CUDA thread. Warp-synchronous behaviour and
// timing are out of scope (the kernels use neither shuffles nor implicit warp
// synchrony). The one warp-collective, the DMMA rung's mma.sync, is emulated in
// kernels/mma_f64.cuh from its PTX fragment layout: lanes exchange fragments
// through per-block scratch between two __syncthreads, which is exact as long as
// every warp of the block executes it the same number of times (barriers here
// are block-wide). Kernels are entered through td_emu::launch_kernel, which takes the
// parameters as cuLaunchKernel does (an array of pointers to each value), so the
// Python side builds one argument list for both devices.
#pragma once
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#define TD_EMULATION 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static thread_local
#define __align__(n) __attribute__((aligned(n)))

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
    dim3() = default;
    dim3(unsigned x_, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
struct __attribute__((aligned(16))) double2 { double x, y; };

template <typename T> inline T min(T a, T b) { return b < a ? b : a; }
template <typename T> inline T max(T a, T b) { return a < b ? b : a; }

inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace td_emu {

struct Fiber {
    ucontext_t ctx;
    std::vector<char> stack;
    bool done = false;
};

struct BlockScheduler {
    ucontext_t sched;
    std::vector<Fiber> fibers;
    Fiber* current = nullptr;
    const std::function<void()>* body = nullptr;
    std::exception_ptr error;
};

inline thread_local BlockScheduler* this_block = nullptr;

inline void fiber_entry() {
    BlockScheduler* s = this_block;
    try {
        (*s->body)();
    } catch (...) {
        if (!s->error) s->error = std::current_exception();
    }
    s->current->done = true;  // returning resumes uc_link, the scheduler
}

inline void syncthreads() {
    BlockScheduler* s = this_block;
    swapcontext(&s->current->ctx, &s->sched);
}

// Runs one block to completion: every fiber once per round until all are done.
inline void run_block(BlockScheduler& s, unsigned nthreads, size_t stack_bytes) {
    if (s.fibers.size() < nthreads) s.fibers.resize(nthreads);
    for (unsigned t = 0; t < nthreads; ++t) {
        Fiber& f = s.fibers[t];
        if (f.stack.size() < stack_bytes) f.stack.assign(stack_bytes, 0);
        f.done = false;
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack.data();
        f.ctx.uc_stack.ss_size = f.stack.size();
        f.ctx.uc_link = &s.sched;
        makecontext(&f.ctx, fiber_entry, 0);
    }
    for (bool any_alive = true; any_alive;) {
        any_alive = false;
        for (unsigned t = 0; t < nthreads; ++t) {
            Fiber& f = s.fibers[t];
            if (f.done) continue;
            threadIdx = dim3(t % blockDim.x, (t / blockDim.x) % blockDim.y, t / (blockDim.x * blockDim.y));
            s.current = &f;
            swapcontext(&s.sched, &f.ctx);
            any_alive |= !f.done;
        }
    }
}

// Launch `body` (a call of the kernel) over grid x block. Returns 0 on success;
// on failure writes a message into err and returns 1.
inline int launch(dim3 grid, dim3 block, const std::function<void()>& body, int workers, char* err,
                  size_t err_len) {
    const unsigned nthreads = block.x * block.y * block.z;
    const long long nblocks = (long long)grid.x * grid.y * grid.z;
    std::atomic<long long> next{0};
    std::vector<std::exception_ptr> errors(std::max(1, workers));
    auto worker = [&](int w) {
        BlockScheduler s;
        s.body = &body;
        this_block = &s;
        gridDim = grid;
        blockDim = block;
        for (long long b; (b = next++) < nblocks;) {
            blockIdx = dim3(b % grid.x, (b / grid.x) % grid.y, b / ((long long)grid.x * grid.y));
            run_block(s, nthreads, 64 * 1024);
            if (s.error) { errors[w] = s.error; break; }
        }
        this_block = nullptr;
    };
    workers = (int)std::max(1LL, std::min<long long>(workers, nblocks));
    std::vector<std::thread> pool;
    for (int w = 1; w < workers; ++w) pool.emplace_back(worker, w);
    worker(0);
    for (auto& t : pool) t.join();
    for (auto& e : errors) {
        if (!e) continue;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            std::snprintf(err, err_len, "%s", ex.what());
        } catch (...) {
            std::snprintf(err, err_len, "unknown exception in emulated kernel");
        }
        return 1;
    }
    return 0;
}

// kernel(*args[0], *args[1], ...): each parameter read from the value args[i]
// points to, typed by the kernel's own signature (nothing to keep in step).
template <typename... P, size_t... I>
inline void call_unpacked(void (*kernel)(P...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<std::remove_reference_t<P>>*>(args[I])...);
}

template <typename... P>
inline int launch_kernel(void (*kernel)(P...), void** args, dim3 grid, dim3 block, int workers, char* err,
                         size_t err_len) {
    return launch(grid, block, [&] { call_unpacked(kernel, args, std::index_sequence_for<P...>{}); }, workers,
                  err, err_len);
}

}  // namespace td_emu

inline void __syncthreads() { td_emu::syncthreads(); }
