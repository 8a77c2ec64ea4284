"""Issue 4's reference training protocol, through nn.Linear + F.cross_entropy +
optim.SGD + DataLoader, must land on the published figures (the same code that
benchmarks/train.py times)."""
import importlib.util
import pathlib

import numpy as np
import pytest

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "train.py"
_spec = importlib.util.spec_from_file_location("train_benchmark", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.mark.slow  # about 3 s on an idle 2-core machine: 47M random numbers and 705 steps
def test_reference_protocol_reaches_published_loss_and_accuracy():
    X, y = bench.make_data()
    trainer = bench.train_tinygrad(X, y)
    for _ in range(3):
        weight, bias = next(trainer)
    loss, accuracy = bench.full_loss_and_accuracy(X, y, weight, bias)
    assert round(loss, 5) == bench.REFERENCE_LOSS and round(accuracy, 4) == bench.REFERENCE_ACCURACY


def test_tape_training_follows_the_hand_written_loop_step_for_step():
    X, y = bench.make_data(n=2000)  # the same recipe, smaller: 8 steps per epoch
    ours, by_hand = bench.train_tinygrad(X, y), bench.train_numpy(X, y)
    for _ in range(2):
        (w_ours, b_ours), (w_hand, b_hand) = next(ours), next(by_hand)
        np.testing.assert_allclose(w_ours, w_hand, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(b_ours, b_hand, rtol=1e-4, atol=1e-6)
