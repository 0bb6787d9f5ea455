"""The package's import graph runs one way, from the general formalism up to the applications, without cycles.

The graph is read from the source with :mod:`ast`, not by importing: every ``import`` and ``from ... import``
statement counts, at module level or inside a function, relative ones resolved against the importing module.

How an import becomes edges (module -> module):

* ``import a.b.c`` and ``from a.b.c import name`` name the module ``a.b.c``; ``from a.b import c`` names the
  submodule ``a.b.c`` when ``c`` is one, else ``a.b`` (``c`` is then a name ``a/b/__init__.py`` defines).
* A package ``__init__`` is a module like any other: re-exporting its submodules makes edges to them, and a
  module that imports ``from`` the package depends on that ``__init__`` and through it on everything it
  re-exports. So a submodule that imports its own package's ``__init__`` closes a cycle, and the check says so.
* Importing ``a.b.c`` first runs ``a/__init__`` and ``a/b/__init__``. Those are edges too, except the packages
  the importer itself lives in (they are already running when it runs), so ``assocmem/__init__.py`` (the face,
  which re-exports everything) never becomes an edge from inside the package.
* Only ``assocmem.*`` targets count; torch, numpy and the standard library are outside the graph.

The layers' order is the table :data:`LEVELS` below (a lower level never imports a higher one) and
:data:`INDEPENDENT`, the siblings of one level that never import each other. The face and ``__main__`` may
import anything, but they take part in the cycle check.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "assocmem"

#: Level of every top-level part of the package (a module of the ground floor or a subpackage).
LEVELS: dict[str, int] = {
    "version": 0,
    "checks": 0,
    "files": 0,
    "allocator": 0,
    "provenance": 0,
    "pool": 0,
    "data": 1,
    "lagrangians": 1,
    "network": 2,
    "dynamics": 3,
    "models": 4,
    "engines": 5,
    "nn": 6,
    "classifier": 6,
    "keyvalue": 6,
    "ham": 6,
    "laboratory": 7,
    "repertoire": 7,
    "report": 8,
    "cli": 9,
}
#: Parts that may import anything (the package face re-exports every layer; ``python -m`` runs the CLI).
FACE = frozenset({"__init__", "__main__"})
#: Parts of one level that never import each other.
INDEPENDENT: frozenset[frozenset[str]] = frozenset(
    {
        frozenset({"nn", "classifier"}),
        frozenset({"nn", "keyvalue"}),
        frozenset({"classifier", "keyvalue"}),
        frozenset({"data", "lagrangians"}),
        frozenset({"laboratory", "repertoire"}),
    }
)


def modules(root: Path) -> dict[str, Path]:
    """Dotted name of every module under the package directory ``root`` -> its file."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_package(name: str, table: dict[str, Path]) -> bool:
    return table[name].name == "__init__.py"


