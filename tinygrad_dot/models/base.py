"""What the estimators share: scikit-learn's parameter protocol, input checks,
and the gradient-descent loop over a fused linear layer."""
from __future__ import annotations

import inspect
import math
import numbers
import warnings

import numpy as np

from .. import io
from ..autograd import no_grad
from ..backends import get_backend
from ..data.loader import DataLoader, TensorDataset
from ..nn import functional as F
from ..nn.module import Parameter
from ..optim import SGD, Adagrad, Adam, AdamW, RMSprop
from ..tensor import Tensor

OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "adagrad": Adagrad, "rmsprop": RMSprop}
PENALTIES = (None, "l2", "l1")


class NotFittedError(ValueError, AttributeError):
    """predict/score/save before fit (a ValueError and an AttributeError, as scikit-learn's)."""


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


class ConvergenceWarning(UserWarning):
    """max_epochs ran out before the loss stopped improving by more than tol."""


# ----------------------------------------------------------------- input checks


def _as_host_array(data, name: str):
    if isinstance(data, Tensor):
        return data.numpy()
    if hasattr(data, "__cuda_array_interface__"):
        return data.get()
    if data is None or isinstance(data, (str, bytes, dict, set)):
        raise TypeError(f"{name} must be array-like, got {type(data).__name__}")
    try:
        return np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} could not be turned into an array: {exc}") from None


def _numeric(array: np.ndarray, name: str, dtype) -> np.ndarray:
    """A finite array of ``dtype``; object arrays of numbers are accepted, text is not."""
    if array.dtype.kind not in "biuf":
        try:
            if array.dtype.kind != "O":
                raise TypeError
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be numeric, but it holds values of dtype {array.dtype} "
                            "(strings or other objects); encode them as numbers first") from None
    array = array.astype(dtype, copy=False)
    bad = ~np.isfinite(array)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} contains NaN or infinity ({int(bad.sum())} value(s), first at index {where}); "
                         "remove or impute them before fitting")
    return array


def check_X(X, dtype, n_features=None) -> np.ndarray:
    raw = _as_host_array(X, "X")
    if raw.ndim != 2:
        hint = " (reshape a single feature with X.reshape(-1, 1), a single sample with X.reshape(1, -1))" \
            if raw.ndim == 1 else ""
        raise ValueError(f"X must be a 2-D array of shape (n_samples, n_features), got shape {raw.shape}{hint}")
    if raw.shape[0] == 0:
        raise ValueError(f"X is empty: 0 samples (shape {raw.shape}); at least one sample is required")
    if raw.shape[1] == 0:
        raise ValueError(f"X has 0 features (shape {raw.shape}); at least one feature is required")
    if n_features is not None and raw.shape[1] != n_features:
        raise ValueError(f"X has {raw.shape[1]} features, but this model was fitted with {n_features} features")
    return _numeric(raw, "X", dtype)


def check_lengths(X: np.ndarray, y: np.ndarray) -> None:
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X and y have different numbers of samples: X has {X.shape[0]}, y has {y.shape[0]}")


# ----------------------------------------------------------------- the estimator base


