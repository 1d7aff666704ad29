"""The influence explorer: a model, a soft prompt and a text; change the pattern or the placement,
and the attention heatmap and the measured influence map redraw.

Controls → :class:`InfluenceSettings` (plain values) → :func:`influence_view` (the one pure
function: the prompt vectors from a checkpoint or an init, the layout, one run of
:func:`attnviz.capture_attention` under :func:`attnviz.with_pattern` for the chosen layer, and
:func:`attnviz.prompt_influence`) → two plotly ``FigureWidget`` s updated in place
(:func:`attnviz.plots.attention.attention_figure`, :func:`attnviz.plots.influence_figure`), and
what the prompt "says": each prompt vector's nearest vocabulary tokens, cosine and norm
(:func:`attnviz.prompts.nearest.nearest_tokens`, drawn by
:func:`attnviz.plots.evidence.prompt_words_table`), redrawn when the prompt source changes.

The model defaults to the embedded all-MiniLM-L6-v2 (:func:`attnviz.models.load_model`, loaded
once per process); pass ``model=`` and ``tokenizer=`` for another one (tests use tiny ones).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets
import plotly.graph_objects as go
import torch

from ..influence import METHODS
from ..patterns import AttentionPattern, describe
from ..placement import PLACEMENTS, PromptPlacement, SequenceLayout
from ..plots import influence_figure, save_html
from ..plots import FigureParts
from ..plots.attention import attention_figure, attention_parts
from ..plots.evidence import prompt_words_table
from ..prompts.nearest import PromptWords, nearest_tokens
from ._base import control_row, Explorer, parse_ints
from .live_figure import LiveFigure, apply_parts
from .pattern import FULL, _window_label

#: Prompt sources that are not files: ``SoftPrompt.init`` with ``init="text"`` ([SEP] copies + noise),
#: ``"vocab"`` (embeddings of frequent tokens, exactly) or ``"random"``.
PROMPT_INITS = ("text", "vocab", "random")
#: Nearest tokens shown per prompt vector.
WORDS_K = 3
WINDOW_OPTIONS = (2, 4, 8, 16, 32, 64, 128, 256, 512, None)
MEAN = "mean"
#: Above this many positions the attention heatmap is pooled to blocks (prompt rows / columns stay exact).
MAX_SIDE = 256


@functools.lru_cache(maxsize=1)
def default_model():
    """The embedded all-MiniLM-L6-v2 ``(model, tokenizer, name)``, loaded once per process."""
    from ..models import load_model

    return load_model("default")


@functools.lru_cache(maxsize=8)
def _checkpoint_prompt(path: str, mtime: float) -> tuple[torch.Tensor, dict]:
    from ..prompts.checkpoints import load_checkpoint

    tensors, meta = load_checkpoint(Path(path))
    if "prompt.weight" not in tensors:
        raise ValueError(f"checkpoint {path} has no prompt (a head-only run); choose a run trained with a prompt")
    return tensors["prompt.weight"].float(), meta


def checkpoint_prompt(source: str | os.PathLike) -> tuple[torch.Tensor, dict, Path]:
    """``(weight (n, H), meta, folder)`` of a trained prompt: a run folder (its newest undamaged
    checkpoint), a checkpoint folder ``…/checkpoints/step-…``, or a file in one. Cached by path and
    modification time. Raises ``ValueError`` naming the path when there is no usable checkpoint."""
    from ..prompts.checkpoints import latest_checkpoint

    path = Path(source).expanduser()
    if path.is_file():
        path = path.parent
    if not path.is_dir():
        raise ValueError(f"prompt {str(source)!r} is neither {' / '.join(PROMPT_INITS)} nor an existing run or "
                         f"checkpoint folder")
    if not (path / "state.json").is_file():
        ckpt = latest_checkpoint(path)
        if ckpt is None:
            raise ValueError(f"{path} holds no checkpoint (no state.json, no checkpoints/step-…); give a run folder "
                             f"of attnviz train or one of its checkpoints")
        path = ckpt
    weight, meta = _checkpoint_prompt(str(path.resolve()), (path / "state.safetensors").stat().st_mtime)
    return weight, meta, path


@dataclass(frozen=True)
class InfluenceSettings:
    """What the influence explorer's controls say, as plain values.

    ``prompt``: ``"text"`` (copies of the separator token + a little noise, the default init of
    :meth:`attnviz.prompts.SoftPrompt.init`), ``"random"``, or the path of a run / checkpoint
    folder (its prompt has a fixed number of vectors: ``n_tokens`` must match). ``window`` None is
    full attention. ``head`` None is the mean over heads. ``at`` / ``every`` are used by the
    ``infix`` / ``scattered`` placements only (``at`` None: the middle of the text, so that infix
    differs from prefix out of the box). ``log`` colours the influence by its log10.
    """

    text: str = "The film was long, but the acting was very good and the plot kept me watching."
    prompt: str = "text"
    seed: int = 0
    window: int | None = 8
    global_positions: str = ""
    global_prompt: bool = False
    placement: str = "prefix"
    n_tokens: int = 8
    at: int | None = None
    every: int = 4
    method: str = "ablation"
    layer: int = 0
    head: int | None = None
    log: bool = False

    def pattern(self, causal: bool = False) -> AttentionPattern:
        return AttentionPattern(window=self.window, causal=causal,
                                global_positions=parse_ints(self.global_positions, "global positions", minimum=0),
                                global_prompt=self.global_prompt)

    def placement_(self, text_len: int | None = None) -> PromptPlacement:
        """The placement; an infix ``at`` of None is the middle of ``text_len`` text tokens (0
        while the length is not known: only the number of prompt vectors is read then)."""
        at = self.at if self.at is not None else (text_len or 0) // 2
        return PromptPlacement(self.placement, n_tokens=self.n_tokens,
                               at=at if self.placement == "infix" else None,
                               every=self.every if self.placement == "scattered" else None)


@dataclass(frozen=True)
class InfluenceView:
    """Result of :func:`influence_view`: what the model ran on and what both figures show.

    Attributes:
        prompt: float32 ``(n, H)`` prompt vectors used.
        prompt_source: where they came from (``"text init"``, ``"random init"`` or a checkpoint folder).
        inputs: the batch ``{"input_ids" (1, T), "attention_mask" (1, T)}`` of the text.
        maps: :class:`attnviz.capture.AttentionMaps` of the chosen layer, all heads.
        influence: :class:`attnviz.influence.InfluenceMap` of the text (``values`` ``(1, layers + 1, L)``).
        attention, influence_fig: the figures' data as :class:`~attnviz.plots._style.FigureParts`
            (:func:`attnviz.plots.attention.attention_parts`; :func:`attnviz.plots.influence_figure`'s).
        tokens: the position labels (prompt tokens ``<p0>``, ...).
        backend: the path the maps and influence took (``"dense"``, or ``"tiled"`` for long inputs).
        words: what the prompt "says": :class:`~attnviz.prompts.nearest.PromptWords` of ``prompt``
            (the ``WORDS_K`` nearest tokens of each vector, special tokens included: a ``[SEP]``-copy
            init reads as ``[SEP]``), and ``words_fig`` its table
            (:func:`attnviz.plots.evidence.prompt_words_table`).
    """

    settings: InfluenceSettings
    pattern: AttentionPattern
    layout: SequenceLayout
    prompt: torch.Tensor
    prompt_source: str
    inputs: dict
    maps: object
    influence: object
    attention: FigureParts
    influence_fig: FigureParts
    tokens: tuple = ()
    backend: str = "dense"
    words: PromptWords | None = None
    words_fig: FigureParts | None = None

    @property
    def summary(self) -> str:
        return self.influence.summary() if hasattr(self.influence, "summary") else ""


def _parts(fig: go.Figure) -> FigureParts:
    """A built figure as parts for :func:`apply_parts` (shapes always given, so old ones are cleared)."""
    layout = fig.layout.to_plotly_json()
    layout.setdefault("shapes", [])
    layout.setdefault("annotations", [])
    return FigureParts(traces=list(fig.data), layout=layout)


def prompt_vectors(model, tokenizer, settings: InfluenceSettings) -> tuple[torch.Tensor, str, dict | None]:
    """``(weight (n, H), source, checkpoint meta or None)`` for ``settings.prompt``."""
    from ..prompts.soft_prompt import SoftPrompt

    hidden = model.get_input_embeddings().weight.shape[1]
    source = settings.prompt.strip()
    if source in PROMPT_INITS:
        sp = SoftPrompt.init(model, tokenizer, settings.placement_(), source, seed=settings.seed)
        return sp.weight.detach(), f"{source} init (seed {settings.seed})", None
    weight, meta, folder = checkpoint_prompt(source)
    if weight.shape[1] != hidden:
        raise ValueError(f"the prompt in {folder} has hidden size {weight.shape[1]}, the model {hidden}; it was "
                         f"trained on {meta.get('model', {}).get('model_id', 'another model')}")
    if weight.shape[0] != settings.n_tokens:
        raise ValueError(f"the prompt in {folder} has {weight.shape[0]} vectors; set tokens to {weight.shape[0]}")
    return weight, str(folder), meta


_WORDS_CACHE: dict = {}


def prompt_words(model, tokenizer, weight: torch.Tensor, k: int = WORDS_K) -> PromptWords:
    """:func:`attnviz.prompts.nearest.nearest_tokens` of ``weight`` (n, H) over ``model``'s input
    embeddings, special tokens included; the last few results are kept (keyed by the exact
    values), so moving a slider does not search the vocabulary again."""
    w = weight.detach().float().cpu().contiguous()
    key = (id(model), id(tokenizer), k, tuple(w.shape), w.numpy().tobytes())
    if key not in _WORDS_CACHE:
        if len(_WORDS_CACHE) >= 8:
            _WORDS_CACHE.pop(next(iter(_WORDS_CACHE)))
        _WORDS_CACHE[key] = nearest_tokens(w, model, tokenizer, k=k, skip_special=False)
    return _WORDS_CACHE[key]


def _first_checkpoint_words(model, tokenizer, source: str, meta: dict | None) -> tuple[PromptWords | None, int | None]:
    """The words of the oldest checkpoint the run kept, when the prompt is a later checkpoint of a
    run (how far training moved each vector); ``(None, None)`` otherwise."""
    from ..prompts.checkpoints import list_checkpoints

    if meta is None:
        return None, None
    folder = Path(source)
    kept = list_checkpoints(folder.parent.parent)
    if not kept or kept[0].resolve() == folder.resolve():
        return None, None
    weight, first_meta, _ = checkpoint_prompt(kept[0])
    return prompt_words(model, tokenizer, weight), int(first_meta.get("step", 0))


def influence_view(model, tokenizer, settings: InfluenceSettings, *, max_side: int = MAX_SIDE) -> InfluenceView:
    """Everything the influence explorer draws for ``settings`` on ``model`` (eval mode, frozen).

    One call of :func:`attnviz.prompt_on_text.prompt_on_text`: the text tokenized (truncated to the
    model's positions), the prompt put in at the placement's positions, the attention of
    ``settings.layer`` (pooled to blocks above ``max_side`` positions, prompt kept exact; tiled,
    O(L·w) memory, above 2,048 positions) and the influence ``settings.method`` measures. Raises
    ``ValueError`` / ``TypeError`` naming the bad setting (shown in the explorer's UI).
    """
    from ..models.native import is_causal, num_layers_of
    from ..plots.bertviz_view import token_labels
    from ..prompt_on_text import prompt_on_text

    s = settings
    if s.method not in METHODS:
        raise ValueError(f"unknown method {s.method!r}; allowed: {', '.join(METHODS)}")
    if not s.text.strip():
        raise ValueError("the text is empty; type a sentence or two")
    n_layers = num_layers_of(model)
    if not 0 <= s.layer < n_layers:
        raise ValueError(f"layer {s.layer} is outside 0..{n_layers - 1}")
    heads = model.config.num_attention_heads
    if s.head is not None and not 0 <= s.head < heads:
        raise ValueError(f"head {s.head} is outside 0..{heads - 1} (or 'mean')")
    pattern = s.pattern(causal=is_causal(model))
    pattern.check_layers(n_layers)
    weight, source, meta = prompt_vectors(model, tokenizer, s)
    run = prompt_on_text(model, tokenizer, s.text, weight, pattern, s.placement_, layers=(s.layer,),
                         method=s.method, max_side=max_side)
    layout, inputs, maps, influence = run.layout, run.inputs, run.maps, run.influence
    tokens = token_labels(layout, tokenizer.convert_ids_to_tokens(inputs["input_ids"][0].tolist()))
    att = attention_parts(maps, layout, s.layer, s.head, tokens=tokens)
    inf = influence_figure(influence, example=0, log=s.log)
    words = prompt_words(model, tokenizer, weight)
    label = source
    if meta is not None:                                       # ".../run/checkpoints/step-00000040" -> "run, step 40"
        folder = Path(source)
        label = f"{folder.parent.parent.name}, step {meta.get('step', folder.name)}"
    first, first_step = _first_checkpoint_words(model, tokenizer, source, meta)
    table = prompt_words_table(words, positions=layout.prompt_positions, k=WORDS_K, source=label, first=first,
                               first_step=first_step)
    return InfluenceView(settings=s, pattern=pattern, layout=layout, prompt=weight, prompt_source=source,
                         inputs=inputs, maps=maps, influence=influence, attention=att, influence_fig=_parts(inf),
                         tokens=tokens, backend=run.backend, words=words, words_fig=_parts(table))


class InfluenceExplorer(Explorer):
    """Live attention heatmap and influence map of a soft prompt in a real model.

    ``InfluenceExplorer(model=None, tokenizer=None, **settings)``: the model (default the embedded
    MiniLM, loaded once) and starting values from :class:`InfluenceSettings`, e.g.
    ``prompt="runs/bbc-w32"`` (a trained run), ``window=32, global_prompt=True``. ``figures`` has
    ``"attention"``, ``"influence"`` and ``"words"`` (each prompt vector's nearest tokens, cosine
    and norm); ``result`` is the last :class:`InfluenceView`;
    ``set(window=64)`` changes controls from Python; ``export_html(path)`` writes an offline page.
    """

    def __init__(self, model=None, tokenizer=None, **initial):
        super().__init__()
        if (model is None) != (tokenizer is None):
            raise TypeError("give both model= and tokenizer=, or neither (the embedded MiniLM)")
        if model is None:
            model, tokenizer, _ = default_model()
        if model.training:
            raise ValueError("the model is in training mode; call model.eval() first")
        self.model, self.tokenizer = model, tokenizer
        known = [f.name for f in dataclasses.fields(InfluenceSettings)]
        unknown = sorted(set(initial) - set(known))
        if unknown:
            raise TypeError(f"unknown setting(s) {unknown}; known: {', '.join(known)}")
        s = InfluenceSettings(**initial)
        if s.prompt.strip() not in PROMPT_INITS and "n_tokens" not in initial:
            s = dataclasses.replace(s, n_tokens=int(checkpoint_prompt(s.prompt)[0].shape[0]))
        first = influence_view(model, tokenizer, s)  # bad starting values raise here, with the reason

        from ..models.native import num_layers_of

        n_layers, n_heads = num_layers_of(model), model.config.num_attention_heads
        options = list(WINDOW_OPTIONS)
        if s.window not in options:
            options = sorted(o for o in options + [s.window] if o is not None) + [None]
        wide = {"description_width": "initial"}
        c = self.controls
        c["text"] = widgets.Textarea(value=s.text, description="text", continuous_update=False, style=wide,
                                     layout=widgets.Layout(width="640px", height="64px"))
        c["prompt"] = widgets.Combobox(value=s.prompt, options=list(PROMPT_INITS), description="prompt",
                                       placeholder="text | vocab | random | a run or checkpoint folder", ensure_option=False,
                                       continuous_update=False, style=wide, layout=widgets.Layout(width="420px"))
        c["seed"] = widgets.BoundedIntText(value=s.seed, min=0, max=2**31 - 1, description="init seed", style=wide,
                                           layout=widgets.Layout(width="140px"))
        c["window"] = widgets.SelectionSlider(options=[(_window_label(o), _window_label(o) if o is None else o)
                                                       for o in options], value=self.control_value("window", s.window),
                                              description="window", continuous_update=False, style=wide,
                                              layout=widgets.Layout(width="330px"))
        c["global_positions"] = widgets.Text(value=s.global_positions, description="global positions",
                                             placeholder="e.g. 0", continuous_update=False, style=wide,
                                             layout=widgets.Layout(width="200px"))
        c["global_prompt"] = widgets.ToggleButton(value=s.global_prompt, description="global prompt",
                                                  layout=widgets.Layout(width="120px"))
        c["placement"] = widgets.Dropdown(options=list(PLACEMENTS), value=s.placement, description="placement",
                                          style=wide, layout=widgets.Layout(width="180px"))
        c["n_tokens"] = widgets.BoundedIntText(value=s.n_tokens, min=1, max=512, description="tokens", style=wide,
                                               layout=widgets.Layout(width="120px"))
        # until someone types a value, "at" shows the middle of the text (set in render)
        self._at_auto = s.at is None
        c["at"] = widgets.BoundedIntText(value=len(first.layout.positions("text")) // 2 if s.at is None else s.at, min=0, max=4096, description="at", style=wide,
                                         layout=widgets.Layout(width="110px"))
        c["every"] = widgets.BoundedIntText(value=s.every, min=1, max=4096, description="every", style=wide,
                                            layout=widgets.Layout(width="110px"))
        c["method"] = widgets.Dropdown(options=list(METHODS), value=s.method, description="influence", style=wide,
                                       layout=widgets.Layout(width="190px"))
        c["log"] = widgets.Checkbox(value=s.log, description="log colour", indent=False,
                                    layout=widgets.Layout(width="100px"))
        c["layer"] = widgets.IntSlider(value=s.layer, min=0, max=max(n_layers - 1, 1), description="attention of layer",
                                       continuous_update=False, style=wide, layout=widgets.Layout(width="300px"))
        c["head"] = widgets.Dropdown(options=[(MEAN, MEAN)] + [(str(h), h) for h in range(n_heads)],
                                     value=self.control_value("head", s.head), description="head", style=wide,
                                     layout=widgets.Layout(width="130px"))
        for name, w in c.items():
            w.add_class(f"attnviz-{name.replace('_', '-')}")

        att = attention_figure(first.maps, first.layout, s.layer, s.head, tokens=first.tokens)
        self.figures["influence"] = LiveFigure(layout=first.influence_fig.layout)
        self.figures["attention"] = LiveFigure(data=att.data, layout=att.layout)
        self.figures["words"] = LiveFigure(layout=first.words_fig.layout)
        self.result: InfluenceView | None = None
        self._go_live(first)

        row = lambda title, *ws: control_row(title, *ws, label_width=80)
        self._view = widgets.VBox([
            row("input", c["text"]),
            row("prompt", c["prompt"], c["seed"], c["placement"], c["n_tokens"], c["at"], c["every"]),
            row("attention", c["window"], c["global_positions"], c["global_prompt"]),
            self.message, self.summary,
            row(None, c["method"], c["log"], self.status), self.figures["influence"],
            row(None, c["layer"], c["head"]), self.figures["attention"],
            self.figures["words"],
        ])
        self._view.add_class("attnviz-explorer")

    @property
    def view(self) -> widgets.VBox:
        return self._view

    # ---- the three steps ----------------------------------------------------------------------
    def settings(self) -> InfluenceSettings:
        self._sync_controls()
        values = {name: w.value for name, w in self.controls.items()}
        values["window"] = None if values["window"] == FULL else values["window"]
        values["head"] = None if values["head"] == MEAN else values["head"]
        if self._at_auto:
            values["at"] = None
        return InfluenceSettings(**values)

    def control_value(self, name, value):
        if name == "window" and value is None:
            return FULL
        if name == "head" and value is None:
            return MEAN
        return value

    def compute(self, settings: InfluenceSettings) -> InfluenceView:
        return influence_view(self.model, self.tokenizer, settings)

    def render(self, result: InfluenceView) -> None:
        apply_parts(self.figures["influence"], result.influence_fig)
        apply_parts(self.figures["attention"], result.attention)
        apply_parts(self.figures["words"], result.words_fig)
        if self._at_auto and "at" in self.controls:
            self._quiet = True
            try:
                self.controls["at"].value = len(result.layout.positions("text")) // 2
            finally:
                self._quiet = False
        L = result.layout.length
        self.summary.value = (f"<div style='font-size:15px;margin:4px 0;word-break:normal;overflow-wrap:normal'><b>{describe(result.pattern)}</b>, "
                              f"{result.layout.n_prompt}-token {result.settings.placement} prompt "
                              f"({result.prompt_source}), L={L}: {result.influence.summary()}</div>")
        self.result = result

    def status_text(self, result: InfluenceView) -> str:
        ms = f"updated in {self.last_ms:.0f} ms · " if self.last_ms is not None else ""
        how = ("tiled backend: exact, on the pattern's tiles only" if result.backend == "tiled" else "dense backend")
        return f'<span style="color:#666">{ms}{result.influence.method}, {how}</span>'

    def _changed(self, change=None) -> None:
        if not self._quiet and change is not None and change.get("owner") is self.controls.get("at"):
            self._at_auto = False              # a value typed by someone: keep it
        super()._changed(change)

    def set(self, **values) -> "InfluenceExplorer":
        if "at" in values:
            self._at_auto = values["at"] is None
            if values["at"] is None:
                values = {k: v for k, v in values.items() if k != "at"}
        return super().set(**values)

    def _sync_controls(self) -> None:
        """Enable only the controls that matter; a checkpoint's prompt fixes the number of tokens."""
        c = self.controls
        self._quiet = True
        try:
            c["at"].disabled = c["placement"].value != "infix"
            c["every"].disabled = c["placement"].value != "scattered"
            from_file = c["prompt"].value.strip() not in PROMPT_INITS
            c["seed"].disabled = from_file
            c["n_tokens"].disabled = from_file
            if from_file:
                try:
                    n = int(checkpoint_prompt(c["prompt"].value.strip())[0].shape[0])
                except ValueError:
                    return  # influence_view says why
                if c["n_tokens"].value != n:
                    c["n_tokens"].value = n
        finally:
            self._quiet = False

    # ---- exports ------------------------------------------------------------------------------
    def export_html(self, path: str | os.PathLike, title: str | None = None) -> Path:
        """Write the current influence map and attention heatmap as one self-contained offline
        HTML page (plotly.js inlined), atomically. Returns the path."""
        view = influence_view(self.model, self.tokenizer, self.settings())  # raises on bad settings
        s = view.settings
        influence = go.Figure(layout=view.influence_fig.layout)
        influence.add_traces(view.influence_fig.traces)
        words = go.Figure(layout=view.words_fig.layout)
        words.add_traces(view.words_fig.traces)
        figs = [influence, attention_figure(view.maps, view.layout, s.layer, s.head, tokens=view.tokens), words]
        text = (f"{describe(view.pattern)}; {view.layout.n_prompt}-token {view.settings.placement} prompt "
                f"({view.prompt_source}); text: {view.settings.text!r}. {view.influence.summary()}")
        return save_html(figs, path, title=title or f"attnviz influence explorer — {describe(view.pattern)}", text=text)
