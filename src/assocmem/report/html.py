"""Self-contained HTML pages: one file with its images embedded as base64 ``data:`` URIs, readable offline.

A page needs nothing beside itself: no scripts, no fonts or style sheets from the network, every figure a PNG
inside the file. Text passes through :func:`escape`; the helpers return HTML fragments to concatenate.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Sequence
from pathlib import Path

from assocmem.files import write_text

STYLE = """
:root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --good: #15803d; --bad: #b91c1c; --panel: #f8fafc; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1260px; padding: 24px 24px 48px; color: var(--ink);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
h1 { font-size: 30px; margin: 0 0 6px; }
h2 { font-size: 22px; margin: 36px 0 6px; padding-top: 12px; border-top: 1px solid var(--line); }
p { margin: 6px 0 10px; max-width: 980px; }
.lead { font-size: 16px; }
.muted { color: var(--muted); font-size: 13px; }
.energy { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; background: var(--panel);
          border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; display: inline-block; }
table { border-collapse: collapse; margin: 10px 0; font-size: 14px; }
th, td { padding: 4px 12px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
th { border-bottom: 2px solid var(--ink); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.good { color: var(--good); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
.row { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
figure { margin: 8px 0; display: table; }  /* the caption wraps to the image's width */
figcaption { display: table-caption; caption-side: bottom; color: var(--muted); font-size: 13px; padding-top: 4px; }
img { display: block; max-width: 100%; height: auto; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; }
"""


def escape(text: object) -> str:
    """``text`` as HTML text (``&``, ``<``, ``>`` and quotes escaped)."""
    return html.escape(str(text), quote=True)


def math(formula: str) -> str:
    """A formula in plain text as HTML: ``x_{ij}`` and ``x^{n-1}`` become subscripts and superscripts.

    Example: ``math("T_{ij} = Σ_μ ξ_{μi} ξ_{μj}")``.
    """
    text = escape(formula)
    text = re.sub(r"_\{([^{}]*)\}", r"<sub>\1</sub>", text)
    text = re.sub(r"\^\{([^{}]*)\}", r"<sup>\1</sup>", text)
    return re.sub(r"_([A-Za-zα-ωΑ-Ω0-9])", r"<sub>\1</sub>", text)


def data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI holding the PNG bytes ``png``."""
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("data_uri: expected the bytes of a PNG file (they start with the PNG signature)")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def image(png: bytes, alt: str, caption: str | None = None) -> str:
    """An embedded PNG as a ``<figure>`` with its ``alt`` text and an optional caption (plain text)."""
    fig = f'<figure><img src="{data_uri(png)}" alt="{escape(alt)}">'
    if caption:
        fig += f"<figcaption>{escape(caption)}</figcaption>"
    return fig + "</figure>"


def table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """A table from plain-text ``head`` and cells that are already HTML; columns in ``numeric`` align right."""
    cls = [' class="num"' if i in numeric else "" for i in range(len(head))]
    out = ["<table><thead><tr>", *(f"<th{c}>{escape(h)}</th>" for h, c in zip(head, cls, strict=True))]
    out.append("</tr></thead><tbody>")
    for row in rows:
        if len(row) != len(head):
            raise ValueError(f"table: every row needs {len(head)} cells, got {len(row)}")
        out.append(
            "<tr>" + "".join(f"<td{c}>{cell}</td>" for cell, c in zip(row, cls, strict=True)) + "</tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def page(title: str, body: str) -> str:
    """A complete HTML5 document with the report style; ``body`` is HTML."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def write_page(dest: str | os.PathLike, document: str) -> Path:
    """Write the HTML ``document`` to ``dest`` atomically; returns the path."""
    return write_text(dest, document)
