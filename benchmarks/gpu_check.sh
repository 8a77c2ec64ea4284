#!/usr/bin/env bash
# GPU check: every GPU test first (the linear-model kernels' tests leading), then
# the benchmarks, most wanted first: linear-model products and least squares
# (issue 15), the GEMM ladder against cuBLAS, the softmax training protocol; then
# compute-sanitizer memcheck (every rung, odd/unit/misaligned/batched shapes),
# racecheck and synccheck (cp_async and warp_tiled) on small cases when
# compute-sanitizer exists, and the dispatch (host cost per call) and sparse
# benchmarks.
#   benchmarks/gpu_check.sh          quick mode (under 3 minutes: see the budget below)
#   benchmarks/gpu_check.sh --full   everything, full sizes (no time bound; estimated 15-20 minutes)
#   SKIP_TESTS=1 QUICK_BUDGET=540 benchmarks/gpu_check.sh
#                                    a second run: quick sizes, no tests, what fits in 9 minutes
# Logs and results go under $OUT when it is set, else benchmarks/results/gpu_check.
# Exits non-zero if the tests, a sanitizer run or a benchmark's own check fail
# (the benchmarks still run).
#
# Quick mode's budget (ESTIMATES: no GPU has run this script yet; H100/H200 host,
# cold kernel cache, each Python process ~3 s to start with CuPy, ~3 s more with
# PyTorch):
#   linear-model kernels' GPU tests (NVRTC compiles of the skinny kernels)  ~30-40 s
#   the other GPU tests (~200, every GEMM config compiled)                ~90 s
# (about 2 minutes), then each of these only while its estimate still fits in
# QUICK_BUDGET (a skip is logged):
#   linear-model benchmark, X[2**19, 256], 10 steps                       ~30-40 s
#   GEMM benchmark --quick (25 cases, autotuning compiles)                ~120 s
#   training benchmark --quick (12,000 rows, 7 trainers)                  ~20-40 s
#   memcheck / racecheck / synccheck (their caps)                         80 / 50 / 30 s
#   dispatch benchmark --quick                                            ~20 s
#   sparse benchmark --quick                                              ~30 s
# All of it would take about 8 minutes: quick mode runs the tests and what fits
# after them; the second run above takes the rest.
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=quick
[[ "${1:-}" == "--full" ]] && MODE=full
DEST="${OUT:-benchmarks/results/gpu_check}"
mkdir -p "$DEST"
# One cache (cubins, autotune choices) shared by all steps, kept out of $OUT:
# only a few files come back from there, and they should be the logs and results.
export TINYGRAD_DOT_CACHE_DIR="${TINYGRAD_DOT_CACHE_DIR:-${TMPDIR:-/tmp}/tinygrad_dot_gpu_check_cache}"
SCRATCH=$(mktemp -d)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset CUPY_TF32
PY="${PYTHON:-$(command -v python3 || command -v python)}"
status=0
START=$SECONDS
QUICK_BUDGET=${QUICK_BUDGET:-170}  # seconds of quick mode in which a step must end (a rerun may raise it)

# fits NAME ESTIMATE: whether a step estimated at ESTIMATE seconds may start; in quick
# mode only while it would still end within QUICK_BUDGET (a skip is logged).
fits() {
    [[ $MODE == full ]] && return 0
    (( SECONDS - START + $2 <= QUICK_BUDGET )) && return 0
    echo "== $1 skipped in quick mode (~$2 s would pass QUICK_BUDGET=${QUICK_BUDGET} s; --full or a second run" \
         "with SKIP_TESTS=1 QUICK_BUDGET=540 takes it)" | tee -a "$DEST/gpu_check.log"
    return 1
}

# run_step TITLE LOG [TAIL] -- COMMAND...: run, log to $DEST/LOG, show the last TAIL
# lines (all by default); a failure makes the check fail.
run_step() {
    local title=$1 log=$2 lines=+1
    shift 2
    if [[ $1 != -- ]]; then lines=$1; shift; fi
    shift  # the --
    echo "== $title ($((SECONDS - START)) s)" | tee -a "$DEST/gpu_check.log"
    "$@" 2>&1 | tee "$DEST/$log" | tail -n "$lines"
    [[ ${PIPESTATUS[0]} -eq 0 ]] || { echo "$title FAILED" | tee -a "$DEST/gpu_check.log"; status=1; }
}

echo "== nvidia-smi" | tee "$DEST/gpu_check.log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee -a "$DEST/gpu_check.log"

