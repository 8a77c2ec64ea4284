"""Command line: ``tinygrad-dot`` / ``python -m tinygrad_dot``.

Train and use linear models on embedded datasets or your own CSV/NPZ files,
benchmark the GEMM kernels and the training loop, and see what this machine can
use. Each subcommand has --help with examples.
"""
from __future__ import annotations

import argparse
import sys

from . import bench, demo, info, train
from ._common import CliError, UsageError

EPILOG = """examples:
  tinygrad-dot demo
  tinygrad-dot train --dataset digits --epochs 30 --out runs/digits
  tinygrad-dot predict --model runs/digits/model.npz --data new_digits.csv
  tinygrad-dot bench
  tinygrad-dot info
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the examples' line breaks; show a default only where there is a real one."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.option_strings and not any(action.default is v for v in (None, True, False, argparse.SUPPRESS)):
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """A usage mistake is one line, ``tinygrad-dot <cmd>: error: ...``, exit status 2 (argparse's
    status), instead of the whole usage block; subcommand parsers inherit the class."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    import tinygrad_dot as td

    parser = _Parser(prog="tinygrad-dot", description=__doc__, epilog=EPILOG,
                                     formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"tinygrad_dot {td.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (train, demo, bench, info):
        module.add_parser(sub, _Formatter)
    return parser


def main(argv=None) -> int:
    """Exit status: 0 done, 1 an error (one line), 2 a usage mistake (one line naming the option),
    130 interrupted by Ctrl-C (one line; `train` then leaves no model file behind)."""
    args = build_parser().parse_args(argv)
    prog = f"tinygrad-dot {args.command}"
    try:
        return args.run(args)
    except UsageError as exc:  # the same line argparse gives, for a mistake seen only after parsing
        print(f"{prog}: error: {exc} (see {prog} --help)", file=sys.stderr)
        return 2
    except CliError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"{prog}: interrupted" + (f" {exc}" if str(exc) else ""), file=sys.stderr)
        return 130
