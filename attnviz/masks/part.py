"""The contract of a mask part: one attention-mask family in one small frozen dataclass.

:class:`attnviz.AttentionPattern` composes its built-in parts (window, dilation, global tokens,
random blocks, causal, and the zoo's prefix-LM, sinks, chunks and documents) into one rule per
layer. A *mask part* is one more family, written in its own module under :mod:`attnviz.masks` and
listed once in :data:`attnviz.masks.MASK_PARTS`; a pattern takes it as
``AttentionPattern(..., parts=(Strided(8),))``.

A part states

* ``name`` (its key in :data:`~attnviz.masks.MASK_PARTS` and in saved patterns), ``reason`` (its
  entry of :data:`attnviz.REASONS`, e.g. ``"allowed: strided"``) and ``short`` (the legend label);
* ``role``: :data:`ALLOW` — the pairs it adds join ``window | global | sink | random``, so a causal
  pattern still cuts them to ``k <= q`` — or :data:`RESTRICT` — every allowed pair must also pass
  it, as the document boundaries do;
* :meth:`MaskPart.mask_fn`: the rule itself, a FlexAttention / transformers mask function
  ``(b, h, q_idx, kv_idx) -> bool`` for one layer (None where the part is absent in that layer);
* optionally :meth:`MaskPart.reach`, its closed form for the structural reach
  (:func:`attnviz.spread_pattern`: ``O(L)`` per layer), and :meth:`MaskPart.pairs`, the pairs it
  allows when they are few (``O(L²/stride)``): pooled reasons, pair counts and block tables then
  count the built-in parts in closed form and correct only those pairs.

Everything else — dense masks, reason codes, FlexAttention ``mask_mod`` and block tables, the
pooled figures, pair counts and costs, saving and loading a pattern — follows from these, exactly.
A part without ``reach`` / ``pairs`` still works everywhere: those views then evaluate
:meth:`~MaskPart.mask_fn` on blocks of query rows (``O(L²)`` time, a few million cells of memory).

An exception to causality (as the prefix-LM) is not a role here: a decoder's own causal mask
would have to be opened for it, which only the built-in ``prefix_lm`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, ClassVar, Iterator

import numpy as np
import torch

#: The pairs of the part join the allowed union (then ``k <= q`` under causal).
ALLOW = "allow"
#: Every allowed pair must also pass the part.
RESTRICT = "restrict"
ROLES = (ALLOW, RESTRICT)


@dataclass(frozen=True)
class MaskPart:
    """Base class of a mask family (see the module doc). Subclasses are frozen dataclasses whose
    fields are the family's settings (hashable: patterns are cache keys)."""

    name: ClassVar[str]
    reason: ClassVar[str]
    short: ClassVar[str]
    role: ClassVar[str]

    @property
    def num_layers(self) -> int | None:
        """Layers the part is written for (a per-layer setting), or None when it is the same in every layer."""
        return None

    def check_length(self, length: int) -> None:
        """Raise ``ValueError`` (naming the value and what is allowed) if the part cannot serve
        a sequence of ``length`` positions. Default: every length."""

    def mask_fn(self, length: int, layer: int, device=None) -> Callable | None:
        """The part's mask function for ``layer`` of a sequence of ``length`` positions:
        ``(b, h, q_idx, kv_idx) -> bool`` tensor of the broadcast shape of ``q_idx`` and ``kv_idx``
        (``b`` and ``h`` are never read; tensors it holds live on ``device``), or None where the part
        is absent in this layer."""
        raise NotImplementedError(f"{type(self).__name__} must define mask_fn")

    def reach(self, reached: np.ndarray, layer: int, causal: bool) -> np.ndarray | None:
        """Optional closed form for :data:`ALLOW` parts: bool ``(L,)`` of the queries that may attend
        a key with ``reached[k]`` through this part alone (``k <= q`` when ``causal``), or None to
        let the structural reach evaluate :meth:`mask_fn` instead."""
        return None

    @classmethod
    def from_text(cls, text: str) -> "MaskPart":
        """The part from its command-line settings (``attnviz spread --part NAME:TEXT``). Default:
        one setting, an int (``"8"``) or one per layer with ``none`` for layers without the part
        (``"8,8,none"``); parts with several settings override this."""
        values = []
        for entry in text.split(","):
            e = entry.strip().lower()
            if e in ("none", "full", "off"):
                values.append(None)
                continue
            try:
                values.append(int(e))
            except ValueError:
                raise ValueError(f"invalid {cls.name} setting {entry.strip()!r} in {text!r}: give an int "
                                 f"or one per layer with 'none' for layers without it (8,8,none)") from None
        return cls(values[0] if len(values) == 1 else tuple(values))

    def pairs(self, length: int, layer: int, per_chunk: int = 1 << 22) -> Iterator[tuple[torch.Tensor, torch.Tensor]] | None:
        """Optional, for :data:`ALLOW` parts whose pairs are few (``O(L²/stride)``): every ``(q, k)``
        pair the part allows in ``layer``, once each, ignoring causality, as long ``(n,)`` tensors in
        chunks of about ``per_chunk``; or None. With it, pooled reasons and pair counts take the
        built-in parts' closed forms and correct only these pairs, instead of evaluating the
        ``(L, L)`` grid."""
        return None

    def describe(self) -> str:
        """A short label for figure titles, e.g. ``"strided 8"``."""
        return self.short

    def to_dict(self) -> dict:
        """JSON-ready settings with the part's ``name`` under ``"part"`` (tuples as lists)."""
        out = {"part": self.name}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out
