"""The README stays true: its Python example prints what it says, every command in it runs, its links exist.

The examples that used to be in the README and now live in docs/ (theory.md, hopfield-layers.md) run here too.
"""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from assocmem.cli import main
from tests.test_demo import DEMO_COMMAND

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def shell_commands(path):
    blocks = re.findall(r"```bash\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)
    return [
        line.split("#")[0].strip()
        for block in blocks
        for line in block.splitlines()
        if line.split("#")[0].strip()
    ]


def run_blocks(path):
    for block in python_blocks(path):
        exec(compile(block, str(path), "exec"), {})


def test_readme_example_prints_what_the_readme_says(capsys):
    blocks = python_blocks(README)
    assert len(blocks) == 1, "the README has one Python example"
    assert len([line for line in blocks[0].splitlines() if line.strip()]) <= 16
    run_blocks(README)
    out = capsys.readouterr().out.splitlines()
    recorded = re.search(r"```python\n.*?```\n\nprints\n\n```\n(.*?)```", README.read_text(), flags=re.S)
    assert recorded, "the README shows the example's output after it"
    expected = recorded.group(1).splitlines()
    assert len(out) == len(expected)
    for got, want in zip(out, expected, strict=True):
        if want.startswith("two-layer"):  # the integrator's step count may differ on other hardware
            got, want = got.split(" Trajectory")[0], want.split(" Trajectory")[0]
        assert got == want
    classical = int(re.match(r"classical: (\d+)/48", out[0]).group(1))
    assert classical < 48 and out[1].startswith("DAM n=3: 48/48")
    assert out[2] == "softmax: 48/48" and out[3].startswith("two-layer: 48/48")


@pytest.mark.parametrize("doc", ["theory.md", "hopfield-layers.md"])
def test_docs_examples_run(doc, capsys):
    path = ROOT / "docs" / doc
    assert python_blocks(path)
    run_blocks(path)
    out = capsys.readouterr().out
    if doc == "theory.md":
        assert "tensor([1., 1., 1., 1., 1., 1., 1., 1.])" in out


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


@pytest.mark.parametrize("path", sorted(set(re.findall(r"\]\((docs/[^)]+)\)", README.read_text()))))
def test_readme_links_exist(path):
    assert (ROOT / path).exists(), path
