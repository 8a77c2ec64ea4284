"""Numerics (issue 10): cross_entropy with non-finite and extreme logits, float16
reductions that accumulate in float32, losses of integer inputs, and PyTorch's
type promotion (README, "dtype promotion")."""
import numpy as np
import pytest

import tinygrad_dot as td
from tinygrad_dot.nn import functional as F


def _torch():
    """PyTorch where installed (the reference), else None: the tests then check hand-computed values."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def _log_softmax_loss(z, y):
    """-log softmax(z)[y] per row, in float64 (the hand-computed reference)."""
    z = np.asarray(z, np.float64)
    peak = z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z - peak).sum(axis=1)) + peak[:, 0]
    return lse - z[np.arange(len(y)), y]


# ----------------------------------------------------------------- cross_entropy


NAN, INF = float("nan"), float("inf")


def test_a_nan_or_inf_logit_poisons_only_its_own_sample():
    """It used to make every sample of the batch NaN (the global max shift was NaN or inf)."""
    z = np.array([[INF, 0.0, 1.0], [1.0, 2.0, 3.0], [0.0, NAN, 1.0], [-INF, 0.0, 1.0], [0.5, -0.5, 0.0]],
                 np.float32)
    y = np.array([1, 0, 0, 0, 2])
    logits = td.tensor(z, requires_grad=True)
    loss = F.cross_entropy(logits, y, reduction="none")
    got = loss.numpy()
    assert np.isnan(got[0]) and np.isnan(got[2]) and got[3] == INF  # -inf is the target's logit: PyTorch's inf
    np.testing.assert_allclose(got[[1, 4]], _log_softmax_loss(z[[1, 4]], y[[1, 4]]), rtol=1e-6)
    torch = _torch()
    if torch is not None:
        expected = torch.nn.functional.cross_entropy(torch.tensor(z), torch.tensor(y), reduction="none").numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    loss.sum().backward()
    assert np.isfinite(logits.grad.numpy()[[1, 4]]).all()
    assert np.isnan(logits.grad.numpy()[[0, 2]]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_stable_for_huge_logits_and_rows_far_below_the_batch_maximum(dtype):
    z = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4 - 2.0], [-1e4, -1e4 + 1.0, -1e4 + 3.0], [-3e4, -3e4, -3e4]],
                 dtype)
    y = np.array([0, 2, 1, 1])
    logits = td.tensor(z, requires_grad=True)
    loss = F.cross_entropy(logits, y, reduction="none")
    expected = _log_softmax_loss(z, y)  # [0, 2 + log(1 + e^-2), 2 + log(1 + e^-2 + e^-3)... , log 3]
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5, atol=1e-6)
    F.cross_entropy(logits, y).backward()
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(4), y] -= 1
    np.testing.assert_allclose(logits.grad.numpy(), p / 4, rtol=1e-5, atol=1e-7)


def test_cross_entropy_of_float16_logits_computes_in_float32():
    rng = np.random.default_rng(0)
    z = (rng.standard_normal((64, 5)) * 4).astype(np.float16)
    y = rng.integers(0, 5, 64)
    logits = td.tensor(z, requires_grad=True)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    assert loss.dtype == np.float16 and logits.grad.dtype == np.float16
    assert loss.item() == pytest.approx(_log_softmax_loss(z, y).mean(), rel=1e-3)


# ----------------------------------------------------------------- float16 reductions


def test_the_mean_of_100000_float16_ones_is_one():
    """The float16 sum overflowed to inf before the division."""
    x = td.ones(100_000, dtype=td.float16)
    m = x.mean()
    assert m.dtype == np.float16 and m.item() == 1.0
    assert x.reshape(1000, 100).mean(axis=0).numpy().tolist() == [1.0] * 100


def test_float16_sum_accumulates_in_float32():
    x = td.tensor(np.array([2048.0] + [1.0] * 1000, np.float16))
    s = x.sum()
    assert s.dtype == np.float16 and s.item() == 3048.0


def test_float16_var_accumulates_in_float32():
    values = np.linspace(1000, 1001, 999).astype(np.float16)
    v = td.tensor(values).var()
    expected = np.var(values.astype(np.float64), ddof=1)
    assert v.dtype == np.float16 and v.item() == pytest.approx(expected, rel=2e-3)
    torch = _torch()
    if torch is not None:
        assert v.item() == torch.tensor(values).var().item()


def test_var_matches_pytorch_and_numpy_with_its_gradient(rng):
    x = td.tensor(rng.standard_normal((4, 5)), dtype=td.float64, requires_grad=True)
    np.testing.assert_allclose(x.var(axis=1).numpy(), np.var(x.numpy(), axis=1, ddof=1))
    np.testing.assert_allclose(x.var(dim=0, keepdim=True, correction=0).numpy(),
                               np.var(x.numpy(), axis=0, keepdims=True))
    assert td.gradcheck(lambda t: t.var(axis=0), [x])
    assert td.gradcheck(lambda t: t.var(), [x])
    assert np.isnan(td.tensor([1.0]).var().item())  # n - correction = 0: NaN, as PyTorch


def test_float16_softmax_and_logsumexp_accumulate_in_float32():
    """Over 100,000 zeros the float16 sum of exponentials was inf: softmax 0, logsumexp inf."""
    x = td.zeros(100_000, dtype=td.float16, requires_grad=True)
    s = td.softmax(x, dim=0)
    assert s.dtype == np.float16
    np.testing.assert_allclose(s.numpy()[:3].astype(np.float64), 1e-5, rtol=2e-3)
    lse = td.logsumexp(x, axis=0)
    assert lse.dtype == np.float16 and lse.item() == pytest.approx(np.log(1e5), rel=1e-3)
    ls = td.log_softmax(x, dim=0)
    assert ls.dtype == np.float16 and ls.numpy()[0] == pytest.approx(-np.log(1e5), rel=1e-3)
    lse.backward()
    assert x.grad.dtype == np.float16
    np.testing.assert_allclose(x.grad.numpy()[:3].astype(np.float64), 1e-5, rtol=2e-3)


@pytest.mark.parametrize("loss", ["mse_loss", "l1_loss"])
def test_float16_losses_accumulate_in_float32(loss):
    """1000 squared errors of 40000 overflowed float16 (max 65504) when summed in float16."""
    value = {"mse_loss": 40000.0, "l1_loss": 200.0}[loss]
    x = td.full(1000, fill_value=200.0, dtype=td.float16, requires_grad=True)
    out = getattr(F, loss)(x, td.zeros(1000, dtype=td.float16))
    assert out.dtype == np.float16 and out.item() == value
    out.backward()
    assert x.grad.dtype == np.float16 and np.isfinite(x.grad.numpy()).all()


# ----------------------------------------------------------------- integer inputs of losses


@pytest.mark.parametrize("loss, expected", [("mse_loss", 2.5), ("l1_loss", 1.5),
                                            ("binary_cross_entropy_with_logits", None)])
def test_losses_of_integer_inputs_compute_in_float32(loss, expected):
    """mse_loss of int tensors was truncated to an integer (2 instead of 2.5)."""
    a, b = td.tensor([1, 2]), td.tensor([0, 0])
    out = getattr(F, loss)(a, b)
    assert out.dtype == np.float32
    if expected is None:  # log(1 + e^-|z|) + max(z, 0) for z = 1, 2
        expected = np.mean(np.log1p(np.exp(-np.array([1.0, 2.0]))) + np.array([1.0, 2.0]))
    assert out.item() == pytest.approx(expected, rel=1e-6)
    assert F.mse_loss(a, td.tensor([0.5, 0.5], dtype=td.float64)).dtype == np.float64  # promoted pair


def test_a_float_input_keeps_its_dtype_against_a_float64_target():
    x = td.tensor([1.0, 2.0], requires_grad=True)
    assert F.mse_loss(x, np.array([0.5, 0.25])).dtype == np.float32


# ----------------------------------------------------------------- type promotion

PROMOTIONS = [
    # (left, right, expected) with left/right as (numpy dtype, shape) or a Python scalar
    ((np.float32, (3,)), (np.int64, (3,)), np.float32),
    ((np.int64, (3,)), (np.float32, (3,)), np.float32),
    ((np.float16, (3,)), (np.int64, (3,)), np.float16),
    ((np.float32, (3,)), (np.bool_, (3,)), np.float32),
    ((np.float32, (3,)), (np.float64, ()), np.float32),
    ((np.float32, (3,)), (np.float64, (3,)), np.float64),
    ((np.int64, (3,)), (np.float64, ()), np.float64),
    ((np.int32, (3,)), (np.int64, ()), np.int32),
    ((np.uint8, (3,)), (np.int8, (3,)), np.int16),
    ((np.int32, (3,)), 2.5, np.float32),
    ((np.bool_, (3,)), 2, np.int64),
    ((np.float16, (3,)), 2.5, np.float16),
    ((np.int64, (3,)), 2, np.int64),
]


def _operand(spec, lib):
    if not isinstance(spec, tuple):
        return spec
    dtype, shape = spec
    data = np.ones(shape, dtype)
    return td.tensor(data) if lib == "td" else _torch().from_numpy(data)


@pytest.mark.parametrize("left, right, expected", PROMOTIONS, ids=str)
@pytest.mark.parametrize("op", ["add", "mul", "sub"])
def test_type_promotion_follows_pytorch(left, right, expected, op):
    if op == "sub" and any(isinstance(s, tuple) and s[0] is np.bool_ for s in (left, right)):
        pytest.skip("PyTorch does not subtract bools")
    fn = {"add": lambda a, b: a + b, "mul": lambda a, b: a * b, "sub": lambda a, b: a - b}[op]
    got = fn(_operand(left, "td"), _operand(right, "td"))
    assert got.dtype == np.dtype(expected)
    assert fn(_operand(right, "td"), _operand(left, "td")).dtype == np.dtype(expected)
    torch = _torch()
    if torch is not None:
        reference = fn(_operand(left, "torch"), _operand(right, "torch"))
        assert str(reference.dtype) == f"torch.{np.dtype(expected).name}"


def test_integer_true_division_and_mean_are_float32():
    a, b = td.tensor([1, 2, 3]), td.tensor([2, 2, 2])
    assert (a / b).dtype == np.float32 and (a / 2).dtype == np.float32
    np.testing.assert_allclose((a / b).numpy(), [0.5, 1.0, 1.5])
    assert a.mean().dtype == np.float32 and a.mean().item() == 2.0


def test_promotion_keeps_the_gradient_in_each_operands_dtype():
    w = td.tensor([1.0, 2.0], requires_grad=True)
    s = td.tensor(3.0, dtype=td.float64, requires_grad=True)
    out = w * s
    assert out.dtype == np.float32
    out.sum().backward()
    assert w.grad.dtype == np.float32 and s.grad.dtype == np.float64
    np.testing.assert_allclose(w.grad.numpy(), [3.0, 3.0])
    assert s.grad.item() == 3.0


def test_matmul_and_linear_refuse_mixed_float_dtypes_alike():
    """Products never promote silently (as in PyTorch): matmul used to return float64."""
    x32 = td.ones(2, 3)
    x64 = td.ones(2, 3, dtype=td.float64)
    w32 = td.ones(3, 4)
    with pytest.raises(TypeError, match=r"matmul: .*float64 \(shape \(2, 3\)\) and float32 \(shape \(3, 4\)\)"):
        x64 @ w32
    with pytest.raises(TypeError, match="matmul"):
        td.matmul(x32, td.ones(3, 4, dtype=td.int64))
    with pytest.raises(TypeError, match="linear: input is float64 but the weight is float32"):
        td.nn.Linear(3, 4)(x64)
    layer = td.nn.Linear(3, 4)
    layer.bias = td.nn.Parameter(td.zeros(4, dtype=td.float64))
    with pytest.raises(TypeError, match="the bias float64"):
        layer(x32)
    assert (x32 @ w32).dtype == np.float32 and (x64 @ w32.double()).dtype == np.float64
