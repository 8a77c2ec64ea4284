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
