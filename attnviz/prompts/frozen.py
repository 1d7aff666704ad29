"""A frozen prompt (or none) + a trained head, cheaply: encode once, train the head on cached features.

Why: "how good is this prompt *before* training?" is answered by freezing the prompt and training
only the classification head. With the prompt and the encoder both frozen, every training step of
:func:`~attnviz.prompts.train_soft_prompt` recomputes the same encoder pass for the same example,
so the experiment costs as much as real prompt tuning. Here the encoder runs once per example:

1. :func:`pooled_features` ``(model, data) -> (features (N, H), labels (N,))``: exactly the vector
   :class:`~attnviz.prompts.PromptModel` hands to its head's classifier in eval mode (the pooled
   ``[CLS]`` / first / mean hidden state, prompt inserted, attention pattern and reach-aware
   pruning applied), computed without gradients;
2. :func:`fit_head` trains the head's linear classifier on them (AdamW, seeded mini-batches,
   the head's dropout on), in a second or two instead of minutes;
3. :func:`head_accuracy`: held-out accuracy of the head on features.

Measured with this on BBC News (issue #5: frozen MiniLM, window 32, 20-token prefix prompt):
the prompt's *initialisation* decides accuracy when the prompt sits in ``[CLS]``'s window.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .heads import ClassificationHead
from .model import PromptModel


def _check_head(head) -> ClassificationHead:
    if not isinstance(head, ClassificationHead):
        raise TypeError(f"cached features train a ClassificationHead, got {type(head).__name__}; "
                        "QA heads read every position, train them with train_soft_prompt")
    return head


@torch.no_grad()
def pooled_features(model: PromptModel, data: Sequence[dict], *, batch_size: int = 32,
                    progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The head's input for every example, computed once with the encoder and prompt frozen.

    Args:
        model: a :class:`PromptModel` with a :class:`ClassificationHead`.
        data: tokenized examples (``input_ids``, optional ``token_type_ids``, ``label``), as for
            :func:`~attnviz.prompts.train_soft_prompt`.
        batch_size: examples per encoder pass (results do not depend on it beyond float rounding).
        progress: show a ``tqdm.auto`` bar.
    Returns:
        ``features`` float32 ``(N, H)`` (``head.pool`` of the final hidden states, before dropout
        and classifier) and ``labels`` int64 ``(N,)``.
    """
    from ..tasks.batching import collate

    head = _check_head(model.head)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if len(data) == 0:
        raise ValueError("data is empty: nothing to encode")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    starts = range(0, len(data), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="encode", leave=False)
    feats, labels = [], []
    try:
        for i in starts:
            batch = collate([data[j] for j in range(i, min(i + batch_size, len(data)))])
            if "labels" not in batch:
                raise ValueError("examples need a 'label' (or 'labels') field")
            prepared = model.prepare(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                                     batch["token_type_ids"].to(device))
            feats.append(head.pool(model.hidden_states(prepared), prepared.readout).float().cpu())
            labels.append(batch["labels"])
    finally:
        model.train(was_training)
    return torch.cat(feats), torch.cat(labels)


def _check_pair(features: torch.Tensor, labels: torch.Tensor, head: ClassificationHead) -> None:
    if features.dim() != 2 or labels.dim() != 1 or features.shape[0] != labels.shape[0]:
        raise ValueError(f"features must be (N, H) and labels (N,), got {tuple(features.shape)} and {tuple(labels.shape)}")
    if features.shape[1] != head.classifier.in_features:
        raise ValueError(f"features have size {features.shape[1]}, the head expects {head.classifier.in_features}")
    if features.shape[0] == 0:
        raise ValueError("no examples")


def fit_head(head: ClassificationHead, features: torch.Tensor, labels: torch.Tensor, *, steps: int = 300,
             batch_size: int = 32, lr: float = 1e-2, weight_decay: float = 0.0, seed: int = 0) -> list[float]:
    """Train ``head``'s classifier on cached ``features`` ``(N, H)`` / ``labels`` ``(N,)``, in place.

    AdamW at ``lr`` (the head learning rate of :class:`~attnviz.prompts.TrainConfig`), seeded
    mini-batches of ``batch_size`` drawn without replacement each epoch, the head's dropout active.
    The global RNG is not touched. Returns the loss of every step; the head is left in eval mode.
    """
    _check_head(head)
    _check_pair(features, labels, head)
    for name, v in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    gen = torch.Generator().manual_seed(int(seed))
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    N = features.shape[0]
    order, at, losses = torch.randperm(N, generator=gen), 0, []
    head.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))   # dropout masks, reproducible and private
        for _ in range(steps):
            if at + batch_size > N:
                order, at = torch.randperm(N, generator=gen), 0
            idx = order[at:at + batch_size]
            at += batch_size
            loss = F.cross_entropy(head.classifier(head.dropout(features[idx])), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    head.eval()
    return losses


@torch.no_grad()
def head_accuracy(head: ClassificationHead, features: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of examples whose argmax logit (eval mode, no dropout) equals the label."""
    _check_head(head)
    _check_pair(features, labels, head)
    was = head.training
    head.eval()
    try:
        return float((head.classifier(features).argmax(-1) == labels).float().mean())
    finally:
        head.train(was)
