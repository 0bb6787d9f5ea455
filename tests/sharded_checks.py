"""What the ranks of tests/test_bank_sharded.py run (module-level functions: spawned processes import them).

Each rank builds the same small float64 bank from a seed, holds its block of rows (:func:`shard_bounds`), and
compares the sharded answers and gradients with the single-process engine computed in the same process on the
whole bank. It returns the largest differences, by name; the test asserts them.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from assocmem.engines.association import additive_mask, associate
from assocmem.engines.bank import ShardedBackend, ShardError, shard_bounds
from assocmem.engines.retrieval import retrieve

K, D, DV, B = 11, 4, 3, 3
BETA = 2.5


def bank() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Patterns ``(K, D)``, values ``(K, DV)``, queries ``(B, D)`` near the first patterns, a boolean mask."""
    g = torch.Generator().manual_seed(0)
    xi = torch.randn(K, D, generator=g, dtype=torch.float64)
    v = torch.randn(K, DV, generator=g, dtype=torch.float64)
    q = xi[:B] + 0.3 * torch.randn(B, D, generator=g, dtype=torch.float64)
    mask = torch.rand(B, K, generator=g) > 0.4
    mask[0] = False
    mask[0, K - 1] = True  # query 0 takes only the last row: every rank but the last holds none of its rows
    mask[1:, 2] = True
    return xi, v, q, mask


def sharded(xi: torch.Tensor, v: torch.Tensor | None, rank: int, world: int, group: object) -> ShardedBackend:
    lo, hi = shard_bounds(K, world, rank)
    return ShardedBackend.from_rows(torch.arange(lo, hi), xi[lo:hi], None if v is None else v[lo:hi], group)


def loop(
    states: object, read: object, q: torch.Tensor, beta: object, steps: int, mask: object = None
) -> tuple:
    """``steps`` associations: ``steps - 1`` state updates through the patterns, the last one through ``read``.
    ``states`` and ``read`` are sharded backends, or ``(patterns, values)`` of the whole bank."""

    def one(where: object, x: torch.Tensor) -> tuple:
        if isinstance(where, ShardedBackend):
            return where.associate(x, beta, mask)
        m = None if mask is None else additive_mask(mask, (x.shape[0], K), x, "loop")
        out, lse, _ = associate(x, where[0], where[1], beta, m, need_lse=True)
        return out, lse

    x = q
    for _ in range(steps - 1):
        x = one(states, x)[0]
    return one(read, x)


def gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max())


