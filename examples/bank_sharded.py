"""Retrieve from a memory bank spread over the ranks of a job (docs/bank.md, "Sharded banks").

Start it with torchrun, on one machine or many (every rank runs this script):

    torchrun --standalone --nproc-per-node 2 examples/bank_sharded.py --memories 1000000
    torchrun --standalone --nproc-per-node 2 examples/bank_sharded.py --bank path/to/saved-bank

and on a cluster with Slurm, one rank per node (``srun`` starts one torchrun per node, the first node hosts the
rendezvous):

    srun --nodes 8 --ntasks-per-node 1 bash -c 'torchrun --nnodes $SLURM_NNODES --nproc-per-node 1 \\
        --rdzv-backend c10d --rdzv-id $SLURM_JOB_ID \\
        --rdzv-endpoint $(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1):29500 \\
        examples/bank_sharded.py --bank /shared/bank'

Each rank holds a contiguous block of the rows: generated here from a seed (``--memories``), or its block of a
bank saved by ``MemoryBank.save`` (``--bank``: each rank reads only the shards that hold its rows). Every rank
takes the same queries (cues: stored rows plus noise), runs ``--steps`` updates ``x <- xi^T softmax(beta xi x)``
through the sharded bank, and rank 0 prints how many cues came back to their row and the time per step. A rank
that dies or stalls past ``--timeout`` seconds makes the others stop with a ShardError (exit code 1), never a
partial answer. CPU tensors use gloo; with ``--cuda`` each rank takes the GPU of its local rank and NCCL.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.distributed as dist

from assocmem.engines.bank import ShardedBackend, ShardError, shard_bounds

BLOCK = 1 << 16


def rows(lo: int, hi: int, d: int) -> torch.Tensor:
    """Rows ``lo`` to ``hi`` of a random bank of unit-norm rows, the same on every rank (block ``j`` seeded ``j``)."""
    out = torch.empty(hi - lo, d)
    for j in range(lo // BLOCK, (hi - 1) // BLOCK + 1):
        block = torch.nn.functional.normalize(
            torch.randn(BLOCK, d, generator=torch.Generator().manual_seed(j)), dim=1
        )
        a, b = max(lo, j * BLOCK), min(hi, (j + 1) * BLOCK)
        out[a - lo : b - lo] = block[a - j * BLOCK : b - j * BLOCK]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=100_000, help="rows of the generated bank")
    parser.add_argument("--dim", type=int, default=64, help="width of the generated bank's rows")
    parser.add_argument(
        "--bank", default=None, help="a bank saved by MemoryBank.save (instead of generating one)"
    )
    parser.add_argument("--queries", type=int, default=16)
    parser.add_argument("--beta", type=float, default=20.0)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds a collective waits for the others"
    )
    parser.add_argument("--cuda", action="store_true", help="one GPU per rank, NCCL")
    args = parser.parse_args()

    device = torch.device("cpu")
    if args.cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if args.cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.bank is not None:
        if args.cuda:
            parser.error("--bank reads the rows to the CPU (gloo); leave out --cuda")
        # joint: one association reads out [xi | v] (the next state and the values) when the bank has values
        bank = ShardedBackend.load(args.bank, timeout=args.timeout, joint=True)
    else:
        lo, hi = shard_bounds(args.memories, world, rank)
        bank = ShardedBackend.from_rows(
            torch.arange(lo, hi, device=device), rows(lo, hi, args.dim).to(device), timeout=args.timeout
        )
    # the same cues on every rank (from seeds): stored rows plus noise, or random directions for a saved bank
    targets = torch.randperm(bank.size, generator=torch.Generator().manual_seed(1))[: args.queries]
    noise = torch.randn(args.queries, bank.dim, generator=torch.Generator().manual_seed(2))
    truth = None
    if args.bank is None:
        truth = torch.stack([rows(int(t), int(t) + 1, bank.dim)[0] for t in targets])
        cues = truth + 0.3 * noise / bank.dim**0.5
    else:
        cues = noise.to(bank.patterns.dtype)
    cues = cues.to(device)
    try:
        x, start = cues, time.perf_counter()
        for _ in range(args.steps):
            out, _ = bank.associate(x, args.beta)
            x = out[:, : bank.dim]  # the next state (the values, if any, follow it)
        seconds = (time.perf_counter() - start) / args.steps
        overlap = bank.associate(x, 1e4)[0][
            :, : bank.dim
        ]  # the row each state is closest to (one row at large beta)
    except ShardError as err:
        print(f"rank {rank}: {err}", file=sys.stderr)
        return 1
    if rank == 0:
        values = bank.value_dim - bank.dim if bank.values is not None else 0
        print(
            f"{bank.size} rows of width {bank.dim} (values of width {values}) on {world} ranks, "
            f"{args.queries} cues, beta {args.beta}"
        )
        print(f"{1e3 * seconds:.2f} ms per step (all ranks, with the merge)")
        if truth is not None:
            hits = (torch.nn.functional.cosine_similarity(overlap, truth.to(device)) > 0.99).sum()
            print(f"{int(hits)} of {args.queries} cues came back to their row after {args.steps} steps")
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
