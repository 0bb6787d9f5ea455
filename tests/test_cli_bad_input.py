"""Every option of every command against a table of bad values (docs/bad-input.md, Command line).

The commands and their options are read from the argparse parser itself, so a new command or option joins the
table on its first day: each option must be a flag, have ``choices``, or take a checked type
(:class:`assocmem.cli.options.Kind`) whose name has a row in :data:`BAD`. Each bad value must stop the command
with exit status 2 and a message that names the option, before any file or folder is created (the test watches
its temporary folder, which is also the current folder). In-process ``main([...])`` calls: about 1 ms each.
"""

import argparse
import os
from pathlib import Path

import pytest
import torch

from assocmem.cli import build_parser, main
from assocmem.cli.options import Kind

#: Bad values for each kind of option. ``{file}``, ``{dir}``, ``{empty}``, ``{missing}`` are paths in the test's
#: temporary folder: an existing file, an existing folder holding files, an empty folder, nothing;
#: ``{bad_suffix}`` an existing file named ``recipe.yaml``.
BAD: dict[str, list[str]] = {
    "count": ["0", "-1", "x", "1.5", "", "1e3"],
    "nonnegative": ["-1", "x", "1.5", ""],
    "threads": ["0", "-2", "x", "1.5", ""],
    "seed": ["-1", "x", "1.5", str(2**63)],
    "even": ["15", "0", "-2", "x"],
    "int_list": ["", "5,,10", ",", "0,4", "4,-1", "x", "4.5", "10,"],
    "fraction": ["-0.1", "1.5", "nan", "inf", "x", ""],
    "open_fraction": ["0", "1", "nan", "-0.5", "x"],
    "positive": ["0", "-1", "nan", "inf", "x", ""],
    "finite": ["nan", "inf", "-inf", "x", ""],
    "degree": ["0.5", "0", "-1", "nan", "inf", "x"],
    "decay": ["0", "1.5", "-0.1", "nan", "x"],
    "momentum": ["1", "-0.1", "nan", "x"],
    "device": ["foo", "", "meta", "cuda:99", *([] if torch.cuda.is_available() else ["cuda", "cuda:0"])],
    "output_folder": ["", " ", "{file}", "{file}/sub"],
    "output_file": ["", "{dir}", "{dir}/", "{file}/x.json"],
    "output_figure": ["", "{dir}", "{file}/x.png", "{missing}/figure.xyz"],
    "input_folder": ["", "{missing}", "{file}"],
    "run_folder": ["", "{missing}", "{file}", "{empty}"],
    "input_file": ["", "{missing}", "{dir}", "{file}", "{bad_suffix}"],
    "choices": ["nope", ""],
    "motif": ["", "SX", "/SA", "sa", "SA/"],
    "column": ["", " ", "a\tb"],
}


def commands(parser=None, path=()):
    """``(path, parser)`` of every command that runs (``("classify", "train")``, ``("demo",)``, ...)."""
    parser = parser or build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, sub in subs[0].choices.items():
        yield from commands(sub, (*path, name))


def options(parser):
    """The options and positionals of one command, without help."""
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction | argparse._VersionAction)]


def kind(action) -> str | None:
    """The row of :data:`BAD` for an option, or None for a flag."""
    if action.nargs == 0:  # store_true and friends
        return None
    if action.choices is not None:
        return "choices"
    if isinstance(action.type, Kind):
        return action.type.name
    raise AssertionError(
        f"option {action.option_strings or action.dest} takes unchecked text (type {action.type})"
    )


