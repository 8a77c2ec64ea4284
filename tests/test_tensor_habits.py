"""PyTorch habits on Tensor and td.* (issue 11): each one checked against PyTorch
itself where it is installed (values, shapes, dtypes, gradients), and against
NumPy and central differences (td.gradcheck) where it is not."""
import math
import operator

import numpy as np
import pytest

import tinygrad_dot as td


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


torch = _torch()


def _dtype_name(out) -> str:
    """'float32', 'int64', 'bool' for a td tensor, a torch tensor or a NumPy array."""
    if torch is not None and isinstance(out, torch.Tensor):
        return str(out.dtype).replace("torch.", "")
    return np.dtype(out.dtype).name


def _host(out) -> np.ndarray:
    if torch is not None and isinstance(out, torch.Tensor):
        return out.detach().numpy()
    return out.numpy() if isinstance(out, td.Tensor) else np.asarray(out)


def _outputs(out):
    return tuple(out) if isinstance(out, tuple) else (out,)


def check(fn_td, fn_torch, fn_numpy, *arrays, grad=True, rtol=1e-10, numpy_grad=None):
    """``fn_td`` on td tensors of ``arrays`` against ``fn_torch`` on torch tensors of them
    (PyTorch installed) or ``fn_numpy`` on the arrays: every output's values, shape and
    dtype; with ``grad``, the gradients of the first output contracted with a random
    cotangent (PyTorch's autograd; else ``numpy_grad(cotangent, *arrays)``, the first
    input's gradient derived by hand, or central differences in float64 where the
    function is smooth)."""
    floats = [a.dtype.kind == "f" for a in arrays]
    mine = [td.tensor(a, requires_grad=grad and f) for a, f in zip(arrays, floats)]
    out = _outputs(fn_td(*mine))
    if torch is not None:
        theirs = [torch.tensor(a, requires_grad=grad and f) for a, f in zip(arrays, floats)]
        ref = _outputs(fn_torch(*theirs))
    else:
        ref = _outputs(fn_numpy(*arrays))
    assert len(out) == len(ref)
    for o, r in zip(out, ref):
        assert isinstance(o, td.Tensor)
        assert o.shape == tuple(r.shape), (o.shape, tuple(r.shape))
        assert _dtype_name(o) == _dtype_name(r)
        np.testing.assert_allclose(o.numpy(), _host(r), rtol=rtol, atol=rtol)
    if not grad:
        return out
    cotangent = np.random.default_rng().standard_normal(out[0].shape)
    out[0].backward(td.tensor(cotangent, dtype=out[0].dtype))
    if torch is not None:
        ref[0].backward(torch.tensor(cotangent, dtype=ref[0].dtype))
        for m, t, f in zip(mine, theirs, floats):
            if f:
                np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-12)
    elif numpy_grad is not None:
        np.testing.assert_allclose(mine[0].grad.numpy(), numpy_grad(cotangent, *arrays), rtol=1e-9, atol=1e-12)
    else:
        assert td.gradcheck(lambda *ts: _outputs(fn_td(*ts))[0], mine)
    return out


# ----------------------------------------------------------------- size, numel, dim


def test_size_numel_dim(rng):
    shape = tuple(int(n) for n in rng.integers(1, 5, size=3))
    x = td.tensor(rng.standard_normal(shape))
    expected = torch.zeros(shape).size() if torch is not None else shape
    assert x.size() == tuple(expected) and isinstance(x.size(), tuple)
    assert [x.size(d) for d in (0, 1, 2, -1)] == [expected[0], expected[1], expected[2], expected[-1]]
    assert x.numel() == math.prod(shape) == x.size().numel() and x.dim() == 3
    assert repr(x.size()) == f"td.Size({list(shape)})"
    with pytest.raises(IndexError, match=r"size\(3\).*out of range"):
        x.size(3)


# ----------------------------------------------------------------- max, min, argmax, maximum


def _with_ties(rng, shape):
    """Random values from a small set, so that rows have ties."""
    return rng.integers(0, 3, size=shape).astype(np.float64) + rng.standard_normal(shape) * (rng.random(shape) < 0.3)


