"""Every differentiable op through gradcheck, and the tape's semantics."""
import gc
import tracemalloc

import numpy as np
import pytest

import tinygrad_dot as td


def _t(rng, *shape, positive=False, requires_grad=True):
    data = rng.standard_normal(shape)
    if positive:
        data = np.abs(data) + 0.5
    return td.tensor(data, dtype=td.float64, requires_grad=requires_grad)


# (name, function, input shapes, positive inputs)
BINARY_BROADCASTS = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 3)), ((5, 1), (1, 5))]


@pytest.mark.parametrize("shapes", BINARY_BROADCASTS, ids=str)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_binary_ops_with_broadcasting(op, shapes, rng):
    fn = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b,
          "mul": lambda a, b: a * b, "div": lambda a, b: a / b}[op]
    a = _t(rng, *shapes[0])
    b = _t(rng, *shapes[1], positive=(op == "div"))
    assert td.gradcheck(fn, [a, b])


@pytest.mark.parametrize("scalar_side", ["left", "right"])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_python_scalars_on_either_side(op, scalar_side, rng):
    x = _t(rng, 3, 2, positive=True)
    ops = {"add": lambda p, q: p + q, "sub": lambda p, q: p - q, "mul": lambda p, q: p * q, "div": lambda p, q: p / q}
    fn = (lambda t: ops[op](2.5, t)) if scalar_side == "left" else (lambda t: ops[op](t, 2.5))
    assert td.gradcheck(fn, [x])
    expected = ops[op](2.5, x.numpy()) if scalar_side == "left" else ops[op](x.numpy(), 2.5)
    np.testing.assert_allclose(fn(x).numpy(), expected)


UNARY = {
    "neg": (lambda x: -x, False),
    "pow2": (lambda x: x ** 2, False),
    "pow3": (lambda x: x ** 3, False),
    "pow_half": (lambda x: x ** 0.5, True),
    "pow_neg": (lambda x: x ** -1.5, True),
    "exp": (lambda x: x.exp(), False),
    "log": (lambda x: x.log(), True),
    "relu": (lambda x: x.relu(), False),
    "sigmoid": (lambda x: x.sigmoid(), False),
    "tanh": (lambda x: x.tanh(), False),
    "abs": (lambda x: x.abs(), False),
    "T": (lambda x: x.T, False),
    "permute": (lambda x: x.permute(1, 0, 2), False),
    "transpose": (lambda x: x.transpose(0, 2), False),
    "t": (lambda x: x[0].t(), False),
    "squeeze_unsqueeze": (lambda x: x[:, :1].squeeze(1).unsqueeze(-1), False),
    "flatten": (lambda x: x.flatten(1), False),
    "clone": (lambda x: x.clone() * 2, False),
    "sqrt": (lambda x: x.sqrt(), True),
    "clamp": (lambda x: x.clamp(-0.5, 0.5), False),
    "rpow": (lambda x: 2.0 ** x, False),
    "min": (lambda x: x.min(dim=1).values, False),
    "sum_dim_keepdim": (lambda x: x.sum(dim=(0, 2), keepdim=True), False),
    "reshape": (lambda x: x.reshape(-1, 2), False),
    "reshape_tuple": (lambda x: x.reshape((2, -1)), False),
    "getitem_slice": (lambda x: x[1:, ::2], False),
    "getitem_fancy": (lambda x: x[np.array([0, 1, 1])], False),
    "sum": (lambda x: x.sum(), False),
    "sum_axis": (lambda x: x.sum(axis=1), False),
    "sum_axes_keepdims": (lambda x: x.sum(axis=(0, 2), keepdims=True), False),
    "mean": (lambda x: x.mean(), False),
    "mean_axis": (lambda x: x.mean(axis=-1), False),
    "mean_keepdims": (lambda x: x.mean(axis=0, keepdims=True), False),
    "max": (lambda x: x.max(axis=1).values, False),
    "amax": (lambda x: x.amax(dim=(0, 2)), False),
    "logsumexp": (lambda x: x.logsumexp(axis=-1), False),
    "logsumexp_all": (lambda x: x.logsumexp(), False),
    "log_softmax": (lambda x: x.log_softmax(axis=-1), False),
    "softmax": (lambda x: x.softmax(axis=1), False),
}


