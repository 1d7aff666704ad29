"""ipywidgets explorers: controls wired to one pure library function and plotly figures.

Each explorer is ``controls`` (ipywidgets) → a frozen settings object → *one pure function* of the
library → ``figures`` (plotly ``FigureWidget`` s) updated in place, with bad values shown as a
message in the UI and an offline HTML export. The shared wiring is :class:`Explorer`
(``attnviz/widgets/_base.py``), figures that update in place are ``live_figure.py``
(:func:`apply_parts`, ``LiveFigure``); each explorer is one module:

* :class:`PatternExplorer` (``pattern.py``): windows, globals, placement → mask and spread views
  (:func:`pattern_view`, structural: no dense masks).
* :class:`CostExplorer` (``costs.py``): window, globals, random blocks, model shape, dtype, budget →
  memory and time vs length, dense against windowed (:func:`cost_view`), measured points on demand.
* :class:`InfluenceExplorer` (``influence.py``): a model, a prompt (trained checkpoint or init) and a
  text; pattern and placement → attention heatmap and measured influence map (:func:`influence_view`).
* :class:`TrainingMonitor` (``training.py``): live loss / accuracy of ``train_soft_prompt`` (its
  ``callback=``, or a background thread) with a Stop button that leaves a usable checkpoint.

More explorers (influence maps, a training monitor, costs) follow the same shape: a module here
with a settings dataclass, its pure function and an :class:`Explorer` subclass, plus one function
in :mod:`attnviz.explore` that builds and shows it.
"""

from ._base import Explorer, parse_ints
from .live_figure import apply_parts
from .pattern import PatternExplorer, PatternSettings, PatternView, pattern_view
from .costs import CostExplorer, CostSettings, CostView, cost_view
from .influence import InfluenceExplorer, InfluenceSettings, InfluenceView, influence_view
from .training import TrainingMonitor

__all__ = ["Explorer", "apply_parts", "parse_ints", "PatternExplorer", "PatternSettings", "PatternView",
           "pattern_view", "InfluenceExplorer", "InfluenceSettings", "InfluenceView", "influence_view",
           "TrainingMonitor", "CostExplorer", "CostSettings", "CostView", "cost_view"]
