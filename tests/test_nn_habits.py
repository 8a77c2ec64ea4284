"""PyTorch habits of td.nn (issue 11): the loss, activation, dropout and container
modules, the Module methods, and the options of the fused losses.

Every value is checked against a float64 NumPy reference written here from the
definitions, and against PyTorch itself where it is installed (values, shapes,
dtypes, gradients); gradients without PyTorch go through td.gradcheck.
"""
import math
import warnings

import numpy as np
import pytest

import tinygrad_dot as td
import tinygrad_dot.nn as nn
from tinygrad_dot.nn import functional as F

from conftest import rel_error

try:
    import torch
except ImportError:  # the NumPy references and gradcheck still run
    torch = None

REDUCTIONS = ["mean", "sum", "none"]


def grad_of(fn, *arrays, g=None):
    """td: (value, [gradient of each array]) of fn at float64 copies of ``arrays``,
    the backward pass seeded with ``g`` (ones when None)."""
    inputs = [td.tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    out = fn(*inputs)
    out.backward(td.tensor(np.ones(out.shape) if g is None else g))
    return out.numpy(), [t.grad.numpy() for t in inputs]


def torch_grad_of(fn, *arrays, g=None):
    inputs = [torch.tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    out = fn(*inputs)
    out.backward(torch.ones_like(out) if g is None else torch.tensor(g))
    return out.detach().numpy(), [t.grad.numpy() for t in inputs]


# ----------------------------------------------------------------- references (float64, from the definitions)


def log_softmax_rows(z):
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def cross_entropy_reference(z, y, weight=None, ignore_index=-100, smoothing=0.0, reduction="mean"):
    """PyTorch's documented cross-entropy for class targets: per row
    (1 - e) w[y] (-log p[y]) + (e / C) sum_c w[c] (-log p[c]), 0 for ignored rows,
    the mean divided by the summed w[y] of the counted rows."""
    n, classes = z.shape
    log_p = log_softmax_rows(z.astype(np.float64))
    w = np.ones(classes) if weight is None else np.asarray(weight, np.float64)
    counted = y != ignore_index
    safe = np.where(counted, y, 0)
    nll = -log_p[np.arange(n), safe] * w[safe]
    spread = -(log_p * w).sum(axis=1)
    per = np.where(counted, (1 - smoothing) * nll + smoothing / classes * spread, 0.0)
    if reduction == "none":
        return per
    return per.sum() / (w[safe] * counted).sum() if reduction == "mean" else per.sum()


def bce_reference(z, y, weight=None, pos_weight=None, reduction="mean"):
    log_sig = -np.logaddexp(0, -z)  # log sigmoid(z)
    log_one_minus = -np.logaddexp(0, z)  # log(1 - sigmoid(z))
    p = 1.0 if pos_weight is None else pos_weight
    per = -(p * y * log_sig + (1 - y) * log_one_minus) * (1.0 if weight is None else weight)
    return per.mean() if reduction == "mean" else per.sum() if reduction == "sum" else per


# ----------------------------------------------------------------- cross_entropy options

OPTIONS = [
    {"weight": True},
    {"ignore_index": 2},
    {"ignore_index": -100, "some_ignored": True},
    {"label_smoothing": 0.2},
    {"weight": True, "ignore_index": 1, "label_smoothing": 0.3},
    {"weight": True, "label_smoothing": 1.0},
]


def option_case(rng, option, n=9, classes=5):
    z = rng.standard_normal((n, classes)) * 3
    y = rng.integers(0, classes, n)
    kwargs = {}
    if option.get("weight"):
        kwargs["weight"] = rng.random(classes) + 0.25
    if "ignore_index" in option:
        kwargs["ignore_index"] = option["ignore_index"]
        if option.get("some_ignored"):
            y[rng.choice(n, 3, replace=False)] = option["ignore_index"]
        else:
            y[0] = option["ignore_index"]  # at least one ignored row whatever the draw
    if "label_smoothing" in option:
        kwargs["label_smoothing"] = option["label_smoothing"]
    return z, y, kwargs


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: "-".join(sorted(o)))
def test_cross_entropy_options_match_the_definition_and_pytorch(rng, option, reduction):
    z, y, kwargs = option_case(rng, option)
    loss = F.cross_entropy(td.tensor(z), y, reduction=reduction, **kwargs)
    expected = cross_entropy_reference(z, y, reduction=reduction, **{
        "weight": kwargs.get("weight"), "ignore_index": kwargs.get("ignore_index", -100),
        "smoothing": kwargs.get("label_smoothing", 0.0)})
    assert loss.shape == np.shape(expected) and loss.dtype == np.float64
    assert rel_error(loss.numpy(), expected) < 1e-12
    fn = lambda a: F.cross_entropy(a, y, reduction=reduction, **kwargs)  # noqa: E731
    assert td.gradcheck(fn, [td.tensor(z, requires_grad=True)])
    if torch is None:
        return
    g = rng.standard_normal(np.shape(expected))
    torch_kwargs = {k: torch.tensor(v) if k == "weight" else v for k, v in kwargs.items()}
    value, (grad,) = grad_of(fn, z, g=g)
    t_value, (t_grad,) = torch_grad_of(
        lambda a: torch.nn.functional.cross_entropy(a, torch.from_numpy(y), reduction=reduction, **torch_kwargs),
        z, g=g)
    assert rel_error(value, t_value) < 1e-12 and rel_error(grad, t_grad) < 1e-12


def test_cross_entropy_options_in_float32_and_float16(rng):
    z, y, kwargs = option_case(rng, OPTIONS[4], n=64, classes=10)
    expected = cross_entropy_reference(z.astype(np.float32), y, kwargs["weight"], kwargs["ignore_index"],
                                       kwargs["label_smoothing"])
    for dtype, tol in ((np.float32, 1e-6), (np.float16, 1e-3)):
        logits = td.tensor(z.astype(dtype), requires_grad=True)
        loss = F.cross_entropy(logits, y, **kwargs)
        loss.backward()
        assert loss.dtype == dtype and logits.grad.dtype == dtype
        assert rel_error(loss.numpy(), expected) < tol
        _, (reference_grad,) = grad_of(lambda a: F.cross_entropy(a, y, **kwargs), z.astype(dtype))
        assert rel_error(logits.grad.numpy(), reference_grad) < 10 * tol


def test_cross_entropy_option_path_agrees_with_the_fast_path(rng):
    # Unit weights take the general path; the default options the fused fast one.
    z = rng.standard_normal((30, 7))
    y = rng.integers(0, 7, 30)
    for reduction in REDUCTIONS:
        g = rng.standard_normal(() if reduction != "none" else (30,))
        fast, (fast_grad,) = grad_of(lambda a: F.cross_entropy(a, y, reduction=reduction), z, g=g)
        general, (general_grad,) = grad_of(lambda a: F.cross_entropy(a, y, np.ones(7), reduction=reduction), z, g=g)
        assert rel_error(general, fast) < 1e-14 and rel_error(general_grad, fast_grad) < 1e-14


def test_cross_entropy_ignored_rows(rng):
    z = rng.standard_normal((4, 3))
    z[1] = np.nan  # an ignored row's NaN does not reach the loss or the other rows' gradients
    y = np.array([2, -100, 0, -100])
    value, (grad,) = grad_of(lambda a: F.cross_entropy(a, y), z)
    assert rel_error(value, cross_entropy_reference(z[[0, 2]], y[[0, 2]])) < 1e-12
    assert not grad[[1, 3]].any() and np.isfinite(grad).all()
    # Every row ignored: a NaN mean (0 / 0) and a zero gradient, as in PyTorch.
    value, (grad,) = grad_of(lambda a: F.cross_entropy(a, np.full(4, 7), ignore_index=7), rng.standard_normal((4, 3)))
    assert np.isnan(value) and not grad.any()
    assert F.cross_entropy(td.tensor(z), y, reduction="sum").item() == pytest.approx(
        cross_entropy_reference(z[[0, 2]], y[[0, 2]], reduction="sum"), rel=1e-12)
    if torch is not None:
        t = torch.nn.functional.cross_entropy(torch.zeros(2, 3, requires_grad=True), torch.tensor([-100, -100]))
        assert torch.isnan(t)


@pytest.mark.parametrize("shape", [(5,), (4, 5, 3), (2, 5, 3, 2)])
def test_cross_entropy_other_layouts(rng, shape):
    z = rng.standard_normal(shape)
    classes = shape[0] if len(shape) == 1 else shape[1]
    target_shape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    y = rng.integers(0, classes, target_shape)
    weight = rng.random(classes) + 0.5
    rows = z.reshape(1, classes) if len(shape) == 1 else np.moveaxis(z, 1, -1).reshape(-1, classes)
    for reduction in REDUCTIONS:
        loss = F.cross_entropy(td.tensor(z), y, weight, reduction=reduction, label_smoothing=0.1)
        expected = cross_entropy_reference(rows, y.reshape(-1), weight, smoothing=0.1, reduction=reduction)
        assert loss.shape == (target_shape if reduction == "none" else ())
        assert rel_error(loss.numpy(), np.reshape(expected, loss.shape)) < 1e-12
    assert td.gradcheck(lambda a: F.cross_entropy(a, y, weight, reduction="sum"), [td.tensor(z, requires_grad=True)])
    if torch is not None:
        ours = grad_of(lambda a: F.cross_entropy(a, y, weight, label_smoothing=0.1), z)
        theirs = torch_grad_of(lambda a: torch.nn.functional.cross_entropy(
            a, torch.from_numpy(y), torch.from_numpy(weight), label_smoothing=0.1), z)
        assert rel_error(ours[0], theirs[0]) < 1e-12 and rel_error(ours[1][0], theirs[1][0]) < 1e-12


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_against_class_probabilities(rng, reduction):
    z = rng.standard_normal((6, 4)) * 2
    t = rng.random((6, 4))
    t /= t.sum(axis=1, keepdims=True)
    w = rng.random(4) + 0.5
    for kwargs in ({}, {"weight": w, "label_smoothing": 0.25}):
        smoothed = t * (1 - kwargs.get("label_smoothing", 0)) + kwargs.get("label_smoothing", 0) / 4
        per = -(log_softmax_rows(z) * smoothed * kwargs.get("weight", 1.0)).sum(axis=1)
        expected = per.mean() if reduction == "mean" else per.sum() if reduction == "sum" else per
        fn = lambda a, b: F.cross_entropy(a, b, reduction=reduction, **kwargs)  # noqa: E731
        assert rel_error(fn(td.tensor(z), td.tensor(t)).numpy(), expected) < 1e-12
        assert td.gradcheck(fn, [td.tensor(z, requires_grad=True), td.tensor(t, requires_grad=True)])
        if torch is not None:
            g = rng.standard_normal(np.shape(expected))
            ours = grad_of(fn, z, t, g=g)
            theirs = torch_grad_of(lambda a, b: torch.nn.functional.cross_entropy(
                a, b, reduction=reduction, **{k: torch.tensor(v) if k == "weight" else v for k, v in kwargs.items()}),
                z, t, g=g)
            for a, b in zip([ours[0], *ours[1]], [theirs[0], *theirs[1]]):
                assert rel_error(a, b) < 1e-12
    # (N, C, d) logits with probabilities of the same shape
    z3, t3 = rng.standard_normal((3, 4, 2)), rng.random((3, 4, 2))
    rows = lambda a: np.moveaxis(a, 1, -1).reshape(-1, 4)  # noqa: E731
    loss = F.cross_entropy(td.tensor(z3), td.tensor(t3), reduction=reduction)
    per = -(log_softmax_rows(rows(z3)) * rows(t3)).sum(axis=1)
    expected = per.mean() if reduction == "mean" else per.sum() if reduction == "sum" else per.reshape(3, 2)
    assert rel_error(loss.numpy(), expected) < 1e-12
    if torch is not None:
        theirs = torch.nn.functional.cross_entropy(torch.from_numpy(z3), torch.from_numpy(t3), reduction=reduction)
        assert rel_error(loss.numpy(), theirs.numpy()) < 1e-12


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_after_log_softmax_is_cross_entropy(rng, reduction):
    z = rng.standard_normal((10, 4)) * 2
    y = rng.integers(0, 4, 10)
    y[[0, 5]] = 1
    w = rng.random(4) + 0.5
    for kwargs in ({}, {"weight": w}, {"ignore_index": 1}, {"weight": w, "ignore_index": 1}):
        log_p = log_softmax_rows(z)
        fn = lambda a: F.nll_loss(a, y, reduction=reduction, **kwargs)  # noqa: E731
        expected = cross_entropy_reference(z, y, kwargs.get("weight"), kwargs.get("ignore_index", -100),
                                           reduction=reduction)
        assert rel_error(fn(td.tensor(log_p)).numpy(), expected) < 1e-12
        # through log_softmax, nll_loss and cross_entropy give the same gradient
        composed = grad_of(lambda a: F.nll_loss(F.log_softmax(a, dim=1), y, reduction=reduction, **kwargs), z)
        fused = grad_of(lambda a: F.cross_entropy(a, y, reduction=reduction, **kwargs), z)
        assert rel_error(composed[1][0], fused[1][0]) < 1e-12
        assert td.gradcheck(fn, [td.tensor(log_p, requires_grad=True)])
        if torch is not None:
            g = rng.standard_normal(np.shape(expected))
            ours = grad_of(fn, log_p, g=g)
            theirs = torch_grad_of(lambda a: torch.nn.functional.nll_loss(
                a, torch.from_numpy(y), reduction=reduction,
                **{k: torch.from_numpy(v) if k == "weight" else v for k, v in kwargs.items()}), log_p, g=g)
            assert rel_error(ours[0], theirs[0]) < 1e-12 and rel_error(ours[1][0], theirs[1][0]) < 1e-12
    module = nn.NLLLoss(td.tensor(w), None, 1, None, reduction)
    assert rel_error(module(td.tensor(log_softmax_rows(z)), y).numpy(),
                     cross_entropy_reference(z, y, w.astype(np.float32), 1, reduction=reduction)) < 1e-6
    layout = F.nll_loss(td.tensor(rng.standard_normal((2, 4, 3))), rng.integers(0, 4, (2, 3)), reduction=reduction)
    assert layout.shape == ((2, 3) if reduction == "none" else ())
    with pytest.raises(IndexError, match=r"nll_loss: target values must lie in \[0, 4\)"):
        F.nll_loss(td.tensor(z), np.full(10, 4))
    with pytest.raises(TypeError, match="floating log-probabilities"):
        F.nll_loss(td.tensor(y.reshape(5, 2)), y[:5] % 2)


def test_cross_entropy_option_errors_are_clear():
    z = td.zeros(4, 3)
    y = np.array([0, 1, 2, 0])
    with pytest.raises(ValueError, match=r"shape \(3,\).*got shape \(4,\)"):
        F.cross_entropy(z, y, weight=np.ones(4))
    with pytest.raises(NotImplementedError, match="weight"):
        F.cross_entropy(z, y, weight=td.ones(3, requires_grad=True))
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(z, y, label_smoothing=1.5)
    with pytest.raises(TypeError, match="ignore_index"):
        F.cross_entropy(z, y, ignore_index=1.5)
    with pytest.raises(IndexError, match=r"\[0, 3\) or equal ignore_index=-1.*\[-5, -5\]"):
        F.cross_entropy(z, np.array([0, -1, -5, 1]), ignore_index=-1)
    with pytest.raises(ValueError, match=r"expected \(4, 2\)"):
        F.cross_entropy(td.zeros(4, 3, 2), np.zeros((4, 3), int))


# ----------------------------------------------------------------- other losses


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_weight_and_pos_weight(rng, reduction):
    z = rng.standard_normal((6, 4)) * 4
    y = rng.random((6, 4))  # soft targets: the target gradient is not trivial
    pos_weight = rng.random(4) * 3
    weight = rng.random((6, 1))
    for kwargs in ({"pos_weight": pos_weight}, {"weight": weight}, {"weight": weight, "pos_weight": pos_weight}):
        loss = F.binary_cross_entropy_with_logits(td.tensor(z), y, reduction=reduction, **kwargs)
        assert rel_error(loss.numpy(), bce_reference(z, y, reduction=reduction, **kwargs)) < 1e-12
        fn = lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction, **kwargs)  # noqa: E731
        assert td.gradcheck(fn, [td.tensor(z, requires_grad=True), td.tensor(y, requires_grad=True)])
        if torch is not None:
            g = rng.standard_normal(np.shape(loss.numpy()))
            ours = grad_of(fn, z, y, g=g)
            theirs = torch_grad_of(lambda a, b: torch.nn.functional.binary_cross_entropy_with_logits(
                a, b, reduction=reduction, **{k: torch.from_numpy(v) for k, v in kwargs.items()}), z, y, g=g)
            for a, b in zip([ours[0], *ours[1]], [theirs[0], *theirs[1]]):
                assert rel_error(a, b) < 1e-12


