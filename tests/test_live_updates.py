"""Live figure updates that plotly.js accepts: every message a FigureWidget of an explorer sends on
a control change is replayed here with plotly.js's rules (a relayout / restyle may not set an
attribute and one of its parents at once: "cannot set shapes.1.x0 and a parent attribute
simultaneously"), and the figure the replay builds must equal the Python figure after every step
of a tour over the controls. No browser: tests/test_browser_tour.py checks the same in Chromium."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import plotly.graph_objects as go
from plotly.basedatatypes import Undefined
import pytest

from attnviz.plots import FigureParts
from attnviz.widgets import PatternExplorer, apply_parts
from attnviz.widgets.live_figure import LiveFigure

_MSGS = ["_py2js_update", "_py2js_relayout", "_py2js_restyle", "_py2js_addTraces", "_py2js_deleteTraces"]


def _path(key: str) -> list:
    """"shapes.1.x0" / "shapes[1].x0" -> ["shapes", 1, "x0"]."""
    return [int(p) if p.isdigit() else p for p in re.split(r"[.\[\]]+", key) if p]


def _check_no_parent_and_child(keys) -> None:
    paths = [tuple(_path(k)) for k in keys]
    for a in paths:
        for b in paths:
            if a != b and b[:len(a)] == a:
                raise AssertionError(f"cannot set {'.'.join(map(str, b))} and a parent attribute simultaneously")


def _set(obj, path, value):
    for i, p in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(obj, list):
            while len(obj) <= p:
                obj.append({})
            obj = obj[p]
        else:
            if obj.get(p) is None:
                obj[p] = [] if isinstance(nxt, int) else {}
            obj = obj[p]
    last = path[-1]
    if isinstance(obj, list):
        while len(obj) <= last:
            obj.append({})
    if value is None:
        if isinstance(obj, dict):
            obj.pop(last, None)
        else:
            obj[last] = {}
    else:
        obj[last] = copy.deepcopy(value)


def _plain(v):
    """Values as plotly.js holds them (arrays as nested lists, tuples as lists)."""
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _json(v) -> str:
    """Canonical text of a value (NaN equals NaN, as in the browser's copy)."""
    return json.dumps(v, sort_keys=True, default=str)


class PlotlyJsReplica:
    """The browser's copy of one FigureWidget, built from the messages the widget sends."""

    def __init__(self, fig: go.FigureWidget):
        self.data = [_plain(t.to_plotly_json()) for t in fig.data]
        self.layout = _plain(fig.layout.to_plotly_json())
        self.errors: list[str] = []
        fig.observe(self._on, names=_MSGS)

    def _relayout(self, data: dict):
        _check_no_parent_and_child(data)
        for k, v in data.items():
            _set(self.layout, _path(k), _plain(v))

    def _restyle(self, data: dict, traces):
        _check_no_parent_and_child(data)
        for k, values in data.items():
            for j, i in enumerate(traces):
                v = values[j % len(values)] if isinstance(values, list) else values
                if v is not Undefined:          # this trace keeps its value
                    _set(self.data[i], _path(k), _plain(v))

    def _on(self, change):
        msg = change["new"]
        if msg is None:
            return
        try:
            name = change["name"]
            if name == "_py2js_update":
                self._restyle(msg.get("style_data") or {}, msg["style_traces"])
                self._relayout(msg.get("layout_data") or {})
            elif name == "_py2js_relayout":
                self._relayout(msg["relayout_data"])
            elif name == "_py2js_restyle":
                self._restyle(msg["restyle_data"], msg["restyle_traces"])
            elif name == "_py2js_addTraces":
                self.data += [_plain(t) for t in msg["trace_data"]]
            elif name == "_py2js_deleteTraces":
                for i in sorted(msg["delete_inds"], reverse=True):
                    del self.data[i]
        except AssertionError as exc:
            self.errors.append(str(exc))

    def assert_equals(self, fig: go.FigureWidget, step: str):
        assert not self.errors, f"{step}: {self.errors}"
        want_layout = _plain(fig.layout.to_plotly_json())
        for key in ("shapes", "annotations", "title"):
            assert self.layout.get(key, [] if key != "title" else {}) == want_layout.get(key, [] if key != "title" else {}), \
                f"{step}: layout.{key} differs"
        for k in want_layout:
            if k != "template":
                assert _plain(self.layout.get(k)) == want_layout[k], f"{step}: layout.{k} differs"
        assert len(self.data) == len(fig.data), step
        for i, t in enumerate(fig.data):
            want = _plain(t.to_plotly_json())
            got = {k: v for k, v in self.data[i].items() if k in want or v not in (None, {}, [])}
            assert _json({k: v for k, v in got.items() if k != "uid"}) == _json({k: v for k, v in want.items() if k != "uid"}), \
                f"{step}: trace {i} differs"


def test_shapes_that_grow_or_shrink_are_replaced_whole():
    """The fault of issue 18: 1 shape -> 3 shapes sent "shapes" and "shapes.1.x0" at once, and
    3 -> 1 left two stray shapes (plotly's merge wraps the new list around the old one)."""
    fig = LiveFigure(go.Figure(go.Scatter(x=[0, 1], y=[0, 1])))
    replica = PlotlyJsReplica(fig)
    line = lambda x, c: dict(type="line", x0=x, x1=x, y0=0, y1=1, line=dict(color=c))
    for shapes in ([line(0, "red")], [line(0, "red"), line(0.5, "blue"), line(1, "green")],
                   [line(0.2, "black")], [], [line(0.3, "red"), line(0.4, "red")]):
        apply_parts(fig, FigureParts(traces=[go.Scatter(x=[0, 1], y=[0, len(shapes)])],
                                     layout={"title": {"text": f"{len(shapes)} shapes"}, "shapes": shapes}))
        assert [s.x0 for s in fig.layout.shapes] == [s["x0"] for s in shapes]
        assert [s.line.color for s in fig.layout.shapes] == [s["line"]["color"] for s in shapes]
        replica.assert_equals(fig, f"{len(shapes)} shapes")
    # an array of objects given before and left out now is emptied
    apply_parts(fig, FigureParts(traces=[go.Scatter(x=[0, 1], y=[0, 1])], layout={"title": {"text": "none"}}))
    assert fig.layout.shapes == ()
    replica.assert_equals(fig, "shapes left out")
    # a plain figure (exports) takes the same parts
    plain = go.Figure()
    apply_parts(plain, FigureParts(traces=[go.Scatter(y=[1])], layout={"shapes": [line(1, "red"), line(2, "red")]}))
    apply_parts(plain, FigureParts(traces=[go.Scatter(y=[1])], layout={"shapes": [line(3, "red")]}))
    assert [s.x0 for s in plain.layout.shapes] == [3]


PATTERN_TOUR = [
    dict(placement="scattered"), dict(text_len=16000), dict(placement="infix", text_len=1000),
    dict(at=700), dict(placement="suffix"), dict(placement="prefix"), dict(causal=True), dict(causal=False),
    dict(dilation=2), dict(dilation=1), dict(random_blocks=2), dict(block_size=32), dict(seed=3),
    dict(random_blocks=0), dict(global_prompt=True), dict(global_positions="0"), dict(windows="8,8,16,16,32,64"),
    dict(layer=5), dict(windows=""), dict(num_layers=3), dict(window=None), dict(window=64), dict(n_tokens=4),
    dict(placement="scattered", every=50), dict(text_len=16000), dict(placement="prefix", text_len=1000),
]


def test_pattern_explorer_tour_sends_only_updates_plotly_js_accepts():
    ex = PatternExplorer()
    replicas = {name: PlotlyJsReplica(f) for name, f in ex.figures.items()}
    for i, step in enumerate(PATTERN_TOUR):
        ex.set(**step)
        assert ex.error is None, (step, ex.error)
        for name, r in replicas.items():
            r.assert_equals(ex.figures[name], f"step {i} {step} ({name})")
        fresh = PatternExplorer(**{k: (None if v == "full" else v) for k, v in ex.settings().__dict__.items()})
        for name, f in ex.figures.items():   # the live figure equals a freshly built one
            assert _plain(f.layout.shapes) == _plain(fresh.figures[name].layout.shapes), (step, name)
            assert f.layout.title.text == fresh.figures[name].layout.title.text, (step, name)


@pytest.mark.parametrize("size", [None])
def test_influence_explorer_placements_clear_old_shapes(size, tmp_path):
    from attnviz.models import tiny_model
    from attnviz.widgets import InfluenceExplorer

    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from _prompt_fixtures import tiny_tokenizer

    tok = tiny_tokenizer(tmp_path)
    model = tiny_model("bert", num_hidden_layers=3).eval()
    ex = InfluenceExplorer(model=model, tokenizer=tok, text="the film was very good and the plot was fine")
    replicas = {name: PlotlyJsReplica(f) for name, f in ex.figures.items()}
    for step in [dict(placement="scattered"), dict(placement="infix", at=3), dict(placement="suffix"),
                 dict(placement="prefix", n_tokens=2), dict(global_prompt=True), dict(window=None), dict(layer=2)]:
        ex.set(**step)
        assert ex.error is None, (step, ex.error)
        for name, r in replicas.items():
            r.assert_equals(ex.figures[name], f"{step} ({name})")
        fresh = InfluenceExplorer(model=model, tokenizer=tok, **{k: v for k, v in ex.settings().__dict__.items()})
        for name, f in ex.figures.items():
            assert _plain(f.layout.shapes) == _plain(fresh.figures[name].layout.shapes), (step, name)


def test_infix_starts_in_the_middle_of_the_text_until_at_is_typed():
    """Issue 18: "infix" with at=0 drew the same as prefix. Untouched, ``at`` follows the middle."""
    ex = PatternExplorer(text_len=1000, n_tokens=4)
    ex.set(placement="infix")
    assert ex.controls["at"].value == 500 and ex.result.layout.prompt_positions == (501, 502, 503, 504)
    ex.set(text_len=300)
    assert ex.controls["at"].value == 150 and ex.result.layout.prompt_positions[0] == 151
    ex.controls["at"].value = 10                     # typed by someone: kept from now on
    ex.set(text_len=500)
    assert ex.controls["at"].value == 10 and ex.result.layout.prompt_positions[0] == 11
    assert PatternExplorer(placement="infix", at=7, text_len=100).result.layout.prompt_positions[0] == 8


def test_status_does_not_claim_an_update_while_an_error_shows():
    ex = PatternExplorer()
    assert "updated in" in ex.status.value or "structural" in ex.status.value
    ex.set(windows="33")
    assert ex.error and "must be even" in ex.message.value
    assert "updated in" not in ex.status.value and "not updated" in ex.status.value
    ex.set(windows="")
    assert ex.error is None and "updated in" in ex.status.value
