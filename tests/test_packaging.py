"""A non-editable install must carry the kernels and the datasets."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("hatchling", reason="the wheel build needs hatchling (in the test extras)")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(out)], check=True)
    (path,) = out.glob("tinygrad_dot-*.whl")
    return path


def test_wheel_carries_every_kernel_source(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for source in (ROOT / "kernels").rglob("*"):
        if source.is_file():
            assert f"tinygrad_dot/_kernels/{source.relative_to(ROOT / 'kernels').as_posix()}" in names


def test_installed_wheel_finds_its_kernels_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(wheel)], check=True)
    probe = ("from tinygrad_dot.gemm.sources import kernels_dir; import tinygrad_dot as td;"
             "print(kernels_dir()); print(td.matmul(td.ones(2, 3), td.ones(3, 2)).numpy().sum())")
    env = dict(os.environ, PYTHONPATH=str(target))
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env,
                            capture_output=True, text=True, check=True)
    kernels_path, total = result.stdout.split()
    assert Path(kernels_path).is_relative_to(target) and kernels_path.endswith("_kernels")
    assert float(total) == 12.0
