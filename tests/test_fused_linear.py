"""The fused training step of a linear model: F.linear_cross_entropy,
F.linear_binary_cross_entropy_with_logits and F.linear_mse_loss against the composed
ops (values and every gradient) on "cpu" and "emu" (where kernels/linear_skinny.cu's
loss epilogue and one-pass dW/db run), the kernels themselves against float64 on odd
shapes, bitwise determinism, bad input, and a CUDA graph capture of a fused step."""
import numpy as np
import pytest

import tinygrad_dot as td
from tinygrad_dot.backends import get_backend

from conftest import graphed_losses, max_rel_error

F = td.nn.functional
TOL = {np.float32: 3e-5, np.float64: 1e-12}
KERNEL_TOL = {np.float32: 2e-5, np.float64: 1e-12}
CASES = [  # (fused, composed, target kind)
    (F.linear_cross_entropy, F.cross_entropy, "labels"),
    (F.linear_cross_entropy, F.cross_entropy, "probabilities"),
    (F.linear_binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, "binary"),
    (F.linear_mse_loss, F.mse_loss, "values"),
]


def _target(kind, rng, lead, k, dtype):
    if kind == "labels":
        return rng.integers(0, k, lead)
    values = rng.random(lead + (k,)).astype(dtype)
    if kind == "probabilities":
        return values / values.sum(axis=-1, keepdims=True)
    return (values > 0.5).astype(dtype) if kind == "binary" else values * 4 - 2


def _run(loss_fn, device, X, W, b, target, reduction, compose=None):
    x = td.tensor(X, device=device, requires_grad=True)
    w = td.tensor(W, device=device, requires_grad=True)
    bias = None if b is None else td.tensor(b, device=device, requires_grad=True)
    t = td.tensor(target, device=device)
    if compose is F.cross_entropy:  # classes along the last dim: the composed loss takes them as rows
        k = W.shape[0]
        rows = t.reshape(-1) if t.ndim == X.ndim - 1 else t.reshape(-1, k)
        loss = compose(F.linear(x, w, bias).reshape(-1, k), rows, reduction=reduction)
        loss = loss.reshape(X.shape[:-1]) if reduction == "none" else loss
    elif compose:
        loss = compose(F.linear(x, w, bias), t, reduction=reduction)
    else:
        loss = loss_fn(x, w, t, bias, reduction=reduction)
    (loss.sum() if reduction == "none" else loss).backward()
    return [loss.numpy(), x.grad.numpy(), w.grad.numpy()] + ([] if b is None else [bias.grad.numpy()])


