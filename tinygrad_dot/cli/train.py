"""``tinygrad-dot train`` and ``tinygrad-dot predict``: linear and logistic
(softmax) regression from the command line, on the estimators of td.models."""
from __future__ import annotations

import copy
import io
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .._extras import install_hint
from .._files import atomic_write, atomic_write_json
from ._common import (CliError, UsageError, column, ctrl_c_held, delimiter, fraction, non_empty_path,
                      non_negative_int, positive_float, positive_int, resolve_device)

TRAIN_HELP = "train a linear or logistic regression model"
TRAIN_EPILOG = """examples:
  tinygrad-dot train --dataset iris --out runs/iris
  tinygrad-dot train --dataset digits --model logistic --optimizer adam --lr 0.01 --epochs 50 --out runs/digits
  tinygrad-dot train --dataset diabetes --device cuda --out runs/diabetes
  tinygrad-dot train --dataset my_data.csv --out runs/mine      # features, then the target in the last column
  tinygrad-dot train --dataset houses.csv --target price --delimiter ';' --out runs/houses
  tinygrad-dot train --dataset tfidf.npz --target-file labels.npy --out runs/text   # sparse features

embedded datasets: iris, wine, breast_cancer, digits (classification), diabetes (regression).
Solvers: by default the exact ones, LogisticRegression (L-BFGS to the optimum) or LinearRegression
(least squares, solved exactly). --optimizer, --lr, --batch-size or --epochs ask for stochastic gradient
descent instead (SGDClassifier with the log loss, SGDRegressor with the squared error), which stops by
its own rule (the loss no longer improving by tol) or after --epochs passes.
--out receives model.npz (load it with td.models.load or `tinygrad-dot predict`), report.json and,
for stochastic runs with matplotlib installed, loss_curve.png. Features are standardized with the training split's mean and
standard deviation, and that scaling is folded into the saved weights, so model.npz takes raw features.
CSV files: an optional header row; a UTF-8 byte-order mark is ignored; a first column holding exactly
0..n-1 is a row index (pandas writes one) and is dropped, with a note. Rows with a missing, NaN or
infinite value are refused before training, with their count. Ctrl-C stops training with one line and
exit status 130, and writes no model file.
Sparse features: an .npz written by scipy.sparse.save_npz (any format; trained as CSR, never densified),
with the target in --target-file (.npy, a one-column .txt/.csv, or an .npz holding y). They are used as
they are: standardizing would centre them and fill in every zero.
"""
PREDICT_HELP = "predict with a saved model on a CSV or NPZ file"
PREDICT_EPILOG = """examples:
  tinygrad-dot predict --model runs/iris/model.npz --data flowers.csv
  tinygrad-dot predict --model runs/iris/model.npz --data flowers.npz --out predictions.csv
  tinygrad-dot predict --model runs/gpu/model.npz --data big.npz --device cuda

--data holds the same feature columns as the training data (CSV, optional header) or an array X (NPZ),
or sparse features (an .npz from scipy.sparse.save_npz, with --target-file for a score).
If it also has the target (a last CSV column, the --target column, or an array y), the score is printed
to stderr. A first CSV column holding exactly 0..n-1 is a row index and is dropped, as in train.
"""


def _estimator(args, kind: str, device: str, n_train: int):
    """The exact solver's estimator, or the stochastic one when an SGD option asks for it.
    Only options the user gave are passed on: the rest are the estimator's own defaults."""
    import tinygrad_dot.models as models

    common = {"device": device, "dtype": args.dtype}
    stochastic = {name: value for name, value in (("optimizer", args.optimizer), ("eta0", args.lr),
                                                  ("batch_size", args.batch_size), ("max_iter", args.epochs))
                  if value is not None}
    if not stochastic:
        if kind == "linear":  # solved exactly: nothing to report as it goes
            return models.LinearRegression(**common)
        return models.LogisticRegression(verbose=int(args.verbose), **common)
    common["verbose"] = int(args.verbose)
    cls, loss = (models.SGDClassifier, "log_loss") if kind == "logistic" else (models.SGDRegressor, "squared_error")
    if args.lr is not None:
        # --lr is PyTorch's: a constant step on the mean gradient of a mini-batch. The SGD estimators
        # step by the sum of the batch's per-sample steps (scikit-learn's scale), so plain SGD's eta0
        # is lr / batch_size; Adam's step does not scale with the gradient, so it takes lr as it is.
        batch = min(stochastic.get("batch_size", cls().batch_size), n_train)  # batches never exceed the data
        stochastic["eta0"] = args.lr if args.optimizer == "adam" else args.lr / batch
        stochastic["learning_rate"] = "constant"
    return cls(loss=loss, random_state=args.seed, **stochastic, **common)


