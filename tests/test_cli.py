"""The command line end to end, CPU only. A few runs go through a real
subprocess (the console entry point, no traceback, files on disk); the many
user-mistake cases call ``main(argv)``, the function the console script runs,
to keep the suite fast."""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import tinygrad_dot.data as data
import tinygrad_dot.models as models
from tinygrad_dot._extras import install_hint
from tinygrad_dot.cli import main
from tinygrad_dot.cli import train as train_cli

ROOT = Path(__file__).resolve().parents[1]


def tdcli(*args, env=None):
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "tinygrad_dot", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env=full_env, timeout=120)


@pytest.fixture(scope="module")
def trained_iris(tmp_path_factory):
    """One real training run through the installed entry point, shared by the tests that read its output."""
    out = tmp_path_factory.mktemp("run") / "iris"
    result = tdcli("train", "--dataset", "iris", "--seed", "1", "--no-plot", "--out", out)
    assert result.returncode == 0, result.stderr
    return out, result


def test_train_writes_report_model_and_prints_scores(trained_iris):
    out, result = trained_iris
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == "LogisticRegression" and report["metric"] == "accuracy"
    assert report["n_train"] == 112 and report["n_test"] == 38
    # The exact solver by default: no epochs, no loss curve, the solver and its iterations.
    assert report["solver"] == "lbfgs" and 0 < report["n_iter"] < 100 and "loss_curve" not in report
    assert report["params"]["C"] == 1.0 and report["params"]["max_iter"] == 100
    assert report["scores"]["test"] >= 0.85
    assert f"test accuracy {report['scores']['test']:.4f}" in result.stdout
    assert f"lbfgs, {report['n_iter']} iterations" in result.stdout
    assert "Traceback" not in result.stderr
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporaries behind
    assert not (out / "loss_curve.png").exists() and "pip install" not in result.stdout  # --no-plot


