"""scikit-learn-style estimators trained on td's tape: ``td.models.LinearRegression``, ``LogisticRegression``,
and ``td.models.load(path)`` for what ``model.save(path)`` wrote."""
from __future__ import annotations

import os

from .. import io
from .base import ConvergenceWarning, DivergenceError, NotFittedError
from .linear import LinearRegression, LogisticRegression

_MODELS = {cls.__name__: cls for cls in (LinearRegression, LogisticRegression)}


def load(path, device=None):
    """A fitted estimator from a file written by ``model.save(path)``. Only the
    classes above can be built; the file supplies data, never code.
    ``device`` overrides the saved device (e.g. load a GPU-trained model on the CPU)."""
    obj = io.load(path, kind="model")
    try:
        name, params, fitted = obj["model"], dict(obj["params"]), obj["fitted"]
    except (KeyError, TypeError):
        raise ValueError(f"{os.fspath(path)!r}: the model record is incomplete") from None
    if name not in _MODELS:
        raise ValueError(f"{os.fspath(path)!r} holds an unknown model type {name!r}; known: {sorted(_MODELS)}")
    cls = _MODELS[name]
    unknown = set(params) - set(cls._param_names())
    if unknown:
        raise ValueError(f"{os.fspath(path)!r}: unknown {name} parameters {sorted(unknown)}")
    if device is not None:
        params["device"] = device
    model = cls(**params)
    model._check_params()
    try:
        model._restore_fitted(fitted)
    except (KeyError, AttributeError, TypeError) as exc:
        raise ValueError(f"{os.fspath(path)!r}: the fitted state is incomplete or corrupted ({exc})") from None
    return model


__all__ = ["LinearRegression", "LogisticRegression", "load", "NotFittedError", "DivergenceError",
           "ConvergenceWarning"]
