"""Pieces every subcommand uses: the user-error type, device choice, atomic
writes and an optional progress bar."""
from __future__ import annotations

import contextlib
import signal
import threading


class CliError(Exception):
    """A user mistake or an unusable environment: printed as one line, exit status 1."""


class UsageError(CliError):
    """A misuse of the options found after parsing (an option that does not apply to the input):
    one line like argparse's own, "argument --x: ...", exit status 2."""


def _checked_number(parse, accept, requirement: str):
    """An argparse ``type=``: parse the text, then check it. argparse prefixes the
    message with "argument --option: ", so a mistake names its option."""
    import argparse
    import math

    def check(text: str):
        try:
            value = parse(text)
        except ValueError:
            kind = "an integer" if parse is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not (math.isfinite(value) and accept(value)):
            raise argparse.ArgumentTypeError(f"{requirement}, got {text}")
        return value

    return check


positive_int = _checked_number(int, lambda v: v >= 1, "must be at least 1")
non_negative_int = _checked_number(int, lambda v: v >= 0, "must be a non-negative integer")
positive_float = _checked_number(float, lambda v: v > 0, "must be a positive number")
fraction = _checked_number(float, lambda v: 0.0 <= v < 1.0, "must be in [0, 1)")  # a number in [0, 1)


def non_empty_path(text: str) -> str:
    """An argparse ``type=`` for --out: an empty name would mean the current directory (or stdout)."""
    import argparse

    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty: give a path")
    return text


def column(text: str):
    """An argparse ``type=`` for --target: a 0-based column index (negative from the end), else a header name."""
    try:
        return int(text)
    except ValueError:
        return text


def delimiter(text: str) -> str:
    """An argparse ``type=`` for --delimiter: one character; 'tab' or '\\t' for a tab."""
    import argparse

    value = "\t" if text in ("tab", "\\t") else text
    if len(value) != 1 or value in "\"\r\n":
        raise argparse.ArgumentTypeError(f"must be one character other than a quote or newline (or 'tab'), "
                                         f"got {text!r}")
    return value


@contextlib.contextmanager
def ctrl_c_held():
    """Hold Ctrl-C (SIGINT) while the block runs, then raise KeyboardInterrupt if it came: a few
    file writes that should all happen or none. Only where Python's own handler is installed."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    received = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


def resolve_device(name: str) -> str:
    """'cpu', 'cuda', 'cuda:N' or 'auto' -> a device string, or CliError saying what is missing."""
    import tinygrad_dot as td

    if name == "auto":
        return "cuda" if td.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        try:
            td.zeros(1, device=name)
        except (RuntimeError, ValueError) as exc:
            raise CliError(f"--device {name}: {exc}") from None
    return name


def available_devices() -> list:
    import tinygrad_dot as td

    return ["cpu"] + (["cuda"] if td.cuda.is_available() else [])