@pytest.mark.parametrize("reducer", ["max", "min"])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_with_dim_return_values_and_indices(reducer, keepdim, rng):
    x = _with_ties(rng, (4, 5, 3))

    def np_ref(a):
        idx = getattr(a, "arg" + reducer)(axis=1)
        vals = np.take_along_axis(a, idx[:, None], 1)[:, 0]
        return (vals[:, None], idx[:, None]) if keepdim else (vals, idx)

    def np_grad(g, a):  # all of it to the chosen element, none to its ties (PyTorch's rule with a dim)
        full = np.zeros_like(a)
        np.put_along_axis(full, np_ref(a)[1].reshape(4, 1, 3), g.reshape(4, 1, 3), axis=1)
        return full

    out = check(lambda t: getattr(t, reducer)(dim=1, keepdim=keepdim),
                lambda t: getattr(t, reducer)(dim=1, keepdim=keepdim), np_ref, x, numpy_grad=np_grad)
    values, indices = out
    assert getattr(td, reducer)(td.tensor(x), 1, keepdim).indices.numpy().tolist() == indices.numpy().tolist()
    named = getattr(td.tensor(x), reducer)(1)
    assert named.values is named[0] and named.indices is named[1]


@pytest.mark.parametrize("reducer", ["max", "min"])
def test_max_min_of_everything_split_the_gradient_between_ties(reducer, rng):
    x = _with_ties(rng, (3, 4))
    x[0, :2] = getattr(x, reducer)()  # at least one tie at the extreme

    def np_grad_free(a):
        return np.asarray(getattr(a, reducer)())

    check(lambda t: getattr(t, reducer)(), lambda t: getattr(t, reducer)(), np_grad_free, x, grad=False)
    t = td.tensor(x, requires_grad=True)
    getattr(t, reducer)().backward()
    hit = x == getattr(x, reducer)()
    np.testing.assert_allclose(t.grad.numpy(), hit / hit.sum())  # PyTorch's rule: ties share equally
    if torch is not None:
        r = torch.tensor(x, requires_grad=True)
        getattr(r, reducer)().backward()
        np.testing.assert_allclose(t.grad.numpy(), r.grad.numpy())


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_and_td_max_of_two_tensors(name, rng):
    a = _with_ties(rng, (3, 4))
    b = _with_ties(rng, (4,))  # broadcast, with ties against a

    def np_ref(p, q):
        return getattr(np, name)(p, q)

    check(getattr(td, name), getattr(torch, name, None), np_ref, a, b)
    two = td.max if name == "maximum" else td.min
    np.testing.assert_array_equal(two(td.tensor(a), td.tensor(b)).numpy(), np_ref(a, b))
    p, q = td.tensor([1.0, 2.0], requires_grad=True), td.tensor([1.0, 3.0], requires_grad=True)
    getattr(td, name)(p, q).sum().backward()
    np.testing.assert_array_equal(q.grad.numpy(), [0.5, 1.0 if name == "maximum" else 0.0])
    np.testing.assert_array_equal(p.grad.numpy() + q.grad.numpy(), [1.0, 1.0])  # a tie splits in half


@pytest.mark.parametrize("fn", ["argmax", "argmin"])
@pytest.mark.parametrize("dim,keepdim", [(None, False), (None, True), (0, False), (1, True), (-1, False)])
def test_argmax_argmin(fn, dim, keepdim, rng):
    x = _with_ties(rng, (4, 6))

    def np_ref(a):
        out = getattr(a, fn)(axis=dim, keepdims=keepdim)
        return np.asarray(out, dtype=np.int64)

    check(lambda t: getattr(t, fn)(dim=dim, keepdim=keepdim), lambda t: getattr(t, fn)(dim=dim, keepdim=keepdim),
          np_ref, x, grad=False)


# ----------------------------------------------------------------- grad mode


