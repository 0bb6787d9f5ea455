"""``assocmem repertoire explain``: what a trained repertoire classifier attends to (docs/repertoire.md).

    assocmem repertoire explain runs/rep --data data/rep --out runs/rep/explain
    assocmem repertoire explain runs/rep --data data/rep --out out --compare runs/rep-mean --compare runs/kmer

For every bag of the chosen part of the run's split (``--part``, the test bags by default): the attention weight and
rank of every sequence, one table a bag (``weights/<bag>.tsv``). Over the positive bags: the rate at which the
``--top`` highest-weighted sequences contain the implanted motif against the witness rate (a simulated set), the
motif recovered from those sequences without being told it (gapped k-mer enrichment), and the integrated gradients
of the ``--attribute`` top sequences of each bag (``attributions.tsv``). ``explain.json`` holds the numbers and the
provenance; the figures are ``roc.png`` (this run and every ``--compare`` run on the same bags: another model's run
folder, scored here, or a k-mer baseline's folder, whose metrics.json holds its test scores), ``witness.png``
(simulated sets) and ``motif.png`` (the recovered motif's logo).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from assocmem.cli.console import add_quiet, add_threads, progress_bar, say, set_threads
from assocmem.cli.options import COUNT, INPUT_FOLDER, NONNEGATIVE, OUTPUT_FOLDER, Kind, run_folder
from assocmem.files import write_json, write_text
from assocmem.provenance import provenance
from assocmem.repertoire.attribution import BASELINES, Attribution, attribute_bag
from assocmem.repertoire.bag import Repertoire
from assocmem.repertoire.dataset import RepertoireDataset
from assocmem.repertoire.explain import BagExplanation, explain_bag, motif_in_top, write_weights
from assocmem.repertoire.figures import logo_figure, roc_figure, witness_figure
from assocmem.repertoire.metrics import roc_auc
from assocmem.repertoire.motif import Motif
from assocmem.repertoire.recovery import recover_motif
from assocmem.repertoire.run import CHECKPOINT, METRICS, load_run

EXPLAIN = "explain.json"
#: A bag's score under a compared model.
Scorer = Callable[[Repertoire], float]


def _compared(text: str) -> Path:
    if not text.strip():
        raise ValueError("an empty path names nothing")
    path = Path(text).expanduser()
    if (path / CHECKPOINT).is_file():
        return path
    if not path.is_dir():
        raise ValueError(f"{path} is not a folder" if path.exists() else f"{path} does not exist")
    if not (path / METRICS).is_file():
        raise ValueError(f"{path} holds neither a {CHECKPOINT} nor a k-mer run's {METRICS}")
    return path


#: A run to compare: a model's run folder (its checkpoint) or a k-mer baseline's (its metrics.json).
COMPARED = Kind(
    "run_folder", f"a run folder (one holding {CHECKPOINT}, or a k-mer run's {METRICS})", _compared
)
PARTS = ("test", "validation", "train", "all")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``explain`` to the ``assocmem repertoire`` group."""
    p = subparsers.add_parser(
        "explain",
        help="attention weights of every sequence, the motif recovered from them, attributions, figures",
        description=__doc__.split("\n\n")[-1].replace("\n", " "),
    )
    p.add_argument(
        "run", type=run_folder(CHECKPOINT), help="a repertoire run folder (assocmem repertoire train)"
    )
    p.add_argument(
        "--data", type=INPUT_FOLDER, required=True, help="the data set folder the run was trained on"
    )
    p.add_argument("--out", type=OUTPUT_FOLDER, required=True, help="the folder to write into")
    p.add_argument(
        "--part", choices=PARTS, default="test", help="which bags of the run's split (default test)"
    )
    p.add_argument("--top", type=COUNT, default=10, help="top-ranked sequences per bag (default 10)")
    p.add_argument(
        "--attribute",
        type=NONNEGATIVE,
        default=3,
        help="top sequences of each positive bag given integrated gradients (default 3; 0: none)",
    )
    p.add_argument("--steps", type=COUNT, default=32, help="intervals of the integrated-gradients path (32)")
    p.add_argument(
        "--baseline", choices=BASELINES, default="zeros", help="the one-hot baseline (default zeros)"
    )
    p.add_argument(
        "--compare",
        type=COMPARED,
        action="append",
        default=None,
        metavar="RUN",
        help="another model's run or a k-mer baseline's folder, on the same ROC axes (repeatable)",
    )
    add_threads(p)
    add_quiet(p)
    p.set_defaults(func=run_explain)


def _indices(dataset: RepertoireDataset, folder: Path, seed: int, part: str) -> list[int]:
    """The bags of ``part``: those the run's metrics.json names, else the data set's split by the run's seed (the
    split training used)."""
    if part == "all":
        return list(range(len(dataset)))
    recorded = folder / METRICS
    names = (json.loads(recorded.read_text()).get("data") or {}).get(part) if recorded.is_file() else None
    if not isinstance(names, list):
        return list(dataset.split(seed=seed)[part])
    where = {name: i for i, name in enumerate(dataset.names)}
    missing = [name for name in names if name not in where]
    if missing:
        raise ValueError(
            f"argument --data: {dataset.folder} lacks {len(missing)} {part} bags of the run (first {missing[0]!r}); "
            "pass the data set the run was trained on"
        )
    return [where[name] for name in names]


