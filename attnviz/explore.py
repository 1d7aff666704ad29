"""One call shows each explorer in a notebook: ``attnviz.explore.pattern(window=64)``.

Each function builds an explorer from :mod:`attnviz.widgets` with the given starting values,
displays it, and returns it (to read ``.result``, call ``.set(...)`` or ``.export_html(path)``).
Displaying the returned object again in the same cell is skipped, so both
``attnviz.explore.pattern()`` and ``ex = attnviz.explore.pattern()`` show it exactly once.
"""

from __future__ import annotations

from .widgets import PatternExplorer

__all__ = ["pattern"]


def pattern(**initial) -> PatternExplorer:
    """Show a :class:`attnviz.widgets.PatternExplorer`: window, per-layer windows, global positions,
    global prompt, placement, dilation, random blocks, causal, text length, layers → the spread and
    mask views redraw. Keyword arguments are :class:`attnviz.widgets.PatternSettings` fields, e.g.
    ``pattern(window=64, global_prompt=True, text_len=4000, num_layers=12)``."""
    return PatternExplorer(**initial).show()
