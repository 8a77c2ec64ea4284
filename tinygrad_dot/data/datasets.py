"""Embedded real datasets and user data files, as NumPy arrays with a seeded split.

    X_train, X_test, y_train, y_test = td.data.load_dataset("iris", standardize=True)
    split = td.data.load_dataset("digits")            # the same, with names and metadata
    split = td.data.load_dataset("my_data.csv")       # a CSV/NPZ file: features, target last

The five embedded datasets (iris, wine, breast_cancer, digits, diabetes) live
in ``embedded/`` beside this file; their sources, citations and licenses are in
``embedded/SOURCES.md``. Nothing here touches the network.
"""
from __future__ import annotations

import csv
import math
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
                 dtype=np.float32) -> DatasetSplit:
    """An embedded dataset by name, or a ``.csv``/``.npz`` file by path, split into train and test.

    The split is seeded by ``random_state`` and stratified by class for
    classification (each class keeps its share in both parts). With
    ``standardize=True`` every feature is centred and scaled by the mean and
    standard deviation of the *train* split only, so no test information leaks
    into training. Raises ValueError for an unknown name or a malformed file and
    FileNotFoundError for a missing file.

    Features, and a real-valued (regression) target, come as ``dtype``: float32
    by default, the framework's default dtype (as PyTorch's), so
    ``td.nn.Linear(d, k)(td.tensor(split.X_train))`` needs no cast; pass
    ``dtype=np.float64`` for double precision. Class labels stay integers (or text).
    """
    if not 0.0 <= float(test_size) < 1.0:
        raise ValueError(f"test_size must be in [0, 1), got {test_size}")
    name = str(name)
    if name in DATASETS:
        X, y, feature_names, target_names = _load_embedded(DATASETS[name])
        task = DATASETS[name].task
    elif name.lower().endswith((".csv", ".npz")) or Path(name).exists():
        X, y, feature_names = load_file(name)
        target_names, task = [], infer_task(y)
    else:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(list_datasets())} "
                         "or give a path to a .csv or .npz file")
    X = X.astype(np.float64)  # statistics in double precision; cast to dtype at the end
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
    split.X_train, split.X_test = split.X_train.astype(dtype), split.X_test.astype(dtype)
    return split


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


def load_file(path, n_features: int | None = None):
    """Features and target from a ``.csv`` or ``.npz`` file: ``(X, y, feature_names)``.

    CSV: one sample per row, comma-separated, an optional header row, the
    target in the last column (numbers or text labels). NPZ: arrays ``X`` and
    ``y`` (or ``data`` and ``target``). With ``n_features`` given (prediction),
    the target is optional: a file with exactly ``n_features`` columns has none
    and ``y`` is None. Errors name the file, and for CSV the line.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a .csv or .npz file")
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix.lower() == ".npz":
        X, y = _read_npz(path)
        names = [f"x{j}" for j in range(X.shape[1] if X.ndim == 2 else 0)]
    else:
        X, y, names = _read_csv(path, n_features)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{path}: expected a non-empty 2-D feature table, got shape {X.shape}")
    if n_features is not None:
        if X.shape[1] != n_features:
            raise ValueError(f"{path}: has {X.shape[1]} feature columns, the model expects {n_features}")
    elif y is None:
        raise ValueError(f"{path}: holds no target (NPZ needs arrays 'X' and 'y')")
    if y is not None and len(y) != len(X):
        raise ValueError(f"{path}: {len(X)} samples but {len(y)} targets")
    return X, y, names


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


def _read_csv(path: Path, n_features: int | None):
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [(i, [c.strip() for c in row]) for i, row in enumerate(csv.reader(f), 1) if any(row)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: not a readable CSV text file ({exc})") from None
    if not rows:
        raise ValueError(f"{path}: the file is empty")
    header = None
    first = rows[0][1]
    if not all(_is_number(c) for c in first[: max(len(first) - 1, 1)]):  # the last cell may be a text label
        header, rows = rows[0][1], rows[1:]
    if not rows:
        raise ValueError(f"{path}: has a header but no data rows")
    width = len(rows[0][1])
    has_target = n_features is None or width == n_features + 1
    n_cols = width - 1 if has_target else width
    if n_cols < 1:
        raise ValueError(f"{path}: needs at least one feature column and the target column, found {width} column(s)")
    X = np.empty((len(rows), n_cols))
    targets = []
    for r, (line, row) in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"{path}:{line}: has {len(row)} columns, the first row has {width}")
        for j in range(n_cols):
            try:
                X[r, j] = float(row[j])
            except ValueError:
                raise ValueError(f"{path}:{line}: column {j + 1} is not a number: {row[j]!r}") from None
        if has_target:
            targets.append(row[-1])
    y = None
    if has_target:
        y = np.array(targets)
        if all(_is_number(t) for t in targets):
            y = y.astype(np.float64)
            if np.all(np.mod(y, 1) == 0):
                y = y.astype(np.int64)
    names = header[:n_cols] if header else [f"x{j}" for j in range(n_cols)]
    return X, y, names
