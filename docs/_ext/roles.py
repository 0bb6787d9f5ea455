"""A griffe extension for the API pages: the docstrings' Sphinx roles become cross-references.

The docstrings are prose with reST inline code and roles (``:class:`Network```, ``:func:`~assocmem.relax```).
mkdocstrings renders docstrings as Markdown, where a role would show as literal text. This extension rewrites
each role into an autorefs link to the object it names, resolved the way Python would from the docstring's own
scope (its members, imports and enclosing module). The link is optional: a name that is not on the API pages
(a private helper, the CLI, the report) stays inline code without a link.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|obj|exc):`(~?)\.?([\w.]+)`")


def _resolve(obj: griffe.Object, target: str, loader: griffe.GriffeLoader) -> str | None:
    """The full path ``target`` names when read inside ``obj``, or None when it names nothing griffe knows."""
    head, _, rest = target.partition(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        try:
            path = scope.resolve(head)
        except (griffe.NameResolutionError, AttributeError):
            scope = scope.parent
            continue
        return f"{path}.{rest}" if rest else path
    try:
        loader.modules_collection[target]
    except KeyError:
        return None
    return target


def _canonical(path: str, loader: griffe.GriffeLoader) -> str:
    """The path where the object is defined (an imported name is rendered, and linked, under that path too)."""
    try:
        obj = loader.modules_collection[path]
        obj = obj.final_target if obj.is_alias else obj
        name = path.rsplit(".", 1)[-1]
        if obj.is_module and name in obj.members:  # ``relax`` the function, not the module of the same name
            obj = obj.members[name]
            obj = obj.final_target if obj.is_alias else obj
        return obj.path
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return path


def _link(obj: griffe.Object, loader: griffe.GriffeLoader, match: re.Match) -> str:
    short, target = match.group(1), match.group(2)
    text = html.escape(target.rsplit(".", 1)[-1] if short else target)
    path = _resolve(obj, target, loader)
    if path is not None:
        path = _canonical(path, loader)
    else:
        return f"<code>{text}</code>"
    return f'<autoref identifier="{html.escape(path)}" optional><code>{text}</code></autoref>'


def _objects(obj: griffe.Object) -> Any:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)


class SphinxRoles(griffe.Extension):
    """Rewrite ``:role:`target``` in every docstring of the package into an (optional) autorefs link."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        for obj in _objects(pkg):
            if obj.docstring is not None:
                obj.docstring.value = ROLE.sub(lambda m, o=obj: _link(o, loader, m), obj.docstring.value)