def retrieval(rank: int, world: int) -> dict[str, float]:
    """Sharded answers and gradients against ``retrieve`` and the single-process engine, and their errors."""
    xi, v, q, mask = bank()
    lo, hi = shard_bounds(K, world, rank)
    group = dist.new_group()  # one group for every bank of this check (a bank's default makes its own)
    states, read = sharded(xi, None, rank, world, group), sharded(xi, v, rank, world, group)
    local = mask[:, lo:hi]
    found: dict[str, float] = {}
    for steps in (1, 3):
        found[f"states, {steps} steps"] = gap(
            loop(states, states, q, BETA, steps)[0], retrieve(xi, q, BETA, steps=steps)
        )
        found[f"values, {steps} steps"] = gap(
            loop(states, read, q, BETA, steps)[0], retrieve(xi, q, BETA, values=v, steps=steps)
        )
        found[f"values and mask, {steps} steps"] = gap(
            loop(states, read, q, BETA, steps, local)[0],
            retrieve(xi, q, BETA, values=v, steps=steps, mask=mask),
        )
    found["lse"] = gap(read.associate(q, BETA)[1], associate(q, xi, v, BETA, need_lse=True)[1])
    found["same bits on every rank"] = float(
        read.associate(q, BETA)[0].ne(read._gather(read.associate(q, BETA)[0], "test")).sum()
    )
    # gradients: queries, rows, values and a per-query beta, through two steps with a mask
    mine = xi[lo:hi].clone().requires_grad_(True)
    vals = v[lo:hi].clone().requires_grad_(True)
    qs, beta = (
        q.clone().requires_grad_(True),
        torch.full((B, 1), BETA, dtype=torch.float64, requires_grad=True),
    )
    ids = torch.arange(lo, hi)
    s_states, s_read = (
        ShardedBackend.from_rows(ids, mine, None, group),
        ShardedBackend.from_rows(ids, mine, vals, group),
    )
    out, lse = loop(s_states, s_read, qs, beta, 2, local)
    g = torch.Generator().manual_seed(1)
    w_out, w_lse = torch.randn(B, DV, generator=g, dtype=torch.float64), torch.randn(B, generator=g).double()
    ((out * w_out).sum() + (lse * w_lse).sum()).backward()
    xr, vr = xi.clone().requires_grad_(True), v.clone().requires_grad_(True)
    qr, br = q.clone().requires_grad_(True), torch.full((B, 1), BETA, dtype=torch.float64, requires_grad=True)
    out_r, lse_r = loop((xr, xr), (xr, vr), qr, br, 2, mask)
    ((out_r * w_out).sum() + (lse_r * w_lse).sum()).backward()
    found["gradient: answer"] = gap(out, out_r)
    found["gradient: queries"] = gap(qs.grad, qr.grad)
    found["gradient: patterns"] = gap(mine.grad, xr.grad[lo:hi])
    found["gradient: values"] = gap(vals.grad, vr.grad[lo:hi])
    found["gradient: beta"] = gap(beta.grad, br.grad)
    found["errors"] = float(refusals(read, q, rank))
    found.update(data_parallel(rank, world, group))
    return found


def refusals(read: ShardedBackend, q: torch.Tensor, rank: int) -> int:
    """How many of the two misuses were refused with the expected error (on every rank alike)."""
    refused = 0
    try:  # other queries on one rank
        read.associate(q + (rank == 1) * 1e-3, BETA)
    except ValueError as e:
        refused += "other queries" in str(e)
    try:  # every row of every rank hidden from query 1
        m = torch.ones(B, read.patterns.shape[0], dtype=torch.bool)
        m[1] = False
        read.associate(q, BETA, m)
    except ValueError as e:
        refused += "hide every row" in str(e)
    return refused


class Layer(nn.Module):
    """A Hopfield layer on a sharded bank: a projection of the inputs to queries, two steps, the rows' values."""

    def __init__(self, states: ShardedBackend, read: ShardedBackend) -> None:
        super().__init__()
        self.proj = nn.Linear(D, D, dtype=torch.float64)
        self.states, self.read = states, read

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, own = self.states.gather(self.proj(x))
        return loop(self.states, self.read, q, BETA, 2)[0][own]


def data_parallel(rank: int, world: int, group: object) -> dict[str, float]:
    """Training under DistributedDataParallel, each rank its own batch, against one process on every batch."""
    xi, v, _, _ = bank()
    lo, hi = shard_bounds(K, world, rank)
    mine = nn.Parameter(xi[lo:hi].clone())
    ids = torch.arange(lo, hi)
    torch.manual_seed(2)
    layer = Layer(
        ShardedBackend.from_rows(ids, mine, None, group), ShardedBackend.from_rows(ids, mine, v[lo:hi], group)
    )
    reference = {k: p.detach().clone() for k, p in layer.proj.named_parameters()}
    model = DistributedDataParallel(layer)
    g = torch.Generator().manual_seed(3)
    x, t = torch.randn(2 * world, D, generator=g).double(), torch.randn(2 * world, DV, generator=g).double()
    own = slice(2 * rank, 2 * rank + 2)
    ((model(x[own]) - t[own]) ** 2).sum().backward()
    # one process: the mean over ranks of their losses, on the whole bank
    proj = nn.Linear(D, D, dtype=torch.float64)
    with torch.no_grad():
        for k, p in proj.named_parameters():
            p.copy_(reference[k])
    xr = xi.clone().requires_grad_(True)
    out = loop((xr, xr), (xr, v), proj(x), BETA, 2)[0]
    (((out - t) ** 2).sum() / world).backward()
    return {
        **hopfield_layer(rank, world, group),
        "data parallel: weight": gap(layer.proj.weight.grad, proj.weight.grad),
        "data parallel: bias": gap(layer.proj.bias.grad, proj.bias.grad),
        "data parallel: patterns": gap(mine.grad, xr.grad[lo:hi]),
    }


