"""Embedded datasets: shapes and class counts of the real data, offline loading,
the seeded stratified split, train-only standardization, and user CSV/NPZ files."""
from __future__ import annotations

import socket

import numpy as np
import pytest

import tinygrad_dot as td
from tinygrad_dot.data import datasets

# (samples, features, class counts or None for regression), as published by UCI / Efron et al.
KNOWN = {
    "iris": (150, 4, [50, 50, 50]),
    "wine": (178, 13, [59, 71, 48]),
    "breast_cancer": (569, 30, [212, 357]),
    "digits": (1797, 64, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]),
    "diabetes": (442, 10, None),
}


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a dataset loader tried to open a network connection")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_embedded_dataset_shapes_and_class_counts(name, no_network):
    n, d, counts = KNOWN[name]
    split = td.data.load_dataset(name, test_size=0.0)
    assert split.X_train.shape == (n, d) and split.X_test.shape == (0, d)
    assert np.all(np.isfinite(split.X_train))
    assert len(split.feature_names) == d
    if counts is None:
        assert split.task == "regression" and split.y_train.dtype == np.float32
        assert split.y_train.min() == 25 and split.y_train.max() == 346  # Efron et al.'s target range
    else:
        assert split.task == "classification"
        assert np.bincount(split.y_train).tolist() == counts
        assert len(split.target_names) == len(counts)


def test_known_values_survived_the_conversion():
    X, _, y, _ = td.data.load_dataset("iris", test_size=0.0, dtype=np.float64)
    np.testing.assert_array_equal(X[0], [5.1, 3.5, 1.4, 0.2])  # Fisher's first flower
    assert td.data.load_dataset("iris", test_size=0.0).X_train[0].tolist() == np.float32([5.1, 3.5, 1.4, 0.2]).tolist()
    digits = td.data.load_dataset("digits", test_size=0.0)
    assert digits.X_train.min() == 0 and digits.X_train.max() == 16  # 4x4-block counts on an 8x8 grid


def test_every_embedded_file_has_its_source_and_license_recorded():
    sources = (datasets.DATA_DIR / "SOURCES.md").read_text()
    assert sorted(p.stem for p in datasets.DATA_DIR.glob("*.npz")) == td.data.list_datasets()
    for name, info in datasets.DATASETS.items():
        assert f"`{name}.npz`" in sources and info.license and info.source


def test_split_is_seeded_stratified_and_disjoint():
    a = td.data.load_dataset("wine", test_size=0.25, random_state=3)
    b = td.data.load_dataset("wine", test_size=0.25, random_state=3)
    c = td.data.load_dataset("wine", test_size=0.25, random_state=4)
    np.testing.assert_array_equal(a.X_test, b.X_test)
    assert not np.array_equal(a.X_test, c.X_test)
    assert len(a.y_test) == 45 and len(a.y_train) == 133  # ceil(0.25 * 178) test rows
    # Stratified: each class keeps its share of the 45 test rows to within one row.
    np.testing.assert_allclose(np.bincount(a.y_test), np.array([59, 71, 48]) * 45 / 178, atol=1)
    rows = {tuple(r) for r in a.X_train}
    assert not any(tuple(r) in rows for r in a.X_test)


