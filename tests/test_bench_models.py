"""benchmarks/models.py (td.models vs scikit-learn; the script calling
tinygrad_dot/bench/models.py) runs end to end in its quick mode and writes a
results file with the fields the README table is built from."""
import json
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("threadpoolctl")

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "models.py"
ROW_FIELDS = {"dataset", "estimator", "n", "d", "td_seconds", "sklearn_seconds", "ratio_td_sklearn", "td_score",
              "sklearn_score", "score_difference", "td_n_iter", "sklearn_n_iter", "target_met", "ratio_per_run",
              "td_cpu_seconds", "sklearn_cpu_seconds"}


@pytest.mark.slow  # about 6 s of CPU (importing scikit-learn, 20,000 x 100 fits); longer on a loaded machine
def test_quick_run_writes_the_results_json(tmp_path):
    out = tmp_path / "results" / "cpu-models.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--repeats-small", "1", "--repeats-large", "1",
                           "--settle", "0", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["mode"] == "quick" and report["protocol"]["threads"] == 1
    assert report["threads"]["td"] and all(p["num_threads"] == 1 for p in report["threads"]["td"])
    machine = report["machine"]
    assert {"date", "commit", "kernels_sha256", "blas", "cpu", "OPENBLAS_CORETYPE"} <= set(machine)
    assert len(machine["kernels_sha256"]) == 64
    if (SCRIPT.parents[1] / ".git").exists():  # the script measures this checkout's package: its commit
        assert machine["commit"] and machine["source_root"] == str(SCRIPT.parents[1])
    rows = {(r["dataset"], r["estimator"]): r for r in report["rows"]}
    assert {d for d, _ in rows} == {"iris", "wine", "breast_cancer", "digits", "diabetes",
                                    "synthetic_regression_20000x100", "synthetic_binary_20000x100"}
    assert ("diabetes", "Ridge") in rows and ("synthetic_regression_20000x100", "LinearRegression") in rows
    for row in rows.values():
        assert ROW_FIELDS <= set(row)
        assert row["td_seconds"] > 0 and row["sklearn_seconds"] > 0
        assert abs(row["score_difference"]) <= 0.005  # both reach the same test score
    logistic = rows[("iris", "LogisticRegression")]
    assert logistic["td_n_iter"] > 0 and abs(logistic["objective_relative_difference"]) < 1e-3
    assert "td.models vs scikit-learn" in done.stdout
