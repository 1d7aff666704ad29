"""Figures that update in place: only what changed travels to the browser, compactly.

:func:`apply_parts` puts a :class:`attnviz.plots.FigureParts` (traces in a fixed order + layout)
into a figure, sending only the properties that differ from the parts applied last, in updates
plotly.js accepts; :class:`LiveFigure` is a ``go.FigureWidget`` whose messages carry numeric
arrays as binary buffers (one per heatmap row) instead of nested lists. Both lean on plotly's
internals (a trace's ``_props``, ``plotly.serializers``), kept here in one place; the explorers
(:mod:`attnviz.widgets`) only call them.
"""

from __future__ import annotations

import contextlib

import numpy as np
import plotly.graph_objects as go
from _plotly_utils.basevalidators import CompoundArrayValidator, CompoundValidator
from plotly.basedatatypes import BaseLayoutType
from plotly.serializers import _js_to_py, _py_to_js
from traitlets import Dict, List

from ..plots import FigureParts

__all__ = ["LiveFigure", "apply_parts"]


def _same(a, b) -> bool:
    """Deep equality of plotly property values (numpy arrays compared by shape, dtype and values)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and a.dtype == b.dtype and np.array_equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:  # pragma: no cover - exotic values: treat as changed
        return False


def _changed_props(old: dict, new: dict, keep: set = frozenset()) -> dict:
    """Properties of ``new`` that differ from ``old``, plus ``None`` for those only ``old`` has."""
    out = {k: v for k, v in new.items() if k not in keep and not _same(old.get(k), v)}
    out.update({k: None for k in old.keys() - new.keys() - keep})
    return out


def _props_of(trace) -> dict:
    """The properties set on a trace, as a dict. Plotly keeps them in ``_props``, which its
    ``to_plotly_json`` deep-copies (every hover string of a 200 x 200 heatmap, on every redraw);
    the parts' traces are never changed afterwards, so a shallow copy is enough."""
    props = getattr(trace, "_props", None)
    return dict(props) if isinstance(props, dict) else trace.to_plotly_json()


def _set_layout(obj, new: dict, old: dict) -> None:
    """Merge the layout properties ``new`` into the plotly object ``obj`` (a layout, or a part of
    one such as an axis), sending only what differs from ``old`` (the parts applied last time).

    Nested objects (``title``, ``xaxis3``) are merged leaf by leaf, as ``layout.update`` does, but
    arrays of objects (``shapes``, ``annotations``, ``sliders``, ...) are always replaced whole:
    plotly's own ``update`` merges them element by element and then appends or wraps around,
    which sends ``shapes`` and ``shapes.1.x0`` in one relayout (plotly.js rejects that: "cannot
    set shapes.1.x0 and a parent attribute simultaneously") and leaves stray old shapes when the
    number shrinks. Arrays of objects that were in ``old`` but not in ``new`` are emptied."""
    for key, value in new.items():
        before = old.get(key) if isinstance(old, dict) else None
        if _same(before, value):
            continue
        if key not in obj and isinstance(obj, BaseLayoutType) and obj._subplot_re_match(key):
            obj[key] = {}                      # e.g. xaxis4, not yet in the figure
        validator = obj._get_prop_validator(key)
        if isinstance(validator, CompoundValidator) and isinstance(value, dict):
            _set_layout(obj[key], value, before if isinstance(before, dict) else {})
        elif isinstance(validator, CompoundArrayValidator):
            obj[key] = tuple(value or ())
        else:
            obj[key] = value
    if isinstance(old, dict):
        for key in old.keys() - new.keys():
            if isinstance(obj._get_prop_validator(key), CompoundArrayValidator):
                obj[key] = ()


def apply_parts(fig: go.Figure, parts: FigureParts) -> None:
    """Put ``parts`` (traces in a fixed order + layout) into a figure, in place, in one batch:
    trace ``i`` takes the properties of ``parts.traces[i]`` that changed since the last parts
    applied (properties the new trace lacks are cleared), then the layout is merged
    (:func:`_set_layout`: arrays of shapes / annotations replaced whole). Only what changed
    travels to the browser, in updates plotly.js accepts (never a parent and one of its children
    in one message). Traces are replaced wholesale when their number or types differ (e.g. a
    segment appears or disappears). Works on a plain ``go.Figure`` too (exports)."""
    new = [_props_of(t) for t in parts.traces]
    before = getattr(fig, "_attnviz_applied", None)
    if before is None or len(before[0]) != len(new):
        before = ([t.to_plotly_json() for t in fig.data], {})
    batch = fig.batch_update() if isinstance(fig, go.FigureWidget) else contextlib.nullcontext()
    if len(fig.data) != len(new) or any(a.type != b.type for a, b in zip(fig.data, parts.traces)):
        fig.data = ()
        fig.add_traces(parts.traces)
        with batch:
            _set_layout(fig.layout, parts.layout, before[1])
    else:
        with batch:
            for trace, old, props in zip(fig.data, before[0], new):
                diff = _changed_props(old, props, keep={"type", "uid"})
                if diff:
                    trace.update(diff, overwrite=True)
            _set_layout(fig.layout, parts.layout, before[1])
    fig._attnviz_applied = (new, parts.layout)


def _numeric_1d(row: np.ndarray) -> np.ndarray:
    """A contiguous 1-D array in a dtype plotly's widget sends as a binary buffer (not int64)."""
    if row.dtype.kind in "iu" and row.dtype.itemsize == 8:
        lo, hi = (int(row.min()), int(row.max())) if row.size else (0, 0)
        row = row.astype(np.int32) if -2**31 <= lo and hi < 2**31 else row.astype(np.float64)
    elif row.dtype.kind == "b":
        row = row.astype(np.uint8)
    return np.ascontiguousarray(row)


def _to_js(value, manager):
    """plotly's widget serializer, made fast for the arrays of heatmaps: a 1-D numeric array goes
    as one binary buffer (as plotly does), a 2-D one as one binary buffer per row (plotly would
    make nested lists of every number: 0.5 s for a 200 x 200 heatmap and its hover data), and
    higher dimensions as nested lists, turned into lists once and not walked again.

    (plotly.js's typed-array specs would be smaller still, but the widget's JavaScript echoes
    decoded 2-D arrays back to Python with the whole buffer per row, which breaks the websocket.)"""
    if isinstance(value, dict):
        return {k: _to_js(v, manager) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_js(v, manager) for v in value]
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf" and value.ndim in (1, 2) and value.size:
            if value.ndim == 1:
                return _py_to_js(_numeric_1d(value), manager)
            return [_py_to_js(_numeric_1d(row), manager) for row in value]
        return value.tolist()
    return _py_to_js(value, manager)


_SERIALIZERS = {"to_json": _to_js, "from_json": _js_to_py}


class LiveFigure(go.FigureWidget):
    """A ``go.FigureWidget`` whose updates send numeric arrays compactly (see :func:`_to_js`);
    everything else is plotly's FigureWidget."""

    _widget_layout = Dict().tag(sync=True, **_SERIALIZERS)
    _widget_data = List().tag(sync=True, **_SERIALIZERS)
    _py2js_addTraces = Dict(allow_none=True).tag(sync=True, **_SERIALIZERS)
    _py2js_restyle = Dict(allow_none=True).tag(sync=True, **_SERIALIZERS)
    _py2js_relayout = Dict(allow_none=True).tag(sync=True, **_SERIALIZERS)
    _py2js_update = Dict(allow_none=True).tag(sync=True, **_SERIALIZERS)