def _csv_only(args, kind: str, source: str) -> None:
    """--target and --delimiter describe a CSV file: with anything else they are a usage mistake."""
    what = {"embedded": f"the embedded dataset {source}", "npz": f"the NPZ file {source}"}.get(kind)
    for flag, value in (("--target", args.target), ("--delimiter", args.delimiter)):
        if value is not None and what:
            raise UsageError(f"argument {flag}: applies to CSV files, not {what}")


def _reading(load, *args, **kwargs):
    """Run a data loader; its notes (a dropped index column) become 'note:' lines on stderr once it succeeds,
    and its errors become one-line CliErrors."""
    from tinygrad_dot.data.datasets import DataNote

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataNote)
        try:
            result = load(*args, **kwargs)
        except (ValueError, FileNotFoundError) as exc:
            raise CliError(str(exc)) from None
    for w in caught:
        if issubclass(w.category, DataNote):
            print(f"note: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return result


def _sparse_npz(path) -> bool:
    """Whether ``path`` is an .npz that scipy.sparse.save_npz wrote (it stores the format's name)."""
    if not str(path).lower().endswith(".npz") or not Path(path).is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as z:
            return "format" in z.files and "shape" in z.files
    except (OSError, ValueError):
        return False


def _read_target(path, n: int) -> np.ndarray:
    """--target-file: a .npy array, an .npz holding y (or target), or text with one value per line."""
    path = Path(path)
    if not path.is_file():
        raise CliError(f"no such --target-file: {path}")
    try:
        if path.suffix.lower() == ".npy":
            y = np.load(path, allow_pickle=False)
        elif path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                name = next((k for k in ("y", "target") if k in z.files), None)
                if name is None:
                    raise CliError(f"--target-file {path}: an .npz target needs an array 'y' (has {z.files})")
                y = z[name]
        else:
            lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
            try:
                y = np.array([float(v) for v in lines])
            except ValueError:
                y = np.array(lines)  # text labels
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read --target-file {path}: {exc}") from None
    y = np.ravel(y) if y.ndim == 2 and 1 in y.shape else y
    if y.ndim != 1 or len(y) != n:
        raise CliError(f"--target-file {path}: {n} samples need {n} targets in one column, got shape {y.shape}")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise CliError(f"--target-file {path}: {int((~np.isfinite(y)).sum())} targets are NaN or infinite")
        if np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)  # class labels written as floats (a .txt of 0 and 1)
    return y


def _read_sparse(path, dtype):
    """Sparse features from a scipy.sparse.save_npz file, as CSR of ``dtype``; refused with their count
    when any value is NaN or infinite."""
    import scipy.sparse

    try:
        X = scipy.sparse.load_npz(path).tocsr().astype(dtype)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read sparse features from {path}: {exc}") from None
    if X.ndim != 2 or X.shape[0] == 0:
        raise CliError(f"{path}: expected a non-empty 2-D sparse matrix, got shape {X.shape}")
    bad = ~np.isfinite(X.data)
    if bad.any():
        rows = np.unique(np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))[bad])
        raise CliError(f"{path}: {len(rows)} rows hold NaN or infinite values (first: sample {rows[0]}, counting "
                       "from 0)")
    return X