def _grad_mode_trace(lib):
    """What each grad-mode habit does to recording, in any library spelled like PyTorch."""
    x = lib.ones(2, requires_grad=True)
    trace = []
    lib.set_grad_enabled(False)  # a plain call takes effect at once
    trace += [lib.is_grad_enabled(), (x * 2).requires_grad]
    lib.set_grad_enabled(True)
    trace += [lib.is_grad_enabled(), (x * 2).requires_grad]
    with lib.set_grad_enabled(False):
        trace.append((x * 2).requires_grad)
    trace.append((x * 2).requires_grad)

    @lib.set_grad_enabled(False)
    def decorated():
        return (x * 2).requires_grad

    trace += [lib.is_grad_enabled(), decorated(), lib.is_grad_enabled()]
    with lib.no_grad():
        with lib.enable_grad():
            trace.append((x * 2).requires_grad)
        trace.append((x * 2).requires_grad)
    with lib.inference_mode():
        trace.append((x * 2).requires_grad)
    with lib.inference_mode(False):
        trace.append((x * 2).requires_grad)
    trace.append(lib.is_grad_enabled())

    @lib.no_grad  # without parentheses
    def bare():
        return (x * 2).requires_grad

    @lib.inference_mode
    def bare_inference():
        return (x * 2).requires_grad

    @lib.enable_grad
    def enabled():
        return (x * 2).requires_grad

    with lib.no_grad():
        trace += [bare(), bare_inference(), enabled(), (x * 2).requires_grad]
    trace.append(lib.is_grad_enabled())
    return trace


def test_grad_mode_habits():
    expected = [False, False, True, True, False, True, True, False, True, True, False, False, True, True,
                False, False, True, False, True]
    assert _grad_mode_trace(td) == expected
    if torch is not None:
        assert _grad_mode_trace(torch) == expected


# ----------------------------------------------------------------- conversions


@pytest.mark.parametrize("method,dtype", [("long", np.int64), ("int", np.int32), ("bool", np.bool_),
                                          ("float", np.float32), ("double", np.float64), ("half", np.float16)])
def test_dtype_conversions(method, dtype, rng):
    x = rng.standard_normal((3, 2)) * 3
    check(lambda t: getattr(t, method)(), lambda t: getattr(t, method)(), lambda a: a.astype(dtype), x,
          grad=dtype in (np.float32, np.float64), rtol=1e-3 if dtype == np.float16 else 1e-7,
          numpy_grad=lambda g, a: g.astype(dtype).astype(np.float64))  # a cast passes the gradient through


def test_type_to_cpu_tolist(rng):
    x = rng.standard_normal((2, 3)).astype(np.float32)
    t = td.tensor(x, requires_grad=True)
    assert t.type(td.float64).dtype == np.float64 and t.type() == "td.float32"
    assert t.to(td.int64).dtype == np.int64 and t.to("float64").dtype == np.float64
    assert t.to("cpu") is t and t.cpu() is t and t.to(td.zeros(1, dtype=td.float64)).dtype == np.float64
    assert t.to("cpu", td.float16).dtype == np.float16 and t.to(dtype=td.float64, device="cpu").dtype == np.float64
    assert t.tolist() == x.tolist() and td.tensor([[1, 2]]).tolist() == [[1, 2]]
    assert td.long is td.int64 and td.bool is td.bool_ and td.float is td.float32
    if torch is not None:
        assert t.tolist() == torch.tensor(x).tolist()


# ----------------------------------------------------------------- elementwise and reductions


