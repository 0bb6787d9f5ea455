"""The README stays true to the code: its Python example runs and its commands exist."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_example_runs(capsys):
    blocks = python_blocks()
    assert blocks, "README has no Python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "tensor([1., 1., 1., 1., 1., 1., 1., 1.])" in out


def test_readme_set_up_commands_are_make_targets():
    makefile = (README.parent / "Makefile").read_text()
    commands = re.findall(r"^make (\w+)", README.read_text(), flags=re.M)
    assert set(commands) >= {"demo", "test"}
    for target in commands:
        assert re.search(rf"^{target}:", makefile, flags=re.M), f"make {target} is not a Makefile target"
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci


@pytest.mark.parametrize("path", re.findall(r"\]\((docs/[^)]+)\)", README.read_text()))
def test_readme_links_exist(path):
    assert (README.parent / path).exists(), path
