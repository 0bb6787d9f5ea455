"""What made a results file: the assocmem version, the torch version and the git commit of the source.

Every results file the project writes records :func:`provenance` (capacity's results.json, a classifier run's
config.json, metrics.json and checkpoint, the prototypes' JSON, the demo's page), so a number can be traced to
the code that computed it. The commit is known only when assocmem runs from a git checkout (the source folder of
a clone, as with an editable install); otherwise it is ``None`` and ``commit_note`` says why. Nothing here
fails: a missing ``git``, a package installed from a wheel, or a broken repository each give a reason instead.
"""

from __future__ import annotations

import functools
import platform
import shutil
import subprocess
from pathlib import Path

from assocmem.version import __version__

#: The folder that would be the root of a git checkout holding this package (``<root>/src/assocmem``).
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def provenance() -> dict[str, object]:
    """``{"assocmem", "torch", "python", "commit", "dirty"}`` and, when ``commit`` is ``None``, ``"commit_note"``.

    ``dirty`` is whether tracked files differ from the commit (``None`` when there is no commit).
    """
    import torch

    commit, dirty, note = git_commit()
    out: dict[str, object] = {
        "assocmem": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "commit": commit,
        "dirty": dirty,
    }
    if commit is None:
        out["commit_note"] = note
    return out


@functools.cache
def git_commit() -> tuple[str | None, bool | None, str | None]:
    """``(commit, dirty, None)`` of the checkout assocmem runs from, or ``(None, None, reason)``."""
    if not (SOURCE_ROOT / "src" / "assocmem").is_dir() or not (SOURCE_ROOT / ".git").exists():
        return None, None, "assocmem is not running from a git checkout (installed as a package)"
    git = shutil.which("git")
    if git is None:
        return None, None, f"git is not installed, so the commit of {SOURCE_ROOT} is unknown"

    def ask(*args: str) -> str:
        done = subprocess.run(
            [git, "-C", str(SOURCE_ROOT), *args], capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout.strip()

    try:
        top = Path(ask("rev-parse", "--show-toplevel")).resolve()
        if top != SOURCE_ROOT:
            return None, None, f"the git repository at {top} is not assocmem's source folder {SOURCE_ROOT}"
        commit = ask("rev-parse", "HEAD")
        dirty = bool(ask("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError) as err:
        return None, None, f"git could not read the commit of {SOURCE_ROOT} ({type(err).__name__})"
    return commit, dirty, None