# GPU tests first, every one of them: nothing else here means anything until the
# kernels are right on the device. The linear-model kernels' tests (the newest
# kernels) go first, the rest after (two calls: pytest orders one call's files
# itself). SKIP_TESTS=1 skips both, for a second run once they have passed.
NEW_KERNEL_TESTS=(tests/test_linear_skinny.py tests/test_fused_linear.py)
COMPILED=  # set once the GPU tests have compiled every default GEMM config (see sanitize)
if [[ -z ${SKIP_TESTS:-} ]]; then
    run_step "GPU tests of the linear-model kernels" gpu_tests_linear.log 25 -- \
        "$PY" -m pytest -m gpu -q -p no:cacheprovider "${NEW_KERNEL_TESTS[@]}"
    run_step "other GPU tests" gpu_tests.log 25 -- "$PY" -m pytest -m gpu -q -p no:cacheprovider \
        "${NEW_KERNEL_TESTS[@]/#/--ignore=}"
    COMPILED=1
else
    echo "== GPU tests skipped (SKIP_TESTS set)" | tee -a "$DEST/gpu_check.log"
fi

# Then the benchmarks, most wanted first, each only while it fits the budget.
# A linear model's products (skinny kernels) against cuBLAS and the copy bandwidth;
# full-batch least squares (tape, fused, fused + CUDA graph) against PyTorch eager.
# Quick: X[2**19, 256] (512 MiB, ten times the L2 of an H100/H200), 10 steps.
LINEAR_ARGS=(--out "$DEST/linear.json")
[[ $MODE == quick ]] && LINEAR_ARGS+=(--rows 524288 --steps 10 --groups 3)
fits "linear-model benchmark" 40 && run_step "linear-model benchmark" linear.log -- \
    "$PY" benchmarks/linear.py "${LINEAR_ARGS[@]}"

# The GEMM ladder against cuBLAS (float32 and float64, the 4096^3 targets).
BENCH_ARGS=(--out-dir "$DEST")
[[ $MODE == quick ]] && BENCH_ARGS+=(--quick)
fits "GEMM benchmark" 120 && run_step "GEMM benchmark, $MODE" benchmark.log -- \
    "$PY" benchmarks/gemm.py "${BENCH_ARGS[@]}"

# The reference softmax protocol: tinygrad_dot on the GPU (tape, fused, fused + CUDA
# graph), PyTorch eager on the GPU, and the CPU implementations; fails if any misses
# the reference loss and accuracy. Quick: 12,000 rows.
TRAIN_ARGS=(--device cuda --out "$DEST/train-gpu.json")
[[ $MODE == quick ]] && TRAIN_ARGS+=(--quick)
fits "training benchmark" 40 && run_step "training benchmark" train.log -- \
    "$PY" -m tinygrad_dot.bench.train "${TRAIN_ARGS[@]}"

SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [[ -n "$SANITIZER" ]]; then
    cat > "$SCRATCH/memcheck_cases.py" <<'PY'
# Small odd shapes through every rung and layout, under memcheck: any read or
# write outside the operands is reported by the sanitizer. CuPy's memory pool
# hands out slices of big blocks, which would hide an overrun into a neighbour:
# allocate every array on its own with cudaMalloc instead.
import cupy as cp
cp.cuda.set_allocator(None)
import numpy as np
from tinygrad_dot import gemm
rng = np.random.default_rng(0)
dev = lambda shape, dtype: cp.asarray(rng.standard_normal(shape).astype(dtype))
for dtype in (np.float32, np.float64):
    for kernel in gemm.kernel_names(dtype):
        for (m, n, k) in ((1, 7, 33), (33, 65, 7), (129, 127, 130), (1, 1, 1), (1, 33, 1), (65, 1, 1), (7, 9, 1)):
            for ta in (False, True):
                for tb in (False, True):
                    a = dev((k, m) if ta else (m, k), dtype)
                    b = dev((n, k) if tb else (k, n), dtype)
                    gemm.matmul(a.T if ta else a, b.T if tb else b, kernel=kernel)
        flat = dev(130 * 128 + 1, dtype)
        mis = flat[1:].reshape(130, 128)[:, :127]            # pointer off 16-byte alignment, ld 128
        gemm.matmul(mis, dev((127, 33), dtype), kernel=kernel)
        gemm.matmul(dev((33, 130), dtype), mis, kernel=kernel)
        a3 = dev((4, 129, 127), dtype)
        gemm.matmul(a3, dev((127, 33), dtype), kernel=kernel)              # broadcast B, batch stride 0
        gemm.matmul(cp.swapaxes(a3, 1, 2), dev((4, 129, 7), dtype), kernel=kernel)  # batched A^T
    cp.cuda.Device().synchronize()
print("memcheck cases ran")
PY
    cat > "$SCRATCH/race_cases.py" <<'PY'
