#!/usr/bin/env bash
# GPU check of the GEMM kernels: GPU tests, compute-sanitizer memcheck (every
# rung, odd/unit/misaligned/batched shapes), racecheck and synccheck (cp_async and
# warp_tiled) on small cases when compute-sanitizer exists, then the GEMM and
# dispatch (host cost per call) benchmarks.
#   benchmarks/gpu_check.sh          quick mode (under 3 minutes)
#   benchmarks/gpu_check.sh --full   full benchmark (under 8 minutes)
# Logs and results go under $OUT when it is set, else benchmarks/results/gpu_check.
# Exits non-zero if the tests or a sanitizer run fail (the benchmark still runs).
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

echo "== nvidia-smi" | tee "$DEST/gpu_check.log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee -a "$DEST/gpu_check.log"

echo "== GPU tests ($((SECONDS - START)) s)" | tee -a "$DEST/gpu_check.log"
"$PY" -m pytest -m gpu -q -p no:cacheprovider 2>&1 | tee "$DEST/gpu_tests.log" | tail -25
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1

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
    # so these runs load cubins instead of compiling.
    sanitize() {  # tool, timeout, log, script args...
        local tool=$1 limit=$2 log=$3; shift 3
        echo "== compute-sanitizer $tool ($((SECONDS - START)) s)" | tee -a "$DEST/gpu_check.log"
        TINYGRAD_DOT_AUTOTUNE=0 timeout "$limit" "$SANITIZER" --tool "$tool" --error-exitcode 3 "$PY" "$@" \
            > "$DEST/$log" 2>&1
        local rc=$?
        tail -5 "$DEST/$log"
        [[ $rc -eq 0 ]] || { echo "$tool FAILED (rc=$rc; 124 = timed out)" | tee -a "$DEST/gpu_check.log"; status=1; }
    }
    # Estimated (no GPU run yet): sanitizer start + CuPy init ~10-15 s per run;
    # memcheck ~320 small launches ~20-40 s; racecheck 8 (quick) or 16 launches
    # ~20-40 s; synccheck 8 launches ~15 s. Quick mode: tests ~60 s + sanitizers
    # ~50-70 s + benchmark ~50 s, under 3 minutes; synccheck runs there only while
    # the check is under 2 minutes in, and each run is capped.
    if [[ $MODE == quick ]]; then
        sanitize memcheck 80 memcheck.log "$SCRATCH/memcheck_cases.py"
        sanitize racecheck 50 racecheck.log "$SCRATCH/race_cases.py" f32
        if (( SECONDS - START < 120 )); then
            sanitize synccheck 30 synccheck.log "$SCRATCH/race_cases.py" f32
        else
            echo "== synccheck skipped in quick mode (time; --full runs it)" | tee -a "$DEST/gpu_check.log"
        fi
    else
        sanitize memcheck 240 memcheck.log "$SCRATCH/memcheck_cases.py"
        sanitize racecheck 180 racecheck.log "$SCRATCH/race_cases.py"
        sanitize synccheck 120 synccheck.log "$SCRATCH/race_cases.py"
    fi
else
    echo "== compute-sanitizer not found: memcheck, racecheck and synccheck skipped" | tee -a "$DEST/gpu_check.log"
fi

echo "== benchmark, $MODE ($((SECONDS - START)) s)" | tee -a "$DEST/gpu_check.log"
BENCH_ARGS=(--out-dir "$DEST")
[[ $MODE == quick ]] && BENCH_ARGS+=(--quick)
"$PY" benchmarks/gemm.py "${BENCH_ARGS[@]}" 2>&1 | tee "$DEST/benchmark.log"
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1

# Host cost per td.matmul: ours vs cupy.matmul vs torch.matmul on the GPU, and the
# emulated dry run in the same process (about 20 s in quick mode).
echo "== dispatch benchmark ($((SECONDS - START)) s)" | tee -a "$DEST/gpu_check.log"
DISPATCH_ARGS=(--out "$DEST/dispatch.json")
[[ $MODE == quick ]] && DISPATCH_ARGS+=(--quick)
"$PY" benchmarks/dispatch.py "${DISPATCH_ARGS[@]}" 2>&1 | tee "$DEST/dispatch.log"
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1

# A linear model's products (skinny kernels) against cuBLAS and the copy bandwidth,
# and full-batch least squares against PyTorch eager (quick: X[2**20, 256], 10 steps).
echo "== linear-model benchmark ($((SECONDS - START)) s)" | tee -a "$DEST/gpu_check.log"
LINEAR_ARGS=(--out "$DEST/linear.json")
[[ $MODE == quick ]] && LINEAR_ARGS+=(--rows 1048576 --steps 10 --groups 3)  # 1 GB of X: far past L2
"$PY" benchmarks/linear.py "${LINEAR_ARGS[@]}" 2>&1 | tee "$DEST/linear.log"
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1

# Our SpMM kernels against cuSPARSE (uniform densities 0.01-1% and a skewed matrix).
echo "== sparse benchmark ($((SECONDS - START)) s)" | tee -a "$DEST/gpu_check.log"
SPARSE_ARGS=(--device cuda --out "$DEST/sparse-gpu.json")
[[ $MODE == quick ]] && SPARSE_ARGS+=(--quick)
"$PY" benchmarks/sparse.py "${SPARSE_ARGS[@]}" 2>&1 | tee "$DEST/sparse.log"
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1

echo "== done in $((SECONDS - START)) s, status $status" | tee -a "$DEST/gpu_check.log"
exit $status
