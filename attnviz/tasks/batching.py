"""Batches of tokenized task examples: right-padded tensors with labels (classification) or
start / end positions (QA)."""

from __future__ import annotations

from typing import Sequence

import torch


def collate(examples: Sequence[dict], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Right-pad tokenized examples into a batch.

    Each example has ``input_ids`` (list of ints), optionally ``token_type_ids``, and ``label`` /
    ``labels`` (classification) or ``start_positions`` + ``end_positions`` (QA).
    """
    if not examples:
        raise ValueError("cannot collate an empty batch")
    T = max(len(e["input_ids"]) for e in examples)
    B = len(examples)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.long)
    types = torch.zeros(B, T, dtype=torch.long)
    for b, e in enumerate(examples):
        n = len(e["input_ids"])
        if n == 0:
            raise ValueError(f"example {b} of the batch has no tokens")
        ids[b, :n] = torch.as_tensor(e["input_ids"], dtype=torch.long)
        mask[b, :n] = 1
        if e.get("token_type_ids") is not None:
            types[b, :n] = torch.as_tensor(e["token_type_ids"], dtype=torch.long)
    out = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    if "start_positions" in examples[0]:
        out["start_positions"] = torch.tensor([int(e["start_positions"]) for e in examples])
        out["end_positions"] = torch.tensor([int(e["end_positions"]) for e in examples])
    else:
        key = "labels" if "labels" in examples[0] else "label"
        if key in examples[0]:
            out["labels"] = torch.tensor([int(e[key]) for e in examples])
    return out
