"""Embedded real datasets and user data files, as NumPy arrays with a seeded split.

    X_train, X_test, y_train, y_test = td.data.load_dataset("iris", standardize=True)
    split = td.data.load_dataset("digits")            # the same, with names and metadata
    split = td.data.load_dataset("my_data.csv")       # a CSV/NPZ file: features, target last
    split = td.data.load_dataset("houses.csv", target="price", delimiter=";")

The five embedded datasets (iris, wine, breast_cancer, digits, diabetes) live
in ``embedded/`` beside this file; their sources, citations and licenses are in
``embedded/SOURCES.md``. Nothing here touches the network.
"""
from __future__ import annotations

import csv
import math
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "embedded"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    task: str  # "classification" or "regression"
    description: str
    source: str
    license: str

    @property
    def path(self) -> Path:
        return DATA_DIR / f"{self.name}.npz"


_UCI = "UCI Machine Learning Repository"
DATASETS = {info.name: info for info in (
    DatasetInfo("iris", "classification", "Iris flowers: 150 samples, 4 features, 3 classes",
                f"{_UCI}, Iris (Fisher 1936)", "CC BY 4.0"),
    DatasetInfo("wine", "classification", "Wine cultivars: 178 samples, 13 features, 3 classes",
                f"{_UCI}, Wine (Forina et al.)", "CC BY 4.0"),
    DatasetInfo("breast_cancer", "classification",
                "Breast Cancer Wisconsin (diagnostic): 569 samples, 30 features, 2 classes",
                f"{_UCI}, Breast Cancer Wisconsin (Diagnostic) (Street, Wolberg, Mangasarian 1993)", "CC BY 4.0"),
    DatasetInfo("digits", "classification", "Optical handwritten digits: 1797 8x8 images, 64 features, 10 classes",
                f"{_UCI}, Optical Recognition of Handwritten Digits (Alpaydin, Kaynak 1998)", "CC BY 4.0"),
    DatasetInfo("diabetes", "regression", "Diabetes progression: 442 samples, 10 raw features, real target",
                "Efron, Hastie, Johnstone, Tibshirani (2004), Least Angle Regression",
                "no license stated by the authors; redistributed as scikit-learn does (BSD-3-Clause)"),
)}


def list_datasets() -> list:
    """Names of the embedded datasets."""
    return sorted(DATASETS)


@dataclass
class DatasetSplit:
    """A train/test split. Unpacks like scikit-learn's ``train_test_split``:
    ``X_train, X_test, y_train, y_test = split``."""

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    name: str
    task: str
    feature_names: list = field(default_factory=list)
    target_names: list = field(default_factory=list)
    # Standardization fitted on the train split (None when standardize=False):
    # X_std = (X - mean) / scale.
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None

    def __iter__(self):
        return iter((self.X_train, self.X_test, self.y_train, self.y_test))

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]