def test_bce_with_logits_stays_finite_and_checks_shapes():
    z = td.tensor([1e4, -1e4, 0.0], requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(z, td.tensor([0.0, 1.0, 1.0]), pos_weight=td.tensor([2.0]),
                                              reduction="none")
    np.testing.assert_allclose(loss.numpy(), [1e4, 2e4, 2 * math.log(2)], rtol=1e-6)
    loss.sum().backward()
    assert np.isfinite(z.grad.numpy()).all()
    with pytest.raises(ValueError, match=r"pos_weight of shape \(3,\) does not broadcast.*\(4, 2\)"):
        F.binary_cross_entropy_with_logits(td.zeros(4, 2), td.zeros(4, 2), pos_weight=np.ones(3))
    with pytest.raises(ValueError, match=r"weight of shape \(4, 2, 1\)"):
        F.binary_cross_entropy_with_logits(td.zeros(4, 2), td.zeros(4, 2), weight=np.ones((4, 2, 1)))


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_weighted_mse_and_l1_divide_the_mean_by_the_weights(rng, name):
    x, y, w = rng.standard_normal((3, 5, 2))
    w = np.abs(w)
    error = (lambda d: d * d) if name == "mse_loss" else np.abs
    ours, theirs = getattr(F, name), torch and getattr(torch.nn.functional, name)
    for reduction in REDUCTIONS:
        per = w * error(x - y)
        expected = per.sum() / w.sum() if reduction == "mean" else per.sum() if reduction == "sum" else per
        loss = ours(td.tensor(x), y, weight=w, reduction=reduction)
        assert rel_error(loss.numpy(), expected) < 1e-12
        assert td.gradcheck(lambda a, b: ours(a, b, weight=w, reduction=reduction),
                            [td.tensor(x, requires_grad=True), td.tensor(y, requires_grad=True)])
        if torch is not None:
            reference = theirs(torch.from_numpy(x), torch.from_numpy(y), weight=torch.from_numpy(w), reduction=reduction)
            assert rel_error(loss.numpy(), reference.numpy()) < 1e-12
    with pytest.raises(ValueError, match=rf"{name}: weight of shape \(2,\).*\(5, 2\)"):
        ours(td.tensor(x), y, weight=np.ones(2))


def test_loss_modules_have_pytorch_signatures_and_call_the_functions(rng):
    z = rng.standard_normal((8, 4))
    y = rng.integers(0, 4, 8)
    w = rng.random(4) + 0.5
    # Positional order is PyTorch's: weight first, then the deprecated pair, ignore_index, ...
    module = nn.CrossEntropyLoss(td.tensor(w), None, 3, None, "sum", 0.1)
    assert module.ignore_index == 3 and module.reduction == "sum" and module.label_smoothing == 0.1
    np.testing.assert_allclose(module(td.tensor(z), y).numpy(),
                               cross_entropy_reference(z, y, w.astype(np.float32), 3, 0.1, "sum"), rtol=1e-6)
    a, b = rng.standard_normal((2, 8, 4))
    cases = [(nn.MSELoss(), (a - b) ** 2), (nn.L1Loss(reduction="none"), np.abs(a - b))]
    for loss, per in cases:
        expected = per.mean() if loss.reduction == "mean" else per
        np.testing.assert_allclose(loss(td.tensor(a), td.tensor(b)).numpy(), expected, rtol=1e-12)
    bits = (b > 0).astype(np.float64)
    np.testing.assert_allclose(nn.BCEWithLogitsLoss(pos_weight=td.tensor([2.0] * 4))(td.tensor(a), bits).numpy(),
                               bce_reference(a, bits, pos_weight=2.0), rtol=1e-6)
    with pytest.warns(DeprecationWarning):
        assert nn.MSELoss(size_average=False).reduction == "sum"
    with pytest.warns(DeprecationWarning):
        assert nn.L1Loss(reduce=False).reduction == "none"
    with pytest.raises(ValueError, match="reduction"):
        nn.CrossEntropyLoss(reduction="avg")
    if torch is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert torch.nn.MSELoss(size_average=False).reduction == "sum"
            assert torch.nn.L1Loss(reduce=False).reduction == "none"
        theirs = torch.nn.CrossEntropyLoss(torch.from_numpy(w), None, 3, None, "sum", 0.1)
        np.testing.assert_allclose(module(td.tensor(z), y).numpy(),
                                   theirs(torch.from_numpy(z), torch.from_numpy(y)).numpy(), rtol=1e-6)


# ----------------------------------------------------------------- activations and simple layers


def test_activation_modules_values_and_gradients(rng):
    x = rng.standard_normal((4, 3)) * 2
    x[0, 0] = 0.0  # relu's gradient at 0 is 0, as in PyTorch
    references = {
        nn.ReLU: (np.maximum(x, 0), (x > 0).astype(float)),
        nn.Sigmoid: (1 / (1 + np.exp(-x)), np.exp(-x) / (1 + np.exp(-x)) ** 2),
        nn.Tanh: (np.tanh(x), 1 - np.tanh(x) ** 2),
        nn.Identity: (x, np.ones_like(x)),
    }
    for cls, (value, slope) in references.items():
        out, (grad,) = grad_of(cls(), x)
        assert rel_error(out, value) < 1e-12 and rel_error(grad, slope) < 1e-12, cls.__name__
        assert repr(cls()) == f"{cls.__name__}()"
        if torch is not None:
            t_out, (t_grad,) = torch_grad_of(getattr(torch.nn, cls.__name__)(), x)
            assert rel_error(out, t_out) < 1e-12 and rel_error(grad, t_grad) < 1e-12, cls.__name__
    assert nn.Identity(54, unused=True)(td.tensor(x)).shape == (4, 3)  # arguments ignored, as in PyTorch
    y = nn.Tanh()(td.tensor(x.astype(np.float32)))
    assert y.dtype == np.float32


def test_softmax_modules_and_the_implicit_dimension(rng):
    x = rng.standard_normal((2, 3, 4))
    for dim in (0, 1, 2, -1):
        e = np.exp(x - x.max(axis=dim, keepdims=True))
        np.testing.assert_allclose(nn.Softmax(dim)(td.tensor(x)).numpy(), e / e.sum(axis=dim, keepdims=True),
                                   rtol=1e-12)
        np.testing.assert_allclose(nn.LogSoftmax(dim=dim)(td.tensor(x)).numpy(),
                                   np.log(e / e.sum(axis=dim, keepdims=True)), rtol=1e-12)
    # No dim: PyTorch's legacy choice (dim 0 for 3-D input, 1 for 2-D), with a warning.
    for shape, dim in (((2, 3, 4), 0), ((3, 4), 1), ((4,), 0)):
        x = rng.standard_normal(shape)
        with pytest.warns(UserWarning, match="dim="):
            out = nn.Softmax()(td.tensor(x)).numpy()
        e = np.exp(x - x.max(axis=dim, keepdims=True))
        np.testing.assert_allclose(out, e / e.sum(axis=dim, keepdims=True), rtol=1e-12)
        if torch is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                np.testing.assert_allclose(out, torch.nn.Softmax()(torch.from_numpy(x)).numpy(), rtol=1e-12)
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"
    np.testing.assert_allclose(F.softmax(td.tensor([[0.0, 1.0]]), dim=1, dtype=td.float64).numpy().sum(), 1.0)
    assert F.softmax(td.tensor([[0.0, 1.0]]), dim=1, dtype=td.float64).dtype == np.float64


def test_flatten(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    for args, shape in (((), (2, 60)), ((0,), (120,)), ((1, 2), (2, 12, 5)), ((2, -1), (2, 3, 20))):
        out, (grad,) = grad_of(nn.Flatten(*args), x)
        assert out.shape == shape and (out.ravel() == x.ravel()).all() and (grad == 1).all()
        if torch is not None:
            assert tuple(torch.nn.Flatten(*args)(torch.from_numpy(x)).shape) == shape
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"


# ----------------------------------------------------------------- dropout


def test_dropout_zeroes_with_probability_p_and_scales_the_rest(rng):
    x = td.tensor(rng.random((400, 500)) + 1.0, requires_grad=True)  # no zero inputs
    for p in (0.1, 0.5, 0.9):
        out = F.dropout(x, p)
        dropped = out.numpy() == 0
        # 200,000 Bernoulli draws: the fraction is within 5 standard deviations of p.
        assert abs(dropped.mean() - p) < 5 * math.sqrt(p * (1 - p) / dropped.size)
        np.testing.assert_allclose(out.numpy()[~dropped], x.numpy()[~dropped] / (1 - p), rtol=1e-15)
        x.grad = None
        g = rng.standard_normal(x.shape)
        out.backward(td.tensor(g))
        np.testing.assert_allclose(x.grad.numpy(), np.where(dropped, 0.0, g / (1 - p)), rtol=1e-15)
    assert not F.dropout(x, 1.0).numpy().any()
    assert F.dropout(x, 0.0) is x and F.dropout(x, 0.5, training=False) is x
    if torch is not None:  # the same statistics from PyTorch's own draw
        t = torch.nn.functional.dropout(torch.ones(400, 500, dtype=torch.float64), 0.3)
        assert abs((t == 0).double().mean().item() - 0.3) < 5 * math.sqrt(0.21 / t.numel())
        assert set(np.unique(t.numpy())) == {0.0, 1 / 0.7}


def test_dropout_module_follows_train_eval_and_manual_seed(rng):
    x = td.tensor(rng.standard_normal((50, 40)).astype(np.float32))
    layer = nn.Sequential(nn.Linear(40, 40, generator=rng), nn.Dropout(0.25))
    td.manual_seed(5)
    first = layer(x).numpy()
    td.manual_seed(5)
    np.testing.assert_array_equal(layer(x).numpy(), first)  # the same seed, the same mask, bit for bit
    assert not np.array_equal(layer(x).numpy(), first)  # the generator moved on
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), layer[0](x).numpy())
    assert not layer[1].training and layer(x).dtype == np.float32
    layer.train()
    assert layer[1].training and (layer(x).numpy() == 0).any()
    assert repr(nn.Dropout(0.1)) == "Dropout(p=0.1, inplace=False)"


