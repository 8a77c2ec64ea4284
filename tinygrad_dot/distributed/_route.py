"""The seam between td.models' methods and the Dask route, for methods that take X first:
a Dask collection goes to the workers (``_models.predict``/``score``), anything else to the
method itself. Importing this never imports Dask (``is_dask`` looks only where Dask is loaded)."""
from __future__ import annotations

import functools

from ._blocks import is_dask

__all__ = ["dask_predicts", "dask_scores"]


def dask_predicts(method):
    """``method(self, X)`` that returns a lazy dask array, one chunk per row chunk, for Dask X."""
    @functools.wraps(method)
    def routed(self, X):
        if is_dask(X):
            from ._models import predict

            return predict(self, X, method.__name__)
        return method(self, X)
    return routed


def dask_scores(metric):
    """``score(self, X, y, sample_weight=None)`` that computes ``metric`` on the workers'
    predictions for Dask X (only y, the prediction and the weights come back)."""
    def decorate(method):
        @functools.wraps(method)
        def routed(self, X, y, sample_weight=None):
            if is_dask(X):
                from sklearn.utils.validation import check_is_fitted

                from ._models import score

                check_is_fitted(self)
                return score(self, X, y, sample_weight, metric)
            return method(self, X, y, sample_weight)
        return routed
    return decorate
