"""td.nn: modules, initialisers, fused losses (values against NumPy formulas,
gradients through gradcheck) and clip_grad_norm_."""
import math

import numpy as np
import pytest

import tinygrad_dot as td
import tinygrad_dot.nn as nn
from tinygrad_dot.nn import functional as F

REDUCTIONS = ["mean", "sum", "none"]


def reduce(per, reduction):
    return per.mean() if reduction == "mean" else per.sum() if reduction == "sum" else per


def f64(rng, *shape):
    return td.tensor(rng.standard_normal(shape), requires_grad=True)


# ----------------------------------------------------------------- Linear and Module


def test_linear_shapes_and_pytorch_default_init(rng):
    layer = nn.Linear(400, 30, generator=rng)
    assert layer.weight.shape == (30, 400) and layer.bias.shape == (30,)
    assert layer.weight.dtype == np.float32 and layer.weight.requires_grad
    bound = 1 / math.sqrt(400)  # kaiming_uniform(a=sqrt(5)) on fan_in=400
    w = layer.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(layer.bias.numpy()).max() <= bound
    # Uniform on [-bound, bound]: mean 0, variance bound^2 / 3 (12000 samples).
    assert abs(w.mean()) < 0.05 * bound
    assert abs(w.var() / (bound ** 2 / 3) - 1) < 0.05


def test_linear_forward_matches_numpy_and_gradcheck(rng):
    layer = nn.Linear(5, 3, dtype="float64", generator=rng)
    x = rng.standard_normal((7, 5))
    expected = x @ layer.weight.numpy().T + layer.bias.numpy()
    np.testing.assert_allclose(layer(td.tensor(x)).numpy(), expected, rtol=1e-12)
    assert td.gradcheck(lambda x, w, b: F.linear(x, w, b), [f64(rng, 7, 5), f64(rng, 3, 5), f64(rng, 3)])


@pytest.mark.parametrize("shape", [(5,), (2, 4, 5)])
def test_linear_other_input_ranks_gradcheck(rng, shape):
    out = F.linear(td.tensor(rng.standard_normal(shape)), f64(rng, 3, 5), f64(rng, 3))
    assert out.shape == shape[:-1] + (3,)
    assert td.gradcheck(lambda x, w, b: F.linear(x, w, b), [f64(rng, *shape), f64(rng, 3, 5), f64(rng, 3)])
    assert td.gradcheck(lambda x, w: F.linear(x, w), [f64(rng, *shape), f64(rng, 3, 5)])


def test_linear_rejects_mismatched_features():
    with pytest.raises(ValueError, match="in_features=4"):
        nn.Linear(4, 2)(td.zeros(3, 5))