def test_inplace_dropout_and_relu(rng):
    x = td.tensor(rng.random((30, 30)) + 1.0)
    before = x.numpy()
    out = F.dropout(x, 0.5, inplace=True)
    assert out is x and (x.numpy() == 0).any()
    np.testing.assert_allclose(x.numpy()[x.numpy() != 0], 2 * before[x.numpy() != 0])
    y = td.tensor(rng.standard_normal(50))
    assert nn.ReLU(inplace=True)(y) is y and (y.numpy() >= 0).all()
    assert not np.signbit(y.numpy()).any()  # no -0.0 left where negatives were
    # Under autograd the tape cannot rewrite a recorded tensor: a new tensor, the right gradient.
    z = td.tensor(rng.standard_normal(20), requires_grad=True)
    h = z * 1.0
    out = nn.Sequential(nn.ReLU(inplace=True), nn.Dropout(0.5, inplace=True))(h)
    out.sum().backward()
    kept = out.numpy() != 0
    np.testing.assert_allclose(z.grad.numpy(), np.where(kept, 2.0, 0.0))
    assert (h.numpy() == z.numpy()).all()


def test_dropout_bad_arguments():
    for p in (-0.1, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match="between 0 and 1"):
            nn.Dropout(p)
    with pytest.raises(TypeError, match="floating point"):
        F.dropout(td.tensor([1, 2, 3]))


