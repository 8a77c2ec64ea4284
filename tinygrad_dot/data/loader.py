"""Mini-batches (``td.data.DataLoader``) over arrays that stay on their device, or
over any map-style dataset (``__len__`` and ``__getitem__``, as PyTorch's).

For a TensorDataset (or a tuple of arrays) batches are views (slices) of the
stored arrays when not shuffling, and one gather per array when shuffling; the
permutation is drawn on the host by a NumPy generator (td's default one unless
told otherwise, so td.manual_seed repeats it, identically on every device) and
copied to the device once per epoch, so no batch costs a host-device copy.
Other datasets are read one sample at a time and collated, as PyTorch does.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import ops, random
from ..backends import get_backend
from ..tensor import Tensor, from_numpy


class Dataset:
    """Base of map-style datasets (torch.utils.data.Dataset): a subclass defines
    ``__len__`` and ``__getitem__(index)`` returning one sample."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


class TensorDataset(Dataset):
    """Arrays or tensors of equal length, indexed together along axis 0.

    NumPy and CuPy arrays are wrapped without copying; ``device=`` moves them
    (once) to a device.
    """

    def __init__(self, *arrays, device=None):
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        tensors = []
        for i, a in enumerate(arrays):
            t = a if isinstance(a, Tensor) else from_numpy(a) if isinstance(a, np.ndarray) else Tensor(a)
            if t.ndim == 0:
                raise ValueError(f"TensorDataset: array {i} is a scalar; each array needs a first (sample) axis")
            if device is not None and t.device != get_backend(device).name:
                t = t.detach().to(device)
            tensors.append(t.detach())
        lengths = {len(t) for t in tensors}
        if len(lengths) != 1:
            raise ValueError(f"TensorDataset: arrays have different lengths {[len(t) for t in tensors]}")
        devices = {t.device for t in tensors}
        if len(devices) != 1:
            raise ValueError(f"TensorDataset: arrays live on different devices {sorted(devices)}; pass device=")
        self.tensors = tuple(tensors)

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)


def default_collate(samples):
    """One batch from a list of samples, as PyTorch's default_collate: tensors are
    stacked (on their device), NumPy arrays and numbers become a tensor (Python
    floats float64, ints int64, as PyTorch), tuples and lists a list of collated
    fields, dicts a dict; strings stay as they are (a tuple within a tuple's fields)."""
    first = samples[0]
    if isinstance(first, Tensor):
        return ops.stack(samples)
    if isinstance(first, (np.ndarray, np.generic, numbers.Number)):
        return Tensor(np.asarray(samples) if isinstance(first, np.ndarray) else np.array(samples))
    if isinstance(first, str):
        return samples  # as given: a tuple inside a tuple of fields, as in PyTorch
    if isinstance(first, dict):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in samples):
            raise ValueError("default_collate: the samples of a batch hold different numbers of fields")
        return [default_collate(field) for field in zip(*samples)]
    raise TypeError(f"default_collate: cannot batch samples of type {type(first).__name__} (tensors, arrays, "
                    "numbers, strings, and tuples, lists or dicts of them); pass collate_fn=")


def _all_arrays(items) -> bool:
    return bool(items) and all(isinstance(a, (Tensor, np.ndarray)) or hasattr(a, "__cuda_array_interface__")
                               for a in items)


class DataLoader:
    """Iterate over a dataset in mini-batches.

    For a TensorDataset (or a tuple of arrays) each batch is a list of tensors
    (without gradients) on the data's device, for one array a tensor, as PyTorch's
    default collation gives;
    any other map-style dataset is read sample by sample and batched by
    ``collate_fn`` (default_collate by default). ``shuffle`` draws a fresh
    permutation every epoch from ``generator`` (a NumPy Generator, e.g.
    ``td.random.generator(seed=0)``) when given, else from one made once from
    ``seed`` (a shortcut of this library), else from td's default generator as
    the epoch starts: ``td.manual_seed(n)`` before the loop repeats the run bit for
    bit, as PyTorch's global seed does. ``drop_last`` drops a final short batch.
    ``num_workers`` and ``pin_memory`` are accepted for PyTorch scripts and do
    nothing: samples are read in this process.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, *, drop_last: bool = False,
                 generator=None, seed=None, collate_fn=None, num_workers: int = 0, pin_memory: bool = False):
        # One array: batches of its rows, each a tensor (what PyTorch gives), by slicing.
        self._single = _all_arrays([dataset])
        if self._single:
            dataset = TensorDataset(dataset)
        elif isinstance(dataset, (tuple, list)) and _all_arrays(dataset):
            dataset = TensorDataset(*dataset)
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"DataLoader takes a TensorDataset, a tuple of arrays or a map-style dataset "
                            f"(__len__ and __getitem__), got {type(dataset).__name__}")
        if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if generator is not None and not isinstance(generator, np.random.Generator):
            raise TypeError(f"generator must be a numpy.random.Generator (e.g. td.random.generator(seed=0)), got "
                            f"{type(generator).__name__}")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"collate_fn must be callable, got {type(collate_fn).__name__}")
        if not isinstance(num_workers, numbers.Integral) or num_workers < 0:
            raise ValueError(f"num_workers must be a non-negative integer, got {num_workers!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.generator = generator
        self.collate_fn = collate_fn
        # A seed's generator is made once, so that its epochs differ as an explicit
        # generator's do (random.generator refuses a seed with a generator).
        self._own = random.generator(generator, seed) if seed is not None else generator
        self.num_workers, self.pin_memory = int(num_workers), bool(pin_memory)

    def __len__(self) -> int:
        n, b = len(self.dataset), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def _permutation(self, n: int):
        """This epoch's order: td's default generator is looked up now, not when the loader
        was made, so a td.manual_seed between the two still takes effect."""
        return (self._own if self._own is not None else random.generator()).permutation(n)

    def __iter__(self):
        n, b = len(self.dataset), self.batch_size
        stop = n - n % b if self.drop_last else n
        if not isinstance(self.dataset, TensorDataset) or self.collate_fn is not None:
            order = self._permutation(n) if self.shuffle else range(n)
            collate = self.collate_fn or default_collate
            sample = self.dataset.tensors[0].__getitem__ if self._single else self.dataset.__getitem__
            for start in range(0, stop, b):
                yield collate([sample(int(i)) for i in order[start:start + b]])
            return
        tensors = self.dataset.tensors
        arrays = [t.array for t in tensors]
        backend = tensors[0]._backend
        if self.shuffle:
            order = backend.asarray(self._permutation(n))
            batches = ([Tensor._wrap(a[order[start:start + b]], backend) for a in arrays]
                       for start in range(0, stop, b))
        else:
            batches = ([Tensor._wrap(a[start:start + b], backend) for a in arrays] for start in range(0, stop, b))
        for batch in batches:
            yield batch[0] if self._single else batch


__all__ = ["Dataset", "TensorDataset", "DataLoader", "default_collate"]
