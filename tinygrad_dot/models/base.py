"""What the estimators share: scikit-learn's estimator protocol and input
validation, the device the fit runs on, sample and class weights, saving.

The estimators are scikit-learn estimators (``BaseEstimator`` and its mixins,
``validate_data``, ``check_is_fitted``): clone, pipelines, grid search and
``check_estimator`` work on them as on scikit-learn's own. What td adds is
where the arithmetic runs: ``device=None`` fits where the data lives (a td
tensor or a CUDA array on its GPU, anything else on the CPU); ``device="cuda"``
moves host data to the GPU once, before the fit.

Fitted attributes (``coef_``, ``intercept_``, ...) are NumPy arrays, as in
scikit-learn, whatever the device.

Working dtype: ``dtype=None`` keeps float32 and float64 inputs as they are
and computes anything else (integers, lists of Python floats) in float64, as
scikit-learn does; ``dtype="float32"`` or ``"float64"`` forces one.
"""
from __future__ import annotations

import os

import numpy as np

try:
    from sklearn.base import BaseEstimator
    from sklearn.exceptions import ConvergenceWarning, NotFittedError
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import _check_sample_weight, _check_y, check_is_fitted, validate_data
except ImportError as exc:  # td.models is the one part of the package that needs scikit-learn
    from .._extras import install_hint

    raise ImportError(f"td.models needs scikit-learn, which is not installed ({exc}); "
                      f"{install_hint('models')}") from None

from .. import io
from ..backends import get_backend
from ..distributed._blocks import is_dask  # noqa: F401  (the seam to the Dask route; never imports Dask)
from ..sparse import CSR, is_sparse_input, product
from ..tensor import Tensor

__all__ = ["LinearModel", "ConvergenceWarning", "NotFittedError", "DivergenceError", "is_dask"]


class DivergenceError(RuntimeError):
    """A stochastic solver's loss became NaN or infinite."""


def _device_array(data):
    """The GPU array behind a td tensor on a GPU or any CUDA array (CuPy, PyTorch, Numba);
    None for host data."""
    if isinstance(data, Tensor):
        return data.array if hasattr(data.array, "__cuda_array_interface__") else None
    if hasattr(data, "__cuda_array_interface__"):
        from ..backends.cupy_backend import import_cupy

        return import_cupy().asarray(data)
    return None


def _host(data):
    """A td tensor's array (no copy: validation never writes into its input), a td sparse tensor as
    SciPy's CSR (its arrays shared on the CPU); other data as given."""
    if isinstance(data, Tensor):
        return data.to_scipy() if data.is_sparse else data.array
    return data


def _gpu_sparse(data) -> bool:
    """Whether data is a cupyx.scipy.sparse matrix (its values in GPU memory)."""
    return is_sparse_input(data) and hasattr(getattr(data, "data", None), "__cuda_array_interface__")


def host_numpy(data):
    """Labels, targets or weights from any device as host data (None stays None)."""
    if isinstance(data, Tensor):
        return data.numpy()
    if hasattr(data, "__cuda_array_interface__"):
        return _device_array(data).get()
    return data


def check_class_labels(y) -> None:
    """scikit-learn's check that y holds class labels, except that integral float labels are
    classes even past int64 (its check casts them to int, so a label of 1e20 reads as continuous)."""
    if not (y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.floor(y))):
        check_classification_targets(y)


