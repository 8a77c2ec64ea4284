"""``tinygrad-dot demo`` (what ``make demo`` runs)."""
from __future__ import annotations

import numpy as np

import tinygrad_dot as td

HELP = "train on embedded datasets on every available device"
EPILOG = """examples:
  tinygrad-dot demo
  python -m tinygrad_dot demo --seed 1
"""


def _matmul_demo(args) -> int:
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



def run(args) -> int:
    return _matmul_demo(args)


def add_parser(sub, formatter) -> None:
    p = sub.add_parser("demo", help=HELP, description=HELP + ".", epilog=EPILOG, formatter_class=formatter)
    p.add_argument("--seed", type=int, default=0, help="seed for data and initialization")
    p.set_defaults(run=run)