def test_module_reprs_are_pytorchs():
    modules = ["ReLU()", "ReLU(inplace=True)", "Dropout(0.1)", "Softmax(dim=1)", "LogSoftmax(1)", "Flatten()",
               "L1Loss(reduction='sum')", "CrossEntropyLoss()", "NLLLoss()", "Identity()", "Tanh()", "ModuleList([ReLU()])",
               "ModuleDict({'a': ReLU()})", "Sequential(Linear(2, 3), ReLU())"]
    expected = ["ReLU()", "ReLU(inplace=True)", "Dropout(p=0.1, inplace=False)", "Softmax(dim=1)", "LogSoftmax(dim=1)",
                "Flatten(start_dim=1, end_dim=-1)", "L1Loss()", "CrossEntropyLoss()", "NLLLoss()", "Identity()", "Tanh()",
                "ModuleList(\n  (0): ReLU()\n)", "ModuleDict(\n  (a): ReLU()\n)",
                "Sequential(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n  (1): ReLU()\n)"]
    for text, reference in zip(modules, expected):
        assert repr(eval(text, {**vars(nn)})) == reference, text
        if torch is not None:
            assert repr(eval(text, {**vars(torch.nn)})) == reference, text


# ----------------------------------------------------------------- containers


def block(lib, generator=None):
    """The same small tree in both libraries: containers and a shared (tied) layer."""
    kw = {"generator": generator} if lib is nn else {}

    class Block(lib.Module):
        def __init__(self):
            super().__init__()
            self.layers = lib.ModuleList([lib.Linear(3, 4, **kw), lib.Linear(4, 4, **kw)])
            self.heads = lib.ModuleDict({"a": lib.Linear(4, 2, **kw),
                                         "b": lib.Sequential(lib.ReLU(), lib.Linear(4, 1, **kw))})
            self.tied = self.layers[1]  # the same module twice

    return Block()


