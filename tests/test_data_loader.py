"""td.data.DataLoader: batching, seeded shuffling, drop_last, and data that stays put."""
import numpy as np
import pytest

import tinygrad_dot as td
from tinygrad_dot.data import DataLoader, Dataset, TensorDataset


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
    with pytest.raises(TypeError, match="map-style dataset"):
        DataLoader(5)
    with pytest.raises(ValueError, match="scalar"):
        TensorDataset(np.float32(1.0))


def train_run(X, y, seed):
    """A whole shuffled training run (Linear init, Dropout masks, batch order) seeded
    only by td.manual_seed, as a PyTorch script seeds with torch.manual_seed."""
    td.manual_seed(seed)
    model = td.nn.Sequential(td.nn.Linear(3, 8), td.nn.Dropout(0.2), td.nn.Linear(8, 4))
    opt = td.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader((X, y % 4), batch_size=4, shuffle=True)
    losses = []
    for _ in range(3):
        for xb, yb in loader:
            loss = td.nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return np.array(losses), [p.numpy() for p in model.parameters()]


def test_shuffle_without_a_generator_follows_manual_seed_bit_for_bit(rng):
    X, y = data(rng)
    losses, params = train_run(X, y, seed=3)
    again_losses, again_params = train_run(X, y, seed=3)
    np.testing.assert_array_equal(losses, again_losses)
    for a, b in zip(params, again_params):
        np.testing.assert_array_equal(a, b)
    other_losses, _ = train_run(X, y, seed=4)
    assert not np.array_equal(losses, other_losses)

    # The default generator is read when an epoch starts, not when the loader is made
    # (PyTorch's sampler draws from the global generator at iteration too).
    loader = DataLoader((X, y), batch_size=5, shuffle=True)
    td.manual_seed(9)
    first = np.concatenate([yb.numpy() for _, yb in loader])
    td.manual_seed(9)
    np.testing.assert_array_equal(np.concatenate([yb.numpy() for _, yb in loader]), first)
    assert sorted(first) == list(range(23)) and not np.array_equal(first, np.arange(23))


def test_generator_drop_last_and_pytorch_batch_types(rng):
    X, y = data(rng)
    orders = [np.concatenate([yb.numpy() for _, yb in DataLoader(
        (X, y), batch_size=5, shuffle=True, drop_last=True, generator=np.random.default_rng(21))]) for _ in range(2)]
    np.testing.assert_array_equal(orders[0], orders[1])
    assert len(orders[0]) == 20 and len(set(orders[0])) == 20  # 4 full batches, no repeats, 3 rows dropped
    loader = DataLoader(TensorDataset(X, y), batch_size=5, shuffle=True, generator=np.random.default_rng(0),
                        num_workers=2, pin_memory=True)  # accepted from PyTorch scripts; nothing to do
    batch = next(iter(loader))
    assert isinstance(batch, list) and len(batch) == 2 and loader.generator is not None
    with pytest.raises(ValueError, match="seed or generator"):
        DataLoader((X, y), shuffle=True, seed=1, generator=np.random.default_rng(1))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        DataLoader((X, y), shuffle=True, generator=3)
    with pytest.raises(TypeError):
        DataLoader((X, y), 5, True, None)  # PyTorch's fourth positional is a sampler; ours are keywords
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the checks above still ran")
    from torch.utils.data import DataLoader as TorchLoader, TensorDataset as TorchDataset

    theirs = TorchDataset(torch.from_numpy(X), torch.from_numpy(y))
    for drop_last in (False, True):
        assert len(DataLoader((X, y), batch_size=5, drop_last=drop_last)) == \
            len(TorchLoader(theirs, batch_size=5, drop_last=drop_last))
    assert type(next(iter(TorchLoader(theirs, batch_size=5)))) is type(batch)


class Samples(Dataset):
    """A map-style dataset as a PyTorch user writes one: one sample per index, built
    on the fly (here a feature row, its label, a dict of extras and a name)."""

    def __init__(self, X, y):
        self.X, self.y = X, y

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], int(self.y[i]), {"scale": float(i) / 2, "row": td.tensor(self.X[i])}, f"s{i}"


def test_map_style_datasets_are_collated_as_pytorch_does(rng):
    X, y = data(rng)
    batches = list(DataLoader(Samples(X, y), batch_size=5))
    assert len(batches) == 5 and [len(b[1]) for b in batches] == [5, 5, 5, 5, 3]
    features, labels, extras, names = batches[1]
    np.testing.assert_array_equal(features.numpy(), X[5:10])
    assert features.dtype == np.float32 and labels.dtype == np.int64 and extras["scale"].dtype == np.float64
    np.testing.assert_array_equal(labels.numpy(), y[5:10])
    np.testing.assert_array_equal(extras["row"].numpy(), X[5:10])
    assert names == ("s5", "s6", "s7", "s8", "s9")
    td.manual_seed(2)
    first = np.concatenate([b[1].numpy() for b in DataLoader(Samples(X, y), batch_size=4, shuffle=True)])
    td.manual_seed(2)
    again = np.concatenate([b[1].numpy() for b in DataLoader(Samples(X, y), batch_size=4, shuffle=True)])
    np.testing.assert_array_equal(first, again)
    assert sorted(first) == list(range(23))
    sizes = [batch for batch in DataLoader(Samples(X, y), batch_size=4, drop_last=True, collate_fn=len)]
    assert sizes == [4] * 5
    rows = list(DataLoader(X, batch_size=10))  # one array: each batch a tensor of its rows
    assert isinstance(rows[0], td.Tensor) and [r.shape for r in rows] == [(10, 3), (10, 3), (3, 3)]
    with pytest.raises(TypeError, match="cannot batch samples of type object"):
        next(iter(DataLoader([object(), object()], batch_size=2)))

    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the checks above still ran")
    from torch.utils.data import DataLoader as TorchLoader

    def torch_dataset(X, y):
        inner = Samples(X, y)

        class TorchSamples(torch.utils.data.Dataset):
            __len__ = lambda self: len(inner)  # noqa: E731
            __getitem__ = lambda self, i: (*inner[i][:2], {"scale": inner[i][2]["scale"],  # noqa: E731
                                                           "row": torch.from_numpy(X[i])}, inner[i][3])

        return TorchSamples()

    theirs = list(TorchLoader(torch_dataset(X, y), batch_size=5))
    for ours, reference in zip(batches, theirs):
        assert type(ours) is type(reference) and type(ours[2]) is type(reference[2]) and ours[3] == reference[3]
        for a, b in ((ours[0], reference[0]), (ours[1], reference[1]), (ours[2]["scale"], reference[2]["scale"]),
                     (ours[2]["row"], reference[2]["row"])):
            assert a.shape == tuple(b.shape) and str(a.dtype) == str(b.dtype).replace("torch.", "")
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    their_rows = list(TorchLoader(X, batch_size=10))
    assert all(isinstance(r, torch.Tensor) and tuple(r.shape) == o.shape for r, o in zip(their_rows, rows))


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
