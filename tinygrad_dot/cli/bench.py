"""``tinygrad-dot bench``: run the GEMM benchmark (GPU) and the training
benchmark (CPU, and GPU when there is one) and print their tables.

The scripts are benchmarks/gemm.py and benchmarks/train.py: found in
$TINYGRAD_DOT_BENCHMARKS_DIR, in the wheel's tinygrad_dot/_benchmarks, or in
the source checkout's benchmarks/ folder, in that order.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ._common import CliError

HELP = "run the GEMM and training benchmarks for the available devices"
EPILOG = """examples:
  tinygrad-dot bench                      # everything this machine can run
  tinygrad-dot bench --only train         # the CPU/GPU training benchmark only
  tinygrad-dot bench --only train -- --rounds 2   # arguments after -- go to that script
  docker run --gpus all IMAGE bench       # in the project's Docker image

Results (JSON, Markdown, plots) go to --out (./tinygrad-dot-bench by default),
never into the source checkout's tracked benchmarks/results/; an --out or
--out-dir given to a script after -- takes precedence.
"""
SCRIPTS = {"gemm": "gemm.py", "train": "train.py"}
DEFAULT_OUT = "tinygrad-dot-bench"


def _output_args(name: str, out: Path, script_args: list) -> list:
    """Where the script writes its results, unless its own arguments already say."""
    if name == "train":
        given = any(a == "--out" or a.startswith("--out=") for a in script_args)
        return [] if given else ["--out", str(out / "cpu-train.json")]
    given = any(a == "--out-dir" or a.startswith("--out-dir=") for a in script_args)
    return [] if given else ["--out-dir", str(out)]


def benchmarks_dir() -> Path:
    package = Path(__file__).resolve().parents[1]
    candidates = [Path(os.environ["TINYGRAD_DOT_BENCHMARKS_DIR"])] if os.environ.get("TINYGRAD_DOT_BENCHMARKS_DIR") \
        else [package / "_benchmarks", package.parent / "benchmarks"]
    for folder in candidates:
        if any((folder / script).is_file() for script in SCRIPTS.values()):
            return folder
    raise CliError(f"benchmark scripts not found (looked in {', '.join(map(str, candidates))}); run from a source "
                   "checkout or set TINYGRAD_DOT_BENCHMARKS_DIR to its benchmarks/ folder")


def _gpu_reason() -> str | None:
    """None when a CUDA GPU is usable, else why not."""
    import tinygrad_dot as td

    if td.cuda.is_available():
        return None
    try:
        import cupy  # noqa: F401
    except ImportError:
        return "CuPy is not installed (pip install 'tinygrad_dot[cuda12]')"
    return "CuPy sees no usable CUDA GPU"


def run(args) -> int:
    if args.script_args and not args.only:
        raise CliError("arguments for a benchmark script need --only gemm or --only train (the scripts take "
                       "different options)")
    folder = benchmarks_dir()
    gpu_reason = _gpu_reason()
    out = Path(args.out).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create --out {out}: {exc}") from None
    out = out.resolve()
    print(f"results go to {out}", flush=True)
    failed = []
    for name in [args.only] if args.only else list(SCRIPTS):
        script = folder / SCRIPTS[name]
        if name == "gemm" and gpu_reason:
            print(f"== gemm: skipped, no GPU: {gpu_reason}", flush=True)
            continue
        if not script.is_file():
            print(f"== {name}: skipped, {script} is not there", flush=True)
            continue
        script_args = [*args.script_args, *_output_args(name, out, args.script_args)]
        print(f"== {name}: {sys.executable} {script} {' '.join(script_args)}".rstrip(), flush=True)
        # The scripts print their own tables; a failing one does not stop the other.
        code = subprocess.run([sys.executable, str(script), *script_args]).returncode
        if code != 0:
            failed.append(f"{name} (exit status {code})")
    if gpu_reason and args.only != "gemm":
        print(f"note: the training benchmark ran on the CPU only ({gpu_reason})")
    if failed:
        raise CliError(f"benchmark failed: {', '.join(failed)}")
    return 0


def add_parser(sub, formatter) -> None:
    p = sub.add_parser("bench", help=HELP, description=HELP + ".", epilog=EPILOG, formatter_class=formatter)
    p.add_argument("--only", choices=sorted(SCRIPTS), help="run one benchmark")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help="folder for the results (JSON, Markdown, plots); created if missing")
    p.add_argument("script_args", nargs="*", metavar="-- ARGS", help="passed to the benchmark script(s)")
    p.set_defaults(run=run)
