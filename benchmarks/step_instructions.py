"""Instructions per CPU training step, counted by valgrind's callgrind: a cost
measure that, unlike time on a shared machine, repeats to the instruction.

The step is issue 4's protocol in miniature: nn.Linear(784, 10) on a 256-row
float32 batch, cross_entropy, backward, SGD, with one BLAS thread. The count
for 1 and for 3 passes over 20 batches is taken, and the difference divided by
40 steps, so start-up and data generation cancel out. Compare two versions of
the code by pointing ``--source`` at each (a git worktree of the older commit):

    python benchmarks/step_instructions.py                       # this checkout
    git worktree add /tmp/old 83e02b8
    python benchmarks/step_instructions.py --source /tmp/old     # the same, at 83e02b8

Needs valgrind (Debian's package). Measured on 2026-12-03 (PYTHONHASHSEED=0,
the same figure on every run): 2.193M instructions per step at 83e02b8, 2.216M
at 7a832ee with issue 10's version counters (+1.05%, inside its 2% budget).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

STEP = """
import sys
import numpy as np
from threadpoolctl import threadpool_limits
import tinygrad_dot as td
from tinygrad_dot.nn import functional as F
rng = np.random.default_rng(0)
X = rng.standard_normal((256 * 20, 784), dtype=np.float32)
y = rng.integers(0, 10, len(X))
with threadpool_limits(1):
    model = td.nn.Linear(784, 10)
    opt = td.optim.SGD(model.parameters(), lr=0.1)
    xs = [td.tensor(X[i:i + 256]) for i in range(0, len(X), 256)]
    ys = [td.tensor(y[i:i + 256]) for i in range(0, len(X), 256)]
    for _ in range(int(sys.argv[1])):
        for xb, yb in zip(xs, ys):
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
"""


def instructions(source: str, passes: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "step.py")
        with open(script, "w") as f:
            f.write(STEP)
        env = {**os.environ, "PYTHONPATH": source, "OPENBLAS_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
        run = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out", sys.executable,
                              script, str(passes)], cwd=tmp, env=env, capture_output=True, text=True, check=True)
    return int(re.search(r"Collected : (\d+)", run.stderr).group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."),
                        help="the source tree to measure (default: this checkout)")
    args = parser.parse_args()
    one, three = instructions(args.source, 1), instructions(args.source, 3)
    print(f"{(three - one) / 40 / 1e6:.3f}M instructions per step ({os.path.abspath(args.source)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
