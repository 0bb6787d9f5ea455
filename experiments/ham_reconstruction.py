"""MNIST reconstruction with spherical image neurons and 900 unit-norm log-sum-exp memories, against hamux's recorded
run (docs/ham-recipes-recon.md).

Train (resumes from the last per-epoch checkpoint in --out):
    ASSOCMEM_DATA=/work/shared/data OMP_NUM_THREADS=1 python experiments/ham_reconstruction.py train --out /tmp/recon
Evaluate a checkpoint (test-set one-step loss, converged fixed points, masked pixels) and draw the figures:
    python experiments/ham_reconstruction.py eval --out /tmp/recon --figures docs/figures
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from assocmem.data import DataSet, load
from assocmem.ham import reconstruction as rec


def data(args: argparse.Namespace) -> DataSet:
    folder = args.data_dir or (Path(os.environ.get("ASSOCMEM_DATA", "/work/shared/data")) / "mnist")
    return load("mnist", data_dir=folder, download=False)


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ds = data(args)
    images = rec.unit_images(ds.train.images)
    net = rec.reconstruction_network(
        args.memories,
        images.shape[1],
        args.beta,
        init_shift=args.init_shift,
        generator=torch.Generator().manual_seed(args.seed),
    )
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed + 1)
    epoch = 0
    log = []
    last = out / "last.pt"
    if last.exists():
        ck = torch.load(last, weights_only=False)
        net.load_state_dict(ck["net"])
        opt.load_state_dict(ck["opt"])
        gen.set_state(ck["gen"])
        epoch, log = ck["epoch"], ck["log"]
        print(f"resumed after epoch {epoch}", flush=True)
    while epoch < args.epochs:
        t0 = time.perf_counter()
        order = torch.randperm(images.shape[0], generator=gen)
        total = 0.0
        for i in range(0, images.shape[0], args.batch):
            loss = rec.denoising_loss(net, images[order[i : i + args.batch]], args.noise, generator=gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * min(args.batch, images.shape[0] - i)
        epoch += 1
        row = {
            "epoch": epoch,
            "last_minibatch_loss": float(loss),
            "train_mean_loss": total / images.shape[0],
            "seconds": time.perf_counter() - t0,
        }
        log.append(row)
        print(json.dumps(row), flush=True)
        torch.save(
            {
                "net": net.state_dict(),
                "opt": opt.state_dict(),
                "gen": gen.get_state(),
                "epoch": epoch,
                "log": log,
                "args": vars(args),
            },
            out / "tmp.pt",
        )
        os.replace(out / "tmp.pt", last)
        torch.save(net.state_dict(), out / f"epoch{epoch:02d}.pt")


def evaluate(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    ck = torch.load(out / "last.pt", weights_only=False)
    a = ck["args"]
    ds = data(args)
    test = rec.unit_images(ds.test.images)
    train_mean = rec.unit_images(ds.train.images).mean(0)
    net = rec.reconstruction_network(a["memories"], test.shape[1], a["beta"])
    net.load_state_dict(ck["net"])
    gen = torch.Generator().manual_seed(12345)
    n = args.test_count or test.shape[0]
    result = {
        "epochs": ck["epoch"],
        "train_log": ck["log"],
        "test_images": test.shape[0],
        "relaxed_images": n,
    }
    sums = {
        "one_step": 0.0,
        "fixed_point": 0.0,
        "masked_fixed": 0.0,
        "masked_mean_fill": 0.0,
        "masked_one": 0.0,
    }
    worst_rise, steps, max_speed, unsettled = 0.0, 0, 0.0, 0
    hidden = torch.zeros(28, 28, dtype=torch.bool)
    hidden[14:] = True
    hidden = hidden.flatten()
    keep = {}
    per_image = []
    with torch.no_grad():
        # hamux's measure on the whole test set: one step (alpha = 1) from clean + 0.3 N(0, 1)
        for i in range(0, test.shape[0], args.eval_batch):
            clean = test[i : i + args.eval_batch]
            noisy = clean + a["noise"] * torch.randn(clean.shape, generator=gen)
            one = rec.descend(net, noisy, gradient=None)
            per_image.append((one - clean).pow(2).mean(1))
        per_image = torch.cat(per_image)
        sums["one_step"] = float(per_image.sum())
        # the spread of hamux's statistic (one minibatch of 100): batch means over the test set
        batches = per_image[: per_image.shape[0] // a["batch"] * a["batch"]].reshape(-1, a["batch"]).mean(1)
        result["one_step_minibatch_mean_std"] = [float(batches.mean()), float(batches.std())]
        result["one_step_minibatch_range"] = [float(batches.min()), float(batches.max())]
        gen = torch.Generator().manual_seed(12345)
        for i in range(0, n, args.eval_batch):
            clean = test[i : min(i + args.eval_batch, n)]
            noisy = clean + a["noise"] * torch.randn(clean.shape, generator=gen)
            traj = rec.settle(net, noisy, tol=args.tol, t_max=args.t_max, strict=False, rtol=args.rtol)
            g = net.layers[rec.IMAGE].activation(traj.states[rec.IMAGE])
            sums["fixed_point"] += float((g - clean).pow(2).mean(1).sum())
            # masked pixels: the lower half hidden, the upper half clamped at the clean values
            start = clean.clone()
            start[:, hidden] = 0.0
            mask = (~hidden).expand_as(clean)
            mtraj = rec.settle(
                net, start, clamp=mask, tol=args.tol, t_max=args.t_max, strict=False, rtol=args.rtol
            )
            mg = net.layers[rec.IMAGE].activation(mtraj.states[rec.IMAGE])
            for t in (traj, mtraj):
                e = t.energies
                worst_rise = max(worst_rise, float((e[1:] - e[:-1]).max()) if e.shape[0] > 1 else 0.0)
                steps = max(steps, int(t.steps.max()))
                max_speed = max(max_speed, float(t.speed.max()))
                unsettled += int((~t.converged).sum())
            sums["masked_fixed"] += float((mg - clean)[:, hidden].pow(2).mean(1).sum())
            fill = start.clone()
            fill[:, hidden] = train_mean[hidden]
            sums["masked_mean_fill"] += float((fill - clean)[:, hidden].pow(2).mean(1).sum())
            mone = rec.descend(net, start, gradient=None)
            sums["masked_one"] += float((mone - clean)[:, hidden].pow(2).mean(1).sum())
            if i == 0:
                one = rec.descend(net, noisy, gradient=None)
                keep = {
                    "clean": clean[:8],
                    "noisy": noisy[:8],
                    "one": one[:8],
                    "fixed": g[:8],
                    "masked": start[:8],
                    "masked_fixed": mg[:8],
                    "energies": traj.energies[:, :8],
                }
    result["one_step_mse"] = sums.pop("one_step") / test.shape[0]
    for k, v in sums.items():
        result[k + "_mse"] = v / n
    result.update(
        {
            "largest_energy_rise": worst_rise,
            "max_steps": steps,
            "max_final_speed": max_speed,
            "not_settled": unsettled,
            "tol": args.tol,
            "t_max": args.t_max,
        }
    )
    print(json.dumps(result, indent=1))
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    if args.figures:
        figures(Path(args.figures), keep, rec.memories(net))


def figures(folder: Path, keep: dict, mem: torch.Tensor) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        ("clean", "clean"),
        ("noisy", "noisy (0.3)"),
        ("one", "one step"),
        ("fixed", "fixed point"),
        ("masked", "lower half hidden"),
        ("masked_fixed", "fixed point (upper clamped)"),
    ]
    fig, axes = plt.subplots(len(rows), 8, figsize=(6, 5.2))
    for r, (key, title) in enumerate(rows):
        for c in range(8):
            ax = axes[r, c]
            ax.imshow(keep[key][c].reshape(28, 28), cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(title, fontsize=6, rotation=0, ha="right", va="center")
    fig.tight_layout()
    fig.savefig(folder / "ham_recon_mnist.png", dpi=90)
    plt.close(fig)
    side = 10
    grid = mem[: side * side].reshape(side, side, 28, 28).permute(0, 2, 1, 3).reshape(side * 28, side * 28)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(grid, cmap="gray")
    ax.axis("off")
    ax.set_title("the first 100 of 900 learned memories", fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "ham_recon_memories.png", dpi=90)
    plt.close(fig)
    e = keep["energies"]
    fig, ax = plt.subplots(figsize=(4, 2.6))
    ax.plot(e.numpy(), lw=1)
    ax.set_xlabel("dopri5 step")
    ax.set_ylabel("energy")
    ax.set_title("energy while relaxing noisy test digits", fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "ham_recon_energy.png", dpi=90)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("phase", choices=["train", "eval"])
    p.add_argument("--out", required=True)
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--lr", type=float, default=4e-2)
    p.add_argument("--noise", type=float, default=0.3)
    p.add_argument("--beta", type=float, default=10.0)
    p.add_argument("--memories", type=int, default=900)
    p.add_argument("--init-shift", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--test-count", type=int, default=2000, help="test images relaxed to a fixed point")
    p.add_argument("--t-max", type=float, default=1000.0)
    p.add_argument("--rtol", type=float, default=1e-5, help="dopri5's relative error control")
    p.add_argument("--eval-batch", type=int, default=1000)
    p.add_argument("--figures")
    args = p.parse_args()
    (train if args.phase == "train" else evaluate)(args)


if __name__ == "__main__":
    main()
