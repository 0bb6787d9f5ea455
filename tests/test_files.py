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
