"""Shared test settings: float64 where the theory is checked, bounded hypothesis budgets for CI."""

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("ASSOCMEM_HYPOTHESIS_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.load_profile("ci")

#: MNIST and Fashion-MNIST beside the project (``../shared/data``); tests that need them skip when it is absent.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def needs_data(name: str = "mnist") -> pytest.MarkDecorator:
    """Skip the test unless ``../shared/data/<name>`` holds the data set's IDX files."""
    folder = SHARED_DATA / name
    return pytest.mark.skipif(
        not (folder / "t10k-images-idx3-ubyte.gz").is_file(), reason=f"no {name} in ../shared/data ({folder})"
    )


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)


@pytest.fixture
def one_thread():
    """Run a test of tiny networks on one thread: their operations are too small to share, and on a busy
    machine two threads per operation made such a test ten times slower (measured on tests/test_gradients.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
