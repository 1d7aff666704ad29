"""Extractive QA decoded and scored: best spans from a span head (:func:`predict_spans`) and
the official SQuAD v1.1 exact match and F1.

:func:`squad_metrics` computes exact match and F1 as the official SQuAD v1.1 evaluation script
does (lower case, punctuation and the articles a / an / the removed, whitespace collapsed; the best
score over the gold answers; percentages).
"""

from __future__ import annotations

import collections
import re
import string
from dataclasses import dataclass
from typing import Iterable

import torch


def best_spans(start_logits: torch.Tensor, end_logits: torch.Tensor, allowed: torch.Tensor,
               max_answer_tokens: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """The highest-scoring spans ``start <= end < start + max_answer_tokens`` inside ``allowed``.

    Args:
        start_logits, end_logits: ``(B, T)``.
        allowed: bool ``(B, T)``: tokens a span may use (the context tokens).
    Returns:
        ``(start (B,), end (B,))`` long; score = ``start_logits[start] + end_logits[end]``. A row
        with no allowed token gets ``(0, 0)``.
    """
    T = start_logits.shape[-1]
    i = torch.arange(T, device=start_logits.device)
    band = (i[None, :] >= i[:, None]) & (i[None, :] < i[:, None] + max_answer_tokens)      # (T, T): [s, e]
    ok = band[None] & allowed[:, :, None] & allowed[:, None, :]
    scores = start_logits.float()[:, :, None] + end_logits.float()[:, None, :]
    scores = scores.masked_fill(~ok, float("-inf")).flatten(1)
    best = scores.argmax(-1)
    best = torch.where(ok.flatten(1).any(-1), best, torch.zeros_like(best))
    return best // T, best % T


@dataclass(frozen=True)
class QAResult:
    """What :func:`evaluate_qa` returns.

    Attributes:
        exact_match, f1: percentages over ``n`` questions (the official SQuAD v1.1 script's numbers).
        n: questions scored.
        predictions: ``{id: answer text}``.
        in_window: share of questions whose answer was inside the tokenized window.
    """

    exact_match: float
    f1: float
    n: int
    predictions: dict
    in_window: float

    def summary(self) -> str:
        return f"EM {self.exact_match:.1f}  F1 {self.f1:.1f}  ({self.n:,} questions, {100 * self.in_window:.0f} % answers in window)"


@torch.no_grad()
def predict_spans(model, features, *, batch_size: int = 32, max_answer_tokens: int = 30,
                  progress: bool = False) -> dict[str, str]:
    """``{id: predicted answer text}`` for tokenized questions (:func:`qa_features`).

    ``model`` is an ``attnviz.prompts.PromptModel`` with a ``QAHead`` (or anything that maps
    ``input_ids``, ``attention_mask``, ``token_type_ids`` to ``(start (B, T), end (B, T))``); the span
    is chosen among context tokens (:func:`best_spans`) and cut from the context by its offsets.
    """
    from .batching import collate

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = {}
    starts = range(0, len(features), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="predict spans", leave=False)
    try:
        for i in starts:
            rows = features.select(range(i, min(i + batch_size, len(features)))) if hasattr(features, "select") \
                else features[i:i + batch_size]
            rows = [rows[j] for j in range(len(rows))]
            batch = collate(rows)
            start, end = model(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                               batch["token_type_ids"].to(device))
            T = start.shape[1]
            allowed = torch.zeros(len(rows), T, dtype=torch.bool)
            for b, r in enumerate(rows):
                allowed[b, :len(r["offset_mapping"])] = torch.tensor([o[0] >= 0 for o in r["offset_mapping"]])
            s, e = best_spans(start.cpu(), end.cpu(), allowed, max_answer_tokens)
            for b, r in enumerate(rows):
                off = r["offset_mapping"]
                si, ei = int(s[b]), int(e[b])
                out[r["id"]] = r["context"][off[si][0]:off[ei][1]] if off[si][0] >= 0 else ""
    finally:
        model.train(was_training)
    return out


def normalize_answer(s: str) -> str:
    """The official SQuAD v1.1 normalisation: lower case, drop punctuation (``string.punctuation``),
    drop the articles a / an / the, collapse whitespace."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match_score(prediction: str, truth: str) -> bool:
    """Normalised strings equal (official SQuAD v1.1)."""
    return normalize_answer(prediction) == normalize_answer(truth)


def f1_score(prediction: str, truth: str) -> float:
    """Token-level F1 of the normalised strings (official SQuAD v1.1: bag of tokens, 0 if nothing is shared)."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    common = collections.Counter(pred) & collections.Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(predictions: dict[str, str], references: Iterable[dict]) -> dict:
    """Exact match and F1 as the official SQuAD v1.1 evaluation script computes them.

    Args:
        predictions: ``{id: answer text}``.
        references: rows with ``id`` and ``answers`` (``{"text": [...]}``), e.g. :func:`load_qa`'s.
            A reference without a prediction counts 0 (the official script does the same, with a message).
    Returns:
        ``{"exact_match": %, "f1": %, "n": questions, "missing": references without a prediction}``;
        each question scores the best over its gold answers.
    """
    em = f1 = 0.0
    n = missing = 0
    for ref in references:
        n += 1
        if ref["id"] not in predictions:
            missing += 1
            continue
        pred = predictions[ref["id"]]
        golds = ref["answers"]["text"]
        em += max(exact_match_score(pred, g) for g in golds)
        f1 += max(f1_score(pred, g) for g in golds)
    if n == 0:
        raise ValueError("no references to score")
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n, "n": n, "missing": missing}


def evaluate_qa(model, features, *, batch_size: int = 32, max_answer_tokens: int = 30,
                progress: bool = False) -> QAResult:
    """EM / F1 of ``model`` on tokenized questions (:func:`qa_features` with ``drop_outside=False``)."""
    predictions = predict_spans(model, features, batch_size=batch_size, max_answer_tokens=max_answer_tokens,
                                progress=progress)
    refs = [{"id": i, "answers": a} for i, a in zip(features["id"], features["answers"])]
    m = squad_metrics(predictions, refs)
    inside = features["in_window"]
    return QAResult(m["exact_match"], m["f1"], m["n"], predictions, sum(inside) / max(len(inside), 1))
