"""CPU training benchmark: tinygrad_dot against a hand-written NumPy loop and
PyTorch. The code is tinygrad_dot/bench/train.py (what `tinygrad-dot bench`
runs); from a checkout this script writes to benchmarks/results/, where the
README's figures come from.

    python benchmarks/train.py [--rounds 5] [--quick] [--device cuda] [--out FILE.json]
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # this checkout's package
from tinygrad_dot.bench.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(default_out=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "cpu-train.json")))
