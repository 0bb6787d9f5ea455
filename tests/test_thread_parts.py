"""How the association splits among threads (assocmem.engines.online_softmax): a memory too small to split runs on
this thread alone (a shared memory or per-item memories, whatever the rows or items) and equals the unchunked
float64 computation; the helper pool's claimed units (assocmem.pool), a unit held by a stalled helper taken over
by the caller, and ThreadShare."""

from __future__ import annotations

import math
import threading
import time

import pytest
import torch

from assocmem.engines import online_softmax
from assocmem.engines.online_softmax import stream
from assocmem.pool import ThreadShare, run_claimed

F64 = torch.float64


def reference(q, k, v, beta):
    s = beta * q @ k.transpose(-1, -2)
    return torch.softmax(s, -1) @ v, torch.logsumexp(s, -1)


@pytest.fixture
def two_threads(monkeypatch):
    """Two PyTorch threads; records the number of parts of each split call."""
    parts: list[int] = []
    real = online_softmax.in_threads

    def counted(work, **kw):
        parts.append(len(work))
        return real(work, **kw)

    monkeypatch.setattr(online_softmax, "in_threads", counted)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield parts
    torch.set_num_threads(before)


@pytest.mark.parametrize("beta", [1.0, 200.0, 3000.0])
@pytest.mark.parametrize("chunk", [None, 7, 29])
@pytest.mark.parametrize("per_item", [False, True])
def test_a_memory_too_small_to_split_runs_whole_on_this_thread(two_threads, beta, chunk, per_item):
    """Queries (3, 5, 6) against one memory (30, 6) or per item (3, 30, 6), in one chunk (a softmax) or several
    (too few to split the memory): one part on two threads (neither the rows nor the items are split), the
    unchunked answer, and the log-partition where asked for. At beta = 3000 most chunks of a row underflow
    entirely."""
    g = torch.Generator().manual_seed(int(beta) + (chunk or 0))
    k = torch.randn(*((3,) if per_item else ()), 30, 6, generator=g, dtype=F64)
    v = torch.randn(*k.shape[:-1], 4, generator=g, dtype=F64)
    q = torch.randn(3, 5, 6, generator=g, dtype=F64)
    with torch.no_grad():
        out, lse, _ = stream(q, k, v, beta, None, chunk, need_lse=chunk is not None, need_weights=False)
    want, want_lse = reference(q, k, v, beta)
    torch.testing.assert_close(out, want, rtol=1e-13, atol=1e-13)
    if chunk is not None:
        torch.testing.assert_close(lse, want_lse, rtol=1e-13, atol=1e-13)
    assert max(two_threads, default=1) == 1  # parts in a call (one: no split)
    assert torch.get_num_threads() == 2


def test_a_mask_or_the_weights_keep_one_part(two_threads):
    """A mask, or the weights asked for, with a small memory: one thread for all, the unchunked answer."""
    g = torch.Generator().manual_seed(1)
    k, q = torch.randn(30, 6, generator=g, dtype=F64), torch.randn(5, 6, generator=g, dtype=F64)
    mask = torch.zeros(5, 30, dtype=F64)
    mask[:, 3] = -math.inf
    with torch.no_grad():
        out, _, _ = stream(q, k, k, 2.0, mask, None, need_lse=False, need_weights=False)
        _, _, w = stream(q, k, k, 2.0, None, None, need_lse=False, need_weights=True)
    want = torch.softmax(2.0 * q @ k.T + mask, -1) @ k
    torch.testing.assert_close(out, want, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(w, torch.softmax(2.0 * q @ k.T, -1), rtol=1e-13, atol=1e-13)
    assert max(two_threads, default=1) == 1


def test_claimed_units_run_once_each_and_the_first_error_is_raised():
    """Every unit runs exactly once, on this thread or a helper; an error in a unit is raised by the caller."""
    seen: list[int] = []
    lock = threading.Lock()

    def compute(unit: int) -> None:
        with lock:
            seen.append(unit)

    run_claimed(9, compute, compute, 2)
    assert sorted(seen) == list(range(9))

    def bad(unit: int) -> None:
        if unit == 3:
            raise RuntimeError("unit 3")

    with pytest.raises(RuntimeError, match="unit 3"):
        run_claimed(5, bad, bad, 2)


def test_a_part_held_by_a_stalled_helper_is_computed_by_the_caller():
    """With ``patience``, a unit that a helper claimed and holds (here: blocked) is computed by the calling thread
    after a bounded wait, and the call returns without the helper; without it, the caller would wait."""
    stalled, caller = threading.Event(), threading.get_ident()
    done: list[tuple[int, bool]] = []

    def compute(unit: int) -> None:
        time.sleep(0.05)  # long enough for the helper to wake and claim the other unit
        done.append((unit, threading.get_ident() == caller))

    def helper(unit: int) -> None:
        stalled.wait(5.0)  # a descheduled helper

    start = time.perf_counter()
    try:
        run_claimed(2, compute, helper, 2, patience=0.5)
        elapsed = time.perf_counter() - start
    finally:
        stalled.set()
    assert sorted(done) == [(0, True), (1, True)] and elapsed < 2.0


def test_thread_share_runs_on_one_thread_while_more_get_no_cpu_time():
    """ThreadShare: after a window of steps on several threads with under min_cores cores, rest steps on one, then
    several again; enough CPU time keeps them; a new requested count starts over; one thread is one thread."""
    share = ThreadShare(window=2, rest=3, min_cores=1.25)
    assert share.threads(1) == 1
    for _ in range(2):  # two steps on 2 threads that got 1.9 cores: keep them
        assert share.threads(2) == 2
        share.record(2, 1.9, 1.0)
    for _ in range(2):  # a loaded machine: 1.05 cores
        assert share.threads(2) == 2
        share.record(2, 1.05, 1.0)
    assert [share.threads(2) for _ in range(3)] == [1, 1, 1]
    share.record(1, 5.0, 1.0)  # steps on one thread do not count
    assert share.threads(2) == 2  # tried again
    share.record(2, 1.0, 1.0)
    share.record(2, 1.0, 1.0)
    assert share.threads(2) == 1
    assert share.threads(3) == 3  # another count: start over
