"""Figures of repertoire classifiers (matplotlib ``Figure`` objects, no pyplot; written atomically).

:func:`roc_figure` draws the ROC curves of several models on one axes, :func:`witness_figure` the attention
weights and ranks of witness sequences against the rest, :func:`logo_figure` a recovered motif as a sequence logo
(letters stacked by frequency, each position as tall as its information content; drawn as text paths, so no font
or package beyond matplotlib). The format follows the file's suffix (PNG without one).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from assocmem.files import atomic_path
from assocmem.repertoire.alphabet import AMINO_ACIDS
from assocmem.repertoire.explain import BagExplanation, _checked
from assocmem.repertoire.metrics import roc_auc, roc_curve
from assocmem.repertoire.recovery import RecoveredMotif

#: Letter colours of the logo, by side-chain chemistry.
COLOURS = {
    **dict.fromkeys("DE", "#d62728"),  # acidic
    **dict.fromkeys("KRH", "#1f77b4"),  # basic
    **dict.fromkeys("STNQ", "#2ca02c"),  # polar
    **dict.fromkeys("GCYW", "#9467bd"),  # special and aromatic polar
    **dict.fromkeys("AVLIMFP", "#202020"),  # hydrophobic
}


def _figure(width: float, height: float, panels: int = 1) -> tuple[Any, Any]:
    from matplotlib.figure import Figure  # imported on use: importing assocmem stays fast

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.subplots(1, panels)


def _write(figure: Any, dest: str | os.PathLike) -> Path:
    dest = Path(dest)
    kind = dest.suffix.lstrip(".").lower() or "png"
    with atomic_path(dest) as tmp:
        figure.savefig(tmp, format=kind, dpi=120)
    return dest


def roc_figure(curves: Mapping[str, tuple[Tensor, Tensor]], dest: str | os.PathLike, title: str = "") -> Path:
    """The ROC curves of several models on one axes: ``curves`` maps a model's name to its bags' ``(scores,
    labels)``; the legend gives each area under the curve."""
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError(
            "roc_figure: curves must be a non-empty mapping from a model's name to (scores, labels)"
        )
    figure, ax = _figure(4.6, 4.2)
    for name, pair in curves.items():
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise TypeError(f"roc_figure: curves[{name!r}] must be a pair (scores, labels)")
        scores, labels = pair
        fpr, tpr = roc_curve(scores, labels)
        ax.plot(fpr.tolist(), tpr.tolist(), label=f"{name} (AUC {roc_auc(scores, labels):.3f})")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=0.8)
    ax.set(
        xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01), title=title
    )
    ax.legend(loc="lower right", fontsize="small")
    return _write(figure, dest)


def witness_figure(explanations: Sequence[BagExplanation], dest: str | os.PathLike, title: str = "") -> Path:
    """Attention against witness status, over the bags whose witnesses are known: left, the distribution of
    ``n * weight`` (1 = the uniform weight) of witness and other sequences; right, the fraction of witnesses
    ranked within the top ``r`` against ``r``, beside what uniform weights would give."""
    from matplotlib.ticker import NullFormatter

    explanations = _checked(explanations, "witness_figure")
    known = [e for e in explanations if e.bag.witness is not None and bool(e.bag.witness.any())]
    if not known:
        raise ValueError("witness_figure: no bag has known witnesses (simulated bags with a witness)")
    relative = {True: [], False: []}
    ranks, chance = [], []
    for e in known:
        w = e.combined.double() * e.bag.size
        for flag in (True, False):
            relative[flag].append(w[e.bag.witness == flag])
        ranks.append(e.ranks()[e.bag.witness].double())
        chance.append(torch.full((int(e.bag.witness.sum()),), float(e.bag.size)))
    figure, (left, right) = _figure(9.0, 3.6, 2)
    low = min(float(torch.cat(v).clamp_min(1e-12).min()) for v in relative.values() if v)
    high = max(float(torch.cat(v).max()) for v in relative.values() if v)
    edges = torch.logspace(math.log10(low), math.log10(max(high, low * 10)), 40).tolist()
    for flag, label, colour in ((False, "other sequences", "#7f7f7f"), (True, "witnesses", "#d62728")):
        values = torch.cat(relative[flag]).clamp_min(1e-12) if relative[flag] else torch.zeros(0)
        if values.numel():
            left.hist(values.numpy(), bins=edges, density=True, alpha=0.6, color=colour, label=label)
    left.set(xscale="log", xlabel="n x attention weight (1 = uniform)", ylabel="density", title=title)
    left.xaxis.set_minor_formatter(
        NullFormatter()
    )  # a narrow log range labels its minor ticks over each other
    left.legend(fontsize="small")
    r, size = torch.cat(ranks), torch.cat(chance)
    grid = torch.logspace(0, math.log10(float(size.max())), 200)
    right.plot(
        grid.tolist(), [float((r <= g).double().mean()) for g in grid], color="#d62728", label="attention"
    )
    uniform = [float(torch.clamp(g / size, max=1.0).mean()) for g in grid]
    right.plot(grid.tolist(), uniform, ls=":", color="grey", label="uniform weights")
    right.set(xscale="log", xlabel="rank r", ylabel="witnesses ranked within the top r", ylim=(0, 1.01))
    right.legend(fontsize="small")
    return _write(figure, dest)


def logo_figure(motif: RecoveredMotif, dest: str | os.PathLike, title: str = "") -> Path:
    """The recovered motif as a sequence logo: at every aligned position the letters stacked by frequency, the
    stack as tall as the position's information content (bits); the k-mer's own positions are shaded."""
    if not isinstance(motif, RecoveredMotif):
        raise TypeError(f"logo_figure: motif must be a RecoveredMotif, got {type(motif).__name__}")
    if motif.frequencies.shape[0] == 0:
        raise ValueError("logo_figure: the motif has no aligned positions (no k-mer was enriched)")
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import PathPatch
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D

    font = FontProperties(family="DejaVu Sans", weight="bold")
    p = motif.frequencies.double()
    bits = motif.information
    width = p.shape[0]
    figure, ax = _figure(max(3.0, 0.55 * width + 1.2), 2.8)
    span = len(motif.pattern)
    ax.axvspan(motif.start - 0.5, motif.start + span - 0.5, color="#fff3c4", zorder=0)
    for x in range(width):
        heights = p[x] * bits[x]
        bottom = 0.0
        for a in torch.argsort(heights).tolist():
            h = float(heights[a])
            if h <= 1e-3:
                continue
            letter = AMINO_ACIDS[a]
            path = TextPath((0, 0), letter, size=1, prop=font)
            box = path.get_extents()
            shape = (
                Affine2D()
                .translate(-box.x0, -box.y0)
                .scale(0.9 / box.width, h / box.height)
                .translate(x - 0.45, bottom)
            )
            ax.add_patch(PathPatch(shape.transform_path(path), color=COLOURS[letter], lw=0))
            bottom += h
    ticks = list(range(width))
    ax.set_xticks(ticks, [str(t - motif.start) for t in ticks])
    verdict = "" if motif.found else " (not significant)"
    ax.set(
        xlim=(-0.6, width - 0.4),
        ylim=(0, math.log2(len(AMINO_ACIDS))),
        xlabel="position from the motif's first letter",
        ylabel="bits",
        title=title
        or f"best k-mer {motif.pattern}{verdict}, log10 p = {motif.log10_p:.1f}; reads {motif.consensus}",
    )
    return _write(figure, dest)