@pytest.mark.parametrize("device", ["cpu", "emu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("fused,composed,kind", CASES, ids=[c[2] for c in CASES])
def test_fused_equals_composed(device, dtype, fused, composed, kind):
    rng = np.random.default_rng(0)
    for lead, d, k, with_bias, reduction in (((97,), 37, 6, True, "mean"), ((5, 13), 9, 1, False, "sum"),
                                             ((33,), 70, 16, True, "none"), ((1,), 3, 3, True, "mean")):
        k = 2 if k == 1 and composed is F.cross_entropy else k  # (one class: a loss of exactly 0)
        X = rng.standard_normal(lead + (d,)).astype(dtype)
        W = (rng.standard_normal((k, d)) / np.sqrt(d)).astype(dtype)
        b = rng.standard_normal(k).astype(dtype) if with_bias else None
        target = _target(kind, rng, lead, k, dtype)
        got = _run(fused, device, X, W, b, target, reduction)
        want = _run(None, device, X, W, b, target, reduction, compose=composed)
        for name, g, w in zip(("loss", "dx", "dW", "db"), got, want):
            assert g.shape == w.shape and g.dtype == w.dtype, (name, g.shape, w.shape, g.dtype, w.dtype)
            assert max_rel_error(g, w) < TOL[dtype], (lead, d, k, reduction, name)


def test_on_emu_the_step_runs_our_kernels():
    """Two launches per step on emu: the loss epilogue forward, the one-pass dW and db
    backward (planned once each in the device's LinearDispatch)."""
    emu = get_backend("emu")
    emu.linear._calls.clear()
    rng = np.random.default_rng(1)
    _run(F.linear_cross_entropy, "emu", rng.standard_normal((50, 8)).astype(np.float32),
         rng.standard_normal((3, 8)).astype(np.float32), np.zeros(3, np.float32), rng.integers(0, 3, 50), "mean")
    assert sorted(key[0] for key in emu.linear._calls) == ["grad", "loss"]


def _reference(epilogue, Z, T, row_scale):
    """(losses, G) in float64 from SciPy's special functions, written apart from loss_rows (the
    host formulas the kernels share a contract with), so that a wrong formula in both fails."""
    from scipy.special import expit, log_expit, logsumexp, softmax

    if epilogue == "squared":
        losses, dz = ((Z - T) ** 2).sum(axis=1), 2 * (Z - T)
    elif epilogue == "sigmoid":  # -t log(sigmoid z) - (1 - t) log(1 - sigmoid z) = softplus(z) - t z
        losses, dz = (-T * log_expit(Z) - (1 - T) * log_expit(-Z)).sum(axis=1), expit(Z) - T
    else:  # -sum_j t_j log softmax(z)_j
        log_p = Z - logsumexp(Z, axis=1, keepdims=True)
        losses, dz = -(T * log_p).sum(axis=1), softmax(Z, axis=1) * T.sum(axis=1, keepdims=True) - T
    return losses, dz * row_scale[:, None]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("epilogue", ["squared", "sigmoid", "softmax"])
def test_the_kernels_against_float64(dtype, epilogue):
    """backend.linear (the kernels, outputs NaN-poisoned by emu) against SciPy in float64,
    on odd shapes, strided operands, weights and scale, dense targets and labels; dW and db
    against float64 and bitwise repeatable."""
    emu = get_backend("emu")
    rng = np.random.default_rng(2)
    # (d = 1100 and 300: more than one block of columns in skinny_tn_partial, whose blocks take
    # 256 DPT columns each, 256 to 1024)
    for n, d, k in ((1, 1, 1), (37, 33, 3), (131, 70, 10), (65, 5, 16), (300, 41, 7), (150, 1100, 3),
                    (70, 300, 16)):
        X = rng.standard_normal((n, d + 2)).astype(dtype)[:, 1:-1]          # row stride d + 2
        W = (rng.standard_normal((d, k)) / np.sqrt(d)).astype(dtype).T      # k x d read transposed
        b, weights = rng.standard_normal(k).astype(dtype), rng.random(n).astype(dtype)
        for labels in ((None, rng.integers(0, k, n)) if epilogue == "softmax" else (None,)):
            targets = None if labels is not None else rng.random((n, k)).astype(dtype)
            fused = emu.linear.loss(epilogue, emu.asarray(X), emu.asarray(W), emu.asarray(b),
                                    None if targets is None else emu.asarray(targets), None if labels is None
                                    else emu.asarray(labels), emu.asarray(weights), 0.25)
            assert fused is not None, (n, d, k)
            losses, G = fused
            Z = X.astype(np.float64) @ W.T.astype(np.float64) + b
            T = np.eye(k)[labels] if labels is not None else targets.astype(np.float64)
            want_l, want_G = _reference(epilogue, Z, T, weights.astype(np.float64) * 0.25)
            assert max_rel_error(losses, want_l) < KERNEL_TOL[dtype] and max_rel_error(G, want_G) < KERNEL_TOL[dtype]
        dW, db = emu.linear.grad(emu.asarray(G), emu.asarray(X), True)
        ref = G.astype(np.float64).T @ X.astype(np.float64)
        assert max_rel_error(dW, ref) < KERNEL_TOL[dtype] and max_rel_error(db, G.astype(np.float64).sum(0)) < \
            KERNEL_TOL[dtype]
        again = emu.linear.grad(emu.asarray(G), emu.asarray(X), True)
        assert np.array_equal(dW, again[0]) and np.array_equal(db, again[1])


def test_a_wrong_label_makes_its_row_nan_in_the_kernel():
    """The F functions raise first (below); the kernel's own guard keeps a wrong label
    from reading or training on anything."""
    emu = get_backend("emu")
    X, W = np.ones((4, 3), np.float32), np.ones((2, 3), np.float32)
    losses, G = emu.linear.loss("softmax", emu.asarray(X), emu.asarray(W), labels=emu.asarray(np.array([0, 5, -1, 1])))
    assert np.isnan(losses[[1, 2]]).all() and np.isfinite(losses[[0, 3]]).all()
    assert np.isnan(G[[1, 2]]).all() and np.isfinite(G[[0, 3]]).all()


def test_what_the_kernels_do_not_take_falls_back():
    """More than 16 outputs, or columns that are not contiguous: the kernels decline, and
    the step gives the same results by the host formulas (Backend.linear_loss)."""
    emu = get_backend("emu")
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 6)).astype(np.float32)
    W = rng.standard_normal((17, 6)).astype(np.float32)
    labels = rng.integers(0, 17, 40)
    assert emu.linear.loss("softmax", emu.asarray(X), emu.asarray(W), labels=emu.asarray(labels)) is None
    assert emu.linear.loss("squared", emu.asarray(np.asfortranarray(X)), emu.asarray(W[:3]),
                           targets=emu.asarray(np.zeros((40, 3), np.float32))) is None
    got = _run(F.linear_cross_entropy, "emu", X, W, None, labels, "mean")
    want = _run(None, "emu", X, W, None, labels, "mean", compose=F.cross_entropy)
    assert all(max_rel_error(g, w) < TOL[np.float32] for g, w in zip(got, want))