def test_standardize_uses_train_statistics_only():
    raw = td.data.load_dataset("diabetes", random_state=1, dtype=np.float64)
    std = td.data.load_dataset("diabetes", random_state=1, standardize=True, dtype=np.float64)
    single = td.data.load_dataset("diabetes", random_state=1, standardize=True)  # float32: the cast comes last
    np.testing.assert_allclose(single.X_train, std.X_train, atol=1e-6)
    np.testing.assert_allclose(std.X_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(std.X_train.std(axis=0), 1, rtol=1e-12)
    np.testing.assert_allclose(std.mean, raw.X_train.mean(axis=0))
    np.testing.assert_allclose(std.X_test, (raw.X_test - raw.X_train.mean(axis=0)) / raw.X_train.std(axis=0))
    assert abs(std.X_test.mean(axis=0)).max() > 1e-3  # test rows were not used for the fit


def test_constant_feature_is_centred_not_divided_by_zero():
    split = td.data.load_dataset("digits", standardize=True)
    assert np.all(np.isfinite(split.X_train)) and np.any(split.scale == 1.0)


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'.*breast_cancer, diabetes, digits, iris, wine"):
        td.data.load_dataset("mnist")


def test_csv_file_with_header_and_text_labels(tmp_path):
    path = tmp_path / "flowers.csv"
    path.write_text("length,width,species\n1.0,2.0,a\n1.5,2.5,b\n\n3.0,1.0,a\n2.0,2.0,b\n")
    X, y, names = td.data.load_file(path)
    assert names == ["length", "width"] and X.shape == (4, 2) and y.tolist() == ["a", "b", "a", "b"]
    split = td.data.load_dataset(str(path), test_size=0.5)
    assert split.task == "classification" and sorted(split.y_test.tolist()) == ["a", "b"]
    # At prediction time the target column is optional.
    X_only, y_none, _ = td.data.load_file(path, n_features=2)
    assert y_none is not None and X_only.shape == (4, 2)
    (tmp_path / "x.csv").write_text("1,2\n3,4\n")
    X_only, y_none, _ = td.data.load_file(tmp_path / "x.csv", n_features=2)
    assert y_none is None and X_only.tolist() == [[1, 2], [3, 4]]


def test_npz_file_and_regression_task(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "reg.npz", X=rng.standard_normal((40, 3)), y=rng.standard_normal(40))
    split = td.data.load_dataset(str(tmp_path / "reg.npz"))
    assert split.task == "regression" and split.X_train.shape == (30, 3)


@pytest.mark.parametrize("content, message", [
    ("a,b,y\n1,2,0\n1,x,1\n", r"bad\.csv:3: column 2 is not a number: 'x'"),
    ("1,2,0\n1,2\n", r"bad\.csv:2: has 2 columns, the first row has 3"),
    ("", "the file is empty"),
    ("a,b,y\n", "has a header but no data rows"),
])
def test_malformed_csv_names_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        td.data.load_dataset(str(path))


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        td.data.load_dataset(str(tmp_path / "missing.csv"))
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="not a readable .npz"):
        td.data.load_dataset(str(tmp_path / "broken.npz"))
    np.savez(tmp_path / "nokeys.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="needs an array 'X'"):
        td.data.load_dataset(str(tmp_path / "nokeys.npz"))
    np.savez(tmp_path / "text.npz", X=np.array([["a", "b"]]), y=np.array([1]))
    with pytest.raises(ValueError, match="'X' is not numeric"):
        td.data.load_dataset(str(tmp_path / "text.npz"))
    np.savez(tmp_path / "x.npz", X=np.zeros((5, 2)))
    with pytest.raises(ValueError, match="no target"):
        td.data.load_dataset(str(tmp_path / "x.npz"))
    with pytest.raises(ValueError, match="test_size"):
        td.data.load_dataset("iris", test_size=1.0)
    with pytest.raises(ValueError, match="test_size=0.999 leaves no training samples"):
        td.data.load_dataset("iris", test_size=0.999)


def test_default_dtype_is_float32_and_dtype_overrides():
    split = td.data.load_dataset("digits", standardize=True)
    assert split.X_train.dtype == split.X_test.dtype == split.scale.dtype == np.float32
    assert split.y_train.dtype.kind == "i"  # class labels stay integers
    out = td.nn.Linear(64, 10)(td.tensor(split.X_train))  # no float64 input against float32 weights
    assert out.dtype == np.float32 and out.shape == (len(split.X_train), 10)
    double = td.data.load_dataset("diabetes", dtype=np.float64)
    assert double.X_train.dtype == double.y_train.dtype == np.float64
    assert td.data.load_dataset("diabetes").y_train.dtype == np.float32


# ------------------------------------------------- CSV files as users write them (issue 10)


def test_csv_with_a_utf8_byte_order_mark_keeps_every_row(tmp_path):
    bom = "\ufeff"
    (tmp_path / "no_header.csv").write_text(bom + "1,2,0\n2,3,1\n3,4,0\n4,5,1\n", encoding="utf-8")
    X, y, names = td.data.load_file(tmp_path / "no_header.csv")
    assert X.tolist() == [[1, 2], [2, 3], [3, 4], [4, 5]] and y.tolist() == [0, 1, 0, 1]  # the first row is data
    (tmp_path / "header.csv").write_text(bom + "a,b,y\n1,2,0\n2,3,1\n", encoding="utf-8")
    X, y, names = td.data.load_file(tmp_path / "header.csv")
    assert names == ["a", "b"] and X.shape == (2, 2)  # no mark glued to the first name


def test_target_by_name_or_index_and_delimiter(tmp_path):
    path = tmp_path / "houses.csv"
    path.write_text("price;rooms;area\n100;3;50\n200;4;80\n150;3;60\n")
    X, y, names = td.data.load_file(path, target="price", delimiter=";")
    assert names == ["rooms", "area"] and y.tolist() == [100, 200, 150] and X[:, 1].tolist() == [50, 80, 60]
    for index in (0, -3):
        assert td.data.load_file(path, target=index, delimiter=";")[1].tolist() == [100, 200, 150]
    assert td.data.load_file(path, target=-1, delimiter=";")[2] == ["price", "rooms"]  # -1: the last column
    split = td.data.load_dataset(str(path), target="rooms", delimiter=";", test_size=0.0)
    assert split.feature_names == ["price", "area"] and sorted(split.y_train.tolist()) == [3, 3, 4]
    with pytest.raises(ValueError, match=r"no column is named 'cost'; the header has 'price', 'rooms', 'area'"):
        td.data.load_file(path, target="cost", delimiter=";")
    with pytest.raises(ValueError, match=r"target column 3 is out of range: the file has 3 columns"):
        td.data.load_file(path, target=3, delimiter=";")
    (tmp_path / "plain.csv").write_text("1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match="has no header row, so no column is named 'price'"):
        td.data.load_file(tmp_path / "plain.csv", target="price")
    # Read with the wrong delimiter, the error says which one the file seems to use.
    with pytest.raises(ValueError, match="found 1 column.*the first row holds ';': is that the delimiter"):
        td.data.load_file(path)
    (tmp_path / "t.tsv").write_text("a\tb\ty\n1\t2\t0\n3\t4\t1\n")
    assert td.data.load_file(tmp_path / "t.tsv")[2] == ["a", "b"]  # .tsv: tab by default
    with pytest.raises(ValueError, match="for CSV files, not the embedded dataset 'iris'"):
        td.data.load_dataset("iris", target=0)
    np.savez(tmp_path / "d.npz", X=np.zeros((4, 2)), y=np.arange(4))
    with pytest.raises(ValueError, match="for CSV files"):
        td.data.load_dataset(str(tmp_path / "d.npz"), delimiter=";")


def test_a_row_index_first_column_is_dropped_with_a_note(tmp_path):
    path = tmp_path / "frame.csv"  # what pandas' DataFrame.to_csv writes
    path.write_text(",a,b,y\n0,1.5,2,0\n1,2.5,3,1\n2,3.5,1,0\n3,0.5,2,1\n")
    with pytest.warns(datasets.DataNote, match="dropped the first column: it holds 0..3, a row index"):
        X, y, names = td.data.load_file(path)
    assert names == ["a", "b"] and X[:, 0].tolist() == [1.5, 2.5, 3.5, 0.5] and y.tolist() == [0, 1, 0, 1]
    with pytest.warns(datasets.DataNote):  # prediction: the same file, model with 2 features
        X, y, _ = td.data.load_file(path, n_features=2)
    assert X.shape == (4, 2) and y.tolist() == [0, 1, 0, 1]
    (tmp_path / "bare.csv").write_text("0,5,1\n1,6,0\n2,7,1\n")  # no header: the values alone decide
    with pytest.warns(datasets.DataNote):
        assert td.data.load_file(tmp_path / "bare.csv")[0].tolist() == [[5], [6], [7]]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", datasets.DataNote)
        (tmp_path / "ones.csv").write_text("1,5,1\n2,6,0\n3,7,1\n")  # 1..n is a feature, not a 0-based index
        assert td.data.load_file(tmp_path / "ones.csv")[0].shape == (3, 2)
        (tmp_path / "two.csv").write_text("0,1\n1,0\n2,1\n")  # only one column besides the target: keep it
        assert td.data.load_file(tmp_path / "two.csv")[0].shape == (3, 1)
        assert td.data.load_file(path, target=0)[2] == ["a", "b", "y"]  # the index named as target stays


@pytest.mark.parametrize("content, message", [
    ("a,b,y\n1,2,0.5\n2,nan,1.5\n3,4,2.5\n4,5,inf\n5,6,1\n", r"2 of 5 rows have .*first: line 3, column 'b'"),
    ("a,b,y\n1,,0.5\n2,3,1.5\n3,NA,2.5\n4,5,1\n", r"2 of 4 rows have .*first: line 2, column 'b'"),
    ("1,2,0.5\n2,3,\n3,-inf,2.5\n", r"2 of 3 rows have .*first: line 2, the target"),
    ("a,b,y\n1,2,cat\n2,3,\n3,4,dog\n", r"1 of 3 rows has .*first: line 3, the target"),  # a missing text label
], ids=["nan-and-inf", "empty-and-NA", "no-header-target", "missing-label"])
def test_missing_nan_and_inf_rows_are_counted_before_anything_else(tmp_path, content, message):
    path = tmp_path / "holes.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message + ".*remove or impute them"):
        td.data.load_dataset(str(path))


def test_nan_in_an_npz_file_names_the_row(tmp_path):
    X = np.ones((10, 3))
    X[4, 1] = np.inf
    y = np.arange(10.0)
    y[7] = np.nan
    np.savez(tmp_path / "d.npz", X=X, y=y)
    with pytest.raises(ValueError, match=r"2 of 10 rows have .*first: row 4, column 'x1'"):
        td.data.load_dataset(str(tmp_path / "d.npz"))


def test_huge_values_never_become_wrong_labels_or_silent_infinities(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("a,y\n1,1e20\n2,0\n3,1\n")
    _, y, _ = td.data.load_file(path)
    assert y.dtype.kind == "f" and y.tolist() == [1e20, 0, 1]  # not cast to int64, where it would wrap negative
    path.write_text("a,y\n1,0.5\n1e39,1.5\n2,2.5\n1e300,1\n")
    with pytest.raises(ValueError, match=r"2 of 4 rows hold values beyond float32's range.*first: sample 1"):
        td.data.load_dataset(str(path))
    assert td.data.load_dataset(str(path), dtype=np.float64, test_size=0.0).X_train.max() == 1e300
