"""Attention patterns: who may attend whom, per layer.

An :class:`AttentionPattern` describes the sparse attention of the long-context models people use
(Longformer / LED sliding windows with global tokens, BigBird random blocks, Mistral's causal
sliding window, dilated windows) with one small frozen config. Every view of "who may attend
whom" in attnviz is derived from one rule, :func:`allowed`, evaluated either on index grids
(:func:`build_masks`, the dense reference) or on scalar indices inside FlexAttention
(:func:`mask_mod`), in the style of attention-gym's ``mask_mod`` factories.

Window semantics follow the models users know:

* bidirectional (``causal=False``): ``window`` is Longformer's ``attention_window``, the *total*
  width: query ``q`` sees keys ``k`` with ``|q - k| <= window // 2`` (must be even).
* causal (``causal=True``): ``window`` is Mistral's ``sliding_window``: ``q - window < k <= q``.
* ``dilation=d`` keeps the same number of keys but spaces them ``d`` apart
  (``(q - k) % d == 0``, span ``d * window // 2`` each side), as Longformer's dilated windows.
* global positions attend to every key and are attended by every query (under ``causal``, only
  within ``k <= q``); ``global_prompt`` makes every prompt token global.
* ``random_blocks=r`` (BigBird): the sequence is cut into blocks of ``block_size``; each query block
  also sees ``r`` key blocks drawn, per layer, from ``numpy.random.default_rng([seed, layer])``
  among the blocks that are not its neighbours (under ``causal``: earlier blocks only).

The mask zoo of modern decoders, each one more part (positions are absolute, as everywhere here):

* ``prefix_lm=P`` (PaliGemma / T5-style prefix-LM, attention-gym's ``generate_prefix_lm_mask``):
  the positions ``< P`` attend each other both ways, ``q < P and k < P``, an exception to
  ``causal``. ``prefix_lm="prompt"`` makes the prefix end with the layout's last prompt token (a
  prefix placement: ``[CLS]`` and the prompt), so the prompt is bidirectional among itself. On a
  full causal pattern this equals attention-gym's ``(k < P) | causal``; on a causal window the
  prefix does not widen the window of later queries (add ``global_positions`` for that).
* ``sinks=S`` (StreamingLLM attention sinks): every query keeps the first ``S`` keys (``k < S``,
  ``k <= q`` under causal) besides its window; sinks attend only as ordinary queries.
* ``chunk=C`` (Llama 4's ``attention_chunk_size``, transformers' ``chunked_overlay``): the local
  part (window, or full attention) stays inside chunks of ``C``: ``q // C == k // C``. Global
  positions, sinks and random blocks still reach across chunks: a prompt in the sink stays visible.
* ``documents=(n0, n1, ...)`` (packing, attention-gym's ``generate_doc_mask_mod``, transformers'
  ``packed_sequence_mask_function``): the row holds documents of these lengths (summing to ``L``)
  and no pair crosses a document boundary, whatever the other parts say.

One layer allows ``same_document & (((window & chunk) | global | sink | random) & causal | prefix)``.

More families are *mask parts* (:mod:`attnviz.masks`, one module each, e.g. the Sparse
Transformer's :class:`~attnviz.masks.Strided`): ``parts=(Strided(8),)`` adds the part's pairs to the
allowed union (role ``allow``) or requires them of every pair (role ``restrict``), with a reason code
of its own appended to :data:`REASONS`.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .checks import is_int
from .masks import ALLOW, MASK_PARTS, RESTRICT, MaskPart, part_from_dict
from .placement import SequenceLayout, plain_layout

#: The built-in reason codes, index = code.
CORE_REASONS = (
    "blocked: outside the window",
    "allowed: window",
    "allowed: global",
    "allowed: random block",
    "blocked: future token (causal)",
    "allowed: prefix (bidirectional)",
    "allowed: attention sink",
    "blocked: outside the chunk",
    "blocked: other document",
)
BLOCKED, WINDOW, GLOBAL, RANDOM, FUTURE, PREFIX, SINK, OUTSIDE_CHUNK, OTHER_DOCUMENT = range(9)
#: Reason code of each mask part of :data:`attnviz.masks.MASK_PARTS` (by name), after the built-in ones.
PART_CODES = {name: len(CORE_REASONS) + i for i, name in enumerate(MASK_PARTS)}
#: Reason codes returned by :func:`mask_reasons`, index = code: the built-in ones, then one per mask part.
REASONS = CORE_REASONS + tuple(cls.reason for cls in MASK_PARTS.values())
#: The codes of allowed pairs.
ALLOWED_CODES = (WINDOW, GLOBAL, RANDOM, PREFIX, SINK) + tuple(
    PART_CODES[name] for name, cls in MASK_PARTS.items() if cls.role == ALLOW)


@dataclass(frozen=True)
class AttentionPattern:
    """One attention configuration, applied to every layer (or per layer, with tuples).

    Args:
        window: int, per-layer tuple of ``int | None``, or ``None`` for full attention.
        causal: decoder-style attention (``k <= q``); changes what ``window`` means (see module doc).
        global_positions: absolute positions that attend to all and are attended by all.
        global_prompt: every prompt token of the layout is global.
        dilation: int or per-layer tuple, >= 1; spacing between the keys of a window.
        random_blocks: BigBird random key blocks per query block (0 = none).
        block_size: block length for ``random_blocks``; required when ``random_blocks > 0``.
        seed: makes the random blocks reproducible.
        prefix_lm: ``P`` (int >= 1), ``"prompt"`` (up to the layout's last prompt token) or None:
            positions ``< P`` attend each other both ways (prefix-LM), even under ``causal``.
        sinks: StreamingLLM attention sinks, int >= 0: every query keeps the first ``sinks`` keys.
        chunk: int >= 1, per-layer tuple of ``int | None``, or None: the window stays inside
            chunks of this length (Llama 4's ``attention_chunk_size``).
        documents: lengths of the packed documents, summing to ``L``; () = one document.
        parts: more mask families, instances of the classes in :data:`attnviz.masks.MASK_PARTS`
            (e.g. ``(Strided(8),)``).
    """

    window: int | tuple[int | None, ...] | None = None
    causal: bool = False
    global_positions: tuple[int, ...] = ()
    global_prompt: bool = False
    dilation: int | tuple[int, ...] = 1
    random_blocks: int = 0
    block_size: int | None = None
    seed: int = 0
    prefix_lm: int | str | None = None
    sinks: int = 0
    chunk: int | tuple[int | None, ...] | None = None
    documents: tuple[int, ...] = ()
    parts: tuple[MaskPart, ...] = ()

    def __post_init__(self):
        # Normalise sequences to tuples so patterns are hashable and compare by value.
        # Only integer-valued entries become ints; floats, strings and bools stay as given so the
        # checks below reject them instead of silently truncating 2.5 -> 2 or True -> 1.
        for name in ("window", "dilation", "global_positions", "chunk", "documents"):
            value = getattr(self, name)
            if isinstance(value, (np.ndarray, torch.Tensor)):
                value = value.tolist()
            if isinstance(value, (list, tuple, range)):
                object.__setattr__(self, name, tuple(int(v) if is_int(v) else v for v in value))
        if not isinstance(self.global_positions, tuple):
            raise TypeError(
                f"global_positions must be a tuple of positions, got {self.global_positions!r}; "
                f"for one position write global_positions=({self.global_positions!r},)"
            )
        if not isinstance(self.causal, bool):
            raise TypeError(f"causal must be True or False, got {self.causal!r}")
        if not isinstance(self.global_prompt, bool):
            raise TypeError(f"global_prompt must be True or False, got {self.global_prompt!r}")

        windows = self.window if isinstance(self.window, tuple) else (self.window,)
        if isinstance(self.window, tuple) and not self.window:
            raise ValueError("window=() has no layers; give an int, None, or one entry per layer")
        for w in windows:
            if w is None:
                continue
            if not is_int(w):
                raise TypeError(f"window must be an int, a tuple of ints/None per layer, or None; got {w!r}")
            if w < 1:
                raise ValueError(f"window must be positive, got {w}")
            if not self.causal and w % 2:
                raise ValueError(
                    f"a bidirectional window is the total width (window // 2 each side, as Longformer's "
                    f"attention_window) and must be even, got {w}; try "
                    + " or ".join(str(x) for x in sorted({max(w - 1, 2), w + 1}))
                )
        dilations = self.dilation if isinstance(self.dilation, tuple) else (self.dilation,)
        for d in dilations:
            if not is_int(d) or d < 1:
                raise ValueError(f"dilation must be an int >= 1 (or a per-layer tuple of them), got {d!r}")
        for p in self.global_positions:
            if not is_int(p) or p < 0:
                raise ValueError(f"global position {p!r} is outside [0, L): positions are absolute and >= 0")
        if not is_int(self.random_blocks) or self.random_blocks < 0:
            raise ValueError(f"random_blocks must be an int >= 0, got {self.random_blocks!r}")
        if self.block_size is not None and (not is_int(self.block_size) or self.block_size < 1):
            raise ValueError(f"block_size must be an int >= 1, got {self.block_size!r}")
        if self.random_blocks and self.block_size is None:
            raise ValueError(
                f"random_blocks={self.random_blocks} needs block_size (the BigBird block length), e.g. block_size=64"
            )
        if not is_int(self.seed):
            raise TypeError(f"seed must be an int, got {self.seed!r}")
        if self.seed < 0:  # numpy.random.default_rng([seed, layer]) needs non-negative entries
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.prefix_lm is not None and self.prefix_lm != "prompt" and (not is_int(self.prefix_lm) or self.prefix_lm < 1):
            raise ValueError(f"prefix_lm must be an int >= 1 (the prefix length P: positions < P attend each other "
                             f"both ways), \"prompt\" (up to the last prompt token) or None; got {self.prefix_lm!r}")
        if not is_int(self.sinks) or self.sinks < 0:
            raise ValueError(f"sinks must be an int >= 0 (how many first positions every query keeps, "
                             f"StreamingLLM uses 4), got {self.sinks!r}")
        if isinstance(self.chunk, tuple) and not self.chunk:
            raise ValueError("chunk=() has no layers; give an int, None, or one entry per layer")
        for c in self.chunk if isinstance(self.chunk, tuple) else (self.chunk,):
            if c is not None and (not is_int(c) or c < 1):
                raise ValueError(f"chunk must be an int >= 1 (Llama 4's attention_chunk_size), a per-layer tuple "
                                 f"of ints/None, or None; got {c!r}")
        if not isinstance(self.documents, tuple):
            raise TypeError(f"documents must be a tuple of document lengths, e.g. documents=(100, 60), "
                            f"got {self.documents!r}")
        bad = [n for n in self.documents if not is_int(n) or n < 1]
        if bad:
            raise ValueError(f"documents are lengths (ints >= 1) summing to the sequence length, got {bad} "
                             f"in documents={self.documents!r}")
        if isinstance(self.parts, list):
            object.__setattr__(self, "parts", tuple(self.parts))
        if not isinstance(self.parts, tuple):
            raise TypeError(f"parts must be a tuple of mask parts, e.g. parts=(Strided(8),), got {self.parts!r}")
        known = tuple(MASK_PARTS.values())
        for part in self.parts:
            if not isinstance(part, known):
                raise TypeError(f"parts holds {part!r}, not a mask part; use instances of "
                                f"{', '.join(c.__module__ + '.' + c.__name__ for c in known)} (attnviz.masks.MASK_PARTS)")
        self.per_layer  # window, dilation, chunk and per-layer parts must agree on the number of layers

    # ---- per-layer views -------------------------------------------------------------------
    @property
    def per_layer(self) -> int | None:
        """Number of layers the pattern is written for (tuple lengths), or None if uniform."""
        tuples = {name: v for name, v in (("window", self.window), ("dilation", self.dilation), ("chunk", self.chunk))
                  if isinstance(v, tuple)}
        lengths = {len(v) for v in tuples.values()} | {p.num_layers for p in self.parts if p.num_layers is not None}
        if len(lengths) > 1:
            per_layer_parts = [repr(p) for p in self.parts if p.num_layers is not None]
            names = " and ".join([*tuples, *(f"parts {p}" for p in per_layer_parts)])
            shown = ", ".join([*(f"{name}={v!r}" for name, v in tuples.items()), *per_layer_parts])
            raise ValueError(f"{names} tuples have different lengths {sorted(lengths)} ({shown}); give one "
                             f"entry per layer in each, or a single value for one that is the same in every layer")
        return lengths.pop() if lengths else None

    def check_layers(self, num_layers: int) -> None:
        """Raise if per-layer tuples do not have exactly ``num_layers`` entries."""
        if not is_int(num_layers) or num_layers < 1:
            raise ValueError(f"num_layers must be an int >= 1, got {num_layers!r}")
        n = self.per_layer
        if n is not None and n != num_layers:
            raise ValueError(
                f"the pattern has per-layer settings for {n} layers but the model has {num_layers}; "
                f"give exactly {num_layers} entries (window={self.window!r}, dilation={self.dilation!r}, "
                f"chunk={self.chunk!r}" + "".join(f", {p!r}" for p in self.parts if p.num_layers is not None) + ")"
            )

    def _check_layer(self, layer: int) -> None:
        n = self.per_layer
        if not is_int(layer) or layer < 0 or (n is not None and layer >= n):
            raise ValueError(f"layer {layer!r} is outside the pattern's layers [0, {n if n is not None else 'any'})")

    def window_at(self, layer: int) -> int | None:
        self._check_layer(layer)
        return self.window[layer] if isinstance(self.window, tuple) else self.window

    def dilation_at(self, layer: int) -> int:
        self._check_layer(layer)
        return self.dilation[layer] if isinstance(self.dilation, tuple) else self.dilation

    def chunk_at(self, layer: int) -> int | None:
        self._check_layer(layer)
        return self.chunk[layer] if isinstance(self.chunk, tuple) else self.chunk

    def is_full(self, layer: int) -> bool:
        """True when ``layer`` allows every pair: full bidirectional attention that no chunk,
        document boundary or ``restrict`` mask part cuts (what a backend may skip masking for)."""
        return (self.window_at(layer) is None and not self.causal and self.chunk_at(layer) is None
                and not self.documents and not any(part.role == RESTRICT for part in self.parts))

    def prefix_length(self, layout: SequenceLayout | int) -> int:
        """``P`` of ``prefix_lm`` on this layout (0 = no prefix): ``"prompt"`` ends after the last
        prompt position; an int longer than the layout is an error."""
        layout = as_layout(layout)
        if self.prefix_lm is None:
            return 0
        if self.prefix_lm == "prompt":
            if not layout.prompt_positions:
                raise ValueError('prefix_lm="prompt" needs a layout with a prompt; give prefix_lm=P instead')
            return max(layout.prompt_positions) + 1
        if self.prefix_lm > layout.length:
            raise ValueError(f"prefix_lm={self.prefix_lm} is longer than the layout ({layout.length} positions); "
                             f"give at most {layout.length}")
        return int(self.prefix_lm)

    def document_ids(self, layout: SequenceLayout | int) -> torch.Tensor | None:
        """long ``(L,)``: the document of every position, or None without ``documents``."""
        layout = as_layout(layout)
        if not self.documents:
            return None
        if sum(self.documents) != layout.length:
            raise ValueError(f"documents={self.documents!r} sum to {sum(self.documents)} but the layout has "
                             f"{layout.length} positions; give lengths that sum to {layout.length}")
        return torch.repeat_interleave(torch.arange(len(self.documents)), torch.tensor(self.documents))

    def global_mask(self, layout: SequenceLayout | int) -> torch.Tensor:
        """bool ``(L,)``: positions with global attention (``global_positions`` and, with
        ``global_prompt``, the layout's prompt positions)."""
        layout = as_layout(layout)
        bad = [p for p in self.global_positions if p >= layout.length]
        if bad:
            raise ValueError(f"global positions {bad} are outside [0, {layout.length}) for this layout of length {layout.length}")
        g = torch.zeros(layout.length, dtype=torch.bool)
        g[list(self.global_positions)] = True
        if self.global_prompt:
            g[list(layout.prompt_positions)] = True
        return g

    def random_block_table(self, layer: int, length: int) -> torch.Tensor | None:
        """bool ``(nb, nb)`` with ``[i, j]`` = query block ``i`` sees key block ``j`` at random,
        ``nb = ceil(length / block_size)``; None without random blocks. Same for the same seed."""
        if not self.random_blocks:
            return None
        nb = -(-length // self.block_size)
        return torch.from_numpy(_random_table(self.random_blocks, nb, self.seed, layer, self.causal).copy())


@functools.lru_cache(maxsize=256)
def _random_table(random_blocks: int, nb: int, seed: int, layer: int, causal: bool) -> np.ndarray:
    """bool ``(nb, nb)`` of :meth:`AttentionPattern.random_block_table` (read-only, cached: a widget
    that moves the window redraws without drawing the blocks again). Query block ``i`` picks among
    the blocks ``j < i - 1`` (causal) or ``|j - i| > 1``, one ``rng.choice`` per block in order."""
    rng = np.random.default_rng([seed, layer])
    table = np.zeros((nb, nb), dtype=bool)
    blocks = np.arange(nb)
    for i in range(nb):
        earlier = blocks[:max(i - 1, 0)]
        cand = earlier if causal else np.concatenate((earlier, blocks[i + 2:]))
        if len(cand):
            pick = rng.choice(cand, size=min(random_blocks, len(cand)), replace=False)
            table[i, pick] = True
    table.flags.writeable = False
    return table


def as_layout(layout: SequenceLayout | int) -> SequenceLayout:
    """Accept a :class:`SequenceLayout` or a plain length ``L`` (no prompt, no special tokens)."""
    if isinstance(layout, SequenceLayout):
        return layout
    if is_int(layout):
        if layout < 1:
            raise ValueError(f"sequence length must be >= 1, got {layout}")
        return plain_layout(int(layout), cls=False, sep=False)
    raise TypeError(f"layout must be a SequenceLayout or an int length, got {type(layout).__name__}")


# ---- the one rule, as named parts ---------------------------------------------------------------
#: A mask function in FlexAttention's and transformers' signature: ``(b, h, q_idx, kv_idx) -> bool``
#: tensor of the broadcast shape of ``q_idx`` and ``kv_idx`` (``b`` and ``h`` are never read here).
MaskFn = Callable

#: Up to this many contiguous runs of global positions are tested with range comparisons; more
#: (e.g. a scattered prompt) with one lookup into the ``(L,)`` table.
MAX_GLOBAL_RANGES = 4


def and_masks(*parts: MaskFn) -> MaskFn:
    """The AND of mask functions (one part: that part itself, no wrapper). As torch's and
    transformers' ``and_masks``, but starting from the first part rather than a constant, so the
    closure FlexAttention compiles holds only the parts' own operations, and ``b`` may be None."""
    if not parts:
        raise ValueError("and_masks needs at least one mask function")
    if len(parts) == 1:
        return parts[0]

    def and_mask(b, h, q_idx, kv_idx):
        out = parts[0](b, h, q_idx, kv_idx)
        for part in parts[1:]:
            out = out & part(b, h, q_idx, kv_idx)
        return out

    return and_mask


def or_masks(*parts: MaskFn) -> MaskFn:
    """The OR of mask functions (one part: that part itself); see :func:`and_masks`."""
    if not parts:
        raise ValueError("or_masks needs at least one mask function")
    if len(parts) == 1:
        return parts[0]

    def or_mask(b, h, q_idx, kv_idx):
        out = parts[0](b, h, q_idx, kv_idx)
        for part in parts[1:]:
            out = out | part(b, h, q_idx, kv_idx)
        return out

    return or_mask


def full_part() -> MaskFn:
    """Every pair (full attention)."""
    def full(b, h, q_idx, kv_idx):
        return torch.ones_like(q_idx - kv_idx, dtype=torch.bool)
    return full


def causal_part() -> MaskFn:
    """``k <= q`` (transformers' ``causal_mask_function``)."""
    def causal(b, h, q_idx, kv_idx):
        return kv_idx <= q_idx
    return causal


def window_part(window: int, causal: bool, dilation: int = 1, device=None) -> MaskFn:
    """The band: bidirectional ``|q - k| <= (window // 2) * dilation``, causal
    ``0 <= q - k < window * dilation``; with ``dilation > 1`` also ``(q - k) % dilation == 0``
    (the modulo only then). Bounds travel as 0-d tensors on ``device``: ``torch.compile`` takes
    them as inputs instead of guarding on their values, so a new window does not recompile."""
    if causal:
        span = torch.tensor(window * dilation, device=device)

        def causal_window(b, h, q_idx, kv_idx):
            diff = q_idx - kv_idx
            return (diff >= 0) & (diff < span)
        band = causal_window
    else:
        half = torch.tensor((window // 2) * dilation, device=device)

        def window(b, h, q_idx, kv_idx):
            return (q_idx - kv_idx).abs() <= half
        band = window
    if dilation == 1:
        return band
    step = torch.tensor(dilation, device=device)

    def dilated(b, h, q_idx, kv_idx):
        return (q_idx - kv_idx) % step == 0
    return and_masks(band, dilated)


def global_runs(is_global: torch.Tensor) -> tuple[tuple[int, int], ...]:
    """Contiguous runs ``((start, stop), ...)`` of True in a bool ``(L,)`` table."""
    g = is_global.to("cpu", torch.int8)
    edges = torch.diff(torch.nn.functional.pad(g, (1, 1))).nonzero().flatten().tolist()
    return tuple(zip(edges[0::2], edges[1::2]))


def global_part(is_global: torch.Tensor, device=None) -> MaskFn | None:
    """Pairs with a global query or key (``is_global``: bool ``(L,)``), or None without globals.
    Up to :data:`MAX_GLOBAL_RANGES` runs of positions are range comparisons (``q < 21`` for a
    21-token prefix with ``[CLS]``), more are a lookup into the table."""
    runs = global_runs(is_global)
    if not runs:
        return None
    if len(runs) > MAX_GLOBAL_RANGES:
        table = is_global.to(device)

        def global_lookup(b, h, q_idx, kv_idx):
            return table[q_idx] | table[kv_idx]
        return global_lookup
    tests = []
    for start, stop in runs:
        hi = torch.tensor(stop, device=device)
        if start == 0:
            tests.append(lambda x, hi=hi: x < hi)
        else:
            lo = torch.tensor(start, device=device)
            tests.append(lambda x, lo=lo, hi=hi: (x >= lo) & (x < hi))
    if len(tests) == 1:
        inside = tests[0]

        def global_range(b, h, q_idx, kv_idx):
            return inside(q_idx) | inside(kv_idx)
        return global_range

    def global_ranges(b, h, q_idx, kv_idx):
        out = tests[0](q_idx) | tests[0](kv_idx)
        for t in tests[1:]:
            out = out | t(q_idx) | t(kv_idx)
        return out
    return global_ranges


def random_part(table: torch.Tensor | None, block_size: int, device=None) -> MaskFn | None:
    """BigBird random key blocks: ``table[q // block_size, k // block_size]`` (``table``: bool
    ``(nb, nb)``), or None without random blocks."""
    if table is None or not bool(table.any()):
        return None
    table = table.to(device)

    def random_blocks(b, h, q_idx, kv_idx):
        return table[q_idx // block_size, kv_idx // block_size]
    return random_blocks


def chunk_part(chunk: int, device=None) -> MaskFn:
    """``q // chunk == k // chunk`` (transformers' ``chunked_overlay`` without left padding)."""
    size = torch.tensor(chunk, device=device)

    def same_chunk(b, h, q_idx, kv_idx):
        return torch.div(q_idx, size, rounding_mode="floor") == torch.div(kv_idx, size, rounding_mode="floor")
    return same_chunk


def sink_part(sinks: int, device=None) -> MaskFn:
    """StreamingLLM attention sinks: ``k < sinks`` for every query."""
    n = torch.tensor(sinks, device=device)

    def sink(b, h, q_idx, kv_idx):
        return (kv_idx < n) & (q_idx >= 0)
    return sink


def prefix_part(prefix: int, device=None) -> MaskFn:
    """Prefix-LM: ``q < prefix and k < prefix`` (both ways)."""
    n = torch.tensor(prefix, device=device)

    def prefix_lm(b, h, q_idx, kv_idx):
        return (q_idx < n) & (kv_idx < n)
    return prefix_lm


def document_part(document: torch.Tensor, device=None) -> MaskFn:
    """Packed documents: ``document[q] == document[k]`` (``document``: long ``(L,)`` ids)."""
    table = document.to(device)

    def same_document(b, h, q_idx, kv_idx):
        return table[q_idx] == table[kv_idx]
    return same_document


@dataclass(frozen=True)
class RulePart:
    """A mask part (:mod:`attnviz.masks`) placed in one layer of one sequence length.

    Attributes:
        part: the :class:`attnviz.masks.MaskPart`.
        code: its reason code (index into :data:`REASONS`).
        length: ``L``.
        layer: the layer.
    """

    part: MaskPart
    code: int
    length: int
    layer: int

    @property
    def role(self) -> str:
        return self.part.role

    @property
    def name(self) -> str:
        return self.part.name

    def mask_fn(self, device=None) -> MaskFn:
        return self.part.mask_fn(self.length, self.layer, device)


@dataclass(frozen=True)
class LayerRule:
    """Who may attend whom in one layer, as the named parts of :func:`layer_rule`.

    A pair ``(q, k)`` is allowed when ``(window | global | random) & causal``; absent parts are
    left out of the composition (no global positions: no global test; no random blocks: no lookup;
    full attention: the window alone, which already allows everything).

    Attributes:
        length: ``L``.
        causal: decoder-style (``k <= q`` for every pair).
        window: the band width (see the module doc), None = full attention.
        dilation: spacing of the keys in the band, >= 1.
        is_global: bool ``(L,)``: positions with global attention.
        random: bool ``(nb, nb)`` random key blocks per query block, or None.
        block_size: the random blocks' length (None without them).
        chunk: the window stays inside chunks of this length (None: no chunks).
        sinks: the first ``sinks`` keys every query keeps.
        prefix: ``P``: positions ``< P`` attend each other both ways (0: no prefix).
        document: long ``(L,)`` document of every position, or None (one document).
        extra: the pattern's mask parts present in this layer (:class:`RulePart`), in pattern order.

    With the zoo's parts: ``same_document & (((window & chunk) | global | sink | random) & causal | prefix)``.
    """

    length: int
    causal: bool
    window: int | None
    dilation: int
    is_global: torch.Tensor
    random: torch.Tensor | None
    block_size: int | None
    chunk: int | None = None
    sinks: int = 0
    prefix: int = 0
    document: torch.Tensor | None = None
    extra: tuple[RulePart, ...] = ()

    @property
    def span(self) -> tuple[int, int]:
        """``(left, right)``: how far the band reaches back and forward (``q - k`` in ``[-right, left]``);
        ``(L, L)`` for full attention."""
        if self.window is None:
            return self.length, self.length
        if self.causal:
            return (self.window - 1) * self.dilation, 0
        half = (self.window // 2) * self.dilation
        return half, half

    @property
    def global_positions(self) -> torch.Tensor:
        """long ``(G,)``: the global positions, ascending."""
        return self.is_global.nonzero().flatten()

    @property
    def sink_count(self) -> int:
        """Sinks that exist on this length: ``min(sinks, L)``."""
        return min(self.sinks, self.length)

    def band(self, device=None) -> MaskFn:
        """The window alone (full attention for ``window=None``), before chunking."""
        return full_part() if self.window is None else window_part(self.window, self.causal, self.dilation, device)

    def parts(self, device=None) -> dict[str, MaskFn]:
        """The parts that allow pairs under :meth:`constraint`, by name (``"window"``, then
        ``"global"``, ``"sink"`` and ``"random"`` where the layer has them, then the mask parts of
        role ``allow`` under their names, numbered from the second of a kind: ``"strided"``,
        ``"strided-1"``), each a :data:`MaskFn` with its tensors on ``device``. ``"window"`` is the
        band kept inside its chunk (:meth:`band` ``& chunk``). The prefix (:meth:`exception`) and
        the documents and ``restrict`` parts (:meth:`boundary`) stand outside these."""
        band = self.band(device)
        out = {"window": band if self.chunk is None else and_masks(band, chunk_part(self.chunk, device))}
        g = global_part(self.is_global, device)
        if g is not None:
            out["global"] = g
        if self.sink_count:
            out["sink"] = sink_part(self.sink_count, device)
        r = random_part(self.random, self.block_size, device) if self.random is not None else None
        if r is not None:
            out["random"] = r
        for name, extra in self.named_extra(ALLOW):
            out[name] = extra.mask_fn(device)
        return out

    def named_extra(self, role: str) -> list[tuple[str, RulePart]]:
        """The mask parts of ``role`` in this layer, as ``(unique name, RulePart)``."""
        out, seen = [], {}
        for extra in self.extra:
            if extra.role == role:
                n = seen[extra.name] = seen.get(extra.name, -1) + 1
                out.append((extra.name if n == 0 else f"{extra.name}-{n}", extra))
        return out

    def constraint(self) -> MaskFn | None:
        """The part every pair of :meth:`parts` must also pass: ``causal`` (``k <= q``), or None."""
        return causal_part() if self.causal else None

    def exception(self, device=None) -> MaskFn | None:
        """Pairs allowed whatever the causal constraint says: the prefix-LM square, or None."""
        return prefix_part(self.prefix, device) if self.prefix else None

    def boundary(self, device=None) -> MaskFn | None:
        """The part every allowed pair must pass, the prefix's too: same document and every
        ``restrict`` mask part, or None."""
        tests = [document_part(self.document, device)] if self.document is not None else []
        tests += [extra.mask_fn(device) for _, extra in self.named_extra(RESTRICT)]
        return and_masks(*tests) if tests else None

    def mask_fn(self, device=None) -> MaskFn:
        """The smallest composition of the parts this layer needs:
        ``same_document & (((window & chunk) | global | sink | random) & causal | prefix)``,
        dropping what is absent or implied (a causal window needs no causal test of its own)."""
        parts = self.parts(device)
        if self.window is None and self.chunk is None and not self.causal:
            allowed = parts["window"]                    # full attention: nothing can add to it
        elif self.window is None and self.chunk is None:  # full causal: the window part is redundant
            allowed = causal_part()
        else:
            allowed = or_masks(*parts.values())
            # a causal band alone is already causal; a chunk of full attention is not
            if self.causal and (len(parts) > 1 or self.window is None):
                allowed = and_masks(allowed, causal_part())
        prefix = self.exception(device)
        if prefix is not None:
            allowed = or_masks(allowed, prefix)
        boundary = self.boundary(device)
        if boundary is not None:
            allowed = and_masks(allowed, boundary)
        return allowed

    def without_parts(self) -> "LayerRule":
        """The same layer without its mask parts (what the built-in closed forms count)."""
        return dataclasses.replace(self, extra=())

    def part_pairs(self, per_chunk: int = 1 << 22):
        """The pairs the layer's mask parts allow, each once, as chunks of long ``(n,)`` ``(q, k)``
        tensors (causality and boundaries not applied), or None where a part is not ``allow`` or
        does not enumerate its pairs (:meth:`attnviz.masks.MaskPart.pairs`). Every pair whose
        reason differs from :meth:`without_parts`' is among them."""
        if any(extra.role != ALLOW for extra in self.extra):
            return None
        sources = [extra.part.pairs(self.length, extra.layer, per_chunk) for extra in self.extra]
        if any(s is None for s in sources):
            return None

        def chunks():
            earlier = []
            for extra, source in zip(self.extra, sources):
                for q, k in source:
                    for fn in earlier:     # a pair of two parts belongs to the first
                        keep = ~fn(None, None, q, k)
                        q, k = q[keep], k[keep]
                    if len(q):
                        yield q, k
                earlier.append(extra.mask_fn())
        return chunks()

    def evaluate(self, fn: MaskFn, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """bool, the broadcast shape of ``q`` and ``k``: ``fn`` on index tensors."""
        out = fn(None, None, q, k)
        return out.expand(torch.broadcast_shapes(q.shape, k.shape))


def layer_rule(pattern: AttentionPattern, layout: SequenceLayout | int, layer: int) -> LayerRule:
    """The public per-layer rule of ``pattern`` on ``layout``: window, dilation, global positions,
    random blocks and causality of ``layer`` (:class:`LayerRule`). Every view of the pattern —
    :func:`build_masks`, :func:`mask_reasons`, :func:`mask_mod`, the pooled and structural paths —
    reads this."""
    layout = as_layout(layout)
    return LayerRule(length=layout.length, causal=pattern.causal, window=pattern.window_at(layer),
                     dilation=pattern.dilation_at(layer), is_global=pattern.global_mask(layout),
                     random=pattern.random_block_table(layer, layout.length),
                     block_size=pattern.block_size if pattern.random_blocks else None,
                     chunk=pattern.chunk_at(layer), sinks=pattern.sinks,
                     prefix=pattern.prefix_length(layout), document=pattern.document_ids(layout),
                     extra=placed_parts(pattern, layout.length, layer))


def placed_parts(pattern: AttentionPattern, length: int, layer: int) -> tuple[RulePart, ...]:
    """The pattern's mask parts present in ``layer`` (their ``mask_fn`` is not None), checked
    against ``length``."""
    out = []
    for part in pattern.parts:
        part.check_length(length)
        if part.mask_fn(length, layer) is not None:
            out.append(RulePart(part, PART_CODES[part.name], length, layer))
    return tuple(out)


def allowed(pattern: AttentionPattern, layout: SequenceLayout | int, layer: int,
            q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """bool, broadcast shape of ``q`` and ``k``: may query position ``q`` attend key ``k`` in ``layer``."""
    rule = layer_rule(pattern, layout, layer)
    return rule.evaluate(rule.mask_fn(q.device), q, k)


def build_masks(pattern: AttentionPattern, layout: SequenceLayout | int, num_layers: int,
                device: torch.device | str | None = None) -> torch.Tensor:
    """The dense reference: bool ``(num_layers, L, L)``, ``[l, q, k]`` = ``q`` may attend ``k`` in layer ``l``.

    Memory is ``num_layers * L * L`` bytes (100 MB at L=4096, 6 layers); long-input views work from
    the pattern's structure instead.
    """
    layout = as_layout(layout)
    pattern.check_layers(num_layers)
    L = layout.length
    q = torch.arange(L, device=device)[:, None]
    k = torch.arange(L, device=device)[None, :]
    out = torch.empty(num_layers, L, L, dtype=torch.bool, device=device)
    for layer in range(num_layers):
        rule = layer_rule(pattern, layout, layer)
        out[layer] = rule.evaluate(rule.mask_fn(q.device), q, k)
    return out


def mask_reasons(pattern: AttentionPattern, layout: SequenceLayout | int, layer: int) -> torch.Tensor:
    """uint8 ``(L, L)``: why each pair is allowed or blocked, codes index :data:`REASONS`.

    Allowed: window first, then global, sink, random block, the ``allow`` mask parts (in pattern
    order), and prefix for pairs only the prefix allows. Blocked: other document before anything
    else, then a ``restrict`` mask part; then future token (causal); then outside the chunk (a
    different chunk); else outside the window."""
    rule = layer_rule(pattern, layout, layer)
    L = rule.length
    return reason_grid(rule, torch.arange(L)[:, None], torch.arange(L)[None, :])


def reason_grid(rule: LayerRule, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """uint8, the broadcast shape of ``q`` and ``k``: :func:`mask_reasons` codes of ``rule`` on
    those index tensors (a sub-grid of the ``(L, L)`` pairs)."""
    shape = torch.broadcast_shapes(q.shape, k.shape)
    out = torch.full(shape, BLOCKED, dtype=torch.uint8)
    if rule.chunk is not None:
        out[~rule.evaluate(chunk_part(rule.chunk), q, k)] = OUTSIDE_CHUNK
    parts = rule.parts()
    for name, extra in reversed(rule.named_extra(ALLOW)):
        out[rule.evaluate(parts[name], q, k)] = extra.code
    for name, code in (("random", RANDOM), ("sink", SINK), ("global", GLOBAL), ("window", WINDOW)):
        if name in parts:
            out[rule.evaluate(parts[name], q, k)] = code
    if rule.causal:
        out[~rule.evaluate(causal_part(), q, k)] = FUTURE
    if rule.prefix:
        blocked = (out == BLOCKED) | (out == FUTURE) | (out == OUTSIDE_CHUNK)
        out[blocked & rule.evaluate(rule.exception(), q, k)] = PREFIX
    for _, extra in reversed(rule.named_extra(RESTRICT)):
        out[~rule.evaluate(extra.mask_fn(), q, k)] = extra.code
    if rule.document is not None:
        out[~rule.evaluate(rule.boundary(), q, k)] = OTHER_DOCUMENT
    return out


def mask_mod(pattern: AttentionPattern, layout: SequenceLayout | int, layer: int,
             device: torch.device | str | None = None) -> Callable:
    """FlexAttention ``mask_mod(b, h, q_idx, kv_idx) -> bool`` for one layer, from the same rule
    as :func:`build_masks` (pass it to ``torch.nn.attention.flex_attention.create_block_mask``).

    The closure holds only the parts the layer uses (:meth:`LayerRule.mask_fn`): no modulo without
    dilation, range comparisons for global positions that form a few runs, no random-block lookup
    without random blocks. The kernel evaluates it on every cell of every partial tile, so its size
    is the cost of the sparse attention (``benchmarks/results/flex_mask_op.md``)."""
    return layer_rule(pattern, layout, layer).mask_fn(device)


def pattern_to_dict(pattern: AttentionPattern) -> dict:
    """JSON-ready fields of ``pattern`` (tuples as lists; mask parts as ``{"part": name, **settings}``),
    as runs and measurements save it."""
    d = {f.name: getattr(pattern, f.name) for f in dataclasses.fields(pattern)}
    d["parts"] = [part.to_dict() for part in pattern.parts]
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def pattern_from_dict(d: dict) -> AttentionPattern:
    """The pattern :func:`pattern_to_dict` wrote (runs saved before mask parts have no ``parts``)."""
    d = dict(d)
    parts = tuple(part_from_dict(p) for p in d.pop("parts", ()))
    return AttentionPattern(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}, parts=parts)


def describe(pattern: AttentionPattern) -> str:
    """A short human label, e.g. ``"window=32, global prompt"`` (used in figure titles)."""
    parts = []
    if pattern.window is None:
        parts.append("full attention" if not pattern.causal else "full causal attention")
    else:
        parts.append(("causal window=" if pattern.causal else "window=") + (
            ",".join("full" if w is None else str(w) for w in pattern.window)
            if isinstance(pattern.window, tuple) else str(pattern.window)))
    if pattern.dilation != 1:
        parts.append(f"dilation={pattern.dilation}")
    if pattern.global_positions:
        gp = pattern.global_positions
        parts.append("global " + (",".join(map(str, gp)) if len(gp) <= 6 else f"{len(gp)} positions"))
    if pattern.global_prompt:
        parts.append("global prompt")
    if pattern.random_blocks:
        s = "" if pattern.random_blocks == 1 else "s"
        parts.append(f"{pattern.random_blocks} random block{s} of {pattern.block_size} (seed {pattern.seed})")
    if pattern.prefix_lm is not None:
        parts.append("prefix-LM over the prompt" if pattern.prefix_lm == "prompt" else f"prefix-LM P={pattern.prefix_lm}")
    if pattern.sinks:
        parts.append(f"{pattern.sinks} sink{'s' if pattern.sinks != 1 else ''}")
    if pattern.chunk is not None:
        parts.append("chunk=" + (",".join("none" if c is None else str(c) for c in pattern.chunk)
                                 if isinstance(pattern.chunk, tuple) else str(pattern.chunk)))
    if pattern.documents:
        parts.append(f"{len(pattern.documents)} packed documents")
    parts.extend(part.describe() for part in pattern.parts)
    return ", ".join(parts)