def test_module_registry_state_dict_and_zero_grad(rng):
    model = nn.Sequential(nn.Linear(4, 8, generator=rng), nn.ReLU(), nn.Linear(8, 2, bias=False, generator=rng))
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight"]
    assert len(list(model.parameters())) == 3 and len(model) == 3 and isinstance(model[1], nn.ReLU)
    F.mse_loss(model(td.tensor(rng.standard_normal((6, 4)), dtype="float32")),
               td.zeros(6, 2)).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=False)
    assert all(not p.grad.numpy().any() for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())

    state = model.state_dict()
    clone = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2, bias=False))
    clone.load_state_dict(state)
    for (name, a), (_, b) in zip(model.named_parameters(), clone.named_parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    assert clone[0].weight.array is not model[0].weight.array  # copied, not shared


def test_load_state_dict_reports_every_problem_and_copies_nothing(rng):
    model = nn.Linear(3, 2, generator=rng)
    before = model.weight.numpy()
    bad = {"weight": np.zeros((3, 3)), "extra": np.zeros(1)}
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(bad)
    message = str(info.value)
    assert "missing keys: ['bias']" in message and "unexpected keys: ['extra']" in message
    assert "size mismatch for 'weight'" in message and "(3, 3)" in message and "(2, 3)" in message
    np.testing.assert_array_equal(model.weight.numpy(), before)
    result = model.load_state_dict({"weight": np.ones((2, 3))}, strict=False)
    assert result["missing_keys"] == ["bias"] and (model.weight.numpy() == 1).all()


def test_module_to_dtype_train_eval_and_custom_module(rng):
    class TwoLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.first = nn.Linear(3, 4, generator=rng)
            self.second = nn.Linear(4, 1, generator=rng)
            self.scale = nn.Parameter(np.ones(1, np.float32))

        def forward(self, x):
            return self.second(self.first(x).relu()) * self.scale

    model = TwoLayer()
    assert [n for n, _ in model.named_parameters()] == ["scale", "first.weight", "first.bias", "second.weight",
                                                        "second.bias"]
    model.to(td.float64)
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model(td.tensor(rng.standard_normal((2, 3)))).dtype == np.float64
    assert model.eval() is model and not model.first.training
    assert model.train().second.training
    with pytest.raises(TypeError, match="parameter 'scale'"):
        model.scale = np.ones(1)
    with pytest.raises(AttributeError, match="super"):
        class Forgot(nn.Module):
            def __init__(self):
                self.w = nn.Parameter(np.ones(1))
        Forgot()


# ----------------------------------------------------------------- init


def test_init_functions_are_in_place_seeded_and_use_pytorch_bounds(rng):
    w = td.zeros(50, 200)
    same = nn.init.xavier_uniform_(w, seed=3)
    assert same is w
    bound = math.sqrt(6 / (200 + 50))
    assert np.abs(w.numpy()).max() <= bound and np.abs(w.numpy()).max() > 0.95 * bound
    again = nn.init.xavier_uniform_(td.zeros(50, 200), seed=3)
    np.testing.assert_array_equal(w.numpy(), again.numpy())

    nn.init.kaiming_uniform_(w, a=0, generator=rng)  # relu-style gain sqrt(2): bound sqrt(6 / fan_in)
    assert np.abs(w.numpy()).max() <= math.sqrt(6 / 200)
    nn.init.normal_(w, mean=2.0, std=0.5, generator=rng)
    assert abs(w.numpy().mean() - 2.0) < 0.02 and abs(w.numpy().std() - 0.5) < 0.02
    nn.init.zeros_(w)
    assert not w.numpy().any() and w.dtype == np.float32
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        nn.init.xavier_uniform_(td.zeros(3))


# ----------------------------------------------------------------- losses: values


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses_match_numpy(rng, reduction):
    a, b = rng.standard_normal((2, 6, 3))
    np.testing.assert_allclose(F.mse_loss(td.tensor(a), td.tensor(b), reduction=reduction).numpy(),
                               reduce((a - b) ** 2, reduction), rtol=1e-12)
    np.testing.assert_allclose(F.l1_loss(td.tensor(a), b, reduction=reduction).numpy(),
                               reduce(np.abs(a - b), reduction), rtol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits_matches_formula(rng, reduction):
    z = rng.standard_normal((5, 2)) * 4
    y = rng.integers(0, 2, (5, 2)).astype(np.float64)
    p = 1 / (1 + np.exp(-z))
    expected = reduce(-(y * np.log(p) + (1 - y) * np.log(1 - p)), reduction)
    np.testing.assert_allclose(F.binary_cross_entropy_with_logits(td.tensor(z), y, reduction=reduction).numpy(),
                               expected, rtol=1e-10)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_matches_formula(rng, reduction):
    z = rng.standard_normal((9, 4)) * 3
    y = rng.integers(0, 4, 9)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    expected = reduce(-log_p[np.arange(9), y], reduction)
    for target in (y, td.tensor(y), y.astype(np.int32)):
        np.testing.assert_allclose(F.cross_entropy(td.tensor(z), target, reduction=reduction).numpy(), expected,
                                   rtol=1e-12)


def test_large_logits_stay_finite():
    z = td.tensor([[1000.0, 0.0, -1000.0], [-1000.0, 1000.0, 999.0], [1e3, 1e3, 1e3]], requires_grad=True)
    loss = F.cross_entropy(z, np.array([0, 2, 1]), reduction="none")
    np.testing.assert_allclose(loss.numpy(), [0.0, 1.0 + np.log1p(np.exp(-1.0)), np.log(3)], rtol=1e-5)
    loss.sum().backward()
    assert np.isfinite(z.grad.numpy()).all()
    big = F.binary_cross_entropy_with_logits(td.tensor([1e3, -1e3]), td.tensor([0.0, 1.0]), reduction="none")
    np.testing.assert_allclose(big.numpy(), [1e3, 1e3])
    np.testing.assert_allclose(F.log_softmax(td.tensor([[1e3, 0.0]]), dim=1).numpy(), [[0.0, -1e3]])


def test_cross_entropy_rows_far_apart_keep_full_precision():
    # Row maxima 1e4 apart: a single global shift would underflow the second row.
    z = np.array([[1e4, 1e4 - 1.0], [0.0, -1.0]], np.float32)
    loss = F.cross_entropy(td.tensor(z), np.array([1, 1]), reduction="none").numpy()
    np.testing.assert_allclose(loss, [1 + np.log1p(np.exp(-1.0))] * 2, rtol=1e-6)


def test_softmax_and_log_softmax_match_numpy(rng):
    z = rng.standard_normal((3, 5))
    e = np.exp(z - z.max(axis=0))
    np.testing.assert_allclose(F.softmax(td.tensor(z), dim=0).numpy(), e / e.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(F.log_softmax(td.tensor(z), dim=1).numpy(),
                               z - np.log(np.exp(z).sum(axis=1, keepdims=True)), rtol=1e-12)


# ----------------------------------------------------------------- losses: gradients


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_loss_gradients_gradcheck(rng, reduction):
    y_class = rng.integers(0, 4, 6)
    y_bits = rng.integers(0, 2, (6, 4)).astype(np.float64)
    # l1 is not differentiable at 0: inputs are kept apart from the targets.
    far = td.tensor(rng.standard_normal((6, 4)) + np.where(rng.random((6, 4)) > 0.5, 2.0, -2.0))
    checks = [
        (lambda a, b: F.mse_loss(a, b, reduction=reduction), [f64(rng, 6, 4), f64(rng, 6, 4)]),
        (lambda a, b: F.l1_loss(a, b, reduction=reduction), [f64(rng, 6, 4), far.detach().requires_grad_()]),
        (lambda a: F.binary_cross_entropy_with_logits(a, y_bits, reduction=reduction), [f64(rng, 6, 4)]),
        (lambda a: F.cross_entropy(a, y_class, reduction=reduction), [f64(rng, 6, 4)]),
        (lambda a: F.softmax(a, dim=1), [f64(rng, 3, 4)]),
        (lambda a: F.log_softmax(a, dim=0), [f64(rng, 3, 4)]),
    ]
    for fn, inputs in checks:
        assert td.gradcheck(fn, inputs)


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n(rng):
    z = td.tensor(rng.standard_normal((8, 3)), requires_grad=True)
    y = rng.integers(0, 3, 8)
    F.cross_entropy(z, y).backward()
    p = np.exp(z.numpy()) / np.exp(z.numpy()).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(z.grad.numpy(), (p - np.eye(3)[y]) / 8, rtol=1e-12)


def test_losses_keep_float32(rng):
    z = td.tensor(rng.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    loss = F.cross_entropy(z, np.array([0, 1, 2, 0]))
    loss.backward()
    assert loss.dtype == np.float32 and z.grad.dtype == np.float32
    assert F.mse_loss(z, np.zeros((4, 3))).dtype == np.float32


def test_loss_input_errors_are_clear():
    z = td.zeros(4, 3)
    with pytest.raises(ValueError, match=r"\(4, 1\).*\(4,\)"):
        F.mse_loss(td.zeros(4, 1), td.zeros(4))
    with pytest.raises(TypeError, match="integer class indices"):
        F.cross_entropy(z, np.array([0.0, 1.0, 2.0, 0.0]))
    with pytest.raises(IndexError, match=r"\[0, 3\)"):
        F.cross_entropy(z, np.array([0, 1, 3, 0]))
    with pytest.raises(IndexError, match=r"\[0, 3\)"):
        F.cross_entropy(z, np.array([0, -1, 2, 0]))
    with pytest.raises(ValueError, match=r"expected \(4,\)"):
        F.cross_entropy(z, np.array([0, 1]))
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(z, z, reduction="avg")


# ----------------------------------------------------------------- clip_grad_norm_


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_clip_grad_norm_matches_formula(rng, norm_type):
    params = [td.tensor(rng.standard_normal(s), requires_grad=True) for s in ((3, 4), (5,))]
    grads = [rng.standard_normal(p.shape) * 10 for p in params]
    for p, g in zip(params, grads):
        p.grad = td.tensor(g.copy())
    flat = np.concatenate([g.ravel() for g in grads])
    total = np.abs(flat).max() if math.isinf(norm_type) else (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    returned = nn.utils.clip_grad_norm_(params, max_norm=1.0, norm_type=norm_type)
    np.testing.assert_allclose(returned.item(), total, rtol=1e-10)
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad.numpy(), g * (1.0 / (total + 1e-6)), rtol=1e-10)
    # Below the limit nothing changes.
    before = params[0].grad.numpy()
    nn.utils.clip_grad_norm_(params, max_norm=1e9)
    np.testing.assert_array_equal(params[0].grad.numpy(), before)


def test_against_torch_when_available(rng):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the NumPy references above still ran")
    z = rng.standard_normal((6, 5))
    y = rng.integers(0, 5, 6)
    ours = td.tensor(z, requires_grad=True)
    theirs = torch.tensor(z, requires_grad=True)
    F.cross_entropy(ours, y).backward()
    torch.nn.functional.cross_entropy(theirs, torch.from_numpy(y)).backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-10)
    t = rng.random((6, 5))
    a = td.tensor(z, requires_grad=True)
    b = torch.tensor(z, requires_grad=True)
    F.binary_cross_entropy_with_logits(a, t).backward()
    torch.nn.functional.binary_cross_entropy_with_logits(b, torch.from_numpy(t)).backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10)
