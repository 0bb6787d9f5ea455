"""Atomic writes and headless figures: a file appears whole or not at all."""

import json

import pytest

from assocmem.files import atomic_path, write_json, write_text
from assocmem.report import new_figure, save_figure


def test_atomic_path_renames_on_success(tmp_path):
    dest = tmp_path / "sub" / "out.txt"
    with atomic_path(dest) as tmp:
        assert tmp.parent == dest.parent and tmp != dest
        tmp.write_text("done")
        assert not dest.exists()
    assert dest.read_text() == "done"
    assert list(dest.parent.iterdir()) == [dest]


def test_atomic_path_leaves_the_old_file_and_no_temporary_on_error(tmp_path):
    dest = write_text(tmp_path / "out.json", "old")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert dest.read_text() == "old"
    assert list(tmp_path.iterdir()) == [dest]


def test_write_json_round_trips(tmp_path):
    obj = {"test_error": 0.0144, "epochs": [1, 2]}
    assert json.loads(write_json(tmp_path / "m.json", obj).read_text()) == obj


def test_figure_saves_png_without_pyplot(tmp_path):
    fig, ax = new_figure(1, 2, figsize=(4, 2))
    ax[0].plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "f.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.iterdir()) == [path]


def test_written_files_get_the_ordinary_mode_not_mkstemps_private_one(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        path = write_text(tmp_path / "report.html", "<html></html>")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_writer_that_replaces_the_temporary_file_still_gets_the_ordinary_mode(tmp_path):
    """safetensors writes a new file over the temporary one (mode 0600): checkpoints were private before."""
    import os

    def private_writer(tmp):
        tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"weights")
        os.close(fd)

    mask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "checkpoint.safetensors") as tmp:
            private_writer(tmp)
    finally:
        os.umask(mask)
    assert (tmp_path / "checkpoint.safetensors").stat().st_mode & 0o777 == 0o644


def test_atomic_writes_flush_the_file_and_the_folder(tmp_path, monkeypatch):
    import os

    flushed = []
    real = os.fsync

    def fsync(fd):
        flushed.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else fd)
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    dest = write_text(tmp_path / "out.json", "{}")
    assert len(flushed) == 2  # the temporary file before its rename, then the folder after it
    if isinstance(flushed[0], str):
        assert flushed[0].startswith(str(tmp_path / ".out.json.")) and flushed[1] == str(tmp_path)
    assert dest.read_text() == "{}"


def test_json_is_strict_and_names_the_non_finite_numbers_it_wrote_as_null(tmp_path):
    import math

    from assocmem.files import to_json
    from tests.strict_json import load

    obj = {"loss": math.nan, "fit": {"constant": math.inf, "points": [1.0, -math.inf]}, "ok": 0.5}
    written = load(write_json(tmp_path / "r.json", obj))
    assert (
        written["loss"] is None
        and written["fit"]["constant"] is None
        and written["fit"]["points"] == [1.0, None]
    )
    assert written["ok"] == 0.5
    assert written["non_finite"]["values"] == {"loss": "nan", "fit.constant": "inf", "fit.points.1": "-inf"}
    assert "null" in written["non_finite"]["note"]
    assert "non_finite" not in load(write_json(tmp_path / "clean.json", {"ok": 1.0}))
    with pytest.raises(ValueError, match="non-finite numbers at 1"):
        to_json([1.0, math.nan])
