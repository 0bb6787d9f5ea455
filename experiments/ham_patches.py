"""An Energy-Transformer block completing masked 7x7 patches of Fashion-MNIST (docs/ham-recipes-recon.md).

    ASSOCMEM_DATA=/work/shared/data OMP_NUM_THREADS=1 python experiments/ham_patches.py --out /tmp/patches \
        --figures docs/figures

Trains for --epochs epochs (resuming from --out/last.pt), then on the test set: masked-patch MSE against the mean
patch of each position, the energy at every step (it must never increase), and a relaxation of the same block to
a fixed point (velocity below --tol) with the MSE read there.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from assocmem.data import load
from assocmem.dynamics import relax
from assocmem.ham import patches as pt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-count", type=int, default=0, help="images per epoch (0: all 60,000)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--masked", type=int, default=4, help="masked patches per image (of 16)")
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--key-dim", type=int, default=16)
    p.add_argument("--memories", type=int, default=128)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--dt", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--test-count", type=int, default=0, help="test images (0: all 10,000)")
    p.add_argument("--fixed-count", type=int, default=1000, help="test images also relaxed to a fixed point")
    p.add_argument("--figures")
    args = p.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    folder = args.data_dir or (Path(os.environ.get("ASSOCMEM_DATA", "/work/shared/data")) / "fashion-mnist")
    ds = load("fashion-mnist", data_dir=folder, download=False)
    train, test = ds.train.images.float() / 255, ds.test.images.float() / 255
    test = test[: args.test_count or test.shape[0]]
    gen = torch.Generator().manual_seed(args.seed)
    model = pt.PatchCompleter(
        28, 7, args.dim, args.heads, args.key_dim, args.memories, args.steps, args.dt, generator=gen
    )
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    epoch, log = 0, []
    last = out / "last.pt"
    if last.exists():
        ck = torch.load(last, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        gen.set_state(ck["gen"])
        epoch, log = ck["epoch"], ck["log"]
    count = args.train_count or train.shape[0]
    while epoch < args.epochs:
        t0 = time.perf_counter()
        order = torch.randperm(train.shape[0], generator=gen)[:count]
        total = 0.0
        for i in range(0, count, args.batch):
            images = train[order[i : i + args.batch]]
            mask = pt.random_mask(images.shape[0], 16, args.masked, gen)
            predicted, _ = model(images, mask, record=False)
            loss = pt.masked_mse(predicted, pt.patchify(images, 7), mask)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * images.shape[0]
        epoch += 1
        row = {"epoch": epoch, "train_loss": total / count, "seconds": time.perf_counter() - t0}
        log.append(row)
        print(json.dumps(row), flush=True)
        torch.save(
            {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "gen": gen.get_state(),
                "epoch": epoch,
                "log": log,
                "args": vars(args),
            },
            out / "tmp.pt",
        )
        os.replace(out / "tmp.pt", last)
    # ---------------------------------------------------------------- test set
    mean_patch = pt.patchify(train, 7).mean(0)
    tgen = torch.Generator().manual_seed(777)
    sums = {"block": 0.0, "mean_patch": 0.0, "fixed_point": 0.0}
    rise, energies, speed, fixed_steps, masked_total, fixed_total = -float("inf"), None, 0.0, 0, 0, 0
    unsettled = 0
    keep = {}
    with torch.no_grad():
        for i in range(0, test.shape[0], 1000):
            images = test[i : i + 1000]
            target = pt.patchify(images, 7)
            mask = pt.random_mask(images.shape[0], 16, args.masked, tgen)
            predicted, traj = model(images, mask, gradient=None)
            e = traj.energies
            rise = max(rise, float(((e[1:] - e[:-1]) / e[:-1].abs().clamp_min(1.0)).max()))
            masked = int(mask.sum())
            masked_total += masked
            sums["block"] += float((predicted - target)[mask].pow(2).mean()) * masked
            sums["mean_patch"] += float((mean_patch.expand_as(target) - target)[mask].pow(2).mean()) * masked
            if i >= args.fixed_count:
                continue
            fixed_total += masked
            fixed = relax(
                model.network,
                {pt.TOKENS: model.start(images, mask)},
                method="dopri5",
                tol=args.tol,
                t_max=500.0,
                gradient=None,
            )
            unsettled += int((~fixed.converged).sum())
            fe = fixed.energies
            rise = max(rise, float(((fe[1:] - fe[:-1]) / fe[:-1].abs().clamp_min(1.0)).max()))
            speed = max(speed, float(fixed.speed.max()))
            fixed_steps = max(fixed_steps, int(fixed.steps.max()))
            at_fixed = model.decode_state(fixed.states[pt.TOKENS])
            sums["fixed_point"] += float((at_fixed - target)[mask].pow(2).mean()) * masked
            if i == 0:
                energies = e[:, :16]
                keep = {
                    "images": images[:8],
                    "mask": mask[:8],
                    "predicted": predicted[:8],
                    "fixed": at_fixed[:8],
                }
    result = {
        "epochs": epoch,
        "train_log": log,
        "args": vars(args),
        "test_masked_mse_block": sums["block"] / masked_total,
        "test_masked_mse_mean_patch": sums["mean_patch"] / masked_total,
        "test_masked_mse_fixed_point": sums["fixed_point"] / max(fixed_total, 1),
        "fixed_point_images": min(args.fixed_count, test.shape[0]),
        "largest_relative_energy_rise": rise,
        "fixed_point_max_speed": speed,
        "fixed_point_max_steps": fixed_steps,
        "fixed_point_not_settled": unsettled,
        "tol": args.tol,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    print(json.dumps(result, indent=1))
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    if args.figures:
        figures(Path(args.figures), keep, energies)
    if rise > 1e-6:
        raise SystemExit(f"the energy rose during inference (largest relative rise {rise:.3g})")


def figures(folder: Path, keep: dict, energies: torch.Tensor) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    target = pt.patchify(keep["images"], 7)
    shown = target.clone()
    shown[keep["mask"]] = 0.5
    rows = [
        ("original", target),
        ("masked (grey)", shown),
        ("12 steps", torch.where(keep["mask"].unsqueeze(-1), keep["predicted"].clamp(0, 1), target)),
        ("fixed point", torch.where(keep["mask"].unsqueeze(-1), keep["fixed"].clamp(0, 1), target)),
    ]
    fig, axes = plt.subplots(len(rows), 8, figsize=(6, 3.3))
    for r, (title, tokens) in enumerate(rows):
        imgs = pt.unpatchify(tokens, 7, 28, 28)
        for c in range(8):
            axes[r, c].imshow(imgs[c], cmap="gray", vmin=0, vmax=1)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(title, fontsize=6, rotation=0, ha="right", va="center")
    fig.tight_layout()
    fig.savefig(folder / "ham_patches_fashion.png", dpi=90)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(4, 2.6))
    ax.plot((energies - energies[0]).numpy(), lw=1)
    ax.set_xlabel("descent step")
    ax.set_ylabel("E(t) - E(0)")
    ax.set_title("Energy-Transformer block on 16 test images", fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "ham_patches_energy.png", dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
