"""bertviz's head and model views, made to work offline, with prompt tokens labelled.

bertviz (1.4) draws with d3 inside a require.js call and loads require.js, d3 5.7.0 and jquery
2.0.0 from a CDN, so without network its views stay blank ("require is not defined"). Here the
page bertviz returns (``html_action="return"``) is rebuilt:

1. its ``<script src=...require.min.js>`` tag is removed and its ``require.config({paths: {d3:
   CDN, jquery: CDN}})`` call is cut out of its script;
2. d3 5.7.0, jquery 2.2.4 and require.js 2.3.6 are inlined in that order from the local copies of
   :mod:`attnviz.assets` (d3 and jquery load before require.js, so they set ``window.d3`` /
   ``window.jQuery`` instead of registering anonymous AMD modules), then
   ``define('d3', ...)`` / ``define('jquery', ...)`` hand those globals to bertviz's
   ``requirejs(['jquery', 'd3'], ...)``; bertviz's template also repeats the whole weights JSON
   in a comment (``// HACK: PYTHON_PARAMS is a template marker``): that copy is cut, halving the page;
3. the whole page goes into an ``<iframe srcdoc=...>``, which keeps require.js and bertviz's
   element ids out of the JupyterLab page; a small script sizes the iframe to its content.

The result displays in JupyterLab (``_repr_html_``), survives nbconvert HTML exports, and
:meth:`BertvizView.save` writes a standalone offline file. Prompt tokens are labelled ``<p0>``,
``<p1>``, ... from the layout, and token labels are coloured by segment (prompt red, ``[CLS]``
purple, ``[SEP]`` brown). More than :data:`MAX_TOKENS` tokens are refused: the head view draws
``heads * L * L`` lines; for long inputs use pooled maps (``capture_attention(..., pool=)``).
"""

from __future__ import annotations

import html as _html
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from ..assets import read_asset
from ..files import atomic_write
from ..placement import SequenceLayout

#: Most tokens a view accepts by default: 128 rows are ~2900 px of head view and ~200k SVG lines.
MAX_TOKENS = 128

#: Fill of token labels per segment name; segments not listed keep bertviz's colour.
TOKEN_COLORS = {
    "prompt": "#d62728",
    "cls": "#6a3d9a",
    "sep": "#8c564b",
    "hypothesis": "#1f77b4",
    "question": "#e6550d",
}
SPECIAL_LABELS = {"cls": "[CLS]", "sep": "[SEP]"}

_REQUIRE_TAG = re.compile(r'<script\s+src="https?://[^"]*require[^"]*"\s*>\s*</script>', re.IGNORECASE)
_REQUIRE_CONFIG = re.compile(r"require\.config\(\{\s*paths:\s*\{[^{}]*\}\s*\}\);")
_SCRIPT_OPEN = '<script type="text/javascript">'
_PARAMS_PREFIX = "const params = "
_PARAMS_MIDDLE = "; // HACK: "
_PARAMS_SUFFIX = " is a template marker that is replaced by actual params."

_DEFINES = ("define('d3', [], function () { return window.d3; });\n"
            "define('jquery', [], function () { return window.jQuery; });")

