#!/usr/bin/env bash
# GPU check of the GEMM kernels: GPU tests, compute-sanitizer memcheck on a few
# small cases (when compute-sanitizer exists), then the benchmark.
#   benchmarks/gpu_check.sh          quick mode (under 3 minutes)
#   benchmarks/gpu_check.sh --full   full benchmark (under 8 minutes)
# Logs and results go under $OUT when it is set, else benchmarks/results/gpu_check.
# Exits non-zero if the tests or the memcheck fail (the benchmark still runs).
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
    echo "== compute-sanitizer memcheck ($((SECONDS - START)) s)" | tee -a "$DEST/gpu_check.log"
    cat > "$SCRATCH/memcheck_cases.py" <<'PY'
# Small odd shapes through every rung and layout, under memcheck: any read or
# write outside the operands is reported by the sanitizer.
import cupy as cp, numpy as np
from tinygrad_dot import gemm
rng = np.random.default_rng(0)
for dtype in (np.float32, np.float64):
    for kernel in gemm.kernel_names():
        for (m, n, k) in ((1, 7, 33), (33, 65, 7), (129, 127, 130)):
            for ta in (False, True):
                for tb in (False, True):
                    a = cp.asarray(rng.standard_normal((k, m) if ta else (m, k)).astype(dtype))
                    b = cp.asarray(rng.standard_normal((n, k) if tb else (k, n)).astype(dtype))
                    c = gemm.matmul(a.T if ta else a, b.T if tb else b, kernel=kernel)
cp.cuda.Device().synchronize()
print("memcheck cases ran")
PY
    TINYGRAD_DOT_AUTOTUNE=0 "$SANITIZER" --tool memcheck --error-exitcode 3 "$PY" "$SCRATCH/memcheck_cases.py" \
        > "$DEST/memcheck.log" 2>&1
    rc=$?
    tail -5 "$DEST/memcheck.log"
    [[ $rc -eq 0 ]] || { echo "memcheck FAILED (rc=$rc)"; status=1; }
else
    echo "== compute-sanitizer not found: memcheck skipped" | tee -a "$DEST/gpu_check.log"
fi

echo "== benchmark, $MODE ($((SECONDS - START)) s)" | tee -a "$DEST/gpu_check.log"
BENCH_ARGS=(--out-dir "$DEST")
[[ $MODE == quick ]] && BENCH_ARGS+=(--quick)
"$PY" benchmarks/gemm.py "${BENCH_ARGS[@]}" 2>&1 | tee "$DEST/benchmark.log"
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1

echo "== done in $((SECONDS - START)) s, status $status" | tee -a "$DEST/gpu_check.log"
exit $status
