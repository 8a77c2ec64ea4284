"""The command line under abuse (issue 10): bad values in the data, CSV files as
spreadsheets and pandas write them, an empty --out, and Ctrl-C during training.

These tests train real models; they assert outcomes (exit status, the lines
printed, the files left behind, a loose score floor), never how an estimator
trains, so they hold while the estimators change inside."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinygrad_dot.cli import main
from tinygrad_dot.cli import train as train_cli
from tinygrad_dot.data.datasets import split_indices

ROOT = Path(__file__).resolve().parents[1]


def _one_line(capsys, argv, status, expected):
    """Run the CLI in-process; exactly one line on stderr, containing ``expected``."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    captured = capsys.readouterr()
    assert code == status, captured.err
    assert captured.err.count("\n") == 1 and expected in captured.err, captured.err
    return captured


# ------------------------------------------------------------ NaN and inf in the data


def _regression_table(n: int = 40) -> np.ndarray:
    rng = np.random.default_rng(0)
    table = rng.standard_normal((n, 4))
    table[:, 3] = table[:, :3] @ [1.0, -2.0, 0.5]
    return table


def _save(path: Path, table: np.ndarray, holes=()) -> None:
    """Write ``table`` as CSV with a header; ``holes`` are (row, column, text) cells to overwrite."""
    cells = [[repr(float(v)) for v in row] for row in table]
    for r, c, text in holes:
        cells[r][c] = text
    path.write_text("a,b,c,y\n" + "".join(",".join(row) + "\n" for row in cells))


_, TEST_ROWS = split_indices(40, 0.25, 0)  # the rows train's default split (seed 0) holds out
TRAIN_ROW = next(r for r in range(40) if r not in set(TEST_ROWS))


@pytest.mark.parametrize("holes, standardize, count", [
    # In the test split, unstandardized: training finished, then scoring raised a traceback.
    ([(int(TEST_ROWS[0]), 1, "nan")], False, 1),
    # In the training split: standardizing smeared one NaN over a whole column, and the count was of values.
    ([(TRAIN_ROW, 0, "inf")], True, 1),
    # A target: a NaN test target scored silently as NaN; an empty cell was "not a number".
    ([(int(TEST_ROWS[1]), 3, "nan"), (TRAIN_ROW, 3, "-inf"), (int(TEST_ROWS[2]), 2, "")], True, 3),
    # Two bad cells in one row are one bad row.
    ([(int(TEST_ROWS[0]), 0, "nan"), (int(TEST_ROWS[0]), 2, "inf")], True, 1),
], ids=["test-split-feature", "train-split-feature", "targets-and-empty-cell", "one-row-two-cells"])
def test_nan_or_inf_anywhere_is_one_line_before_training(capsys, tmp_path, holes, standardize, count):
    path = tmp_path / "data.csv"
    _save(path, _regression_table(), holes)
    out = tmp_path / "run"
    argv = ["train", "--dataset", str(path), "--epochs", "3", "--no-plot", "--out", str(out)]
    captured = _one_line(capsys, argv + ([] if standardize else ["--no-standardize"]), 1,
                         f"data.csv: {count} of 40 rows {'has' if count == 1 else 'have'} a missing, NaN or infinite")
    first_line = min(r for r, _, _ in holes) + 2  # the header is line 1
    assert f"first: line {first_line}, " in captured.err
    assert "training" not in captured.err and not out.exists()  # refused before training, nothing created


# ------------------------------------------------------------ CSV files as people write them


