"""Mini-batches over arrays that stay on their device (``td.data.DataLoader``).

Batches are views (slices) of the stored arrays when not shuffling, and one
gather per array when shuffling; the permutation is drawn on the host by a
NumPy generator (td's default one unless told otherwise, so td.manual_seed
repeats it, identically on every device) and copied to the device once per
epoch, so no batch costs a host-device copy.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import random
from ..backends import get_backend
from ..tensor import Tensor, from_numpy


class TensorDataset:
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


class DataLoader:
    """Iterate over a TensorDataset (or a tuple of arrays) in mini-batches.

    Each batch is a list of tensors (without gradients) on the data's device, as
    PyTorch's default collation gives for a TensorDataset. ``shuffle`` draws a
    fresh permutation every epoch from ``generator`` (a NumPy Generator, e.g.
    ``td.random.generator(seed=0)``) when given, else from one made once from
    ``seed`` (a shortcut of this library), else from td's default generator as
    the epoch starts: ``td.manual_seed(n)`` before the loop repeats the run bit for
    bit, as PyTorch's global seed does. ``drop_last`` drops a final short batch.
    ``num_workers`` and ``pin_memory`` are accepted for PyTorch scripts and do
    nothing: the batches are slices of arrays that already sit on their device.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, *, drop_last: bool = False,
                 generator=None, seed=None, num_workers: int = 0, pin_memory: bool = False):
        if isinstance(dataset, (tuple, list)):
            dataset = TensorDataset(*dataset)
        if not isinstance(dataset, TensorDataset):
            raise TypeError(f"DataLoader takes a TensorDataset or a tuple of arrays, got {type(dataset).__name__}")
        if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if generator is not None and not isinstance(generator, np.random.Generator):
            raise TypeError(f"generator must be a numpy.random.Generator (e.g. td.random.generator(seed=0)), got "
                            f"{type(generator).__name__}")
        if not isinstance(num_workers, numbers.Integral) or num_workers < 0:
            raise ValueError(f"num_workers must be a non-negative integer, got {num_workers!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.generator = generator
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
        tensors = self.dataset.tensors
        arrays = [t.array for t in tensors]
        backend = tensors[0]._backend
        n, b = len(self.dataset), self.batch_size
        stop = n - n % b if self.drop_last else n
        if self.shuffle:
            order = backend.asarray(self._permutation(n))
            for start in range(0, stop, b):
                index = order[start:start + b]
                yield [Tensor._wrap(a[index], backend) for a in arrays]
        else:
            for start in range(0, stop, b):
                yield [Tensor._wrap(a[start:start + b], backend) for a in arrays]


__all__ = ["TensorDataset", "DataLoader"]
