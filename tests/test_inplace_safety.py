"""Autograd you can trust (issue 10): version counters on saved arrays, refused
in-place changes of leaves, casts that cut the graph, 0-d gradients, and copies
(deepcopy, pickle) that work with fresh tensors."""
import copy
import pickle

import numpy as np
import pytest

import tinygrad_dot as td
from tinygrad_dot.backends import get_backend
from tinygrad_dot.nn import functional as F

MODIFIED = "modified by an inplace operation"


def _torch():
    """PyTorch where installed (the reference), else None: the tests then check hand-computed values."""
    try:
        import torch as t
    except ImportError:
        return None
    return t


# ----------------------------------------------------------------- version counters


def _mul_graph():
    w = td.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = td.tensor([4.0, 5.0, 6.0])
    return w, x, (w * x).sum()


IN_PLACE_CHANGES = {
    "+=": lambda t: t.__iadd__(1.0),
    "-=": lambda t: t.__isub__(1.0),
    "*=": lambda t: t.__imul__(2.0),
    "/=": lambda t: t.__itruediv__(2.0),
    "setitem": lambda t: t.__setitem__(0, 9.0),
    "zero_": lambda t: t.zero_(),
    "fill_": lambda t: t.fill_(7.0),
    "copy_": lambda t: t.copy_(td.tensor([0.0, 0.0, 0.0])),
    "add_": lambda t: t.add_(1.0),
    "sub_": lambda t: t.sub_(1.0),
    "mul_": lambda t: t.mul_(3.0),
    "div_": lambda t: t.div_(3.0),
}


@pytest.mark.parametrize("change", sorted(IN_PLACE_CHANGES))
def test_changing_a_saved_operand_in_place_makes_backward_raise(change):
    """mul saves x for w's gradient; changing x afterwards used to give a silently wrong w.grad."""
    w, x, loss = _mul_graph()
    before = x._version
    IN_PLACE_CHANGES[change](x)
    assert x._version == before + 1
    with pytest.raises(RuntimeError, match=MODIFIED) as info:
        loss.backward()
    assert "mul" in str(info.value) and "(3,)" in str(info.value) and "float32" in str(info.value)
    assert w.grad is None


def test_the_error_matches_pytorch():
    torch = _torch()
    if torch is None:
        pytest.skip("PyTorch is not installed")
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    x = torch.tensor([3.0, 4.0])
    loss = (w * x).sum()
    x += 1
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


@pytest.mark.parametrize("alias", ["detach", "data", "reshape", "slice", "T", "from_numpy_view"])
def test_aliases_share_the_version_counter(alias):
    """A change through any alias of the saved storage is seen."""
    w = td.tensor(np.ones((2, 2), np.float32), requires_grad=True)
    storage = np.arange(4, dtype=np.float32).reshape(2, 2)
    x = td.from_numpy(storage) if alias == "from_numpy_view" else td.tensor(storage)
    loss = (w * x).sum()
    view = {"detach": lambda: x.detach(), "data": lambda: x.data, "reshape": lambda: x.reshape(4),
            "slice": lambda: x[0], "T": lambda: x.T, "from_numpy_view": lambda: x.reshape(4)[1:]}[alias]()
    with td.no_grad():
        view += 1.0
    assert x._version == view._version == 1
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


def test_a_copy_is_not_an_alias():
    """Advanced indexing and clone() copy: changing the copy leaves the graph valid."""
    w = td.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = td.tensor([4.0, 5.0, 6.0])
    loss = (w * x).sum()
    picked, cloned = x[td.tensor([0, 2])], x.clone()
    picked += 1.0
    cloned *= 2.0
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), [4.0, 5.0, 6.0])


def test_a_saved_output_changed_in_place_makes_backward_raise():
    """exp's gradient is its output: changing the output (through detach) used to corrupt x.grad."""
    x = td.tensor([0.0, 1.0], requires_grad=True)
    y = x.exp()
    loss = y.sum()
    y.detach().mul_(0.0)
    with pytest.raises(RuntimeError, match="exp"):
        loss.backward()


def test_ops_that_save_nothing_allow_later_in_place_changes():
    """add never reads its operands' values in backward (as in PyTorch): no false alarm."""
    w = td.tensor([1.0, 2.0], requires_grad=True)
    x = td.tensor([3.0, 4.0])
    loss = (w + x).sum()
    x += 10.0
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), [1.0, 1.0])


def test_an_optimizer_step_between_forward_and_backward_is_caught():
    """PyTorch raises here too: the second loss saved the weights the step has changed."""
    model = td.nn.Linear(3, 1)
    opt = td.optim.SGD(model.parameters(), lr=0.1)
    x = td.randn(4, 3, seed=0)
    first, second = model(x).sum(), model(x).sum()
    first.backward()
    opt.step()
    with pytest.raises(RuntimeError, match=MODIFIED) as info:
        second.backward()
    assert "linear" in str(info.value)


