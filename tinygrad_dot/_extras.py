"""What to type to get an optional extra, worded so that it works as printed for
the reader: tinygrad_dot is installed from a checkout or a wheel, not from a
package index, so asking pip for ``tinygrad_dot[plot]`` would fetch nothing (or
someone else's package). The hint names the extra's own requirements, read from
the installed package's metadata (one home for them: pyproject.toml), and the
pip of the environment this package runs in."""
from __future__ import annotations

import re
import shlex
import shutil
import sys
from pathlib import Path


def requirements(extra: str) -> list:
    """The extra's requirements as the installed metadata lists them (``['matplotlib>=3.6']``);
    [] for a source tree on sys.path that was never installed (no metadata to read)."""
    from importlib import metadata

    try:
        requires = metadata.requires("tinygrad_dot") or []
    except metadata.PackageNotFoundError:
        return []
    wanted = re.compile(r"""\bextra\s*==\s*["']%s["']""" % re.escape(extra))
    return [req.split(";", 1)[0].strip() for req in requires if ";" in req and wanted.search(req.split(";", 1)[1])]


def pip_command() -> str:
    """``pip`` when the pip on PATH belongs to this interpreter's environment (an activated
    venv, the Docker image); otherwise this interpreter's ``-m pip``: after ``make`` a bare
    ``pip`` is usually the system's and would install where this package cannot see it."""
    found = shutil.which("pip")
    if found and Path(found).parent == Path(sys.executable).parent:
        return "pip"
    return f"{shlex.quote(sys.executable)} -m pip"


def pip_install(*packages: str) -> str:
    return " ".join([pip_command(), "install", *map(shlex.quote, packages)])


def install_hint(extra: str) -> str:
    """``pip install 'matplotlib>=3.6'`` for ``install_hint("plot")``."""
    found = requirements(extra)
    if not found:
        return f"pip install '.[{extra}]' in the source checkout"
    return pip_install(*found)


def cuda_hint() -> str:
    """CuPy comes in one build per CUDA major version; the extra must match the driver's."""
    return f"{install_hint('cuda12')} for CUDA 12, {install_hint('cuda13')} for CUDA 13"
