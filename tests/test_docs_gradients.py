"""Every formula in docs/gradients.md, written out in NumPy and compared with
the tape (``loss.backward()``). Test names carry the formula tags (G1..G16);
the last test checks that no tag in the doc is left without a test."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import tinygrad_dot as td
from tinygrad_dot.autograd import record

DOC = Path(__file__).resolve().parents[1] / "docs" / "gradients.md"
N, D, K = 7, 4, 3


@pytest.fixture
def batch(rng):
    X = rng.standard_normal((N, D))
    W = rng.standard_normal((K, D))
    b = rng.standard_normal(K)
    return X, W, b


def _params(W, b):
    return td.tensor(W, requires_grad=True), td.tensor(b, requires_grad=True)


def _mse(X, Y, W, b):
    """(G2): squared error summed over outputs, averaged over the batch."""
    Y_hat = td.tensor(X) @ W.T + b
    return ((Y_hat - td.tensor(Y)) ** 2).sum() / X.shape[0]


def test_G1_forward_is_one_dot_product_per_output(batch):
    X, W, b = batch
    Y_hat = (td.tensor(X) @ td.tensor(W).T + td.tensor(b)).numpy()
    assert Y_hat.shape == (N, K)
    for i in range(N):
        np.testing.assert_allclose(Y_hat[i], W @ X[i] + b, rtol=1e-12)
        np.testing.assert_allclose(Y_hat[i, 1], np.dot(W[1], X[i]) + b[1], rtol=1e-12)


def test_G2_G3_mse_value_and_error_signal(batch, rng):
    X, W, b = batch
    Y = rng.standard_normal((N, K))
    Y_hat = X @ W.T + b
    L = _mse(X, Y, *map(td.tensor, (W, b)))
    np.testing.assert_allclose(L.item(), np.sum((Y_hat - Y) ** 2) / N, rtol=1e-12)
    # (G3): the gradient with respect to the predictions.
    Y_hat_t = td.tensor(Y_hat, requires_grad=True)
    (((Y_hat_t - td.tensor(Y)) ** 2).sum() / N).backward()
    np.testing.assert_allclose(Y_hat_t.grad.numpy(), (2 / N) * (Y_hat - Y), rtol=1e-12)


def test_G2_note_mean_over_all_entries_divides_by_k(batch, rng):
    X, W, b = batch
    Y = rng.standard_normal((N, K))
    Wt, bt = _params(W, b)
    ((td.tensor(X) @ Wt.T + bt - td.tensor(Y)) ** 2).mean().backward()
    E = (2 / N) * (X @ W.T + b - Y)
    np.testing.assert_allclose(Wt.grad.numpy(), E.T @ X / K, rtol=1e-10)


def test_G4_G5_G6_mse_weight_gradient_is_sum_of_outer_products(batch, rng):
    X, W, b = batch
    Y = rng.standard_normal((N, K))
    Wt, bt = _params(W, b)
    Xt = td.tensor(X, requires_grad=True)
    _mse(Xt.detach(), Y, Wt, bt).backward()
    E = (2 / N) * (X @ W.T + b - Y)
    outer_sum = sum(np.outer(E[i], X[i]) for i in range(N))  # (G4) as written: sum of e_i x_i^T
    assert Wt.grad.shape == W.shape == outer_sum.shape == (K, D)
    np.testing.assert_allclose(Wt.grad.numpy(), outer_sum, rtol=1e-10)
    np.testing.assert_allclose(Wt.grad.numpy(), E.T @ X, rtol=1e-10)  # the same as one GEMM
    np.testing.assert_allclose(bt.grad.numpy(), (2 / N) * (X @ W.T + b - Y).sum(axis=0), rtol=1e-10)  # (G5)
    # (G6): gradient into the inputs.
    (((Xt @ td.tensor(W).T + td.tensor(b) - td.tensor(Y)) ** 2).sum() / N).backward()
    np.testing.assert_allclose(Xt.grad.numpy(), E @ W, rtol=1e-10)


def test_G7_scalar_xT_error_is_wrong_shape_and_only_a_trace(rng):
    # Square W (d == k) is the only case where x^T (y - y_hat) is even defined.
    d = k = 3
    X, Y = rng.standard_normal((N, d)), rng.standard_normal((N, k))
    W, b = rng.standard_normal((k, d)), rng.standard_normal(k)
    Wt, bt = _params(W, b)
    _mse(X, Y, Wt, bt).backward()
    Y_hat = X @ W.T + b
    scalar = sum(np.dot(X[i], Y[i] - Y_hat[i]) for i in range(N))
    assert np.ndim(scalar) == 0 and Wt.grad.shape == (k, d)  # one number cannot update k*d weights
    true = Wt.grad.numpy()
    np.testing.assert_allclose(scalar, -(N / 2) * np.trace(true), rtol=1e-10)
    # It only sees the diagonal: the true gradient's off-diagonal entries are real signal it drops.
    assert np.abs(true - np.diag(np.diag(true))).max() > 1e-3
    # With a non-square W it is not defined at all.
    with pytest.raises(ValueError):
        np.dot(rng.standard_normal(D), rng.standard_normal(K))


def test_G7_batch_form_with_one_output_contracts_over_samples(rng):
    X, y = rng.standard_normal((N, D)), rng.standard_normal((N, 1))
    w, b = rng.standard_normal((1, D)), rng.standard_normal(1)
    wt, bt = _params(w, b)
    _mse(X, y, wt, bt).backward()
    y_hat = X @ w.T + b
    over_samples = X.T @ (y - y_hat)  # (d, 1): one entry per feature
    assert over_samples.shape == (D, 1)
    np.testing.assert_allclose(over_samples.ravel(), -(N / 2) * wt.grad.numpy().ravel(), rtol=1e-10)


def test_G8_G9_G10_softmax_cross_entropy(batch, rng):
    X, W, b = batch
    labels = rng.integers(0, K, N)
    onehot = np.eye(K)[labels]
    Wt, bt = _params(W, b)
    Z = td.tensor(X) @ Wt.T + bt
    L = (td.logsumexp(Z, axis=1) - (Z * td.tensor(onehot)).sum(axis=1)).mean()
    L.backward()
    z = X @ W.T + b
    P = np.exp(z - z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(L.item(), -np.mean(np.log(P[np.arange(N), labels])), rtol=1e-12)  # (G8)
    G = (P - onehot) / N  # (G9)
    np.testing.assert_allclose(G.sum(axis=1), 0, atol=1e-15)
    np.testing.assert_allclose(Wt.grad.numpy(), G.T @ X, rtol=1e-10)  # (G10)
    np.testing.assert_allclose(bt.grad.numpy(), G.sum(axis=0), rtol=1e-10)
    # (G9) directly on the logits, and (G8) stays finite for logits of 1e3.
    z_t = td.tensor(1e3 * z, requires_grad=True)
    (td.logsumexp(z_t, axis=1) - (z_t * td.tensor(onehot)).sum(axis=1)).mean().backward()
    P_big = np.exp(1e3 * z - (1e3 * z).max(axis=1, keepdims=True))
    P_big /= P_big.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(z_t.grad.numpy(), (P_big - onehot) / N, atol=1e-12)


def test_G11_G12_sigmoid_binary_cross_entropy(rng):
    X = rng.standard_normal((N, D))
    w, b = rng.standard_normal(D), rng.standard_normal(1)
    y = rng.integers(0, 2, N).astype(np.float64)
    wt, bt = td.tensor(w, requires_grad=True), td.tensor(b, requires_grad=True)
    s = (td.tensor(X) @ wt + bt).sigmoid()
    yt = td.tensor(y)
    L = -(yt * s.log() + (1 - yt) * (1 - s).log()).mean()
    L.backward()
    sig = 1 / (1 + np.exp(-(X @ w + b)))
    np.testing.assert_allclose(L.item(), -np.mean(y * np.log(sig) + (1 - y) * np.log(1 - sig)), rtol=1e-12)
    err = (sig - y) / N
    np.testing.assert_allclose(wt.grad.numpy(), X.T @ err, rtol=1e-10)
    np.testing.assert_allclose(bt.grad.numpy(), [err.sum()], rtol=1e-10)
    # Softmax over [0, z] with k = 2 is the same model.
    z = X @ w + b
    two = np.stack([np.zeros(N), z], axis=1)
    np.testing.assert_allclose(np.exp(two[:, 1]) / np.exp(two).sum(axis=1), sig, rtol=1e-12)


@pytest.mark.parametrize("bias_shape, summed", [
    ((K,), lambda G: G.sum(axis=0)),
    ((1, K), lambda G: G.sum(axis=0, keepdims=True)),
    ((1,), lambda G: G.sum().reshape(1)),
    ((N, 1), lambda G: G.sum(axis=1, keepdims=True)),
])
def test_G13_broadcast_gradient_is_summed_back(rng, bias_shape, summed):
    A, G = rng.standard_normal((N, K)), rng.standard_normal((N, K))
    bias = td.tensor(rng.standard_normal(bias_shape), requires_grad=True)
    # L = sum(G * (A + b)), so dL/d(A + b) = G and dL/db sums G over the broadcast axes.
    (td.tensor(G) * (td.tensor(A) + bias)).sum().backward()
    assert bias.grad.shape == bias_shape
    np.testing.assert_allclose(bias.grad.numpy(), summed(G), rtol=1e-12)


def test_G14_gradcheck_passes_on_each_loss(rng):
    X = td.tensor(rng.standard_normal((5, 3)))
    Y = td.tensor(rng.standard_normal((5, 2)))
    onehot = td.tensor(np.eye(2)[rng.integers(0, 2, 5)])
    W = td.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = td.tensor(rng.standard_normal(2), requires_grad=True)
    assert td.gradcheck(lambda W, b: _mse(X, Y, W, b), (W, b))
    assert td.gradcheck(lambda W, b: (td.logsumexp(X @ W.T + b, axis=1)
                                      - ((X @ W.T + b) * onehot).sum(axis=1)).mean(), (W, b))
    y01 = td.tensor(rng.integers(0, 2, 5).astype(np.float64))
    assert td.gradcheck(lambda W, b: (-(y01 * (X @ W[0] + b[0]).sigmoid().log()
                                        + (1 - y01) * (1 - (X @ W[0] + b[0]).sigmoid()).log())).mean(), (W, b))


def test_G14_central_difference_formula_and_gradcheck_catches_a_wrong_backward(rng):
    theta = rng.standard_normal(4)
    f = lambda v: np.sum(np.sin(v) * v)  # noqa: E731
    eps = 1e-6
    numeric = np.array([(f(theta + eps * e) - f(theta - eps * e)) / (2 * eps) for e in np.eye(4)])
    np.testing.assert_allclose(numeric, np.cos(theta) * theta + np.sin(theta), rtol=1e-8)

    def wrong_square(x):  # forward x**2, backward g*x instead of 2*g*x
        return record(td.Tensor, x.array ** 2, x._backend, (x, lambda g: g * x.array)).sum()

    x = td.tensor(rng.standard_normal(3) + 2.0, requires_grad=True)
    with pytest.raises(td.GradcheckError, match="input 0"):
        td.gradcheck(wrong_square, (x,))


def test_G15_weighted_ignored_smoothed_cross_entropy(rng):
    from tinygrad_dot.nn import functional as F

    z = rng.standard_normal((N, K))
    labels = rng.integers(0, K, N)
    labels[[1, 4]] = -100  # two ignored rows
    w, eps = rng.random(K) + 0.5, 0.2
    counted = labels != -100
    c = np.where(counted, labels, 0)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    a = (1 - eps) * w[c]
    per = a * -log_p[np.arange(N), c] + (eps / K) * -(log_p * w).sum(axis=1)
    total = w[c][counted].sum()
    zt = td.tensor(z, requires_grad=True)
    L = F.cross_entropy(zt, labels, weight=w, label_smoothing=eps)
    L.backward()
    np.testing.assert_allclose(L.item(), per[counted].sum() / total, rtol=1e-12)
    grad = (a + eps / K * w.sum())[:, None] * p - a[:, None] * np.eye(K)[c] - eps / K * w
    np.testing.assert_allclose(zt.grad.numpy(), np.where(counted[:, None], grad, 0) / total, rtol=1e-10, atol=1e-15)


def test_G16_positive_weighted_binary_cross_entropy(rng):
    from tinygrad_dot.nn import functional as F

    z, y = rng.standard_normal((N, K)) * 3, rng.random((N, K))
    q, v = rng.random(K) * 4, rng.random((N, 1))
    softplus = np.logaddexp(0, z)
    sigma = 1 / (1 + np.exp(-z))
    zt, yt = td.tensor(z, requires_grad=True), td.tensor(y, requires_grad=True)
    F.binary_cross_entropy_with_logits(zt, yt, weight=v, pos_weight=q, reduction="sum").backward()
    loss = F.binary_cross_entropy_with_logits(td.tensor(z), y, weight=v, pos_weight=q, reduction="none").numpy()
    np.testing.assert_allclose(loss, v * (q * y * (softplus - z) + (1 - y) * softplus), rtol=1e-12)
    np.testing.assert_allclose(loss, v * ((1 + (q - 1) * y) * softplus - q * y * z), rtol=1e-12)
    np.testing.assert_allclose(zt.grad.numpy(), v * ((1 + (q - 1) * y) * sigma - q * y), rtol=1e-10)
    np.testing.assert_allclose(yt.grad.numpy(), v * ((q - 1) * softplus - q * z), rtol=1e-10)


def test_every_formula_tag_in_the_doc_has_a_test():
    tags = set(re.findall(r"\*\*\((G\d+)\)\*\*", DOC.read_text()))
    assert tags == {f"G{i}" for i in range(1, 17)}
    tested = set(re.findall(r"_(G\d+)", Path(__file__).read_text()))
    assert tags <= tested, f"formulas without a test: {sorted(tags - tested)}"