def hopfield_layer(rank: int, world: int, group: object) -> dict[str, float]:
    """nn.HopfieldLayer with its K lookup rows spread over the ranks (two heads), trained under
    DistributedDataParallel behind a linear layer, against one HopfieldLayer on every batch."""
    from assocmem.nn import HopfieldLayer
    from assocmem.nn.sharded_lookup import ignore_in_ddp

    lo, hi = shard_bounds(K, world, rank)
    torch.manual_seed(4)
    one = nn.Sequential(nn.Linear(D, D), HopfieldLayer(D, quantity=K, num_heads=2, batch_first=True)).double()
    torch.manual_seed(5)
    mine = nn.Sequential(
        nn.Linear(D, D), HopfieldLayer(D, quantity=K, num_heads=2, batch_first=True, group=group)
    ).double()
    state = {k: t[:, lo:hi] if k.endswith("lookup_weights") else t for k, t in one.state_dict().items()}
    mine.load_state_dict(state)
    ignore_in_ddp(mine)
    model = DistributedDataParallel(mine)
    g = torch.Generator().manual_seed(6)
    x, t = (
        torch.randn(2 * world, 3, D, generator=g).double(),
        torch.randn(2 * world, 3, D, generator=g).double(),
    )
    own = slice(2 * rank, 2 * rank + 2)
    out = model(x[own])
    ((out - t[own]) ** 2).sum().backward()
    want = one(x)
    (((want - t) ** 2).sum() / world).backward()
    found = {"HopfieldLayer: output": gap(out, want[own])}
    theirs = dict(one.named_parameters())
    for name, p in mine.named_parameters():
        ref = theirs[name].grad[:, lo:hi] if name.endswith("lookup_weights") else theirs[name].grad
        found[f"HopfieldLayer: gradient of {name}"] = gap(p.grad, ref)
    return found


def checks(rank: int, world: int, folder: str, timeout: float, saved: str | None) -> dict[str, object]:
    """:func:`retrieval` and :func:`reload` (written to ``folder/<rank>.json``: the last rank does not come
    back), then, with three ranks or more, :func:`failures`."""
    found = retrieval(rank, world)
    if saved is not None:
        found.update(reload(rank, world, saved))
        found.update(sharded_save(rank, world, saved))
    Path(folder, f"{rank}.json").write_text(json.dumps(found))
    return failures(rank, world, timeout, folder) if world >= 3 else {}


def reload(rank: int, world: int, saved: str) -> dict[str, float]:
    """This rank's rows of a bank saved by one process (``saved``), against the single-process engine."""
    xi, v, q, mask = bank()
    lo, hi = shard_bounds(K, world, rank)
    joint = ShardedBackend.load(saved, joint=True, dtype=torch.float64)
    from assocmem.engines.bank import MemoryBank

    rows = MemoryBank(xi[lo:hi], v[lo:hi], ids=torch.arange(lo, hi), backend="sharded")
    numbered = MemoryBank(xi[lo:hi], backend="sharded")  # default ids: positions in the whole bank
    return {
        "reload: ids": float((joint.ids != torch.arange(lo, hi)).sum()),
        "default ids": float((numbered.ids != torch.arange(lo, hi)).sum()),
        "reload: answer": gap(joint.associate(q, BETA)[0], associate(q, xi, torch.cat([xi, v], 1), BETA)[0]),
        "MemoryBank, 3 steps": gap(rows.retrieve(q, BETA, steps=3), retrieve(xi, q, BETA, values=v, steps=3)),
        "MemoryBank, 3 steps, mask": gap(
            rows.retrieve(q, BETA, steps=3, mask=mask), retrieve(xi, q, BETA, values=v, steps=3, mask=mask)
        ),
    }


