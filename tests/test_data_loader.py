"""td.data.DataLoader: batching, seeded shuffling, drop_last, and data that stays put."""
import numpy as np
import pytest

import tinygrad_dot as td
from tinygrad_dot.data import DataLoader, TensorDataset


def data(rng, n=23):
    return rng.standard_normal((n, 3)).astype(np.float32), np.arange(n)


@pytest.mark.parametrize("batch_size,drop_last,expected", [(5, False, [5, 5, 5, 5, 3]), (5, True, [5, 5, 5, 5]),
                                                          (23, False, [23]), (50, False, [23]), (50, True, [])])
def test_batch_sizes_and_len(rng, batch_size, drop_last, expected):
    X, y = data(rng)
    loader = DataLoader((X, y), batch_size=batch_size, drop_last=drop_last)
    sizes = [len(xb) for xb, _ in loader]
    assert sizes == expected and len(loader) == len(expected)


def test_in_order_batches_are_views_of_the_data(rng):
    X, y = data(rng)
    batches = list(DataLoader(TensorDataset(X, y), batch_size=4))
    np.testing.assert_array_equal(np.concatenate([yb.numpy() for _, yb in batches]), y)
    first_x = batches[0][0]
    assert np.shares_memory(first_x.array, X)  # no copy per batch
    assert isinstance(first_x, td.Tensor) and not first_x.requires_grad and first_x.dtype == np.float32


def test_shuffle_is_a_seeded_permutation_that_changes_each_epoch(rng):
    X, y = data(rng)
    loader = DataLoader((X, y), batch_size=4, shuffle=True, seed=11)
    epochs = [np.concatenate([yb.numpy() for _, yb in loader]) for _ in range(3)]
    for order in epochs:
        assert sorted(order) == list(range(23))  # each sample exactly once
    assert not np.array_equal(epochs[0], epochs[1])
    again = DataLoader((X, y), batch_size=4, shuffle=True, seed=11)
    np.testing.assert_array_equal(np.concatenate([yb.numpy() for _, yb in again]), epochs[0])
    xb, yb = next(iter(DataLoader((X, y), batch_size=4, shuffle=True, seed=2)))
    np.testing.assert_array_equal(xb.numpy(), X[yb.numpy()])  # rows stay paired with their labels


def test_bad_arguments(rng):
    X, y = data(rng)
    with pytest.raises(ValueError, match="different lengths"):
        TensorDataset(X, y[:-1])
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader((X, y), batch_size=0)
    with pytest.raises(TypeError, match="TensorDataset"):
        DataLoader(X)
    with pytest.raises(ValueError, match="scalar"):
        TensorDataset(np.float32(1.0))


@pytest.mark.gpu
def test_gpu_batches_stay_on_the_device(rng):
    import cupy

    X, y = data(rng, n=1000)
    dataset = TensorDataset(X, y, device="cuda")
    assert all(isinstance(t.array, cupy.ndarray) for t in dataset.tensors)
    for shuffle in (False, True):
        seen = []
        for xb, yb in DataLoader(dataset, batch_size=64, shuffle=shuffle, seed=0):
            assert xb.device.startswith("cuda") and isinstance(xb.array, cupy.ndarray)
            assert isinstance(yb.array, cupy.ndarray)
            seen.append(cupy.asnumpy(yb.array))
        assert sorted(np.concatenate(seen)) == list(range(1000))
