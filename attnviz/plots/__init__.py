"""Plotly figures, one module per view. Each takes results and returns a ``go.Figure``.

* :func:`mask_figure` — who may attend whom in one layer, and why (``plots/masks.py``)
* :func:`spread_figure` — how far the prompt reaches, layer by layer (``plots/spread.py``)
* :func:`save_html` — one self-contained offline page from figures (``plots/html.py``)
* :func:`influence_figure`, :func:`influence_distance_figure`, :func:`attribution_figure` — measured
  prompt influence (``plots/influence.py``)
* :func:`attention_figure` — one layer's captured attention, prompt and segments marked (``plots/attention.py``)
* :func:`training_figure` — loss and accuracy curves of a run (``plots/training.py``)
* :func:`runs_figure` — several runs compared: smoothed loss and accuracy, held-out points
* :func:`cost_figure` — attention memory and time vs length, dense against windowed (``plots/costs.py``)
* :func:`grid`, :func:`mask_grid`, :func:`spread_grid` — small multiples, one shared colour scale (``plots/grid.py``)
* :func:`accuracy_figure` (95 % Wilson intervals), :func:`reach_lines_figure` — result charts (``plots/results.py``)
* :func:`head_view`, :func:`model_view` — bertviz's views, working offline (``plots/bertviz_view.py``)
"""

from .html import save_html
from .masks import mask_figure
from .spread import spread_figure
from .bertviz_view import BertvizView, head_view, model_view
from .influence import attribution_figure, influence_distance_figure, influence_figure
from .costs import cost_figure
from .attention import attention_figure
from .training import runs_figure, training_figure
from .grid import grid, mask_grid, spread_grid
from .results import accuracy_figure, reach_lines_figure, wilson_interval
from ._style import NOTEBOOK_WIDTH, TEMPLATE, FigureParts, step_slider   # the explorers' live figure parts

__all__ = ["mask_figure", "spread_figure", "save_html", "BertvizView", "head_view", "model_view",
           "influence_figure", "influence_distance_figure", "attribution_figure", "attention_figure",
           "training_figure", "runs_figure", "cost_figure", "grid", "mask_grid", "spread_grid", "accuracy_figure",
           "reach_lines_figure", "wilson_interval", "TEMPLATE", "NOTEBOOK_WIDTH", "FigureParts", "step_slider"]
