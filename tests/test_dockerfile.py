"""The Dockerfile cannot be built here (no Docker engine): check statically that
it is pinned, installs extras pyproject really declares, and runs the CLI."""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _instructions(keyword: str) -> list:
    text = re.sub(r"\\\n", " ", DOCKERFILE)  # join continued lines
    return [line.split(None, 1)[1] for line in text.splitlines() if line.strip().startswith(keyword + " ")]


def test_base_is_an_official_pinned_cuda12_runtime_image():
    (base,) = _instructions("FROM")
    assert re.fullmatch(r"nvidia/cuda:12\.\d+\.\d+-runtime-ubuntu\d\d\.\d\d", base), base


def test_installs_the_package_with_declared_extras_including_cuda12():
    installs = [r for r in _instructions("RUN") if "pip install" in r]
    extras = re.findall(r'pip install "\.\[([\w,-]+)\]"', " ".join(installs))
    assert len(extras) == 1, installs
    requested = set(extras[0].split(","))
    declared = set(PYPROJECT["project"]["optional-dependencies"])
    assert "cuda12" in requested and requested <= declared, (requested, declared)


def test_entrypoint_is_the_console_script():
    (entry,) = _instructions("ENTRYPOINT")
    assert json.loads(entry) == ["tinygrad-dot"]
    assert PYPROJECT["project"]["scripts"]["tinygrad-dot"] == "tinygrad_dot.cli:main"


def test_bench_finds_the_copied_benchmarks_and_the_context_skips_local_state():
    (workdir,) = _instructions("WORKDIR")
    assert f"TINYGRAD_DOT_BENCHMARKS_DIR={workdir}/benchmarks" in " ".join(_instructions("ENV"))
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored
