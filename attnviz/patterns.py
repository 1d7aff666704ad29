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
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .placement import SequenceLayout, plain_layout

#: Reason codes returned by :func:`mask_reasons`, index = code.
REASONS = (
    "blocked: outside the window",
    "allowed: window",
    "allowed: global",
    "allowed: random block",
    "blocked: future token (causal)",
)
BLOCKED, WINDOW, GLOBAL, RANDOM, FUTURE = range(5)


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


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
    """

    window: int | tuple[int | None, ...] | None = None
    causal: bool = False
    global_positions: tuple[int, ...] = ()
    global_prompt: bool = False
    dilation: int | tuple[int, ...] = 1
    random_blocks: int = 0
    block_size: int | None = None
    seed: int = 0

    def __post_init__(self):
        # Normalise sequences to tuples so patterns are hashable and compare by value.
        # Only integer-valued entries become ints; floats, strings and bools stay as given so the
        # checks below reject them instead of silently truncating 2.5 -> 2 or True -> 1.
        for name in ("window", "dilation", "global_positions"):
            value = getattr(self, name)
            if isinstance(value, (np.ndarray, torch.Tensor)):
                value = value.tolist()
            if isinstance(value, (list, tuple, range)):
                object.__setattr__(self, name, tuple(int(v) if _is_int(v) else v for v in value))
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
            if not _is_int(w):
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
            if not _is_int(d) or d < 1:
                raise ValueError(f"dilation must be an int >= 1 (or a per-layer tuple of them), got {d!r}")
        for p in self.global_positions:
            if not _is_int(p) or p < 0:
                raise ValueError(f"global position {p!r} is outside [0, L): positions are absolute and >= 0")
        if not _is_int(self.random_blocks) or self.random_blocks < 0:
            raise ValueError(f"random_blocks must be an int >= 0, got {self.random_blocks!r}")
        if self.block_size is not None and (not _is_int(self.block_size) or self.block_size < 1):
            raise ValueError(f"block_size must be an int >= 1, got {self.block_size!r}")
        if self.random_blocks and self.block_size is None:
            raise ValueError(
                f"random_blocks={self.random_blocks} needs block_size (the BigBird block length), e.g. block_size=64"
            )
        if not _is_int(self.seed):
            raise TypeError(f"seed must be an int, got {self.seed!r}")
        if self.seed < 0:  # numpy.random.default_rng([seed, layer]) needs non-negative entries
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        self.per_layer  # window and dilation tuples must agree on the number of layers

    # ---- per-layer views -------------------------------------------------------------------
    @property
    def per_layer(self) -> int | None:
        """Number of layers the pattern is written for (tuple lengths), or None if uniform."""
        lengths = {len(v) for v in (self.window, self.dilation) if isinstance(v, tuple)}
        if len(lengths) > 1:
            raise ValueError(f"window and dilation tuples have different lengths {sorted(lengths)}")
        return lengths.pop() if lengths else None

    def check_layers(self, num_layers: int) -> None:
        """Raise if per-layer tuples do not have exactly ``num_layers`` entries."""
        if not _is_int(num_layers) or num_layers < 1:
            raise ValueError(f"num_layers must be an int >= 1, got {num_layers!r}")
        n = self.per_layer
        if n is not None and n != num_layers:
            raise ValueError(
                f"the pattern has per-layer settings for {n} layers but the model has {num_layers}; "
                f"give exactly {num_layers} entries (window={self.window!r}, dilation={self.dilation!r})"
            )

    def _check_layer(self, layer: int) -> None:
        n = self.per_layer
        if not _is_int(layer) or layer < 0 or (n is not None and layer >= n):
            raise ValueError(f"layer {layer!r} is outside the pattern's layers [0, {n if n is not None else 'any'})")

    def window_at(self, layer: int) -> int | None:
        self._check_layer(layer)
        return self.window[layer] if isinstance(self.window, tuple) else self.window

    def dilation_at(self, layer: int) -> int:
        self._check_layer(layer)
        return self.dilation[layer] if isinstance(self.dilation, tuple) else self.dilation

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
    if _is_int(layout):
        if layout < 1:
            raise ValueError(f"sequence length must be >= 1, got {layout}")
        return plain_layout(int(layout), cls=False, sep=False)
    raise TypeError(f"layout must be a SequenceLayout or an int length, got {type(layout).__name__}")


# ---- the one rule ------------------------------------------------------------------------------
def _rule(pattern: AttentionPattern, layout: SequenceLayout, layer: int):
    """The ingredients of layer ``layer``'s rule, as tensors captured by closures."""
    return (
        pattern.window_at(layer),
        pattern.dilation_at(layer),
        pattern.global_mask(layout),
        pattern.random_block_table(layer, layout.length),
    )