# Colours token labels by position (bertviz has no option for it) and fits the iframe to the page.
# Token lists are <g> elements whose child <g>s each hold one <text>, one per token, in order
# (head view: left and right columns; model view: the detail panel after a click).
_AFTER = """(function () {
  var COLORS = %(colors)s;
  function paint() {
    var groups = document.querySelectorAll('svg g');
    for (var n = 0; n < groups.length; n++) {
      var kids = [];
      for (var c = groups[n].firstElementChild; c; c = c.nextElementSibling) {
        if (c.tagName.toLowerCase() === 'g' && c.querySelector(':scope > text')) kids.push(c);
      }
      if (kids.length !== COLORS.length) continue;
      for (var i = 0; i < kids.length; i++) {
        if (!COLORS[i]) continue;
        var t = kids[i].querySelector(':scope > text');
        t.setAttribute('fill', COLORS[i]);
        t.style.fill = COLORS[i];
        t.style.fontWeight = 'bold';
      }
    }
  }
  function fit() {
    var f = null;
    try { f = window.frameElement; } catch (e) { return; }
    if (!f) return;
    var h = Math.ceil(document.getElementById('attnviz-root').getBoundingClientRect().bottom) + 12;
    if (Math.abs(parseFloat(f.style.height) - h) > 1) f.style.height = h + 'px';
  }
  var pending = false;
  function update() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; paint(); fit(); });
  }
  new MutationObserver(update).observe(document.body, {childList: true, subtree: true});
  if (window.ResizeObserver) new ResizeObserver(update).observe(document.getElementById('attnviz-root'));
  update();
})();"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>%(title)s</title>
<style>
html, body { margin: 0; padding: 0; background: %(background)s; }
#attnviz-root { padding: 6px 8px; font-family: 'Helvetica Neue', Helvetica, Arial, sans-serif; }
.attnviz-legend { font-size: 13px; color: %(fg)s; margin: 0 0 6px 0; }
.attnviz-legend span { margin-right: 1.2em; font-weight: bold; }
</style>
<script>
/* d3 5.7.0 (npm d3, dist/d3.min.js), BSD-3-Clause */
%(d3)s
</script>
<script>
/* jQuery 2.2.4 (npm jquery, dist/jquery.min.js), MIT */
%(jquery)s
</script>
<script>
/* RequireJS 2.3.6 (npm requirejs, require.js), MIT */
%(require)s
</script>
<script>
%(defines)s
</script>
</head>
<body>
<div id="attnviz-root">
%(legend)s
%(body)s
</div>
<script>
%(vis)s
</script>
<script>
%(after)s
</script>
</body>
</html>
"""


def inline_js(code: str) -> str:
    """``code`` made safe inside ``<script>...</script>``: ``</script`` -> ``<\\/script`` and
    ``<!--`` -> ``<\\!--`` (same meaning inside JS strings and regexes; the HTML parser no longer
    ends or escapes the script there)."""
    code = re.sub(r"</(script)", r"<\\/\1", code, flags=re.IGNORECASE)
    return code.replace("<!--", "<\\!--")


@dataclass(frozen=True, repr=False)
class BertvizView:
    """A bertviz view as one offline page.

    Attributes:
        html: the complete page (libraries inlined; works standalone and offline).
        kind: ``"head"`` or ``"model"``.
        tokens: the token labels shown, length ``L``.
        height: the iframe's starting height in pixels (a script then fits it to the content).
    """

    html: str
    kind: str
    tokens: tuple[str, ...]
    height: int

    def iframe(self) -> str:
        """``<iframe srcdoc=...>`` holding :attr:`html` (what notebooks display)."""
        return (f'<iframe class="attnviz-bertviz" title="bertviz {self.kind} view" '
                f'style="width: 100%; height: {self.height}px; border: 0;" '
                f'srcdoc="{_html.escape(self.html, quote=True)}"></iframe>')

    def _repr_html_(self) -> str:
        return self.iframe()

    def __repr__(self) -> str:  # short: notebooks store text/plain beside the HTML
        return f"<BertvizView {self.kind} view, {len(self.tokens)} tokens, {len(self.html) / 1e6:.1f} MB page>"

    def save(self, path: str | os.PathLike, title: str | None = None) -> Path:
        """Write a standalone offline HTML file that shows the view in its iframe (as a notebook
        export does). Written to a temporary file and renamed. Returns the path."""
        path = Path(path)
        if not path.parent.is_dir():
            raise ValueError(f"cannot write {path}: folder {path.parent} does not exist")
        title = title or f"bertviz {self.kind} view"
        page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                f"<title>{_html.escape(title)}</title>\n"
                "<style>body { font-family: Helvetica, Arial, sans-serif; margin: 1em; }</style>\n"
                f"</head>\n<body>\n<h2>{_html.escape(title)}</h2>\n{self.iframe()}\n</body>\n</html>\n")
        atomic_write(path, page.encode("utf-8"))
        return path