@pytest.mark.parametrize("name", list(UNARY))
def test_unary_ops(name, rng):
    fn, positive = UNARY[name]
    x = _t(rng, 3, 4, 2, positive=positive)
    if name in ("relu", "clamp"):  # keep inputs away from the kinks, where the derivative is undefined
        data = x.numpy()
        data = np.where(np.abs(np.abs(data) - (0.5 if name == "clamp" else 0)) < 0.1, 0.25, data)
        x = td.tensor(data, requires_grad=True)
    assert td.gradcheck(fn, [x])


@pytest.mark.parametrize("shapes", [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                                    ((2, 2, 3), (3, 4)), ((2, 1, 2, 3), (3, 3, 2)), ((3,), (2, 3, 4))], ids=str)
def test_matmul_gradients(shapes, rng):
    a, b = _t(rng, *shapes[0]), _t(rng, *shapes[1])
    assert td.gradcheck(lambda p, q: p @ q, [a, b])


@pytest.mark.parametrize("shapes", [((), (3,)), ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 2))], ids=str)
def test_dot_gradients(shapes, rng):
    a, b = _t(rng, *shapes[0]), _t(rng, *shapes[1])
    assert td.gradcheck(td.dot, [a, b])


def test_composite_model_gradient(rng):
    x, w, b = _t(rng, 5, 3, requires_grad=False), _t(rng, 3, 2), _t(rng, 2)
    assert td.gradcheck(lambda w, b: ((x @ w + b).sigmoid() - 0.5).tanh().mean(), [w, b])


def test_gradcheck_catches_a_wrong_gradient(rng):
    from tinygrad_dot.autograd import record

    def wrong_square(x):  # vjp deliberately missing the factor 2
        return record(td.Tensor, x.array ** 2, x._backend, (x, lambda g: g * x.array))

    with pytest.raises(td.GradcheckError, match=r"input 0 .* element"):
        td.gradcheck(wrong_square, [_t(rng, 3)])


def test_gradcheck_rejects_non_finite_inputs():
    with pytest.raises(ValueError, match="NaN or inf"):
        td.gradcheck(lambda x: x * 2, [td.tensor([1.0, np.nan], requires_grad=True)])


# ------------------------------------------------------------------ tape semantics


def test_leaves_accumulate_until_zeroed():
    x = td.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])
    x.grad = None
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])


def test_a_node_used_twice_gets_both_contributions():
    x = td.tensor([3.0], requires_grad=True)
    y = x * 2
    z = y * y + y  # dz/dx = (2y + 1) * 2 = 26
    z.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [26.0])


def test_same_tensor_as_both_operands():
    x = td.tensor([1.5, -2.0], requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1.5, -2.0]))


def test_float32_stays_float32(rng):
    x = td.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    w = td.tensor(rng.standard_normal((3, 2)).astype(np.float32), requires_grad=True)
    b = td.tensor(np.zeros(2, np.float32), requires_grad=True)
    loss = (((x @ w + b) * 0.5 - 1.0) ** 2 / 3.0).sigmoid().log_softmax().exp().mean()
    assert loss.dtype == np.float32
    loss.backward()
    assert w.grad.dtype == np.float32 and b.grad.dtype == np.float32


def test_deep_chain_has_no_recursion_limit():
    x = td.tensor([1.0], dtype=td.float64, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 10_000], rtol=1e-9)


def test_graph_is_released_after_backward():
    x = td.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="already released"):
        y.backward()
    z = (x * 2).sum()
    z.backward(retain_graph=True)
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])


