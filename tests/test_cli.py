"""The command line: complete and consistent help for every registered command, errors that name the option."""

import argparse
import subprocess
import sys

import pytest

from assocmem.cli import build_parser, main


def subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, action


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    _, action = subcommands()
    assert action.choices, "no sub-commands registered"
    for choice in action._choices_actions:  # each command with its one-line help
        assert (
            choice.dest in out and choice.help and " ".join(choice.help.split()[:3]) in " ".join(out.split())
        )
    assert main([]) == 0
    assert "usage: assocmem" in capsys.readouterr().out


@pytest.mark.parametrize("command", sorted(subcommands()[1].choices))
def test_every_command_has_complete_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: assocmem {command}")
    sub = subcommands()[1].choices[command]
    assert sub.description and len(sub.description.split()) >= 10, (
        f"{command}: describe what the command does"
    )
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS, f"{command} {name}: no help text"
        assert action.help.split()[0] in out, f"{command} {name}: help not shown"
        if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
            shown = "default" in action.help or str(action.default) in action.help
            assert shown, f"{command} {name}: say the default ({action.default!r}) in the help"
        if "--out" in action.option_strings:  # a command that writes files says where
            assert action.required or "default" in action.help, f"{command} --out: say where files go"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--flip", "1.5"], "argument --flip: expected a fraction in [0, 1]"),
        (["--mask", "-0.1"], "argument --mask: expected a fraction in [0, 1]"),
        (["--size", "15"], "argument --size: expected an even integer >= 2"),
        (["--memories", "0"], "argument --memories: expected an integer >= 1"),
        (["--threads", "0"], "argument --threads: expected an integer >= 1"),
    ],
)
def test_demo_rejects_bad_options(args, message, capsys):
    with pytest.raises(SystemExit) as done:
        main(["demo", *args])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "assocmem demo: error: " in err and message in err


def test_demo_refuses_a_file_as_output_folder(tmp_path, capsys):
    (tmp_path / "taken").write_text("")
    with pytest.raises(SystemExit) as done:
        main(["demo", "--out", str(tmp_path / "taken")])
    assert done.value.code == 2 and "taken is a file, not a folder" in capsys.readouterr().err


def test_progress_bars_show_on_a_terminal_only_and_never_with_quiet(monkeypatch):
    from assocmem.cli.console import epoch_lines, progress_bar

    class Terminal:
        def __init__(self, tty):
            self.tty, self.text = tty, ""

        def isatty(self):
            return self.tty

        def write(self, text):
            self.text += text

        def flush(self):
            pass

    for tty, quiet, shown in ((True, False, True), (False, False, False), (True, True, False)):
        monkeypatch.setattr(sys, "stderr", Terminal(tty))
        with progress_bar(quiet, total=2, desc="work") as bar:
            bar.update(2)
        assert ("work" in sys.stderr.text) == shown, (tty, quiet)
        assert epoch_lines(quiet) == (not tty and not quiet)


def test_console_script_and_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "assocmem", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("assocmem ")