def test_sgd_options_train_stochastically_and_stop_by_the_estimators_rule(capsys, tmp_path):
    assert main(["train", "--dataset", "iris", "--epochs", "60", "--lr", "0.05", "--batch-size", "16", "--seed", "1",
                 "--no-plot", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["model"] == "SGDClassifier" and report["solver"] == "stochastic (sgd)"
    params = report["params"]
    assert params["loss"] == "log_loss" and params["eta0"] == 0.05 / 16 and params["learning_rate"] == "constant"
    assert params["max_iter"] == 60 and params["batch_size"] == 16 and params["random_state"] == 1
    assert 1 <= report["epochs"] <= 60 and len(report["loss_curve"]) == report["epochs"]
    assert report["loss_curve"][-1] < report["loss_curve"][0] and report["loss"] == "log_loss: per sample, in nats"
    assert report["scores"]["test"] >= 0.85
    assert f"{report['epochs']} epochs, final loss" in capsys.readouterr().out


def test_predict_from_saved_model_on_raw_features(trained_iris, tmp_path):
    out, _ = trained_iris
    split = data.load_dataset("iris", random_state=1)  # the same split, unstandardized
    csv = tmp_path / "flowers.csv"
    np.savetxt(csv, np.column_stack([split.X_test, split.y_test]), delimiter=",", header="a,b,c,d,species",
               comments="")
    result = tdcli("predict", "--model", out / "model.npz", "--data", csv)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "prediction" and len(lines) == 1 + len(split.y_test)
    predicted = np.array(lines[1:], dtype=int)
    report = json.loads((out / "report.json").read_text())
    # The saved model takes raw features (standardization folded in) and reproduces the run's test score.
    assert np.mean(predicted == split.y_test) == pytest.approx(report["scores"]["test"])
    assert result.stderr.strip() == f"accuracy on {csv}: {report['scores']['test']:.4f}"
    # The same from an NPZ of features only, written to a file instead of stdout.
    np.savez(tmp_path / "flowers.npz", X=split.X_test)
    assert main(["predict", "--model", str(out / "model.npz"), "--data", str(tmp_path / "flowers.npz"),
                 "--out", str(tmp_path / "pred.csv")]) == 0
    assert (tmp_path / "pred.csv").read_text().splitlines() == lines


def test_info_never_raises_and_reports_no_gpu(tmp_path):
    result = tdcli("info", "--json", env={"TINYGRAD_DOT_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["numpy"] == np.__version__ and facts["tinygrad_dot"]
    assert facts["cache"]["path"] == str(tmp_path / "cache") and facts["cache"]["exists"] is False
    assert "rungs" in facts["kernels"]
    assert isinstance(facts["gpus"], (list, str))
    assert facts["emu"].startswith("available (g++-") or facts["emu"].startswith("unavailable")


def test_info_cache_sizes(tmp_path, monkeypatch):
    from tinygrad_dot.cli import info

    (tmp_path / "cubin").mkdir()
    (tmp_path / "cubin" / "a.cubin").write_bytes(b"x" * 3000)
    (tmp_path / "autotune.json").write_text("{}")
    monkeypatch.setenv("TINYGRAD_DOT_CACHE_DIR", str(tmp_path))
    cache = info.collect()["cache"]
    assert cache["files"] == 2 and cache["bytes"] == 3002
    assert cache["parts"]["cubin/"]["bytes"] == 3000 and cache["parts"]["autotune.json"]["files"] == 1


def test_user_mistake_through_the_real_entry_point_is_one_line():
    result = tdcli("train", "--dataset", "mnist")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "unknown dataset 'mnist'" in result.stderr


def _one_line_error(capsys, argv, expected):
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1, captured.err
    assert expected in captured.err and "Traceback" not in captured.err
    return captured


def test_user_mistakes_are_one_line_and_non_zero(capsys, tmp_path, trained_iris):
    model_file = trained_iris[0] / "model.npz"
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("a,b,y\n1,2,0\n1,oops,1\n")
    _one_line_error(capsys, ["train", "--dataset", str(tmp_path / "missing.csv"), "--out", str(tmp_path)],
                    "no such file")
    _one_line_error(capsys, ["train", "--dataset", str(bad_csv), "--out", str(tmp_path)],
                    "bad.csv:3: column 2 is not a number: 'oops'")
    _one_line_error(capsys, ["train", "--dataset", "iris", "--out", str(bad_csv / "run")], "cannot create --out")
    _one_line_error(capsys, ["predict", "--model", str(tmp_path / "nope.npz"), "--data", str(bad_csv)],
                    "no such model file")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(model_file.read_bytes()[:200])
    _one_line_error(capsys, ["predict", "--model", str(corrupt), "--data", str(bad_csv)], "cannot load model")
    captured = _one_line_error(capsys, ["predict", "--model", str(bad_csv), "--data", str(bad_csv)],
                               "is not a tinygrad_dot file (it is a text file")
    assert "pickle" not in captured.err
    two_features = tmp_path / "two.csv"
    two_features.write_text("1,2\n3,4\n")
    _one_line_error(capsys, ["predict", "--model", str(model_file), "--data", str(two_features)],
                    "has 2 feature columns, the model expects 4")
    regression = tmp_path / "reg.csv"
    np.savetxt(regression, np.random.default_rng(0).standard_normal((20, 3)), delimiter=",")
    _one_line_error(capsys, ["train", "--dataset", str(regression), "--model", "logistic", "--out", str(tmp_path)],
                    "--model logistic needs class labels")
    _one_line_error(capsys, ["train", "--dataset", "diabetes", "--model", "logistic", "--out", str(tmp_path)],
                    "diabetes is a regression dataset")
    _one_line_error(capsys, ["train", "--dataset", str(tmp_path), "--out", str(tmp_path / "run")],
                    f"{tmp_path} is a directory, not a .csv or .npz file")
    _one_line_error(capsys, ["predict", "--model", str(model_file), "--data", str(bad_csv),
                             "--out", str(tmp_path / "missing" / "p.csv")], "the folder")
    assert not (tmp_path / "missing").exists()  # refused, not created
    one_class = tmp_path / "one_class.csv"
    one_class.write_text("".join(f"{i},{i * i},7\n" for i in range(1, 9)))  # 0..7 would be a row index
    _one_line_error(capsys, ["train", "--dataset", str(one_class), "--out", str(tmp_path)],
                    "cannot train on one_class: y has a single class")


def test_cuda_without_gpu_is_one_line(capsys, tmp_path):
    import tinygrad_dot as td

    if td.cuda.is_available():
        pytest.skip("a CUDA GPU is usable here")
    _one_line_error(capsys, ["train", "--dataset", "iris", "--device", "cuda", "--out", str(tmp_path)],
                    "--device cuda:")


@pytest.mark.parametrize("argv,expected", [
    (["train", "--dataset", "iris", "--epochs", "0"], "tinygrad-dot train: error: argument --epochs: must be at least 1"),
    (["train", "--dataset", "iris", "--batch-size", "0"], "tinygrad-dot train: error: argument --batch-size: "),
    (["train", "--dataset", "iris", "--seed", "-1"], "tinygrad-dot train: error: argument --seed: must be a non-negative"),
    (["train", "--dataset", "iris", "--test-size", "1.5"], "tinygrad-dot train: error: argument --test-size: "),
    (["train", "--dataset", "iris", "--lr", "-0.1"], "tinygrad-dot train: error: argument --lr: must be a positive"),
    (["demo", "--max-iter", "0"], "tinygrad-dot demo: error: argument --max-iter: must be at least 1"),
    (["demo", "--seed", "-1"], "tinygrad-dot demo: error: argument --seed: must be a non-negative"),
    (["train"], "tinygrad-dot train: error: the following arguments are required: --dataset"),
    (["frobnicate"], "tinygrad-dot: error: argument COMMAND: invalid choice"),
])
def test_argument_errors_are_one_line_naming_the_option_exit_2(capsys, argv, expected):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and err.startswith(expected), err
    assert "usage:" not in err and "--help" in err


def test_test_size_leaving_no_training_data_is_one_line_without_warnings(capsys, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy's mean-of-empty RuntimeWarnings once came first
        _one_line_error(capsys, ["train", "--dataset", "iris", "--test-size", "0.999", "--out", str(tmp_path)],
                        "leaves no training samples")


@pytest.mark.parametrize("command", ["train", "predict", "bench", "info", "demo"])
def test_every_command_has_help_with_examples(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"examples:\n  tinygrad-dot {command}" in capsys.readouterr().out


def test_regression_runs_exact_by_default_and_stochastic_without_optional_extras(capsys, tmp_path, monkeypatch):
    assert main(["train", "--dataset", "diabetes", "--out", str(tmp_path / "exact")]) == 0
    report = json.loads((tmp_path / "exact" / "report.json").read_text())
    assert report["model"] == "LinearRegression" and report["solver"] == "exact least squares (cholesky)"
    assert "pip install" not in capsys.readouterr().out  # no loss curve to plot
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    assert main(["train", "--dataset", "diabetes", "--epochs", "5", "--verbose", "--out", str(tmp_path / "sgd"),
                 "--seed", "2"]) == 0
    captured = capsys.readouterr()
    assert f"for a loss-curve plot: {install_hint('plot')}" in captured.out
    assert "-- Epoch 5: avg. loss" in captured.out  # --verbose: the estimator's line per epoch
    report = json.loads((tmp_path / "sgd" / "report.json").read_text())
    assert report["model"] == "SGDRegressor" and report["metric"] == "r2" and "loss_plot" not in report
    assert report["loss"] == "squared_error: half the squared error per sample, in the target's units squared"
    assert not (tmp_path / "sgd" / "loss_curve.png").exists()
    # --lr is a step on the mean gradient of a batch, as in PyTorch: 0.01 with batches of 64 trains.
    assert main(["train", "--dataset", "diabetes", "--lr", "0.01", "--batch-size", "64", "--out",
                 str(tmp_path / "lr")]) == 0
    assert json.loads((tmp_path / "lr" / "report.json").read_text())["scores"]["test"] > 0.3


def test_loss_plot_with_matplotlib(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["train", "--dataset", "wine", "--epochs", "3", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "report.json").read_text())["loss_plot"].endswith("loss_curve.png")


def test_folding_standardization_into_weights_is_exact(tmp_path):
    split = data.load_dataset("diabetes", standardize=True, dtype=np.float64)
    raw = data.load_dataset("diabetes", dtype=np.float64)
    for model in (models.LinearRegression(dtype="float64"), models.SGDRegressor(dtype="float64", random_state=0)):
        model.fit(split.X_train, split.y_train)
        train_cli._fold_standardization(model, split, tmp_path / "m.npz")
        folded = models.load(tmp_path / "m.npz")
        np.testing.assert_allclose(folded.predict(raw.X_test), model.predict(split.X_test), rtol=1e-10)


def test_install_hints_name_the_extras_requirements_and_this_environments_pip(monkeypatch):
    from importlib import metadata

    from tinygrad_dot import _extras

    monkeypatch.setattr(metadata, "requires", lambda name: [
        "numpy>=1.24", "matplotlib>=3.6; extra == 'plot'", 'dask[array]>=2024.8; extra == "dask"',
        "distributed>=2024.8; extra == 'dask'", "seaborn; extra == 'plotting'"])
    monkeypatch.setattr(_extras.shutil, "which", lambda name: str(Path(sys.executable).parent / name))
    assert install_hint("plot") == "pip install 'matplotlib>=3.6'"  # an activated venv: its own pip
    assert install_hint("dask") == "pip install 'dask[array]>=2024.8' 'distributed>=2024.8'"
    monkeypatch.setattr(_extras.shutil, "which", lambda name: "/somewhere/else/bin/pip")  # after make, not activated
    assert install_hint("plot") == f"{shlex.quote(sys.executable)} -m pip install 'matplotlib>=3.6'"

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "requires", not_installed)  # a source tree on PYTHONPATH
    assert install_hint("plot") == "pip install '.[plot]' in the source checkout"


@pytest.fixture
def fake_train_benchmark(monkeypatch):
    """tinygrad_dot.bench.train.main and .models.main recording their arguments as (name, argv)
    (the real ones run in the packaging test and test_bench_models.py)."""
    from tinygrad_dot.bench import models as models_bench
    from tinygrad_dot.bench import train as train_bench

    calls, status = [], {"code": 0}

    def recorder(name):
        def main(argv=None, default_out=None):
            calls.append(argv if name == "train" else (name, argv))
            print(f"{name.upper()} TABLE", argv)
            return status["code"]
        return main

    monkeypatch.setattr(train_bench, "main", recorder("train"))
    monkeypatch.setattr(models_bench, "main", recorder("models"))
    return calls, status


def test_bench_runs_the_training_benchmark_and_says_why_gemm_is_skipped(capfd, tmp_path, monkeypatch,
                                                                       fake_train_benchmark):
    import tinygrad_dot as td

    calls, status = fake_train_benchmark
    monkeypatch.setattr(td.cuda, "is_available", lambda: False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # results default to the current directory, never the checkout's benchmarks/results
    assert main(["bench"]) == 0
    out = capfd.readouterr().out
    default = work / "tinygrad-dot-bench"
    assert "gemm: skipped, no GPU" in out and f"results go to {default}" in out and default.is_dir()
    assert calls.pop() == ["--out", str(default / "cpu-train.json")]  # no --device cuda without a GPU
    assert main(["bench", "--quick", "--only", "train", "--out", str(tmp_path / "mine"), "--", "--rounds", "2"]) == 0
    assert calls.pop() == ["--rounds", "2", "--quick", "--out", str(tmp_path / "mine" / "cpu-train.json")]
    assert main(["bench", "--only", "train", "--", "--out=x.json"]) == 0
    assert calls.pop() == ["--out=x.json"]  # the benchmark's own --out wins
    assert main(["bench", "--", "--rounds", "2"]) == 1
    assert "need --only" in capfd.readouterr().err and not calls
    status["code"] = 3
    assert main(["bench", "--only", "train"]) == 1
    assert "benchmark failed: train (exit status 3)" in capfd.readouterr().err and calls.pop()
    assert main(["bench", "--only", "gemm"]) == 1
    assert "the GEMM benchmark needs a GPU" in capfd.readouterr().err
    status["code"] = 0
    assert main(["bench", "--only", "models", "--quick", "--", "--runs", "2"]) == 0
    assert calls.pop() == ("models", ["--runs", "2", "--quick", "--out", str(default / "cpu-models.json")])
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as if the models extra were not installed
    assert main(["bench", "--only", "models"]) == 1
    assert f"the models benchmark needs the models extra: {install_hint('models')}" in capfd.readouterr().err
    assert not calls


def test_bench_with_a_gpu_runs_the_checkouts_gemm_script_or_says_where_it_is(capfd, tmp_path, monkeypatch,
                                                                            fake_train_benchmark):
    import tinygrad_dot as td

    calls, _ = fake_train_benchmark
    monkeypatch.setattr(td.cuda, "is_available", lambda: True)
    (tmp_path / "gemm.py").write_text("import sys; print('GEMM RAN', sys.argv[1:])\n")
    monkeypatch.setenv("TINYGRAD_DOT_BENCHMARKS_DIR", str(tmp_path))
    assert main(["bench", "--quick", "--out", str(tmp_path / "r")]) == 0
    out = capfd.readouterr().out
    assert f"GEMM RAN ['--quick', '--out-dir', '{tmp_path / 'r'}']" in out
    assert out.index("GEMM RAN") < out.index("TRAIN TABLE")  # GEMM first: no PyTorch threads spinning yet
    assert calls.pop() == ["--quick", "--device", "cuda", "--out", str(tmp_path / "r" / "cpu-train.json")]
    monkeypatch.setenv("TINYGRAD_DOT_BENCHMARKS_DIR", str(tmp_path / "elsewhere"))  # as an installed wheel
    assert main(["bench", "--out", str(tmp_path / "r")]) == 0
    assert "gemm: skipped: the GEMM benchmark is benchmarks/gemm.py in the source checkout" in capfd.readouterr().out
    assert main(["bench", "--only", "gemm", "--out", str(tmp_path / "r")]) == 1
    assert "TINYGRAD_DOT_BENCHMARKS_DIR" in capfd.readouterr().err


def test_bench_finds_the_gemm_script_of_the_packages_checkout_or_of_the_current_one(monkeypatch, tmp_path):
    from tinygrad_dot.cli import bench

    monkeypatch.delenv("TINYGRAD_DOT_BENCHMARKS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert bench.gemm_script() == ROOT / "benchmarks" / "gemm.py"  # the package these tests import is the checkout's
    # As a wheel installed from a checkout: the package sits in site-packages, the script in the checkout.
    monkeypatch.setattr(bench, "__file__", str(tmp_path / "site-packages" / "tinygrad_dot" / "cli" / "bench.py"))
    assert bench.gemm_script() is None
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "gemm.py").touch()
    assert bench.gemm_script() is None  # a benchmarks/ folder alone is not a checkout
    (tmp_path / "pyproject.toml").touch()
    assert bench.gemm_script() == tmp_path / "benchmarks" / "gemm.py"


def test_demo_trains_both_models(capsys):
    assert main(["demo", "--max-iter", "30"]) == 0
    out = capsys.readouterr().out
    digits = next(line for line in out.splitlines() if line.startswith("cpu") and "digits" in line)
    diabetes = next(line for line in out.splitlines() if line.startswith("cpu") and "diabetes" in line)
    assert float(digits.split("accuracy")[1].split()[0]) > 0.9
    assert float(diabetes.split("R^2")[1].split()[0]) > 0.4


def _fake_cupy(properties=None, fail=None):
    """A stand-in CuPy module: GPU listing is tested without a GPU."""
    from types import SimpleNamespace

    def broken(*args):
        raise RuntimeError(fail)

    runtime = SimpleNamespace(
        runtimeGetVersion=broken if fail else (lambda: 12040), driverGetVersion=lambda: 12080,
        getDeviceCount=lambda: 1, getDeviceProperties=broken if fail else (lambda i: properties))
    return SimpleNamespace(__version__="13.3.0", cuda=SimpleNamespace(runtime=runtime))


def test_info_lists_gpus_and_the_kernels_each_can_use(monkeypatch):
    from tinygrad_dot.cli import info

    turing = {"name": b"Tesla T4", "major": 7, "minor": 5, "multiProcessorCount": 40, "totalGlobalMem": 16 * 2**30}
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(turing))
    facts = info.collect()
    (gpu,) = facts["gpus"]
    assert gpu["name"] == "Tesla T4" and gpu["compute_capability"] == "7.5"
    assert "warp_tiled" in gpu["kernels"] and "cp_async" not in gpu["kernels"]  # cp.async needs sm_80
    assert facts["cuda_runtime"] == "12.4" and facts["cuda_driver"] == "12.8"
    assert "GPU 0        Tesla T4, compute capability 7.5" in info.render(facts)


def test_info_survives_a_broken_cuda_stack(monkeypatch):
    from tinygrad_dot.cli import info

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(fail="cudaErrorInsufficientDriver"))
    facts = info.collect()
    assert facts["cuda_runtime"] == "unavailable (RuntimeError: cudaErrorInsufficientDriver)"
    assert facts["gpus"] == ["unavailable (RuntimeError: cudaErrorInsufficientDriver)"]
    assert "unavailable" in info.render(facts)