def test_version_is_checked_again_after_retain_graph():
    w = td.tensor([1.0, 2.0], requires_grad=True)
    x = td.tensor([3.0, 4.0])
    loss = (w * x).sum()
    loss.backward(retain_graph=True)
    np.testing.assert_allclose(w.grad.numpy(), [3.0, 4.0])
    x[1] = 0.0
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


def test_normal_training_loops_are_unaffected():
    """The usual forward / zero_grad / backward / step loop: versions move, nothing raises."""
    model = td.nn.Linear(3, 2)
    opt = td.optim.Adam(model.parameters(), lr=0.01)
    x, y = td.randn(8, 3, seed=1), td.tensor(np.arange(8) % 2)
    for _ in range(3):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
    assert model.weight._version >= 3


# ----------------------------------------------------------------- refused in-place changes of leaves


@pytest.mark.parametrize("change", sorted(IN_PLACE_CHANGES))
def test_in_place_change_of_a_leaf_that_requires_grad_is_refused(change):
    """As PyTorch; zero_, fill_ and copy_ used to be let through."""
    w = td.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        IN_PLACE_CHANGES[change](w)
    np.testing.assert_array_equal(w.numpy(), [1.0, 2.0, 3.0])
    with td.no_grad():
        IN_PLACE_CHANGES[change](w)  # allowed outside grad mode, as optimizer steps do
    assert w._version == 1


# ----------------------------------------------------------------- casts


@pytest.mark.parametrize("dtype", [td.int64, td.int32, td.bool_])
def test_a_cast_to_an_integer_or_bool_dtype_cuts_the_graph(dtype):
    x = td.tensor([0.5, 1.5, 2.5], requires_grad=True)
    y = x.to(dtype)
    assert not y.requires_grad and y.is_leaf and y.dtype == dtype
    loss = (x * 2.0).sum() + y.sum()
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])
    with pytest.raises(TypeError, match="floating-point"):
        y.requires_grad_()


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        td.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        td.tensor([1.0, 2.0], dtype=td.int64, requires_grad=True)


def test_a_cast_between_floats_still_carries_the_gradient():
    x = td.tensor([1.0, 2.0], requires_grad=True)
    (x.double() * 3.0).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


# ----------------------------------------------------------------- 0-d parameters


@pytest.mark.parametrize("dtype", [td.float32, td.float64])
def test_the_gradient_of_a_0d_parameter_is_a_0d_tensor_of_its_dtype(dtype):
    w = td.tensor(2.0, dtype=dtype, requires_grad=True)
    (w * w * 3.0).backward()
    assert isinstance(w.grad, td.Tensor) and isinstance(w.grad.array, np.ndarray)
    assert w.grad.shape == () and w.grad.dtype == dtype
    assert w.grad.item() == 12.0
    (w * 1.0).backward()  # accumulates in place
    assert w.grad.item() == 13.0 and isinstance(w.grad.array, np.ndarray)


def test_zero_grad_keeps_a_0d_gradient_as_zeros():
    w = td.nn.Parameter(td.tensor(2.0))
    opt = td.optim.SGD([w], lr=0.1)
    (w * w).backward()
    opt.zero_grad(set_to_none=False)
    assert w.grad.shape == () and w.grad.item() == 0.0


@pytest.mark.parametrize("optimizer, kwargs", [
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.5)),
    ("Adagrad", dict(lr=0.1)),
], ids=["sgd-momentum", "sgd-nesterov-decay", "adam", "rmsprop", "adagrad"])
def test_optimizers_update_0d_parameters_like_any_other(optimizer, kwargs):
    """The momentum buffer of a 0-d parameter was a NumPy scalar that never moved."""
    w0, ws = td.nn.Parameter(td.tensor(1.5)), td.nn.Parameter(td.tensor([1.5]))
    opt0 = getattr(td.optim, optimizer)([w0], **kwargs)
    opts = getattr(td.optim, optimizer)([ws], **kwargs)
    expected = None
    torch = _torch()
    if torch is not None:
        wt = torch.tensor(1.5, requires_grad=True)
        optt = getattr(torch.optim, optimizer)([wt], **kwargs)
    for _ in range(4):
        for w, opt in ((w0, opt0), (ws, opts)):
            opt.zero_grad()
            ((w * w).sum() * 0.5).backward()
            opt.step()
        if torch is not None:
            optt.zero_grad()
            (wt * wt * 0.5).backward()
            optt.step()
            expected = wt.item()
    assert w0.shape == () and w0.grad.shape == ()
    np.testing.assert_allclose(w0.item(), ws.numpy()[0], rtol=1e-6)
    if expected is not None:
        np.testing.assert_allclose(w0.item(), expected, rtol=1e-5)


