"""One call shows each explorer in a notebook: ``attnviz.explore.pattern(window=64)``.

Each function builds an explorer from :mod:`attnviz.widgets` with the given starting values,
displays it, and returns it (to read ``.result``, call ``.set(...)`` or ``.export_html(path)``).
Displaying the returned object again in the same cell is skipped, so both
``attnviz.explore.pattern()`` and ``ex = attnviz.explore.pattern()`` show it exactly once.
"""

from __future__ import annotations

from .widgets import CostExplorer, InfluenceExplorer, PatternExplorer, TrainingMonitor

__all__ = ["pattern", "influence", "training", "costs"]


def pattern(**initial) -> PatternExplorer:
    """Show a :class:`attnviz.widgets.PatternExplorer`: window, per-layer windows, global positions,
    global prompt, placement, dilation, random blocks, causal, text length, layers → the spread and
    mask views redraw. Keyword arguments are :class:`attnviz.widgets.PatternSettings` fields, e.g.
    ``pattern(window=64, global_prompt=True, text_len=4000, num_layers=12)``."""
    return PatternExplorer(**initial).show()


def influence(model=None, tokenizer=None, **initial) -> InfluenceExplorer:
    """Show a :class:`attnviz.widgets.InfluenceExplorer`: a model (default the embedded MiniLM), a
    prompt (``prompt="text"`` / ``"random"`` init, or a trained run / checkpoint folder) and a text;
    window, global prompt, placement and tokens → the attention heatmap (layer / head) and the
    influence map redraw. Keyword arguments are :class:`attnviz.widgets.InfluenceSettings` fields,
    e.g. ``influence(prompt="runs/bbc-w32", window=32, method="rollout")``."""
    return InfluenceExplorer(model, tokenizer, **initial).show()


def training(model, train_data, eval_data=None, **kwargs) -> TrainingMonitor:
    """Show a :class:`attnviz.widgets.TrainingMonitor` and run
    ``train_soft_prompt(model, train_data, eval_data, callback=monitor.callback, **kwargs)`` in a
    background thread (the notebook stays live). Stop ends the run at the next step, with a
    checkpoint when ``out_dir=`` is given; ``monitor.wait()`` returns the ``TrainResult``. To watch
    your own call instead: ``m = TrainingMonitor().show()`` and ``callback=m.callback``."""
    from .prompts.training import TrainConfig

    steps = kwargs.get("steps") or getattr(kwargs.get("config") or TrainConfig(), "steps")
    return TrainingMonitor(steps=steps).show().start(model, train_data, eval_data, **kwargs)


def costs(**initial) -> CostExplorer:
    """Show a :class:`attnviz.widgets.CostExplorer`: length (log slider up to 32k), window, global
    tokens, random blocks, layers, heads, batch, dtype, budget → memory and time vs length for dense
    and windowed attention; "measure" overlays real runs. Keyword arguments are
    :class:`attnviz.widgets.CostSettings` fields, e.g. ``costs(window=512, budget_gib=24)``."""
    return CostExplorer(**initial).show()
