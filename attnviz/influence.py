"""How much the soft prompt *does* change the model, layer by layer and token by token.

:func:`attnviz.spread` says where the prompt *can* arrive (a graph search on the masks);
:func:`prompt_influence` measures how much it does, on a real batch, with one of three methods:

``ablation``
    Run the model twice on the same layout: once with the prompt, once with the prompt vectors
    replaced by a baseline (zeros, or the mean token embedding). Influence of layer ``l`` on
    token ``t`` is ``‖h_l(with)[t] − h_l(baseline)[t]‖ / ‖h_l(with)[t]‖`` (``h_0`` = the
    embeddings output). Where ``spread`` says the prompt has not arrived, the two runs compute
    bit for bit the same numbers, so the influence is **exactly 0.0** there (dense backend;
    tested): a token that is not reached attends only to keys that are not reached, blocked keys
    get probability exactly 0 from the ``finfo.min`` additive mask (``exp`` underflows to 0.0,
    and ``0 · v`` adds nothing), and every other operation works row by row on identical inputs
    with identical shapes, hence in identical order.
``rollout``
    Attention rollout (Abnar & Zuidema 2020): per layer, average the heads, add the identity
    (the residual stream), row-normalise, and multiply through the layers. Influence is the
    rolled-out attention mass a token puts on the prompt positions. Computed inside forward hooks,
    one layer at a time, on ``(L, n_prompt)`` columns only: exact at any length the model runs,
    never ``(layers, heads, L, L)`` in memory. Exactly 0.0 where unreached, like ablation.
``gradient``
    Grad × input of the task output with respect to each prompt vector,
    ``Σ_h ∂o/∂p_jh · (p_jh − b_jh)`` (first-order estimate of how much ablating token ``j``
    changes the output ``o``), or integrated gradients (``integrated=True``, needs ``captum``).
    The map is the same first-order estimate of the ablation map, computed in one forward-mode
    pass (Jacobian · (prompt − baseline)).

Per-prompt-token attribution to the output (``InfluenceMap.attribution``, ``(B, n)``, signed:
positive = the output is larger with the token than without): gradient × input (or integrated
gradients); for rollout the rolled-out attention of the readout token on each prompt token; for
ablation (``per_token=True``, ``n`` extra forward passes) ``o(with) − o(token j ablated)``.

The batch is text only (as the tokenizer gives it, right-padded, special tokens included); each
row's layout is ``placement.layout(text_len)`` for that row's length, so a suffix prompt sits
before each row's own ``[SEP]`` and padding stays at the end. Rows whose prompt positions
coincide run together (padded to the longest), others run in groups of their own.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Mapping

import torch

from .models import anatomy
from .patterns import AttentionPattern
from .placement import PromptPlacement, SequenceLayout
from .spread import Spread, spread_pattern

METHODS = ("ablation", "rollout", "gradient")
BASELINES = ("zeros", "mean")


# ---- the result ---------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class InfluenceMap:
    """Result of :func:`prompt_influence`.

    Attributes:
        values: float32 ``(B, layers + 1, L)``: influence of the prompt on token ``t`` after
            ``l`` layers, per example (row 0 = embeddings). ``0.0`` at padding.
        valid: bool ``(B, L)``: real positions of each example (False = padding).
        reached: bool ``(B, layers + 1, L)``: the structural reach (:func:`attnviz.spread_pattern`)
            on each example's own layout; influence is exactly 0 wherever this is False.
        attribution: float32 ``(B, n_prompt)`` per-prompt-token attribution to the output, or None.
        can_reach: bool ``(B, n_prompt)``: prompt token ``j`` can reach the example's readout
            position within the model's layers (structurally); where False, gradient and
            rollout attribution are exactly 0.
        readout: long ``(B,)``: the readout position of each example (``[CLS]`` or the last token).
        layout: the layout of the longest example: the axis of :attr:`mean`.
        layouts: each example's own layout.
        pattern: the attention pattern the model ran under.
        method: ``"ablation"``, ``"rollout"`` or ``"gradient"``.
        baseline: what the prompt was replaced by (``"zeros"``, ``"mean"`` or ``"tensor"``).
        notes: what was assumed or adjusted, in plain words.
    """

    values: torch.Tensor
    valid: torch.Tensor
    reached: torch.Tensor
    attribution: torch.Tensor | None
    can_reach: torch.Tensor
    readout: torch.Tensor
    layout: SequenceLayout
    layouts: tuple[SequenceLayout, ...]
    pattern: AttentionPattern
    method: str
    baseline: str
    notes: tuple[str, ...] = ()

    @property
    def batch_size(self) -> int:
        return self.values.shape[0]

    @property
    def num_layers(self) -> int:
        return self.values.shape[1] - 1

    @property
    def length(self) -> int:
        return self.values.shape[2]

    @property
    def n_prompt(self) -> int:
        return self.layout.n_prompt

    @property
    def same_layout(self) -> bool:
        """True when every example has the layout :attr:`layout` (so :attr:`mean` compares like with like)."""
        return all(l == self.layout for l in self.layouts)

    @property
    def mean(self) -> torch.Tensor:
        """float32 ``(layers + 1, L)``: :attr:`values` averaged over the examples that have each
        position (padding does not count). With rows of different layouts (e.g. a suffix prompt
        and different lengths) positions are aligned by index; see :attr:`same_layout`."""
        w = self.valid[:, None, :].to(self.values.dtype)
        return (self.values * w).sum(0) / w.sum(0).clamp(min=1)

    @property
    def reached_any(self) -> torch.Tensor:
        """bool ``(layers + 1, L)``: reached in at least one example; :attr:`mean` is exactly 0 elsewhere."""
        return self.reached.any(0)

    @property
    def per_token(self) -> torch.Tensor | None:
        """float32 ``(n_prompt,)``: :attr:`attribution` averaged over the examples, or None."""
        return None if self.attribution is None else self.attribution.mean(0)

    @property
    def spread(self) -> Spread:
        """The structural reach on :attr:`layout` (the longest example)."""
        return spread_pattern(self.pattern, self.layout, self.num_layers)

    def summary(self) -> str:
        """One paragraph in words (e.g. for the CLI)."""
        m = self.mean
        ro = int(self.readout[0])
        zero_unreached = bool((self.values[~self.reached] == 0).all())
        parts = [f"{self.method} influence of {self.n_prompt} prompt tokens on {self.batch_size} example(s), "
                 f"L={self.length}, {self.num_layers} layers"]
        parts.append(f"after the last layer: mean {float(m[-1][self.valid.any(0)].mean()):.3g} over tokens, "
                     f"{float(m[-1, ro]):.3g} at the readout position {ro}")
        parts.append("exactly 0 wherever the prompt has not arrived" if zero_unreached else
                     "NOT zero everywhere the prompt has not arrived (sdpa / flex rounding?)")
        if self.attribution is not None:
            top = int(self.per_token.abs().argmax())
            parts.append(f"largest attribution: prompt token {top} ({float(self.per_token[top]):.3g})")
        return "; ".join(parts) + "."


def distance_profile(result: InfluenceMap) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Influence against distance from the prompt.

    Distance of a position = tokens to the nearest prompt position of its example's layout
    (0 = a prompt token). Averages :attr:`InfluenceMap.values` over every real (example, position)
    pair at each distance.

    Returns:
        ``(distance (D,), mean (layers + 1, D), count (D,))``: distances that occur, ascending;
        mean influence per layer at each; how many (example, position) pairs each mean covers.
    """
    B, rows, L = result.values.shape
    dist = torch.full((B, L), -1, dtype=torch.long)
    for b, lay in enumerate(result.layouts):
        pos = torch.arange(lay.length)
        prompt = torch.tensor(lay.prompt_positions, dtype=torch.long)
        dist[b, : lay.length] = (pos[:, None] - prompt[None, :]).abs().min(1).values
    ok = result.valid & (dist >= 0)
    d = dist[ok]                                   # (N,)
    v = result.values.permute(1, 0, 2)[:, ok]      # (rows, N)
    distances, inverse = torch.unique(d, return_inverse=True)
    count = torch.bincount(inverse, minlength=len(distances))
    total = torch.zeros(rows, len(distances), dtype=v.dtype).index_add_(1, inverse, v)
    return distances, total / count.clamp(min=1), count


