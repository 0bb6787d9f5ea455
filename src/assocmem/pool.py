"""The process's helper threads, and work split into units that threads claim (nothing of assocmem imported).

The engines split a call's work among the calling thread and helpers that sleep between calls
(:func:`helper_pool`: made once, so that a call pays a wake-up, not the start of a thread). The units are claimed
from a shared counter (:class:`Claims`): a thread that the operating system has descheduled delays only the unit it
holds, and the calling thread computes every unit nobody has claimed yet, so it never waits for a helper that has
not started. Users: the binary engine's numba loops (:mod:`assocmem.engines.binary.threads`, with their own counter
in compiled code), the chunked association's parts (:func:`assocmem.engines.online_softmax.in_threads`) and the
classifier's matrix products (:mod:`assocmem.classifier.products`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

_pool: tuple[ThreadPoolExecutor, int] | None = None  # the helpers and their number, made on first use


def _forget_pool() -> None:
    global _pool  # a forked child has none of its parent's threads
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


def helper_pool(helpers: int) -> ThreadPoolExecutor:
    """The process's pool of sleeping helper threads, with room for at least ``helpers`` (made on first use)."""
    global _pool
    if _pool is None or _pool[1] < helpers:
        if _pool is not None:
            _pool[0].shutdown(wait=False)
        _pool = (ThreadPoolExecutor(helpers, thread_name_prefix="assocmem-helper"), helpers)
    return _pool[0]


class Claims:
    """The units of one call: a counter to claim from, how many are done, the first error."""

    def __init__(self, units: int) -> None:
        self.units, self.next, self.done = units, 0, 0
        self.cond = threading.Condition()
        self.error: BaseException | None = None

    def work(self, compute: Callable[[int], object]) -> None:
        """Claim units and compute them until none is left (run by the caller and by each helper)."""
        while True:
            with self.cond:
                unit, self.next = self.next, self.next + 1
            if unit >= self.units:
                return
            try:
                compute(unit)
            except BaseException as err:  # re-raised by the caller
                self.error = self.error or err
            finally:
                with self.cond:
                    self.done += 1
                    self.cond.notify_all()

    def wait(self) -> None:
        """Sleep until every claimed unit is done (a helper computing one is not interrupted)."""
        with self.cond:
            while self.done < self.units:
                self.cond.wait()


def run_claimed(
    units: int, compute: Callable[[int], object], helper: Callable[[int], object], threads: int
) -> None:
    """``compute(unit)`` for ``units`` units on this thread and ``threads - 1`` helpers (which call ``helper(unit)``:
    the same, with what a helper thread needs set up); the first error raised again here."""
    claims = Claims(units)
    pool = helper_pool(threads - 1)
    helpers = [pool.submit(claims.work, helper) for _ in range(threads - 1)]
    claims.work(compute)
    for h in helpers:
        h.cancel()  # not started: not needed (a late one finds the counter spent)
    claims.wait()
    if claims.error is not None:
        raise claims.error
