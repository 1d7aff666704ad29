"""What attention costs: analytic FLOPs and memory of a pattern, and a real measurement to check them.

Why: a sliding window with a few global tokens is chosen because full attention stops fitting.
This package says, for one :class:`~attnviz.AttentionPattern` and model shape, how many query-key
pairs are allowed, how many a given implementation actually computes, and how many bytes it
materialises, so a view can show where dense attention stops fitting a budget, and holds the model
to a real run. One concept per module:

* :mod:`~attnviz.costs.pairs` — allowed pairs from the pattern's structure (:func:`keys_per_query`,
  :func:`allowed_pairs`, :func:`block_pairs`), never building ``(L, L)`` masks.
* :mod:`~attnviz.costs.model` — the analytic memory / FLOP model per implementation
  (:func:`attention_cost`, :func:`capture_cost`); its docstring holds the formulas.
* :mod:`~attnviz.costs.curves` — cost over lengths for the cost explorer (:func:`cost_curves`) and
  where a budget stops fitting (:func:`max_length_within`).
* :mod:`~attnviz.costs.measurement` — a real run (:func:`measure`), and :func:`measure_isolated`,
  which runs it in a fresh process as ``python -m attnviz.costs.measure`` (JSON in and out).
"""

from .curves import DEFAULT_FLOPS_PER_SECOND, CostCurves, cost_curves, curve_lengths, max_length_within
from .measurement import Measurement, measure, measure_isolated
from .model import (DTYPES, IMPLEMENTATIONS, MEASURABLE, AttentionCost, CaptureCost, LayerCost, attention_cost,
                    capture_cost, longformer_padded_length)
from .pairs import allowed_pairs, as_layout, block_pairs, keys_per_query

__all__ = [
    "DEFAULT_FLOPS_PER_SECOND", "DTYPES", "IMPLEMENTATIONS", "MEASURABLE", "AttentionCost", "CaptureCost", "CostCurves",
    "LayerCost", "Measurement", "allowed_pairs", "as_layout", "attention_cost", "block_pairs", "capture_cost",
    "cost_curves", "curve_lengths", "keys_per_query", "longformer_padded_length", "max_length_within", "measure",
    "measure_isolated",
]