# ---- inputs -------------------------------------------------------------------------------------

def _as_maps(attention, batch_index: int) -> tuple[torch.Tensor, tuple[int, ...], tuple[int, ...]]:
    """Attention in any accepted form -> (values float64 (n_layers, heads, L, L), layer ids, head ids)."""
    # AttentionMaps without importing attnviz.capture (it pulls in transformers): if that module
    # is not loaded, `attention` cannot be one.
    capture = sys.modules.get("attnviz.capture")
    if capture is not None and isinstance(attention, capture.AttentionMaps):
        if attention.pooled:
            raise ValueError("bertviz views need exact maps, these are pooled "
                             f"({attention.values.shape[-1]} units for {attention.length} tokens); "
                             "capture with pool=None, or plot the pooled maps as a heatmap")
        return attention.values.detach().double(), tuple(attention.layers), tuple(attention.heads)
    if isinstance(attention, (tuple, list)):
        if not attention:
            raise ValueError("attention is an empty sequence; expected one (B, H, L, L) tensor per layer")
        layers = []
        for i, a in enumerate(attention):
            a = torch.as_tensor(a)
            if a.dim() == 4:
                if not 0 <= batch_index < a.shape[0]:
                    raise ValueError(f"batch_index {batch_index} is outside the batch of {a.shape[0]} (layer {i})")
                a = a[batch_index]
            elif a.dim() != 3:
                raise ValueError(f"attention[{i}] has shape {tuple(a.shape)}; expected (B, H, L, L) or (H, L, L), "
                                 "as returned with output_attentions=True")
            layers.append(a)
        if len({tuple(a.shape) for a in layers}) != 1:
            raise ValueError(f"layers differ in shape: {sorted({tuple(a.shape) for a in layers})}")
        values = torch.stack(layers)
    else:
        values = torch.as_tensor(attention)
        if values.dim() == 5:
            if not 0 <= batch_index < values.shape[1]:
                raise ValueError(f"batch_index {batch_index} is outside the batch of {values.shape[1]}")
            values = values[:, batch_index]
        elif values.dim() != 4:
            raise ValueError(f"attention has shape {tuple(values.shape)}; expected (layers, heads, L, L), "
                             "(layers, B, heads, L, L) or a tuple of (B, heads, L, L) per layer")
    if values.shape[-1] != values.shape[-2]:
        raise ValueError(f"attention maps must be square (L, L), got {tuple(values.shape[-2:])}")
    values = values.detach().to("cpu", torch.float64)
    return values, tuple(range(values.shape[0])), tuple(range(values.shape[1]))


def token_labels(layout: SequenceLayout | None, tokens: Sequence[str] | None = None,
                 length: int | None = None) -> tuple[str, ...]:
    """Labels of the ``L`` positions: prompt positions ``<p0>``, ``<p1>``, ... in prompt order.

    Args:
        layout: where the prompt sits, or None (then ``tokens`` are shown as they are).
        tokens: the tokenizer's tokens without the prompt (``layout.n_tokens`` of them, e.g.
            ``tokenizer.convert_ids_to_tokens(ids)``), or one per position (``L``; what stands at
            prompt positions is replaced), or None: ``[CLS]``, ``<p3>``, ``t0``, ``t1``, ..., ``[SEP]``.
        length: ``L`` expected by the attention (checked).
    """
    if layout is None:
        if tokens is None:
            raise ValueError("give tokens, a layout, or both")
        out = [str(t) for t in tokens]
    else:
        prompt_label = {p: f"<p{j}>" for j, p in enumerate(layout.prompt_positions)}
        if tokens is None:
            out, ordinal = [], 0
            for p, name in enumerate(layout.names()):
                if p in prompt_label:
                    out.append(prompt_label[p])
                elif name in SPECIAL_LABELS:
                    out.append(SPECIAL_LABELS[name])
                else:
                    out.append(f"t{ordinal}")
                    ordinal += 1
        else:
            tokens = [str(t) for t in tokens]
            if len(tokens) == layout.n_tokens:
                out = [prompt_label[p] if p in prompt_label else tokens[i] for p, i in enumerate(layout.token_index)]
            elif len(tokens) == layout.length:
                out = [prompt_label.get(p, t) for p, t in enumerate(tokens)]
            else:
                raise ValueError(f"{len(tokens)} tokens do not fit the layout: give {layout.n_tokens} (the "
                                 f"tokenizer's, without prompt) or {layout.length} (one per position)")
    if length is not None and len(out) != length:
        raise ValueError(f"attention covers {length} positions but there are {len(out)} token labels"
                         + (f" (layout length {layout.length})" if layout is not None else ""))
    return tuple(out)


