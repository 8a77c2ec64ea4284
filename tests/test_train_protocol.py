"""Issue 4's reference training protocol, through nn.Linear + F.cross_entropy +
optim.SGD + DataLoader, must land on the published figures (the same code that
the training benchmark, tinygrad_dot/bench/train.py, times)."""
import numpy as np
import pytest

from tinygrad_dot.bench import train as bench


# The full protocol: about 3 s on an idle 2-core machine (47M random numbers and 705 steps);
# the --quick one, which `tinygrad-dot bench --quick` checks an installation against, a fifth of it.
@pytest.mark.parametrize("n", [pytest.param(bench.N, marks=pytest.mark.slow), bench.QUICK_N])
def test_reference_protocol_reaches_published_loss_and_accuracy(n):
    X, y = bench.make_data(n=n)
    trainer = bench.train_tinygrad(X, y)
    for _ in range(3):
        weight, bias = next(trainer)
    loss, accuracy = bench.full_loss_and_accuracy(X, y, weight, bias)
    assert (round(loss, 5), round(accuracy, 4)) == bench.REFERENCES[n]


def test_tape_training_follows_the_hand_written_loop_step_for_step():
    X, y = bench.make_data(n=2000)  # the same recipe, smaller: 8 steps per epoch
    ours, by_hand = bench.train_tinygrad(X, y), bench.train_numpy(X, y)
    for _ in range(2):
        (w_ours, b_ours), (w_hand, b_hand) = next(ours), next(by_hand)
        np.testing.assert_allclose(w_ours, w_hand, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(b_ours, b_hand, rtol=1e-4, atol=1e-6)


def test_every_variant_on_a_device_reaches_the_numpy_loops_figures():
    """run() on "emu" (the CUDA kernels emulated) with the tape, fused and fused + CUDA
    graph steps: every implementation's 3-epoch loss and accuracy equal the NumPy loop's
    to 1e-4. 1500 rows (a --quick run on emu takes minutes): 5 full batches, so the
    graph is captured and replayed, and a last one of 220 rows that runs eagerly."""
    report = bench.run(rounds=0, devices=("emu",), n=1500, settle_seconds=0.0, tape_calls=10)
    variants = [f"tinygrad_dot[emu]{suffix}" for suffix in bench.DEVICE_VARIANTS.values()]
    assert set(variants) <= set(report["check"]) and "numpy_by_hand" in report["check"]
    assert bench.reference(report) == (report["check"]["numpy_by_hand"]["loss"],
                                       report["check"]["numpy_by_hand"]["accuracy"])
    assert bench.failed_checks(report) == [], report["check"]
    assert {f"{name} / tinygrad_dot[emu]" for name in variants[1:]} <= set(report["ratios"])


def test_the_captured_step_replays_the_fused_steps_bit_for_bit():
    """The graph variant takes exactly the fused variant's steps (warm-up, replays, the
    eager short batch), so their weights are equal after each epoch, not just close."""
    X, y = bench.make_data(n=700)  # 2 full batches and one of 188 rows
    fused, graph = bench.train_tinygrad(X, y, "emu", "fused"), bench.train_tinygrad(X, y, "emu", "graph")
    for _ in range(2):
        (w_fused, b_fused), (w_graph, b_graph) = next(fused), next(graph)
        np.testing.assert_array_equal(w_graph, w_fused)
        np.testing.assert_array_equal(b_graph, b_fused)
