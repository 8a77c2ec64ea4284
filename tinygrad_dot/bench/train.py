"""Training benchmark (issue 4's reference protocol) and per-op tape overhead.

Softmax regression on X[60000, 784] float32 (numpy.random.default_rng(0)),
10 classes with labels argmax(X @ W_true + Gumbel noise), W_true =
standard_normal((784, 10)) * 3 / sqrt(784) in float64; zero-initialised weight
and bias, plain SGD lr 0.1, batch 256 in order, 235 steps per epoch. After 3
epochs the full-data loss is 0.92946 and the accuracy 0.6766.

Three implementations train side by side on the CPU: tinygrad_dot (nn.Linear +
F.cross_entropy + optim.SGD through the tape), a hand-written NumPy loop with
manual gradients, and PyTorch CPU eager (when importable). Each --device (cuda,
emu) adds tinygrad_dot there three ways (issue 15): "tinygrad_dot[D]" (the same
tape step), "tinygrad_dot[D] fused" (F.linear_cross_entropy: one launch forward
with the loss as epilogue, dW and db in one pass backward) and
"tinygrad_dot[D] fused+graph" (that step captured in a CUDA graph once and
replayed per batch, PyTorch's recipe: CapturedStep); on a GPU also PyTorch eager
there, "torch_eager[cuda]" (data on the GPU). Each epoch ends with a read-back
of the weights, which waits for the device. The ratio
"tinygrad_dot[cuda] fused+graph / torch_eager[cuda]" is issue 15's target (under
1). Epoch times are interleaved round by round, in a rotating order, so that
machine noise hits all implementations alike. On "emu" the figures are the
CPU emulator's and say nothing about a GPU.
Also times forward+backward of ((x @ w + b) ** 2).mean() on 4x4 float32.

    tinygrad-dot bench --only train             # the installed command
    python -m tinygrad_dot.bench.train [--quick] [--rounds 5] [--device cuda] [--out FILE.json]
    python benchmarks/train.py                  # from a checkout: writes benchmarks/results/cpu-train.json

--quick trains on the first 12,000 rows' worth of the same recipe (its own
reference figures), for two timed rounds without the settling pauses: a check
that the installation trains correctly, in seconds, not a measurement to quote.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
import timeit

import numpy as np

import tinygrad_dot as td
from tinygrad_dot._extras import pip_install
from tinygrad_dot._files import atomic_write_json
from tinygrad_dot.bench import checkout_root
from tinygrad_dot.gemm.sources import kernels_sha256
from tinygrad_dot.nn import functional as F

N, D, K, BATCH, LR = 60000, 784, 10, 256, 0.1
REFERENCE_LOSS, REFERENCE_ACCURACY = 0.92946, 0.6766
QUICK_N = 12000
# Every implementation lands on these after 3 epochs on make_data(n) (float32 products,
# checked to 1e-4): a wrong gradient anywhere shows up as a failed check, not a fast time.
# Other sizes are checked against the NumPy loop of the same run (reference()).
REFERENCES = {N: (REFERENCE_LOSS, REFERENCE_ACCURACY), QUICK_N: (1.05512, 0.7268)}
# How tinygrad_dot trains on an extra device: variant -> the suffix of its report name.
DEVICE_VARIANTS = {"tape": "", "fused": " fused", "graph": " fused+graph"}
SETTLE_SECONDS = 0.5  # idle time before each timed epoch (see run())
DEFAULT_OUT = os.path.join("tinygrad-dot-bench", "cpu-train.json")  # beside the user, as `tinygrad-dot bench`


def make_data(n=N, d=D, k=K, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32)
    w_true = rng.standard_normal((d, k)) * 3 / np.sqrt(d)
    y = np.argmax(X.astype(np.float64) @ w_true + rng.gumbel(size=(n, k)), axis=1)
    return X, y


def full_loss_and_accuracy(X, y, weight, bias):
    """Cross-entropy and accuracy over all of X for a (k, d) weight, in float64."""
    z = (X @ weight.T).astype(np.float64) + bias  # the product in float32, as training computes it
    z -= z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean()), float((z.argmax(axis=1) == y).mean())


# ----------------------------------------------------------------- the three trainers
# Each is a generator: it sets up, then trains one epoch per next() and yields (weight (k, d), bias).


def train_tinygrad(X, y, device="cpu", variant="tape"):
    """variant "tape": F.cross_entropy(model(x)) through the tape; "fused":
    F.linear_cross_entropy (the same loss and gradients, one launch forward and one
    dW/db pass backward on "cuda" and "emu"); "graph": the fused step captured in a
    CUDA graph (CapturedStep) for the full batches, the last, shorter one eagerly.
    All three take the same SGD steps, so they reach the same 3-epoch figures."""
    model = td.nn.Linear(X.shape[1], K, device=device)
    td.nn.init.zeros_(model.weight)
    td.nn.init.zeros_(model.bias)
    optimizer = td.optim.SGD(model.parameters(), lr=LR)
    loader = td.data.DataLoader(td.data.TensorDataset(X, y, device=device), batch_size=BATCH)

    def step(xb, yb):
        optimizer.zero_grad()
        if variant == "tape":
            loss = F.cross_entropy(model(xb), yb)
        else:
            loss = F.linear_cross_entropy(xb, model.weight, yb, model.bias)
        loss.backward()
        optimizer.step()

    # A graph replays fixed shapes; the last batch of an epoch (60000 % 256 = 96 rows)
    # would need a second graph for one step in 235, so it runs eagerly.
    full_batch = CapturedStep(step, device) if variant == "graph" else step
    while True:
        for xb, yb in loader:
            (full_batch if xb.shape[0] == BATCH else step)(xb, yb)
        yield model.weight.numpy(), model.bias.numpy()


class CapturedStep:
    """PyTorch's CUDA-graph recipe for a step on fixed-shape inputs (docs/cuda_graphs.md).

    The first call copies its inputs into static tensors, runs ``step(*statics)``
    eagerly (the warm-up: it plans, compiles and autotunes every launch, which a
    capture cannot) and then captures the same call; a capture computes nothing, so
    the warm-up is the only step taken. Each later call copies its inputs into the
    statics and replays. A call returns what step returned: after a replay, the
    static outputs the capture produced (read them before the next call)."""

    def __init__(self, step, device):
        self.step, self.device = step, device
        self.graph = self.statics = self.outputs = None

    def __call__(self, *inputs):
        if self.graph is None:
            self.statics = [t.clone() for t in inputs]
            warm_up = self.step(*self.statics)
            self.graph = td.cuda.CUDAGraph()
            with td.cuda.graph(self.graph, device=self.device):
                self.outputs = self.step(*self.statics)
            return warm_up
        for static, t in zip(self.statics, inputs):
            static.copy_(t)
        self.graph.replay()
        return self.outputs


def train_numpy(X, y):
    """The hand-written loop: manual softmax-cross-entropy gradients, (G^T X) layout for dW."""
    weight = np.zeros((K, X.shape[1]), np.float32)
    bias = np.zeros(K, np.float32)
    while True:
        for start in range(0, len(X), BATCH):
            xb, yb = X[start:start + BATCH], y[start:start + BATCH]
            rows = np.arange(len(xb))
            z = xb @ weight.T + bias
            z -= z.max(axis=1, keepdims=True)
            np.exp(z, out=z)
            z /= z.sum(axis=1, keepdims=True)
            z[rows, yb] -= 1
            z /= len(xb)
            weight -= LR * (z.T @ xb)
            bias -= LR * z.sum(axis=0)
        yield weight, bias


def train_torch(X, y, device="cpu"):
    import torch

    Xt, yt = torch.from_numpy(X).to(device), torch.from_numpy(y).to(device)
    model = torch.nn.Linear(X.shape[1], K, device=device)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    while True:
        for start in range(0, len(Xt), BATCH):
            loss = torch.nn.functional.cross_entropy(model(Xt[start:start + BATCH]), yt[start:start + BATCH])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        # (.cpu() copies from a GPU, which waits for its queue: the epoch's time is complete)
        yield model.weight.detach().cpu().numpy(), model.bias.detach().cpu().numpy()


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        return None, str(exc)
    return torch, None


# ----------------------------------------------------------------- per-op tape overhead


def tape_overhead(number=20000):
    """Microseconds per forward+backward of ((x @ w + b) ** 2).mean() on 4x4 float32."""
    rng = np.random.default_rng(0)
    x_np, w_np, b_np = (rng.standard_normal(s, dtype=np.float32) for s in ((4, 4), (4, 4), (4,)))
    x = td.tensor(x_np)
    w = td.tensor(w_np.copy(), requires_grad=True)
    b = td.tensor(b_np.copy(), requires_grad=True)

    def ours():
        w.grad = b.grad = None
        ((x @ w + b) ** 2).mean().backward()

    def by_hand():  # the same graph with a hand-written backward
        h = x_np @ w_np + b_np
        g = (2.0 / h.size) * h
        return x_np.T @ g, g.sum(axis=0)

    results = {"ours_us": _best_us(ours, number), "numpy_by_hand_us": _best_us(by_hand, number)}
    torch, _ = torch_available()
    if torch is not None:
        xt = torch.from_numpy(x_np)
        wt = torch.from_numpy(w_np.copy()).requires_grad_()
        bt = torch.from_numpy(b_np.copy()).requires_grad_()

        def theirs():
            wt.grad = bt.grad = None
            ((xt @ wt + bt) ** 2).mean().backward()

        results["torch_us"] = _best_us(theirs, number // 4)
    return results


def _best_us(fn, number, repeat=5):
    fn()
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


# ----------------------------------------------------------------- main


def run(rounds=5, check_epochs=3, devices=(), n=N, settle_seconds=SETTLE_SECONDS, tape_calls=20000):
    """Train and time every implementation; ``devices`` adds tinygrad_dot runs on
    other devices (e.g. "cuda"), each in DEVICE_VARIANTS' three ways ("cpu" has no
    graph to capture), and PyTorch eager on a CUDA device when torch has CUDA. Every
    epoch ends with a device-to-host copy of the weights, which synchronises, so the
    epoch times are complete."""
    X, y = make_data(n=n)
    torch, torch_missing = torch_available()
    trainers = {"tinygrad_dot": train_tinygrad(X, y), "numpy_by_hand": train_numpy(X, y)}
    for device in devices:
        for variant, suffix in DEVICE_VARIANTS.items():
            if variant != "graph" or device != "cpu":
                trainers[f"tinygrad_dot[{device}]{suffix}"] = train_tinygrad(X, y, device=device, variant=variant)
        if torch is not None and device.startswith("cuda") and torch.cuda.is_available():
            trainers[f"torch_eager[{device}]"] = train_torch(X, y, device=device)
    if torch is not None:
        trainers["torch_eager"] = train_torch(X, y)
    report = {"protocol": {"n": n, "d": D, "classes": K, "batch": BATCH, "lr": LR, "steps_per_epoch": -(-n // BATCH)},
              "check": {}, "seconds_per_epoch": {}}
    times = {name: [] for name in trainers}
    # Epochs 1..check_epochs are timed too; all trainers run them in the same rounds.
    names = list(trainers)
    for epoch in range(check_epochs + rounds):
        # Rotate who goes first, and pause between implementations: PyTorch's OpenMP and
        # OpenBLAS worker threads spin for a while after their last call and would steal a
        # core from whichever implementation runs next (on 2 cores that costs it 30%).
        for name in names[epoch % len(names):] + names[:epoch % len(names)]:
            trainer = trainers[name]
            time.sleep(settle_seconds)
            start = time.perf_counter()
            weight, bias = next(trainer)
            times[name].append(time.perf_counter() - start)
            if epoch + 1 == check_epochs:
                loss, accuracy = full_loss_and_accuracy(X, y, weight, bias)
                report["check"][name] = {"epochs": check_epochs, "loss": round(loss, 5), "accuracy": round(accuracy, 4)}
    for name, values in times.items():
        # the first epoch pays one-off costs (page faults, BLAS warm-up; on a device planning,
        # compiling, autotuning and the graph's capture)
        settled = values[1:]
        report["seconds_per_epoch"][name] = {"median": statistics.median(settled), "min": min(settled)}
    report["ratios"] = _ratios(report["seconds_per_epoch"], devices)
    if torch is None:
        report["torch_missing"] = torch_missing
    report["tape_overhead_4x4"] = tape_overhead(tape_calls)
    if "torch_us" in report["tape_overhead_4x4"]:
        overhead = report["tape_overhead_4x4"]
        report["ratios"]["tape overhead tinygrad_dot / torch"] = overhead["ours_us"] / overhead["torch_us"]
    report["machine"] = _machine(torch)
    return report


def _ratios(per_epoch, devices):
    """Median epoch times as "a / b" (under 1: a is faster). On each device its
    variants against its tape run and against PyTorch eager there; issue 15's target
    is "tinygrad_dot[cuda] fused+graph / torch_eager[cuda]" under 1."""
    pairs = [("tinygrad_dot", "numpy_by_hand"), ("tinygrad_dot", "torch_eager")]
    for device in devices:
        ours = [f"tinygrad_dot[{device}]{suffix}" for suffix in DEVICE_VARIANTS.values()]
        pairs += [(name, ours[0]) for name in ours[1:]] + [(name, f"torch_eager[{device}]") for name in ours]
    return {f"{a} / {b}": per_epoch[a]["median"] / per_epoch[b]["median"]
            for a, b in pairs if a in per_epoch and b in per_epoch}


def reference(report):
    """The 3-epoch (loss, accuracy) every implementation must reach: the published
    figures for the sizes that have them, else the NumPy loop's in the same run."""
    n = report["protocol"]["n"]
    if n in REFERENCES:
        return REFERENCES[n]
    by_hand = report["check"]["numpy_by_hand"]
    return by_hand["loss"], by_hand["accuracy"]