UNARY = {
    "abs": (lambda t: t.abs(), np.abs),
    "sign": (lambda t: t.sign(), np.sign),
    "exp": (lambda t: t.exp(), np.exp),
    "log1p": (lambda t: (t * t).log1p(), lambda a: np.log1p(a * a)),
    "expand": (lambda t: t[:, :1].expand(2, 3, -1, 4), lambda a: np.broadcast_to(a[:, :1], (2, 3, 1, 4))),
    "expand_as": (lambda t: t[:1].expand_as(t), lambda a: np.broadcast_to(a[:1], a.shape)),
    "repeat": (lambda t: t.repeat(2, 1, 3), lambda a: np.tile(a, (2, 1, 3))),
    "repeat_more_dims": (lambda t: t.repeat(2, 1, 1, 2), lambda a: np.tile(a, (2, 1, 1, 2))),
    "std": (lambda t: t.std(), lambda a: np.asarray(a.std(ddof=1))),
    "std_dim": (lambda t: t.std(dim=1, keepdim=True), lambda a: a.std(axis=1, ddof=1, keepdims=True)),
    "std_unbiased_false": (lambda t: t.std(0, False), lambda a: a.std(axis=0)),
    "var_unbiased_false": (lambda t: t.var(unbiased=False), lambda a: np.asarray(a.var())),
    "var_correction": (lambda t: t.var(dim=(0, 1), correction=2), lambda a: a.var(axis=(0, 1), ddof=2)),
    "norm": (lambda t: t.norm(), lambda a: np.asarray(np.sqrt((a * a).sum()))),
    "norm_dim": (lambda t: t.norm(dim=1), lambda a: np.sqrt((a * a).sum(axis=1))),
    "norm_p1": (lambda t: t.norm(p=1, dim=-1, keepdim=True), lambda a: np.abs(a).sum(axis=-1, keepdims=True)),
    "norm_p3": (lambda t: t.norm(p=3), lambda a: np.asarray((np.abs(a) ** 3).sum() ** (1 / 3))),
    "norm_inf": (lambda t: t.norm(p=math.inf, dim=0), lambda a: np.abs(a).max(axis=0)),
}


@pytest.mark.parametrize("name", list(UNARY))
def test_unary_habits(name, rng):
    fn, np_fn = UNARY[name]
    check(fn, fn, np_fn, rng.standard_normal((3, 1, 4)) if "expand" in name else rng.standard_normal((3, 4, 2)))


def test_norm_of_zeros_has_a_zero_gradient():
    x = td.zeros(3, dtype=td.float64, requires_grad=True)
    x.norm().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0])  # PyTorch's subgradient, not NaN


@pytest.mark.parametrize("fn", ["any", "all"])
def test_any_all(fn, rng):
    x = rng.random((4, 3)) < 0.5
    for args in [(), (0,), (1, True)]:
        check(lambda t: getattr(t, fn)(*args), lambda t: getattr(t, fn)(*args),
              lambda a: np.asarray(getattr(a, fn)(*(args[:1])) if not args[1:] else getattr(a, fn)(args[0], keepdims=True)),
              x, grad=False)


# ----------------------------------------------------------------- indexing with gradients


def test_gather_and_its_gradient_with_repeated_indices(rng):
    x = rng.standard_normal((3, 5))
    index = rng.integers(0, 5, size=(3, 4))  # repeats are likely: their gradients add up

    def np_ref(a, i):
        return np.take_along_axis(a, i, axis=1)

    check(lambda t, i: t.gather(1, i), lambda t, i: t.gather(1, i), np_ref, x, index)
    check(lambda t, i: td.gather(t, 0, i[:2, :3] % 3), lambda t, i: torch.gather(t, 0, i[:2, :3] % 3),
          lambda a, i: np.take_along_axis(a[:, :3], i[:2, :3] % 3, axis=0), x, index)


def test_scatter_add_and_its_gradients(rng):
    x = rng.standard_normal((3, 5))
    src = rng.standard_normal((3, 4))
    index = rng.integers(0, 5, size=(3, 4))

    def np_ref(a, s, i):
        out = a.copy()
        np.add.at(out, (np.arange(3)[:, None], i), s)
        return out

    check(lambda t, s, i: t.scatter_add(1, i, s), lambda t, s, i: t.scatter_add(1, i, s), np_ref, x, src, index)


def test_masked_fill(rng):
    x = rng.standard_normal((3, 4))
    mask = rng.random((1, 4)) < 0.5  # broadcast over rows

    def np_ref(a, m):
        return np.where(m, -1.5, a)

    check(lambda t, m: t.masked_fill(m, -1.5), lambda t, m: t.masked_fill(m, -1.5), np_ref, x, mask)
    with pytest.raises(TypeError, match="bool"):
        td.tensor(x).masked_fill(td.tensor([1, 0, 1, 0]), 0.0)


