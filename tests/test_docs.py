"""The documentation stays true: the site builds without a warning, every Python example in README.md and docs/
runs and prints what the page says, the README's commands run, and every ``docs/reference.md §N`` in the code
names a section of the reference page.

Examples on one page run in order in one namespace, from a scratch folder beside a ``shared`` link to the data
(so ``../shared/data/mnist`` and output folders such as ``runs/...`` work as they do from the repository root). An
example followed by ``prints`` and a plain code block must print exactly that block. An example that reads
``shared/data`` runs only when the data is there. An example may opt out only with the comment ``OPT_OUT`` below
followed by the reason; none does today.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from assocmem.cli import main
from tests.conftest import SHARED_DATA
from tests.test_demo import DEMO_COMMAND

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
REFERENCE = ROOT / "docs" / "reference.md"

#: The marker comment (a block's first line) that keeps a block from running; the reason must follow it.
OPT_OUT = "# not run by tests/test_docs.py:"

FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", flags=re.S | re.M)


def blocks(path: Path) -> list[tuple[str, str, str]]:
    """``(language, code, text after the block up to the next block)`` for every fenced block of a page."""
    text = path.read_text(encoding="utf-8")
    found = list(FENCE.finditer(text))
    return [
        (m.group(1), m.group(2), text[m.end() : found[i + 1].start() if i + 1 < len(found) else len(text)])
        for i, m in enumerate(found)
    ]


def examples(path: Path) -> list[tuple[str, str | None]]:
    """``(code, the output the page records or None)`` for every Python block of a page, in order."""
    found = blocks(path)
    result = []
    for i, (language, code, after) in enumerate(found):
        if language != "python":
            continue
        recorded = None
        if after.strip() == "prints" and i + 1 < len(found) and found[i + 1][0] == "":
            recorded = found[i + 1][1]
        result.append((code, recorded))
    return result


def shell_commands(path: Path) -> list[str]:
    return [
        line.split("#")[0].strip()
        for language, code, _ in blocks(path)
        if language == "bash"
        for line in code.splitlines()
        if line.split("#")[0].strip()
    ]


def same_output(got: str, want: str) -> bool:
    """Line by line equal; an integrator's step counts (after ``Trajectory(``) may differ on other hardware."""
    got_lines, want_lines = got.splitlines(), want.splitlines()
    if len(got_lines) != len(want_lines):
        return False
    return all(
        g.split(" Trajectory(")[0] == w.split(" Trajectory(")[0]
        for g, w in zip(got_lines, want_lines, strict=True)
    )


def run_page(path: Path, workdir: Path) -> list[str]:
    """Run a page's examples in one namespace from ``workdir``; returns what each printed."""
    namespace: dict = {"__name__": f"docs_{path.stem}"}
    printed = []
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        for code, recorded in examples(path):
            if code.startswith(OPT_OUT):
                assert len(code.splitlines()[0]) > len(OPT_OUT) + 10, (
                    f"{path.name}: an opt-out needs its reason"
                )
                continue
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(code, str(path), "exec"), namespace)
            printed.append(out.getvalue())
            if recorded is not None:
                assert same_output(out.getvalue(), recorded), (
                    f"{path.name}: the example printed\n{out.getvalue()}\nbut the page says\n{recorded}"
                )
    finally:
        os.chdir(cwd)
    return printed


@pytest.fixture
def workdir(tmp_path):
    """A scratch folder with ``../shared`` pointing at the project's shared folder (when it exists)."""
    (tmp_path / "work").mkdir()
    if SHARED_DATA.parent.is_dir():
        (tmp_path / "shared").symlink_to(SHARED_DATA.parent, target_is_directory=True)
    return tmp_path / "work"


PAGES_WITH_EXAMPLES = [p for p in PAGES if examples(p)]


@pytest.mark.parametrize("path", PAGES_WITH_EXAMPLES, ids=lambda p: p.name)
def test_every_example_runs_and_prints_what_the_page_says(path, workdir):
    if any("shared/data" in code for code, _ in examples(path)) and not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"{path.name} reads MNIST from ../shared/data, which is absent ({SHARED_DATA})")
    printed = run_page(path, workdir)
    if path.name == "theory.md":  # every cue recalled its memory; the energy went down
        assert "tensor([1., 1., 1., 1., 1., 1., 1., 1.])" in printed[0]
    if path.name == "classifier.md":  # three short epochs on 2,000 images: far below chance (0.9)
        assert float(printed[0].split()[0]) < 0.6


def test_the_test_finds_the_examples_and_compares_recorded_output():
    """The extraction itself: pages that must have examples have them, and a wrong record fails the check."""
    names = {p.name for p in PAGES_WITH_EXAMPLES}
    assert {"README.md", "theory.md", "hopfield-layers.md", "binary-dam.md", "classifier.md"} <= names
    recorded = [r for p in PAGES for _, r in examples(p) if r is not None]
    assert recorded, "README.md records its example's output"
    assert not same_output("softmax: 48/48\n", "softmax: 47/48\n")
    assert same_output("two-layer: 48/48 Trajectory(steps=50)\n", "two-layer: 48/48 Trajectory(steps=51)\n")
    assert not any(code.startswith(OPT_OUT) for p in PAGES for code, _ in examples(p)), "say why, or run it"


