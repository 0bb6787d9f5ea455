"""What the value checks cost (docs/bad-input.md): each call timed with the checks on and off, interleaved, same run.

    python benchmarks/value_checks.py             # retrieve (one memory, per-item memories, a bool mask), a Hopfield
                                                  # layer, DAMClassifier.predict; medians of --repeat paired runs
    python benchmarks/value_checks.py --repeat 50

The checks read the result (the batch's size, never the memory) and, with a mask, the mask: the ratio on/off
should stay near 1 for any memory larger than a few queries' worth. On a GPU each check also waits for the device
once per call (not measured here: CPU only).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import assocmem as am
from assocmem.checks import value_checks


def paired(fn, repeat: int) -> tuple[float, float]:
    """Median times of ``fn`` with the value checks off and on, measured alternately."""

    def off():
        with value_checks(False):
            fn()

    off(), fn()
    t_off, t_on = [], []
    for _ in range(repeat):
        for run, acc in ((off, t_off), (fn, t_on)):
            t = time.perf_counter()
            run()
            acc.append(time.perf_counter() - t)
    return statistics.median(t_off), statistics.median(t_on)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    mem = torch.randn(65536, 256, generator=gen) / 16
    q = torch.randn(64, 256, generator=gen) / 16
    big = torch.randn(1_000_000, 64, generator=gen) / 8
    one = torch.randn(1, 64, generator=gen) / 8
    keep = torch.rand(65536, generator=gen) < 0.9
    per_item = torch.randn(16, 4096, 64, generator=gen) / 8
    layer = am.nn.Hopfield(64, num_heads=4)
    x = torch.randn(32, 128, 64, generator=gen)
    model = am.DAMClassifier(2000, generator=gen)
    images = torch.rand(5000, 784, generator=gen) * 2 - 1
    small = torch.randn(100, 32, generator=gen)
    cases = {
        "retrieve B=64 d=256 K=65536": lambda: am.retrieve(mem, q, 8.0),
        "retrieve B=64 d=256 K=65536, bool mask": lambda: am.retrieve(mem, q, 8.0, mask=keep),
        "retrieve B=1 d=64 K=10^6 (chunked)": lambda: am.retrieve(big, one, 8.0),
        "retrieve per-item B=16 K=4096 d=64, 3 steps": lambda: am.retrieve(
            per_item, per_item[:, :8], 8.0, steps=3
        ),
        "retrieve B=3 d=32 K=100 (tiny)": lambda: am.retrieve(small, small[:3], 8.0),
        "Hopfield(64, 4 heads) on (32, 128, 64)": lambda: layer(x),
        "DAMClassifier(2000).predict(5000 images)": lambda: model.predict(images),
    }
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeat} paired runs"
    )
    with torch.inference_mode():
        for name, fn in cases.items():
            t_off, t_on = paired(fn, args.repeat)
            print(
                f"{name:<48} off {t_off * 1e3:8.2f} ms   on {t_on * 1e3:8.2f} ms   on/off {t_on / t_off:5.3f}"
            )


if __name__ == "__main__":
    main()
