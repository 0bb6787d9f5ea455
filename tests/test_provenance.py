"""Every results file can say what made it: the assocmem and torch versions and the git commit, or why not."""

import re
import subprocess

import pytest
import torch

from assocmem import provenance as prov
from assocmem.version import __version__


@pytest.fixture
def fresh(monkeypatch):
    """Forget the cached commit before and after the test."""
    prov.git_commit.cache_clear()
    yield monkeypatch
    prov.git_commit.cache_clear()


def test_provenance_names_the_versions_and_the_commit_of_this_checkout(fresh):
    made = prov.provenance()
    assert made["assocmem"] == __version__ and made["torch"] == torch.__version__ and made["python"]
    if not (prov.SOURCE_ROOT / ".git").exists():
        pytest.skip("not run from a git checkout")
    head = subprocess.run(
        ["git", "-C", str(prov.SOURCE_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert made["commit"] == head and re.fullmatch("[0-9a-f]{40}", head)
    assert isinstance(made["dirty"], bool) and "commit_note" not in made


def test_without_git_the_commit_is_null_with_a_reason(fresh):
    fresh.setattr(prov, "SOURCE_ROOT", prov.SOURCE_ROOT)  # unchanged; only git goes missing
    fresh.setattr(prov.shutil, "which", lambda name: None)
    made = prov.provenance()
    if (prov.SOURCE_ROOT / ".git").exists():
        assert made["commit"] is None and "git is not installed" in made["commit_note"]


def test_an_installed_package_has_no_commit_and_says_so(fresh, tmp_path):
    fresh.setattr(prov, "SOURCE_ROOT", tmp_path)  # site-packages: no src/assocmem, no .git
    made = prov.provenance()
    assert (
        made["commit"] is None
        and made["dirty"] is None
        and "not running from a git checkout" in made["commit_note"]
    )


def test_a_repository_that_is_not_assocmems_source_is_not_taken_for_it(fresh, tmp_path):
    """A virtual environment inside some other git repository: its commit is not assocmem's."""
    outer = tmp_path / "project"
    (outer / "src" / "assocmem").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (outer / ".git").mkdir()  # looks like a checkout, but git's top level is tmp_path
    fresh.setattr(prov, "SOURCE_ROOT", outer)
    made = prov.provenance()
    assert made["commit"] is None and "not assocmem's source folder" in made["commit_note"]
