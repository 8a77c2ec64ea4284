"""`tinygrad-dot train` and `predict` on sparse features: an .npz written by
scipy.sparse.save_npz plus --target-file, trained without densifying, reported as for
dense data (with the stored entries), and the mistakes as one-line errors."""
import json

import numpy as np
import pytest

sp = pytest.importorskip("scipy.sparse", reason="sparse features are read by SciPy")
pytest.importorskip("sklearn", reason="train needs td.models (the 'models' extra)")

import tinygrad_dot as td  # noqa: E402
from tinygrad_dot import models  # noqa: E402
from tinygrad_dot.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def text_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sparse")
    X, y = td.data.make_sparse_text(900, 50_000, 0.004, random_state=11)
    sp.save_npz(folder / "text.npz", sp.csc_matrix(X))  # any format: trained as CSR
    np.save(folder / "labels.npy", y)
    (folder / "labels.txt").write_text("".join(f"{v}\n" for v in y))
    Xr, yr = td.data.make_sparse_text(500, 50_000, 0.004, task="regression", random_state=12)
    sp.save_npz(folder / "reg.npz", Xr)
    np.savez(folder / "reg_target.npz", y=yr)
    return folder, X, y


def test_train_on_sparse_features_reports_and_predicts(text_files, tmp_path, capsys):
    folder, X, y = text_files
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(folder / "text.npz"), "--target-file", str(folder / "labels.txt"),
                 "--dtype", "float64", "--out", str(out), "--no-plot"]) == 0
    captured = capsys.readouterr()
    assert "sparse features are used as they are" in captured.err
    assert "900" not in captured.err.split("(")[0] and "50000 features" in captured.err
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == "LogisticRegression" and report["solver"] == "lbfgs"
    assert report["sparse"]["nnz"] == X.nnz and report["sparse"]["format"] == "csr"
    assert report["n_train"] + report["n_test"] == 900 and report["n_features"] == 50_000
    # the saved model is the estimator's fit on the same training rows (no standardization was folded in)
    model = models.load(out / "model.npz")
    assert model.coef_.shape == (1, 50_000)
    assert main(["predict", "--model", str(out / "model.npz"), "--data", str(folder / "text.npz"),
                 "--target-file", str(folder / "labels.npy")]) == 0
    captured = capsys.readouterr()
    predictions = np.array(captured.out.split()[1:], dtype=np.int64)
    np.testing.assert_array_equal(predictions, model.predict(X))
    assert f"accuracy on {folder / 'text.npz'}: {np.mean(predictions == y):.4f}" in captured.err


def test_sparse_regression_and_stochastic_runs(text_files, tmp_path, capsys):
    folder, _, _ = text_files
    assert main(["train", "--dataset", str(folder / "reg.npz"), "--target-file", str(folder / "reg_target.npz"),
                 "--dtype", "float64", "--out", str(tmp_path / "reg"), "--no-plot"]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "reg" / "report.json").read_text())
    assert report["model"] == "LinearRegression" and report["solver"] == "least squares (lsqr)"
    assert report["n_iter"] > 0 and report["scores"]["train"] > 0.99  # 375 rows, 50,000 columns: it interpolates
    assert main(["train", "--dataset", str(folder / "text.npz"), "--target-file", str(folder / "labels.npy"),
                 "--epochs", "3", "--no-standardize", "--out", str(tmp_path / "sgd"), "--no-plot"]) == 0
    report = json.loads((tmp_path / "sgd" / "report.json").read_text())
    assert report["model"] == "SGDClassifier" and report["epochs"] == 3
    assert "sparse features are used" not in capsys.readouterr().err  # --no-standardize: nothing to say


@pytest.mark.parametrize("argv, expected", [
    (["--target-file", "{folder}/missing.npy"], "no such --target-file"),
    ([], "argument --target-file: {folder}/text.npz holds sparse features only"),
    (["--target-file", "{folder}/reg_target.npz"], "900 samples need 900 targets"),
    (["--target-file", "{folder}/labels.npy", "--target", "0"], "argument --target: applies to CSV files"),
])
def test_sparse_mistakes_are_one_line(text_files, tmp_path, capsys, argv, expected):
    folder = text_files[0]
    argv = [a.format(folder=folder) for a in argv]
    assert main(["train", "--dataset", str(folder / "text.npz"), *argv, "--out", str(tmp_path / "run")]) in (1, 2)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected.format(folder=folder) in err
    assert not (tmp_path / "run").exists()


def test_target_file_without_sparse_features_is_a_usage_error(text_files, tmp_path, capsys):
    assert main(["train", "--dataset", "iris", "--target-file", str(text_files[0] / "labels.npy"),
                 "--out", str(tmp_path)]) == 2
    assert "--target-file: applies to sparse features" in capsys.readouterr().err


def test_nan_in_sparse_features_is_refused_with_the_row(tmp_path, capsys):
    X = sp.random(20, 30, density=0.2, format="csr", random_state=0)
    X.data[X.indptr[7]] = np.nan
    sp.save_npz(tmp_path / "bad.npz", X)
    np.save(tmp_path / "y.npy", np.arange(20) % 2)
    assert main(["train", "--dataset", str(tmp_path / "bad.npz"), "--target-file", str(tmp_path / "y.npy"),
                 "--out", str(tmp_path / "run")]) == 1
    assert "1 rows hold NaN or infinite values (first: sample 7" in capsys.readouterr().err
