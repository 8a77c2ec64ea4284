"""Command line: ``python -m tinygrad_dot`` / ``tinygrad-dot``."""
from __future__ import annotations

import argparse
import sys

import numpy as np

import tinygrad_dot as td


def _demo(args) -> int:
    rng = np.random.default_rng(args.seed)
    a = rng.standard_normal((257, 129)).astype(np.float32)
    b = rng.standard_normal((129, 65)).astype(np.float32)
    reference = a.astype(np.float64) @ b.astype(np.float64)
    devices = ["cpu"] + (["cuda"] if td.cuda.is_available() else [])
    print("matmul 257x129 @ 129x65, float32, relative error against float64 NumPy:")
    for device in devices:
        out = (td.tensor(a, device=device) @ td.tensor(b, device=device)).numpy()
        err = np.linalg.norm(out - reference) / np.linalg.norm(reference)
        print(f"  {device:6s} rel. error {err:.2e}")
    if len(devices) == 1:
        print("  cuda   skipped: no CUDA GPU visible (td.cuda.is_available() is False)")

    x = td.tensor(rng.standard_normal((32, 3)).astype(np.float32))
    y = x @ td.tensor([[1.5], [-2.0], [0.5]]) + 0.25
    w = td.zeros(3, 1, requires_grad=True)
    bias = td.zeros(1, requires_grad=True)
    loss = ((x @ w + bias - y) ** 2).mean()
    loss.backward()
    with td.no_grad():
        w.array -= 0.1 * w.grad.array
        bias.array -= 0.1 * bias.grad.array
    after = ((x @ w + bias - y) ** 2).mean()
    print(f"one gradient-descent step on a linear model: loss {loss.item():.4f} -> {after.item():.4f}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tinygrad-dot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="matmul on every backend and a training step")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
