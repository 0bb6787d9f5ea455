"""Start a few ranks on this machine, joined in one ``torch.distributed`` process group over the loopback
interface: how the tests and benchmarks of sharded banks run without a launcher (docs/bank.md, "Sharded banks").

A real job starts its ranks with ``torchrun`` (or ``srun`` on a cluster) and calls
``torch.distributed.init_process_group()`` in each; :func:`launch` does the same for ``world`` fresh processes
(``spawn``, so nothing of the caller's state is shared): this process holds the rendezvous store (a
``TCPStore`` on 127.0.0.1, on a port the system picks, so runs never race for one), each rank joins the group
with gloo (``GLOO_SOCKET_IFNAME=lo`` unless set) and runs ``fn(rank, world, *args)``; their return values come
back, in rank order.
"""

from __future__ import annotations

import datetime
import os
import pickle
import queue as queues
import time
import traceback
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from assocmem.checks import is_count, positive_float


class LaunchError(RuntimeError):
    """A rank of :func:`launch` raised, died without an answer, or did not finish within the time allowed."""


def launch(
    fn: Callable[..., object],
    world: int,
    args: tuple = (),
    *,
    timeout: float = 300.0,
    threads: int = 1,
    missing_ok: bool = False,
) -> list[object]:
    """Run ``fn(rank, world, *args)`` on ``world`` new processes joined in one gloo process group; returns their
    return values in rank order.

    ``fn`` must be importable by name (a module-level function) and its arguments and return value picklable;
    each rank runs with ``threads`` PyTorch threads. A rank that raises is a :class:`LaunchError` carrying its
    traceback; so is a rank that exits without an answer (its value is ``None`` instead with ``missing_ok``: a
    test that kills a rank on purpose), and ranks still running after ``timeout`` seconds (they are killed).
    """
    if not callable(fn):
        raise TypeError(f"launch: fn must be a module-level function, got {fn!r}")
    if not is_count(world):
        raise ValueError(f"launch: world must be an int >= 1 (processes to start), got {world!r}")
    if not is_count(threads):
        raise ValueError(f"launch: threads must be an int >= 1 (PyTorch threads per rank), got {threads!r}")
    if not isinstance(args, tuple):
        raise TypeError(f"launch: args must be a tuple of fn's arguments after (rank, world), got {args!r}")
    seconds = positive_float(timeout, "timeout (seconds)", "launch")
    store = dist.TCPStore("127.0.0.1", 0, None, True, wait_for_workers=False)
    ctx = mp.get_context("forkserver")
    # the server imports torch and fn's module once, then forks every rank of every launch from itself
    ctx.set_forkserver_preload(["torch", "assocmem.engines.bank", fn.__module__])
    answers = ctx.Queue()
    procs = [
        ctx.Process(
            target=_rank, args=(rank, world, store.port, threads, seconds, fn, args, answers), daemon=True
        )
        for rank in range(world)
    ]
    for p in procs:
        p.start()
    results: dict[int, tuple[str, bytes | str]] = {}
    deadline = time.monotonic() + seconds
    try:
        while len(results) < world:
            try:
                rank, kind, payload = answers.get(timeout=0.05)
                results[rank] = (kind, payload)
                continue
            except queues.Empty:
                pass
            gone = [r for r, p in enumerate(procs) if r not in results and p.exitcode is not None]
            if gone:
                time.sleep(0.2)  # an answer put just before the exit may still be in the pipe
                while True:
                    try:
                        rank, kind, payload = answers.get_nowait()
                        results[rank] = (kind, payload)
                    except queues.Empty:
                        break
                for r in gone:
                    if r not in results:
                        results[r] = ("missing", f"exit code {procs[r].exitcode}")
            if time.monotonic() > deadline:
                late = [r for r in range(world) if r not in results]
                raise LaunchError(f"launch: ranks {late} of {world} did not finish within {seconds:g} s")
    finally:
        for p in procs:
            p.join(timeout=max(0.0, min(5.0, deadline - time.monotonic())))
            if p.exitcode is None:
                p.kill()
                p.join()
    values: list[object] = []
    for rank in range(world):
        kind, payload = results[rank]
        if kind == "error":
            raise LaunchError(f"launch: rank {rank} of {world} raised:\n{payload}")
        if kind == "missing" and not missing_ok:
            raise LaunchError(f"launch: rank {rank} of {world} ended without an answer ({payload})")
        values.append(pickle.loads(payload) if kind == "ok" else None)
    return values


def _rank(
    rank: int,
    world: int,
    port: int,
    threads: int,
    seconds: float,
    fn: Callable[..., object],
    args: tuple,
    answers: object,
) -> None:
    """One rank: join the group, run ``fn``, send its answer (pickled here: tensors travel as bytes)."""
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(threads)
    wait = datetime.timedelta(seconds=seconds)
    try:
        store = dist.TCPStore("127.0.0.1", port, world, False, timeout=wait)
        dist.init_process_group("gloo", store=store, rank=rank, world_size=world, timeout=wait)
        answer = ("ok", pickle.dumps(fn(rank, world, *args)))
    except BaseException:
        answer = ("error", traceback.format_exc())
    answers.put((rank, *answer))
    answers.close()
    answers.join_thread()
    # no destroy_process_group: with a dead peer it may wait; the process ends and the OS closes the connections
    os._exit(0)
