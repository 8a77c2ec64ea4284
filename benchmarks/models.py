"""td.models against scikit-learn on the CPU (issue 12's benchmark). The code is
tinygrad_dot/bench/models.py (what `tinygrad-dot bench --only models` runs);
this script runs it on this checkout's package, writing where that module's
--out says (./tinygrad-dot-bench/cpu-models.json unless given).

    python benchmarks/models.py [--quick] [--runs 3] [--profile] [--out FILE.json]
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # this checkout's package
from tinygrad_dot.bench.models import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
