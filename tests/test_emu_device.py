"""Device "emu": the CUDA path (planning, autotuning, argument packing, launch and
the kernels themselves) on the CPU. Acceptance tests of matmul, autograd, a
training loop and the estimators: on "emu" they must give what the CPU gives,
up to the summation order of the kernels."""
import pickle

import numpy as np
import pytest

import tinygrad_dot as td
from tinygrad_dot import gemm
from tinygrad_dot.backends import canonical_device, get_backend

from conftest import max_rel_error

F32_TOL = 2e-5


def test_the_device_is_named_and_placed():
    assert canonical_device("emu") == canonical_device("EMU:0") == "emu"
    with pytest.raises(ValueError, match="one emu device"):
        canonical_device("emu:1")
    rng = np.random.default_rng(0)
    x = td.tensor(rng.standard_normal((3, 4)).astype(np.float32), device="emu")
    assert x.device == "emu" and isinstance(x.array, np.ndarray)
    assert "emu" in repr(x)
    assert x.cpu().device == "cpu" and x.to("cpu").to("emu").device == "emu"
    assert pickle.loads(pickle.dumps(x)).device == "emu"
    assert get_backend("emu").runtime.facts.cc == 90


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_runs_our_kernels(dtype):
    """Shapes of every kind (1-D, batched, broadcast, transposed views) against float64;
    the output starts as NaN on "emu", so an element no kernel writes fails."""
    rng = np.random.default_rng(1)
    tol = F32_TOL if dtype == np.float32 else 1e-12
    cases = [((33, 65), (65, 7)), ((65,), (65, 7)), ((33, 65), (65,)), ((2, 3, 17, 9), (9, 5)),
             ((4, 1, 5, 6), (3, 6, 2))]
    for sa, sb in cases:
        a, b = rng.standard_normal(sa).astype(dtype), rng.standard_normal(sb).astype(dtype)
        out = td.matmul(td.tensor(a, device="emu"), td.tensor(b, device="emu"))
        assert out.device == "emu" and out.dtype == dtype and out.shape == np.matmul(a, b).shape
        assert max_rel_error(out.numpy(), np.matmul(a.astype(np.float64), b)) < tol, (sa, sb)
    a = td.tensor(rng.standard_normal((40, 30)).astype(dtype), device="emu")
    b = td.tensor(rng.standard_normal((20, 30)).astype(dtype), device="emu")
    assert max_rel_error((a @ b.T).numpy(), a.numpy().astype(np.float64) @ b.numpy().T) < tol  # NT, read in place


def test_every_product_of_a_step_goes_through_the_dispatch():
    """The forward and both backward products of a linear layer are our kernels'
    launches (the plan cache holds their signatures), not NumPy's."""
    rng = np.random.default_rng(2)
    dispatch = gemm.dispatcher("emu")
    dispatch.forget()
    layer = td.nn.Linear(13, 5).to("emu")
    x = td.tensor(rng.standard_normal((11, 13)).astype(np.float32), device="emu", requires_grad=True)
    layer(x).sum().backward()
    shapes = {(key[0][-2:], key[2][-2:]) for key in dispatch.planned}
    assert {((11, 13), (13, 5)), ((11, 5), (5, 13)), ((5, 11), (11, 13))} <= shapes, shapes


def test_gradients_match_the_cpu():
    rng = np.random.default_rng(3)
    x_np = rng.standard_normal((16, 9)).astype(np.float32)
    w_np = rng.standard_normal((9, 4)).astype(np.float32)
    grads = {}
    for device in ("cpu", "emu"):
        x = td.tensor(x_np, device=device, requires_grad=True)
        w = td.tensor(w_np, device=device, requires_grad=True)
        loss = (td.tanh(x @ w) ** 2).mean()
        loss.backward()
        grads[device] = (float(loss), x.grad.numpy(), w.grad.numpy())
    assert abs(grads["emu"][0] - grads["cpu"][0]) <= F32_TOL * abs(grads["cpu"][0])
    for emu, cpu in zip(grads["emu"][1:], grads["cpu"][1:]):
        assert max_rel_error(emu, cpu) < F32_TOL