def failed_checks(report):
    """The implementations whose 3-epoch loss or accuracy is off the reference by more than 1e-4."""
    loss, accuracy = reference(report)
    return [name for name, c in report["check"].items()
            if abs(c["loss"] - loss) > 1e-4 or abs(c["accuracy"] - accuracy) > 1e-4]


def _machine(torch):
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=checkout_root(), timeout=10).stdout.strip() if checkout_root() else ""
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit,
            "python": platform.python_version(), "numpy": np.__version__,
            "torch": getattr(torch, "__version__", None), "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            # every results file names the kernel sources of its code (CPU runs use none, but
            # a figure must still be traceable to one state of the repository)
            "kernels_sha256": kernels_sha256()}


def print_report(report):
    n = report["protocol"]["n"]
    loss, accuracy = reference(report)
    print(f"softmax regression, {n}x{D} float32, batch {BATCH}, SGD lr {LR} (reference: loss {loss}, "
          f"accuracy {accuracy} after 3 epochs)")
    names = report["seconds_per_epoch"]
    width = max(22, *map(len, names))
    print(f"  {'implementation':{width}s} {'s/epoch (median)':>17s} {'min':>8s} {'loss@3':>9s} {'acc@3':>7s}")
    for name, t in names.items():
        check = report["check"][name]
        print(f"  {name:{width}s} {t['median']:17.4f} {t['min']:8.4f} {check['loss']:9.5f} {check['accuracy']:7.4f}")
    if any(name.startswith("tinygrad_dot[emu]") for name in names):
        print("  (tinygrad_dot[emu]: CUDA kernels emulated on the CPU; its times say nothing about a GPU)")
    if any(name.startswith("tinygrad_dot[cuda") for name in names) and \
            not any(name.startswith("torch_eager[cuda") for name in names):
        print(f"  {'torch_eager[cuda]':{width}s} not run: PyTorch is missing or has no CUDA here "
              "(no figure for issue 15's target)")
    if "torch_missing" in report:
        print(f"  {'torch_eager':{width}s} missing: PyTorch is not importable ({report['torch_missing']}); "
              f"{pip_install('torch')} to compare")
    overhead = report["tape_overhead_4x4"]
    print("forward+backward of ((x @ w + b) ** 2).mean(), 4x4 float32, microseconds per call:")
    print(f"  tinygrad_dot {overhead['ours_us']:.2f}   numpy by hand {overhead['numpy_by_hand_us']:.2f}   "
          + (f"torch {overhead['torch_us']:.2f}" if "torch_us" in overhead else "torch missing"))
    for name, ratio in report["ratios"].items():
        target = "   (issue 15's target: under 1)" if "fused+graph / torch_eager[cuda" in name else ""
        print(f"  {name}: {ratio:.3f}{target}")


def main(argv=None, default_out=DEFAULT_OUT):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, help="timed epochs per implementation after the check "
                                                   "(default: 5, 2 with --quick)")
    parser.add_argument("--device", action="append", default=[],
                        help="also train tinygrad_dot on this device (e.g. cuda); repeatable")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_N} rows, 2 rounds, no pauses: checks the installation in seconds")
    parser.add_argument("--out", default=default_out, help="the results JSON (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.quick:
        report = run(rounds=2 if args.rounds is None else args.rounds, devices=args.device, n=QUICK_N,
                     settle_seconds=0.0, tape_calls=1000)
    else:
        report = run(rounds=5 if args.rounds is None else args.rounds, devices=args.device)
    print_report(report)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    failed = failed_checks(report)
    if failed:
        print(f"CHECK FAILED: {failed} did not reach the reference loss/accuracy", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