def test_memory_stays_flat_over_a_training_loop(rng):
    x = td.tensor(rng.standard_normal((32, 8)).astype(np.float32))
    y = td.tensor(rng.standard_normal((32, 1)).astype(np.float32))
    w = td.tensor(np.zeros((8, 1), np.float32), requires_grad=True)
    b = td.tensor(np.zeros(1, np.float32), requires_grad=True)

    def step():
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        with td.no_grad():
            w.array -= 0.01 * w.grad.array
            b.array -= 0.01 * b.grad.array
        w.grad = b.grad = None

    for _ in range(100):
        step()
    gc.collect()
    tracemalloc.start()
    for _ in range(2_000):
        step()
    gc.collect()
    middle, _ = tracemalloc.get_traced_memory()
    for _ in range(8_000):
        step()
    gc.collect()
    end, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert end - middle < 64 * 1024, f"memory grew by {end - middle} bytes over 8000 steps"


def test_backward_on_non_scalar_needs_a_gradient():
    x = td.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"scalar output.*\(2,\)"):
        (x * 2).backward()
    (x * 2).backward(td.tensor([1.0, 10.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 20.0])


def test_backward_gradient_shape_is_checked():
    x = td.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        (x * 2).backward(td.tensor([1.0, 1.0, 1.0]))


def test_backward_without_requires_grad_explains():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (td.tensor([1.0]) * 2).sum().backward()


def test_no_grad_records_nothing():
    x = td.tensor([1.0], requires_grad=True)
    with td.no_grad():
        y = x * 2
    assert not y.requires_grad and y.is_leaf
    z = x * 2
    assert z.requires_grad and not z.is_leaf


def test_no_grad_as_decorator():
    x = td.tensor([1.0], requires_grad=True)

    @td.no_grad()
    def double(t):
        return t * 2

    assert not double(x).requires_grad
    assert td.is_grad_enabled()


def test_leaf_gradients_never_share_memory():
    """add() hands the same gradient array to both inputs; each .grad must be its own."""
    a = td.tensor([1.0, 2.0], requires_grad=True)
    b = td.tensor([3.0, 4.0], requires_grad=True)
    seed = td.tensor([1.0, 1.0])
    (a + b).backward(seed)
    a.grad.array *= 10
    np.testing.assert_allclose(b.grad.numpy(), [1.0, 1.0])
    np.testing.assert_allclose(seed.numpy(), [1.0, 1.0])
    c = td.tensor([5.0], requires_grad=True)
    c.backward(seed[:1])
    c.grad.array *= 3
    np.testing.assert_allclose(seed.numpy(), [1.0, 1.0])


def test_where_cat_stack_gradients(rng):
    a, b = _t(rng, 3, 4), _t(rng, 4)
    cond = rng.standard_normal((3, 4)) > 0
    assert td.gradcheck(lambda p, q: td.where(cond, p, q), [a, b])
    c = _t(rng, 2, 4)
    assert td.gradcheck(lambda p, q: td.cat([p, q], dim=0) * 1.5, [a, c])
    d = _t(rng, 3, 4)
    assert td.gradcheck(lambda p, q: td.stack([p, q], dim=1).sum(dim=2), [a, d])


def test_in_place_updates_outside_the_tape():
    w = td.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        w -= 1.0
    with pytest.raises(RuntimeError, match="no_grad"):
        w[0] = 1.0
    with td.no_grad():
        w -= td.tensor([1.0, 2.0, 3.0])
        w[0] = 5.0
    assert w.requires_grad and w.is_leaf
    np.testing.assert_allclose(w.numpy(), [5.0, -2.0, -3.0])
    a = td.tensor([1.0, 2.0])
    alias = a
    a += 1
    a *= 2
    a /= 4
    assert alias is a
    np.testing.assert_allclose(alias.numpy(), [1.0, 1.5])
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        a += td.ones(3)
    with pytest.raises(TypeError, match="float.*int64"):
        ints = td.tensor([1, 2])
        ints += 0.5


def test_mean_of_nothing_is_nan_and_max_of_nothing_is_an_error():
    with np.errstate(all="ignore"):
        assert np.isnan(td.tensor([]).mean().item())
    with pytest.raises(ValueError, match="empty"):
        td.tensor([]).max()
