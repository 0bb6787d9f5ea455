"""``assocmem bank``: build a memory bank from a file, query it, and describe it (docs/bank.md, "Command").

    assocmem bank build rows.npy --out banks/mine --backend candidates --index ivf --storage float16
    assocmem bank query banks/mine queries.npy --beta 8 --out answers.safetensors
    assocmem bank info banks/mine --verify

``build`` reads the patterns from a ``.npy`` file (``--values``: a second ``.npy``) or a ``.safetensors`` file
(tensors ``patterns``, and ``values`` and ``ids`` if it has them) and writes the bank folder (shards, manifest,
checksums). ``query`` reads queries ``(B, d)`` from a ``.npy`` or ``.safetensors`` file (tensor ``queries``),
retrieves, prints each query's certificate on a candidate bank, and writes the answers (``states``, and
``bound`` and ``fallback`` on a candidate bank) to ``--out``. ``info`` prints the size, the shards, the index and
the checksums (``--verify`` checks every file against its checksum).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from assocmem.cli.console import add_quiet, add_threads, progress_bar, say, set_threads
from assocmem.cli.options import COUNT, OUTPUT_FILE, OUTPUT_FOLDER, POSITIVE, SEED, input_file, run_folder

MANIFEST = "manifest.json"


def read_tensor(path: Path, key: str) -> dict[str, torch.Tensor]:
    """``{key: array}`` from a ``.npy`` file, or every tensor of a ``.safetensors`` file (``key`` required)."""
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise ValueError(f"{path}: not a readable .npy array ({err})") from err
        return {key: torch.from_numpy(np.ascontiguousarray(array))}
    from assocmem.files import read_checkpoint

    tensors, _ = read_checkpoint(path)
    if key not in tensors:
        raise ValueError(f"{path}: holds no tensor named {key!r} (it holds {sorted(tensors)})")
    return tensors


def _floating(t: torch.Tensor, name: str, path: Path) -> torch.Tensor:
    if not t.is_floating_point():
        raise ValueError(f"{path}: {name} must be floating point, got {t.dtype}")
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def run_build(args: argparse.Namespace) -> int:
    from assocmem.engines.bank import MemoryBank

    set_threads(args.threads)
    tensors = read_tensor(args.rows, "patterns")
    patterns = _floating(tensors["patterns"], "patterns", args.rows)
    values = tensors.get("values")
    if args.values is not None:
        values = read_tensor(args.values, "values")["values"]
    values = (
        None if values is None else _floating(values, "values", args.values or args.rows).to(patterns.dtype)
    )
    search = {}
    if args.backend == "candidates":
        search = {"index": args.index, "nprobe": args.nprobe, "outside_tol": args.tol, "seed": args.seed}
        if args.clusters is not None:
            search["clusters"] = args.clusters
    with progress_bar(args.quiet, total=2, desc="bank build", unit="stage") as bar:
        bar.set_postfix_str("index" if search else "rows")
        bank = MemoryBank(patterns, values, ids=tensors.get("ids"), backend=args.backend, storage=args.storage,
                          **search)  # fmt: skip
        bar.update()
        bar.set_postfix_str("write")
        bank.save(args.out, shard_rows=args.shard_rows)
        bar.update()
    say(args.quiet, f"wrote {args.out}: {bank}")
    return 0


def run_query(args: argparse.Namespace) -> int:
    from assocmem.engines.bank import MemoryBank
    from assocmem.files import atomic_path

    set_threads(args.threads)
    with progress_bar(args.quiet, total=2, desc="bank query", unit="stage") as bar:
        bar.set_postfix_str("load")
        bank = MemoryBank.load(args.bank)
        bar.update()
        queries = _floating(read_tensor(args.queries, "queries")["queries"], "queries", args.queries)
        local = bank._local("assocmem bank query")
        if local.patterns.exact:
            queries = queries.to(local.patterns.data.dtype)
        bar.set_postfix_str("retrieve")
        out = bank.retrieve(queries, args.beta, steps=args.steps)
        bar.update()
    result = {"states": out if isinstance(out, torch.Tensor) else out.states}
    if not isinstance(out, torch.Tensor) and out.bound is not None:
        result |= {"bound": out.bound, "fallback": out.fallback}
        say(args.quiet, f"{int(out.fallback.sum())} of {len(out.fallback)} queries fell back to the exact pass; "
            f"largest certified outside weight {float(out.bound.max()):.3g}")  # fmt: skip
    if args.out is not None:
        from safetensors.torch import save_file

        with atomic_path(args.out) as tmp:
            save_file({k: v.contiguous() for k, v in result.items()}, tmp)
        say(args.quiet, f"wrote {args.out}: states {tuple(result['states'].shape)}")
    elif not args.quiet:
        torch.set_printoptions(precision=4)
        print(result["states"])
    return 0


def run_info(args: argparse.Namespace) -> int:
    from assocmem.engines.bank.storage import read_manifest, sha256

    set_threads(args.threads)
    m = read_manifest(args.bank)
    print(f"{args.bank}: {m['size']} rows, d = {m['dim']}, values d_v = {m['value_dim'] if m['has_values'] else '-'}"
          f", storage {m['storage']}, backend {m['backend']}")  # fmt: skip
    if m["search"]:
        print("index: " + ", ".join(f"{k} {v}" for k, v in m["search"].items()))
    files = [*m["shards"], *([m["index"]] if m["index"] else [])]
    bad = []
    with progress_bar(args.quiet or not args.verify, total=len(files), desc="checksums", unit="file") as bar:
        for f in files:
            state = ""
            if args.verify:
                ok = (args.bank / f["file"]).is_file() and sha256(args.bank / f["file"]) == f["sha256"]
                state = "  ok" if ok else "  DAMAGED"
                if not ok:
                    bad.append(f["file"])
                bar.update()
            rows = f"rows {f['lo']}-{f['hi']}" if "lo" in f else "index"
            print(f"  {f['file']}  {rows}  sha256 {f['sha256']}{state}")
    if bad:
        raise ValueError(f"{args.bank}: checksum mismatch in {', '.join(bad)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bank",
        help="memory banks: build one from a file, query it, describe it",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", metavar="action", required=True, help="build, query or info")
    arrays = input_file(".npy", ".safetensors")
    bank_folder = run_folder(MANIFEST)

    b = sub.add_parser("build", help="build a bank from a .npy or .safetensors file of patterns")
    b.add_argument("rows", type=arrays, help="the patterns (K, d): .npy, or .safetensors with 'patterns'")
    b.add_argument("--values", type=input_file(".npy"), default=None, help="the values (K, d_v) as .npy")
    b.add_argument("--out", type=OUTPUT_FOLDER, required=True, help="the bank folder to write")
    b.add_argument(
        "--backend", choices=["local", "candidates"], default="local", help="local (exact) or candidates"
    )
    b.add_argument(
        "--index", choices=["flat", "ivf", "hnsw"], default="ivf", help="the candidate index (ivf)"
    )
    b.add_argument("--storage", choices=["float32", "float16", "int8"], default="float32", help="row storage")
    b.add_argument("--clusters", type=COUNT, default=None, help="k-means clusters (default sqrt(K))")
    b.add_argument("--nprobe", type=COUNT, default=8, help="clusters visited first (8)")
    b.add_argument("--tol", type=POSITIVE, default=1e-6, help="largest certified outside weight (1e-6)")
    b.add_argument("--shard-rows", type=COUNT, default=None, help="rows per shard file (default 2^22)")
    b.add_argument("--seed", type=SEED, default=0, help="k-means' seed (0)")
    add_quiet(b)
    add_threads(b)
    b.set_defaults(func=run_build)

    q = sub.add_parser("query", help="retrieve from a bank the queries of a .npy or .safetensors file")
    q.add_argument("bank", type=bank_folder, help="a bank folder (written by bank build)")
    q.add_argument("queries", type=arrays, help="the queries (B, d): .npy, or .safetensors with 'queries'")
    q.add_argument("--beta", type=POSITIVE, default=1.0, help="inverse temperature (1)")
    q.add_argument("--steps", type=COUNT, default=1, help="associations (1)")
    q.add_argument("--out", type=OUTPUT_FILE, default=None, help="write the answers here (.safetensors)")
    add_quiet(q)
    add_threads(q)
    q.set_defaults(func=run_query)

    i = sub.add_parser("info", help="size, shards, index and checksums of a bank")
    i.add_argument("bank", type=bank_folder, help="a bank folder")
    i.add_argument("--verify", action="store_true", help="check every file against its checksum")
    add_quiet(i, "no progress bar")
    add_threads(i)
    i.set_defaults(func=run_info)