def _contained(found: str, truth: str) -> bool:
    """Whether the k-mer ``found`` is the motif ``truth`` or part of it (same letters at the same offsets)."""
    if not found:
        return False
    return any(
        all(ch == "/" or truth[s + o] == ch for o, ch in enumerate(found))
        for s in range(len(truth) - len(found) + 1)
    )


def _motif_share(
    attribution: Attribution, bag: Repertoire, index: torch.Tensor, motif: Motif
) -> list[tuple[float, float]]:
    """For each attributed sequence holding ``motif``: the share of its absolute attribution on the motif's letters
    (first occurrence) and the share those positions would get if every position had the same attribution."""
    shares = []
    for row, i in enumerate(index.tolist()):
        n = int(bag.lengths[i])
        codes = bag.codes[i, :n].long()
        starts = [
            t
            for t in range(n - motif.span + 1)
            if all(int(codes[t + o]) == c for o, c in zip(motif.offsets, motif.codes.tolist(), strict=True))
        ]
        if not starts:
            continue
        start = starts[0]
        a = attribution.positions[row, :n].abs().double()
        total = float(a.sum())
        if total > 0:
            on = float(a[[start + o for o in motif.offsets]].sum())
            shares.append((on / total, len(motif.offsets) / n))
    return shares


def _scorer(folder: Path, part: str) -> tuple[str, Scorer]:
    """The name and bag scores of a compared run: a model scores each bag; a k-mer run's test scores are read."""
    if (folder / CHECKPOINT).is_file():
        other = load_run(folder).selected()

        def score(bag: Repertoire) -> float:
            with torch.no_grad():
                return float(other(bag).logit)

        return f"{folder.name} ({other.pooling})", score
    record = json.loads((folder / METRICS).read_text())
    if record.get("model") != "kmer" or "test_scores" not in record:
        raise ValueError(f"argument --compare: {folder / METRICS} is not a k-mer run's (no test_scores)")
    if part != "test":
        raise ValueError(
            f"argument --compare: {folder} holds the k-mer baseline's test scores only; use --part test"
        )
    known = dict(zip(record["split"]["test"], record["test_scores"], strict=True))

    def read(bag: Repertoire) -> float:
        if bag.name not in known:
            raise ValueError(
                f"argument --compare: the k-mer run {folder} has no score for the test bag {bag.name!r}"
            )
        return float(known[bag.name])

    return f"{folder.name} (k-mer)", read


