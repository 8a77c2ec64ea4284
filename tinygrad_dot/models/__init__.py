"""scikit-learn estimators that fit on td's devices and dot products.

``LinearRegression`` and ``Ridge`` solve least squares exactly (Gram matrix,
Cholesky); ``LogisticRegression`` reaches scikit-learn's optimum by L-BFGS or,
for l1 and elastic-net penalties, by accelerated proximal gradient.
``SGDClassifier`` and ``SGDRegressor`` are scikit-learn's stochastic ones, in
mini-batches, with ``partial_fit`` for data streamed in chunks.
``td.models.load(path)`` reads what ``model.save(path)`` wrote.

Needs the ``models`` extra (scikit-learn and SciPy): ``pip install '.[models]'`` in
the source checkout.
"""
from __future__ import annotations

from .base import ConvergenceWarning, DivergenceError, NotFittedError, load
from .linear import LinearRegression, Ridge
from .logistic import LogisticRegression
from .sgd import SGDClassifier, SGDRegressor
from .solvers import IllConditionedWarning

ESTIMATORS = {cls.__name__: cls for cls in (LinearRegression, Ridge, LogisticRegression, SGDClassifier, SGDRegressor)}

__all__ = ["LinearRegression", "Ridge", "LogisticRegression", "SGDClassifier", "SGDRegressor", "load",
           "NotFittedError", "ConvergenceWarning", "DivergenceError", "IllConditionedWarning"]