def block_means(values: torch.Tensor, edges) -> torch.Tensor:
    """``values`` ``(..., L)`` averaged over the blocks ``[e_i, e_{i+1})`` of ``edges``
    (``0 = e_0 < ... < e_n = L``, e.g. from :func:`attnviz.pooling.block_edges`) -> ``(..., n)``."""
    e = torch.as_tensor(list(edges), dtype=torch.long)
    L = values.shape[-1]
    if len(e) < 2 or int(e[0]) != 0 or int(e[-1]) != L or bool((e[1:] <= e[:-1]).any()):
        raise ValueError(f"edges must rise strictly from 0 to L={L}, got {tuple(e.tolist())[:8]}")
    unit = torch.repeat_interleave(torch.arange(len(e) - 1), e[1:] - e[:-1])
    out = values.new_zeros(values.shape[:-1] + (len(e) - 1,)).index_add_(-1, unit, values)
    return out / (e[1:] - e[:-1]).to(values.dtype)


# ---- rollout, the pure part ---------------------------------------------------------------------
def rollout_step(attention: torch.Tensor, mass: torch.Tensor) -> torch.Tensor:
    """One layer of attention rollout on the source columns.

    Args:
        attention: ``(B, heads, L, L)`` probabilities of one layer (rows = queries).
        mass: ``(B, L, n)``: rolled-out attention of each token on each source so far.
    Returns:
        ``(B, L, n)``: ``norm(mean_h(attention) + I) @ mass``, where ``norm`` divides each row by
        its sum (Abnar & Zuidema 2020: the identity stands for the residual connection).
    """
    a = attention.to(torch.float32).mean(1)                            # (B, L, L)
    a = a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    a = a / a.sum(-1, keepdim=True)
    return a @ mass.to(a.dtype)


