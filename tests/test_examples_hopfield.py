"""The Hopfield examples on real data: the three regimes of beta (Ramsauer et al. 2020) and the MNIST bags."""

from pathlib import Path

import pytest
import torch

from tests.conftest import SHARED_DATA, needs_data

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MNIST = SHARED_DATA / "mnist"
needs_mnist = needs_data("mnist")


@pytest.fixture(scope="module")
def mnist():
    from assocmem.data import load

    return load("mnist", data_dir=MNIST, download=False)


@pytest.fixture(autouse=True)
def _examples_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))


@needs_mnist
def test_beta_moves_from_global_average_to_single_patterns(mnist):
    from mnist_retrieval_beta import measure, prepare

    memories, queries = prepare(mnist.test.images, 300)
    rows = measure(memories, queries, (0.001, 0.06, 1.0))
    part = [r["participation"] for r in rows]
    assert part[0] > 0.9 * 300  # global average: every memory takes part
    assert 1.5 < part[1] < 0.5 * 300  # metastable: an average over a few similar digits
    assert part[2] < 1.2  # a single memory
    assert rows[2]["own_memory"] > 0.95 and rows[2]["lower_half_rmse"] < rows[0]["lower_half_rmse"] / 5


@needs_mnist
def test_mnist_bags_are_labelled_by_their_target_digit(mnist):
    from mnist_bags import make_bags

    gen = torch.Generator().manual_seed(0)
    bags, padding, labels = make_bags(mnist.test.images[:2000], mnist.test.labels[:2000], 20, 10, 2, 9, gen)
    assert bags.shape[0] == 20 and bags.shape[2] == 784 and padding.shape == bags.shape[:2]
    assert labels.sum() == 10 and (padding.sum(1) < bags.shape[1] - 1).all()


def test_bit_pattern_bags_hide_the_signal_in_positive_bags():
    from bit_pattern_mil import make_bags

    gen = torch.Generator().manual_seed(0)
    signal = torch.ones(8)
    bags, padding, labels = make_bags(50, 6, 8, signal, gen)
    has_signal = (bags == signal).all(-1).any(-1)
    assert (has_signal[labels.bool()]).all() and not padding.any()
