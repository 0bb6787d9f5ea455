"""The process's helper threads, and work split into units that threads claim (nothing of assocmem imported).

The engines split a call's work among the calling thread and helpers that sleep between calls
(:func:`helper_pool`: made once, so that a call pays a wake-up, not the start of a thread). The units are claimed
from a shared counter (:class:`Claims`): a thread that the operating system has descheduled delays only the unit it
holds, and the calling thread computes every unit nobody has claimed yet, so it never waits for a helper that has
not started. Users: the binary engine's numba loops (:mod:`assocmem.engines.binary.threads`, with their own counter
in compiled code), the chunked association's parts (:func:`assocmem.engines.online_softmax.in_threads`) and the
classifier's matrix products (:mod:`assocmem.classifier.products`). :class:`ThreadShare` decides when a repeated
step (the classifier's training step) is better off on one thread: when its extra threads get no CPU time.
"""

from __future__ import annotations

import os
import threading
import time
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
    """The units of one call: a counter to claim from, which units are done, the first error."""

    def __init__(self, units: int) -> None:
        self.units, self.next, self.done = units, 0, 0
        self.finished = [False] * units
        self.cond = threading.Condition()
        self.error: BaseException | None = None

    def work(self, compute: Callable[[int], object]) -> None:
        """Claim units and compute them until none is left (run by the caller and by each helper)."""
        while True:
            with self.cond:
                unit, self.next = self.next, self.next + 1
            if unit >= self.units:
                return
            self.run(unit, compute)

    def run(self, unit: int, compute: Callable[[int], object]) -> None:
        """Compute ``unit`` and mark it done (the first to finish it counts; an error is kept for the caller)."""
        try:
            compute(unit)
        except BaseException as err:  # re-raised by the caller
            self.error = self.error or err
        finally:
            with self.cond:
                if not self.finished[unit]:
                    self.finished[unit] = True
                    self.done += 1
                self.cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until every claimed unit is done (a helper computing one is not interrupted), at most ``timeout``
        seconds; whether all are done."""
        with self.cond:
            return self.cond.wait_for(lambda: self.done >= self.units, timeout)

    def unfinished(self) -> list[int]:
        """The units not done yet."""
        with self.cond:
            return [u for u in range(self.units) if not self.finished[u]]


def run_claimed(
    units: int,
    compute: Callable[[int], object],
    helper: Callable[[int], object],
    threads: int,
    *,
    patience: float | None = None,
) -> None:
    """``compute(unit)`` for ``units`` units on this thread and ``threads - 1`` helpers (which call ``helper(unit)``:
    the same, with what a helper thread needs set up); the first error raised again here.

    ``patience``: once the counter is spent, the calling thread waits for the units helpers hold at most this
    fraction of the time it spent on its own units (plus 100 us), then computes each unit still unfinished itself
    (the first result counts): a helper that the operating system has descheduled holding a unit then costs the
    call at most one unit more instead of its whole wait. Only for units whose results are private to the unit (a
    late helper may still write its own, equal, result after the call returned); ``None``: wait."""
    claims = Claims(units)
    pool = helper_pool(threads - 1)
    helpers = [pool.submit(claims.work, helper) for _ in range(threads - 1)]
    start = time.perf_counter()
    claims.work(compute)
    for h in helpers:
        h.cancel()  # not started: not needed (a late one finds the counter spent)
    if patience is not None and not claims.wait(patience * (time.perf_counter() - start) + 1e-4):
        for unit in claims.unfinished():
            claims.run(unit, compute)
    claims.wait()
    if claims.error is not None:
        raise claims.error


class ThreadShare:
    """How many threads a repeated step should use: all it may, unless they do not get the CPU time to pay off.

    On a loaded machine the kernel may give the process no more CPU time with two threads than with one (it shares
    the cores between sessions, and a busy loop or other jobs hold them): the second thread then only adds the cost
    of splitting the work, and a step on two threads is slower than on one. A step reports its CPU time (of the
    whole process) and wall time (:meth:`record`); after ``window`` steps on several threads that got less than
    ``min_cores`` cores per second of wall time, the next ``rest`` steps run on one thread, then several threads are
    tried again. Only for work whose results do not depend on the thread count (the decision follows the load).
    """

    def __init__(self, window: int = 4, rest: int = 24, min_cores: float = 1.25) -> None:
        self.window, self.rest, self.min_cores = window, rest, min_cores
        self.requested = 0  # the count the last decision was made for (a change starts over)
        self.single = 0  # steps still to run on one thread
        self.steps, self.cpu, self.wall = 0, 0.0, 0.0

    def threads(self, requested: int) -> int:
        """The threads for the next step, given the count the caller may use."""
        if requested != self.requested:
            self.requested, self.single, self.steps, self.cpu, self.wall = requested, 0, 0, 0.0, 0.0
        if requested <= 1:
            return max(1, requested)
        if self.single > 0:
            self.single -= 1
            return 1
        return requested

    def record(self, threads: int, cpu: float, wall: float) -> None:
        """A step on ``threads`` threads took ``cpu`` seconds of the process's CPU time in ``wall`` seconds."""
        if threads <= 1:
            return
        self.steps, self.cpu, self.wall = self.steps + 1, self.cpu + cpu, self.wall + wall
        if self.steps >= self.window:
            if self.cpu < self.min_cores * self.wall:
                self.single = self.rest
            self.steps, self.cpu, self.wall = 0, 0.0, 0.0
