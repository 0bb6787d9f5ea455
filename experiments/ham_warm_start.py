"""The convolutional HAM started from its own bottom-up pass (issue 13; docs/ham.md, "Started from its
feed-forward reading"): the recipe's network (``conv``, no hidden layer) has its parameters trained as a plain
network first, on the pass the memory's feed-forward reading computes (convolution and feature bias, ReLU,
average pooling and pooled bias, ReLU, the label synapse and bias; no feedback), with the recipe's optimiser, rate
and cosine schedule over ``--epochs``; then the same weights are relaxed to their fixed points, with the label
synapse and bias scaled by each of ``--alphas`` and the label layer's ``beta`` divided by it (the feed-forward
answer is unchanged, the label loop's gain is multiplied by ``alpha``). ``--out`` receives a run folder holding
the weights scaled by ``--write-alpha`` and a recipe (``recipe.json``: the label layer's new ``beta``,
``--ft-epochs``, ``--ft-lr``, ``--method``, ``--dt``) to train through the dynamics from there:

    ASSOCMEM_DATA=../shared/data python experiments/ham_warm_start.py recipes/ham/conv-fashion.json \\
        --out runs/warm --alphas 1 0.5 --write-alpha 0.5 --method dopri5 --dt 1 --ft-epochs 2 --ft-lr 5e-4
    assocmem ham train runs/warm/recipe.json --out runs/warm --resume

One thread; the pretraining takes about 20 s of CPU an epoch, each relaxation of 2048 test images 10-90 s.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from assocmem.ham import load_images, load_recipe
from assocmem.ham.config import recipe_from_dict
from assocmem.ham.run import new_run, save_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", help="a conv recipe without a hidden layer")
    parser.add_argument("--out", required=True, help="the run folder to write")
    parser.add_argument("--epochs", type=int, default=8, help="epochs of the bottom-up pass")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--pretrained", help="a pretrained.pt of an earlier call: skip the pretraining")
    parser.add_argument("--fixed-size", type=int, default=2048, help="test images relaxed per alpha")
    parser.add_argument("--alphas", type=float, nargs="+", default=[1.0])
    parser.add_argument("--method", help="the relaxation's method (default: the recipe's)")
    parser.add_argument("--dt", type=float, help="its step (default: the recipe's)")
    parser.add_argument("--write-alpha", type=float, help="write the run folder with this scale")
    parser.add_argument("--ft-epochs", type=int, default=2, help="epochs through the dynamics (recipe.json)")
    parser.add_argument("--ft-lr", type=float, default=5e-4, help="their rate (recipe.json)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    c = load_recipe(args.recipe)
    if c.architecture != "conv" or c.hidden:
        raise SystemExit("ham_warm_start: only the conv recipe without a hidden layer")
    d = load_images(c.dataset, data_dir=args.data_dir)
    run = new_run(c)
    model = run.model
    syn = model.network.synapses
    conv, read = syn[0].weight, syn[2].weight
    b_features, b_pooled, b_labels = (model.biases[n] for n in ("features", "pooled", "labels"))

    def bottom_up(x: torch.Tensor) -> torch.Tensor:
        """The label layer's input after one bottom-up pass (the memory's feed-forward reading)."""
        f = F.conv2d(x.reshape(-1, 1, 28, 28), conv, stride=c.stride, padding=c.kernel // 2) + b_features
        q = F.avg_pool2d(F.relu(f), c.pool) + b_pooled
        return F.relu(q).flatten(1) @ read.T + b_labels

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    epochs = args.epochs
    if args.pretrained:
        model.load_state_dict(torch.load(args.pretrained))
        epochs = 0
    optimizer = torch.optim.Adam([conv, read, b_features, b_pooled, b_labels], lr=c.lr)
    order_generator = torch.Generator().manual_seed(
        c.seed
    )  # the twin's (experiments/ham_feedforward_twin.py)
    n, size = len(d.train_labels), c.batch_size
    batches = -(-n // size)
    total, done = epochs * batches, 0
    for epoch in range(epochs):
        cpu = time.process_time()
        order = torch.randperm(n, generator=order_generator)
        for b in range(batches):
            i = order[b * size : (b + 1) * size]
            loss = F.cross_entropy(bottom_up(d.train_images[i]), d.train_labels[i])
            for group in optimizer.param_groups:
                group["lr"] = c.lr * (1 + math.cos(math.pi * done / total)) / 2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
        with torch.no_grad():
            right = float((bottom_up(d.test_images).argmax(1) == d.test_labels).float().mean())
        print(
            f"epoch {epoch + 1}: bottom-up test accuracy {100 * right:.2f}% "
            f"({time.process_time() - cpu:.0f} s CPU)",
            flush=True,
        )
    torch.save(model.state_dict(), out / "pretrained.pt")

    k = args.fixed_size
    with torch.no_grad():
        right = float((bottom_up(d.test_images[:k]).argmax(1) == d.test_labels[:k]).float().mean())
    print(f"first {k} test images: bottom-up {100 * right:.2f}%", flush=True)
    overrides = {"method": args.method} if args.method else {}
    overrides |= {"dt": args.dt} if args.dt else {}

    def scaled(alpha: float):
        """The recipe with the label layer's beta divided by ``alpha``, and a run holding the pretrained weights
        with the label synapse and bias multiplied by it."""
        recipe = recipe_from_dict({**c.to_dict(), "label_beta": c.label_beta / alpha, **overrides}, "warm")
        weights = {name: t.clone() for name, t in model.state_dict().items()}
        weights["network.synapses.2.weight"] *= alpha
        weights["biases.labels"] *= alpha
        return recipe, weights

    for alpha in args.alphas:
        recipe, weights = scaled(alpha)
        memory = new_run(recipe).model
        memory.load_state_dict(weights)
        memory.eval()
        right, settled, steps, cpu = 0, 0, [], time.process_time()
        with torch.no_grad():
            for s in range(0, k, 128):
                traj = memory.settle(d.test_images[s : min(s + 128, k)], None, strict=False)
                right += int((traj.states["labels"].argmax(1) == d.test_labels[s : min(s + 128, k)]).sum())
                settled += int(traj.converged.sum())
                steps.append(int(traj.steps.max()))
        print(
            f"alpha {alpha} (label_beta {recipe.label_beta}, {recipe.method}, dt {recipe.dt}): fixed point "
            f"{100 * right / k:.2f}%, settled {settled}/{k} (steps per minibatch mean "
            f"{sum(steps) / len(steps):.0f} / max {max(steps)}; {time.process_time() - cpu:.0f} s CPU)",
            flush=True,
        )

    if args.write_alpha:
        recipe, weights = scaled(args.write_alpha)
        recipe = recipe_from_dict({**recipe.to_dict(), "epochs": args.ft_epochs, "lr": args.ft_lr}, "warm")
        start = new_run(recipe)
        start.model.load_state_dict(weights)
        save_checkpoint(out, start, start.generator.get_state())
        (out / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=2))
        print(
            f"wrote {out}: train through the dynamics with assocmem ham train {out / 'recipe.json'} --out {out} "
            "--resume",
            flush=True,
        )


if __name__ == "__main__":
    main()
