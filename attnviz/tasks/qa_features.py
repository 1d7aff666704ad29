"""Extractive QA rows tokenized for a span head (:func:`qa_features`, :func:`span_labels`).

Tokenization for a span head (:func:`qa_features`): ``[CLS] question [SEP] context [SEP]``, one
window per question, at most ``max_length`` tokens. Truncation policy: the context is cut at the
end (the question is cut only if it alone would leave fewer than ``min_context`` context tokens).
A question whose first answer lies (partly) beyond the cut gets start = end = 0 (``[CLS]``) and
``in_window`` False; :func:`qa_features` drops those from training data by default (``drop_outside``),
and evaluation keeps them, so EM/F1 are over every question (a cut-off answer counts as missed).
"""

from __future__ import annotations

import collections
from typing import Sequence

from ..checks import check_int


def span_labels(offsets: Sequence[Sequence[int]], sequence_ids: Sequence[int | None], start_char: int,
                end_char: int) -> tuple[int, int] | None:
    """Token labels ``(start, end)`` of the character span ``[start_char, end_char)`` of the context.

    Args:
        offsets: ``(T, 2)`` character offsets of each token in its own text (the tokenizer's
            ``offset_mapping``).
        sequence_ids: 0 for question tokens, 1 for context tokens, None for special tokens.
        start_char, end_char: the answer's characters in the context (end exclusive).
    Returns:
        ``(start, end)`` token indices (inclusive): the first context token that ends after
        ``start_char`` and the last context token that starts before ``end_char``; None when the
        span is not wholly inside the context tokens (cut off by truncation) or empty.
    """
    ctx = [i for i, s in enumerate(sequence_ids) if s == 1]
    if not ctx or end_char <= start_char or start_char < 0:
        return None
    if start_char < offsets[ctx[0]][0] or end_char > offsets[ctx[-1]][1]:
        return None
    start = next((i for i in ctx if offsets[i][1] > start_char), None)
    end = next((i for i in reversed(ctx) if offsets[i][0] < end_char), None)
    if start is None or end is None or end < start:
        return None
    return start, end


def _answer_chars(context: str, answers: dict) -> tuple[int, int] | None:
    """The first answer with a known start, its surrounding whitespace removed: ``(start, end)``."""
    for text, start in zip(answers["text"], answers["answer_start"]):
        if start is None or start < 0 or not text.strip():
            continue
        lead = len(text) - len(text.lstrip())
        return start + lead, start + lead + len(text.strip())
    return None


def qa_features(dataset, tokenizer, *, max_length: int = 256, min_context: int | None = None, drop_outside: bool = True,
                progress: bool = False):
    """Tokenize questions + contexts for a span head, with start / end labels from the answer offsets.

    ``[CLS] question [SEP] context [SEP]``, at most ``max_length`` tokens, one window per question;
    the context is cut at the end, the question only if it alone would leave fewer than
    ``min_context`` context tokens. The label is the first answer with a known start.

    Args:
        dataset: rows of :func:`load_qa` (``question``, ``context``, ``answers``).
        tokenizer: a fast tokenizer (offsets are needed).
        max_length: tokens per input, special tokens included (the prompt comes on top).
        min_context: context tokens the question may never squeeze out (default ``max_length // 2``).
        drop_outside: drop questions whose answer is not inside the window (for training); keep
            False for evaluation so every question is scored.
    Returns:
        ``datasets.Dataset`` with ``input_ids``, ``token_type_ids``, ``start_positions``,
        ``end_positions`` (0 = ``[CLS]`` when the answer is outside the window), ``in_window``,
        ``offset_mapping`` (``[-1, -1]`` on non-context tokens), ``example`` (row index in
        ``dataset``), and the row's ``id``, ``context`` and ``answers`` for :func:`predict_spans`.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(f"qa_features needs a fast tokenizer (character offsets), got {type(tokenizer).__name__}")
    check_int("max_length", max_length, 4)
    if min_context is None:
        min_context = max_length // 2
    check_int("min_context", min_context, 1)
    if min_context > max_length - 3:
        raise ValueError(f"min_context ({min_context}) must leave room for [CLS], [SEP], [SEP] in max_length "
                         f"({max_length}); at most {max_length - 3}")
    max_question = max_length - 3 - min_context

    def encode(batch, indices):
        questions = [q.strip() for q in batch["question"]]
        q_ids = tokenizer(questions, add_special_tokens=False)["input_ids"]
        long_q = [i for i, ids in enumerate(q_ids) if len(ids) > max_question]
        for i in long_q:  # cut the question at a token boundary, so the context keeps min_context tokens
            enc = tokenizer(questions[i], add_special_tokens=False, return_offsets_mapping=True)
            questions[i] = questions[i][:enc["offset_mapping"][max_question - 1][1]]
        enc = tokenizer(questions, batch["context"], truncation="only_second", max_length=max_length,
                        return_offsets_mapping=True)
        out = collections.defaultdict(list)
        for b in range(len(questions)):
            seq = enc.sequence_ids(b)
            offsets = enc["offset_mapping"][b]
            chars = _answer_chars(batch["context"][b], batch["answers"][b])
            span = span_labels(offsets, seq, *chars) if chars is not None else None
            out["input_ids"].append(enc["input_ids"][b])
            out["token_type_ids"].append(enc["token_type_ids"][b] if "token_type_ids" in enc
                                         else [0 if s != 1 else 1 for s in seq])
            out["start_positions"].append(span[0] if span else 0)
            out["end_positions"].append(span[1] if span else 0)
            out["in_window"].append(span is not None)
            out["offset_mapping"].append([list(o) if s == 1 else [-1, -1] for o, s in zip(offsets, seq)])
            out["example"].append(indices[b])
        return dict(out)

    keep = ["id", "context", "answers"]
    feats = dataset.map(encode, batched=True, with_indices=True, keep_in_memory=True,
                        remove_columns=[c for c in dataset.column_names if c not in keep],
                        desc="tokenize questions + contexts" if progress else None)
    if drop_outside:
        feats = feats.filter(lambda w: w, input_columns=["in_window"], keep_in_memory=True)
    return feats