def test_module_list(rng):
    layers = nn.ModuleList([nn.Linear(2, 2, generator=rng) for _ in range(3)])
    assert len(layers) == 3 and isinstance(layers[-1], nn.Linear) and layers[-1] is layers[2]
    assert [n for n, _ in layers.named_parameters()][:2] == ["0.weight", "0.bias"]
    third = layers[2]
    del layers[0]
    assert len(layers) == 2 and layers[1] is third  # renumbered, as in PyTorch
    assert [n for n, _ in layers.named_children()] == ["0", "1"] and layers._modules["1"] is third
    layers.insert(0, nn.ReLU())
    layers.append(nn.Tanh()).extend([nn.Sigmoid()])
    layers += [nn.Identity()]
    assert [type(m).__name__ for m in layers] == ["ReLU", "Linear", "Linear", "Tanh", "Sigmoid", "Identity"]
    assert isinstance(layers[1:3], nn.ModuleList) and len(layers[1:3]) == 2
    layers[0] = nn.Flatten()
    assert isinstance(layers[0], nn.Flatten) and len(list(layers.parameters())) == 4
    with pytest.raises(IndexError, match="out of range"):
        layers[6]
    with pytest.raises(TypeError, match="not a Module"):
        layers.append(np.ones(2))
    with pytest.raises(NotImplementedError):
        layers(td.zeros(2))  # a container has no forward


