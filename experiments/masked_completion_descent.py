"""Masked-pixel completion on the reconstruction recipe's network settles with the energy never rising
(docs/dynamics.md, "Clamping part of a layer").

Trains a reconstruction network (spherical pixels, 900 unit-norm log-sum-exp memories, beta = 10) for a few hundred
steps of the recipe's denoising loss, hides the lower half of the first test digits, clamps the upper half and
relaxes (dopri5, float64) to the fixed point; prints how many settled, the largest energy step of any digit, the
hidden pixels' mean squared error and the mean final energy.

    ASSOCMEM_DATA=/work/shared/data OMP_NUM_THREADS=1 python experiments/masked_completion_descent.py
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from assocmem.data import load
from assocmem.ham import reconstruction as rec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--steps", type=int, default=300, help="training steps (batch 128, Adam lr 1e-2)")
    parser.add_argument("--images", type=int, default=64, help="test digits to complete")
    parser.add_argument("--rtol", type=float, default=1e-9)
    parser.add_argument("--tol", type=float, default=1e-5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    dtype = torch.float64
    folder = args.data_dir or Path(os.environ.get("ASSOCMEM_DATA", "/work/shared/data")) / "mnist"
    ds = load("mnist", data_dir=folder, download=False)
    gen = torch.Generator().manual_seed(0)
    net = rec.reconstruction_network(900, 784, 10.0, generator=gen, dtype=dtype)
    train = rec.unit_images(ds.train.images[:6000]).to(dtype)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    start = time.perf_counter()
    for _ in range(args.steps):
        batch = train[torch.randint(0, len(train), (128,), generator=gen)]
        loss = rec.denoising_loss(net, batch, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"trained {args.steps} steps in {time.perf_counter() - start:.0f} s, last loss {loss.item():.6f}")
    test = rec.unit_images(ds.test.images[: args.images]).to(dtype)
    mask = torch.zeros_like(test, dtype=torch.bool)
    mask[:, : test.shape[1] // 2] = True  # the upper half is given
    start = time.perf_counter()
    traj = rec.settle(
        net, torch.where(mask, test, 0.0), clamp=mask, tol=args.tol, rtol=args.rtol, strict=False
    )
    e = traj.energies
    completed = net.layers[rec.IMAGE].activation(traj.states[rec.IMAGE])
    hidden = ~mask
    mse = float((completed - test)[hidden].pow(2).mean())
    print(
        f"settled {int(traj.converged.sum())}/{len(test)} (max |dx/dt| <= {args.tol:g}) in "
        f"{time.perf_counter() - start:.0f} s, {traj.evaluations} evaluations; largest energy step "
        f"{float((e[1:] - e[:-1]).max()):+.3g}; hidden pixels' MSE {mse:.5f}; "
        f"mean final energy {float(e[-1].mean()):.4f}"
    )


if __name__ == "__main__":
    main()
