"""Dynamic scheduling of the binary engine's numba loops, robust to descheduled threads.

A loop here (:mod:`assocmem.engines.binary.numba_loop`) does ``units`` independent units of work (a cue's sweep, a
state's agreements, a row's sort). It is compiled ``nogil`` and run by the calling thread and by ``threads - 1``
helpers from a pool of sleeping threads (:func:`run_units`), all on the same arguments:

- each thread claims the next unit from a shared counter (:func:`claim`, an atomic add) and marks it taken;
- a unit is computed on private copies of its inputs and published by whoever finishes it first: a
  compare-and-swap moves its status to *writing*, the results are copied out, the status becomes *done*;
- a loop whose unit reads arrays that units publish into (the sweep reads and writes a cue's state and
  agreements) checks after copying that nobody had begun publishing that unit (:func:`copied_before_writing`),
  and drops the unit otherwise: a helper descheduled between claiming a cue and copying it may wake while the
  calling thread publishes that cue, or after the call returned while the next call publishes it, and a torn copy
  (a state from one sweep, agreements from another) would index the tables out of bounds;
- when the counter runs out, the calling thread computes every unit not yet done itself (a helper that the
  operating system descheduled holding a unit then loses the race and drops its copy), so it never waits for a
  descheduled helper; it waits only for a unit whose results are being copied out at that moment.

The results do not depend on who computed them (each unit is a deterministic function of inputs that no unit
writes). Helpers that have not started when the calling thread finishes are cancelled.

Why not numba's ``prange``: its workqueue layer hands each worker a fixed chunk and the calling thread sleeps until
every chunk is done, so on a loaded machine one descheduled worker stalls the whole sweep (docs/binary-dam.md).
"""

# ruff: noqa: ANN001, ANN201 - numba compiles these for the NumPy arrays and scalars it is given
from __future__ import annotations

import time
from collections.abc import Callable

import numba as nb
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from assocmem.pool import helper_pool

#: Unit status: not started, claimed by a thread, results being copied out, done.
FREE, TAKEN, WRITING, DONE = 0, 1, 2, 3


def _item_pointer(context, builder, sig, args):
    aryty = sig.args[0]
    ary = context.make_array(aryty)(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])


def _int64_vector(arr) -> bool:
    return isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1


@intrinsic
def claim(typingctx, counter, delta):
    """Atomically add ``delta`` to ``counter[0]`` (int64) and return the value before."""
    if not _int64_vector(counter):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        return builder.atomic_rmw("add", ary.data, args[1], "monotonic")

    return types.int64(counter, types.int64), codegen


@intrinsic
def swap(typingctx, status, index, old, new):
    """Compare-and-swap ``status[index]`` from ``old`` to ``new`` (acquire-release); True when it did."""
    if not _int64_vector(status):
        return None

    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig, args)
        return builder.extract_value(builder.cmpxchg(ptr, args[2], args[3], "acq_rel", "acquire"), 1)

    return types.boolean(status, types.intp, types.int64, types.int64), codegen


@intrinsic
def peek(typingctx, status, index):
    """``status[index]``, an acquire load (what a thread published before it is visible after)."""
    if not _int64_vector(status):
        return None

    def codegen(context, builder, sig, args):
        return builder.load_atomic(_item_pointer(context, builder, sig, args), "acquire", 8)

    return types.int64(status, types.intp), codegen


@intrinsic
def copied_before_writing(typingctx, status, index):
    """After a thread copied a unit's inputs: True when no thread had begun publishing that unit, so the copy is
    not torn by the publisher's writes. An acquire fence keeps the copy's loads before the status load (the
    publisher moves the status to WRITING, acquire-release, before its first write)."""
    if not _int64_vector(status):
        return None

    def codegen(context, builder, sig, args):
        builder.fence("acquire")
        now = builder.load_atomic(_item_pointer(context, builder, sig, args), "acquire", 8)
        free = builder.icmp_signed("==", now, context.get_constant(types.int64, FREE))
        taken = builder.icmp_signed("==", now, context.get_constant(types.int64, TAKEN))
        return builder.or_(free, taken)

    return types.boolean(status, types.intp), codegen


@intrinsic
def mark_done(typingctx, status, index):
    """``status[index] = DONE``, a release store (after the results are copied out)."""
    if not _int64_vector(status):
        return None

    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig, args)
        builder.store_atomic(context.get_constant(types.int64, DONE), ptr, "release", 8)
        return context.get_dummy_value()

    return types.void(status, types.intp), codegen


@nb.njit(nogil=True, cache=True)
def begin_writing(status, index):
    """Move a unit that is not started or taken to WRITING; False when another thread publishes it."""
    while True:
        now = peek(status, index)
        if now != FREE and now != TAKEN:
            return False
        if swap(status, index, now, WRITING):
            return True


@nb.njit(nogil=True, cache=True)
def next_unit(status, counter, finish, scan):
    """The next unit this thread should compute, or -1: first units claimed from ``counter`` (and taken), then,
    with ``finish``, every unit still not started or taken by another thread (``scan``: this thread's int64
    cursor, -1 while claiming)."""
    units = status.shape[0]
    if scan[0] < 0:
        while True:
            unit = claim(counter, 1)
            if unit >= units:
                break
            if swap(status, unit, FREE, TAKEN):
                return unit
        if not finish:
            return -1
        scan[0] = 0
    while scan[0] < units:
        unit = scan[0]
        scan[0] += 1
        now = peek(status, unit)
        if now == FREE or now == TAKEN:
            return unit
    return -1


@nb.njit(nogil=True, cache=True)
def unfinished(status):
    """How many units are not DONE."""
    count = 0
    for index in range(status.shape[0]):
        if peek(status, index) != DONE:
            count += 1
    return count


def run_units(kernel: Callable[..., int], args: tuple, units: int, threads: int) -> None:
    """``kernel(*args, status, counter, finish)`` on ``threads`` threads until all ``units`` are done.

    ``kernel`` claims units from ``counter``, computes each on private copies and publishes it with
    :func:`begin_writing` / :func:`mark_done`; with ``finish`` (the calling thread) it then computes every unit
    not yet done and returns how many another thread is still copying out.
    """
    status = np.zeros(units, dtype=np.int64)
    counter = np.zeros(1, dtype=np.int64)
    helpers = []
    if threads > 1:
        pool = helper_pool(threads - 1)
        helpers = [pool.submit(kernel, *args, status, counter, False) for _ in range(threads - 1)]
    pending = kernel(*args, status, counter, True)
    for helper in helpers:
        helper.cancel()  # not started yet: not needed; running: it drops whatever it holds
    while pending:  # a helper is copying a unit out right now
        time.sleep(1e-5)
        pending = unfinished(status)
