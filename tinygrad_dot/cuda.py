"""``td.cuda``: what CUDA hardware this process can use (``device_count``,
``is_available``: they never raise), and CUDA graphs (``CUDAGraph``, ``graph``:
capture a training step once, replay it; on "cuda:N" and on "emu", see
tinygrad_dot/runtime/graphs.py and docs/cuda_graphs.md)."""
from __future__ import annotations

from .backends.cupy_backend import gpu_count
from .runtime.graphs import CaptureError, CUDAGraph, graph

__all__ = ["device_count", "is_available", "CUDAGraph", "graph", "CaptureError"]


def device_count() -> int:
    """Number of CUDA GPUs visible through CuPy (0 without CuPy, driver or GPU)."""
    return gpu_count()


def is_available() -> bool:
    """True when CuPy imports and at least one CUDA GPU is visible."""
    return gpu_count() > 0