#: A valid command line for each command (``{run}``: a trained run folder; ``{out}``: a new folder;
#: ``{recipe}``: a HAM recipe file).
VALID = {
    ("demo",): ["--out", "{out}"],
    ("capacity",): ["--model", "classical", "--neurons", "20", "--memories", "2,4", "--out", "{out}"],
    ("classify", "train"): ["--epochs", "1", "--out", "{out}", "--data-dir", "{dir}"],
    ("classify", "eval"): ["{run}", "--data-dir", "{dir}"],
    ("classify", "prototypes"): ["{run}", "--data-dir", "{dir}"],
    ("ham", "train"): ["{recipe}", "--out", "{out}", "--data-dir", "{dir}"],
    ("ham", "eval"): ["{run}", "--data-dir", "{dir}"],
    ("bank", "build"): ["{rows}", "--out", "{out}"],
    ("bank", "query"): ["{bank}", "{rows}"],
    ("bank", "info"): ["{bank}"],
    ("ham", "report"): ["{run}", "--data-dir", "{dir}"],
    ("repertoire", "simulate"): ["--out", "{out}", "--bags", "4", "--bag-size", "20"],
    ("repertoire", "kmer"): ["{dataset}", "--out", "{out}"],
    ("repertoire", "explain"): ["{run}", "--data", "{dir}", "--out", "{out}"],
    ("repertoire", "train"): ["{recipe}", "--data", "{dataset}", "--out", "{out}"],
    ("repertoire", "eval"): ["{run}", "--data", "{dataset}"],
}


