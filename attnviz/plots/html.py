"""One self-contained offline HTML page from one or more figures (plotly.js inlined)."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Iterable

import plotly.graph_objects as go
import plotly.io as pio

from ..files import atomic_write

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; max-width: 1100px; margin: 1.5em auto; padding: 0 1em; color: #222; }}
p.summary {{ font-size: 1.05em; line-height: 1.45; background: #f6f6f6; padding: 0.8em 1em; border-left: 4px solid #d62728; }}
.figure {{ margin: 1.5em 0; }}
</style>
</head>
<body>
<h1>{title}</h1>
{text}
{figures}
</body>
</html>
"""


def save_html(figs: go.Figure | Iterable[go.Figure], path: str | os.PathLike, title: str = "attnviz",
              text: str | None = None) -> Path:
    """Write one self-contained HTML file: ``title`` as heading, ``text`` as a paragraph, then the
    figures in order, with plotly.js inlined once (works offline, no CDN).

    The file is written to a temporary file in the same folder and renamed, so a reader never sees
    half a page. Returns the path written.
    """
    figs = [figs] if isinstance(figs, go.Figure) else list(figs)
    if not figs or not all(isinstance(f, go.Figure) for f in figs):
        raise TypeError(f"save_html needs a plotly Figure or a list of them, got {figs!r:.80}")
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"cannot write {path}: folder {path.parent} does not exist")
    parts = [
        '<div class="figure">'
        + pio.to_html(f, full_html=False, include_plotlyjs=(i == 0), include_mathjax=False,
                      config={"displaylogo": False})
        + "</div>"
        for i, f in enumerate(figs)
    ]
    page = _PAGE.format(title=html.escape(title), figures="\n".join(parts),
                        text=f'<p class="summary">{html.escape(text)}</p>' if text else "")
    atomic_write(path, page.encode("utf-8"))
    return path
