"""A non-editable install must carry the kernels and the datasets, and every
subcommand of the installed `tinygrad-dot` must work outside the checkout."""
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

pytest.importorskip("hatchling", reason="the wheel build needs hatchling (in the test extras)")
requirements = pytest.importorskip("packaging.requirements", reason="reading requirements needs packaging")


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


# ------------------------------------------------------------ the wheel in a fresh virtual environment


def _runtime_distributions(extra: str) -> set:
    """The distributions `pip install '.[extra]'` would bring, found in this environment by
    following each one's declared requirements (markers evaluated for this interpreter)."""
    project = PYPROJECT["project"]
    pending = [*project["dependencies"], *project["optional-dependencies"][extra]]
    found = set()
    while pending:
        req = requirements.Requirement(pending.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        dist = metadata.distribution(req.name)
        if dist.metadata["Name"] not in found:
            found.add(dist.metadata["Name"])
            pending += dist.requires or []
    return found


def _link_distributions(names: set, folder: Path) -> None:
    """Symlink each distribution's top-level files and folders (its packages, bundled libraries,
    metadata) into folder: a site directory holding exactly those, and not tinygrad_dot."""
    for name in names:
        dist = metadata.distribution(name)
        if dist.files is None:
            pytest.skip(f"{name} was installed without a file list (RECORD); cannot reuse it offline")
        for top in {f.parts[0] for f in dist.files if f.parts[0] not in ("..", "__pycache__")}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (folder / top).exists():
                (folder / top).symlink_to(source)


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed by pip, as a user would (not editable), offline: its
    runtime requirements (NumPy, and scikit-learn and SciPy for the models extra) come from this
    environment through a .pth line placed after the venv's own site-packages. Neither the
    checkout nor the test extras (PyTorch, matplotlib, CuPy) are visible to it."""
    home = tmp_path_factory.mktemp("repository") / "venv"
    if shutil.which("git"):  # as a .venv in a checkout: no figure of the installed copy may take its commit
        subprocess.run(["git", "init", "--quiet", str(home.parent)], check=True)
        subprocess.run(["git", "-C", str(home.parent), "-c", "user.name=t", "-c", "user.email=t@example.org",
                        "commit", "--quiet", "--allow-empty", "-m", "a commit the installed copy must not claim"],
                       check=True)
    venv.create(home, with_pip=False)  # ensurepip would add seconds; this environment's pip installs into it
    python = home / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    deps = tmp_path_factory.mktemp("deps")
    _link_distributions(_runtime_distributions("models"), deps)
    (site / "zz_runtime_requirements.pth").write_text(f"{deps}\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "--no-deps",
                    "--quiet", "--disable-pip-version-check", str(wheel)], check=True)
    return home


def _run(installed: Path, cwd: Path, *args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "TINYGRAD_DOT_"))}
    env.update(PATH=f"{installed / 'bin'}{os.pathsep}{env.get('PATH', '')}", PYTHONNOUSERSITE="1",
               TINYGRAD_DOT_CACHE_DIR=str(cwd / "cache"))
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


@pytest.mark.slow  # about 20 s: a wheel, a venv, six processes each importing NumPy (and scikit-learn)
def test_every_subcommand_runs_from_the_installed_wheel_outside_the_checkout(installed, tmp_path):
    version = PYPROJECT["project"]["version"]
    probe = _run(installed, tmp_path, installed / "bin" / "python", "-c",
                 "import tinygrad_dot as td; from tinygrad_dot.cli.bench import gemm_script\n"
                 "print(td.__file__, td.__version__, gemm_script())")
    package_file, reported_version, gemm = probe.stdout.split()
    assert Path(package_file).is_relative_to(installed) and not Path(package_file).is_relative_to(ROOT)
    assert reported_version == version and gemm == "None"  # the metadata's version; no checkout's script

    tdcli = installed / "bin" / "tinygrad-dot"  # the console script pip wrote
    done = _run(installed, tmp_path, tdcli, "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"tinygrad_dot {version}"

    done = _run(installed, tmp_path, tdcli, "info", "--json")
    facts = json.loads(done.stdout)
    assert Path(facts["package"]).is_relative_to(installed) and Path(facts["kernels"]["path"]).is_relative_to(installed)
    assert facts["tinygrad_dot"] == version and facts["kernels"]["files"] > 0
    assert facts["cupy"].startswith(f"not installed ({python_pip(installed)} install 'cupy-cuda12x>=")

    done = _run(installed, tmp_path, tdcli, "demo", "--max-iter", "30")
    assert done.returncode == 0, done.stderr
    assert float(re.search(r"digits .* accuracy ([\d.]+)", done.stdout)[1]) > 0.9

    # Stochastic, so that it would plot: matplotlib is not there, and the hint says what works in this venv.
    done = _run(installed, tmp_path, tdcli, "train", "--dataset", "iris", "--epochs", "20", "--out", "run")
    assert done.returncode == 0, done.stderr
    assert f"for a loss-curve plot: {python_pip(installed)} install 'matplotlib>=" in done.stdout
    flowers = np.array([[5.1, 3.5, 1.4, 0.2, 0], [6.7, 3.0, 5.2, 2.3, 2]])
    np.savetxt(tmp_path / "flowers.csv", flowers, delimiter=",", fmt="%g")
    done = _run(installed, tmp_path, tdcli, "predict", "--model", "run/model.npz", "--data", "flowers.csv",
                "--out", "predictions.csv")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "predictions.csv").read_text().split()[-2:] == ["0", "2"]

    done = _run(installed, tmp_path, tdcli, "bench", "--quick")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "gemm: skipped, no GPU: CuPy is not installed" in done.stdout
    report = json.loads((tmp_path / "tinygrad-dot-bench" / "cpu-train.json").read_text())
    assert report["protocol"]["n"] == 12000 and report["check"]["tinygrad_dot"]["loss"] == 1.05512
    assert "torch_missing" in report  # PyTorch is a test extra: not in this venv
    assert report["machine"]["commit"] == ""  # an installed copy is no commit's code

    done = _run(installed, tmp_path, tdcli, "bench", "--only", "models", "--quick", "--",
                "--only", "iris", "--repeats-small", "1", "--settle", "0")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((tmp_path / "tinygrad-dot-bench" / "cpu-models.json").read_text())
    assert [row["dataset"] for row in report["rows"]] == ["iris"] and report["rows"][0]["td_score"] > 0.8
    assert report["machine"]["commit"] == "" and report["machine"]["note"] == "not a git checkout"


def python_pip(installed: Path) -> str:
    """The pip command a hint gives in the venv: its own interpreter's, as no pip of its own is on PATH."""
    return f"{installed / 'bin' / 'python'} -m pip"


def _install_hints(text: str) -> list:
    return re.findall(r"pip install\s+(\S+)", text.replace("\n", " "))


# The lead's backend still says `pip install 'tinygrad_dot[cuda12]'`; it is to use
# tinygrad_dot._extras.cuda_hint() like the CLI. Listed here until then (the test fails once it is
# fixed, so that the exemption goes too).
NOT_YET_FIXED = set()


def test_install_hints_in_readme_and_package_are_ones_that_work_from_a_checkout():
    """`pip install 'tinygrad_dot[plot]'` would ask a package index for tinygrad_dot, which is
    installed from its checkout: README says '.[plot]', the package names the extra's requirements."""
    sources = [ROOT / "README.md", ROOT / "Dockerfile", *sorted((ROOT / "tinygrad_dot").rglob("*.py"))]
    declared = set(PYPROJECT["project"]["optional-dependencies"])
    for path in sources:
        name = path.relative_to(ROOT).as_posix()
        targets = _install_hints(path.read_text())
        by_name = [t for t in targets if t.strip("'\"`(").startswith("tinygrad_dot")]
        assert bool(by_name) == (name in NOT_YET_FIXED), (name, by_name)
        for target in targets:
            extras = re.search(r"\.\[([\w,-]+)\]", target)
            assert extras is None or set(extras[1].split(",")) <= declared, f"{name}: pip install {target}"