def _load_sparse_split(args):
    from tinygrad_dot.data.datasets import DatasetSplit, infer_task, split_indices

    for flag, value in (("--target", args.target), ("--delimiter", args.delimiter)):
        if value is not None:
            raise UsageError(f"argument {flag}: applies to CSV files; the target of sparse features comes in "
                             "--target-file")
    if args.target_file is None:
        raise UsageError(f"argument --target-file: {args.dataset} holds sparse features only (scipy.sparse.save_npz); "
                         "give the target in --target-file")
    X = _read_sparse(args.dataset, np.dtype(args.dtype))
    y = _read_target(args.target_file, X.shape[0])
    if y.dtype.kind == "f":
        y = y.astype(args.dtype)
    task = infer_task(y)
    train, test = split_indices(len(y), args.test_size, args.seed, y if task == "classification" else None)
    if len(train) == 0:
        raise CliError(f"test_size={args.test_size} leaves no training samples ({args.dataset} has {len(y)} samples)")
    if args.standardize:
        print("note: sparse features are used as they are (standardizing would centre them and fill in every "
              "zero)", file=sys.stderr)
    return DatasetSplit(X[train], X[test], y[train], y[test], Path(args.dataset).stem, task)


def _load_split(args):
    import tinygrad_dot.data as data
    from tinygrad_dot.data.datasets import source_kind

    if _sparse_npz(args.dataset):
        return _load_sparse_split(args)
    if args.target_file is not None:
        raise UsageError("argument --target-file: applies to sparse features (an .npz from scipy.sparse.save_npz); "
                         "a CSV or NPZ table carries its own target")
    _csv_only(args, source_kind(args.dataset), args.dataset)
    return _reading(data.load_dataset, args.dataset, test_size=args.test_size, standardize=args.standardize,
                    random_state=args.seed, dtype=args.dtype, target=args.target, delimiter=args.delimiter)


def _model_kind(args, split) -> str:
    """'logistic' or 'linear': --model, or the task's; checked against the target before any training."""
    from tinygrad_dot.data.datasets import DATASETS

    y = split.y_train
    if args.model == "auto":
        kind = "logistic" if split.task == "classification" else "linear"
    elif args.model == "logistic" and args.dataset in DATASETS and split.task == "regression":
        raise CliError(f"--model logistic needs class labels, but {args.dataset} is a regression dataset "
                       f"(real-valued target with {len(np.unique(y))} distinct values); use --model linear")
    elif args.model == "logistic" and y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
        raise CliError(f"--model logistic needs class labels, but the target of {split.name} has fractional "
                       "values; use --model linear for a real-valued target")
    else:
        kind = args.model
    classes = np.unique(y) if kind == "logistic" else ()
    if len(classes) == 1:  # refused here, before the "training ..." line, so the mistake stays one line
        raise CliError(f"cannot train on {split.name}: y has a single class ({classes[0].item()!r}) in the "
                       "training split; classification needs at least 2")
    return kind


def _fold_standardization(model, split, path: Path) -> None:
    """Save ``model`` so that it takes raw features: W (x - m)/s + b = (W/s) x + (b - W (m/s)).

    The estimator saw standardized features; saving a copy with the folded
    coefficients keeps model.npz usable on its own, with no scaler file to lose."""
    if split.mean is None:
        model.save(path)
        return
    folded = copy.copy(model)
    coef = np.asarray(model.coef_, dtype=np.float64) / split.scale
    folded.coef_ = coef.astype(model.coef_.dtype)
    folded.intercept_ = (model.intercept_ - coef @ split.mean).astype(model.coef_.dtype)
    folded.save(path)


