"""The IDX reader, checksums, the cache and download logic of assocmem.data (no test uses the network)."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import pytest
import torch

from assocmem import data
from assocmem.data import FILES, DataError, Source, load, parse_idx, read_idx
from tests.conftest import SHARED_DATA, needs_data

needs_mnist = needs_data("mnist")


def idx_bytes(t: torch.Tensor, code: int) -> bytes:
    header = bytes([0, 0, code, t.ndim]) + struct.pack(f">{t.ndim}I", *t.shape)
    return header + t.numpy().astype(t.numpy().dtype.newbyteorder(">")).tobytes()


def fake_set(folder: Path, count: int = 6) -> dict[str, str]:
    """Write four tiny gzipped IDX files (count train and count test images of 3x2) and return their SHA-256."""
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, 2), generator=gen, dtype=torch.uint8)
    labels = torch.arange(count, dtype=torch.uint8) % 10
    sums = {}
    for name, t in zip(FILES, (images, labels, images.flip(0), labels.flip(0)), strict=True):
        raw = gzip.compress(idx_bytes(t, 0x08))
        (folder / name).write_bytes(raw)
        sums[name] = hashlib.sha256(raw).hexdigest()
    return sums


@pytest.mark.parametrize(
    ("dtype", "code"),
    [
        (torch.uint8, 0x08),
        (torch.int8, 0x09),
        (torch.int16, 0x0B),
        (torch.int32, 0x0C),
        (torch.float32, 0x0D),
        (torch.float64, 0x0E),
    ],
)
def test_idx_round_trip_every_type(dtype, code):
    t = (torch.arange(24, dtype=torch.float64).reshape(2, 3, 4) * 37 - 100).clamp(
        -128 if dtype != torch.uint8 else 0
    )
    t = (t % 120).to(dtype) if dtype in (torch.uint8, torch.int8) else t.to(dtype)
    got = parse_idx(idx_bytes(t, code))
    assert got.dtype == dtype and got.shape == t.shape
    assert torch.equal(got, t)


def test_idx_errors_name_the_problem(tmp_path):
    good = idx_bytes(torch.arange(12, dtype=torch.uint8).reshape(3, 4), 0x08)
    with pytest.raises(DataError, match="truncated"):
        parse_idx(good[:-1])
    with pytest.raises(DataError, match="truncated"):
        parse_idx(good[:6])
    with pytest.raises(DataError, match="after the data"):
        parse_idx(good + b"\0")
    with pytest.raises(DataError, match="not an IDX file"):
        parse_idx(b"\1\2\3\4" + good[4:])
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(good)[:-8])  # cut off the gzip trailer
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        read_idx(path)
    path.write_bytes(gzip.compress(good))
    assert torch.equal(read_idx(path), torch.arange(12, dtype=torch.uint8).reshape(3, 4))
    with pytest.raises(DataError, match="checksum mismatch"):
        read_idx(path, "0" * 64)
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "missing.gz")


def test_data_dir_of_any_idx_set_checked_against_its_sha256sums(tmp_path):
    sums = fake_set(tmp_path / "set")
    ds = load("my-set", data_dir=tmp_path / "set")
    assert ds.train.images.shape == (6, 3, 2) and ds.train.labels.dtype == torch.int64
    assert torch.equal(ds.test.images, ds.train.images.flip(0))
    (tmp_path / "set" / "SHA256SUMS").write_text(
        "".join(f"{'f' * 64 if n == FILES[1] else h}  {n}\n" for n, h in sums.items())
    )
    with pytest.raises(DataError, match="checksum mismatch"):
        load("my-set", data_dir=tmp_path / "set")
    (tmp_path / "set" / FILES[3]).unlink()
    with pytest.raises(DataError, match="lacks t10k-labels"):
        load("my-set", data_dir=tmp_path / "set")
    with pytest.raises(DataError, match="is not a folder"):
        load("mnist", data_dir=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="dataset must be one of"):
        load("nosuch", cache_dir=tmp_path)


@pytest.fixture
def fake_source(tmp_path, monkeypatch):
    """A registered data set 'fake' whose only mirror is a local folder (file:// URL)."""
    sums = fake_set(tmp_path / "mirror")
    source = Source("fake", sums, ((tmp_path / "mirror").as_uri() + "/",))
    monkeypatch.setitem(data.SOURCES, "fake", source)
    return source


def test_download_into_cache_then_reuse(tmp_path, fake_source, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "envcache"))
    assert data.default_cache_dir() == tmp_path / "envcache"
    ds = load("fake")
    assert ds.folder == tmp_path / "envcache" / "fake"
    assert sorted(p.name for p in ds.folder.iterdir()) == sorted(FILES)

    def no_network(url):
        raise AssertionError(f"cached files must not be downloaded again ({url})")

    again = load("fake", opener=no_network)
    assert torch.equal(again.train.images, ds.train.images)
    other = load("fake", cache_dir=tmp_path / "optcache")  # the option beats the environment variable
    assert other.folder == tmp_path / "optcache" / "fake"


def test_failed_download_leaves_no_partial_file(tmp_path, fake_source):
    class Broken:
        def __init__(self):
            self.sent = False

        def read(self, size):
            if self.sent:
                raise OSError("connection reset")
            self.sent = True
            return b"\x1f\x8b partial"

    with pytest.raises(DataError) as err:
        load("fake", cache_dir=tmp_path / "c", opener=lambda url: Broken())
    assert (
        "connection reset" in str(err.value) and "--data-dir" in str(err.value) and "cache" in str(err.value)
    )
    assert list((tmp_path / "c" / "fake").iterdir()) == []
    # a mirror serving the wrong bytes: the checksum fails and nothing is kept either
    wrong = tmp_path / "wrong"
    fake_set(wrong, count=4)
    with pytest.raises(DataError, match="expected"):
        load("fake", cache_dir=tmp_path / "c", mirrors=(wrong.as_uri() + "/",))
    assert list((tmp_path / "c" / "fake").iterdir()) == []


def test_neither_way_names_both(tmp_path, fake_source):
    with pytest.raises(DataError) as err:
        load("fake", cache_dir=tmp_path / "empty", download=False)
    message = str(err.value)
    assert "data_dir" in message and "--data-dir" in message and str(tmp_path / "empty" / "fake") in message


@needs_mnist
def test_mnist_from_shared_folder():
    ds = load("mnist", data_dir=SHARED_DATA / "mnist")
    assert ds.train.images.shape == (60000, 28, 28) and ds.test.images.shape == (10000, 28, 28)
    assert ds.train.images.dtype == torch.uint8 and int(ds.train.images.max()) == 255
    assert torch.equal(torch.bincount(ds.test.labels, minlength=10).sum(), torch.tensor(10000))
    assert ds.train.labels[:5].tolist() == [5, 0, 4, 1, 9]


@needs_mnist
def test_wrong_file_in_named_folder_fails_known_checksum(tmp_path):
    folder = tmp_path / "m"
    fake_set(folder)  # right names, wrong contents: the built-in MNIST digests catch it
    with pytest.raises(DataError, match="checksum mismatch"):
        load("mnist", data_dir=folder)


def test_corrupt_file_in_the_cache_is_named(tmp_path, fake_source):
    ds = load("fake", cache_dir=tmp_path / "c")
    cached = ds.folder / FILES[0]
    cached.write_bytes(cached.read_bytes()[:-3])  # truncated after the download, e.g. by a full disk
    with pytest.raises(DataError, match=f"checksum mismatch for {cached}.*delete it and download"):
        load("fake", cache_dir=tmp_path / "c")
