"""ipywidgets explorers: controls wired to one pure library function and plotly figures.

Each explorer is ``controls`` (ipywidgets) → a frozen settings object → *one pure function* of the
library → ``figures`` (plotly ``FigureWidget`` s) updated in place, with bad values shown as a
message in the UI and an offline HTML export. The shared wiring is :class:`Explorer`
(``attnviz/widgets/_base.py``); each explorer is one module:

* :class:`PatternExplorer` (``pattern.py``): windows, globals, placement → mask and spread views
  (:func:`pattern_view`, structural: no dense masks).

More explorers (influence maps, a training monitor, costs) follow the same shape: a module here
with a settings dataclass, its pure function and an :class:`Explorer` subclass, plus one function
in :mod:`attnviz.explore` that builds and shows it.
"""

from ._base import Explorer, apply_parts, parse_ints
from .pattern import PatternExplorer, PatternSettings, PatternView, pattern_view

__all__ = ["Explorer", "apply_parts", "parse_ints", "PatternExplorer", "PatternSettings", "PatternView",
           "pattern_view"]
