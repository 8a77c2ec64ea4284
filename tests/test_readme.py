"""README promises: the two quick-start commands, a library example that runs
and converges, and CLI examples the parser accepts."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_quick_start_is_exactly_the_two_make_targets():
    assert _blocks("sh")[0].split("\n")[:2] == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)


def test_library_example_runs_and_recovers_the_weights(capsys):
    code = _blocks("python")[0]
    assert len(code.strip().splitlines()) <= 14
    import tinygrad_dot.optim  # noqa: F401 - td.optim without relying on tinygrad_dot/__init__ importing it

    namespace = {}
    exec(compile(code, "README.md (python block)", "exec"), namespace)  # noqa: S102 - our own documentation
    np.testing.assert_allclose(namespace["w"].numpy().ravel(), [2.0, -1.0, 0.5], atol=1e-3)
    assert abs(namespace["b"].item() - 0.3) < 1e-3
    assert capsys.readouterr().out.startswith("loss ")


def test_models_example_runs(capsys):
    code = _blocks("python")[1]
    assert "models.LogisticRegression" in code
    namespace = {}
    exec(compile(code, "README.md (td.models block)", "exec"), namespace)  # noqa: S102 - our own documentation
    accuracy = float(capsys.readouterr().out.split()[0])
    assert accuracy > 0.95 and namespace["reg"].get_params()["device"] == "cuda"


def test_cli_examples_parse():
    from tinygrad_dot.cli import build_parser

    parser = build_parser()
    commands = [line.split("#")[0].strip() for block in _blocks("sh") for line in block.splitlines()
                if line.startswith("tinygrad-dot ")]
    assert {c.split()[1] for c in commands} >= {"train", "predict", "bench", "info", "demo"}
    for command in commands:
        parser.parse_args(shlex.split(command)[1:])  # SystemExit(2) on an option that does not exist


def test_gpu_section_does_not_invent_figures():
    section = README.split("## GPU benchmarks")[1].split("\n## ")[0]
    assert "No GPU measurement exists yet" in section and "gpu_check.sh" in section
    assert not re.search(r"\d+(\.\d+)?\s*(TFLOP|GFLOP)", README)
