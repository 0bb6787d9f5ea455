"""The page ``assocmem demo`` writes: ``report.html``, one self-contained file (docs/reference.md §1-3, 5).

It shows, for each model, the stored, corrupted and recalled sprites (green frame: exact recall, red: not) and
the energy of every cue against time; a table of all the measurements; and, when given, the capacity gap: the
fraction of memories recalled against the number stored, classical against dense.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from assocmem.files import to_json
from assocmem.laboratory.capacity_gap import CLASSICAL_LOAD, CapacityGap
from assocmem.laboratory.demo import DemoResult, Outcome
from assocmem.provenance import provenance
from assocmem.report.capacity_gap_figure import capacity_plot
from assocmem.report.energy_plot import EnergyTrace, energy_descent
from assocmem.report.figure import figure_png
from assocmem.report.html import escape, image, math, page, table, write_page
from assocmem.report.sprite_grid import GridRow, sprite_grid

#: Sprites shown in each model's grid (the table counts all of them).
SHOWN = 10


def _accuracy(o: Outcome, memories: int) -> str:
    cls = "good" if o.recalled == memories else "bad"
    return f'<span class="{cls}">{o.recalled}/{memories} ({o.recalled / memories:.0%})</span>'


def _table(result: DemoResult) -> str:
    rows = [
        [
            escape(o.model.name),
            str(result.memories),
            escape(o.corruption.label),
            _accuracy(o, result.memories),
            escape(f"{o.energy_start:.4g} → {o.energy_end:.4g}"),
            f"{o.seconds:.2f} s",
        ]
        for o in result.outcomes
    ]
    head = ("model", "memories", "corruption", "recall accuracy", "energy start → end", "time")
    return table(head, rows, numeric=(1, 3, 5))


def _summary(result: DemoResult) -> str:
    k, n = result.memories, result.neurons
    dense = [o for o in result.outcomes if o.model.dense]
    classical = [o for o in result.outcomes if not o.model.dense]
    perfect = all(o.recalled == k for o in dense)
    dense_text = (
        "Every dense model recalled every sprite exactly from both kinds of cue"
        if perfect
        else f"The dense models recalled {sum(o.recalled for o in dense)} of {k * len(dense)} cues exactly"
    )
    classical_text = ", ".join(f"{o.recalled}/{k} from {o.corruption.label}" for o in classical)
    return (
        f'<p class="lead">{k} sprites of {result.images.shape[1]}×{result.images.shape[2]} = {n} pixels are stored '
        f"in each network: a load K/N = {k / n:.3f}, beyond the classical network's limit of "
        f"{CLASSICAL_LOAD} N = {CLASSICAL_LOAD * n:.0f} patterns. Every model gets the same cues: each sprite "
        f"with {escape(result.corruptions[0].label)}, and each sprite with its {escape(result.corruptions[1].label)} "
        f"(shaded grey in the pictures; the networks see blank pixels there).</p>"
        f"<p>{dense_text}; the classical network, loaded beyond its capacity, recalled {escape(classical_text)}."
        " Green frame: the recalled picture equals the stored one in every pixel; red frame: it does not.</p>"
    )


def _model_section(result: DemoResult, key: str) -> str:
    outcomes = [o for o in result.outcomes if o.model.key == key]
    model = outcomes[0].model
    shown = min(SHOWN, result.memories)
    size = result.images.shape[1:]
    rows = [GridRow("stored", result.images[:shown])]
    for o in outcomes:
        hidden = None if o.corruption.hidden is None else o.corruption.hidden[:shown].reshape(-1, *size)
        rows.append(GridRow(o.corruption.label, o.corruption.cues[:shown].reshape(-1, *size), None, hidden))
        rows.append(GridRow("recalled", o.recalled_states[:shown].reshape(-1, *size), o.exact[:shown]))
    grid = figure_png(sprite_grid(rows, scale=3, label_width=1.25), dpi=100)
    counts = "; ".join(f"{o.recalled}/{result.memories} from {o.corruption.label}" for o in outcomes)
    traces = [EnergyTrace(o.corruption.label, o.run.times, o.run.energies) for o in outcomes]
    energy = figure_png(energy_descent(traces, title=model.name, xlabel=model.clock), dpi=100)
    return (
        f'<section id="{escape(key)}"><h2>{escape(model.name)}</h2><p>{math(model.about)}</p>'
        f'<div class="energy">{math(model.energy)}</div><div class="row">'
        + image(
            grid,
            f"{model.name}: stored, cue and recalled sprites",
            f"The first {shown} of {result.memories} sprites. Recalled exactly: {counts}.",
        )
        + image(
            energy,
            f"{model.name}: energy against {model.clock}",
            f"Energy of every cue (thin lines) and their mean (thick) against {model.clock}: it only goes down.",
        )
        + "</div></section>"
    )


def _capacity_section(gap: CapacityGap) -> str:
    png = figure_png(capacity_plot(gap), dpi=100)
    items = []
    for name in gap.recalled:
        k = gap.reach(name)
        if k is None:
            reach = f"none: below 90% already at K = {gap.memories[0]}"
        elif k == gap.memories[-1]:
            reach = f"every K measured, up to {k} = {k / gap.neurons:g} N"
        else:
            reach = f"K = {k} = {k / gap.neurons:g} N"
        items.append(f"<li><b>{escape(name)}</b>: {escape(reach)}</li>")
    return (
        '<section id="capacity"><h2>The capacity gap</h2>'
        f"<p>The same models store random ±1 patterns of N = {gap.neurons} bits, K of them, and recall them from "
        f"cues with {gap.flip:.0%} of the bits flipped ({min(gap.cues)}–{max(gap.cues)} cues per K). The classical "
        f"network's capacity is about {CLASSICAL_LOAD} N; a DAM with F(x) = xⁿ holds of order N<sup>n−1</sup> "
        "patterns, the exponential DAM and the softmax model exponentially many. (0.138 N is where the stored "
        "patterns stop being nearly stable; recalling every bit exactly from a noisy cue fails earlier.) "
        "Largest K at which each model recalled at least 90% of its cues exactly:"
        f"</p><ul>{''.join(items)}</ul>"
        + image(
            png,
            "fraction of memories recalled against the number stored",
            "Fraction of cues recalled exactly against the number of stored random patterns; the dashed line is "
            f"the classical limit {CLASSICAL_LOAD} N.",
        )
        + "</section>"
    )


def demo_page(result: DemoResult, gap: CapacityGap | None = None, *, seconds: float | None = None) -> str:
    """The demo's report as one HTML document (figures embedded); ``seconds`` is the run's wall time."""
    title = "<h1>assocmem demo: associative memories complete corrupted pictures</h1>"
    body = [title, _summary(result), _table(result)]
    body += [_model_section(result, model.key) for model in result.models]
    if gap is not None:
        body.append(_capacity_section(gap))
    took = "" if seconds is None else f" in {seconds:.0f} s"
    made = provenance()
    commit = made["commit"] or f"unknown: {made['commit_note']}"
    dirty = " with uncommitted changes" if made["dirty"] else ""
    body.append(
        f'<p class="muted" id="provenance" data-provenance="{escape(to_json(made, indent=None))}">Made by '
        f"<code>assocmem demo</code>{took} (assocmem {made['assocmem']}, torch {made['torch']}, commit "
        f"{escape(str(commit))}{dirty}, {escape(platform.machine())}, {torch.get_num_threads()} threads, "
        f"seed {result.seed}).</p>"
    )
    return page("assocmem demo: associative memories", "\n".join(body))


def write_demo_report(
    dest: str | os.PathLike,
    result: DemoResult,
    gap: CapacityGap | None = None,
    *,
    seconds: float | None = None,
) -> Path:
    """Write the demo's report to ``dest`` (atomically); returns the path."""
    return write_page(dest, demo_page(result, gap, seconds=seconds))