def test_readme_example_is_short_and_its_output_says_dense_beats_classical():
    (code, recorded), *rest = examples(README)
    assert not rest, "the README has one Python example"
    assert len([line for line in code.splitlines() if line.strip()]) <= 16
    assert recorded is not None, "the README shows the example's output after it"
    lines = recorded.splitlines()
    assert int(re.match(r"classical: (\d+)/48", lines[0]).group(1)) < 48
    assert lines[1].startswith("DAM n=3: 48/48")
    assert lines[2] == "softmax: 48/48" and lines[3].startswith("two-layer: 48/48")


def test_readme_set_up_commands_are_make_targets():
    commands = shell_commands(README)
    makes = [c.split()[1] for c in commands if c.startswith("make ")]
    assert makes == ["demo", "test"], "the two set-up commands"
    dry = {t: subprocess.run(["make", "-n", t], cwd=ROOT, capture_output=True, text=True) for t in makes}
    assert dry["demo"].returncode == 0 and "/assocmem demo" in dry["demo"].stdout
    assert (
        dry["test"].returncode == 0 and "ruff check" in dry["test"].stdout and "pytest" in dry["test"].stdout
    )
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == "make test", "CI runs exactly the README's test command"


def test_every_readme_command_is_exercised(capsys):
    for command in shell_commands(README):
        words = shlex.split(command)
        if words[0] == "make":
            continue  # test_readme_set_up_commands_are_make_targets
        if words[:2] == ["python", "-m"] and words[2] in ("pip", "build"):
            assert words[2:4] in (["pip", "install"], ["build"]), command
            continue  # installing into one's own environment: tests/test_wheel.py builds and installs the wheel
        assert words[0] == ".venv/bin/assocmem", command
        args = words[1:]
        if args[:2] == ["demo", "--quick"]:  # run end to end by tests/test_demo.py, with a temporary --out
            assert args[:-1] == DEMO_COMMAND, f"tests/test_demo.py runs {DEMO_COMMAND}, the README {args}"
            continue
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 0, command
        assert capsys.readouterr().out.startswith("usage: assocmem")


@pytest.mark.parametrize("path", sorted(set(re.findall(r"\]\((docs/[^)#]+)", README.read_text()))))
def test_readme_links_exist(path):
    assert (ROOT / path).exists(), path


# -- the reference page and the pointers to it ------------------------------------------------------------------

POINTER = re.compile(
    r"docs/reference\.md\s+§\s*(\d+(?:\s*[-–]\s*\d+)?(?:\s*(?:,|and)\s*§?\s*\d+(?:\s*[-–]\s*\d+)?)*)"
)


def sections_named(pointer: str) -> set[int]:
    """The section numbers a pointer's text names: ``1-3, 5`` -> {1, 2, 3, 5}; ``1, §2 and 4`` -> {1, 2, 4}."""
    numbers: set[int] = set()
    for part in re.split(r",|and", pointer):
        ends = [int(n) for n in re.findall(r"\d+", part)]
        if ends:
            numbers.update(range(ends[0], ends[-1] + 1))
    return numbers


def reference_sections() -> set[int]:
    return {int(n) for n in re.findall(r"^## (\d+)\. \S", REFERENCE.read_text(encoding="utf-8"), flags=re.M)}


def test_reference_page_has_sections_1_to_10_in_order():
    numbers = [int(n) for n in re.findall(r"^## (\d+)\. ", REFERENCE.read_text(encoding="utf-8"), flags=re.M)]
    assert numbers == list(range(1, 11))


def test_pointer_parsing():
    assert sections_named("1-3, 5") == {1, 2, 3, 5}
    assert sections_named("1, §2 and 4") == {1, 2, 4}
    assert sections_named("3") == {3}
    assert POINTER.search("see docs/reference.md §3, §5.").group(1).strip() == "3, §5"


def test_every_pointer_in_the_code_names_a_section_of_the_reference_page():
    existing = reference_sections()
    pointers = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        for match in POINTER.finditer(path.read_text(encoding="utf-8")):
            pointers.append((path.relative_to(ROOT), match.group(0), sections_named(match.group(1))))
    assert len(pointers) > 40, "the docstrings cite the reference page"
    dangling = [(str(p), text) for p, text, numbers in pointers if not numbers <= existing]
    assert not dangling, f"pointers to sections the reference page does not have: {dangling}"


def test_no_docstring_or_page_names_the_shared_reference_sheet():
    """Users never see the shared folder: the code and the pages point at docs/reference.md instead."""
    files = [*sorted((ROOT / "src").rglob("*.py")), *PAGES]
    stale = [str(p.relative_to(ROOT)) for p in files if "REFERENCE.md" in p.read_text(encoding="utf-8")]
    assert not stale


# -- the site ---------------------------------------------------------------------------------------------------


def test_site_builds_without_a_warning(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]'); CI installs it with the dev extra")
    build = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    assert "WARNING" not in build.stderr, build.stderr[-4000:]
    site = tmp_path / "site"
    for page in ["index.html", "reference/index.html", "api/network/index.html", "api/laboratory/index.html"]:
        assert (site / page).is_file(), page
    reference = (site / "reference" / "index.html").read_text(encoding="utf-8")
    assert all(f'id="{n}-' in reference for n in range(1, 11)), "every section has its anchor"
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "classical: 0/48" in home, "the home page shows the README's example and its output"


def test_every_name_of_the_package_face_is_on_its_api_page():
    """docs/api/assocmem.md lists what ``import assocmem`` gives: a new export cannot skip it."""
    import assocmem

    listed = set(
        re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", (ROOT / "docs" / "api" / "assocmem.md").read_text())
    )
    missing = sorted(set(assocmem.__all__) - listed)
    assert not missing, f"docs/api/assocmem.md does not list {missing}"
