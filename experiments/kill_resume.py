"""Kill -9 at random moments of ``assocmem classify train``, resume, and compare with an uninterrupted run.

Each trial starts the command-line run in a fresh folder, sends SIGKILL at a random moment of it, then runs it
again with ``--resume`` (or without, when the kill came before the run had written anything) to the end, and
compares the final checkpoint bit for bit with an uninterrupted run's: the memories, the momentum and its
log-scale, the random generator's state and the per-epoch history without the timings. Every trial starts with an
empty torch.compile cache of its own (``TORCHINDUCTOR_CACHE_DIR``), shared by its killed run and its resume, so a
kill can land while kernels are compiled and written, as on a first run.

The moments follow the run's progress, not the clock (the machine's load changes a run's speed several-fold): a
quarter of the trials kill at a uniform time within the first epoch as the uninterrupted runs took it (start-up,
compilation, the first minibatches), the others pick an epoch e uniformly in 1..epochs-1, wait until the run has
finished e epochs (its metrics.json says so) and kill at a uniform time within the next epoch's duration (its
minibatches, its test evaluation, or the writing of its checkpoint and metrics). A resume that stops on a damaged
cache (exit status 1, ``CompileError``) is counted, the cache cleared and the resume run again, as the message
tells a user to.

``--corrupt-cache`` checks the response to a damaged cache directly: it truncates every compiled ``.so`` of a warm
cache and runs the same training with it. The run must stop with exit status 1 and say so; before the fix it
switched to eager kernels silently and ended with other weights (the script reports which happened).

Run: OMP_NUM_THREADS=1 .venv/bin/python experiments/kill_resume.py --data-dir ../shared/data/mnist --trials 20
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

CHECKPOINT = "checkpoint.safetensors"
#: What a damaged compile cache makes a resumed run print (assocmem.classifier.class_update.CompileError).
CACHE_MESSAGE = "compiled classifier kernel failed"


def command(args: argparse.Namespace, out: Path, epochs: int, resume: bool) -> list[str]:
    argv = [sys.executable, "-m", "assocmem", "classify", "train", "--data-dir", args.data_dir]
    argv += ["--train-size", str(args.train_size), "--memories", str(args.memories)]
    argv += ["--batch-size", str(args.batch_size), "--epochs", str(epochs), "--threads", str(args.threads)]
    argv += ["--checkpoint-every", "1", "--out", str(out)]
    return argv + (["--no-compile"] if args.no_compile else []) + (["--resume"] if resume else [])


def environment(cache: Path, threads: int) -> dict[str, str]:
    return {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache), "OMP_NUM_THREADS": str(threads)}


def final_state(folder: Path) -> dict:
    """The checkpoint's tensors and its history without the timings."""
    path = folder / CHECKPOINT
    tensors = load_file(path)
    with safe_open(path, framework="pt") as f:
        history = json.loads(f.metadata()["history"])
    history = history["history"] if isinstance(history, dict) else history
    return {
        "tensors": tensors,
        "history": [{k: v for k, v in r.items() if "seconds" not in k} for r in history],
    }


def compare(a: dict, b: dict) -> tuple[bool, float]:
    """Whether two final states are bit-identical, and the largest difference of the memories."""
    same = a["history"] == b["history"] and a["tensors"].keys() == b["tensors"].keys()
    same = same and all(torch.equal(a["tensors"][k], b["tensors"][k]) for k in a["tensors"])
    diff = (a["tensors"]["memories"].double() - b["tensors"]["memories"].double()).abs().max().item()
    return same, diff


def started(folder: Path) -> bool:
    return (folder / CHECKPOINT).is_file() or (folder / "config.json").is_file()


def checkpoint_epoch(folder: Path) -> int | None:
    if not (folder / CHECKPOINT).is_file():
        return None
    try:
        with safe_open(folder / CHECKPOINT, framework="pt") as f:
            return int(f.metadata()["epoch"])
    except Exception:  # a checkpoint torn by the kill would show here (the writes are atomic: it never has)
        return -1


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, capture_output=True, text=True)


def epochs_done(folder: Path) -> int:
    """The epochs the run in ``folder`` has finished, from its metrics.json (replaced atomically), or 0."""
    try:
        return int(json.loads((folder / "metrics.json").read_text())["epochs_done"])
    except (OSError, ValueError, KeyError):
        return 0