def load_dataset(name, test_size: float = 0.25, standardize: bool = False, random_state: int = 0,
                 dtype=np.float32, *, target=None, delimiter=None) -> DatasetSplit:
    """An embedded dataset by name, or a ``.csv``/``.npz`` file by path, split into train and test.

    The split is seeded by ``random_state`` and stratified by class for
    classification (each class keeps its share in both parts). With
    ``standardize=True`` every feature is centred and scaled by the mean and
    standard deviation of the *train* split only, so no test information leaks
    into training. Raises ValueError for an unknown name, a malformed file or
    data with missing, NaN or infinite values (counting the rows that hold
    them), and FileNotFoundError for a missing file. ``target`` and
    ``delimiter`` are for CSV files (see ``load_file``).

    Features, and a real-valued (regression) target, come as ``dtype``: float32
    by default, the framework's default dtype (as PyTorch's), so
    ``td.nn.Linear(d, k)(td.tensor(split.X_train))`` needs no cast; pass
    ``dtype=np.float64`` for double precision. Class labels stay integers (or text).
    """
    if not 0.0 <= float(test_size) < 1.0:
        raise ValueError(f"test_size must be in [0, 1), got {test_size}")
    name = str(name)
    kind = source_kind(name)
    if kind is None:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(list_datasets())} "
                         "or give a path to a .csv or .npz file")
    if kind == "embedded":
        if target is not None or delimiter is not None:
            raise ValueError(f"target= and delimiter= are for CSV files, not the embedded dataset {name!r}")
        X, y, feature_names, target_names = _load_embedded(DATASETS[name])
        task = DATASETS[name].task
    else:
        X, y, feature_names = load_file(name, target=target, delimiter=delimiter)
        target_names, task = [], infer_task(y)
    X = X.astype(np.float64)  # statistics in double precision; cast to dtype at the end
    _check_range(name, X, y, dtype)
    if y.dtype.kind == "f":
        y = y.astype(dtype)
    train, test = split_indices(len(y), test_size, random_state, y if task == "classification" else None)
    if len(train) == 0:
        raise ValueError(f"test_size={test_size} leaves no training samples ({name} has {len(y)} samples, "
                         f"{len(test)} of them held out); use a smaller test_size")
    split = DatasetSplit(X[train], X[test], y[train], y[test], Path(name).stem, task,
                         feature_names, target_names)
    if standardize:
        split.mean = split.X_train.mean(axis=0)
        std = split.X_train.std(axis=0)
        # A constant feature (e.g. a digits corner pixel) has std 0: leave it centred, unscaled.
        scale = np.where(std > 0, std, 1.0)
        split.X_train = (split.X_train - split.mean) / scale
        split.X_test = (split.X_test - split.mean) / scale
        split.mean, split.scale = split.mean.astype(dtype), scale.astype(dtype)
        if not (np.isfinite(split.X_train).all() and np.isfinite(split.X_test).all()):
            raise ValueError(f"{name}: standardizing overflowed (features up to {np.abs(X).max():.3g} in "
                             "magnitude); rescale the features")
    split.X_train, split.X_test = split.X_train.astype(dtype), split.X_test.astype(dtype)
    return split


