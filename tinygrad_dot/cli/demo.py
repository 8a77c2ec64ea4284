"""``tinygrad-dot demo`` (what ``make demo`` runs): real training on embedded
datasets, on every device this machine has."""
from __future__ import annotations

import time
import warnings

import numpy as np

from ._common import available_devices, non_negative_int, positive_int

HELP = "train softmax and linear regression on embedded datasets on every available device"
EPILOG = """examples:
  tinygrad-dot demo
  python -m tinygrad_dot demo --seed 1

Softmax (multinomial logistic) regression on the UCI handwritten digits (L-BFGS
to scikit-learn's optimum) and least squares on the diabetes data (solved
exactly), each on a standardized 75/25 split, scored on the held-out quarter.
For your own runs see `tinygrad-dot train --help`.
"""
# (dataset, estimator, what score() means)
JOBS = (("digits", "LogisticRegression", "accuracy"), ("diabetes", "LinearRegression", "R^2"))


def _matmul_error(device: str, rng) -> float:
    """Relative error of one float32 matmul against float64 NumPy: shows which GEMM ran and that it is right."""
    import tinygrad_dot as td

    a = rng.standard_normal((257, 129)).astype(np.float32)
    b = rng.standard_normal((129, 65)).astype(np.float32)
    reference = a.astype(np.float64) @ b.astype(np.float64)
    out = (td.tensor(a, device=device) @ td.tensor(b, device=device)).numpy()
    return float(np.linalg.norm(out - reference) / np.linalg.norm(reference))


def run(args) -> int:
    import tinygrad_dot.data as data
    import tinygrad_dot.models as models

    devices = available_devices()
    splits = {name: data.load_dataset(name, standardize=True, random_state=args.seed) for name, _, _ in JOBS}
    print(f"{'device':8s} {'dataset':9s} {'model':19s} {'held-out score':16s} {'iters':>6s} {'time':>8s}")
    for device in devices:
        for name, estimator, metric in JOBS:
            split = splits[name]
            model = getattr(models, estimator)(device=device)
            if "max_iter" in model.get_params():
                model.set_params(max_iter=args.max_iter)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", models.ConvergenceWarning)
                model.fit(split.X_train, split.y_train)
            seconds = time.perf_counter() - start
            score = model.score(split.X_test, split.y_test)
            iterations = f"{int(model.n_iter_[0]):6d}" if hasattr(model, "n_iter_") else f"{'exact':>6s}"
            print(f"{device:8s} {name:9s} {estimator:19s} {metric + f' {score:.4f}':16s} {iterations} "
                  f"{seconds:7.2f}s")
    rng = np.random.default_rng(args.seed)
    print("matmul 257x129 @ 129x65 float32, relative error against float64 NumPy: "
          + ", ".join(f"{d} {_matmul_error(d, rng):.1e}" for d in devices))
    if devices == ["cpu"]:
        print("cuda: skipped, no CUDA GPU visible (see `tinygrad-dot info`)")
    return 0


def add_parser(sub, formatter) -> None:
    p = sub.add_parser("demo", help=HELP, description=HELP + ".", epilog=EPILOG, formatter_class=formatter)
    p.add_argument("--seed", type=non_negative_int, default=0, help="seeds the train/test split")
    p.add_argument("--max-iter", type=positive_int, default=100,
                   help="upper bound on the logistic solver's iterations (it usually converges sooner)")
    p.set_defaults(run=run)