def _check_readable(L: int, max_tokens: int) -> None:
    if L > max_tokens:
        raise ValueError(
            f"{L} tokens are too many for a readable bertviz view (at most max_tokens={max_tokens}). "
            "For long inputs use the pooled attention heatmap: "
            "attnviz.capture.capture_attention(model, inputs, pool=16, keep=layout) and plot its blocks, "
            "or attnviz.plots.mask_figure(pattern, layout) for who may attend whom; "
            "or show a shorter text"
        )


def _colors(layout: SequenceLayout | None, L: int) -> list[str | None]:
    if layout is None:
        return [None] * L
    return [TOKEN_COLORS.get(n) for n in layout.names()]


def _legend(layout: SequenceLayout | None, fg: str) -> str:
    if layout is None:
        return ""
    from ._style import positions_text

    seen, parts = [], []
    for s in layout.segments:
        if s.name in seen or s.name not in TOKEN_COLORS:
            continue
        seen.append(s.name)
        pos = layout.positions(s.name)
        if s.name == "prompt":
            text = f"prompt &lt;p0&gt;–&lt;p{len(pos) - 1}&gt; (positions {positions_text(pos)})"
        else:
            where = f"position {pos[0]}" if len(pos) == 1 else f"positions {positions_text(pos)}"
            text = f"{_html.escape(SPECIAL_LABELS.get(s.name, s.name))} ({where})"
        parts.append(f'<span style="color: {TOKEN_COLORS[s.name]}">■ {text}</span>')
    return f'<div class="attnviz-legend">{"".join(parts)}</div>' if parts else ""


# ---- the page -------------------------------------------------------------------------------------

def _offline_page(bertviz_html: str, *, title: str, layout: SequenceLayout | None, L: int,
                  dark: bool = False) -> str:
    """bertviz's returned HTML -> one self-contained page (see the module docstring)."""
    from importlib.metadata import version as _version

    version = _version("bertviz")
    changed = (f"bertviz {version} builds its page differently from 1.4 (%s); "
               "attnviz.plots.bertviz_view needs updating")
    page, n = _REQUIRE_TAG.subn("", bertviz_html)
    if n != 1:
        raise RuntimeError(changed % f"{n} require.js script tags")
    start = page.find(_SCRIPT_OPEN)
    end = page.rfind("</script>")
    if start < 0 or end < start:
        raise RuntimeError(changed % "no inline script")
    body, vis = page[:start].strip(), page[start + len(_SCRIPT_OPEN):end]
    vis = _drop_params_comment(vis, changed)
    vis, n = _REQUIRE_CONFIG.subn("/* attnviz: d3 and jquery are defined inline, not loaded from a CDN */", vis)
    if n != 1:
        raise RuntimeError(changed % f"{n} require.config(paths) calls")
    if "require.config(" in vis:
        raise RuntimeError(changed % "a second require.config call")
    fg = "#ccc" if dark else "#222"
    return _PAGE % dict(
        title=_html.escape(title),
        background="black" if dark else "white",
        fg=fg,
        d3=inline_js(read_asset("d3")),
        jquery=inline_js(read_asset("jquery")),
        require=inline_js(read_asset("require")),
        defines=_DEFINES,
        legend=_legend(layout, fg),
        body=body,
        vis=inline_js(vis),
        after=inline_js(_AFTER % dict(colors=json.dumps(_colors(layout, L)))),
    )