@pytest.mark.parametrize("kind", ["bool_mask", "bool_rows", "int_array", "int_pair", "list", "mixed"])
def test_mask_and_array_indexing_with_gradients(kind, rng):
    x = rng.standard_normal((5, 4))
    rows = rng.integers(0, 5, size=7)  # repeated rows: their gradients add up
    mask = rng.random((5, 4)) < 0.5
    row_mask = np.array([True, False, True, True, False])
    index = {"bool_mask": lambda m: (m,), "bool_rows": lambda m: (row_mask,), "int_array": lambda m: (rows,),
             "int_pair": lambda m: (rows, rows % 4), "list": lambda m: ([0, 3, 3],), "mixed": lambda m: (rows, 1)}[kind]

    def with_(lib_tensor):
        def pick(t, m):
            parts = tuple(lib_tensor(p) if isinstance(p, np.ndarray) else p for p in index(m))
            return t[parts if len(parts) > 1 else parts[0]]
        return pick

    def np_ref(a, m):
        parts = index(m)
        return a[parts if len(parts) > 1 else parts[0]]

    check(lambda t, m: with_(td.tensor)(t, m.numpy()), lambda t, m: with_(torch.tensor)(t, m.numpy()),
          np_ref, x, mask)


# ----------------------------------------------------------------- comparisons and logic


@pytest.mark.parametrize("op", [operator.and_, operator.or_, operator.xor])
def test_logical_operators_on_bool_tensors(op, rng):
    a, b = rng.random((3, 4)) < 0.5, rng.random(4) < 0.5
    check(op, op, op, a, b, grad=False)
    check(operator.invert, operator.invert, np.logical_not, a, grad=False)
    check(lambda p, q: (p.long() & q.long()) ^ 1, lambda p, q: (p.long() & q.long()) ^ 1,
          lambda p, q: (p.astype(np.int64) & q.astype(np.int64)) ^ 1, a, b, grad=False)
    with pytest.raises(TypeError, match=r"& takes bool or integer tensors, got float32"):
        td.ones(2) & td.ones(2)


@pytest.mark.parametrize("op", [operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne])
def test_comparisons(op, rng):
    a, b = rng.integers(0, 3, (3, 4)).astype(np.float64), rng.integers(0, 3, 4).astype(np.float64)
    check(op, op, op, a, b, grad=False)
    check(lambda p: op(p, 1.0) | (p > 1), lambda p: op(p, 1.0) | (p > 1), lambda p: op(p, 1.0) | (p > 1),
          a, grad=False)


# ----------------------------------------------------------------- in place


IN_PLACE = {
    "add_": (lambda t: t.add_(td.tensor([1.0, 2.0, 3.0]), alpha=2), lambda a: a + 2 * np.array([1.0, 2.0, 3.0])),
    "sub_": (lambda t: t.sub_(0.5), lambda a: a - 0.5),
    "mul_": (lambda t: t.mul_(3.0), lambda a: a * 3.0),
    "div_": (lambda t: t.div_(4.0), lambda a: a / 4.0),
    "clamp_": (lambda t: t.clamp_(-0.3, 0.4), lambda a: np.clip(a, -0.3, 0.4)),
    "clamp_min": (lambda t: t.clamp_(min=0.0), lambda a: np.maximum(a, 0.0)),
}


