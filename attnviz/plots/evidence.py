"""Figures of the evidence studies (issue #15): accuracies with their 95 % intervals, the
evidence-position curve, and what a trained prompt "says".

* :func:`interval_figure` — one bar per cell, the interval the row carries (``low`` / ``high``,
  from :func:`attnviz.stats.estimate`: a bootstrap over documents and seeds, or Wilson with one
  seed), the method named in the subtitle.
* :func:`position_figure` — accuracy (with intervals) and the prompt's measured influence on the
  readout ``[CLS]`` against where the document sits (0 = next to ``[CLS]``), one line per window ×
  global prompt (× placement): the window analogue of "Lost in the Middle".
* :func:`prompt_words_figure` — each prompt vector's nearest token and cosine at every checkpoint
  (:func:`attnviz.prompts.nearest.nearest_over_checkpoints`), its norm beside it.
* :func:`prompt_words_table` — one prompt (:func:`attnviz.prompts.nearest.nearest_tokens`) as a
  table: per vector its position, norm and nearest tokens with cosines (the influence explorer's view).

Rows are the cell rows of ``results.json`` (``key``, ``kind``, ``window``, ``global_prompt``,
``placement``, ``position``, ``accuracy``, ``low``, ``high``, ``interval``, ``influence_cls``).
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ._style import FONT, NOTEBOOK_WIDTH, OKABE_ITO, TEMPLATE, wrap_subtitle


def _titled(title: str, sub: str, width: int) -> str:
    """The title over a 15 px subtitle wrapped to the figure's width (``<sup>`` draws 12.6 px,
    under the house minimum of 14)."""
    return f"{title}<br><span style='font-size:15px'>{wrap_subtitle(sub, width)}</span>"


def _window(w) -> str:
    if w is None:
        return "full"
    if isinstance(w, (list, tuple)):
        return "w " + "-".join(str(x) for x in w)
    return f"w{w}"


def _arm(r: dict) -> str:
    if r["kind"] == "head_only":
        return "head only"
    return f"{r['placement']}, global {'on' if r['global_prompt'] else 'off'}"


def _method(rows) -> str:
    return "; ".join(sorted({r.get("interval") or "" for r in rows} - {""}))


def interval_figure(rows: list[dict], *, title: str = "Held-out accuracy (bars: 95 % interval)",
                    chance: float | None = None, width: int = NOTEBOOK_WIDTH) -> go.Figure:
    """Horizontal bars, one per cell (label: the cell's key), error bars from each row's ``low`` /
    ``high``; colour = placement and global prompt; ``chance`` as a dashed line."""
    labels = [r["key"] for r in rows]
    arms = list(dict.fromkeys(_arm(r) for r in rows))
    palette = {a: OKABE_ITO[i % len(OKABE_ITO)] for i, a in enumerate(arms)}
    fig = go.Figure()
    for arm in arms:
        sel = [r for r in rows if _arm(r) == arm]
        fig.add_bar(
            y=[r["key"] for r in sel], x=[r["accuracy"] for r in sel], orientation="h", name=arm,
            marker_color=palette[arm],
            error_x=dict(type="data", symmetric=False, array=[r["high"] - r["accuracy"] for r in sel],
                         arrayminus=[r["accuracy"] - r["low"] for r in sel], color="#333", thickness=1.5),
            customdata=[[r["low"], r["high"], len(r.get("seeds") or [1]), r.get("n_test")] for r in sel],
            hovertemplate="%{y}: %{x:.3f} (95 % %{customdata[0]:.3f}–%{customdata[1]:.3f}; "
                          "%{customdata[2]} seeds × %{customdata[3]} documents)<extra></extra>")
    if chance is not None:
        fig.add_vline(x=chance, line=dict(color="#555", dash="dash", width=1.5))
    fig.update_layout(
        template=TEMPLATE, font=FONT, width=width, height=200 + 30 * len(labels), barmode="overlay",
        title=dict(text=_titled(title, _method(rows) + ("" if chance is None else f" · dashed: chance {chance:.3f}"),
                                width), x=0.5, xanchor="center"),
        xaxis=dict(title_text="held-out accuracy", range=[0, 1.05], tickformat=".0%"),
        yaxis=dict(categoryorder="array", categoryarray=labels, autorange="reversed", automargin=True),
        legend=dict(orientation="h", x=0.5, xanchor="center", yref="container", y=0, yanchor="bottom"),
        margin=dict(l=70, r=20, t=100, b=110))
    return fig


def position_figure(rows: list[dict], *, title: str = "Where the window stops seeing: accuracy by evidence position",
                    width: int = NOTEBOOK_WIDTH) -> go.Figure:
    """Two panels against the document's position (0 = next to ``[CLS]``, 1 = after all the
    filler): held-out accuracy with 95 % intervals, and the trained prompt's mean ablation
    influence on ``[CLS]`` after the last layer (log axis; 0 is drawn at the panel's floor and
    named in the hover). One line per window × global prompt (× placement when the rows have
    several); colour = window, solid = global prompt on, dashed = off, dotted = the head alone. Lines are
    shifted by about 1 % of the axis apart, so error bars at one position stay readable."""
    rows = [r for r in rows if r.get("position") is not None]
    placements = {r["placement"] for r in rows if r["kind"] != "head_only"}
    def line_of(r):
        if r["kind"] == "head_only":
            return (_window(r["window"]), "head only", None)
        return (_window(r["window"]), f"global {'on' if r['global_prompt'] else 'off'}",
                r["placement"] if len(placements) > 1 else None)
    lines = list(dict.fromkeys(line_of(r) for r in rows))
    windows = list(dict.fromkeys(l[0] for l in lines))
    colour = {w: OKABE_ITO[i % len(OKABE_ITO)] for i, w in enumerate(windows)}
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("held-out accuracy", "prompt's influence on [CLS]"))
    infl = [r["influence_cls"] for r in rows if r.get("influence_cls")]
    floor = min(infl) / 3 if infl else 1e-6
    for i, ln in enumerate(lines):
        sel = sorted((r for r in rows if line_of(r) == ln), key=lambda r: r["position"])
        name = " ".join(x for x in ln if x)
        head = ln[1] == "head only"
        style = dict(color=colour[ln[0]], dash="dot" if head else ("solid" if ln[1] == "global on" else "dash"),
                     width=2 if head else 2.5)
        shift = (i - (len(lines) - 1) / 2) * 0.012          # lines side by side, so their error bars do not hide
        xs = [r["position"] + shift for r in sel]
        fig.add_scatter(x=xs, y=[r["accuracy"] for r in sel], mode="lines+markers", name=name, line=style,
                        legendgroup=name, row=1, col=1,
                        error_y=dict(type="data", symmetric=False, array=[r["high"] - r["accuracy"] for r in sel],
                                     arrayminus=[r["accuracy"] - r["low"] for r in sel], thickness=1.5),
                        customdata=[[r["low"], r["high"], r["key"]] for r in sel],
                        hovertemplate="%{customdata[2]}<br>accuracy %{y:.3f} (95 % %{customdata[0]:.3f}–"
                                      "%{customdata[1]:.3f})<extra></extra>")
        if head:
            continue
        vals = [r.get("influence_cls") for r in sel]
        fig.add_scatter(x=xs, y=[max(v, floor) if v is not None else None for v in vals], mode="lines+markers",
                        name=name, line=style, legendgroup=name, showlegend=False, row=1, col=2,
                        customdata=[[r["key"], f"{v:.3g}" if v else "0 (never reaches [CLS])"] for r, v in zip(sel, vals)],
                        hovertemplate="%{customdata[0]}<br>influence %{customdata[1]}<extra></extra>")
    ticks = sorted({r["position"] for r in rows})
    fig.update_xaxes(title_text="document position (0 = next to [CLS])", tickvals=ticks,
                     ticktext=[f"{t:.0%}" for t in ticks], range=[-0.05, 1.05])
    fig.update_yaxes(title_text="accuracy", range=[0, 1.05], tickformat=".0%", row=1, col=1)
    fig.update_yaxes(title_text="relative change of [CLS]", type="log", row=1, col=2)
    fig.update_layout(template=TEMPLATE, font=FONT, width=width, height=560,
                      title=dict(text=_titled(title, _method(rows), width), x=0.5, xanchor="center"),
                      legend=dict(orientation="h", x=0.5, xanchor="center", yref="container", y=0, yanchor="bottom"),
                      margin=dict(l=70, r=20, t=125, b=150))
    return fig


def prompt_words_figure(words: list, *, title: str = "What the prompt says: nearest token per prompt vector",
                        width: int = NOTEBOOK_WIDTH, max_columns: int = 6) -> go.Figure:
    """Heatmap, prompt vectors × checkpoints: colour = cosine to the nearest vocabulary token, text =
    that token (cut to 8 characters; the hover has it whole); right panel: each vector's norm at the
    last checkpoint beside the median norm of real token embeddings. ``words``:
    :class:`attnviz.prompts.nearest.PromptWords` per checkpoint; at most ``max_columns`` of them
    are drawn, evenly spaced, first and last kept."""
    if not words:
        raise ValueError("no checkpoints to draw; pass nearest_over_checkpoints(run_dir, ...)")
    if len(words) > max_columns:
        idx = sorted({round(i * (len(words) - 1) / (max_columns - 1)) for i in range(max_columns)})
        words = [words[i] for i in idx]
    steps = [str(w.step) for w in words]
    n = len(words[0].tokens)
    z = [[float(w.cosine[j, 0]) for w in words] for j in range(n)]
    full = [[w.tokens[j][0] for w in words] for j in range(n)]
    text = [[t if len(t) <= 8 else t[:7] + "…" for t in row] for row in full]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.78, 0.22], horizontal_spacing=0.06,
                        subplot_titles=("nearest token (colour: cosine)", "norm (last step)"))
    fig.add_heatmap(z=z, x=steps, y=list(range(n)), text=text, texttemplate="%{text}", textfont=dict(size=14),
                    customdata=full, colorscale="Blues", zmin=0, zmax=1,
                    colorbar=dict(title="cosine", orientation="h", x=0.39, xanchor="center", y=-0.3, yanchor="top",
                                  len=0.5, thickness=14),
                    hovertemplate="prompt %{y}, step %{x}: %{customdata} (cosine %{z:.2f})<extra></extra>", row=1, col=1)
    last = words[-1]
    fig.add_bar(x=[float(v) for v in last.norm], y=list(range(n)), orientation="h", marker_color=OKABE_ITO[0],
                showlegend=False, hovertemplate="prompt %{y}: norm %{x:.2f}<extra></extra>", row=1, col=2)
    fig.add_vline(x=last.embedding_norm, line=dict(color="#555", dash="dash"), row=1, col=2)
    fig.update_yaxes(autorange="reversed", title_text="prompt vector", dtick=1, row=1, col=1)
    fig.update_yaxes(autorange="reversed", showticklabels=False, row=1, col=2)
    fig.update_xaxes(title_text="training step", type="category", row=1, col=1)
    fig.update_xaxes(title_text="L2 norm", row=1, col=2)
    fig.update_layout(template=TEMPLATE, font=FONT, width=width, height=260 + 34 * n,
                      title=dict(text=_titled(title, f"dashed: median norm of real token embeddings "
                                                     f"({last.embedding_norm:.2f})", width), x=0.5, xanchor="center"),
                      margin=dict(l=70, r=20, t=110, b=150))
    return fig


def prompt_words_table(words, *, positions=None, k: int = 3, source: str | None = None, first=None,
                       first_step: int | None = None, width: int = NOTEBOOK_WIDTH) -> go.Figure:
    """One prompt's :class:`~attnviz.prompts.nearest.PromptWords` as a table, one row per prompt
    vector: its index, its position in the sequence (``positions``, e.g. ``layout.prompt_positions``;
    left out when None), its L2 norm and its ``k`` nearest vocabulary tokens with their cosines
    (nearest first). The subtitle names ``source`` and the median norm of real token embeddings,
    the scale to read the norms against. With ``first`` (the same prompt's
    :class:`~attnviz.prompts.nearest.PromptWords` at an earlier checkpoint, ``first_step``) a column
    shows where each vector started: its nearest token, cosine and norm then — how far training moved it.

    Spaces in the table are non-breaking: plotly.js wraps every table text that has a space by
    measuring it, and a figure first drawn before it is on screen (a widget in a notebook) measures
    nothing and leaves those columns blank (seen in JupyterLab)."""
    k = min(k, words.ids.shape[1])
    n = len(words.tokens)
    cols = {"vector": [str(j) for j in range(n)]}
    if positions is not None:
        if len(positions) != n:
            raise ValueError(f"{len(positions)} positions for {n} prompt vectors")
        cols["position"] = [str(p) for p in positions]
    if first is not None:
        if len(first.tokens) != n:
            raise ValueError(f"the earlier prompt has {len(first.tokens)} vectors, this one {n}")
        cols[f"at step {first_step}" if first_step is not None else "before"] = [
            f"{first.tokens[j][0]} {float(first.cosine[j, 0]):.3f} · {float(first.norm[j]):.2f}" for j in range(n)]
    cols["norm"] = [f"{float(v):.2f}" for v in words.norm]
    cols["nearest tokens (cosine)"] = [
        ",  ".join(f"{t} {float(c):.3f}" for t, c in zip(words.tokens[j][:k], words.cosine[j, :k])) for j in range(n)]
    nbsp = lambda text: text.replace(" ", "\u00a0")                  # no wrapping, see above
    cols = {nbsp(h): [nbsp(v) for v in col] for h, col in cols.items()}
    narrow, start = 80, 190
    widths = [start if h.startswith(("at\u00a0step", "before")) else narrow for h in list(cols)[:-1]]
    widths.append(width - 40 - sum(widths))
    fig = go.Figure(go.Table(
        columnwidth=widths,
        header=dict(values=list(cols), fill_color="#e8eef5", align="left", height=30,     # bold by weight, not
                    font=dict(size=14, color="#222", weight="bold")),                     # <b> (clipped in Lab)
        cells=dict(values=list(cols.values()), align="left", height=28, font=dict(size=14, color="#222"),
                   fill_color=[["#ffffff", "#f6f6f6"] * (n // 2 + 1)])))
    what = f"{source} · " if source else ""
    fig.update_layout(template=TEMPLATE, font=FONT, width=width, height=130 + 28 * n + 30,
                      title=dict(text=_titled("What the prompt says: nearest tokens per prompt vector",
                                              f"{what}cosine over the input embeddings · median norm of real tokens "
                                              f"{words.embedding_norm:.2f}", width), x=0.5, xanchor="center"),
                      margin=dict(l=20, r=20, t=90, b=10))
    return fig