# ----------------------------------------------------------------- copies


def test_backends_copy_to_the_one_backend_of_their_device():
    cpu = get_backend("cpu")
    assert copy.deepcopy(cpu) is cpu and pickle.loads(pickle.dumps(cpu)) is cpu
    assert copy.copy(cpu) == cpu and hash(copy.copy(cpu)) == hash(cpu)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_tensor_works_with_fresh_tensors(how):
    x = td.tensor([[1.0, 2.0]], dtype=td.float64, requires_grad=True)
    y = copy.deepcopy(x) if how == "deepcopy" else pickle.loads(pickle.dumps(x))
    assert y is not x and y.requires_grad and y.is_leaf and y.dtype == np.float64 and y.device == "cpu"
    out = (y * td.tensor([[3.0, 4.0]], dtype=td.float64) + td.ones(1, 2, dtype=td.float64)).sum()
    out.backward()
    np.testing.assert_array_equal(y.grad.numpy(), [[3.0, 4.0]])
    assert x.grad is None
    y.detach()[0, 0] = 5.0
    assert x.numpy()[0, 0] == 1.0  # no shared storage


def test_deepcopy_keeps_the_gradient_and_refuses_non_leaves():
    w = td.nn.Parameter(td.tensor([1.0, 2.0]))
    (w * w).sum().backward()
    c = copy.deepcopy(w)
    assert isinstance(c, td.nn.Parameter) and c.requires_grad
    np.testing.assert_array_equal(c.grad.numpy(), [2.0, 4.0])
    assert c.grad.array is not w.grad.array
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(w * 2.0)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_module_and_optimizer_train_like_the_original(how):
    td.manual_seed(0)
    model = td.nn.Sequential(td.nn.Linear(3, 4), td.nn.ReLU(), td.nn.Linear(4, 2))
    opt = td.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = td.randn(6, 3, seed=2), td.tensor(np.arange(6) % 2)

    def step(m, o):
        o.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        o.step()
        return loss.item()

    step(model, opt)  # momentum buffers exist now
    model2, opt2 = copy.deepcopy((model, opt)) if how == "deepcopy" else pickle.loads(pickle.dumps((model, opt)))
    assert all(p is q for p, q in zip(model2.parameters(), opt2.param_groups[0]["params"]))
    assert len(opt2.state) == len(opt.state) == 4
    for _ in range(3):
        assert step(model2, opt2) == pytest.approx(step(model, opt), rel=1e-6)
    for p, q in zip(model.parameters(), model2.parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-6)
        assert p.array is not q.array


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_fitted_estimator_predicts_and_refits(how):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3)).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.5], np.float32) + 0.25
    model = td.models.LinearRegression().fit(X, y)
    clone = copy.deepcopy(model) if how == "deepcopy" else pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(clone.predict(X), model.predict(X), rtol=1e-6)
    clone.fit(X, 2 * y)  # trains with fresh tensors
    np.testing.assert_allclose(clone.predict(X), 2 * model.predict(X), rtol=1e-2, atol=1e-2)
    labels = (y > 0).astype(int)
    classifier = td.models.LogisticRegression().fit(X, labels)
    clone = copy.deepcopy(classifier) if how == "deepcopy" else pickle.loads(pickle.dumps(classifier))
    np.testing.assert_array_equal(clone.predict(X), classifier.predict(X))
    np.testing.assert_array_equal(clone.fit(X, labels).predict(X), classifier.predict(X))


def test_tensors_from_distinct_backend_objects_of_one_device_combine():
    """Device identity is the device, not the backend object (this was 'found cpu and cpu')."""
    from tinygrad_dot.backends.numpy_backend import NumpyBackend

    a = td.tensor([1.0, 2.0])
    b = td.Tensor._wrap(np.array([3.0, 4.0], np.float32), NumpyBackend())
    np.testing.assert_array_equal((a + b).numpy(), [4.0, 6.0])
    layer = td.nn.Linear(2, 1)
    assert F.linear(b.reshape(1, 2), layer.weight, layer.bias).shape == (1, 1)


def test_nn_init_counts_as_an_in_place_change():
    import tinygrad_dot as td

    w = td.nn.Parameter(td.randn(3, 2, seed=0).numpy())
    x = td.randn(4, 3, seed=1)
    loss = (x @ w).sum() * (w * w).sum()  # mul saves w for its backward
    td.nn.init.constant_(w, 0.5)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_td_var_is_the_tensor_method():
    import tinygrad_dot as td

    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(td.var(x, dim=0).numpy(), x.var(axis=0, ddof=1), rtol=1e-5)