def imported_names(name: str, path: Path, table: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """The modules of the package that ``name`` (file ``path``) imports, with line numbers; see the module doc."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = name if _is_package(name, table) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in table else target), node.lineno


def edges(root: Path) -> dict[str, dict[str, int]]:
    """``importer -> {imported module: first line}`` for every module of the package at ``root``."""
    table = modules(root)
    graph: dict[str, dict[str, int]] = {name: {} for name in table}
    for name, path in table.items():
        running = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        if _is_package(name, table):
            running.add(name)
        for target, line in imported_names(name, path, table):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                dep = ".".join(parts[:i])
                if dep in table and dep != name and (dep not in running or dep == target):
                    graph[name].setdefault(dep, line)
    return graph


def part(name: str) -> str:
    """The top-level part of the package a dotted module name lives in (``"__init__"`` for the face)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def order_violations(root: Path) -> list[str]:
    """Every import against :data:`LEVELS`/:data:`INDEPENDENT`, as ``"a.py:line imports b (why)"``."""
    table = modules(root)
    found = []
    for name, targets in edges(root).items():
        src = part(name)
        if src in FACE:
            continue
        if src not in LEVELS:
            found.append(f"{name}: part {src!r} has no level in LEVELS; add it to the table")
            continue
        for target, line in targets.items():
            dst = part(target)
            where = f"{table[name].relative_to(root.parent)}:{line} imports {target}"
            if dst in FACE:
                found.append(f"{where} (the package face; import the module that defines the name)")
            elif dst not in LEVELS:
                found.append(f"{where} (part {dst!r} has no level in LEVELS)")
            elif LEVELS[dst] > LEVELS[src]:
                found.append(f"{where} ({src}, level {LEVELS[src]}, below {dst}, level {LEVELS[dst]})")
            elif frozenset({src, dst}) in INDEPENDENT:
                found.append(f"{where} ({src} and {dst} are independent siblings)")
    return sorted(found)


def cycles(root: Path) -> list[list[str]]:
    """Every strongly connected group of modules (a set of modules that import each other in a circle)."""
    graph = edges(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []

    def visit(v: str) -> None:  # Tarjan's algorithm; the graph has ~80 nodes, so recursion depth is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph[v]:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


# ---------------------------------------------------------------------------------------------------------------
# The package itself


def test_every_part_of_the_package_has_a_level():
    parts = {part(name) for name in modules(ROOT)}
    assert parts - FACE == set(LEVELS), "LEVELS must list exactly the package's parts"


def test_imports_follow_the_layers_order():
    assert order_violations(ROOT) == []


def test_no_import_cycles():
    assert cycles(ROOT) == []


def test_the_graph_sees_the_known_imports():
    """The reader finds relative, function-level and package imports (else the two tests above prove nothing)."""
    graph = edges(ROOT)
    assert "assocmem.network" in graph["assocmem.dynamics.relax"]
    assert "assocmem.engines.retrieval" in graph["assocmem.nn.functional"]
    assert "assocmem.models.interaction" in graph["assocmem.engines.binary.dam"]
    assert "assocmem.cli" in graph["assocmem.__main__"]
    assert sum(len(t) for t in graph.values()) > 100


# ---------------------------------------------------------------------------------------------------------------
# The checker catches what it must: a planted bad import and planted cycles, in a small package under tmp_path


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "assocmem"
    for rel, text in {"__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            init = root / parent / "__init__.py"
            if not init.exists():
                init.write_text("")
        path.write_text(text)
    return root


def test_checker_accepts_a_clean_package(tmp_path):
    root = _package(
        tmp_path,
        {
            "__init__.py": "from assocmem.cli import main\nfrom assocmem.network import Net\n",
            "network/__init__.py": "from assocmem.network.net import Net\n",
            "network/net.py": "import torch\nfrom ..checks import ok\nfrom . import layer\n",
            "network/layer.py": "from assocmem import checks\n",
            "checks.py": "import math\n",
            "cli/__init__.py": "def main():\n    from assocmem.network import Net\n",
        },
    )
    assert order_violations(root) == []
    assert cycles(root) == []
    graph = edges(root)
    assert graph["assocmem.network.net"] == {"assocmem.checks": 2, "assocmem.network.layer": 3}
    assert graph["assocmem.network.layer"] == {"assocmem.checks": 1}
    assert graph["assocmem.cli"] == {"assocmem.network": 2}


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"network/net.py": "def f():\n    from assocmem.dynamics import relax\n"}, "network/net.py:2"),
        ({"network/net.py": "from ..cli import main\n"}, "network/net.py:1"),
        ({"network/net.py": "from assocmem import relax\n"}, "the package face"),
        ({"nn/layer.py": "from assocmem.classifier.model import Model\n"}, "independent siblings"),
        ({"models/a.py": "import assocmem.engines.binary.dam\n"}, "models/a.py:1 imports assocmem.engines"),
        ({"tools/a.py": "x = 1\n"}, "no level"),
    ],
    ids=["inside-a-function", "relative", "the-face", "siblings", "dotted-import", "unknown-part"],
)
def test_checker_catches_a_planted_bad_import(tmp_path, files, expected):
    planted = {"dynamics/__init__.py": "relax = 1\n", "engines/binary/dam.py": "", "cli/__init__.py": ""}
    root = _package(tmp_path, {**planted, "classifier/model.py": "", **files})
    found = order_violations(root)
    assert found and all(expected in v for v in found), found


@pytest.mark.parametrize(
    ("files", "cycle"),
    [
        (  # two modules, one import inside a function, one relative
            {
                "network/a.py": "from assocmem.network import b\n",
                "network/b.py": "def f():\n    from . import a\n",
            },
            ["assocmem.network.a", "assocmem.network.b"],
        ),
        (  # network/__init__ re-exports a, and a imports a name from network
            {
                "network/__init__.py": "from .a import A\nfrom .b import B\n",
                "network/a.py": "from assocmem.network import B\nA = 1\n",
                "network/b.py": "B = 2\n",
            },
            ["assocmem.network", "assocmem.network.a"],
        ),
        (  # importing network.b from dynamics first runs network/__init__, which imports dynamics
            {
                "network/__init__.py": "from assocmem.dynamics import relax\n",
                "network/b.py": "",
                "dynamics/__init__.py": "from assocmem.network.b import x\nrelax = 1\n",
            },
            ["assocmem.dynamics", "assocmem.network"],
        ),
    ],
    ids=["two-modules", "through-a-package-init", "through-an-implicit-parent"],
)
def test_checker_catches_a_planted_cycle(tmp_path, files, cycle):
    root = _package(tmp_path, files)
    assert cycles(root) == [cycle]


def test_import_assocmem_makes_its_subpackages_available_as_torch_does_torch_nn():
    """``import assocmem`` alone gives ``assocmem.nn``, ``assocmem.engines`` and ``assocmem.models`` (a fresh
    interpreter, so no other test's import can make it pass), without importing numba or matplotlib."""
    script = (
        "import sys, assocmem as am\n"
        "assert am.nn.Hopfield and am.engines.retrieve and am.models.model_b and am.lagrangians.Tanh\n"
        "assert 'numba' not in sys.modules and 'matplotlib' not in sys.modules, 'heavy imports at import time'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