def cases():
    for path, parser in commands():
        for action in options(parser):
            row = kind(action)
            if row is None:
                continue
            for value in BAD[row]:
                name = action.option_strings[-1] if action.option_strings else action.dest
                yield pytest.param(path, action, value, id=f"{' '.join(path)} {name}={value!r}")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A small classifier run folder (synthetic data), for eval and prototypes."""
    from assocmem.classifier.run import train
    from tests.test_classifier_training import small_config, synthetic

    folder = tmp_path_factory.mktemp("run") / "run"
    train(small_config(epochs=1), synthetic(), folder)
    return folder


def snapshot(*roots: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for root in roots for p in [root, *root.rglob("*")]}


def argv_for(path, action, value, places, parser=None):
    argv = [a.format(**places) for a in VALID[path]]
    value = value.format(**places)
    if action.option_strings:
        flag = action.option_strings[-1]
        present = [i for i, a in enumerate(argv) if a in action.option_strings]
        if present:
            argv[present[0] + 1] = value
        else:
            argv += [flag, value]
    else:  # the positionals come first, in the parser's order
        positionals = [a.dest for a in options(parser) if not a.option_strings] if parser else [action.dest]
        argv[positionals.index(action.dest)] = value
    return [*path, *argv]


def test_every_command_has_a_valid_command_line_and_quiet():
    found = {path for path, _ in commands()}
    assert found == set(VALID), "add the new command's valid command line to VALID"
    for path, parser in commands():
        flags = {s for a in options(parser) for s in a.option_strings}
        assert "--quiet" in flags, f"{' '.join(path)}: every command has --quiet"


def test_every_option_takes_a_checked_type():
    for _, parser in commands():
        for action in options(parser):
            row = kind(action)
            assert row is None or row in BAD, (
                f"{action.option_strings}: add bad values for kind {row!r} to BAD"
            )


@pytest.mark.parametrize(("path", "action", "value"), list(cases()))
def test_bad_value_stops_the_command_before_any_work(
    path, action, value, tmp_path, trained_run, monkeypatch, capsys
):
    (tmp_path / "file").write_text("")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "x").write_text("")
    (tmp_path / "empty").mkdir()
    (tmp_path / "recipe.json").write_text("{}")
    (tmp_path / "recipe.yaml").write_text("{}")
    (tmp_path / "rows.npy").write_bytes(b"")
    (tmp_path / "bank").mkdir()
    (tmp_path / "bank" / "manifest.json").write_text("{}")
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "metadata.tsv").write_text("")
    places = {
        name: str(tmp_path / name) for name in ("file", "dir", "empty", "missing", "rows", "bank", "dataset")
    }
    places["rows"] += ".npy"
    places.update(
        out=str(tmp_path / "out"),
        run=str(trained_run),
        recipe=str(tmp_path / "recipe.json"),
        bad_suffix=str(tmp_path / "recipe.yaml"),
    )
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path, trained_run)
    argv = argv_for(path, action, value, places, dict(commands())[path])
    try:
        status = main(argv)
    except SystemExit as done:
        status = done.code
    err = capsys.readouterr().err
    assert status == 2, f"{argv}: exit status {status}\n{err}"
    name = action.option_strings[-1] if action.option_strings else action.dest
    shown = [name, *action.option_strings, action.metavar or name]
    assert any(f"argument {s}" in err for s in shown if s), f"{argv}: the message must name the option\n{err}"
    assert snapshot(tmp_path, trained_run) == before, f"{argv}: files changed before the error"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_output_folder_is_refused_before_any_work(tmp_path, capsys):
    recipe = tmp_path / "recipe.json"
    recipe.write_text("{}")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    for argv in (
        ["capacity", "--model", "classical", "--neurons", "20", "--memories", "2", "--out", str(locked)],
        [
            "capacity",
            "--model",
            "classical",
            "--neurons",
            "20",
            "--memories",
            "2",
            "--out",
            str(locked / "new"),
        ],
        ["classify", "train", "--epochs", "1", "--out", str(locked / "run")],
        ["demo", "--out", str(locked)],
        ["ham", "train", str(recipe), "--out", str(locked / "run")],
    ):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 2 and "--out" in capsys.readouterr().err and not list(locked.iterdir())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["capacity", "--model", "classical", "--sweep-neurons", "20,30", "--neurons", "20", "--out", "{out}"],
         "--sweep-neurons finds the largest K for each N by itself: leave out --neurons and --memories"),
        (["capacity", "--model", "classical", "--neurons", "20", "--out", "{out}"],
         "--neurons and --memories are required"),
        (["capacity", "--model", "power", "--neurons", "20", "--memories", "3", "--out", "{out}"],
         "needs its degree n"),
        (["classify", "train", "--epochs", "1", "--out", "{empty}", "--resume"], "holds no classifier run to resume"),
        (["classify", "train", "--epochs", "1", "--out", "{missing}", "--resume"], "holds no classifier run to resume"),
        (["classify", "train", "--epochs", "1", "--out", "{run}"], "already holds a classifier run"),
        (["classify", "eval", "{run}", "--dataset", "fashion-mnist"], "pass --other-dataset as well"),
        (["classify", "prototypes", "{run}", "--out", "{empty}/same.png", "--json", "{empty}/same.png"],
         "--json: .* is also --out"),
        (["ham", "train", "{recipe}", "--out", "{empty}", "--resume"], "holds no HAM run to resume"),
        (["ham", "train", "{recipe}", "--out", "{missing}", "--resume"], "holds no HAM run to resume"),
        (["ham", "train", "{recipe}", "--out", "{run}"], "already holds a HAM run"),
        (["ham", "eval", "{run}", "--json", "{run}/metrics.json"], "--json: .* is a file of the run folder"),
        (["ham", "eval", "{run}", "--json", "{run}/checkpoint.safetensors"], "--json: .* is a file of the run"),
    ],
)  # fmt: skip
def test_options_that_depend_on_each_other_are_checked_before_any_work(
    argv, message, tmp_path, trained_run, capsys
):
    import re

    (tmp_path / "empty").mkdir()
    (tmp_path / "recipe.json").write_text("{}")
    places = {
        "recipe": tmp_path / "recipe.json",
        "out": tmp_path / "out",
        "empty": tmp_path / "empty",
        "missing": tmp_path / "missing",
        "run": trained_run,
    }
    before = snapshot(tmp_path, trained_run)
    assert main([a.format(**places) for a in argv]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert snapshot(tmp_path, trained_run) == before


def test_folder_problem_reports_unwritable_folders(tmp_path, monkeypatch):
    """The check behind --out (runs as root too: os.access is made to say no)."""
    from assocmem.cli import options

    monkeypatch.setattr(options.os, "access", lambda path, mode: Path(path) != tmp_path)
    assert options.folder_problem(tmp_path) == f"the folder {tmp_path} is not writable"
    assert (
        options.folder_problem(tmp_path / "a" / "b")
        == f"{tmp_path / 'a' / 'b'} cannot be created: {tmp_path} is not writable"
    )
    (tmp_path / "f").write_text("")
    assert (
        options.folder_problem(tmp_path / "f" / "b")
        == f"{tmp_path / 'f' / 'b'} cannot be created: {tmp_path / 'f'} is a file"
    )
    monkeypatch.undo()
    assert options.folder_problem(tmp_path / "a" / "b") is None and not (tmp_path / "a").exists()
