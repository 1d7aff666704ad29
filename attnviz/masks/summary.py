"""Summary columns (Sparse Transformer, Child et al. 2019, the *fixed* pattern): the last ``width``
positions of every block of ``stride`` are keys for every query.

The fixed pattern's first head attends inside its block (attnviz's ``chunk=stride`` with full
attention, ``window=None``); its second head attends the block ends, ``k mod l >= l - c``, which
carry a summary of their block forward. OpenAI's reference builds the same layout block by block
(``openai/sparse_attention``, ``attention.py``, ``get_blocksparse_obj(..., "fixed")``: columns
``idx::stride`` for the last ``vertsize`` indices, the local block row, nothing above the diagonal);
with a block size of one position it is ``AttentionPattern(causal=True, chunk=l,
parts=(SummaryColumns(l, c),))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..checks import is_int
from .part import ALLOW, MaskPart


@dataclass(frozen=True)
class SummaryColumns(MaskPart):
    """Keys ``k`` with ``k % stride >= stride - width`` (``k <= q`` under a causal pattern).

    Args:
        stride: the block length ``l``, int >= 1.
        width: the summary positions at the end of each block, ``c``, 1 <= width <= stride.
    """

    stride: int
    width: int = 1

    name = "summary"
    reason = "allowed: summary column"
    short = "summary column"
    role = ALLOW

    def __post_init__(self):
        if not is_int(self.stride) or self.stride < 1:
            raise ValueError(f"SummaryColumns stride must be an int >= 1 (the block length l), got {self.stride!r}")
        if not is_int(self.width) or not 1 <= self.width <= self.stride:
            raise ValueError(f"SummaryColumns width must be an int in [1, stride={self.stride}] (the summary "
                             f"positions c at the end of each block), got {self.width!r}")
        object.__setattr__(self, "stride", int(self.stride))
        object.__setattr__(self, "width", int(self.width))

    def mask_fn(self, length: int, layer: int, device=None):
        step = torch.tensor(self.stride, device=device)
        first = torch.tensor(self.stride - self.width, device=device)

        def summary_column(b, h, q_idx, kv_idx):
            return (kv_idx % step >= first) & (q_idx >= 0)
        return summary_column

    def reach(self, reached: np.ndarray, layer: int, causal: bool) -> np.ndarray:
        """Queries that see a reached summary column: every query from the first one on (causal),
        or all of them. O(L)."""
        L = reached.shape[0]
        columns = np.flatnonzero(reached & (np.arange(L) % self.stride >= self.stride - self.width))
        out = np.zeros(L, dtype=bool)
        if columns.size:
            out[columns[0] if causal else 0:] = True
        return out

    def pairs(self, length: int, layer: int, per_chunk: int = 1 << 22):
        """Every query with every summary column, a few columns per chunk."""
        k_all = torch.arange(length)
        columns = k_all[k_all % self.stride >= self.stride - self.width]
        step = max(1, per_chunk // length)
        for start in range(0, len(columns), step):
            cols = columns[start:start + step]
            yield k_all.repeat(len(cols)), cols.repeat_interleave(length)

    @classmethod
    def from_text(cls, text: str) -> "SummaryColumns":
        """``"16"`` -> ``SummaryColumns(16)``, ``"16,2"`` -> ``SummaryColumns(16, width=2)``."""
        try:
            values = [int(v) for v in text.split(",")]
        except ValueError:
            values = []
        if len(values) not in (1, 2):
            raise ValueError(f"invalid summary setting {text!r}: give the block length l and optionally the "
                             f"summary width c, e.g. summary:16 or summary:16,2")
        return cls(*values)

    def describe(self) -> str:
        return f"summary columns {self.width}/{self.stride}"
