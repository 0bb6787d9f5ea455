"""The page ``assocmem ham report`` writes for a trained HAM: ``report.html``, one self-contained file (docs/ham.md).

It shows what each layer's units respond to (a classifier's receptive fields or filters, a reconstruction
network's memories, an Energy-Transformer block's memories decoded to patches), the energy along inference
relaxations of test inputs, with a sentence saying whether it ever rose, and completions of masked inputs made
by the network's own relaxation (a reconstruction network's with the visible pixels' activations held,
:func:`~assocmem.ham.completion.complete`; an Energy-Transformer block's from its mask tokens).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from assocmem.dynamics import relax
from assocmem.files import to_json
from assocmem.ham import patches as pt
from assocmem.ham import reconstruction as rec
from assocmem.ham.completion import complete
from assocmem.ham.data import ImageData
from assocmem.ham.evaluation import energy_rises
from assocmem.ham.run import HamRun
from assocmem.provenance import provenance
from assocmem.report.energy_plot import EnergyTrace, energy_descent
from assocmem.report.figure import figure_png, new_figure
from assocmem.report.html import escape, image, page, table, write_page
from assocmem.report.memory_grids import tile

#: the page's file name in a run folder
REPORT = "report.html"


def _grid(images: Tensor, cols: int, title: str, signed: bool) -> bytes:
    """Images ``(K, H, W)`` tiled ``cols`` to a row: signed ones on blue-white-red scaled to their largest size."""
    images = images.detach().float().cpu()
    k, h, w = images.shape
    rows = (k + cols - 1) // cols
    canvas = tile(images.reshape(k, h * w), rows, cols)
    fig, ax = new_figure(figsize=(cols * 0.55 + 0.6, rows * 0.55 + 0.5), layout="constrained")
    top = float(images.abs().max()) or 1.0
    style = {"cmap": "bwr", "vmin": -top, "vmax": top} if signed else {"cmap": "gray"}
    ax.imshow(canvas.numpy(), interpolation="nearest", **style)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return figure_png(fig)


def _rows(rows: list[tuple[str, Tensor]]) -> bytes:
    """Rows of grey images ``(B, H, W)`` in ``[0, 1]`` (NaN: hidden, drawn light blue), one label per row."""
    cols = rows[0][1].shape[0]
    fig, axes = new_figure(len(rows), cols, figsize=(cols * 0.8 + 1.6, len(rows) * 0.85), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.imshow(images[c].detach().float().cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_facecolor((0.75, 0.85, 0.95))
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.subplots_adjust(left=0.2, wspace=0.05, hspace=0.08)
    return figure_png(fig)


def _monotone(name: str, energies: Tensor) -> tuple[str, bool]:
    """A sentence on whether the energy ever rose along the relaxations ``energies`` ``(T, B)``."""
    count, rise, rel = energy_rises(energies, torch.float32)
    b = energies.shape[1]
    if count == b:
        return (
            f"{name}: the energy never rose on any of the {b} inputs (largest rise {rel:.2g} of its size).",
            True,
        )
    return (
        f"{name}: the energy rose on {b - count} of {b} inputs beyond float rounding (largest rise {rise:.3g}, "
        f"{rel:.2g} of its size): this relaxation is not a descent.",
        False,
    )


def _energy_section(traces: list[tuple[str, Any]], xlabel: str) -> str:
    """The energy figure of ``(label, trajectory)`` pairs and one sentence per trace."""
    fig = energy_descent(
        [EnergyTrace(label, t.times, t.energies) for label, t in traces],
        title="energy during inference",
        xlabel=xlabel,
    )
    lines = [_monotone(label, t.energies) for label, t in traces]
    text = "".join(f'<p class="{"good" if ok else "bad"}">{escape(s)}</p>' for s, ok in lines)
    return (
        image(figure_png(fig), "energy against time", "thin lines: single test inputs; thick: their mean")
        + text
    )


def _classifier(run: HamRun, data: ImageData, n: int) -> list[str]:
    model, config = run.model, run.config
    first = model.network.synapses[0]
    if config.architecture == "dense":
        k = min(64, first.weight.shape[0])
        units = _grid(first.weight[:k].reshape(-1, 28, 28), 8, f"weights into hidden units 1-{k}", True)
        what = f"Receptive fields: the weights from the image into the first {k} hidden ReLU units (blue negative)."
    else:
        units = _grid(first.weight[:, 0], 8, f"the {first.weight.shape[0]} convolution filters", True)
        what = "The convolution's filters (what each feature map responds to, blue negative, red positive)."
    images = data.test_images[:n].to(getattr(torch, config.dtype))
    traj = model.settle(images, None, strict=True, record=True)
    labels = traj.states["labels"].argmax(1)
    rows = [[str(i), str(int(data.test_labels[i])), str(int(labels[i]))] for i in range(n)]
    return [
        "<h2>What the units respond to</h2>",
        f"<p>{escape(what)}</p>",
        image(units, what),
        "<h2>Energy during inference</h2>",
        "<p>Each test image is clamped in the image layer and the rest relaxes until settled.</p>",
        _energy_section([("clamped test images", traj)], "time"),
        "<h2>Completions</h2>",
        "<p>The classifier's image layer is clamped whole: it completes the labels of an image, not missing "
        "pixels (the reconstruction and patch recipes complete pixels).</p>",
        table(("test image", "label", "label at the fixed point"), rows, numeric=(0,)),
    ]


def _reconstruction(run: HamRun, data: ImageData, n: int) -> list[str]:
    net, config = run.model, run.config
    xi = rec.memories(net)
    clean = rec.unit_images(data.test_images[:n], getattr(torch, config.dtype))
    gen = torch.Generator().manual_seed(rec.EVAL_SEED)
    noisy = clean + config.noise * torch.randn(clean.shape, generator=gen, dtype=clean.dtype)
    hidden = rec.lower_half(clean.shape[1])
    kwargs = {"tol": config.tol, "t_max": config.t_max, "rtol": config.rtol}
    noisy_traj = rec.settle(net, noisy, **kwargs)
    completed, masked_traj = complete(xi, net.synapses[0].lagrangian.beta, clean, hidden, **kwargs)

    def shown(x: Tensor) -> Tensor:  # unit-norm pixels back to [0, 1] for the eye
        g = net.layers[rec.IMAGE].activation(x)
        return (g / g.amax(1, keepdim=True).clamp_min(1e-12)).reshape(-1, 28, 28)

    masked_view = shown(clean).masked_fill(hidden.reshape(28, 28), float("nan"))
    rows = [
        ("test image", shown(clean)),
        ("lower half hidden", masked_view),
        ("completed (upper half held)", shown(completed)),
        (f"noisy ({config.noise:g})", shown(noisy).clamp(0, 1)),
        ("one step", shown(rec.descend(net, noisy, gradient=None))),
        ("fixed point", shown(noisy_traj.states[rec.IMAGE])),
    ]
    return [
        "<h2>What the units respond to</h2>",
        f"<p>The image layer's {xi.shape[0]} memories (unit vectors; the first {min(100, len(xi))}), each the "
        "pattern one log-sum-exp hidden unit responds to.</p>",
        image(
            _grid(xi[:100].reshape(-1, 28, 28), 10, f"memories 1-{min(100, len(xi))}", False),
            "learned memories",
        ),
        "<h2>Energy during inference</h2>",
        "<p>From noisy test digits (nothing clamped), and from digits whose lower half is hidden with the upper "
        "half's activations held at the clean pixels (the lower half moving on the rest of the unit sphere), "
        "until max |dx/dt| is below the tolerance.</p>",
        _energy_section([("noisy", noisy_traj), ("lower half masked", masked_traj)], "time"),
        "<h2>Reconstructions from masked inputs</h2>",
        image(_rows(rows), "masked and noisy test digits and their completions"),
    ]


def _patches(run: HamRun, data: ImageData, n: int) -> list[str]:
    model, config = run.model, run.config
    hop = model.network.synapses[1].xi.detach()
    g = hop / hop.norm(dim=1, keepdim=True) * hop.shape[1] ** 0.5  # a layer-norm activation has |g| = sqrt(D)
    with torch.no_grad():
        decoded = model.decoder(g).clamp(0, 1).reshape(-1, config.patch, config.patch)
        images = data.test_images[:n].reshape(-1, 28, 28).to(getattr(torch, config.dtype))
        tokens = (28 // config.patch) ** 2
        mask = pt.random_mask(n, tokens, config.masked, torch.Generator().manual_seed(pt.EVAL_SEED))
        predicted, traj = model(images, mask, gradient=None)
        fixed = relax(
            model.network,
            {pt.TOKENS: model.start(images, mask)},
            method="dopri5",
            tol=config.tol,
            t_max=config.t_max,
            gradient=None,
        )
        at_fixed = model.decode_state(fixed.states[pt.TOKENS])
    target = pt.patchify(images, config.patch)
    m = mask.unsqueeze(-1)

    def img(tokens_: Tensor) -> Tensor:
        return pt.unpatchify(tokens_, config.patch, 28, 28)

    rows = [
        ("test image", images),
        ("masked", img(target.masked_fill(m, float("nan")))),
        (f"{config.steps} steps", img(torch.where(m, predicted.clamp(0, 1), target))),
        ("fixed point", img(torch.where(m, at_fixed.clamp(0, 1), target))),
    ]
    settled = int(fixed.converged.sum())
    return [
        "<h2>What the units respond to</h2>",
        f"<p>The block's {hop.shape[0]} ReLU-squared memories, each decoded as a patch (the decoder applied to "
        "the memory scaled to a layer-norm activation's length).</p>",
        image(
            _grid(decoded[:64], 8, f"memories 1-{min(64, len(decoded))}, decoded", False), "memories decoded"
        ),
        "<h2>Energy during inference</h2>",
        f"<p>The block's {config.steps} Euler steps as trained, and the same start relaxed to a fixed point "
        f"(dopri5 until max |dx/dt| &lt; {config.tol:g}: {settled} of {n} settled).</p>",
        _energy_section([(f"{config.steps} steps", traj), ("to the fixed point", fixed)], "time"),
        "<h2>Completions of masked patches</h2>",
        "<p>Masked patches enter as the learned mask token; the visible patches are not clamped (tokens "
        "are the block's state), only the masked ones are shown as decoded.</p>",
        image(_rows(rows), "masked test images and their completions"),
    ]


def ham_report(run: HamRun, data: ImageData, dest: str | os.PathLike, *, examples: int = 8) -> Path:
    """Write the report page of the trained ``run`` (its test images from ``data``) to ``dest``."""
    task = run.task.name
    n = min(examples, len(data.test_labels))
    body = {"classify": _classifier, "reconstruct": _reconstruction, "patches": _patches}[task](run, data, n)
    last = run.history[-1] if run.history else {}
    settings = [[escape(k), escape(v)] for k, v in run.config.to_dict().items()]
    test = last.get("test", {})
    measured = [
        [escape(k), escape(f"{v:.6g}" if isinstance(v, float) else v)]
        for k, v in test.items()
        if not isinstance(v, dict)
    ]
    made = provenance()
    name = getattr(run.config, "architecture", task)
    head = [
        f"<h1>{escape(name)} HAM on {escape(run.config.dataset)}</h1>",
        f'<p class="lead">Task {escape(task)}, trained {run.epoch} epoch(s); {escape(run.task.certificate(run.model))}.'
        "</p>",
        '<div class="row">',
        table(("setting", "value"), settings),
        table((f"test, epoch {run.epoch}", "value"), measured, numeric=(1,)),
        "</div>",
    ]
    foot = (
        f'<p class="muted" id="provenance" data-provenance="{escape(to_json(made))}">assocmem '
        f"{escape(made.get('assocmem'))}, torch {escape(made.get('torch'))}, commit "
        f"{escape(made.get('commit') or 'unknown')}</p>"
    )
    return write_page(
        dest, page(f"HAM report: {name}, {run.config.dataset}", "\n".join([*head, *body, foot]))
    )
