"""Small trainable task heads on top of a frozen encoder.

Heads see the final hidden states of the full layout ``(B, L, H)`` (or of the positions kept by
reach-aware pruning) together with a :class:`Readout`, which says where each row's text and
readout token are. They are reported separately from the prompt: a head alone (no prompt) is the
baseline every prompt has to beat.

Pooling for classification (``pooling=``):

* ``"cls"`` (default): the layout's readout token — ``[CLS]`` (wherever the placement puts it,
  e.g. after a ``"start"`` prompt), or the last real token of a decoder. One known position is
  what attnviz is about: :func:`attnviz.spread` says whether the prompt can reach it under the
  window, and reach-aware pruning can drop everything that cannot.
* ``"first"``: slot 0 whatever sits there (what Hugging Face's BERT pooler reads; with a
  ``"start"`` prompt that is the first virtual token, as in PEFT).
* ``"mean"``: the mean over real tokens (special tokens included, prompt and padding excluded),
  as sentence-transformers pool all-MiniLM-L6-v2. It reads every token, so the prompt matters
  only through what it changes in the text tokens, and no pruning applies.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..choices import POOLINGS  # noqa: E402  (defined once, torch-free)


@dataclass
class Readout:
    """Where to read, per row of a batch of computed positions ``(B, K, H)``.

    Attributes:
        index: long ``(B,)``: the slot each row's head reads with ``cls`` / ``first`` pooling
            (``[CLS]`` or a decoder's last token; slot 0 for ``first``), in computed slots.
        text: bool ``(B, K)``: real (non-prompt, non-pad) tokens.
        token_slot: long ``(B, T)``: for each tokenizer position ``t`` of the input, the computed
            slot holding it, or ``-1`` (padding, or dropped by pruning); QA logits are read there.
    """

    index: torch.Tensor
    text: torch.Tensor
    token_slot: torch.Tensor


class ClassificationHead(nn.Module):
    """Dropout + linear layer on a pooled vector: ``H * num_labels + num_labels`` parameters.

    Args:
        hidden_size: the encoder's hidden size.
        num_labels: number of classes, >= 2.
        pooling: ``"cls"``, ``"first"`` or ``"mean"`` (see the module doc).
        dropout: on the pooled vector during training (the frozen encoder runs in eval mode).
    """

    task = "classification"

    def __init__(self, hidden_size: int, num_labels: int, pooling: str = "cls", dropout: float = 0.1):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; allowed: {', '.join(POOLINGS)}")
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 2:
            raise ValueError(f"num_labels must be an int >= 2, got {num_labels!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.pooling = pooling
        self.num_labels = num_labels
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)

    @property
    def reads_one_position(self) -> bool:
        """True when the logits depend on a single known position (then pruning can apply)."""
        return self.pooling in ("cls", "first")

    def pool(self, hidden: torch.Tensor, readout: Readout) -> torch.Tensor:
        """``(B, K, H)`` -> ``(B, H)``."""
        if self.pooling == "mean":
            w = readout.text.to(hidden.dtype).unsqueeze(-1)
            return (hidden * w).sum(1) / w.sum(1).clamp(min=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), readout.index]

    def forward(self, hidden: torch.Tensor, readout: Readout) -> torch.Tensor:
        """Logits ``(B, num_labels)``."""
        return self.classifier(self.dropout(self.pool(hidden, readout)))

    def config(self) -> dict:
        return {"task": self.task, "num_labels": self.num_labels, "pooling": self.pooling, "dropout": self.dropout.p}


class QAHead(nn.Module):
    """Extractive QA: a linear layer ``H -> 2`` giving start and end logits over the input's tokens.

    Logits are indexed by tokenizer position (``(B, T)``, the prompt removed), so the usual
    ``start_positions`` / ``end_positions`` labels apply unchanged; padding and pruned tokens get
    ``finfo.min`` (never chosen).
    """

    task = "qa"
    reads_one_position = False

    def __init__(self, hidden_size: int):
        super().__init__()
        self.qa_outputs = nn.Linear(hidden_size, 2)

    def forward(self, hidden: torch.Tensor, readout: Readout) -> tuple[torch.Tensor, torch.Tensor]:
        """``(start_logits (B, T), end_logits (B, T))``."""
        logits = self.qa_outputs(hidden)                                  # (B, K, 2)
        slot = readout.token_slot
        gathered = logits.gather(1, slot.clamp(min=0).unsqueeze(-1).expand(-1, -1, 2))  # (B, T, 2)
        gathered = gathered.masked_fill((slot < 0).unsqueeze(-1), torch.finfo(gathered.dtype).min)
        return gathered[..., 0], gathered[..., 1]

    def config(self) -> dict:
        return {"task": self.task}
