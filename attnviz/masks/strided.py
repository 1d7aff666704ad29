"""Strided attention (Sparse Transformer, Child et al. 2019): every ``stride``-th key.

The Sparse Transformer's *strided* pattern factorises attention into two heads: a local one (the
previous ``l`` positions, attnviz's ``window=l, causal=True``) and a strided one, the keys ``k``
with ``(q - k) mod l == 0``. OpenAI's reference (``openai/sparse_attention``, ``attention.py``,
``get_attn_mask(n, "strided", l)``) writes the second as ``q >= k and (q - k) % l == 0``; the union of
both is ``AttentionPattern(window=l, causal=True, parts=(Strided(l),))``: two layers connect every
pair, as a full causal layer would. Bidirectional patterns take the keys on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..checks import is_int
from .part import ALLOW, MaskPart


@dataclass(frozen=True)
class Strided(MaskPart):
    """Keys ``k`` with ``(q - k) % stride == 0`` (``k <= q`` under a causal pattern).

    Args:
        stride: int >= 1, or a per-layer tuple of ``int | None`` (None: no strided keys in that layer).
    """

    stride: int | tuple[int | None, ...]

    name = "strided"
    reason = "allowed: strided"
    short = "strided"
    role = ALLOW

    def __post_init__(self):
        value = self.stride
        if isinstance(value, list):
            value = tuple(value)
            object.__setattr__(self, "stride", value)
        if isinstance(value, tuple) and not value:
            raise ValueError("Strided(stride=()) has no layers; give an int, or one int/None per layer")
        per_layer = isinstance(value, tuple)
        for s in value if per_layer else (value,):
            if (s is not None or not per_layer) and (not is_int(s) or s < 1):   # None: a layer without it
                raise ValueError(f"Strided stride must be an int >= 1 (the Sparse Transformer's l: keys with "
                                 f"(q - k) % l == 0), or a per-layer tuple of ints/None; got {s!r}")
        if isinstance(value, tuple):
            object.__setattr__(self, "stride", tuple(None if s is None else int(s) for s in value))
        else:
            object.__setattr__(self, "stride", int(value))

    @property
    def num_layers(self) -> int | None:
        return len(self.stride) if isinstance(self.stride, tuple) else None

    def stride_at(self, layer: int) -> int | None:
        return self.stride[layer] if isinstance(self.stride, tuple) else self.stride

    def mask_fn(self, length: int, layer: int, device=None):
        stride = self.stride_at(layer)
        if stride is None:
            return None
        step = torch.tensor(stride, device=device)

        def strided(b, h, q_idx, kv_idx):
            return (q_idx - kv_idx) % step == 0
        return strided

    def reach(self, reached: np.ndarray, layer: int, causal: bool) -> np.ndarray:
        """Per residue class mod ``stride``: a query is reached once a reached key of its class lies
        at or before it (causal) or anywhere (bidirectional). O(L)."""
        stride = self.stride_at(layer)
        L = reached.shape[0]
        if stride is None:
            return np.zeros(L, dtype=bool)
        m = -(-L // stride)
        padded = np.zeros(m * stride, dtype=bool)
        padded[:L] = reached
        by_class = padded.reshape(m, stride)                  # [j, c]: position c + j * stride
        hit = np.logical_or.accumulate(by_class, axis=0) if causal else np.broadcast_to(by_class.any(0), by_class.shape)
        return hit.reshape(-1)[:L].copy()

    def pairs(self, length: int, layer: int, per_chunk: int = 1 << 22):
        """The diagonals ``q - k = j * stride``, ``|j * stride| < L``, a few per chunk."""
        stride = self.stride_at(layer)
        if stride is None:
            return iter(())
        offsets = np.arange(-((length - 1) // stride), (length - 1) // stride + 1) * stride
        return _diagonals(length, offsets, per_chunk)

    def describe(self) -> str:
        s = self.stride
        return "strided " + (",".join("none" if v is None else str(v) for v in s) if isinstance(s, tuple) else str(s))


def _diagonals(length: int, offsets: np.ndarray, per_chunk: int):
    """``(q, k)`` with ``q - k`` in ``offsets``, both in ``[0, length)``, grouped into chunks."""
    group, size = [], 0
    for o in offsets.tolist():
        group.append(o)
        size += length - abs(o)
        if size >= per_chunk or o == offsets[-1]:
            q = torch.cat([torch.arange(max(o, 0), min(length, length + o)) for o in group])
            k = q - torch.cat([torch.full((length - abs(o),), o) for o in group])
            yield q, k
            group, size = [], 0