def test_bad_input_is_refused_with_names():
    x = td.randn(8, 4)
    w, b = td.randn(3, 4, requires_grad=True), td.zeros(3, requires_grad=True)
    with pytest.raises(IndexError, match=r"\[0, 3\)"):
        F.linear_cross_entropy(x, w, td.tensor([0, 1, 2, 3, 0, 1, 2, 0]), b)
    with pytest.raises(IndexError, match=r"\[0, 3\), got values in \[-100, -100\]"):  # nothing is ignored here
        F.linear_cross_entropy(x, w, td.tensor([0, 1, 2, -100, 0, 1, 2, 0]), b)
    with pytest.raises(TypeError, match="integer class indices"):
        F.linear_cross_entropy(x, w, td.zeros(8), b)
    with pytest.raises(ValueError, match=r"requires grad.*mse_loss\(linear"):
        F.linear_mse_loss(x, w, td.zeros(8, 3, requires_grad=True), b)
    with pytest.raises(ValueError, match=r"target shape .*\(8, 3\)"):
        F.linear_mse_loss(x, w, td.zeros(8), b)
    with pytest.raises(ValueError, match=r"bias of shape \(4,\)"):
        F.linear_mse_loss(x, w, td.zeros(8, 3), td.zeros(4))
    with pytest.raises(TypeError, match="float64"):
        F.linear_mse_loss(x.double(), w, td.zeros(8, 3), b)
    with pytest.raises(ValueError, match="reduction"):
        F.linear_mse_loss(x, w, td.zeros(8, 3), b, reduction="avg")
    with pytest.raises(RuntimeError, match="emu"):
        F.linear_mse_loss(x.to("emu"), w, td.zeros(8, 3), b)