class LinearEstimatorBase:
    """Hyperparameters are set only in __init__ (scikit-learn's rule); fitted
    state lives in attributes with a trailing underscore."""

    _estimator_type: str = ""
    # On a plateau (n_iter_no_change epochs without improving by tol) multiply the learning rate
    # by this factor instead of stopping, until it falls below lr * _min_lr_ratio; None: stop at once.
    _plateau_lr_factor: float | None = None
    _min_lr_ratio: float = 1e-3
    # Train on X - mean(X) (the first fit's mean) when there is an intercept: the bias is not
    # penalised, so the minimiser is unchanged, but uncentred features (raw data) converge much faster.
    _center_X: bool = False

    # ------------------------------------------------------------ scikit-learn protocol
    @classmethod
    def _param_names(cls):
        signature = inspect.signature(cls.__init__)
        return sorted(p.name for p in signature.parameters.values() if p.name != "self")

    def _store_params(self, arguments: dict) -> None:
        """__init__'s arguments stored unchanged under their own names (scikit-learn's
        rule: no validation or conversion in __init__, so clone() round-trips)."""
        for name in self._param_names():
            setattr(self, name, arguments[name])

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; valid parameters: {valid}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if v is not defaults.get(k) and v != defaults.get(k)]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, RegressorTags, Tags, TargetTags

        classifier = self._estimator_type == "classifier"
        return Tags(estimator_type=self._estimator_type, target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags() if classifier else None,
                    regressor_tags=None if classifier else RegressorTags(),
                    non_deterministic=self.random_state is None)

    # ------------------------------------------------------------ checks
    def _check_params(self) -> None:
        def positive(name, integer=False):
            value = getattr(self, name)
            kind = numbers.Integral if integer else numbers.Real
            if not isinstance(value, kind) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"{name} must be a positive {'integer' if integer else 'number'}, got {value!r}")

        positive("lr")
        positive("max_epochs", integer=True)
        positive("n_iter_no_change", integer=True)
        if self.batch_size is not None:
            positive("batch_size", integer=True)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {PENALTIES}, got {self.penalty!r}")
        if not isinstance(self.alpha, numbers.Real) or not self.alpha >= 0:
            raise ValueError(f"alpha must be a number >= 0, got {self.alpha!r}")
        if self.tol is not None and (not isinstance(self.tol, numbers.Real) or not self.tol >= 0):
            raise ValueError(f"tol must be a number >= 0 or None, got {self.tol!r}")
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            raise ValueError(f"dtype must be a floating-point dtype, got {self.dtype!r}") from None
        if dtype.kind != "f":
            raise ValueError(f"dtype must be a floating-point dtype such as 'float32', got {dtype}")
        get_backend(self.device)  # raises with an actionable message for an unknown or missing device

    def __sklearn_is_fitted__(self) -> bool:
        return getattr(self, "_weight", None) is not None

    def _check_fitted(self) -> None:
        if getattr(self, "_weight", None) is None:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) first")

    # ------------------------------------------------------------ subclass hooks
    def _encode_targets(self, y: np.ndarray, first_fit: bool, classes=None) -> np.ndarray:
        raise NotImplementedError

    def _n_outputs(self) -> int:
        raise NotImplementedError

    def _batch_loss(self, out: Tensor, target: Tensor) -> Tensor:
        """Mean data loss of a batch; its gradient is what backward() delivers."""
        raise NotImplementedError

    def _loss_scale(self) -> float:
        """Objective = scale * _batch_loss + alpha * R(W)."""
        return 1.0

    # ------------------------------------------------------------ fitting
    def _reset(self) -> None:
        for name in ("_weight", "_bias", "_optimizer", "_x_shift"):
            setattr(self, name, None)

    def fit(self, X, y):
        """Train from zero weights until the loss stops improving by tol or max_epochs run out."""
        self._reset()
        return self._fit(X, y, reset=True, classes=None, epochs=self.max_epochs)

    def partial_fit(self, X, y, **kwargs):
        """One epoch over (X, y), continuing from the current weights and optimizer state."""
        return self._fit(X, y, reset=getattr(self, "_weight", None) is None, epochs=1, early_stop=False, **kwargs)

    def _fit(self, X, y, reset, epochs, classes=None, early_stop=True):
        self._check_params()
        dtype = np.dtype(self.dtype)
        X = check_X(X, dtype, None if reset else self.n_features_in_)
        y = _as_host_array(y, "y")
        if y.ndim == 0:
            raise ValueError(f"y must be 1-D (one target per sample), got a scalar {y!r}")
        check_lengths(X, y)
        targets = self._encode_targets(y, first_fit=reset, classes=classes)
        backend = get_backend(self.device)
        if reset:
            self._x_shift = X.mean(axis=0) if self._center_X and self.fit_intercept else None
        if getattr(self, "_x_shift", None) is not None:
            X = X - self._x_shift
        if reset:
            self.n_features_in_ = X.shape[1]
            k = self._n_outputs()
            # Zero initial weights: the problems are convex, and zero makes a fit reproducible.
            self._weight = Parameter(np.zeros((k, X.shape[1]), dtype=dtype), device=backend)
            self._bias = Parameter(np.zeros(k, dtype=dtype), device=backend) if self.fit_intercept else None
            params = [self._weight] + ([self._bias] if self._bias is not None else [])
            self._optimizer = OPTIMIZERS[self.optimizer](params, lr=self.lr)
            self._rng = np.random.default_rng(self.random_state)
            self.loss_curve_ = []
            self.n_iter_ = 0
        data = TensorDataset(Tensor(X, device=backend), Tensor(targets, device=backend))
        loader = DataLoader(data, batch_size=min(self.batch_size or len(X), len(X)), shuffle=True,
                            generator=self._rng)
        self._train(loader, epochs, early_stop)
        return self

    # The penalty alpha * R(W), with R = ||W||^2 / 2 (l2) or ||W||_1 (l1), is added to the
    # gradient directly rather than through the tape: it is cheap and exact. The bias is not penalised.
    def _alpha(self):
        """alpha, or per-output-row alphas (an (outputs, 1) array) where a subclass rescales targets."""
        return self.alpha

    def _penalty_value(self) -> float:
        w = self._weight.array
        if self.penalty is None or not self.alpha:
            return 0.0
        return float((self._alpha() * (0.5 * w * w if self.penalty == "l2" else abs(w))).sum())

    def _penalty_grad(self):
        w = self._weight.array
        if self.penalty is None or not self.alpha:
            return None
        return self._alpha() * (w if self.penalty == "l2" else self._weight.xp.sign(w))

    def _train(self, loader, epochs, early_stop):
        optimizer, weight, bias = self._optimizer, self._weight, self._bias
        n = len(loader.dataset)
        scale = self._loss_scale()
        backward_seed = Tensor(np.asarray(scale, dtype=weight.dtype), device=weight._backend)
        best, stale = math.inf, 0
        converged = False
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(epochs):
                last_good = (weight.array.copy(), None if bias is None else bias.array.copy())
                # The penalty at the epoch's start, like the first batch's data loss: for full-batch
                # descent the recorded objective is then exactly f(w_k), which decreases monotonically.
                penalty = self._penalty_value()
                total = 0.0
                for xb, tb in loader:
                    loss = self._batch_loss(F.linear(xb, weight, bias), tb)
                    optimizer.zero_grad()
                    loss.backward(backward_seed)
                    penalty_grad = self._penalty_grad()
                    if penalty_grad is not None:
                        weight.grad.array += penalty_grad
                    optimizer.step()
                    total = total + loss.array * len(xb)  # stays on the device: no sync per step
                epoch_loss = scale * float(total) / n + penalty
                if not math.isfinite(epoch_loss) or not bool(weight.xp.isfinite(weight.array).all()):
                    weight.array[...] = last_good[0]
                    if bias is not None:
                        bias.array[...] = last_good[1]
                    raise DivergenceError(
                        f"{type(self).__name__}: training diverged in epoch {self.n_iter_ + 1} (the loss became "
                        f"{epoch_loss}); try a smaller learning rate than lr={self.lr} (or standardize X). "
                        "The model keeps the parameters of the last finite epoch.")
                self.n_iter_ += 1
                self.loss_curve_.append(epoch_loss)
                if early_stop and self.tol is not None:
                    stale = stale + 1 if epoch_loss > best - self.tol else 0
                    best = min(best, epoch_loss)
                    if stale >= self.n_iter_no_change:
                        factor = self._plateau_lr_factor
                        group_lr = optimizer.param_groups[0]["lr"]
                        if factor is None or group_lr * factor < self.lr * self._min_lr_ratio:
                            converged = True
                            break
                        # scikit-learn's learning_rate="adaptive": on a plateau, divide the step by 5
                        # and carry on, so that mini-batch noise settles instead of ending the fit.
                        for group in optimizer.param_groups:
                            group["lr"] = group["lr"] * factor
                        stale = 0
        if early_stop and self.tol is not None and not converged:
            warnings.warn(f"{type(self).__name__}: max_epochs={self.max_epochs} reached before the loss stopped "
                          f"improving by tol={self.tol}; raise max_epochs or lr", ConvergenceWarning, stacklevel=3)

    # ------------------------------------------------------------ inference
    def _raw_output(self, X) -> np.ndarray:
        """X W^T + b on the model's device, returned on the host as (n, outputs)."""
        self._check_fitted()
        X = check_X(X, self._weight.dtype, self.n_features_in_)
        bias = self._bias
        if bias is not None and getattr(self, "_x_shift", None) is not None:
            # The raw-input bias, as saved: a loaded model predicts bit for bit the same.
            bias = Tensor(self._raw_bias(), device=self._weight._backend)
        with no_grad():
            out = F.linear(Tensor(X, device=self._weight._backend), self._weight, bias)
        return out.numpy()

    @property
    def coef_(self):
        self._check_fitted()
        return self._weight.numpy()

    @property
    def intercept_(self):
        self._check_fitted()
        if self._bias is None:
            return np.zeros(self._weight.shape[0], self._weight.dtype)
        return self._raw_bias()

    def _raw_bias(self) -> np.ndarray:
        """The bias for uncentred inputs: b - W mean(X) where training centred X."""
        bias = self._bias.numpy()
        shift = getattr(self, "_x_shift", None)
        return bias if shift is None else (bias - self._weight.numpy() @ shift).astype(bias.dtype)

    # ------------------------------------------------------------ persistence
    def _fitted_state(self) -> dict:
        # Saved for raw (uncentred) inputs, so a file needs no centring of its own.
        bias = None if self._bias is None else Tensor(self._raw_bias())
        return {"weight": self._weight, "bias": bias, "n_features_in": int(self.n_features_in_),
                "n_iter": int(self.n_iter_), "loss_curve": [float(v) for v in self.loss_curve_]}

    def _restore_fitted(self, state: dict) -> None:
        weight, bias = state["weight"], state["bias"]
        n_features = int(state["n_features_in"])
        if weight.ndim != 2 or weight.shape[1] != n_features or (bias is not None and bias.shape != weight.shape[:1]):
            raise ValueError("the saved model is inconsistent: weight/bias shapes do not match n_features_in")
        backend = get_backend(self.device)
        dtype = np.dtype(self.dtype)
        self._weight = Parameter(weight.numpy().astype(dtype), device=backend)
        self._bias = None if bias is None else Parameter(bias.numpy().astype(dtype), device=backend)
        self.n_features_in_ = n_features
        self._x_shift = None
        self.n_iter_ = int(state["n_iter"])
        self.loss_curve_ = list(state["loss_curve"])
        self._optimizer = OPTIMIZERS[self.optimizer]([p for p in (self._weight, self._bias) if p is not None],
                                                      lr=self.lr)
        self._rng = np.random.default_rng(self.random_state)

    def save(self, path) -> None:
        """Write hyperparameters and fitted arrays to ``path`` (td.save's format); read back with td.models.load."""
        self._check_fitted()
        params = self.get_params()
        params["dtype"] = np.dtype(params["dtype"]).name
        io.save({"model": type(self).__name__, "params": params, "fitted": self._fitted_state()}, path, kind="model")