def timed_run(args: argparse.Namespace, folder: Path, cache: Path) -> tuple[float, float]:
    """An uninterrupted run: its duration and the time until it had finished its first epoch."""
    start, first = time.perf_counter(), None
    process = subprocess.Popen(
        command(args, folder, args.epochs, False),
        env=environment(cache, args.threads),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    while process.poll() is None:
        if first is None and epochs_done(folder) >= 1:
            first = time.perf_counter() - start
        time.sleep(0.02)
    if process.returncode != 0:
        raise SystemExit(f"the uninterrupted run failed: {process.stderr.read().strip()[-500:]}")
    return time.perf_counter() - start, first if first is not None else time.perf_counter() - start


def trial(
    args: argparse.Namespace, work: Path, index: int, moment: tuple[int, float], reference: dict
) -> dict:
    """Kill the run ``moment[1]`` seconds after it finished epoch ``moment[0]`` (0: after its start), resume it."""
    folder, cache = work / f"trial{index}", work / f"cache{index}"
    env = environment(cache, args.threads)
    epoch, offset = moment
    with open(work / f"trial{index}.log", "w") as log:
        process = subprocess.Popen(
            command(args, folder, args.epochs, False), env=env, stdout=log, stderr=subprocess.STDOUT
        )
        while process.poll() is None and epochs_done(folder) < epoch:
            time.sleep(0.01)
        try:
            process.wait(timeout=offset)
            killed = False
        except subprocess.TimeoutExpired:
            process.kill()  # SIGKILL
            process.wait()
            killed = True
    at = checkpoint_epoch(folder)
    cleared, status = 0, None
    for _ in range(3):
        done = run(command(args, folder, args.epochs, started(folder)), env)
        status = done.returncode
        if status == 1 and CACHE_MESSAGE in done.stderr:
            cleared += 1
            shutil.rmtree(cache, ignore_errors=True)
            continue
        break
    row = {
        "trial": index,
        "after_epoch": epoch,
        "seconds_after": round(offset, 3),
        "killed": killed,
        "checkpoint_at_kill": at,
        "cache_cleared": cleared,
    }
    row["status"] = status
    if status == 0:
        row["identical"], row["max_diff"] = compare(final_state(folder), reference)
    else:
        row["identical"], row["max_diff"], row["error"] = False, None, done.stderr.strip().splitlines()[-1:]
    shutil.rmtree(cache, ignore_errors=True)
    return row


def corrupt_cache_check(args: argparse.Namespace, work: Path, reference: dict) -> str:
    """Truncate every compiled .so of a warm cache; the run must stop (exit 1), not switch to eager kernels."""
    cache = work / "cache-corrupt"
    env = environment(cache, args.threads)
    warm = run(command(args, work / "warm", args.epochs, False), env)
    if warm.returncode != 0:
        return f"the warm-up run failed: {warm.stderr.strip()[-300:]}"
    damaged = [p for p in cache.rglob("*.so")]
    for path in damaged:
        path.write_bytes(b"")
    done = run(command(args, work / "damaged", args.epochs, False), env)
    if done.returncode == 1 and CACHE_MESSAGE in done.stderr:
        return f"{len(damaged)} .so files truncated: the run stopped with exit status 1 and the CompileError message"
    if done.returncode == 0:
        same, diff = compare(final_state(work / "damaged"), reference)
        how = "bit-identical weights" if same else f"weights differing by up to {diff:.2g}"
        return f"{len(damaged)} .so files truncated: the run exited 0 with {how} (silent fallback)"
    return f"{len(damaged)} .so files truncated: exit status {done.returncode}: {done.stderr.strip()[-300:]}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True, help="folder with the MNIST IDX files")
    parser.add_argument("--trials", type=int, default=20, help="kill-and-resume trials (20)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs of each run (6)")
    parser.add_argument("--train-size", type=int, default=2000, help="training images (2000)")
    parser.add_argument("--memories", type=int, default=100, help="memories K (100)")
    parser.add_argument("--batch-size", type=int, default=100, help="minibatch size (100)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every run (1)")
    parser.add_argument(
        "--no-compile", action="store_true", help="eager kernels (default: compiled, the CLI's)"
    )
    parser.add_argument("--corrupt-cache", action="store_true", help="also check a run on a damaged cache")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments (0)")
    parser.add_argument(
        "--window",
        type=float,
        default=None,
        help="kill within this many seconds (default: the shorter run's)",
    )
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one, removed)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="kill-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        (total_a, first_a), (total_b, first_b) = (
            timed_run(args, work / name, work / f"cache-{name}") for name in ("reference", "again")
        )
        reference = final_state(work / "reference")
        same, diff = compare(final_state(work / "again"), reference)
        first = min(first_a, first_b)  # start-up, compilation and the first epoch
        per_epoch = min(total_a - first_a, total_b - first_b) / max(1, args.epochs - 1)
        print(
            f"uninterrupted runs (each with an empty compile cache): {total_a:.1f} s and {total_b:.1f} s, the first "
            f"epoch done after {first_a:.1f} s and {first_b:.1f} s, then {per_epoch:.2f} s per epoch; "
            f"{'bit-identical' if same else f'different (max |diff| {diff:.2g})'}",
            flush=True,
        )
        chance = random.Random(args.seed)
        rows = []
        for index in range(args.trials):
            if chance.random() < 0.25:
                moment = (0, chance.uniform(0.0, first))
            else:
                moment = (chance.randint(1, args.epochs - 1), chance.uniform(0.0, per_epoch))
            row = trial(args, work, index, moment, reference)
            rows.append(row)
            print(json.dumps(row), flush=True)
        killed = [r for r in rows if r["killed"]]
        identical = sum(r["identical"] for r in rows)
        diffs = [r["max_diff"] for r in rows if r["max_diff"]]
        print(
            f"{len(rows)} trials ({len(killed)} killed mid-run, {sum(r['checkpoint_at_kill'] is None for r in killed)} "
            f"of them before the first checkpoint; {sum(r['cache_cleared'] > 0 for r in rows)} resumes stopped on a "
            f"damaged compile cache and were run again after clearing it): {identical} of {len(rows)} bit-identical "
            f"to the uninterrupted run" + (f", largest difference {max(diffs):.2g}" if diffs else "")
        )
        if args.corrupt_cache:
            print("damaged compile cache:", corrupt_cache_check(args, work, reference))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
