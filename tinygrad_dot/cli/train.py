"""``tinygrad-dot train`` and ``tinygrad-dot predict``."""
from __future__ import annotations


def add_parser(sub, formatter) -> None:
    pass
