"""Where the CUDA sources are, and hashes over them.

In a checkout they live in kernels/ at the top of the repository; a wheel carries
them as tinygrad_dot/_kernels (see pyproject's force-include).
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=None)
def kernels_dir() -> Path:
    for candidate in (_PACKAGE / "_kernels", _PACKAGE.parent / "kernels"):
        if (candidate / "common.cuh").is_file():
            return candidate
    raise FileNotFoundError(f"CUDA kernel sources not found next to {_PACKAGE} "
                            "(expected kernels/ in a checkout or tinygrad_dot/_kernels in a wheel)")


def kernel_files(root: Path | None = None) -> list:
    """Every file under kernels/, in pathlib's sort order of their paths."""
    root = Path(root) if root is not None else kernels_dir()
    return sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).parts)


def kernels_sha256(root: Path | None = None) -> str:
    """sha256 over every file under kernels/ in sorted path order, each as its
    posix path from the repository root ("kernels/common.cuh"), a NUL byte,
    then its bytes: the same figure wherever the sources are installed."""
    root = Path(root) if root is not None else kernels_dir()
    h = hashlib.sha256()
    for p in kernel_files(root):
        h.update(("kernels/" + p.relative_to(root).as_posix()).encode())
        h.update(b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()


def read_source(name: str) -> str:
    return (kernels_dir() / name).read_text()


def cache_root() -> Path:
    """~/.cache/tinygrad_dot, or $TINYGRAD_DOT_CACHE_DIR."""
    env = os.environ.get("TINYGRAD_DOT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "tinygrad_dot"