def test_csv_with_a_byte_order_mark_trains_on_every_row(capsys, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "".join(f"{i % 7},{(i * 3) % 5},{i % 2}\n" for i in range(20)).encode())
    assert main(["train", "--dataset", str(path), "--epochs", "2", "--no-plot", "--out", str(tmp_path / "run")]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["n_train"] + report["n_test"] == 20 and report["n_features"] == 2  # the first row is data


def test_target_and_delimiter_options_in_train_and_predict(capsys, tmp_path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 3))
    label = (X[:, 0] + X[:, 2] > 0).astype(int)
    path = tmp_path / "semi.csv"  # the target in the middle, semicolons between fields
    path.write_text("f0;label;f1;f2\n" + "".join(f"{a:.5f};{t};{b:.5f};{c:.5f}\n" for (a, b, c), t in zip(X, label)))
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(path), "--target", "label", "--delimiter", ";", "--epochs", "40",
                 "--no-plot", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["n_features"] == 3 and report["target"] == "label" and report["delimiter"] == ";"
    assert report["task"] == "classification" and report["scores"]["test"] > 0.7
    capsys.readouterr()
    assert main(["predict", "--model", str(out / "model.npz"), "--data", str(path), "--target", "1",
                 "--delimiter", ";"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 61 and captured.err.startswith(f"accuracy on {path}: ")
    # The same by index, and a name that is not in the header.
    assert main(["train", "--dataset", str(path), "--target", "-3", "--delimiter", ";", "--epochs", "2",
                 "--no-plot", "--out", str(tmp_path / "run2")]) == 0
    capsys.readouterr()
    _one_line(capsys, ["train", "--dataset", str(path), "--target", "Label", "--delimiter", ";",
                       "--out", str(tmp_path / "run3")], 1, "no column is named 'Label'; the header has 'f0', 'label'")
    # Without --delimiter, the error points at the semicolons.
    _one_line(capsys, ["train", "--dataset", str(path), "--out", str(tmp_path / "run3")], 1,
              "the first row holds ';': is that the delimiter?")
    assert not (tmp_path / "run3").exists()


def test_tab_delimiter_spelled_as_people_type_it(capsys, tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("".join(f"{i % 5}\t{(i * 7) % 3}\t{i % 2}\n" for i in range(1, 21)))
    for spelling in ("tab", "\\t", "\t"):
        out = tmp_path / f"run{len(spelling)}"
        assert main(["train", "--dataset", str(path), "--delimiter", spelling, "--epochs", "2", "--no-plot",
                     "--out", str(out)]) == 0
        assert json.loads((out / "report.json").read_text())["n_features"] == 2


def test_a_pandas_row_index_is_dropped_with_a_note(capsys, tmp_path):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 2))
    path = tmp_path / "frame.csv"  # DataFrame.to_csv(): an unnamed first column 0..n-1
    path.write_text(",x,z,y\n" + "".join(f"{i},{a:.4f},{b:.4f},{int(a > b)}\n" for i, (a, b) in enumerate(X)))
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(path), "--epochs", "30", "--no-plot", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("note: ") and "dropped the first column: it holds 0..29, a row index, not a feature" in err
    assert json.loads((out / "report.json").read_text())["n_features"] == 2
    # predict reads the same file the same way: the index is dropped there too.
    assert main(["predict", "--model", str(out / "model.npz"), "--data", str(path)]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 31 and "note: " in captured.err and "accuracy on" in captured.err


@pytest.mark.parametrize("argv, expected", [
    (["train", "--dataset", "iris", "--target", "0"],
     "tinygrad-dot train: error: argument --target: applies to CSV files, not the embedded dataset iris"),
    (["train", "--dataset", "iris", "--delimiter", ";"], "argument --delimiter: applies to CSV files"),
    (["train", "--dataset", "iris", "--delimiter", ";;"], "argument --delimiter: must be one character"),
    (["train", "--dataset", "iris", "--delimiter", '"'], "argument --delimiter: must be one character"),
    (["train", "--dataset", "iris", "--out", ""], "tinygrad-dot train: error: argument --out: must not be empty"),
    (["train", "--dataset", "iris", "--out", "  "], "argument --out: must not be empty"),
    (["predict", "--model", "m.npz", "--data", "d.csv", "--out", ""], "argument --out: must not be empty"),
])
def test_option_misuse_is_one_line_exit_2(capsys, tmp_path, monkeypatch, argv, expected):
    monkeypatch.chdir(tmp_path)  # an empty --out once meant the current directory: nothing may land here
    captured = _one_line(capsys, argv, 2, expected)
    assert "--help" in captured.err and "usage:" not in captured.err
    assert list(tmp_path.iterdir()) == []


def test_csv_options_with_an_npz_file_are_usage_errors(capsys, tmp_path):
    np.savez(tmp_path / "d.npz", X=np.zeros((6, 2)), y=np.arange(6) % 2)
    _one_line(capsys, ["train", "--dataset", str(tmp_path / "d.npz"), "--target", "y", "--out", str(tmp_path / "r")],
              2, "argument --target: applies to CSV files, not the NPZ file")
    _one_line(capsys, ["predict", "--model", "m.npz", "--data", str(tmp_path / "d.npz"), "--delimiter", ";"],
              2, "argument --delimiter: applies to CSV files, not the NPZ file")


# ------------------------------------------------------------ Ctrl-C


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a child of a shell job may inherit SIGINT ignored


def test_ctrl_c_during_train_stops_with_one_line_and_no_model_file(tmp_path):
    """A real Ctrl-C: SIGINT to `python -m tinygrad_dot train` once it prints its "training ..." line."""
    # Ten noisy classes, 50,000 x 64: many passes for any solver, and never separable, so still
    # training when the signal comes however the estimators stop.
    rng = np.random.default_rng(3)
    X = rng.standard_normal((50_000, 64)).astype(np.float32)
    logits = X @ rng.standard_normal((64, 10)).astype(np.float32) + 3 * rng.standard_normal((50_000, 10))
    np.savez(tmp_path / "big.npz", X=X, y=logits.argmax(axis=1))
    parent = tmp_path / "runs"
    parent.mkdir()
    (parent / "previous.txt").write_text("an earlier run's file\n")
    out = parent / "new" / "run"  # two folders train creates, and must take back
    child = subprocess.Popen(
        [sys.executable, "-m", "tinygrad_dot", "train", "--dataset", str(tmp_path / "big.npz"), "--epochs", "100000",
         "--no-plot", "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_sigint)
    try:
        # Unbuffered reads of stderr until train's header line: from then on it is training.
        before, deadline = b"", time.monotonic() + 120
        while b"training " not in before or not before.endswith(b"\n"):
            ready, _, _ = select.select([child.stderr], [], [], max(deadline - time.monotonic(), 0))
            chunk = os.read(child.stderr.fileno(), 65536) if ready else b""
            assert chunk, f"train never started its epochs: {before.decode()!r}"
            before += chunk
        child.send_signal(signal.SIGINT)
        stdout, after = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    after = after.decode()
    assert child.returncode == 130, (before, after)
    assert after.count("\n") == 1 and "Traceback" not in after, after
    assert after.startswith("tinygrad-dot train: interrupted") and f"no model written to {out}" in after
    assert stdout == b""
    assert sorted(p.name for p in parent.iterdir()) == ["previous.txt"]  # no model, no temp file, no new folder


def test_ctrl_c_before_saving_writes_nothing_and_removes_the_new_folder(capsys, tmp_path, monkeypatch):
    from tinygrad_dot import models

    def interrupt(self, X, y, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(models.LogisticRegression, "fit", interrupt)
    out = tmp_path / "a" / "b"
    assert main(["train", "--dataset", "iris", "--no-plot", "--out", str(out)]) == 130
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("tinygrad-dot train: interrupted during training")
    assert err[-1].endswith(f"; no model written to {out}")
    assert not any("Traceback" in line for line in err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(signal.getsignal(signal.SIGINT) is not signal.default_int_handler,
                    reason="Python's own SIGINT handler is not installed in this test process")
def test_ctrl_c_while_saving_waits_for_a_complete_run(capsys, tmp_path, monkeypatch):
    real = train_cli._fold_standardization

    def signalled(model, split, path):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives in the middle of the writes
        time.sleep(0.05)
        real(model, split, path)

    monkeypatch.setattr(train_cli, "_fold_standardization", signalled)
    out = tmp_path / "run"
    assert main(["train", "--dataset", "iris", "--epochs", "5", "--no-plot", "--out", str(out)]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"tinygrad-dot train: interrupted while saving, after the files were complete: {out} holds the whole run")
    assert sorted(p.name for p in out.iterdir()) == ["model.npz", "report.json"]
    assert json.loads((out / "report.json").read_text())["epochs"] <= 5
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