def test_a_training_loop_matches_the_cpu():
    """Twenty SGD steps of softmax regression: the same losses and weights on both devices."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((64, 12)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    runs = {}
    for device in ("cpu", "emu"):
        td.manual_seed(0)
        model = td.nn.Linear(12, 3).to(device)
        opt = td.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
        xb, yb = td.tensor(X, device=device), td.tensor(y, device=device)
        losses = []
        for _ in range(20):
            opt.zero_grad()
            loss = td.nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            losses.append(float(loss))
        runs[device] = (np.array(losses), model.weight.numpy())
    assert runs["cpu"][0][-1] < 0.8 * runs["cpu"][0][0]  # it learned something
    assert max_rel_error(runs["emu"][0], runs["cpu"][0]) < 1e-4
    assert max_rel_error(runs["emu"][1], runs["cpu"][1]) < 1e-4


def test_float16_is_widened_for_the_kernels():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((8, 6)).astype(np.float16), rng.standard_normal((6, 3)).astype(np.float16)
    out = td.matmul(td.tensor(a, device="emu"), td.tensor(b, device="emu"))
    assert out.dtype == np.float16 and max_rel_error(out.numpy(), a.astype(np.float64) @ b) < 2e-3


@pytest.mark.parametrize("make", [
    lambda: td.models.LinearRegression(),
    lambda: td.models.Ridge(alpha=0.5),
    lambda: td.models.LogisticRegression(C=0.5),
    lambda: td.models.SGDRegressor(max_iter=5, tol=None, random_state=0),
], ids=["linear", "ridge", "logistic", "sgd"])
def test_estimators_fit_on_emu_as_on_the_cpu(make):
    pytest.importorskip("sklearn", reason="td.models needs scikit-learn (the models extra)")
    rng = np.random.default_rng(6)
    X = rng.standard_normal((120, 6))
    w = rng.standard_normal(6)
    logistic = isinstance(make(), td.models.LogisticRegression)
    y = (X @ w + 0.3 * rng.standard_normal(120) > 0).astype(int) if logistic else X @ w + 0.1 * rng.standard_normal(120)
    cpu = make().fit(X, y)
    emu_model = make().set_params(device="emu")
    emu_model.fit(X, y)
    assert max_rel_error(emu_model.coef_, cpu.coef_) < 1e-6
    on_emu = td.tensor(X, device="emu")  # the data's device is the fit's when device=None
    again = make().fit(on_emu, y)
    assert max_rel_error(again.coef_, cpu.coef_) < 1e-6
    np.testing.assert_allclose(np.asarray(emu_model.predict(X)), cpu.predict(X), rtol=1e-6, atol=1e-8)


def test_the_readme_example_runs(capsys):
    import re
    from pathlib import Path

    pytest.importorskip("sklearn", reason="the example fits a td.models estimator (the models extra)")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (code,) = [block for block in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if 'device="emu"' in block]
    exec(compile(code, "README.md (emu example)", "exec"), {})  # noqa: S102 - our own documentation
    assert float(capsys.readouterr().out) > 0.9


def test_class_targets_out_of_range_are_refused_on_emu_as_on_the_cpu():
    """An index past the classes would read the next row's logit: refused on every device
    outside a graph capture (inside one the host cannot look: docs/cuda_graphs.md)."""
    logits = np.random.default_rng(9).standard_normal((4, 5)).astype(np.float32)
    for device in ("cpu", "emu"):
        for bad in ([0, 1, 7, 2], [0, -3, 1, 2], [0, 5, 1, 2]):
            with pytest.raises(IndexError, match=r"must lie in \[0, 5\)"):
                td.nn.functional.cross_entropy(td.tensor(logits, device=device), td.tensor(bad, device=device))


def test_dropout_is_refused_inside_a_capture():
    """Its mask comes from the host: a graph would replay one mask forever."""
    layer = td.nn.Dropout(0.5).to("emu")
    x = td.ones(8, 4, device="emu")
    graph = td.cuda.CUDAGraph()
    with pytest.raises(td.cuda.CaptureError, match="same mask"):
        with td.cuda.graph(graph, device="emu"):
            layer(x)