def test_module_dict():
    heads = nn.ModuleDict({"b": nn.Linear(2, 1), "a": nn.ReLU()})
    heads["c"] = nn.Tanh()
    heads.update([("d", nn.Identity())])
    assert list(heads) == ["b", "a", "c", "d"] and list(heads.keys()) == list(heads)
    assert "a" in heads and isinstance(heads["b"], nn.Linear) and len(heads) == 4
    assert isinstance(heads.pop("c"), nn.Tanh) and "c" not in heads
    del heads["d"]
    assert [n for n, _ in heads.named_parameters()] == ["b.weight", "b.bias"]
    for bad, error in (("x.y", KeyError), ("", KeyError), ("keys", KeyError), (1, TypeError)):
        with pytest.raises(error):
            heads[bad] = nn.ReLU()
    heads.clear()
    assert len(heads) == 0 and list(heads.parameters()) == []


def test_names_traversal_and_state_dict_keys_match_pytorch(rng):
    model = block(nn, rng)
    names = [n for n, _ in model.named_parameters()]
    modules = [n for n, _ in model.named_modules()]
    keys = list(model.state_dict())
    # Tied: named_parameters lists a shared parameter once, state_dict under every name.
    assert names == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "heads.a.weight",
                     "heads.a.bias", "heads.b.1.weight", "heads.b.1.bias"]
    assert keys[:4] == names[:4] and "tied.weight" in keys and len(keys) == len(names) + 2
    assert modules == ["", "layers", "layers.0", "layers.1", "heads", "heads.a", "heads.b", "heads.b.0", "heads.b.1"]
    assert len(list(model.named_modules(remove_duplicate=False))) == len(modules) + 1
    assert [n for n, _ in model.named_children()] == ["layers", "heads", "tied"]
    assert list(model.state_dict(prefix="net.")) == ["net." + k for k in keys]
    assert model.state_dict(keep_vars=True)["tied.weight"] is model.layers[1].weight
    if torch is not None:
        theirs = block(torch.nn)
        assert names == [n for n, _ in theirs.named_parameters()]
        assert modules == [n for n, _ in theirs.named_modules()]
        assert keys == list(theirs.state_dict())
        assert [n for n, _ in theirs.named_children()] == ["layers", "heads", "tied"]
        # apply visits children first, then the parent, in the same order
        ours_order, their_order = [], []
        model.apply(lambda m: ours_order.append(type(m).__name__))
        theirs.apply(lambda m: their_order.append(type(m).__name__))
        assert ours_order == their_order