def attention_rollout(attentions, sources) -> torch.Tensor:
    """Attention rollout restricted to source columns, from attention maps.

    Args:
        attentions: per layer ``(B, heads, L, L)`` (e.g. ``outputs.attentions``), or one tensor
            ``(layers, B, heads, L, L)``; ``(heads, L, L)`` per layer for a single example; or an
            :class:`attnviz.AttentionMaps` from :func:`attnviz.capture_attention` holding all
            layers from 0 (exact or pooled: then units play the part of tokens, see below).
        sources: source positions (e.g. ``layout.prompt_positions``).
    Returns:
        float32 ``(B, layers + 1, L, n)``: ``[b, l, t, j]`` = rolled-out attention of token ``t``
        after ``l`` layers on source ``j`` (row 0 is the identity on the sources). Sum over ``j``
        for the mass on all sources. ``(layers + 1, L, n)`` for single-example input, and
        ``(layers + 1, U, n)`` over the units of pooled :class:`~attnviz.AttentionMaps`, where the
        transition between units is ``P[u, v] = values[u, v] * size(v)`` (the mean row of unit ``u``
        summed over the keys of ``v``) and a unit's mass is the mean over its tokens (exact when
        mass is constant within units; pool with ``keep=layout`` so prompt positions stay single).
    """
    if hasattr(attentions, "unit_of") and hasattr(attentions, "values"):   # AttentionMaps, pooled or exact
        maps = attentions
        if tuple(maps.layers) != tuple(range(len(maps.layers))):
            raise ValueError(f"rollout multiplies every layer from the first; the maps hold layers {maps.layers}. "
                             f"Capture with layers=None")
        src = [int(s) for s in sources]
        bad = [s for s in src if not 0 <= s < maps.length]
        if bad or not src:
            raise ValueError(f"sources {bad or src} must be positions in [0, {maps.length}) (at least one)")
        sizes = maps.unit_sizes.to(torch.float32)
        units = maps.unit_of[src]
        mass = torch.zeros(1, len(sizes), len(src))
        mass[0, units, torch.arange(len(src))] = 1.0 / sizes[units]
        out = [mass]
        for l in range(len(maps.layers)):
            mass = rollout_step((maps.values[l] * sizes)[None], mass)
            out.append(mass)
        return torch.stack(out, 1)[0]
    layers = list(attentions)
    if not layers:
        raise ValueError("attentions is empty: give one (B, heads, L, L) map per layer")
    single = layers[0].dim() == 3
    layers = [a[None] if single else a for a in layers]
    B, _, L, L2 = layers[0].shape
    if L != L2:
        raise ValueError(f"attention maps must be square (B, heads, L, L), got {tuple(layers[0].shape)}")
    src = [int(s) for s in sources]
    bad = [s for s in src if not 0 <= s < L]
    if bad or not src:
        raise ValueError(f"sources {bad or src} must be positions in [0, {L}) (at least one)")
    mass = torch.zeros(B, L, len(src))
    mass[:, src, torch.arange(len(src))] = 1.0
    out = [mass]
    for a in layers:
        mass = rollout_step(a, mass)
        out.append(mass)
    result = torch.stack(out, 1)
    return result[0] if single else result


# ---- inputs -------------------------------------------------------------------------------------
def _prompt_and_placement(prompt, placement) -> tuple[torch.Tensor, PromptPlacement]:
    own = getattr(prompt, "placement", None)
    weight = prompt if isinstance(prompt, torch.Tensor) else getattr(prompt, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"prompt must be a tensor (n, H) or have .weight (n, H) (a SoftPrompt), got {type(prompt).__name__}")
    if placement is None:
        placement = own
    if placement is None:
        raise ValueError("no placement: pass placement=PromptPlacement(...) with a plain prompt tensor")
    if not isinstance(placement, PromptPlacement):
        raise TypeError(f"placement must be an attnviz.PromptPlacement, got {type(placement).__name__}")
    if own is not None and own != placement:
        raise ValueError(f"the prompt was made for {own!r} but placement={placement!r}; the batch's layout would "
                         f"differ from the prompt's. Pass placement=None to use the prompt's own")
    if weight.dim() != 2:
        raise ValueError(f"the prompt must be (n_tokens, hidden), got shape {tuple(weight.shape)}")
    if weight.shape[0] != placement.n_tokens:
        raise ValueError(f"the prompt has {weight.shape[0]} vectors but the placement says n_tokens="
                         f"{placement.n_tokens}; the layout would not match the prompt")
    return weight, placement


def resolve_special_tokens(model, tokenizer, special_tokens) -> tuple[bool, bool]:
    """``(cls, sep)``: ``special_tokens`` when given (two booleans), else from the tokenizer or model."""
    if special_tokens is not None:
        if len(special_tokens) != 2:
            raise ValueError(f"special_tokens must be (cls, sep) booleans, got {special_tokens!r}")
        return bool(special_tokens[0]), bool(special_tokens[1])
    return anatomy.special_tokens(tokenizer, model)


