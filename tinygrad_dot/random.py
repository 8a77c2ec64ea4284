"""The default random generator: ``td.manual_seed(n)`` makes every draw that is
not given its own seed or generator (td.randn, nn.init, nn.Linear's
initialization) reproducible. Draws happen on the host, so a seed gives the same
numbers on every device."""
from __future__ import annotations

import numpy as np

_default = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the default generator (and return it)."""
    global _default
    _default = np.random.default_rng(seed)
    return _default


def generator(generator=None, seed=None) -> np.random.Generator:
    """The generator a draw should use: an explicit one, a fresh one from a seed,
    or the default."""
    if generator is not None and seed is not None:
        raise ValueError("pass seed or generator, not both")
    if generator is not None:
        return generator
    return np.random.default_rng(seed) if seed is not None else _default
