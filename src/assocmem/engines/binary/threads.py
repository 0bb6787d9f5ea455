"""Dynamic scheduling of the binary engine's numba loops: a shared claim counter and a pool of helper threads.

Each loop (:mod:`assocmem.engines.binary.numba_loop`) takes a last argument ``counter`` (an int64 array of one
element) and claims its next unit of work, a cue or a row, with :func:`claim` (an atomic add) until none is left;
it is compiled ``nogil``, so several threads run it at once on the same arguments. :func:`run_in_threads` runs it
in the calling thread and in ``threads - 1`` helpers from a pool of sleeping threads. A helper the operating
system has not started by the time the calling thread runs out of work is cancelled; one that is running is
waited for, and it finishes the unit it holds and finds none left. So a descheduled thread delays at most the
cue it holds, never a fixed share of the batch.

Why not numba's ``prange``: its workqueue layer hands each worker a fixed chunk and the calling thread sleeps
until every chunk is done, so on a loaded machine one descheduled worker stalls the whole sweep, and every launch
waits for all workers to wake (measured in docs/binary-dam.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import types
from numba.extending import intrinsic


@intrinsic
def claim(typingctx, counter, delta):  # noqa: ANN001, ANN201
    """Atomically add ``delta`` to ``counter[0]`` (an int64 array) and return the value before."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None

    def codegen(context, builder, sig, args):  # noqa: ANN001
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        return builder.atomic_rmw("add", ary.data, args[1], "monotonic")

    return types.int64(counter, types.int64), codegen


_pool: tuple[ThreadPoolExecutor, int] | None = None  # the helpers and their number, made on first use


def _forget_pool() -> None:
    global _pool  # a forked child has none of its parent's threads
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


def run_in_threads(kernel: Callable[..., None], args: tuple, threads: int) -> None:
    """``kernel(*args, counter)`` in the calling thread and ``threads - 1`` helper threads, on one counter."""
    global _pool
    counter = np.zeros(1, dtype=np.int64)
    helpers = []
    if threads > 1:
        if _pool is None or _pool[1] < threads - 1:
            if _pool is not None:
                _pool[0].shutdown(wait=False)
            _pool = (ThreadPoolExecutor(threads - 1, thread_name_prefix="assocmem-spins"), threads - 1)
        helpers = [_pool[0].submit(kernel, *args, counter) for _ in range(threads - 1)]
    kernel(*args, counter)
    for helper in helpers:
        if not helper.cancel():  # started: it holds at most one unit of work
            helper.result()
