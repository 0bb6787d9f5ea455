"""How many bags a learner needs to see the witnesses through a part of the motif: per bag, the number of sequences
that contain each part of the motif (a letter, 2-mers, 3-mers, the gapped motif), its spread over the negative
bags, the positive bags' excess, and the bags it takes for the expected excess, ``k`` witnesses per positive bag
(from truth.json), to stand 3 standard errors above the spread (``36 sd^2 / k^2``, half the bags of each class).

    python experiments/repertoire_motif_noise.py /work/runs/repertoire-grid/data/rate0.0001-seed0-bags200-size10000

A gradient step at the start of training sees first-order statistics of the sequences (a kernel's response is a
sum over letters), so the parts with the largest spread are what it has to go on; the whole motif, which an
exhaustive scan would test, stands out of every bag at once. Reads the data set's TSV files (every bag, both
classes); prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
from pathlib import Path

from assocmem.repertoire.motif import GAP, Motif


def parts(motif: Motif) -> dict[str, str]:
    """Parts of the motif, each as a regular expression: its first letter, every run of it from 2 positions to one
    short of the whole that starts and ends on a letter (gaps kept as any letter), and the motif itself."""
    p = motif.pattern
    out = {f"{p[0]} (a letter)": p[0]}
    for width in range(2, len(p)):
        for start in range(len(p) - width + 1):
            piece = p[start : start + width]
            if piece[0] != GAP and piece[-1] != GAP:
                out[piece] = piece.replace(GAP, ".")
    out[f"{p} (the motif)"] = p.replace(GAP, ".")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", help="a simulated data set (metadata.tsv, repertoires/, truth.json)")
    ap.add_argument("--motif", default="RDW/H")
    args = ap.parse_args()
    folder = Path(args.folder)
    with open(folder / "metadata.tsv", encoding="utf-8") as f:
        labels = {r["repertoire_id"]: int(r["label"]) for r in csv.DictReader(f, delimiter="\t")}
    settings = json.loads((folder / "truth.json").read_text(encoding="utf-8"))["settings"]
    k = settings["witness_rate"] * settings["bag_size"][0]  # witnesses per positive bag
    patterns = {name: re.compile(rx) for name, rx in parts(Motif.parse(args.motif)).items()}
    counts: dict[str, dict[int, list[int]]] = {name: {0: [], 1: []} for name in patterns}
    for name, label in labels.items():
        with open(folder / "repertoires" / f"{name}.tsv", encoding="utf-8") as f:
            sequences = [row["junction_aa"] for row in csv.DictReader(f, delimiter="\t")]
        for part, rx in patterns.items():
            counts[part][label].append(sum(1 for s in sequences if rx.search(s)))
    print(f"{folder.name}: {len(labels)} bags, {k:g} witnesses per positive bag")
    print("| part | sequences per negative bag | sd | positive excess | bags for 3 standard errors |")
    print("|---|---|---|---|---|")
    for part, by in counts.items():
        sd = statistics.pstdev(by[0])
        excess = statistics.mean(by[1]) - statistics.mean(by[0])
        print(
            f"| `{part}` | {statistics.mean(by[0]):.2f} | {sd:.2f} | {excess:+.2f} | {36 * sd * sd / k**2:.0f} |"
        )


if __name__ == "__main__":
    main()