def _drop_params_comment(vis: str, changed: str) -> str:
    """bertviz fills its template with ``str.replace("PYTHON_PARAMS", json)``, and the template's
    line ``const params = PYTHON_PARAMS; // HACK: PYTHON_PARAMS is a template marker ...`` names
    the marker twice: the whole JSON lands in the comment too, doubling the page. Cut the comment."""
    start = vis.find(_PARAMS_PREFIX)
    end = vis.find("\n", start)
    if start < 0 or end < 0:
        raise RuntimeError(changed % "no `const params = ...` line")
    line = vis[start:end]
    size, odd = divmod(len(line) - len(_PARAMS_PREFIX) - len(_PARAMS_MIDDLE) - len(_PARAMS_SUFFIX), 2)
    params = line[len(_PARAMS_PREFIX):len(_PARAMS_PREFIX) + size]
    if odd or line != _PARAMS_PREFIX + params + _PARAMS_MIDDLE + params + _PARAMS_SUFFIX:
        raise RuntimeError(changed % "its `const params = ...` line looks different")
    return vis[:start] + _PARAMS_PREFIX + params + ";" + vis[end:]


def _select(kind: str, chosen, ids: tuple[int, ...]) -> list[int]:
    """Indices into ``ids`` of the ``chosen`` model ids (layers or heads)."""
    missing = [c for c in chosen if c not in ids]
    if missing or not chosen:
        raise ValueError(f"{kind} {list(chosen)} must be a non-empty subset of the {kind} given: {list(ids)}")
    return [ids.index(c) for c in chosen]


def _prepare(attention, tokens, layout, batch_index, max_tokens, decimals, prettify, layers):
    from bertviz.util import format_special_chars

    values, layer_ids, head_ids = _as_maps(attention, batch_index)
    if layers is not None:
        layers = [layers] if isinstance(layers, int) else list(layers)
        values, layer_ids = values[_select("layers", layers, layer_ids)], tuple(layers)
    L = values.shape[-1]
    if layout is not None and layout.length != L:
        raise ValueError(f"the layout has {layout.length} positions but the attention covers {L}")
    _check_readable(L, max_tokens)
    labels = token_labels(layout, tokens, L)
    if prettify:  # GPT-2's Ġ and sentencepiece's ▁ become spaces, as bertviz does
        labels = tuple(format_special_chars(list(labels)))
    if not torch.isfinite(values).all():
        raise ValueError("attention holds NaN or inf values")
    if decimals is not None:
        values = torch.round(values, decimals=decimals)  # shorter JSON; 3 decimals is below a pixel of opacity
    return values, layer_ids, head_ids, labels


def _layer_list(values: torch.Tensor, layer_ids: tuple[int, ...]) -> list[torch.Tensor]:
    """bertviz wants one (1, H, L, L) tensor per model layer and picks ``include_layers`` from it;
    layers not captured get a shared zero tensor (never shown)."""
    H, L = values.shape[1], values.shape[-1]
    zero = torch.zeros(1, H, L, L, dtype=values.dtype)
    out = [zero] * (max(layer_ids) + 1)
    for k, layer in enumerate(layer_ids):
        out[layer] = values[k].unsqueeze(0)
    return out