@pytest.mark.parametrize("name", list(IN_PLACE))
def test_in_place_habits(name, rng):
    fn, np_fn = IN_PLACE[name]
    x = rng.standard_normal((2, 3))
    t = td.tensor(x)
    before = t._version
    assert fn(t) is t and t._version == before + 1
    np.testing.assert_allclose(t.numpy(), np_fn(x).astype(np.float64), rtol=1e-12)
    if torch is not None:
        r = torch.tensor(x)
        torch_fn = {"add_": lambda r: r.add_(torch.tensor([1.0, 2.0, 3.0], dtype=r.dtype), alpha=2),
                    "clamp_min": lambda r: r.clamp_(min=0.0)}.get(name, fn)
        torch_fn(r)
        np.testing.assert_allclose(t.numpy(), r.numpy(), rtol=1e-12)
    w = td.tensor(x, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        fn(w)
    loss = (w * t).sum()  # mul saves t
    fn(t)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


# ----------------------------------------------------------------- creation


def test_rand_randint_randn_like_follow_the_seed(rng):
    td.manual_seed(5)
    first = (td.rand(3, 4), td.randint(2, 9, (50,)), td.randn_like(td.zeros(2, 2, dtype=td.float64)))
    td.manual_seed(5)
    second = (td.rand((3, 4)), td.randint(2, 9, size=(50,)), td.randn_like(td.zeros(2, 2, dtype=td.float64)))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    u, k, n = first
    assert u.dtype == np.float32 and u.shape == (3, 4) and 0 <= u.numpy().min() and u.numpy().max() < 1
    assert k.dtype == np.int64 and 2 <= k.numpy().min() and k.numpy().max() < 9 and len(set(k.tolist())) > 3
    assert n.dtype == np.float64 and n.shape == (2, 2)
    assert td.randint(5, (4,), seed=1).tolist() == td.randint(0, 5, (4,), generator=np.random.default_rng(1)).tolist()
    big = td.rand(20_000, seed=int(rng.integers(1 << 30))).numpy()
    assert abs(big.mean() - 0.5) < 0.01 and abs(big.var() - 1 / 12) < 0.005
    if torch is not None:
        assert _dtype_name(torch.rand(2)) == _dtype_name(u) and _dtype_name(torch.randint(2, 9, (3,))) == "int64"
    with pytest.raises(ValueError, match="low"):
        td.randint(5, 5, (2,))


@pytest.mark.parametrize("name", ["zeros_like", "ones_like", "full_like", "empty_like"])
def test_like_creation(name, rng):
    x = rng.standard_normal((2, 3)).astype(np.float32)
    args = (2.5,) if name == "full_like" else ()
    out = getattr(td, name)(td.tensor(x), *args)
    ref = getattr(torch, name)(torch.tensor(x), *args) if torch is not None else getattr(np, name)(x, *args)
    assert out.shape == tuple(ref.shape) and _dtype_name(out) == _dtype_name(ref)
    if name != "empty_like":
        np.testing.assert_array_equal(out.numpy(), _host(ref))
    assert getattr(td, name)(td.tensor(x), *args, dtype=td.float64).dtype == np.float64
    assert td.empty(2, 3).shape == (2, 3) and td.empty((4,), dtype=td.int64).dtype == np.int64


@pytest.mark.parametrize("name,args", [("linspace", (-1.5, 2.0, 7)), ("linspace", (0, 1, 1)),
                                       ("logspace", (-2, 1.5, 5)), ("logspace", (0, 3, 4, 2.0))])
def test_linspace_logspace(name, args):
    out = getattr(td, name)(*args)
    if torch is not None:
        ref = getattr(torch, name)(*args)
    else:
        grid = np.linspace(args[0], args[1], args[2])
        ref = (grid if name == "linspace" else (args[3] if len(args) > 3 else 10.0) ** grid).astype(np.float32)
    assert out.shape == tuple(ref.shape) and _dtype_name(out) == _dtype_name(ref) == "float32"
    np.testing.assert_allclose(out.numpy(), _host(ref), rtol=1e-6)


# ----------------------------------------------------------------- printing


def test_repr_like_pytorch(rng):
    x = td.tensor([-1.0, 2.0, -0.0], requires_grad=True)
    assert repr(x) == "tensor([-1.,  2.,  0.], requires_grad=True)"
    y = x.relu()
    assert "-0." not in repr(y) and repr(y).endswith("grad_fn=<ReluBackward>)")
    assert repr(x * 2).endswith("grad_fn=<MulBackward>)")
    assert repr(td.tensor([1, 2])) == "tensor([1, 2])" and repr(td.tensor([True])) == "tensor([ True])"
    assert repr(td.tensor([1.5], dtype=td.float64)) == "tensor([1.5], dtype=td.float64)"
    assert x.grad_fn is None and (x * 2).grad_fn is not None
    if torch is not None:  # the same parts in the same order as PyTorch's
        r = torch.tensor([-1.0, 2.0], dtype=torch.float64, requires_grad=True) * 2
        t = td.tensor([-1.0, 2.0], dtype=td.float64, requires_grad=True) * 2
        assert repr(t).split("dtype=")[1].split(",")[0].replace("td.", "") == \
            repr(r).split("dtype=")[1].split(",")[0].replace("torch.", "")
        assert "grad_fn=<MulBackward" in repr(r) and "grad_fn=<MulBackward" in repr(t)


# ----------------------------------------------------------------- errors name what is wrong


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match=r"expand: shape \(3, 2\) cannot be expanded"):
        td.zeros(3, 2).expand(3, 4)
    with pytest.raises(ValueError, match=r"repeat: 1 repeats \(2,\).*\(3, 2\)"):
        td.zeros(3, 2).repeat(2)
    with pytest.raises(ValueError, match=r"gather: index of shape \(3,\) does not fit a tensor of shape \(3, 2\)"):
        td.zeros(3, 2).gather(1, td.tensor([0, 1, 0]))
    with pytest.raises(TypeError, match="gather: index must hold integers, got dtype float32"):
        td.zeros(3, 2).gather(1, td.zeros(3, 1))
    with pytest.raises(ValueError, match=r"max: dim 2 is out of range.*\(3, 2\)"):
        td.zeros(3, 2).amax(2)
    with pytest.raises(ValueError, match=r"squeeze: dim 5 is out of range for a tensor of shape \(3, 1\)"):
        td.zeros(3, 1).squeeze(5)
    with pytest.raises(TypeError, match="max.*takes one dimension.*amax"):
        td.zeros(3, 1).max(dim=(0, 1))
    with pytest.raises(TypeError, match=r"Tensor.to takes \(device\), \(dtype\).*got 3"):
        td.zeros(2).to("cpu", td.float64, td.float32)
    with pytest.raises(TypeError, match="pass unbiased= or correction="):
        td.zeros(3).var(unbiased=True, correction=0)


