"""``tinygrad-dot bench``: the training benchmark (softmax regression against a
hand-written NumPy loop and PyTorch; on the CPU, and on the GPU when there is
one) and, with a GPU, the GEMM benchmark (our kernels against cuBLAS); on
request (--only models) td.models against scikit-learn.

The training and models benchmarks are package code (tinygrad_dot/bench/), so
they run wherever the package is installed. The GEMM benchmark is still a script of the
source checkout, benchmarks/gemm.py: it is run when a checkout is at hand
($TINYGRAD_DOT_BENCHMARKS_DIR, as in the Docker image; the checkout this package
was imported from; the current directory); otherwise bench says how to run it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ._common import CliError

HELP = "run the training benchmark, and the GEMM benchmark on a GPU"
EPILOG = """examples:
  tinygrad-dot bench                      # the training benchmark, and the GEMM one on a GPU
  tinygrad-dot bench --quick              # seconds: checks that this installation trains correctly
  tinygrad-dot bench --only train -- --rounds 9   # arguments after -- go to that benchmark
  tinygrad-dot bench --only models        # td.models against scikit-learn (minutes; --quick: seconds)
  docker run --gpus all IMAGE bench       # in the project's Docker image

Results (JSON, Markdown, plots) go to --out (./tinygrad-dot-bench by default),
never into the source checkout's tracked benchmarks/results/; an --out or
--out-dir given to a benchmark after -- takes precedence.
"""
DEFAULT = ("gemm", "train")  # what runs without --only, in this order (GEMM before PyTorch's threads exist)
# The benchmarks in tinygrad_dot/bench/: name -> (results file, extra it needs and a module that
# shows the extra is there, or None). Each module's main(argv) takes --quick and --out.
PACKAGED = {"train": ("cpu-train.json", None), "models": ("cpu-models.json", ("models", "sklearn"))}
DEFAULT_OUT = "tinygrad-dot-bench"


def _given(flag: str, args: list) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)


def gemm_script() -> Path | None:
    """benchmarks/gemm.py of a source checkout: $TINYGRAD_DOT_BENCHMARKS_DIR's when set; else that
    of the checkout this package runs from (an editable install), else that of the checkout in the
    current directory (a wheel installed from it); None elsewhere."""
    folder = os.environ.get("TINYGRAD_DOT_BENCHMARKS_DIR")
    if folder:
        candidates = [Path(folder) / "gemm.py"]
    else:  # a checkout has pyproject.toml at its top; site-packages, above an installed wheel, has not
        roots = (Path(__file__).resolve().parents[2], Path.cwd())
        candidates = [root / "benchmarks" / "gemm.py" for root in roots if (root / "pyproject.toml").is_file()]
    return next((c for c in candidates if c.is_file()), None)


def _gpu_reason() -> str | None:
    """None when a CUDA GPU is usable, else why not."""
    import importlib.util

    import tinygrad_dot as td
    from tinygrad_dot._extras import cuda_hint

    if td.cuda.is_available():
        return None
    if importlib.util.find_spec("cupy") is None:
        return f"CuPy is not installed ({cuda_hint()})"
    return "CuPy sees no usable CUDA GPU"


def _run_gemm(args, out: Path, gpu_reason: str | None) -> int | None:
    """The GEMM script's exit status, or None when it could not run here (said why)."""
    if gpu_reason:
        print(f"== gemm: skipped, no GPU: {gpu_reason}", flush=True)
        return None
    script = gemm_script()
    if script is None:
        print("== gemm: skipped: the GEMM benchmark is benchmarks/gemm.py in the source checkout, not part of "
              "the installed package; run `tinygrad-dot bench` in the checkout (or `make bench` there), or point "
              "TINYGRAD_DOT_BENCHMARKS_DIR at its benchmarks/ folder", flush=True)
        return None
    script_args = list(args.script_args)
    if args.quick and not _given("--quick", script_args):
        script_args.append("--quick")
    if not _given("--out-dir", script_args):
        script_args += ["--out-dir", str(out)]
    print(f"== gemm: {sys.executable} {script} {' '.join(script_args)}", flush=True)
    return subprocess.run([sys.executable, str(script), *script_args]).returncode


def _run_packaged(name: str, args, out: Path, gpu_reason: str | None) -> int:
    """Run tinygrad_dot.bench.<name> in this process (the installed package's own code)."""
    import importlib
    import importlib.util

    from tinygrad_dot._extras import install_hint

    results, needs = PACKAGED[name]
    if needs and importlib.util.find_spec(needs[1]) is None:
        raise CliError(f"the {name} benchmark needs the {needs[0]} extra: {install_hint(needs[0])}")
    bench_args = list(args.script_args)
    if args.quick and not _given("--quick", bench_args):
        bench_args.append("--quick")
    if name == "train" and gpu_reason is None and not _given("--device", bench_args):
        bench_args += ["--device", "cuda"]
    if not _given("--out", bench_args):
        bench_args += ["--out", str(out / results)]
    print(f"== {name}: python -m tinygrad_dot.bench.{name} {' '.join(bench_args)}", flush=True)
    try:
        return importlib.import_module(f"tinygrad_dot.bench.{name}").main(bench_args)
    except SystemExit as exc:  # its own argparse refusing an argument given after --
        return exc.code if isinstance(exc.code, int) else 2


def run(args) -> int:
    if args.script_args and not args.only:
        raise CliError("arguments after -- need --only (the benchmarks take different options)")
    gpu_reason = _gpu_reason()
    if args.only == "gemm" and gpu_reason:
        raise CliError(f"the GEMM benchmark needs a GPU: {gpu_reason}")
    if args.only == "gemm" and gemm_script() is None:
        raise CliError("the GEMM benchmark is benchmarks/gemm.py in the source checkout; run this in the "
                       "checkout, or set TINYGRAD_DOT_BENCHMARKS_DIR to its benchmarks/ folder")
    out = Path(args.out).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create --out {out}: {exc}") from None
    out = out.resolve()
    print(f"results go to {out}", flush=True)
    failed = []
    for name in [args.only] if args.only else DEFAULT:
        # Each prints its own table; one failing does not stop the other.
        code = _run_gemm(args, out, gpu_reason) if name == "gemm" else _run_packaged(name, args, out, gpu_reason)
        if code:
            failed.append(f"{name} (exit status {code})")
    if gpu_reason and args.only in (None, "train"):
        print("note: the training benchmark ran on the CPU only (no usable GPU: see above, or `tinygrad-dot info`)")
    if failed:
        raise CliError(f"benchmark failed: {', '.join(failed)}")
    return 0


def add_parser(sub, formatter) -> None:
    p = sub.add_parser("bench", help=HELP, description=HELP + ".", epilog=EPILOG, formatter_class=formatter)
    p.add_argument("--only", choices=("gemm", *PACKAGED), help="run this benchmark alone")
    p.add_argument("--quick", action="store_true",
                   help="smaller problems, fewer rounds: a check of this installation, not figures to quote")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help="folder for the results (JSON, Markdown, plots); created if missing")
    p.add_argument("script_args", nargs="*", metavar="-- ARGS", help="passed to the benchmark given by --only")
    p.set_defaults(run=run)