def run_explain(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    model = load_run(args.run).selected()
    if model.pooling == "max":
        raise ValueError(
            f"argument run: {args.run} pools by max, which gives no attention weights to explain"
        )
    if args.attribute and model.config.embedding != "conv":
        raise ValueError(
            f"argument --attribute: {args.run} embeds by {model.config.embedding!r}, which reads letter codes; "
            "integrated gradients need the convolution (pass --attribute 0)"
        )
    others = dict(_scorer(Path(f), args.part) for f in args.compare or [])
    dataset = RepertoireDataset.open(args.data)
    indices = _indices(dataset, args.run, model.config.seed, args.part)
    if not indices:
        raise ValueError(f"argument --part: the run's {args.part} part holds no bag")
    truth = dataset.truth or {}
    motif = Motif.parse(truth["motif"]) if truth.get("motif") else None
    say(
        args.quiet,
        f"assocmem repertoire explain: {len(indices)} {args.part} bags of {args.data}; writing to {args.out}",
    )
    result = explain_bags(args, model, others, (dataset[i] for i in indices), len(indices), motif)
    say(args.quiet, _summary(result))
    return 0


def explain_bags(
    args: argparse.Namespace,
    model: torch.nn.Module,
    others: dict[str, Scorer],
    bags: Iterable[Repertoire],
    count: int,
    motif: Motif | None,
) -> dict:
    """Explain ``count`` bags and write every output into ``args.out`` (the module docstring); returns explain.json.

    ``args`` holds the command's settings (``out``, ``part``, ``top``, ``attribute``, ``steps``, ``baseline``,
    ``quiet``, ``run``, ``data``); ``others`` the bag scores of the ``--compare`` runs by name; ``motif`` the
    implanted motif of a simulated set (None: unknown)."""
    quiet, out = args.quiet, args.out
    out.mkdir(parents=True, exist_ok=True)
    positives: list[BagExplanation] = []
    negatives: list[BagExplanation] = []
    own = f"{Path(args.run).name} ({getattr(model, 'pooling', 'attention')})"
    scores: dict[str, list[float]] = {own: [], **{name: [] for name in others}}
    labels: list[int] = []
    rows = ["repertoire\trank\tsequence\twitness\tattribution"]
    gaps: list[float] = []
    shares: list[tuple[float, float]] = []
    bar = progress_bar(quiet, total=count, unit="bag", desc="explain")
    try:
        for bag in bags:
            e = explain_bag(model, bag)
            write_weights(out / "weights" / f"{bag.name}.tsv", e)
            scores[own].append(e.logit)
            for name, score in others.items():
                scores[name].append(score(bag))
            labels.append(-1 if bag.label is None else bag.label)
            if bag.label == 0:
                negatives.append(e)
            if bag.label == 1:
                positives.append(e)
                if args.attribute:
                    index = e.top(args.attribute)
                    a = attribute_bag(model, bag, index, steps=args.steps, baseline=args.baseline)
                    gaps.append(abs(a.gap) / max(1.0, abs(a.value - a.baseline_value)))
                    sequences = bag.sequences()
                    for row, k in enumerate(index.tolist()):
                        w = "NA" if bag.witness is None else str(int(bag.witness[k]))
                        values = ",".join(
                            f"{v:.4g}" for v in a.positions[row, : int(bag.lengths[k])].tolist()
                        )
                        rows.append(f"{bag.name}\t{row + 1}\t{sequences[k]}\t{w}\t{values}")
                    if motif is not None:
                        shares += _motif_share(a, bag, index, motif)
            bar.update(1)
    finally:
        bar.close()
    result: dict = {
        "run": str(args.run),
        "data": str(args.data),
        "part": args.part,
        "bags": len(labels),
        "positive_bags": len(positives),
        "top": args.top,
        "truth_motif": None if motif is None else motif.pattern,
    }
    y = torch.tensor(labels)
    written = ["weights/"]
    if (y == 1).any() and (y == 0).any():
        curves = {name: (torch.tensor(s, dtype=torch.float64), y) for name, s in scores.items()}
        result["auc"] = {name: roc_auc(*pair) for name, pair in curves.items()}
        roc_figure(curves, out / "roc.png", f"{args.part} bags of {Path(args.data).name}")
        written.append("roc.png")
    if positives:
        if motif is not None:
            result["motif_in_top"] = motif_in_top(positives, motif, top=args.top).to_dict()
        favoured = recover_motif(positives, top=args.top)
        found = recover_motif(positives, top=args.top, against=negatives) if negatives else favoured
        result["recovered"] = found.to_dict()
        result["recovered"]["against"] = (
            "the negative bags' top sequences" if negatives else "the bags' sequences"
        )
        result["favoured"] = favoured.to_dict()
        if motif is not None:
            result["recovered"]["part_of_truth"] = _contained(found.pattern, motif.pattern)
            result["recovered"]["consensus_is_truth"] = found.consensus == motif.pattern
        if found.frequencies.shape[0]:
            logo_figure(found, out / "motif.png")
            written.append("motif.png")
    if any(e.bag.witness is not None and bool(e.bag.witness.any()) for e in positives):
        witness_figure(positives, out / "witness.png", f"positive {args.part} bags")
        written.append("witness.png")
    if args.attribute and positives:
        write_text(out / "attributions.tsv", "\n".join(rows) + "\n")
        written.append("attributions.tsv")
        result["attribution"] = {
            "sequences_per_bag": args.attribute,
            "steps": args.steps,
            "baseline": args.baseline,
            "largest_relative_completeness_gap": max(gaps),
        }
        if shares:
            result["attribution"]["motif_share"] = sum(s for s, _ in shares) / len(shares)
            result["attribution"]["motif_share_uniform"] = sum(u for _, u in shares) / len(shares)
            result["attribution"]["sequences_with_motif"] = len(shares)
    result["files"] = written
    result["provenance"] = provenance()
    write_json(out / EXPLAIN, result)
    return result


def _summary(result: dict) -> str:
    lines = [f"{result['bags']} bags ({result['positive_bags']} positive)"]
    if "auc" in result:
        lines.append("AUC " + ", ".join(f"{name} {auc:.3f}" for name, auc in result["auc"].items()))
    if "motif_in_top" in result:
        m = result["motif_in_top"]
        lines.append(
            f"top {m['top']} sequences of the positive bags hold {result['truth_motif']}: {100 * m['top_rate']:.1f}% "
            f"(witness rate {100 * m['witness_rate']:.3f}%, all sequences {100 * m['bag_rate']:.3f}%)"
        )
    if "recovered" in result:
        r = result["recovered"]
        verdict = "recovered" if r["found"] else "no significant motif; best"
        lines.append(
            f"{verdict} {r['pattern'] or '-'} against {r['against']} (log10 p {r['log10_p']:.1f}, consensus "
            f"{r['consensus'] or '-'})"
        )
        f = result["favoured"]
        if f["found"] and f["pattern"] != r["pattern"]:
            lines.append(
                f"within the positive bags the weights favour {f['pattern']} (log10 p {f['log10_p']:.1f})"
            )
    return "; ".join(lines)