# Shared-memory races (racecheck) and barrier misuse (synccheck) in the two rungs
# with the most intricate shared-memory traffic: one odd shape per layout whose K
# spans several BK slices (so the pipeline wraps) with partial edge tiles.
import sys
import cupy as cp
cp.cuda.set_allocator(None)
import numpy as np
from tinygrad_dot import gemm
rng = np.random.default_rng(1)
dtypes = (np.float32, np.float64) if sys.argv[1:] != ["f32"] else (np.float32,)
for dtype in dtypes:
    for kernel in ("cp_async", "warp_tiled"):
        for (m, n, k, ta, tb) in ((65, 33, 41, False, False), (33, 65, 37, False, True),
                                  (70, 31, 29, True, False), (31, 70, 45, True, True)):
            a = cp.asarray(rng.standard_normal((k, m) if ta else (m, k)).astype(dtype))
            b = cp.asarray(rng.standard_normal((n, k) if tb else (k, n)).astype(dtype))
            gemm.matmul(a.T if ta else a, b.T if tb else b, kernel=kernel)
cp.cuda.Device().synchronize()
print("race cases ran")
PY
    # Each sanitizer run is bounded so a slow one cannot eat the whole budget. The
    # GPU tests above compiled every default config into $TINYGRAD_DOT_CACHE_DIR,
    # so these runs load cubins instead of compiling; without them (quick mode out
    # of time) a run would spend its cap compiling under the sanitizer and time out.
    sanitize() {  # tool, timeout, log, script args...
        local tool=$1 limit=$2 log=$3; shift 3
        if [[ -z $COMPILED ]]; then
            echo "== compute-sanitizer $tool skipped: the GPU tests that compile its kernels did not run" \
                | tee -a "$DEST/gpu_check.log"
            return 0
        fi
        fits "compute-sanitizer $tool" "$limit" || return 0
        echo "== compute-sanitizer $tool ($((SECONDS - START)) s)" | tee -a "$DEST/gpu_check.log"
        TINYGRAD_DOT_AUTOTUNE=0 timeout "$limit" "$SANITIZER" --tool "$tool" --error-exitcode 3 "$PY" "$@" \
            > "$DEST/$log" 2>&1
        local rc=$?
        tail -5 "$DEST/$log"
        [[ $rc -eq 0 ]] || { echo "$tool FAILED (rc=$rc; 124 = timed out)" | tee -a "$DEST/gpu_check.log"; status=1; }
    }
    # Estimated (no GPU run yet): sanitizer start + CuPy init ~10-15 s per run;
    # memcheck ~320 small launches ~20-40 s; racecheck 8 (quick) or 16 launches
    # ~20-40 s; synccheck 8 launches ~15 s. In quick mode each starts only if its
    # cap still fits in the budget (fits), which after the steps above is rare.
    if [[ $MODE == quick ]]; then
        sanitize memcheck 80 memcheck.log "$SCRATCH/memcheck_cases.py"
        sanitize racecheck 50 racecheck.log "$SCRATCH/race_cases.py" f32
        sanitize synccheck 30 synccheck.log "$SCRATCH/race_cases.py" f32
    else
        sanitize memcheck 240 memcheck.log "$SCRATCH/memcheck_cases.py"
        sanitize racecheck 180 racecheck.log "$SCRATCH/race_cases.py"
        sanitize synccheck 120 synccheck.log "$SCRATCH/race_cases.py"
    fi
else
    echo "== compute-sanitizer not found: memcheck, racecheck and synccheck skipped" | tee -a "$DEST/gpu_check.log"
fi

# Host cost per td.matmul: ours vs cupy.matmul vs torch.matmul on the GPU, and the
# emulated dry run in the same process (about 20 s in quick mode).
DISPATCH_ARGS=(--out "$DEST/dispatch.json")
[[ $MODE == quick ]] && DISPATCH_ARGS+=(--quick)
fits "dispatch benchmark" 20 && run_step "dispatch benchmark" dispatch.log -- \
    "$PY" benchmarks/dispatch.py "${DISPATCH_ARGS[@]}"

# Our SpMM kernels against cuSPARSE (uniform densities 0.01-1% and a skewed matrix).
SPARSE_ARGS=(--device cuda --out "$DEST/sparse-gpu.json")
[[ $MODE == quick ]] && SPARSE_ARGS+=(--quick)
fits "sparse benchmark" 30 && run_step "sparse benchmark" sparse.log -- "$PY" benchmarks/sparse.py "${SPARSE_ARGS[@]}"

echo "== done in $((SECONDS - START)) s, status $status" | tee -a "$DEST/gpu_check.log"
exit $status
