"""``td.cuda``: what CUDA hardware this process can use. Nothing here raises."""
from __future__ import annotations

from .backends.cupy_backend import gpu_count


def device_count() -> int:
    """Number of CUDA GPUs visible through CuPy (0 without CuPy, driver or GPU)."""
    return gpu_count()


def is_available() -> bool:
    """True when CuPy imports and at least one CUDA GPU is visible."""
    return gpu_count() > 0