@dataclass
class _Group:
    """Rows that run together: the same prompt positions, padded to the longest row."""

    rows: torch.Tensor          # long (g,)
    layout: SequenceLayout      # the longest row's layout: masks for the run
    gather: torch.Tensor        # long (g, Lg): source index into cat([tokens (T), prompt (n)])
    anchor: torch.Tensor        # long (g, Lg): tokenizer position whose token type a slot takes
    valid: torch.Tensor         # bool (g, Lg)


def _groups(batch: Mapping, placement: PromptPlacement, pattern: AttentionPattern, cls: bool, sep: bool,
            max_positions: int | None) -> tuple[list[_Group], list[SequenceLayout], torch.Tensor]:
    """Per-row layouts and run groups. Returns ``(groups, layouts, input_ids)``."""
    if not isinstance(batch, Mapping):
        raise TypeError(f"batch must be a dict with input_ids and attention_mask, got {type(batch).__name__}")
    if "inputs_embeds" in batch:
        raise ValueError("batch has inputs_embeds: give the text's input_ids; the prompt is inserted here")
    ids = batch.get("input_ids")
    if ids is None:
        raise ValueError(f"batch needs input_ids (B, T) of the text tokens; it has {sorted(batch)}")
    ids = torch.as_tensor(ids)
    if ids.dim() != 2:
        raise ValueError(f"input_ids must be (B, T), got shape {tuple(ids.shape)}")
    B, T = ids.shape
    if B == 0 or T == 0:
        raise ValueError(f"empty batch: input_ids has shape {tuple(ids.shape)}; give at least one non-empty example")
    am = batch.get("attention_mask")
    am = torch.ones_like(ids) if am is None else torch.as_tensor(am)
    if am.shape != ids.shape:
        raise ValueError(f"attention_mask has shape {tuple(am.shape)}, input_ids {tuple(ids.shape)}")
    lengths = am.long().sum(1)
    if not torch.equal(am.bool(), torch.arange(T, device=am.device)[None, :] < lengths[:, None]):
        raise ValueError("attention_mask must be right padding (1 ... 1 0 ... 0 per row); tokenize with "
                         "padding_side='right'")
    specials = int(cls) + int(sep)
    empty = [b for b in range(B) if int(lengths[b]) <= specials]
    if empty:
        raise ValueError(f"rows {empty} have no text tokens (lengths {[int(lengths[b]) for b in empty]}, "
                         f"{specials} special tokens); drop empty examples")

    per_length: dict[int, SequenceLayout] = {}
    for t in sorted({int(x) for x in lengths.tolist()}):
        try:
            lay = placement.layout(t - specials, cls=cls, sep=sep)
        except ValueError as exc:
            raise ValueError(f"a row of {t} tokens ({t - specials} text tokens) cannot take this prompt: {exc}") from exc
        if max_positions is not None:
            lay.check_fits(max_positions)
        pattern.global_mask(lay)  # raises on global positions outside the row
        per_length[t] = lay
    layouts = [per_length[int(t)] for t in lengths.tolist()]

    # Rows with the same prompt positions share masks on their real positions (no random blocks:
    # BigBird's block table depends on the length), so they can run padded to the longest.
    keys: dict = {}
    for b, lay in enumerate(layouts):
        key = lay if pattern.random_blocks else lay.prompt_positions
        keys.setdefault(key, []).append(b)
    groups = []
    n = placement.n_tokens
    for rows in keys.values():
        lays = [layouts[b] for b in rows]
        lay = max(lays, key=lambda x: x.length)
        Lg = lay.length
        gather = torch.empty(len(rows), Lg, dtype=torch.long)
        anchor = torch.empty(len(rows), Lg, dtype=torch.long)
        valid = torch.zeros(len(rows), Lg, dtype=torch.bool)
        for i, b in enumerate(rows):
            lb, t = layouts[b], int(lengths[b])
            token = torch.tensor(lb.token_index, dtype=torch.long)
            slot = torch.full_like(token, -1)
            slot[list(lb.prompt_positions)] = torch.arange(n)
            gather[i, : lb.length] = torch.where(token >= 0, token, T + slot)
            gather[i, lb.length:] = torch.arange(t, t + Lg - lb.length)       # this row's padding
            # A prompt slot takes the token type of the next token (the previous one at the very end).
            nxt = token.clone()
            for s in range(lb.length - 1, -1, -1):
                if token[s] < 0:
                    nxt[s] = nxt[s + 1] if s + 1 < lb.length else -1
            for s in range(lb.length):
                if nxt[s] < 0:
                    nxt[s] = nxt[s - 1] if s > 0 else 0
            anchor[i, : lb.length] = nxt
            anchor[i, lb.length:] = gather[i, lb.length:]
            valid[i, : lb.length] = True
        groups.append(_Group(torch.tensor(rows), lay, gather, anchor, valid))
    return groups, layouts, ids


