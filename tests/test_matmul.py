"""td.dot / td.matmul against NumPy: property-based over shapes, and error cases."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_dot as td
from conftest import rel_error

dims = st.integers(min_value=1, max_value=6)
batch = st.lists(st.integers(min_value=1, max_value=3), min_size=0, max_size=2)


@st.composite
def matmul_shapes(draw):
    """Shapes numpy.matmul accepts: 1-D to batched N-D, broadcast batch dims included."""
    m, k, n = draw(dims), draw(dims), draw(dims)
    batch_a, batch_b = draw(batch), draw(batch)
    # Make the batch dims broadcast-compatible: where both have a dim, one of them becomes 1 or they agree.
    for i in range(1, min(len(batch_a), len(batch_b)) + 1):
        if batch_a[-i] != batch_b[-i] and draw(st.booleans()):
            batch_a[-i] = 1
        elif batch_a[-i] != batch_b[-i]:
            batch_b[-i] = 1
    a = (k,) if draw(st.integers(0, 4)) == 0 else (*batch_a, m, k)
    b = (k,) if draw(st.integers(0, 4)) == 0 else (*batch_b, k, n)
    return a, b


@settings(max_examples=150, deadline=None)
@given(shapes=matmul_shapes(), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_matmul_matches_numpy(shapes, dtype, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shapes[0]).astype(dtype)
    b = rng.standard_normal(shapes[1]).astype(dtype)
    out = td.matmul(td.tensor(a), td.tensor(b))
    reference = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert out.shape == reference.shape
    assert out.dtype == dtype
    assert rel_error(out.numpy(), reference) < (1e-5 if dtype == np.float32 else 1e-12)


def _sum_to(x, shape):
    """Written out independently of the library's unbroadcast."""
    while x.ndim > len(shape):
        x = x.sum(0)
    for axis, n in enumerate(shape):
        if n == 1 and x.shape[axis] != 1:
            x = x.sum(axis, keepdims=True)
    return x


@settings(max_examples=60, deadline=None)
@given(shapes=matmul_shapes(), seed=st.integers(0, 2**32 - 1))
def test_matmul_gradients_match_the_closed_form(shapes, seed):
    """dA = G B^T and dB = A^T G, summed over broadcast batch dims."""
    rng = np.random.default_rng(seed)
    a_np, b_np = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    a, b = td.tensor(a_np, requires_grad=True), td.tensor(b_np, requires_grad=True)
    out = a @ b
    g = rng.standard_normal(out.shape)
    out.backward(td.tensor(g))
    a2 = a_np[None, :] if a_np.ndim == 1 else a_np
    b2 = b_np[:, None] if b_np.ndim == 1 else b_np
    g2 = np.asarray(g).reshape(np.matmul(a2, b2).shape)
    da = np.matmul(g2, np.swapaxes(b2, -1, -2))
    db = np.matmul(np.swapaxes(a2, -1, -2), g2)
    da, db = _sum_to(da, a2.shape), _sum_to(db, b2.shape)
    np.testing.assert_allclose(a.grad.numpy(), da.reshape(a_np.shape), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), db.reshape(b_np.shape), rtol=1e-10, atol=1e-12)


@settings(max_examples=80, deadline=None)
@given(a_nd=st.integers(0, 2), b_nd=st.integers(0, 2), m=dims, k=dims, n=dims, seed=st.integers(0, 2**32 - 1))
def test_dot_matches_numpy(a_nd, b_nd, m, k, n, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal({0: (), 1: (k,), 2: (m, k)}[a_nd])
    b = rng.standard_normal({0: (), 1: (k,), 2: (k, n)}[b_nd])
    out = td.dot(td.tensor(a), td.tensor(b))
    reference = np.dot(a, b)
    assert out.shape == np.shape(reference)
    np.testing.assert_allclose(out.numpy(), reference, rtol=1e-12, atol=1e-12)


def test_matmul_operator_and_transposed_operands(rng):
    x = rng.standard_normal((7, 5)).astype(np.float32)
    w = rng.standard_normal((3, 5)).astype(np.float32)
    out = td.tensor(x) @ td.tensor(w).T
    assert rel_error(out.numpy(), x.astype(np.float64) @ w.T.astype(np.float64)) < 1e-6


@pytest.mark.parametrize("a,b,pattern", [
    ((2, 3), (4, 5), r"\(2, 3\).*\(4, 5\)"),
    ((3,), (4,), r"\(3,\).*\(4,\)"),
    ((2, 2, 3), (3, 3, 4), r"batch.*\(2, 2, 3\).*\(3, 3, 4\)"),
    ((), (3,), r"at least 1 dimension"),
])
def test_matmul_shape_errors_name_both_shapes(a, b, pattern):
    with pytest.raises(ValueError, match=pattern):
        td.matmul(td.ones(*a), td.ones(*b))


@pytest.mark.parametrize("a,b,pattern", [
    ((2, 3), (4,), r"\(2, 3\).*\(4,\)"),
    ((2, 2, 2), (2, 2), r"up to 2 dimensions.*\(2, 2, 2\)"),
])
def test_dot_shape_errors(a, b, pattern):
    with pytest.raises(ValueError, match=pattern):
        td.dot(td.ones(*a), td.ones(*b))


def test_broadcast_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4,\)"):
        td.ones(2, 3) + td.ones(4)


def test_kernel_choice_is_for_cuda_only():
    with pytest.raises(ValueError, match="CUDA GEMM kernel"):
        td.matmul(td.ones(2, 2), td.ones(2, 2), kernel="cublas")


def test_matmul_with_numpy_operand(rng):
    a = rng.standard_normal((2, 3))
    out = td.tensor(a) @ np.eye(3)
    np.testing.assert_allclose(out.numpy(), a)


def test_non_tensor_operands_are_a_type_error():
    with pytest.raises(TypeError, match="unsupported operand"):
        td.ones(2) + "x"
    with pytest.raises(TypeError, match="exponent"):
        td.ones(2) ** td.ones(2)