def test_apply_initialises_and_requires_grad_freezes(rng):
    model = block(nn, rng)
    assert model.apply(lambda m: nn.init.zeros_(m.bias) if isinstance(m, nn.Linear) else None) is model
    assert all(not m.bias.numpy().any() for m in model.modules() if isinstance(m, nn.Linear))
    assert model.layers.requires_grad_(False) is model.layers
    frozen = {id(p) for p in model.layers.parameters()}
    x = td.tensor(rng.standard_normal((5, 3)).astype(np.float32))
    h = model.layers[1](model.layers[0](x))
    (model.heads["a"](h).sum() + model.heads["b"](h).sum()).backward()
    for p in model.parameters():
        assert (p.grad is None) == (id(p) in frozen) and p.requires_grad == (id(p) not in frozen)
    model.requires_grad_()
    assert all(p.requires_grad for p in model.parameters())


def test_load_state_dict_returns_pytorchs_named_tuple(rng):
    model = nn.Sequential(nn.Linear(3, 2, generator=rng))
    result = model.load_state_dict({"0.weight": np.ones((2, 3)), "extra": np.ones(1)}, strict=False)
    assert result.missing_keys == ["0.bias"] and result.unexpected_keys == ["extra"]
    missing, unexpected = result
    assert result["missing_keys"] == missing and isinstance(result, tuple)
    assert model.load_state_dict(model.state_dict()) == ([], [])
    with pytest.raises(TypeError, match="dict"):
        model.load_state_dict([1, 2])
    if torch is not None:
        theirs = torch.nn.Sequential(torch.nn.Linear(3, 2)).load_state_dict(
            {"0.weight": torch.ones(2, 3), "extra": torch.ones(1)}, strict=False)
        assert (theirs.missing_keys, theirs.unexpected_keys) == tuple(result)


# ----------------------------------------------------------------- dtypes and devices


def test_module_dtype_methods_cast_parameters_and_gradients(rng):
    model = nn.Sequential(nn.Linear(6, 5, generator=rng), nn.Tanh(), nn.Linear(5, 2, generator=rng))
    x = rng.standard_normal((4, 6))
    reference = model(td.tensor(x.astype(np.float32))).numpy()
    model(td.tensor(x.astype(np.float32))).sum().backward()
    assert model.double() is model
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in model.parameters())
    assert rel_error(model(td.tensor(x)).numpy(), reference) < 1e-6
    model.half()
    assert all(p.dtype == np.float16 for p in model.parameters())
    out = model(td.tensor(x.astype(np.float16)))
    assert out.dtype == np.float16 and rel_error(out.numpy(), reference) < 3e-3
    model.float()
    assert all(p.dtype == np.float32 for p in model.parameters())
    assert model.to(td.tensor(np.zeros(1))) is model and model[0].weight.dtype == np.float64  # to(tensor)
    assert model.to("cpu", td.float32) is model and model[0].weight.dtype == np.float32
    assert model.to(device="cpu").cpu() is model and model[0].weight.device == "cpu"
    with pytest.raises(TypeError, match="floating point"):
        model.to(td.int64)
    with pytest.raises(TypeError, match="Module.to takes"):
        model.to("cpu", td.float32, True)
    if torch is not None:
        theirs = torch.nn.Linear(2, 2)
        assert theirs.double() is theirs and theirs.weight.dtype == torch.float64


def test_module_to_an_absent_gpu_says_so():
    if td.cuda.is_available():
        pytest.skip("a GPU is present: moving to it succeeds")
    with pytest.raises(RuntimeError, match="CuPy|CUDA|GPU"):
        nn.Linear(2, 2).to("cuda")


# ----------------------------------------------------------------- other devices