class LinearModel(BaseEstimator):
    """Shared machinery of td's linear estimators. Subclasses define ``_fit``
    and list their fitted state in ``_fitted_attributes``."""

    _fitted_attributes = ("coef_", "intercept_", "n_features_in_", "n_iter_")

    # ------------------------------------------------------------ device and dtype
    def _dtype_rule(self):
        """What validate_data's ``dtype=`` should be for this estimator's ``dtype`` parameter."""
        if self.dtype is None:
            return [np.float64, np.float32]
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            dtype = None
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be None, 'float32' or 'float64', got {self.dtype!r}")
        return dtype

    def _backend_for(self, data, device_array):
        """The backend of the fit: the ``device`` parameter, else the data's device (a td
        tensor's, "emu" included; a CUDA array's GPU)."""
        if self.device is not None:
            return get_backend(self.device)
        if isinstance(data, Tensor):
            return data._backend
        if _gpu_sparse(data):
            return get_backend(f"cuda:{data.data.device.id}")
        if device_array is not None:
            return get_backend(f"cuda:{device_array.device.id}")
        return get_backend("cpu")

    # ------------------------------------------------------------ validation
    def _validate_X(self, X):
        """At predict time: (backend, X as a checked 2-D array of the working dtype on the backend)."""
        return self._validate(X, reset=False, y=None)[:2]

    def _validate_Xy(self, X, y, **y_checks):
        """At fit time: (backend, X, y), X on the backend, y checked by ``y_checks`` as NumPy."""
        if y is None:  # scikit-learn's message for estimators that need y
            validate_data(self, _host(X), y=None)
        return self._validate(X, reset=True, y=y, **y_checks)

    def _validate(self, X, reset: bool, y, **y_checks):
        device_X = _device_array(X)
        backend = self._backend_for(X, device_X)
        dtype = self._dtype_rule()
        if device_X is not None and backend.name != "cpu":
            with backend.scope():
                X = self._validate_device_X(backend, backend.asarray(device_X), reset, dtype)
            return backend, X, self._check_y(X, y, y_checks)
        if _gpu_sparse(X):
            with backend.scope():
                X = self._validate_device_X(backend, X, reset, dtype)
            return backend, X, self._check_y(X, y, y_checks)
        host_X = _host(X) if device_X is None else device_X.get()
        # Sparse X (SciPy's CSR, CSC, COO, ...: scikit-learn's accept_sparse) becomes CSR once, never dense.
        if y is None:
            X = validate_data(self, host_X, reset=reset, dtype=dtype, accept_sparse="csr")
        else:
            X, y = validate_data(self, host_X, host_numpy(y), reset=reset, dtype=dtype, accept_sparse="csr",
                                 **y_checks)
        with backend.scope():
            return backend, (CSR.from_scipy(X, backend) if is_sparse_input(X) else backend.asarray(X)), y

    @staticmethod
    def _check_y(X, y, y_checks):
        if y is None:
            return None
        y = _check_y(host_numpy(y), **y_checks)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"[{X.shape[0]}, {y.shape[0]}]")
        return y

    def _validate_device_X(self, backend, X, reset: bool, dtype):
        """validate_data's checks for an array already on a GPU, without a host copy; a cupyx sparse
        matrix is checked on its values and returned as a CSR."""
        if is_sparse_input(X):
            if isinstance(dtype, list):
                dtype = X.dtype if X.dtype in dtype else dtype[0]
            X = CSR.from_scipy(X, backend, dtype)
            values = X.values
        elif X.ndim != 2:
            raise ValueError(f"Expected 2D array, got an array of shape {X.shape} on the GPU: reshape it with "
                             "X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a single sample")
        if X.dtype.kind not in "biuf":
            raise ValueError(f"X holds {X.dtype} values; a numeric array is required")
        if isinstance(dtype, list):
            dtype = X.dtype if X.dtype in dtype else dtype[0]
        if not isinstance(X, CSR):
            X = values = X.astype(dtype, copy=False)
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"Found array with shape {X.shape} while a minimum of 1 sample and 1 feature is required")
        if not bool(backend.xp.isfinite(values).all()):
            raise ValueError("Input X contains NaN or infinity.")
        if reset:
            self.n_features_in_ = X.shape[1]
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input.")
        return X

    def _sample_weight(self, sample_weight, n_samples: int, extra=None):
        """Non-negative float64 weights (ones when None), times ``extra`` (class weights) if given."""
        sample_weight = host_numpy(sample_weight)
        weights = _check_sample_weight(sample_weight, np.empty((n_samples, 0)), dtype=np.float64,
                                       ensure_non_negative=True)
        if extra is not None:
            weights = weights * extra
        if not weights.sum() > 0:
            raise ValueError("the sample weights sum to zero: at least one sample needs a positive weight")
        return weights

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # SciPy sparse X: CSR once, products through backend.spmm, never densified
        return tags

    # ------------------------------------------------------------ prediction
    def _linear_output(self, X):
        """(X coef^T + intercept as an (n, outputs) array on the fitting device, its backend).
        Results stay where the data came from: NumPy for host data, CuPy for GPU data."""
        check_is_fitted(self)
        backend, X = self._validate_X(X)
        coef = np.atleast_2d(self.coef_)
        with backend.scope():
            out = product(backend, X, backend.asarray(coef.T, dtype=X.dtype))
            out += backend.asarray(np.atleast_1d(self.intercept_), dtype=X.dtype)
        return out, backend

    # ------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Write the parameters and fitted state to ``path`` (td.save's format, data only);
        read it back with ``td.models.load(path)``."""
        check_is_fitted(self)
        fitted = {}
        for name in self._fitted_attributes + ("feature_names_in_",):
            if hasattr(self, name):
                value = getattr(self, name)
                fitted[name] = _to_saveable(value)
        io.save({"model": type(self).__name__, "params": self.get_params(), "fitted": fitted}, path, kind="model")

    def _restore(self, fitted: dict) -> None:
        missing = [name for name in self._fitted_attributes if name not in fitted]
        if missing:
            raise ValueError(f"the saved fitted state lacks {missing}")
        for name, value in fitted.items():
            if name not in self._fitted_attributes + ("feature_names_in_",):
                raise ValueError(f"unknown fitted attribute {name!r}")
            setattr(self, name, _from_saveable(value))


def _to_saveable(value):
    """Fitted attributes as td.save stores them: numeric arrays as arrays; labels and
    feature names (strings, objects) as a list with their dtype."""
    if isinstance(value, np.ndarray) and value.dtype.kind not in "biuf":
        return {"values": value.tolist(), "dtype": value.dtype.str if value.dtype.kind != "O" else "O"}
    return value


def _from_saveable(value):
    if isinstance(value, dict) and set(value) == {"values", "dtype"}:
        dtype = np.dtype(value["dtype"])
        if dtype.kind not in "UO":
            raise ValueError(f"unsupported saved label dtype {dtype}")
        return np.array(value["values"], dtype=dtype)
    return value


def load(path, device=None):
    """A fitted estimator from a file written by ``model.save(path)``. Only td's own
    estimator classes can be built; the file supplies data, never code. ``device``
    overrides the saved device (a GPU-trained model loaded on the CPU, say)."""
    from . import ESTIMATORS

    obj = io.load(path, kind="model")
    try:
        name, params, fitted = obj["model"], dict(obj["params"]), dict(obj["fitted"])
    except (KeyError, TypeError):
        raise ValueError(f"{os.fspath(path)!r}: the model record is incomplete") from None
    if name not in ESTIMATORS:
        raise ValueError(f"{os.fspath(path)!r} holds an unknown model type {name!r}; known: {sorted(ESTIMATORS)}")
    cls = ESTIMATORS[name]
    unknown = set(params) - set(cls().get_params())
    if unknown:
        raise ValueError(f"{os.fspath(path)!r}: unknown {name} parameters {sorted(unknown)}")
    if device is not None:
        params["device"] = device
    model = cls(**params)
    try:
        model._restore(fitted)
    except (KeyError, AttributeError, TypeError, ValueError) as exc:
        raise ValueError(f"{os.fspath(path)!r}: the fitted state is incomplete or corrupted ({exc})") from None
    return model
