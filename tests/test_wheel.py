"""The package as a user installs it: the wheel and the sdist, and the wheel alone in a fresh environment.

Marked ``wheel`` and left out of a plain ``pytest`` run (``addopts`` in pyproject.toml): it builds both archives,
creates a virtual environment in a temporary folder, installs the wheel there with constraints.txt (torch's CPU
build) and runs, from a folder outside the source tree, the console script's quick demo and the README's example.
Whatever the package needed from this tree at run time (data, figures, templates) would be missing there.
``make test`` runs it after the suite: ``pytest -m wheel``.
"""

import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

from assocmem.version import __version__
from tests.test_demo import DEMO_COMMAND, MODELS, table_rows

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parents[1]
#: Variables that would let the fresh environment import this tree or another environment's packages.
LEAKS = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONUSERBASE")
#: What the README example's check (tests/test_docs.py, run there unchanged) imports beyond the package.
TEST_TOOLS = ["pytest>=8", "hypothesis>=6.100"]


def run(command, cwd, env, timeout=600):
    """``command`` in ``cwd``; its output goes into the assertion message when it fails."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """The sdist, then the wheel built from the unpacked sdist (what ``python -m build`` does by default)."""
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], cwd=ROOT, env=os.environ)
    sdists, wheels = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in dist.iterdir())
    return sdists[0], wheels[0]


@pytest.fixture(scope="module")
def fresh(archives, tmp_path_factory):
    """A new virtual environment outside the source tree holding the wheel; a working folder beside it."""
    home = tmp_path_factory.mktemp("user")
    env = {k: v for k, v in os.environ.items() if k not in LEAKS}
    env["PYTHONNOUSERSITE"] = "1"
    venv.create(home / "venv", with_pip=True)
    bin_dir = home / "venv" / "bin"
    pip = [
        str(bin_dir / "python"),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
    ]
    run([*pip, "-c", str(ROOT / "constraints.txt"), str(archives[1])], cwd=home, env=env)
    work = home / "work"
    work.mkdir()
    return bin_dir, work, env, pip


def test_the_wheel_holds_the_package_only(archives):
    wheel = archives[1]
    assert wheel.name == f"assocmem-{__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"assocmem", f"assocmem-{__version__}.dist-info"}
    shipped = {n for n in names if n.startswith("assocmem/")}
    sources = {p.relative_to(ROOT / "src").as_posix() for p in (ROOT / "src" / "assocmem").rglob("*.py")}
    assert shipped == sources
    metadata = zipfile.ZipFile(wheel).read(f"assocmem-{__version__}.dist-info/METADATA").decode()
    requires = [
        line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist: ")
    ]
    runtime = {r.split(">")[0].split("=")[0].split("<")[0].strip() for r in requires if "extra ==" not in r}
    assert {"torch", "numpy", "numba", "matplotlib", "safetensors", "tqdm"} <= runtime
    torch_req = next(r for r in requires if r.startswith("torch"))
    assert torch_req.startswith("torch>=") and "<" not in torch_req and "==" not in torch_req, torch_req


def test_the_sdist_holds_the_sources_and_the_readme(archives):
    sdist = archives[0]
    assert sdist.name == f"assocmem-{__version__}.tar.gz"
    top = f"assocmem-{__version__}/"
    names = {n.removeprefix(top) for n in tarfile.open(sdist).getnames()}
    assert {"README.md", "pyproject.toml", "PKG-INFO"} <= names
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "src" / "assocmem").rglob("*.py")}
    assert sources <= names, sorted(sources - names)


def test_the_fresh_environment_imports_the_wheel(fresh):
    bin_dir, work, env, _ = fresh
    where = run(
        [str(bin_dir / "python"), "-c", "import assocmem; print(assocmem.__file__)"], work, env
    ).strip()
    assert Path(where).is_relative_to(bin_dir.parent) and not Path(where).is_relative_to(ROOT), where
    assert run([str(bin_dir / "assocmem"), "--version"], work, env).strip() == f"assocmem {__version__}"
    run([str(bin_dir / "python"), "-m", "pip", "check"], work, env)  # the wheel's requirements are all there


def test_without_the_bank_extra_the_candidate_backend_names_it(fresh):
    """The wheel alone has no FAISS (an optional extra): the local bank works, the candidate backend says what to
    install."""
    bin_dir, work, env, _ = fresh
    script = (
        "import torch, assocmem as am\n"
        "bank = am.MemoryBank(torch.randn(50, 4))\n"
        "assert bank.retrieve(torch.randn(2, 4)).shape == (2, 4)\n"
        "am.MemoryBank(torch.randn(50, 4), backend='candidates')\n"
    )
    done = subprocess.run(
        [str(bin_dir / "python"), "-c", script], cwd=work, env=env, capture_output=True, text=True
    )
    assert done.returncode != 0 and "ImportError" in done.stderr and "assocmem[bank]" in done.stderr, (
        done.stderr
    )


def test_the_console_script_runs_the_quick_demo(fresh):
    bin_dir, work, env, _ = fresh
    out = work.parent / "demo-report"
    stdout = run([str(bin_dir / "assocmem"), *DEMO_COMMAND, str(out)], work, env)
    _, rows = table_rows(stdout)
    assert {row[0] for row in rows} == set(MODELS) and len(rows) == 2 * len(MODELS), rows  # two corruptions
    for model, _, _, accuracy, *_ in rows:  # tests/test_demo.py checks the rest of the table
        recalled, total = accuracy.split()[0].split("/")
        assert (recalled == total) == MODELS[model], f"{model}: {accuracy}"
    assert f"wrote {(out / 'report.html').resolve()}" in stdout
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page


def test_the_readme_example_prints_what_the_readme_shows(fresh):
    """tests/test_docs.py's own check of the README, run by the fresh environment's Python: one rule for what
    "the same" is."""
    bin_dir, work, env, pip = fresh
    run([*pip, "-c", str(ROOT / "constraints.txt"), *TEST_TOOLS], work, env)
    test = (
        f"{ROOT / 'tests' / 'test_docs.py'}::test_every_example_runs_and_prints_what_the_page_says[README.md]"
    )
    # assocmem is imported before pytest puts the source tree's root on sys.path, and its origin checked.
    script = (
        "import sys, assocmem, pytest\n"
        f"assert assocmem.__file__.startswith({str(bin_dir.parent)!r}), assocmem.__file__\n"
        f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', {test!r}]))\n"
    )
    report = run([str(bin_dir / "python"), "-c", script], work, env)
    assert "1 passed" in report, report