def _loss_plot(curve, title: str) -> bytes | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(1, len(curve) + 1), curve, marker="." if len(curve) <= 50 else None)
    ax.set(xlabel="epoch", ylabel="training loss", title=title)
    ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _fit(model, split, header: str) -> float:
    """Fit on the training split (the data were checked when they were loaded); returns seconds."""
    print(header, file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        model.fit(split.X_train, split.y_train)
    except (ValueError, TypeError) as exc:
        raise CliError(f"cannot train on {split.name}: {exc}") from None
    except RuntimeError as exc:  # divergence: the message names the epoch and suggests a smaller lr
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        raise KeyboardInterrupt("during training") from None
    return time.perf_counter() - start


def run_train(args) -> int:
    device = resolve_device(args.device)
    split = _load_split(args)
    kind = _model_kind(args, split)
    model = _estimator(args, kind, device, len(split.y_train))
    out = Path(args.out)
    created = [p for p in (out, *out.parents) if not p.exists()]  # removed again if the run ends without files
    try:  # before training: a bad --out should not cost a training run
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create --out {out}: {exc}") from None
    try:
        return _train_and_save(args, model, split, kind, device, out)
    except BaseException:
        for folder in created:  # deepest first; a folder that holds anything stays
            try:
                folder.rmdir()
            except OSError:
                break
        raise


class _InterruptedAfterSaving(KeyboardInterrupt):
    """Ctrl-C came during the (held) writes: the run's files are complete."""


def _train_and_save(args, model, split, kind: str, device: str, out: Path) -> int:
    from tinygrad_dot.models import ConvergenceWarning

    header = (f"training {type(model).__name__} on {split.name} ({len(split.y_train)} train / {len(split.y_test)} "
              f"test samples, {split.n_features} features) on {device}")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            seconds = _fit(model, split, header)
        for w in caught:
            if issubclass(w.category, ConvergenceWarning):
                print(f"warning: {w.message}", file=sys.stderr)
        return _report_and_save(args, model, split, kind, device, out, seconds)
    except _InterruptedAfterSaving:
        raise
    except KeyboardInterrupt as exc:  # Ctrl-C before the files: nothing at all is written
        raise KeyboardInterrupt(f"{exc or 'after training'}; no model written to {out}") from None


def _report_and_save(args, model, split, kind: str, device: str, out: Path, seconds: float) -> int:
    metric = "accuracy" if kind == "logistic" else "r2"
    try:  # the data were checked before training; this is a last guard against a traceback after it
        scores = {"train": float(model.score(split.X_train, split.y_train))}
        if len(split.y_test):
            scores["test"] = float(model.score(split.X_test, split.y_test))
    except (ValueError, TypeError) as exc:
        raise CliError(f"cannot score the model on {split.name}: {exc}") from None
    model_path = out / "model.npz"
    report = {
        "dataset": args.dataset, "task": split.task, "model": type(model).__name__, "params": {
            k: (str(v) if k == "dtype" else v) for k, v in model.get_params().items()},
        "device": device, "seed": args.seed, "standardized": args.standardize,
        "n_train": int(len(split.y_train)), "n_test": int(len(split.y_test)), "n_features": split.n_features,
        "metric": metric, "scores": scores, "train_seconds": seconds, "model_file": str(model_path),
    }
    report.update(_solver_facts(model))
    if hasattr(split.X_train, "nnz"):  # sparse features: what was stored, never densified
        nnz = int(split.X_train.nnz + split.X_test.nnz)
        report["sparse"] = {"format": "csr", "nnz": nnz,
                            "density": nnz / ((len(split.y_train) + len(split.y_test)) * split.n_features)}
        report["target_file"] = args.target_file
    report.update({k: v for k, v in (("target", args.target), ("delimiter", args.delimiter)) if v is not None})
    curve = report.get("loss_curve")
    png = None if args.no_plot or not curve else _loss_plot(curve, f"{type(model).__name__} on {split.name} "
                                                                  f"({device})")
    try:
        with ctrl_c_held():  # milliseconds of writes: Ctrl-C waits for all of them, never leaves half a run
            _fold_standardization(model, split, model_path)
            if png is not None:
                report["loss_plot"] = str(atomic_write(out / "loss_curve.png", png))
            atomic_write_json(out / "report.json", report)
    except OSError as exc:
        raise CliError(f"cannot write to {out}: {exc}") from None
    except KeyboardInterrupt:
        raise _InterruptedAfterSaving(f"while saving, after the files were complete: {out} holds the whole run") \
            from None

    shown = ", ".join(f"{part} {metric} {value:.4f}" for part, value in scores.items())
    how = (f"{report['epochs']} epochs, final loss {curve[-1]:.6g} ({report['loss']})" if curve else
           f"{report['solver']}" + (f", {report['n_iter']} iterations" if "n_iter" in report else ""))
    print(f"{shown}; {how}; {seconds:.2f} s")
    print(f"wrote {model_path}, {out / 'report.json'}" + (f", {report['loss_plot']}" if png else ""))
    if curve and png is None and not args.no_plot:
        print(f"for a loss-curve plot: {install_hint('plot')}")
    return 0


def _solver_facts(model) -> dict:
    """What the fit did, for the report: the solver and its iterations; for stochastic runs the
    epochs actually run (the stopping rule may end before --epochs) and the loss curve, with its units."""
    if hasattr(model, "loss_curve_"):
        meaning = ("half the squared error per sample, in the target's units squared"
                   if model.loss == "squared_error" else "per sample, in nats")
        return {"solver": f"stochastic ({model.optimizer})", "epochs": int(model.n_iter_),
                "loss": f"{model.loss}: {meaning}", "final_loss": float(model.loss_curve_[-1]),
                "loss_curve": [float(v) for v in model.loss_curve_]}
    if hasattr(model, "n_iter_") and not hasattr(model, "solver_"):
        solver = model.solver if model.solver != "auto" else ("fista" if model.penalty in ("l1", "elasticnet")
                                                              else "lbfgs")
        return {"solver": solver, "n_iter": int(np.ravel(model.n_iter_)[0])}
    if model.solver_ == "lsqr":  # least squares on sparse X: iterative, to LSQR's tolerance
        return {"solver": "least squares (lsqr)", "n_iter": int(np.max(model.n_iter_))}
    if hasattr(model, "classes_"):
        return {"solver": model.solver_, "n_iter": int(np.ravel(model.n_iter_)[0])}
    return {"solver": f"exact least squares ({model.solver_})"}


def run_predict(args) -> int:
    from tinygrad_dot import data, models

    device = resolve_device(args.device)
    _csv_only(args, "npz" if str(args.data).lower().endswith(".npz") else "csv", args.data)
    if args.out:  # before any work: refuse a missing folder rather than create it
        folder = Path(args.out).expanduser().resolve().parent
        if not folder.is_dir():
            raise CliError(f"cannot write --out {args.out}: the folder {folder} does not exist")
        if Path(args.out).is_dir():
            raise CliError(f"cannot write --out {args.out}: it is a directory; give a file path")
    try:
        model = models.load(args.model, device=device)
    except FileNotFoundError:
        raise CliError(f"no such model file: {args.model}") from None
    except (ValueError, OSError, KeyError, TypeError) as exc:
        raise CliError(f"cannot load model {args.model}: {exc}") from None
    if _sparse_npz(args.data):
        X = _read_sparse(args.data, np.dtype(np.float64))
        if X.shape[1] != model.n_features_in_:
            raise CliError(f"{args.data}: has {X.shape[1]} feature columns, the model expects {model.n_features_in_}")
        y = None if args.target_file is None else _read_target(args.target_file, X.shape[0])
    elif args.target_file is not None:
        raise UsageError("argument --target-file: applies to sparse features (an .npz from scipy.sparse.save_npz)")
    else:
        X, y, _ = _reading(data.load_file, args.data, n_features=model.n_features_in_, target=args.target,
                           delimiter=args.delimiter)
    try:
        predictions = model.predict(X)
        score = None if y is None else float(model.score(X, y))
    except (ValueError, TypeError) as exc:
        raise CliError(f"cannot predict on {args.data}: {exc}") from None
    lines = "prediction\n" + "".join(f"{p}\n" for p in np.asarray(predictions).tolist())
    if args.out:
        try:
            atomic_write(args.out, lines.encode())
        except OSError as exc:
            raise CliError(f"cannot write --out {args.out}: {exc}") from None
        print(f"wrote {len(predictions)} predictions to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(lines)
    if score is not None:
        name = "accuracy" if hasattr(model, "classes_") else "R^2"
        print(f"{name} on {args.data}: {score:.4f}", file=sys.stderr)
    return 0


def add_parser(sub, formatter) -> None:
    p = sub.add_parser("train", help=TRAIN_HELP, description=TRAIN_HELP + ".", epilog=TRAIN_EPILOG,
                       formatter_class=formatter)
    p.add_argument("--dataset", required=True, metavar="NAME|PATH",
                   help="an embedded dataset name or a .csv/.npz file")
    p.add_argument("--target", type=column, metavar="NAME|INDEX",
                   help="CSV: the target column, by header name or 0-based index (-1 is the last; default: the last)")
    p.add_argument("--delimiter", type=delimiter, metavar="CHAR",
                   help="CSV: the field separator, one character or 'tab' (default: ',', tab for .tsv)")
    p.add_argument("--target-file", metavar="PATH",
                   help="sparse features (--dataset an .npz from scipy.sparse.save_npz): the target, a .npy array, "
                        "a one-column .txt/.csv or an .npz holding y")
    p.add_argument("--model", choices=("auto", "linear", "logistic"), default="auto",
                   help="auto: logistic for an embedded classification dataset or a file whose target is text or at "
                        "most 20 distinct integers, linear otherwise")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda when a GPU is usable)")
    p.add_argument("--optimizer", choices=("sgd", "adam"),
                   help="train by stochastic gradient descent with this update rule (default: the exact solver); "
                        "more than two classes are then one-vs-rest, not softmax")
    p.add_argument("--lr", type=positive_float,
                   help="stochastic: a constant learning rate, the step on a mini-batch's mean gradient as in "
                        "PyTorch (default: the estimator's schedule)")
    p.add_argument("--epochs", type=positive_int,
                   help="stochastic: at most this many passes over the training split (default: the estimator's)")
    p.add_argument("--batch-size", type=positive_int, help="stochastic: the mini-batch size (default: the estimator's)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="parameter and compute dtype")
    p.add_argument("--verbose", action="store_true",
                   help="the solver reports as it goes (stochastic: a line per epoch with its loss)")
    p.add_argument("--test-size", type=fraction, default=0.25, help="fraction held out for testing")
    p.add_argument("--no-standardize", dest="standardize", action="store_false",
                   help="train on the raw features")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seeds the split, the shuffling and the initialization")
    p.add_argument("--out", type=non_empty_path, default="runs/latest", metavar="DIR",
                   help="where model, report and plot go")
    p.add_argument("--no-plot", action="store_true", help="skip the loss-curve PNG (and the matplotlib import)")
    p.set_defaults(run=run_train)

    q = sub.add_parser("predict", help=PREDICT_HELP, description=PREDICT_HELP + ".", epilog=PREDICT_EPILOG,
                       formatter_class=formatter)
    q.add_argument("--model", required=True, metavar="PATH", help="a model file from `train` or model.save()")
    q.add_argument("--data", required=True, metavar="PATH", help="a .csv or .npz file of features")
    q.add_argument("--target", type=column, metavar="NAME|INDEX",
                   help="CSV: where the target is, if --data has one (default: the last column when there is one "
                        "more column than the model has features)")
    q.add_argument("--delimiter", type=delimiter, metavar="CHAR",
                   help="CSV: the field separator, one character or 'tab' (default: ',', tab for .tsv)")
    q.add_argument("--target-file", metavar="PATH",
                   help="sparse --data: the target, for a score (.npy, one-column .txt/.csv, or .npz holding y)")
    q.add_argument("--out", type=non_empty_path, metavar="PATH",
                   help="write predictions here (CSV) instead of stdout")
    q.add_argument("--device", default="cpu", help="where to run the model: cpu, cuda, cuda:N or auto")
    q.set_defaults(run=run_predict)
