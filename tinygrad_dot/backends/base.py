"""The interface every array backend implements."""
from __future__ import annotations

import contextlib


class Backend:
    """One device's array library.

    ``xp`` is the NumPy-compatible array module (numpy or cupy); the methods
    cover what ``xp`` spells differently or what the project implements itself.
    """

    name: str = "?"
    xp = None

    def scope(self):
        """Context in which this device is current (a no-op on the CPU)."""
        return contextlib.nullcontext()

    def asarray(self, data, dtype=None):
        """Host or device data -> an array on this device."""
        raise NotImplementedError

    def to_numpy(self, array):
        """A host (NumPy) copy of an array of this backend."""
        raise NotImplementedError

    def matmul(self, a, b, kernel: str = "auto"):
        """numpy.matmul for arrays of ndim >= 2 (already shape-checked)."""
        raise NotImplementedError

    def scatter_add(self, target, index, values) -> None:
        """target[index] += values, accumulating repeated indices."""
        raise NotImplementedError

    def column_sums(self, x, weights=None):
        """Sum over the rows of a 2-D array, each row times its weight when weights
        (1-D, one per row) are given: the bias gradients and the estimators' weighted
        means. A backend primitive, never a one-row product through the GEMM
        dispatch (and its autotuner)."""
        raise NotImplementedError

    def row_sums(self, x):
        """Sum over the columns of a 2-D array, one value per row (softmax's normalizers)."""
        raise NotImplementedError

    def is_array(self, obj) -> bool:
        return isinstance(obj, self.xp.ndarray)

    # A backend *is* its device: equal by name, and pickled (or deep-copied) as the name,
    # so a copy resolves to the one cached backend of that device (get_backend).
    def __eq__(self, other) -> bool:
        return self is other or (isinstance(other, Backend) and self.name == other.name)

    def __hash__(self) -> int:
        return hash(self.name)

    def __reduce__(self):
        from . import get_backend

        return get_backend, (self.name,)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