def _baseline(baseline, prompt: torch.Tensor, embedding: torch.nn.Module) -> tuple[torch.Tensor, str]:
    if isinstance(baseline, torch.Tensor):
        b = baseline.to(prompt)
        if b.shape == prompt.shape[-1:]:
            b = b.expand_as(prompt)
        if b.shape != prompt.shape:
            raise ValueError(f"baseline tensor has shape {tuple(baseline.shape)}; expected {tuple(prompt.shape)} "
                             f"or ({prompt.shape[-1]},)")
        return b, "tensor"
    if baseline == "zeros":
        return torch.zeros_like(prompt), "zeros"
    if baseline == "mean":
        return embedding.weight.detach().mean(0).to(prompt).expand_as(prompt), "mean"
    raise ValueError(f"unknown baseline {baseline!r}; allowed: {', '.join(BASELINES)} or a tensor (n, H) / (H,)")


# ---- the runs -----------------------------------------------------------------------------------
class _Runner:
    """Builds ``inputs_embeds`` for a group of rows and runs the model under the pattern."""

    def __init__(self, model, pattern, backend, ids, token_types):
        self.model, self.pattern, self.backend = model, pattern, backend
        self.words = model.get_input_embeddings()(ids).detach()            # (B, T, H)
        self.token_types = token_types

    def inputs(self, g: _Group, prompt_rows: torch.Tensor) -> dict:
        """``prompt_rows`` ``(g, n, H)`` (or ``(n, H)``, shared) -> forward arguments for the group."""
        words = self.words[g.rows]
        if prompt_rows.dim() == 2:
            prompt_rows = prompt_rows.expand(len(g.rows), -1, -1)
        source = torch.cat([words, prompt_rows.to(words.dtype)], 1)
        idx = g.gather.to(words.device)
        embeds = source.gather(1, idx[..., None].expand(-1, -1, words.shape[-1]))
        out = {"inputs_embeds": embeds, "attention_mask": g.valid.long().to(words.device)}
        if self.token_types is not None:
            out["token_type_ids"] = self.token_types[g.rows].gather(1, g.anchor.to(words.device))
        return out

    def __call__(self, g: _Group, prompt_rows: torch.Tensor, **kwargs):
        from .models.interface import with_pattern

        with with_pattern(self.model, self.pattern, g.layout, backend=self.backend) as m:
            return m(**self.inputs(g, prompt_rows), **kwargs)


