"""Shared test fixtures. GPU tests carry the ``gpu`` marker and are skipped,
with the reason, where no CUDA GPU can be used."""
from __future__ import annotations

import numpy as np
import pytest


def _gpu_skip_reason():
    try:
        import cupy
    except ImportError:
        from tinygrad_dot._extras import cuda_hint

        return f"no GPU: CuPy is not installed ({cuda_hint()})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return f"no GPU: CuPy cannot reach a CUDA device ({type(exc).__name__}: {exc})"
    return None if count > 0 else "no GPU: CuPy sees 0 CUDA devices"


def pytest_collection_modifyitems(config, items):
    reason = _gpu_skip_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def iris():
    """The embedded iris split, standardized, in float64 (estimator tests)."""
    from tinygrad_dot.data import load_dataset

    return load_dataset("iris", standardize=True, dtype=np.float64)


@pytest.fixture(scope="session")
def cancer():
    """The embedded breast-cancer split, standardized, in float64 (estimator tests)."""
    from tinygrad_dot.data import load_dataset

    return load_dataset("breast_cancer", standardize=True, dtype=np.float64)


@pytest.fixture
def rng(request):
    """A fresh generator per test, seeded from the test name so failures reproduce."""
    import zlib

    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def max_rel_error(actual, reference) -> float:
    """max|actual - reference| / max|reference| in float64 (0 for empty arrays); a NaN in
    actual makes it NaN, which fails every `< tol` (how poisoned outputs show)."""
    actual = np.asarray(actual, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if not reference.size:
        return 0.0
    return float(np.max(np.abs(actual - reference)) / max(np.max(np.abs(reference)), 1e-30))


def rel_error(actual, reference) -> float:
    """||actual - reference|| / ||reference|| in float64; NaN anywhere gives inf."""
    actual = np.asarray(actual, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if not np.all(np.isfinite(actual)):
        return float("inf")
    scale = np.linalg.norm(reference)
    diff = np.linalg.norm(actual - reference)
    return float(diff / scale) if scale > 0 else float(diff)


def graphed_losses(step, steps: int, device: str = "emu"):
    """Losses of ``steps`` training steps taken the CUDA-graph way: ``step()`` (which returns
    the loss tensor) once eagerly as the warm-up, then captured once (a capture takes no
    step) and replayed ``steps - 1`` times; the losses as one array."""
    import tinygrad_dot as td

    losses = [step().numpy()]
    graph = td.cuda.CUDAGraph()
    with td.cuda.graph(graph, device=device):
        static_loss = step()
    for _ in range(steps - 1):
        graph.replay()
        losses.append(static_loss.numpy())
    return np.array(losses)
