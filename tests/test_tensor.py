"""Tensor construction, dtypes, devices and conversions."""
import numpy as np
import pytest

import tinygrad_dot as td


def test_python_floats_become_float32():
    assert td.tensor(1.5).dtype == np.float32
    assert td.tensor([1.0, 2.0]).dtype == np.float32
    assert td.tensor([[1, 2.5]]).dtype == np.float32


def test_python_ints_and_bools_keep_their_kind():
    assert td.tensor([1, 2]).dtype == np.int64
    assert td.tensor([True, False]).dtype == np.bool_


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_numpy_arrays_keep_their_dtype(dtype, rng):
    a = rng.standard_normal((3, 2)).astype(dtype)
    t = td.tensor(a)
    assert t.dtype == dtype
    np.testing.assert_array_equal(t.numpy(), a)


def test_explicit_dtype_wins():
    assert td.tensor([1, 2], dtype="float64").dtype == np.float64
    assert td.tensor(np.ones(2, np.float32), dtype=td.float16).dtype == np.float16


def test_attributes(rng):
    t = td.tensor(rng.standard_normal((2, 3, 4)))
    assert t.shape == (2, 3, 4) and isinstance(t.shape, tuple)
    assert t.ndim == 3 and t.numel() == 24 and t.size() == (2, 3, 4) and t.size(-1) == 4 and len(t) == 2
    assert t.device == "cpu"
    assert not t.requires_grad and t.grad is None


def test_numpy_is_a_copy(rng):
    t = td.tensor(rng.standard_normal(4))
    host = t.numpy()
    host[:] = 0
    assert np.all(t.numpy() != 0)


def test_item_and_its_error():
    assert td.tensor([[2.5]]).item() == 2.5
    with pytest.raises(ValueError, match=r"one element.*\(2,\)"):
        td.tensor([1.0, 2.0]).item()


@pytest.mark.parametrize("bad", ["abc", ["a", "b"], [object()], {"a": 1}])
def test_non_numeric_data_is_a_type_error(bad):
    with pytest.raises(TypeError, match="numeric|cannot build"):
        td.tensor(bad)


def test_ragged_lists_are_a_clear_error():
    with pytest.raises(TypeError, match="cannot build"):
        td.tensor([[1.0, 2.0], [3.0]])


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        td.tensor([1, 2], requires_grad=True)


def test_creation_functions():
    z = td.zeros(2, 3)
    o = td.ones((2, 3), dtype=td.float64, requires_grad=True)
    assert z.shape == (2, 3) and z.dtype == np.float32 and not z.numpy().any()
    assert o.dtype == np.float64 and o.requires_grad and (o.numpy() == 1).all()
    with pytest.raises(ValueError, match="non-negative"):
        td.zeros(2, -1)


def test_randn_is_seeded_and_not_constant():
    a, b = td.randn(50, seed=7), td.randn(50, seed=7)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert a.dtype == np.float32 and a.numpy().std() > 0.5
    g = np.random.default_rng(3)
    c = td.randn(2, 2, generator=g, dtype=td.float64)
    assert c.dtype == np.float64
    assert not np.array_equal(td.randn(50, seed=8).numpy(), a.numpy())


def test_devices_are_validated():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        td.tensor([1.0], device="tpu")


@pytest.mark.skipif(td.cuda.is_available(), reason="checks the message shown when no GPU can be used")
def test_cuda_without_gpu_says_what_is_missing():
    with pytest.raises(RuntimeError, match=r"cuda.*(CuPy|GPU|driver)") as info:
        td.tensor([1.0], device="cuda")
    message = str(info.value)
    assert any(hint in message for hint in ("tinygrad_dot[cuda12]", "cupy-cuda12x", "GPU")), message


def test_cuda_is_available_never_raises():
    assert td.cuda.is_available() in (True, False)
    assert td.cuda.device_count() >= 0


def test_detach_shares_storage_without_grad(rng):
    x = td.tensor(rng.standard_normal(3), requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf


def test_to_dtype_is_differentiable(rng):
    x = td.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
    y = x.to(td.float64)
    assert y.dtype == np.float64
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy(), rtol=1e-6)


def test_repr_shows_device_and_grad():
    text = repr(td.tensor([1.0, 2.0], requires_grad=True))
    assert text.startswith("tensor([1., 2.]") and "requires_grad=True" in text


def test_numpy_interop(rng):
    t = td.tensor(rng.standard_normal((2, 2)))
    np.testing.assert_array_equal(np.asarray(t), t.numpy())


def test_scalar_operands_follow_numpy_promotion():
    assert (td.tensor([True, False]) + 2).numpy().tolist() == [3, 2]
    assert (td.tensor([1, 2]) + 2).dtype == np.int64
    assert (td.tensor([1, 2]) + 2.5).numpy().tolist() == [3.5, 4.5]
    assert (td.tensor([1.0], dtype=td.float16) * 3).dtype == np.float16


def test_comparisons_give_bool_tensors_and_none_is_not_equal():
    t = td.tensor([1.0, 2.0, 3.0])
    assert (t > 1.5).numpy().tolist() == [False, True, True]
    assert (t == td.tensor([1.0, 0.0, 3.0])).numpy().tolist() == [True, False, True]
    assert (t == None) is False  # noqa: E711  (PyTorch answers False too)
    assert t.argmax().item() == 2


def test_tensor_copies_numpy_data_and_from_numpy_shares_it(rng):
    a = rng.standard_normal(3).astype(np.float32)
    t = td.tensor(a)
    t += 1
    assert not np.allclose(t.numpy(), a)
    shared = td.from_numpy(a)
    shared += 1
    np.testing.assert_allclose(a, t.numpy())


def test_creation_helpers():
    assert td.arange(4).numpy().tolist() == [0, 1, 2, 3] and td.arange(4).dtype == np.int64
    assert td.arange(0, 1, 0.25).dtype == np.float32 and td.arange(0, 1, 0.25).shape == (4,)
    assert td.full(2, 2, fill_value=1.5).numpy().tolist() == [[1.5, 1.5], [1.5, 1.5]]
    assert td.full((2,), fill_value=3).dtype == np.int64
    np.testing.assert_array_equal(td.eye(3).numpy(), np.eye(3, dtype=np.float32))


def test_manual_seed_makes_default_draws_reproducible():
    td.manual_seed(123)
    first = (td.randn(4).numpy(), td.nn.Linear(3, 2).weight.numpy())
    td.manual_seed(123)
    second = (td.randn(4).numpy(), td.nn.Linear(3, 2).weight.numpy())
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_pytorch_spellings():
    x = td.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert x.transpose(0, 1).shape == (3, 2) and x.t().shape == (3, 2) and x.permute(1, 0).shape == (3, 2)
    assert x.sum(dim=1, keepdim=True).shape == (2, 1)
    assert x.view(3, 2).shape == (3, 2) and x.numel() == 6 and x.dim() == 2
    assert float(x[1, 2]) == 6.0 and int(x[0, 0]) == 1
    assert x.argmax(dim=1).numpy().tolist() == [2, 2]


def test_module_functions_take_array_likes():
    np.testing.assert_allclose(td.exp([0.0, 1.0]).numpy(), [1.0, np.e], rtol=1e-6)
    assert td.dot([1.0, 2.0], [3.0, 4.0]).item() == 11.0
    assert td.sum([[1, 2], [3, 4]], dim=0).numpy().tolist() == [4, 6]