def test_integer_targets_and_a_nan_input_behave_as_composed():
    """Integer regression targets are cast, as mse_loss casts them; a NaN in x reaches the loss
    on every device even from zero weights (no shortcut skips the product)."""
    X = np.ones((4, 3), np.float32)
    t = np.array([[1, 0], [0, 1], [2, 2], [1, 1]])
    for device in ("cpu", "emu"):
        w = td.zeros(2, 3, device=device)
        got = F.linear_mse_loss(td.tensor(X, device=device), w, td.tensor(t, device=device)).item()
        assert got == pytest.approx(F.mse_loss(F.linear(td.tensor(X, device=device), w),
                                               td.tensor(t.astype(np.float32), device=device)).item())
        X[1, 0] = np.nan
        labels = td.tensor([0, 1, 0, 1], device=device)
        assert np.isnan(F.linear_cross_entropy(td.tensor(X, device=device), w, labels).item()), device
        X[1, 0] = 1


def test_the_mean_of_no_rows_is_nan():
    loss = F.linear_cross_entropy(td.zeros(0, 4), td.randn(3, 4), td.tensor(np.zeros(0, np.int64)))
    assert np.isnan(loss.item())


def test_a_fused_step_captured_in_a_cuda_graph_on_emu_replays_the_eager_steps():
    """Linear + fused cross-entropy + SGD with momentum, captured once after a warm-up
    step and replayed: losses and weights are the eager run's, bit for bit."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((64, 12)).astype(np.float32)
    y = rng.integers(0, 4, 64)

    def trainer():
        td.manual_seed(0)
        layer = td.nn.Linear(12, 4, device="emu")
        opt = td.optim.SGD(layer.parameters(), lr=0.5, momentum=0.9)
        x, t = td.tensor(X, device="emu"), td.tensor(y, device="emu")

        def step():
            opt.zero_grad()
            loss = F.linear_cross_entropy(x, layer.weight, t, layer.bias)
            loss.backward()
            opt.step()
            return loss
        return layer, step

    layer, step = trainer()
    eager = [step().numpy() for _ in range(5)]
    eager_w = layer.weight.numpy()

    layer, step = trainer()
    np.testing.assert_array_equal(graphed_losses(step, 5), np.array(eager))
    np.testing.assert_array_equal(layer.weight.numpy(), eager_w)
    assert eager[-1] < eager[0]  # it trains


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_on_the_gpu_against_float64(dtype):
    """The fused step on a GPU: every output against float64 (CuPy/cuBLAS), the dW and db
    pass bitwise repeatable."""
    import cupy as cp

    gpu = get_backend("cuda")
    rng = np.random.default_rng(5)
    for n, d, k, epilogue in ((100_003, 257, 10, "softmax"), (70_001, 784, 1, "sigmoid"), (4097, 33, 16, "squared")):
        X = cp.asarray(rng.standard_normal((n, d)).astype(dtype))
        W = cp.asarray((rng.standard_normal((k, d)) / np.sqrt(d)).astype(dtype))
        b = cp.asarray(rng.standard_normal(k).astype(dtype))
        T = cp.asarray(rng.random((n, k)).astype(dtype))
        losses, G = gpu.linear.loss(epilogue, X, W, b, T, None, None, 1.0 / n)
        Z = X.astype(cp.float64) @ W.T.astype(cp.float64) + b
        want_l, want_G = _reference(epilogue, cp.asnumpy(Z), cp.asnumpy(T).astype(np.float64), np.full(n, 1.0 / n))
        assert max_rel_error(cp.asnumpy(losses), want_l) < KERNEL_TOL[dtype]
        assert max_rel_error(cp.asnumpy(G), want_G) < KERNEL_TOL[dtype]
        dW, db = gpu.linear.grad(G, X, True)
        ref = G.astype(cp.float64).T @ X.astype(cp.float64)
        assert max_rel_error(cp.asnumpy(dW), cp.asnumpy(ref)) < KERNEL_TOL[dtype]
        again = gpu.linear.grad(G, X, True)
        assert cp.array_equal(dW, again[0]) and cp.array_equal(db, again[1])
