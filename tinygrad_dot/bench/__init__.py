"""Benchmarks that ship with the package, so that ``tinygrad-dot bench`` works
wherever it is installed: ``train`` (softmax regression on the CPU, and on a GPU
when asked, against a hand-written NumPy loop and PyTorch) and ``models``
(td.models against scikit-learn). The scripts in the source checkout's
benchmarks/ folder call these modules."""
from __future__ import annotations

import os


def checkout_root() -> str | None:
    """The source checkout this package runs from (where a figure's commit is read), or None for an
    installed copy: only a checkout has pyproject.toml above the package, while site-packages may
    lie inside some other repository (a .venv in a checkout) whose commit says nothing about it."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # above tinygrad_dot/
    return root if os.path.isfile(os.path.join(root, "pyproject.toml")) else None
