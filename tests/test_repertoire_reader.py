"""The repertoire reader: AIRR and DeepRC files, the metadata, the encoded cache, and a table of malformed files,
each a clear error naming the file, the line and the column, with nothing half-written left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from assocmem.repertoire import decode
from assocmem.repertoire.airr import FileFormatError, read_repertoire_file
from assocmem.repertoire.dataset import CACHE, RepertoireDataset

GOOD = "sequence_id\tjunction_aa\tduplicate_count\n0\tCASSLGQETQYF\t3\n1\tCASSPDRGAYEQYF\t1\n2\tCAWSF\t12\n"
SEQS = ["CASSLGQETQYF", "CASSPDRGAYEQYF", "CAWSF"]


def dataset(tmp: Path, files: dict[str, bytes | str], metadata: str | bytes | None = None) -> Path:
    """A data set folder: ``files`` under repertoires/, and a metadata file labelling them alternately."""
    (tmp / "repertoires").mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        data = text.encode("utf-8") if isinstance(text, str) else text
        (tmp / "repertoires" / name).write_bytes(data)
    if metadata is None:
        rows = "".join(f"{n.removesuffix('.tsv')}\t{i % 2}\n" for i, n in enumerate(files))
        metadata = "repertoire_id\tlabel\n" + rows
    data = metadata.encode("utf-8") if isinstance(metadata, str) else metadata
    (tmp / "metadata.tsv").write_bytes(data)
    return tmp


def test_an_airr_file_reads_into_codes_lengths_and_counts(tmp_path):
    (tmp_path / "a.tsv").write_text(GOOD)
    bag = read_repertoire_file(tmp_path / "a.tsv")
    assert decode(bag.codes, bag.lengths) == SEQS
    assert bag.counts.tolist() == [3, 1, 12]


@pytest.mark.parametrize(
    ("header", "rows"),
    [
        ("cdr3_aa\tduplicate_count", ["CASSLGQETQYF\t3", "CASSPDRGAYEQYF\t1", "CAWSF\t12"]),
        ("amino_acid\ttemplates", ["CASSLGQETQYF\t3", "CASSPDRGAYEQYF\t1", "CAWSF\t12"]),  # DeepRC's names
        (
            "aminoAcid\tcount (templates/reads)\tvGeneName",
            ["CASSLGQETQYF\t3\tV1", "CASSPDRGAYEQYF\t1\tV2", "CAWSF\t12\tV3"],
        ),
    ],
)
def test_deeprc_and_immunoseq_column_names_and_crlf_and_a_utf8_bom(tmp_path, header, rows):
    (tmp_path / "a.tsv").write_bytes(b"\xef\xbb\xbf" + ("\r\n".join([header, *rows]) + "\r\n").encode())
    bag = read_repertoire_file(tmp_path / "a.tsv")
    assert decode(bag.codes, bag.lengths) == SEQS and bag.counts.tolist() == [3, 1, 12]


def test_without_a_count_column_every_count_is_one(tmp_path):
    (tmp_path / "a.tsv").write_text("junction_aa\nCASSF\nCAW\n")
    assert read_repertoire_file(tmp_path / "a.tsv").counts.tolist() == [1, 1]


def test_reading_in_chunks_gives_the_same_bag(tmp_path):
    rows = [f"{i}\t{'CAS' + 'G' * (i % 9) + 'F'}\t{i + 1}" for i in range(500)]
    (tmp_path / "a.tsv").write_text("sequence_id\tjunction_aa\tduplicate_count\n" + "\n".join(rows) + "\n")
    whole = read_repertoire_file(tmp_path / "a.tsv")
    chunked = read_repertoire_file(tmp_path / "a.tsv", chunk_bytes=64)
    assert torch.equal(whole.codes, chunked.codes) and torch.equal(whole.counts, chunked.counts)
    assert whole.sha256 == chunked.sha256


H = "sequence_id\tjunction_aa\tduplicate_count\n"
#: (what, repertoire file bytes, metadata or None (default), the error's pattern)
MALFORMED = [
    (
        "missing sequence column",
        "sequence_id\tv_call\n0\tTRBV1\n",
        None,
        r"line 1: no amino-acid sequence column",
    ),
    ("comma-separated", "junction_aa,duplicate_count\nCASSF,1\n", None, r"line 1: .*comma-separated"),
    (
        "bad amino acid",
        H + "0\tCASSF\t1\n1\tCAXSF\t1\n",
        None,
        r"line 3, column junction_aa: 'X' at letter 3",
    ),
    ("stop codon", H + "0\tCASS*F\t1\n", None, r"line 2, column junction_aa: '\*' at letter 5"),
    ("lower case", H + "0\tcassf\t1\n", None, r"line 2, column junction_aa: 'c' at letter 1"),
    ("empty sequence", H + "0\tCASSF\t1\n1\t\t1\n", None, r"line 3, column junction_aa: empty sequence"),
    ("empty bag", H, None, r"line 2: the repertoire holds no sequences"),
    ("empty file", "", None, r"line 1: the file is empty"),
    ("too few fields", H + "0\tCASSF\n", None, r"line 2: 2 tab-separated fields; the header names 3"),
    ("empty line", H + "0\tCASSF\t1\n\n1\tCAW\t1\n", None, r"line 3: an empty line"),
    ("utf-16", ("\ufeff" + H + "0\tCASSF\t1\n").encode("utf-16-le"), None, r"line 1: the file is UTF-16"),
    ("utf-16 without bom", (H + "0\tCASSF\t1\n").encode("utf-16-le"), None, r"line 1: the header holds NUL"),
    (
        "latin-1 header",
        "sequence_id\tjunction_aa\tduplicate_count\tnot\xe9\n".encode("latin-1"),
        None,
        r"line 1: not UTF-8 text \(byte 0xe9",
    ),
    (
        "latin-1 letter",
        (H + "0\tCAS\xc4F\t1\n").encode("latin-1"),
        None,
        r"line 2, column junction_aa: byte 0xc4, not UTF-8 text",
    ),
    ("float count", H + "0\tCASSF\t1.5\n", None, r"line 2, column duplicate_count: the count '1.5'"),
    (
        "negative count",
        H + "0\tCASSF\t2\n1\tCAW\t-3\n",
        None,
        r"line 3, column duplicate_count: the count '-3'",
    ),
    ("zero count", H + "0\tCASSF\t0\n", None, r"line 2, column duplicate_count: the count '0'"),
    ("text count", H + "0\tCASSF\tmany\n", None, r"line 2, column duplicate_count: the count 'many'"),
    ("huge count", H + f"0\tCASSF\t{2**70}\n", None, r"line 2, column duplicate_count"),
    (
        "duplicate id",
        GOOD,
        "repertoire_id\tlabel\nr1\t1\nr1\t0\n",
        r"line 3, column repertoire_id: .*also on line 2",
    ),
    (
        "missing file",
        GOOD,
        "repertoire_id\tlabel\nr1\t1\nr9\t0\n",
        r"metadata.tsv, line 3: the repertoire 'r9' has no file",
    ),
    ("bad label", GOOD, "repertoire_id\tlabel\nr1\tyes\n", r"line 2, column label: the label 'yes'"),
    ("no label column", GOOD, "repertoire_id\tstatus\nr1\t+\n", r"line 1: no label column"),
    ("no id column", GOOD, "name\tlabel\nr1\t1\n", r"line 1: no repertoire id column"),
    ("metadata empty", GOOD, "repertoire_id\tlabel\n", r"line 2: the metadata names no repertoire"),
    (
        "metadata utf-16",
        GOOD,
        "repertoire_id\tlabel\nr1\t1\n".encode("utf-16"),
        r"metadata.tsv, line 1: .*UTF-16",
    ),
]


@pytest.mark.parametrize(("what", "content", "metadata", "pattern"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_files_are_clear_errors_naming_file_line_and_column(
    tmp_path, what, content, metadata, pattern
):
    folder = dataset(tmp_path / "set", {"r1.tsv": content}, metadata)
    before = sorted(p.name for p in folder.rglob("*"))
    with pytest.raises(FileFormatError, match=pattern) as err:
        ds = RepertoireDataset.open(folder)
        ds[0]
    assert str(folder) in str(err.value)
    assert sorted(p.name for p in folder.rglob("*")) == before, "nothing is written for a malformed file"


def test_deeprc_metadata_with_suffixed_ids_and_plus_minus_labels(tmp_path):
    meta = "ID\tstatus\nr1.tsv\t+\nr2.tsv\t-\n"
    folder = dataset(tmp_path, {"r1.tsv": GOOD, "r2.tsv": GOOD}, meta)
    ds = RepertoireDataset.open(folder, label_column="status")
    assert ds.names == ["r1", "r2"] and ds.labels.tolist() == [1, 0]
    assert ds[0].sequences() == SEQS and ds[0].witness is None and ds[0].label == 1


def test_an_unlabelled_set(tmp_path):
    ds = RepertoireDataset.open(dataset(tmp_path, {"r1.tsv": GOOD}), label_column=None)
    assert ds.labels.tolist() == [-1] and ds[0].label is None


def test_the_cache_is_used_while_fresh_and_invalidated_by_a_change(tmp_path):
    folder = dataset(tmp_path, {"r1.tsv": GOOD})
    ds = RepertoireDataset.open(folder)
    first = ds[0]
    entry = folder / CACHE / "r1.safetensors"
    assert entry.is_file()
    assert not [p for p in (folder / CACHE).iterdir() if p.name != "r1.safetensors"], "no temporary file left"
    assert torch.equal(ds[0].codes, first.codes)
    # a touched file with the same bytes: the hash keeps the entry
    stamp = entry.stat().st_mtime_ns
    os.utime(folder / "repertoires" / "r1.tsv", ns=(1, 1))
    assert ds[0].sequences() == SEQS and entry.stat().st_mtime_ns == stamp
    # same size, other bytes and another time: re-read
    (folder / "repertoires" / "r1.tsv").write_text(GOOD.replace("CAWSF", "CAWSW"))
    assert ds[0].sequences()[2] == "CAWSW"
    # a damaged entry is re-read, not an error
    entry.write_bytes(b"garbage")
    assert ds[0].sequences()[2] == "CAWSW"


def test_cache_can_be_switched_off(tmp_path):
    folder = dataset(tmp_path, {"r1.tsv": GOOD})
    RepertoireDataset.open(folder, cache=False)[0]
    assert not (folder / CACHE).exists()


def test_split_is_stratified_deterministic_and_a_partition(tmp_path):
    files = {f"r{i}.tsv": GOOD for i in range(30)}
    meta = "repertoire_id\tlabel\n" + "".join(f"r{i}\t{int(i < 10)}\n" for i in range(30))
    ds = RepertoireDataset.open(dataset(tmp_path, files, meta))
    split = ds.split(seed=3)
    assert split == ds.split(seed=3) and split != ds.split(seed=4)
    assert sorted(i for part in split.values() for i in part) == list(range(30))
    positives = {k: sum(ds.labels[v].tolist()) for k, v in split.items()}
    assert positives == {"train": 6, "validation": 2, "test": 2}
    with pytest.raises(ValueError, match="test and validation"):
        ds.split(seed=0, test=0.5, validation=0.5)