def head_view(attention, tokens: Sequence[str] | None = None, layout: SequenceLayout | None = None, *,
              layer: int | None = None, heads: Sequence[int] | None = None,
              layers: Sequence[int] | int | None = None, batch_index: int = 0, max_tokens: int = MAX_TOKENS,
              decimals: int | None = 3, prettify_tokens: bool = True) -> BertvizView:
    """bertviz's head view (attention lines between two token columns, one colour per head), offline.

    Args:
        attention: a tuple of ``(B, H, L, L)`` tensors, one per layer (``outputs.attentions``),
            a ``(layers, H, L, L)`` tensor, or exact :class:`attnviz.capture.AttentionMaps`.
        tokens: token strings, see :func:`token_labels` (None: labels from ``layout``).
        layout: the :class:`SequenceLayout` the attention was computed on; labels prompt tokens
            ``<p0>``... and colours segments.
        layer: the layer shown first (a model layer id); heads: heads selected at first (as
            bertviz; the others can be switched on by clicking their colour).
        layers: model layers to include (default all given); fewer layers, a smaller page.
        batch_index: which sequence of a batch.
        max_tokens: refuse longer inputs (default :data:`MAX_TOKENS`).
        decimals: round weights to this many decimals in the page (None: full precision). The
            page carries ``layers * heads * L * L`` numbers, ~6 bytes each at 3 decimals: MiniLM
            (6 x 12 heads) with 64 tokens is ~1.8 MB, with 128 tokens ~7 MB.
        prettify_tokens: show GPT-2's ``Ġ`` and sentencepiece's ``▁`` as spaces (as bertviz does).
    """
    import bertviz

    values, layer_ids, head_ids, labels = _prepare(attention, tokens, layout, batch_index, max_tokens, decimals,
                                                      prettify_tokens, layers)
    if layer is not None and layer not in layer_ids:
        raise ValueError(f"layer {layer} is not among the layers shown: {list(layer_ids)}")
    if heads is not None:  # bertviz indexes heads by position in the tensor
        heads = _select("heads", list(heads), head_ids)
    out = bertviz.head_view(_layer_list(values, layer_ids), list(labels), prettify_tokens=False, layer=layer,
                            heads=heads, include_layers=list(layer_ids), html_action="return")
    L = len(labels)
    page = _offline_page(out.data, title="bertviz head view", layout=layout, L=L)
    height = math.ceil(L * 22.5 + 30) + 60 + (24 if layout is not None else 0)
    return BertvizView(page, "head", labels, height)


def model_view(attention, tokens: Sequence[str] | None = None, layout: SequenceLayout | None = None, *,
               layers: Sequence[int] | int | None = None, heads: Sequence[int] | int | None = None,
               display_mode: str = "light", batch_index: int = 0, max_tokens: int = MAX_TOKENS,
               decimals: int | None = 3, prettify_tokens: bool = True) -> BertvizView:
    """bertviz's model view (a thumbnail per layer and head; click one for its detail), offline.

    Arguments as :func:`head_view`, except: ``heads`` are the model heads to include (default all
    given; bertviz's ``include_heads``), and ``display_mode`` is ``"light"`` or ``"dark"``.
    """
    import bertviz

    if display_mode not in ("light", "dark"):
        raise ValueError(f"display_mode must be 'light' or 'dark', got {display_mode!r}")
    values, layer_ids, head_ids, labels = _prepare(attention, tokens, layout, batch_index, max_tokens, decimals,
                                                      prettify_tokens, layers)
    if heads is not None:
        heads = [heads] if isinstance(heads, int) else list(heads)
        values, head_ids = values[:, _select("heads", heads, head_ids)], tuple(heads)
    if head_ids != tuple(range(len(head_ids))):  # label heads by their model ids: pad the missing ones
        padded = torch.zeros(values.shape[0], max(head_ids) + 1, *values.shape[2:], dtype=values.dtype)
        padded[:, list(head_ids)] = values
        values = padded
    out = bertviz.model_view(_layer_list(values, layer_ids), list(labels), prettify_tokens=False,
                             display_mode=display_mode, include_layers=list(layer_ids),
                             include_heads=list(head_ids), html_action="return")
    L = len(labels)
    page = _offline_page(out.data, title="bertviz model view", layout=layout, L=L, dark=display_mode == "dark")
    # bertviz: thumbnails 7 * 12 / heads px per token, detail 18 px per token; 38 px of axis labels.
    thumb = L * 7 * (12 / values.shape[1]) + 10
    svg = max(len(layer_ids) * thumb + 38, L * 18 + 30 + 25)
    height = math.ceil(svg) + 40 + (24 if layout is not None else 0)
    return BertvizView(page, "model", labels, height)