def _parts(pattern, window, dilation, is_global, rand, q, k):
    """Boolean tensors (window, global, random, causal_ok) for broadcastable index tensors q, k."""
    diff = q - k
    if window is None:
        local = torch.ones_like(diff, dtype=torch.bool)
    elif pattern.causal:
        local = (diff >= 0) & (diff < window * dilation)
    else:
        local = diff.abs() <= (window // 2) * dilation
    if window is not None and not (isinstance(dilation, int) and dilation == 1):
        local = local & (diff % dilation == 0)  # tensors (flex) always take this branch
    glob = is_global[q] | is_global[k]
    rnd = rand[q // pattern.block_size, k // pattern.block_size] if rand is not None else torch.zeros_like(local)
    ok = k <= q if pattern.causal else torch.ones_like(local)
    return local, glob, rnd, ok


def allowed(pattern: AttentionPattern, layout: SequenceLayout | int, layer: int,
            q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """bool, broadcast shape of ``q`` and ``k``: may query position ``q`` attend key ``k`` in ``layer``."""
    layout = as_layout(layout)
    w, d, g, r = _rule(pattern, layout, layer)
    local, glob, rnd, ok = _parts(pattern, w, d, g, r, q, k)
    return (local | glob | rnd) & ok


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
        w, d, g, r = _rule(pattern, layout, layer)
        local, glob, rnd, ok = _parts(pattern, w, d, g.to(device), None if r is None else r.to(device), q, k)
        out[layer] = (local | glob | rnd) & ok
    return out


def mask_reasons(pattern: AttentionPattern, layout: SequenceLayout | int, layer: int) -> torch.Tensor:
    """uint8 ``(L, L)``: why each pair is allowed or blocked, codes index :data:`REASONS`
    (window first, then global, then random block; blocked pairs say whether causality blocked them)."""
    layout = as_layout(layout)
    L = layout.length
    q = torch.arange(L)[:, None]
    k = torch.arange(L)[None, :]
    local, glob, rnd, ok = _parts(pattern, *_rule(pattern, layout, layer), q, k)
    out = torch.full((L, L), BLOCKED, dtype=torch.uint8)
    out[rnd] = RANDOM
    out[glob] = GLOBAL
    out[local] = WINDOW
    out[~ok] = FUTURE
    return out


def mask_mod(pattern: AttentionPattern, layout: SequenceLayout | int, layer: int,
             device: torch.device | str | None = None) -> Callable:
    """FlexAttention ``mask_mod(b, h, q_idx, kv_idx) -> bool`` for one layer, from the same rule
    as :func:`build_masks` (pass it to ``torch.nn.attention.flex_attention.create_block_mask``)."""
    layout = as_layout(layout)
    w, d, g, r = _rule(pattern, layout, layer)
    g = g.to(device)
    r = None if r is None else r.to(device)
    if w is None:
        def attnviz_mask(b, h, q_idx, kv_idx):
            local, glob, rnd, ok = _parts(pattern, None, 1, g, r, q_idx, kv_idx)
            return (local | glob | rnd) & ok
        return attnviz_mask
    # Window and dilation travel as tensors, not Python ints: torch.compile then treats them as
    # inputs instead of guarding on their values, so a new window does not trigger a recompile.
    w_t, d_t = torch.tensor(w, device=device), torch.tensor(d, device=device)

    def attnviz_windowed_mask(b, h, q_idx, kv_idx):
        local, glob, rnd, ok = _parts(pattern, w_t, d_t, g, r, q_idx, kv_idx)
        return (local | glob | rnd) & ok

    return attnviz_windowed_mask


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
    return ", ".join(parts)