def _relative_change(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``‖a − b‖ / ‖a‖`` over the last axis, float32; 0 where both are equal (even if ‖a‖ = 0)."""
    diff = (a - b).to(torch.float32).norm(dim=-1)
    return torch.where(diff == 0, diff, diff / a.to(torch.float32).norm(dim=-1).clamp(min=1e-30))


def _hidden(out) -> tuple[torch.Tensor, ...]:
    hs = getattr(out, "hidden_states", None)
    if hs is None:
        hs = getattr(out, "encoder_hidden_states", None)
    if hs is None:
        raise ValueError(f"{type(out).__name__} has no hidden_states; the model must support output_hidden_states=True")
    return hs


def prompt_influence(
    model,
    prompt,
    batch: Mapping,
    pattern: AttentionPattern | None = None,
    placement: PromptPlacement | None = None,
    method: str = "ablation",
    baseline: str | torch.Tensor = "zeros",
    backend: str = "dense",
    output: Callable | None = None,
    *,
    classifier: Callable | None = None,
    target: int | torch.Tensor | None = None,
    per_token: bool | None = None,
    integrated: bool = False,
    steps: int = 32,
    special_tokens: tuple[bool, bool] | None = None,
    tokenizer=None,
) -> InfluenceMap:
    """Measure how far and how strongly the prompt changes the model, layer by layer.

    Args:
        model: a transformers model that :func:`attnviz.with_pattern` supports (BERT / MiniLM,
            GPT-2, Mistral, ...; a task model such as ``...ForSequenceClassification`` is fine; an
            ``attnviz.prompts.PromptModel`` stands for its ``.base``), in eval mode. Its weights are
            not changed.
        prompt: the prompt vectors ``(n, H)``, or anything with ``.weight`` ``(n, H)`` and
            ``.placement`` (an ``attnviz.prompts.SoftPrompt``).
        batch: ``input_ids`` ``(B, T)`` and ``attention_mask`` (right padding) of the *text*, as the
            tokenizer gives them (special tokens included), optionally ``token_type_ids``.
        pattern: the attention pattern (default full attention; causal for decoders).
        placement: where the prompt goes; default ``prompt.placement``.
        method: ``"ablation"``, ``"rollout"`` or ``"gradient"`` (see the module docstring).
        baseline: what replaces the prompt: ``"zeros"``, ``"mean"`` (mean token embedding), or a
            tensor ``(n, H)`` / ``(H,)``. Ablation and gradient use it; rollout needs none.
        backend: ``"dense"`` (default; exact zeros, attentions for rollout), ``"sdpa"`` or ``"flex"``
            (ablation only, inference; ``flex`` cannot run backward on CPU).
        output: ``output(model_outputs) -> (B,)``, the scalar per example that attribution explains.
            Default: ``classifier``'s logit if a classifier is given, else the norm of the readout
            token's last hidden state.
        classifier: a module / callable ``(B, H) -> (B, C)`` applied to the readout token's last
            hidden state (e.g. ``prompt_model.head.classifier`` with ``cls`` pooling).
        target: the class whose logit is explained: int or ``(B,)``; default each example's
            predicted class (with the prompt).
        per_token: compute :attr:`InfluenceMap.attribution`. Default True for ``gradient`` and
            ``rollout`` (free), False for ``ablation`` (one extra forward pass per prompt token).
        integrated: ``gradient`` only: integrated gradients from the baseline to the prompt with
            ``captum`` (``pip install captum``) in ``steps`` steps, instead of grad × input.
        special_tokens: ``(cls, sep)``: whether the tokenizer put ``[CLS]`` first and ``[SEP]``
            last in each row. Default: ask ``tokenizer`` if given, else ``(True, True)`` for encoders
            and ``(False, False)`` for decoders.
        tokenizer: only to find ``special_tokens``.
    Returns:
        :class:`InfluenceMap` with ``values`` ``(B, layers + 1, L)``.
    Raises:
        ValueError: unknown method / baseline / backend, an empty batch or empty rows, a prompt
            whose size or placement differs from the layout's, a layout longer than the model's
            positions, a model in training mode.
    """
    from .models.interface import BACKENDS

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    if method == "rollout" and backend != "dense":
        raise ValueError(f"rollout needs attention probabilities, which only backend='dense' returns; got {backend!r}")
    if method == "gradient" and backend == "flex":
        raise ValueError("gradient needs a backward pass; backend='flex' has none on CPU. Use 'dense' or 'sdpa'")
    if integrated and method != "gradient":
        raise ValueError(f"integrated=True is integrated gradients, for method='gradient', not {method!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    base_of = getattr(model, "base", None)
    if (callable(getattr(model, "config", None)) or not hasattr(model, "config")) and hasattr(base_of, "config"):
        model = base_of  # an attnviz.prompts.PromptModel (its .config() is a method): its frozen base model
    base = anatomy.base_model(model)
    if base.training:
        raise ValueError("the model is in training mode (dropout on, so the two runs would differ at random); "
                         "call model.eval() first")
    weight, placement = _prompt_and_placement(prompt, placement)
    emb = base.get_input_embeddings()
    H = emb.weight.shape[1]
    if weight.shape[1] != H:
        raise ValueError(f"the prompt has hidden size {weight.shape[1]}, the model {H}")
    num_layers = anatomy.num_layers(base)
    if pattern is None:
        pattern = AttentionPattern(causal=anatomy.is_causal(base))
    if not isinstance(pattern, AttentionPattern):
        raise TypeError(f"pattern must be an attnviz.AttentionPattern, got {type(pattern).__name__}")
    pattern.check_layers(num_layers)
    if per_token is None:
        per_token = method != "ablation"
    cls, sep = resolve_special_tokens(base, tokenizer, special_tokens)
    groups, layouts, ids = _groups(batch, placement, pattern, cls, sep, anatomy.max_positions(base))
    device = emb.weight.device
    ids = ids.to(device)
    types = batch.get("token_type_ids")
    types = None if types is None else torch.as_tensor(types).to(device)
    if types is not None and types.shape != ids.shape:
        raise ValueError(f"token_type_ids has shape {tuple(types.shape)}, input_ids {tuple(ids.shape)}")
    weight = weight.detach().to(device=device, dtype=torch.float32)
    base_vec, base_name = _baseline(baseline, weight, emb)

    B = ids.shape[0]
    n = placement.n_tokens
    L = max(l.length for l in layouts)
    values = torch.zeros(B, num_layers + 1, L)
    valid = torch.zeros(B, L, dtype=torch.bool)
    reached = torch.zeros(B, num_layers + 1, L, dtype=torch.bool)
    can_reach = torch.zeros(B, n, dtype=torch.bool)
    readout = torch.tensor([lay.readout_position for lay in layouts], dtype=torch.long)
    cache: dict = {}
    for b, lay in enumerate(layouts):
        if lay not in cache:
            rch = spread_pattern(pattern, lay, num_layers).reached
            ro = lay.readout_position
            each = torch.tensor([bool(spread_pattern(pattern, lay, num_layers, sources=[p]).reached[-1, ro])
                                 for p in lay.prompt_positions], dtype=torch.bool)
            cache[lay] = (rch, each)
        rch, each = cache[lay]
        valid[b, : lay.length] = True
        reached[b, :, : lay.length] = rch
        can_reach[b] = each

    notes: list[str] = []
    runner = _Runner(base, pattern, backend, ids, types)
    scalar = _Output(output, classifier, target, readout, B)
    attribution = torch.zeros(B, n) if per_token else None

    for g in groups:
        rows = g.rows
        Lg = g.layout.length
        ro = readout[rows].to(device)
        if method == "ablation":
            with torch.no_grad():
                out_with = runner(g, weight, output_hidden_states=True)
                out_base = runner(g, base_vec, output_hidden_states=True)
                hw, hb = _hidden(out_with), _hidden(out_base)
                values[rows, :, :Lg] = torch.stack([_relative_change(a, c) for a, c in zip(hw, hb)], 1).cpu()
                if per_token:
                    scalar.prepare(runner, g, weight, base_vec, out_with, out_base)
                    o_with = scalar(out_with, rows)
                    for j in range(n):
                        p = weight.clone()
                        p[j] = base_vec[j]
                        attribution[rows, j] = (o_with - scalar(runner(g, p, output_hidden_states=True), rows)).float().cpu()
        elif method == "rollout":
            vals, per = _rollout_group(base, runner, g, weight, n, ro)
            values[rows, :, :Lg] = vals.cpu()
            if per_token:
                attribution[rows] = per.cpu()
        else:
            values[rows, :, :Lg] = _jvp_group(runner, g, weight, base_vec).cpu()
            if per_token:
                scalar.prepare(runner, g, weight, base_vec)
                if integrated:
                    attribution[rows] = _integrated_group(runner, g, weight, base_vec, scalar, steps).cpu()
                else:
                    attribution[rows] = _grad_x_input_group(runner, g, weight, base_vec, scalar).cpu()
    values = values * valid[:, None, :]

    if len({l.prompt_positions for l in layouts}) > 1:
        notes.append(f"rows have different prompt positions ({placement.kind} placement, rows of different "
                     f"lengths); the mean aligns positions by index on the longest row's layout")
    if method == "gradient":
        notes.append("values: first-order (Jacobian · (prompt − baseline)) estimate of the ablation map, "
                     "‖J_l δ‖ / ‖h_l‖")
        if per_token:
            notes.append("attribution: " + (f"integrated gradients (captum, {steps} steps)" if integrated
                                            else "grad × (prompt − baseline)") + " of " + scalar.description)
    if method == "rollout":
        notes.append("values: rolled-out attention mass on the prompt positions (Abnar & Zuidema 2020: "
                     "head mean + identity, row-normalised); attribution: the readout token's mass on each prompt token")
    if method == "ablation" and per_token:
        notes.append("attribution: output(with prompt) − output(prompt token j replaced by the baseline), output = "
                     + scalar.description)
    if backend != "dense" and method == "ablation":
        notes.append(f"backend {backend!r}: exact zeros where unreached are only guaranteed on 'dense'")
    return InfluenceMap(values=values, valid=valid, reached=reached, attribution=attribution, can_reach=can_reach,
                        readout=readout, layout=max(layouts, key=lambda x: x.length), layouts=tuple(layouts),
                        pattern=pattern, method=method, baseline=base_name if method != "rollout" else "none",
                        notes=tuple(notes))


class _Output:
    """``scalar(model_outputs, rows) -> (g,)``: the output that attribution explains, per example.

    Default (no ``output``, no ``classifier``): the readout token's *displacement*
    ``‖h_last[ro] − h_last,baseline[ro]‖`` — how far the prompt moves the readout's final state from
    where the baseline prompt leaves it (0 for the baseline itself). Not the plain norm
    ``‖h_last[ro]‖``: under a final LayerNorm (BERT, MiniLM) that norm is nearly constant, and its
    gradient vanishes (attributions of ~1e-8 on a tiny BERT).
    """

    def __init__(self, output, classifier, target, readout: torch.Tensor, B: int):
        if output is not None and classifier is not None:
            raise ValueError("give output= or classifier=, not both")
        if output is not None and not callable(output):
            raise TypeError(f"output must be a callable model_outputs -> (B,), got {type(output).__name__}")
        if classifier is not None and not callable(classifier):
            raise TypeError(f"classifier must be a callable (B, H) -> (B, C), got {type(classifier).__name__}")
        self.target = None
        if target is not None:
            t = torch.as_tensor(target, dtype=torch.long)
            if t.dim() > 1 or (t.dim() == 1 and t.shape[0] != B):
                raise ValueError(f"target must be an int or ({B},) class indices, got shape {tuple(t.shape)}")
            self.target = t.expand(B).clone()
        self.output, self.classifier, self.readout = output, classifier, readout
        self.needs_target = classifier is not None and target is None
        self.needs_reference = output is None and classifier is None
        self.reference: torch.Tensor | None = None     # (B, H) readout states with the baseline prompt

    @property
    def description(self) -> str:
        if self.output is not None:
            return "the given output(model_outputs)"
        if self.classifier is not None:
            return "the classifier's logit of " + ("each example's predicted class" if self.needs_target else "the target class")
        return "the readout token's displacement ‖h_last − h_last(baseline)‖ at the readout position"

    def prepare(self, runner: "_Runner", g: "_Group", weight, base_vec, out_with=None, out_base=None) -> None:
        """Fix what the output needs before attribution: the predicted class (with the prompt) or
        the readout state with the baseline prompt. Reuses given runs, else runs the model."""
        with torch.no_grad():
            if self.needs_target:
                out_with = out_with if out_with is not None else runner(g, weight, output_hidden_states=True)
                if self.target is None:
                    self.target = torch.zeros(len(self.readout), dtype=torch.long)
                self.target[g.rows] = self.classifier(self._at_readout(out_with, g.rows)).argmax(-1).cpu()
            if self.needs_reference:
                out_base = out_base if out_base is not None else runner(g, base_vec, output_hidden_states=True)
                h = self._at_readout(out_base, g.rows).to(torch.float32)
                if self.reference is None:
                    self.reference = h.new_zeros(len(self.readout), h.shape[-1])
                self.reference[g.rows.to(h.device)] = h

    def _at_readout(self, out, rows):
        h = _hidden(out)[-1]
        return h[torch.arange(h.shape[0], device=h.device), self.readout[rows].to(h.device)]

    def __call__(self, out, rows: torch.Tensor) -> torch.Tensor:
        if self.output is not None:
            o = self.output(out)
        elif self.classifier is not None:
            logits = self.classifier(self._at_readout(out, rows))
            if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
                raise ValueError(f"classifier must map (B, H) -> (B, C), got {getattr(logits, 'shape', logits)}")
            t = self.target[rows].to(logits.device)
            o = logits.gather(1, t[:, None])[:, 0]
        else:
            h = self._at_readout(out, rows).to(torch.float32)
            o = (h - self.reference[rows.to(h.device)]).norm(dim=-1)
        if not isinstance(o, torch.Tensor) or o.shape != (len(rows),):
            shape = tuple(o.shape) if isinstance(o, torch.Tensor) else type(o).__name__
            raise ValueError(f"output must give one scalar per example, shape ({len(rows)},); got {shape}")
        return o


def _rollout_group(base, runner: _Runner, g: _Group, weight, n: int, readout: torch.Tensor):
    """Rollout inside forward hooks on the attention modules: ``((g, layers+1, Lg), (g, n))``."""
    mods = anatomy.attention_modules(base)
    if not mods:
        raise ValueError(f"found no attention modules in {type(base).__name__} to read probabilities from")
    Lg, rows = g.layout.length, len(g.rows)
    mass = torch.zeros(rows, Lg, n, device=weight.device)
    mass[:, list(g.layout.prompt_positions), torch.arange(n)] = 1.0
    states = [mass]

    def hook(module, args, out):
        probs = out[index[module]] if isinstance(out, tuple) else None
        if probs is None:
            raise ValueError(f"{type(module).__name__} returned no attention probabilities; rollout needs backend='dense'")
        states.append(rollout_step(probs.detach(), states[-1]))

    index = {m: i for m, i in mods}
    with anatomy.temporary_hooks([(m, hook) for m, _ in mods]), torch.no_grad():
        runner(g, weight)
    stacked = torch.stack(states, 1)                                          # (g, layers+1, Lg, n)
    per = stacked[torch.arange(rows), -1, readout.to(stacked.device)]          # (g, n)
    return stacked.sum(-1), per


def _jvp_group(runner: _Runner, g: _Group, weight, base_vec) -> torch.Tensor:
    """``‖J_l (prompt − baseline)‖ / ‖h_l‖`` per layer and token, one forward-mode pass."""
    import torch.autograd.forward_ad as fwAD

    with torch.no_grad(), fwAD.dual_level():
        dual = fwAD.make_dual(weight, weight - base_vec)
        out = runner(g, dual, output_hidden_states=True)
        rows = []
        for h in _hidden(out):
            primal, tangent = fwAD.unpack_dual(h)
            if tangent is None:
                tangent = torch.zeros_like(primal)
            diff = tangent.to(torch.float32).norm(dim=-1)
            rows.append(torch.where(diff == 0, diff, diff / primal.to(torch.float32).norm(dim=-1).clamp(min=1e-30)))
    return torch.stack(rows, 1)


def _grad_x_input_group(runner: _Runner, g: _Group, weight, base_vec, scalar) -> torch.Tensor:
    """``Σ_h ∂o_b/∂p_bjh · (p − baseline)_jh`` with a per-example copy of the prompt: ``(g, n)``."""
    leaf = weight.detach().expand(len(g.rows), -1, -1).clone().requires_grad_(True)
    with torch.enable_grad():
        o = scalar(runner(g, leaf, output_hidden_states=True), g.rows)
        (grad,) = torch.autograd.grad(o.sum(), leaf)
    return (grad * (weight - base_vec)[None]).sum(-1).detach()


def _integrated_group(runner: _Runner, g: _Group, weight, base_vec, scalar, steps: int) -> torch.Tensor:
    """Integrated gradients with captum (optional dependency): ``(g, n)``."""
    try:
        attr = importlib.import_module("captum.attr")
    except ImportError as exc:
        raise ImportError("integrated=True needs captum (pip install captum); or use integrated=False for "
                          "grad × input") from exc
    k = len(g.rows)

    def forward(prompt_rows: torch.Tensor) -> torch.Tensor:
        # captum stacks the interpolation steps along the batch axis: (k * s, n, H).
        s = prompt_rows.shape[0] // k
        outs = []
        for i in range(s):
            chunk = prompt_rows[i * k:(i + 1) * k]
            outs.append(scalar(runner(g, chunk, output_hidden_states=True), g.rows))
        return torch.cat(outs)

    ig = attr.IntegratedGradients(forward)
    inputs = weight.detach().expand(k, -1, -1).clone()
    baselines = base_vec.detach().expand(k, -1, -1).clone()
    with torch.enable_grad():
        a = ig.attribute(inputs, baselines=baselines, n_steps=steps, internal_batch_size=k)
    return a.sum(-1).detach()