@pytest.mark.parametrize("device", ["emu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_losses_dropout_files_and_loader_on_another_device(rng, device, tmp_path):
    """The same numbers as on the CPU: losses with every option (on a GPU the ignored
    rows go through the mask, never the host check), dropout masks under one seed,
    td.save/td.load with the saved device and map_location, shuffled batches."""
    z = rng.standard_normal((16, 5))
    y = rng.integers(0, 5, 16)
    y[[2, 7]] = -100
    probabilities = np.exp(log_softmax_rows(rng.standard_normal((16, 5))))
    w = rng.random(5) + 0.5
    for kwargs in ({}, {"weight": w}, {"label_smoothing": 0.1}, {"weight": w, "ignore_index": 3}):
        classes = y if "ignore_index" not in kwargs else np.where(y < 0, 3, y)  # rows 2 and 7 stay ignored
        for target in (classes, probabilities) if "ignore_index" not in kwargs else (classes,):
            on_cpu = grad_of(lambda a: F.cross_entropy(a, target, **kwargs), z)
            logits = td.tensor(z, device=device, requires_grad=True)
            loss = F.cross_entropy(logits, td.tensor(target, device=device), **kwargs)
            loss.backward()
            assert loss.device == logits.grad.device == td.tensor(0, device=device).device
            assert rel_error(loss.numpy(), on_cpu[0]) < 1e-12 and rel_error(logits.grad.numpy(), on_cpu[1][0]) < 1e-12
    bits = (probabilities > 0.2).astype(np.float64)
    on_device = F.binary_cross_entropy_with_logits(td.tensor(z, device=device), bits, pos_weight=w, reduction="none")
    on_host = F.binary_cross_entropy_with_logits(td.tensor(z), bits, pos_weight=w, reduction="none")
    assert rel_error(on_device.numpy(), on_host.numpy()) < 1e-12

    td.manual_seed(1)
    masked = F.dropout(td.ones(200, device=device), 0.4).numpy()
    td.manual_seed(1)
    np.testing.assert_array_equal(masked, F.dropout(td.ones(200), 0.4).numpy())

    state = {"w": td.tensor(z, device=device, requires_grad=True)}
    td.save(state, tmp_path / "state.npz")
    saved_on = state["w"].device
    assert td.load(tmp_path / "state.npz")["w"].device == saved_on
    for map_location in ("cpu", {saved_on: "cpu"}):
        back = td.load(tmp_path / "state.npz", map_location=map_location)["w"]
        assert back.device == "cpu" and back.requires_grad
        np.testing.assert_array_equal(back.numpy(), z)

    orders = []
    for where in (device, "cpu"):
        td.manual_seed(8)
        loader = td.data.DataLoader(td.data.TensorDataset(z, np.arange(16), device=where), batch_size=5, shuffle=True)
        orders.append(np.concatenate([yb.numpy() for _, yb in loader]))
    np.testing.assert_array_equal(*orders)


# ----------------------------------------------------------------- argument order

# PyTorch 2.13's positional parameters (checked against the installed PyTorch below).
PYTORCH_POSITIONAL = {
    "Linear": ["in_features", "out_features", "bias", "device", "dtype"],
    "Dropout": ["p", "inplace"], "Softmax": ["dim"], "LogSoftmax": ["dim"], "Flatten": ["start_dim", "end_dim"],
    "ReLU": ["inplace"], "MSELoss": ["size_average", "reduce", "reduction"],
    "L1Loss": ["size_average", "reduce", "reduction"],
    "CrossEntropyLoss": ["weight", "size_average", "ignore_index", "reduce", "reduction", "label_smoothing"],
    "NLLLoss": ["weight", "size_average", "ignore_index", "reduce", "reduction"],
    "BCEWithLogitsLoss": ["weight", "size_average", "reduce", "reduction", "pos_weight"],
    "ModuleList": ["modules"], "ModuleDict": ["modules"],
    "functional.cross_entropy": ["input", "target", "weight", "size_average", "ignore_index", "reduce", "reduction",
                                 "label_smoothing"],
    "functional.nll_loss": ["input", "target", "weight", "size_average", "ignore_index", "reduce", "reduction"],
    "functional.mse_loss": ["input", "target", "size_average", "reduce", "reduction", "weight"],
    "functional.l1_loss": ["input", "target", "size_average", "reduce", "reduction", "weight"],
    "functional.binary_cross_entropy_with_logits": ["input", "target", "weight", "size_average", "reduce",
                                                    "reduction", "pos_weight"],
    "functional.dropout": ["input", "p", "training", "inplace"], "functional.relu": ["input", "inplace"],
    "functional.softmax": ["input", "dim", "_stacklevel", "dtype"],
    "functional.log_softmax": ["input", "dim", "_stacklevel", "dtype"],
    "Module.state_dict": [], "Module.load_state_dict": ["state_dict", "strict", "assign"],
    "Module.named_parameters": ["prefix", "recurse", "remove_duplicate"],
    "Module.named_modules": ["memo", "prefix", "remove_duplicate"], "Module.apply": ["fn"],
    "Module.requires_grad_": ["requires_grad"], "Module.zero_grad": ["set_to_none"], "Module.train": ["mode"],
    "utils.clip_grad_norm_": ["parameters", "max_norm", "norm_type", "error_if_nonfinite", "foreach"],
    "init.uniform_": ["tensor", "a", "b", "generator"],
    "init.kaiming_uniform_": ["tensor", "a", "mode", "nonlinearity", "generator"],
}


def positional(fn):
    import inspect

    return [n for n, p in inspect.signature(fn).parameters.items()
            if p.kind == p.POSITIONAL_OR_KEYWORD and n != "self"]


def resolve(root, path):
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj.__init__ if isinstance(obj, type) else obj


@pytest.mark.parametrize("path", sorted(PYTORCH_POSITIONAL))
def test_positional_arguments_are_in_pytorchs_order(path):
    # One list is a prefix of the other: PyTorch's trailing parameters we lack (foreach,
    # assign, softmax's internal _stacklevel) or our trailing extras (generator=) never
    # shift a PyTorch call's positional arguments.
    ours, theirs = positional(resolve(nn, path)), PYTORCH_POSITIONAL[path]
    shorter = min(len(ours), len(theirs))
    assert ours[:shorter] == theirs[:shorter] and bool(ours) == bool(theirs), (ours, theirs)
    if torch is not None:
        assert positional(resolve(torch.nn, path)) == theirs


def test_dataloader_keeps_pytorchs_first_three_positional_arguments():
    from tinygrad_dot.data import DataLoader

    assert positional(DataLoader.__init__) == ["dataset", "batch_size", "shuffle"]  # the rest keyword-only
    if torch is not None:
        assert positional(torch.utils.data.DataLoader.__init__)[:3] == positional(DataLoader.__init__)
