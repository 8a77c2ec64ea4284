"""Array backends: one per device kind, behind one small interface.

The autograd layer never imports NumPy or CuPy for its math: it asks a
tensor's backend for the array module (``xp``) and for the few primitives that
differ between libraries (matmul dispatch, scatter-add, host transfers).
"""
from __future__ import annotations

import re
from functools import lru_cache

from .base import Backend

__all__ = ["Backend", "canonical_device", "get_backend"]

_DEVICE_RE = re.compile(r"^(cpu|cuda|emu)(?::(\d+))?$")


def canonical_device(device) -> str:
    """'cpu', 'cuda', 'cuda:N', 'emu' (or a Backend) -> 'cpu', 'cuda:N' or 'emu'."""
    if device is None:
        return "cpu"
    if isinstance(device, Backend):
        return device.name
    text = str(device).strip().lower()
    match = _DEVICE_RE.match(text)
    if match is None:
        raise ValueError(f"unknown device {device!r}: expected 'cpu', 'cuda', 'cuda:N' or 'emu' (CUDA emulated "
                         "on the CPU)")
    kind, index = match.groups()
    if kind in ("cpu", "emu"):
        if index not in (None, "0"):
            raise ValueError(f"unknown device {device!r}: there is one {kind} device, {kind!r}")
        return kind
    return f"cuda:{int(index or 0)}"


@lru_cache(maxsize=None)
def _backend_for(name: str) -> Backend:
    if name == "cpu":
        from .numpy_backend import NumpyBackend

        return NumpyBackend()
    if name == "emu":
        from .emulated_backend import EmulatedBackend

        return EmulatedBackend()
    from .cupy_backend import CupyBackend

    return CupyBackend(int(name.split(":")[1]))


def get_backend(device=None) -> Backend:
    """The (cached) backend object for a device spec."""
    if isinstance(device, Backend):
        return device
    return _backend_for(canonical_device(device))
