"""The command line: help, the demo's table, and errors that name the option."""

import subprocess
import sys

import pytest

from assocmem.cli import build_parser, main
from assocmem.cli.demo import run_demo


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for action in build_parser()._subparsers._group_actions[0].choices:
        assert action in out
    assert main([]) == 0


def test_demo_recalls_every_pattern_and_lowers_every_energy():
    rows = run_demo(neurons=64, memories=4, flip=0.15, tau_h=0.05, seed=3, method="stiff")
    assert len(rows) == 4
    for row in rows:
        assert row.recalled == 4, row
        assert row.overlap_end == 1.0 and row.overlap_start < 1.0
        assert row.energy_end < row.energy_start


def test_demo_command_prints_the_table(capsys):
    assert main(["demo", "--neurons", "48", "--memories", "3", "--flip", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "energy start -> end" in out
    assert out.count("3/3") == 4


def test_demo_rejects_bad_options(capsys):
    assert main(["demo", "--flip", "0.9"]) == 2
    assert "--flip must be a fraction" in capsys.readouterr().err


def test_console_script_and_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "assocmem", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("assocmem ")