def test_remainder_follows_the_sign_of_the_divisor(rng):
    a, b = rng.standard_normal((3, 4)) * 5, rng.choice([-1.0, 1.0], 4) * (rng.random(4) + 0.5)
    check(operator.mod, operator.mod, operator.mod, a, b)
    check(lambda p: p % 3, lambda p: p % 3, lambda p: p % 3, rng.integers(-9, 9, (5,)), grad=False)


def test_a_device_mismatch_names_both_devices_and_shapes():
    from tinygrad_dot.backends.numpy_backend import NumpyBackend

    elsewhere = NumpyBackend()
    elsewhere.name = "cuda:7"  # a stand-in second device (its arrays stay NumPy): only the names differ
    a = td.zeros(2, 3)
    b = td.Tensor._wrap(np.zeros(3, np.float32), elsewhere)
    index = td.Tensor._wrap(np.zeros((2, 3), np.int64), elsewhere)
    mask = td.Tensor._wrap(np.zeros((2, 3), bool), elsewhere)
    for op in (lambda: a + b, lambda: td.maximum(a, b), lambda: a > b, lambda: a.gather(1, index),
               lambda: a.masked_fill(mask, 0.0), lambda: a[mask], lambda: td.where(mask, a, a), lambda: td.cat([a, b])):
        with pytest.raises(RuntimeError, match=r"one device, but found cpu \(shape \(2, 3\)\) and cuda:7 \(shape"):
            op()


def test_td_functions_take_array_likes_and_match_the_methods(rng):
    x = rng.standard_normal((3, 4))
    t = td.tensor(x)
    for name, args in [("max", (1,)), ("min", ()), ("amax", (0,)), ("argmax", (1,)), ("norm", ()), ("std", (0,)),
                       ("any", ()), ("sign", ()), ("log1p", ())]:
        arg = np.abs(x) if name == "log1p" else x
        by_function = getattr(td, name)(arg.tolist(), *args)
        by_method = getattr(td.tensor(arg), name)(*args)
        for f, m in zip(by_function if isinstance(by_function, tuple) else [by_function],
                        by_method if isinstance(by_method, tuple) else [by_method]):
            np.testing.assert_allclose(f.numpy(), m.numpy(), rtol=1e-6)
    assert td.max(t, td.zeros(4, dtype=td.float64)).shape == (3, 4)
