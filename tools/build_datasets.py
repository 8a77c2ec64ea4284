"""Rebuild tinygrad_dot/data/embedded/*.npz from scikit-learn's bundled copies.

The five datasets are the ones scikit-learn ships as plain data files in
sklearn/datasets/data/ (BSD-3-Clause). Run it once, offline, against an
unpacked scikit-learn wheel (it imports nothing from scikit-learn):

    pip download scikit-learn==1.5.2 --no-deps -d /tmp/skl
    cd /tmp/skl && unzip -q scikit_learn-*.whl 'sklearn/datasets/data/*'
    python tools/build_datasets.py /tmp/skl/sklearn/datasets/data

Each NPZ holds data, target, feature_names and target_names (plain arrays,
no pickled objects) and is written with np.savez_compressed.
"""
from __future__ import annotations

import csv
import gzip
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tinygrad_dot" / "data" / "embedded"

# Column names as scikit-learn's loaders give them (they are not in the files).
WINE = ["alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols", "flavanoids",
        "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue", "od280/od315_of_diluted_wines",
        "proline"]
_CANCER_BASE = ["radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
                "concave points", "symmetry", "fractal dimension"]
CANCER = ([f"mean {f}" for f in _CANCER_BASE] + [f"{f} error" for f in _CANCER_BASE]
          + [f"worst {f}" for f in _CANCER_BASE])
IRIS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
DIABETES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def _headed_csv(path: Path):
    """scikit-learn's format: a header 'n_samples,n_features,class names...', then rows with the class last."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    n_samples, n_features = int(rows[0][0]), int(rows[0][1])
    table = np.array(rows[1:], dtype=np.float64)
    assert table.shape == (n_samples, n_features + 1), table.shape
    return table[:, :-1], table[:, -1].astype(np.int64), rows[0][2:]


def _save(name, data, target, feature_names, target_names):
    np.savez_compressed(OUT / f"{name}.npz", data=data, target=target,
                        feature_names=np.array(feature_names, dtype=str),
                        target_names=np.array(target_names, dtype=str))


def main(source: Path) -> None:
    for name, file, features in (("iris", "iris.csv", IRIS), ("wine", "wine_data.csv", WINE),
                                 ("breast_cancer", "breast_cancer.csv", CANCER)):
        data, target, class_names = _headed_csv(source / file)
        _save(name, data, target, features, class_names)
    digits = np.loadtxt(gzip.open(source / "digits.csv.gz"), delimiter=",")
    _save("digits", digits[:, :-1].astype(np.uint8), digits[:, -1].astype(np.int64),
          [f"pixel_{r}_{c}" for r in range(8) for c in range(8)], [str(d) for d in range(10)])
    # The raw (unscaled) diabetes values; standardize in the loader if wanted.
    _save("diabetes", np.loadtxt(gzip.open(source / "diabetes_data_raw.csv.gz")),
          np.loadtxt(gzip.open(source / "diabetes_target.csv.gz")), DIABETES, [])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