def _check_range(name: str, X: np.ndarray, y: np.ndarray, dtype) -> None:
    """Refuse finite values that ``dtype`` cannot hold (1e39 would become inf in float32)."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f" or dtype.itemsize >= 8:
        return
    limit = np.finfo(dtype).max
    big = (np.abs(X) > limit).any(axis=1)
    if y.dtype.kind == "f":
        big |= np.abs(y) > limit
    if big.any():
        count = int(big.sum())
        raise ValueError(f"{name}: {count} of {len(big)} rows {'holds a value' if count == 1 else 'hold values'} "
                         f"beyond {dtype.name}'s range (+-{limit:.3g}; first: sample {int(np.argmax(big))}, counting "
                         "from 0); use dtype float64 or rescale them")


def split_indices(n: int, test_size: float, random_state: int, stratify=None):
    """Seeded train/test index arrays; ``ceil(test_size * n)`` test samples, stratified when labels are given."""
    rng = np.random.default_rng(random_state)
    n_test = math.ceil(test_size * n)
    if stratify is None:
        order = rng.permutation(n)
        return np.sort(order[n_test:]), np.sort(order[:n_test])
    classes, labels = np.unique(stratify, return_inverse=True)
    counts = np.bincount(labels)
    # Each class gets floor(share); the remaining test slots go to the largest remainders.
    exact = counts * (n_test / n)
    per_class = np.floor(exact).astype(int)
    for c in np.argsort(per_class - exact)[: n_test - per_class.sum()]:
        per_class[c] += 1
    test = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in enumerate(per_class)])
    mask = np.zeros(n, dtype=bool)
    mask[test] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def infer_task(y) -> str:
    """'classification' for text labels or a few integer values, else 'regression'."""
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        return "classification"
    integral = bool(np.all(np.mod(y, 1) == 0))
    return "classification" if integral and len(np.unique(y)) <= 20 else "regression"


def _load_embedded(info: DatasetInfo):
    with np.load(info.path, allow_pickle=False) as z:
        return z["data"], z["target"], z["feature_names"].tolist(), z["target_names"].tolist()


# ----------------------------------------------------------------- user files


class DataNote(UserWarning):
    """How a data file was read, worth telling whoever loads it: a dropped row-index column."""


# Cells that mean "no value" in a numeric column, as pandas reads them; float() parses nan and inf itself.
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "#n/a", "<na>", "?"})


def source_kind(name) -> str | None:
    """What ``load_dataset(name)`` reads: 'embedded', 'npz', 'csv' (a .csv/.tsv path or any other
    existing file), or None for an unknown name."""
    name = str(name)
    if name in DATASETS:
        return "embedded"
    if name.lower().endswith(".npz"):
        return "npz"
    if name.lower().endswith((".csv", ".tsv")) or Path(name).exists():
        return "csv"
    return None


def load_file(path, n_features: int | None = None, *, target=None, delimiter: str | None = None):
    """Features and target from a ``.csv`` or ``.npz`` file: ``(X, y, feature_names)``.

    CSV: one sample per row, comma-separated (tab-separated for ``.tsv``;
    ``delimiter`` chooses another character), an optional header row, the
    target in the last column or in the column ``target`` names: a header name,
    or a 0-based column index (negative counts from the end). Numbers or text
    labels. A UTF-8 byte-order mark is ignored. A first column holding exactly
    0, 1, ..., n-1 is a row index (pandas' ``to_csv`` writes one) and is
    dropped, with a :class:`DataNote` warning. NPZ: arrays ``X`` and ``y`` (or
    ``data`` and ``target``).

    With ``n_features`` given (prediction), the target is optional: a file with
    exactly ``n_features`` columns (besides a row index) has none and ``y`` is
    None. Missing cells (empty, NA, ...), NaN and infinities in the features or
    a numeric target are a ValueError that counts the rows holding them. Errors
    name the file, and for CSV the line.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a .csv or .npz file")
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix.lower() == ".npz":
        if target is not None or delimiter is not None:
            raise ValueError(f"{path}: target= and delimiter= are for CSV files; an NPZ file holds arrays X and y")
        X, y = _read_npz(path)
        names, lines = [f"x{j}" for j in range(X.shape[1] if X.ndim == 2 else 0)], None
    else:
        X, y, names, lines = _read_csv(path, n_features, target, delimiter)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{path}: expected a non-empty 2-D feature table, got shape {X.shape}")
    if n_features is not None:
        if X.shape[1] != n_features:
            raise ValueError(f"{path}: has {X.shape[1]} feature columns, the model expects {n_features}")
    elif y is None:
        raise ValueError(f"{path}: holds no target (NPZ needs arrays 'X' and 'y')")
    if y is not None and len(y) != len(X):
        raise ValueError(f"{path}: {len(X)} samples but {len(y)} targets")
    _check_finite(path, X, y, names, lines)
    return X, y, names


def _check_finite(path: Path, X: np.ndarray, y, names: list, lines) -> None:
    """One error for all rows with a missing, NaN or infinite feature or target, counting them."""
    bad_cells = ~np.isfinite(X)
    bad = bad_cells.any(axis=1)
    if y is not None:
        bad |= ~np.isfinite(y) if y.dtype.kind == "f" else (y == "") if y.dtype.kind == "U" else False
    if not bad.any():
        return
    r = int(np.argmax(bad))
    where = f"line {lines[r]}" if lines is not None else f"row {r}"
    what = f"column {names[int(np.argmax(bad_cells[r]))]!r}" if bad_cells[r].any() else "the target"
    count = int(bad.sum())
    raise ValueError(f"{path}: {count} of {len(bad)} rows {'has' if count == 1 else 'have'} a missing, NaN or "
                     "infinite value "
                     f"(first: {where}, {what}); remove or impute them")


def _read_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as z:  # no pickle: a data file never runs code
            arrays = {key: z[key] for key in z.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
    x_key = next((k for k in ("X", "data") if k in arrays), None)
    if x_key is None:
        raise ValueError(f"{path}: an NPZ dataset needs an array 'X' (or 'data'), found {sorted(arrays)}")
    y_key = next((k for k in ("y", "target") if k in arrays), None)
    try:
        X = arrays[x_key].astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: array {x_key!r} is not numeric (dtype {arrays[x_key].dtype})") from None
    return X, (arrays[y_key] if y_key else None)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _is_missing(cell: str) -> bool:
    return cell.lower() in MISSING


def _target_column(path: Path, target, first: list, width: int) -> int | None:
    """The target's 0-based column among ``width``, from a header name or an index; None for the default."""
    if target is None:
        return None
    if isinstance(target, str):
        if target in first:
            return first.index(target)
        if all(_is_number(c) or _is_missing(c) for c in first):
            raise ValueError(f"{path}: has no header row, so no column is named {target!r}; give the target's "
                             "column index (0 is the first)")
        raise ValueError(f"{path}: no column is named {target!r}; the header has {', '.join(map(repr, first))}")
    index = int(target)
    if not -width <= index < width:
        raise ValueError(f"{path}: target column {index} is out of range: the file has {width} columns "
                         f"(0..{width - 1}, or -{width}..-1 from the end)")
    return index % width


def _index_column(header, rows: list) -> bool:
    """True when the first column holds exactly 0, 1, ..., n-1: a row index, not a feature."""
    n = len(rows)
    if n < 2 and not (header and header[0] == ""):
        return False
    expected = 0
    for _, row in rows:
        cell = row[0]
        try:
            if float(cell) != expected:
                return False
        except ValueError:
            return False
        expected += 1
    return True


def _read_csv(path: Path, n_features: int | None, target=None, delimiter: str | None = None):
    delimiter = delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
    try:
        # utf-8-sig: a byte-order mark (Excel writes one) is not part of the first cell.
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            rows = [(reader.line_num, [c.strip() for c in row]) for row in reader if any(c.strip() for c in row)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: not a readable CSV text file ({exc})") from None
    if not rows:
        raise ValueError(f"{path}: the file is empty")
    first = rows[0][1]
    t = _target_column(path, target, first, len(first))
    if isinstance(target, str):
        header = first
    else:
        # A header has a cell that is neither a number nor a missing value (the target may be a text label).
        others = [c for j, c in enumerate(first) if j != (len(first) - 1 if t is None else t)] or first
        header = first if not all(_is_number(c) or _is_missing(c) for c in others) else None
    if header is not None:
        rows = rows[1:]
    if not rows:
        raise ValueError(f"{path}: has a header but no data rows")
    width = len(rows[0][1])
    for line, row in rows:
        if len(row) != width:
            raise ValueError(f"{path}:{line}: has {len(row)} columns, the first row has {width}")
    if t is not None and t >= width:
        raise ValueError(f"{path}: target column {target!r} is beyond the data rows' {width} columns")
    columns = list(range(width))
    if t != 0 and width > 1 and _index_column(header, rows):
        rest = width - 1
        fits = rest >= 2 if n_features is None else rest in (n_features, n_features + 1)
        if fits:
            columns = columns[1:]
            label = f" {header[0]!r}" if header and header[0] else ""
            warnings.warn(f"{path}: dropped the first column{label}: it holds 0..{len(rows) - 1}, a row index, "
                          "not a feature", DataNote, stacklevel=3)
    has_target = n_features is None or len(columns) == n_features + 1
    if has_target:
        t = columns[-1] if t is None else t
        columns.remove(t)
    if n_features is None and len(columns) < 1:
        hint = ""
        other = [d for d in ";\t|, " if d != delimiter and d in rows[0][1][0]]
        if width == 1 and other:
            hint = f"; the first row holds {other[0]!r}: is that the delimiter?"
        raise ValueError(f"{path}: needs at least one feature column and the target column, found {width} "
                         f"column(s){hint}")
    X = np.empty((len(rows), len(columns)))
    for r, (line, row) in enumerate(rows):
        for k, j in enumerate(columns):
            cell = row[j]
            try:
                X[r, k] = float(cell)
            except ValueError:
                if not _is_missing(cell):
                    raise ValueError(f"{path}:{line}: column {j + 1} is not a number: {cell!r}") from None
                X[r, k] = np.nan  # counted with the other bad rows by _check_finite
    y = None
    if has_target:
        cells = [row[t] for _, row in rows]
        if all(_is_number(c) or _is_missing(c) for c in cells):
            y = np.array([float(c) if _is_number(c) else np.nan for c in cells])
            # Class labels as integers, but only where float64 holds them exactly (1e20 stays a float).
            if np.all(np.isfinite(y)) and np.all(np.mod(y, 1) == 0) and np.all(np.abs(y) <= 2.0**53):
                y = y.astype(np.int64)
        else:
            y = np.array(cells)  # text labels; an empty cell is a missing label
    names = [(header[j] if header and j < len(header) and header[j] else f"x{k}") for k, j in enumerate(columns)]
    return X, y, names, [line for line, _ in rows]