def sharded_save(rank: int, world: int, saved: str) -> dict[str, float]:
    """A bank saved on ``world`` ranks (shards of two rows), reloaded on ``world - 1`` ranks (a subgroup) and in
    one process, against the single-process engine; then a save that fails on the last rank: every rank raises
    and the old bank stays, with no temporary folder left."""
    from assocmem.engines.bank import MemoryBank, sharded_storage

    xi, v, q, _ = bank()
    lo, hi = shard_bounds(K, world, rank)
    group, fewer = dist.new_group(), dist.new_group(list(range(world - 1)))  # every rank makes both
    path = Path(saved).parent / "sharded-bank"
    MemoryBank(xi[lo:hi], v[lo:hi], backend="sharded", group=group).save(path, shard_rows=2)
    want = retrieve(xi, q, BETA, values=v, steps=3)
    found: dict[str, float] = {}
    if rank < world - 1:
        back = MemoryBank.load(path, backend="sharded", group=fewer)
        a, b = shard_bounds(K, world - 1, rank)
        found["sharded save: reload on fewer ranks"] = gap(back.retrieve(q, BETA, steps=3), want) + float(
            (back.ids != torch.arange(a, b)).sum()
        )
    one = MemoryBank.load(path, backend="local")
    found["sharded save: one process"] = gap(one.retrieve(q, BETA, steps=3), want) + float(
        (one.ids != torch.arange(K)).sum()
    )
    real, refused = sharded_storage.save_file, 0.0
    if rank == world - 1:

        def broken(*args: object, **kwargs: object) -> None:
            raise OSError("no space left on device (the test)")

        sharded_storage.save_file = broken
    try:
        MemoryBank(2 * xi[lo:hi], v[lo:hi], backend="sharded", group=group).save(path)
    except ValueError as e:
        refused = float(
            f"rank {world - 1} of {world} could not write its rows" in str(e) and "no space" in str(e)
        )
    finally:
        sharded_storage.save_file = real
    dist.barrier(group)  # rank 0 has removed the temporary folder
    kept = MemoryBank.load(path, backend="local")
    left = len([p for p in path.parent.iterdir() if p.name.startswith(".sharded-bank")])
    found["sharded save: a failed save keeps the old bank"] = (
        (1.0 - refused) + left + gap(kept.retrieve(q, BETA, steps=3), want)
    )
    return found


def failures(rank: int, world: int, timeout: float, folder: str) -> dict[str, object]:
    """The last rank stalls past the timeout, then (in a new bank) dies: what every rank sees, and when (the
    last rank writes what it saw of its own stall to ``folder/stalled.json`` before it dies)."""
    xi, v, q, _ = bank()
    lo, hi = shard_bounds(K, world, rank)
    seen: dict[str, object] = {}
    for case in ("stall", "kill"):
        backend = ShardedBackend.from_rows(torch.arange(lo, hi), xi[lo:hi], v[lo:hi], timeout=timeout)
        backend.associate(q, BETA)  # every rank answers
        if rank == world - 1:
            if case == "kill":
                Path(folder, "stalled.json").write_text(json.dumps(seen))
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(timeout + 1.5)
        start = time.monotonic()
        try:
            backend.associate(q, BETA)
            seen[case] = "answered"
        except ShardError as e:
            seen[case] = str(e)
        seen[f"{case} seconds"] = time.monotonic() - start
    return seen
