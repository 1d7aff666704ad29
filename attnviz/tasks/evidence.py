""""Evidence far": move a classification set's text out of the readout token's reach.

The transformation puts ``N`` filler tokens between the leading special token(s) and the text::

    [CLS] a1 a2 ... ak [SEP]    ->    [CLS] f f ... f (N times) a1 a2 ... ak [SEP]

With a sliding window of width ``w`` (``w // 2`` each side, bidirectional), information travels at
most ``w // 2`` positions per layer, so after ``layers`` layers ``[CLS]`` has seen positions
``<= layers * w // 2`` only. With ``N >= layers * w // 2`` (MiniLM: 6 layers, window 32 -> 96) no
article token can reach ``[CLS]``: a classifier reading ``[CLS]`` is at chance unless something
global (a prompt with global attention) relays the text. That is the point: the plain task lets a
narrow window guess the topic from the first few dozen tokens, the far one does not.

Design choices (stated once here, tested in ``tests/test_documents_data.py``):

* **On token ids, not on text.** :func:`insert_filler` inserts the filler ids after the first
  ``after`` tokens (1: ``[CLS]``) of a tokenized batch, so the text's tokens are exactly the ones
  the plain task has, shifted by exactly ``N`` positions, whatever the tokenizer does with repeated
  words. (For MiniLM's WordPiece, ``" ".join(["the"] * N)`` is also exactly ``N`` tokens of id
  1996, but a SentencePiece / BPE vocabulary need not split repeated words one token each.)
* **Filler.** ``"the"`` by default: a word that is one token, identical everywhere, so the filler
  carries no information. ``filler`` may be another one-token word, a token id, or ``"random"``:
  ``N`` ids drawn once with ``seed`` from the vocabulary (special and ``[unused…]`` tokens
  excluded), the same sequence for every example. ``seed`` matters only for ``"random"``.
* **Filler tokens are real tokens**: attention mask 1, token type that of the token before them
  (0 for ``[CLS]``), so they take part in attention like text does.
* **Length.** ``max_length`` bounds the result, special tokens, filler and text together. The
  text is cut from its end while its last token (``[SEP]`` / EOS) is kept (``keep_last``); on raw
  text the tokenizer truncates to ``max_length - N`` before the filler goes in, which is the same.
  For a pair ``[CLS] a [SEP] b [SEP]`` the cut takes ``b`` first, then ``a``'s end.
* **Right padding only** (BERT's and MiniLM's default): a left-padded batch is refused.

:func:`evidence_far` applies it to a whole ``datasets.Dataset`` (raw text, or already tokenized
such as :func:`attnviz.prompts.load_task`'s splits) and returns unpadded ``input_ids`` /
``token_type_ids`` rows that the prompt trainer's collate pads.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from ..checks import check_int, is_int

#: Keys of a tokenized batch that are per-token (batch, length) and get the filler too.
TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def filler_ids(tokenizer, filler: str | int = "the", n: int = 256, seed: int = 0) -> list[int]:
    """The ``n`` filler token ids.

    Args:
        tokenizer: a Hugging Face tokenizer.
        filler: a word that the tokenizer keeps as one token (``"the"``), a token id, or
            ``"random"`` (``n`` ids drawn with ``seed`` from the non-special vocabulary).
        n: how many (``>= 0``).
        seed: the draw for ``"random"``; otherwise unused.
    Raises:
        ValueError: a word that is not exactly one token, or an id outside the vocabulary or special.
    """
    check_int("filler_tokens", n, 0)
    check_int("seed", seed, 0)
    special = set(tokenizer.all_special_ids)
    if isinstance(filler, str) and filler == "random":
        vocab = tokenizer.get_vocab()
        pool = sorted(i for tok, i in vocab.items()
                      if i not in special and not (tok.startswith("[") and tok.endswith("]"))
                      and not (tok.startswith("<") and tok.endswith(">")))
        return [int(i) for i in np.random.default_rng(seed).choice(pool, size=n)]
    if isinstance(filler, str):
        ids = tokenizer(filler, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ValueError(f"filler {filler!r} is {len(ids)} tokens for this tokenizer "
                             f"({tokenizer.convert_ids_to_tokens(ids)}); give a word that is one token "
                             f"(e.g. 'the'), a token id, or 'random'")
        fid = ids[0]
    elif is_int(filler):
        fid = int(filler)
        if not 0 <= fid < len(tokenizer):
            raise ValueError(f"filler id {fid} is outside the vocabulary (0 .. {len(tokenizer) - 1})")
    else:
        raise TypeError(f"filler must be a one-token word, a token id or 'random', got {filler!r}")
    if fid in special:
        raise ValueError(f"filler {filler!r} is the special token {tokenizer.convert_ids_to_tokens(fid)!r}; "
                         f"use an ordinary word such as 'the'")
    return [fid] * n


def _insert_row(ids: list[int], types: list[int] | None, filler: list[int], after: int,
                max_length: int | None, keep_last: bool) -> tuple[list[int], list[int] | None]:
    """One unpadded row: ``ids[:after] + filler + text``, the text cut to fit ``max_length``."""
    if len(ids) <= after:
        raise ValueError(f"a row of {len(ids)} tokens has no text after its first {after} token(s)")
    body = len(ids) - after
    if max_length is not None:
        budget = max_length - after - len(filler)
        if budget < 1 + keep_last:
            raise ValueError(f"max_length {max_length} leaves no room for text after {after} leading token(s) and "
                             f"{len(filler)} filler tokens (need at least {after + len(filler) + 1 + keep_last})")
        body = min(body, budget)
    keep = list(range(after, after + body))
    if keep_last and body < len(ids) - after:
        keep[-1] = len(ids) - 1  # the tokenizer's last token ([SEP] / EOS) stays last
    new_ids = ids[:after] + list(filler) + [ids[i] for i in keep]
    if types is None:
        return new_ids, None
    fill_type = types[after - 1] if after > 0 else 0
    return new_ids, types[:after] + [fill_type] * len(filler) + [types[i] for i in keep]


def insert_filler(batch: Mapping[str, torch.Tensor], filler: Sequence[int] | torch.Tensor, *, after: int = 1,
                  max_length: int | None = None, pad_id: int = 0, keep_last: bool = True) -> dict[str, torch.Tensor]:
    """Insert ``filler`` token ids after the first ``after`` tokens of every row of a tokenized batch.

    Args:
        batch: ``input_ids`` long (B, T), right-padded; optional ``attention_mask`` (B, T) (none:
            every token is real) and ``token_type_ids`` (B, T). Entries that are not (B, T), such
            as ``labels`` (B,), pass through unchanged.
        filler: the N ids to insert (:func:`filler_ids`).
        after: leading tokens kept in front of the filler (1: ``[CLS]``; 0: none).
        max_length: bound on each row's length; text tokens are dropped from the end to fit,
            keeping the last one if ``keep_last``.
        pad_id: the id written into padding (the tokenizer's ``pad_token_id``).
        keep_last: keep each row's last real token (``[SEP]`` / EOS) when cutting.
    Returns:
        A new dict: ``input_ids`` (B, T') with ``T' = max over rows of the new lengths``
        (``T + N`` when nothing is cut), ``attention_mask`` (B, T') (1 on filler and text),
        ``token_type_ids`` (B, T') if given, and the pass-through entries. Row ``b``'s text token
        at position ``p >= after`` moves to ``p + N``.
    Raises:
        ValueError: left padding, unknown per-token entries, a row without text, no room in
            ``max_length``. TypeError: bad argument types.
    """
    if "input_ids" not in batch:
        raise ValueError(f"the batch has no 'input_ids' (keys: {sorted(batch)})")
    ids = batch["input_ids"]
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
        raise TypeError(f"input_ids must be a (batch, length) tensor, got {type(ids).__name__} "
                        f"{tuple(getattr(ids, 'shape', ()))}")
    check_int("after", after, 0)
    check_int("pad_id", pad_id, 0)
    if max_length is not None:
        check_int("max_length", max_length, 1)
    fill = [int(i) for i in (filler.tolist() if isinstance(filler, torch.Tensor) else filler)]
    B, T = ids.shape
    others = [k for k, v in batch.items() if k not in TOKEN_KEYS and isinstance(v, torch.Tensor)
              and v.dim() == 2 and tuple(v.shape) == (B, T)]
    if others:
        raise ValueError(f"per-token entries {others} would not get the filler; insert_filler handles "
                         f"{', '.join(TOKEN_KEYS)} (drop the others, or recompute them after)")
    mask = batch.get("attention_mask")
    mask = torch.ones_like(ids) if mask is None else mask
    if tuple(mask.shape) != (B, T):
        raise ValueError(f"attention_mask has shape {tuple(mask.shape)}, input_ids {(B, T)}")
    lengths = mask.long().sum(1)
    right_padded = (mask.long() == (torch.arange(T, device=ids.device)[None, :] < lengths[:, None]).long()).all()
    if not bool(right_padded):
        raise ValueError("the batch is not right-padded (real tokens first, then padding); tokenize with "
                         "padding_side='right'")
    types = batch.get("token_type_ids")
    rows = []
    for b in range(B):
        n = int(lengths[b])
        rows.append(_insert_row(ids[b, :n].tolist(), None if types is None else types[b, :n].tolist(),
                                fill, after, max_length, keep_last))
    width = max(len(r[0]) for r in rows) if rows else T + len(fill)
    out = dict(batch)
    out["input_ids"] = torch.full((B, width), pad_id, dtype=ids.dtype, device=ids.device)
    out["attention_mask"] = torch.zeros((B, width), dtype=mask.dtype, device=ids.device)
    if types is not None:
        out["token_type_ids"] = torch.zeros((B, width), dtype=types.dtype, device=ids.device)
    for b, (row_ids, row_types) in enumerate(rows):
        out["input_ids"][b, :len(row_ids)] = torch.tensor(row_ids, dtype=ids.dtype)
        out["attention_mask"][b, :len(row_ids)] = 1
        if types is not None:
            out["token_type_ids"][b, :len(row_ids)] = torch.tensor(row_types, dtype=types.dtype)
    return out


def _default_tokenizer():
    from transformers import AutoTokenizer

    from ..models import default_model_path

    return AutoTokenizer.from_pretrained(default_model_path())


def evidence_far(dataset, filler_tokens: int = 256, filler: str | int = "the", seed: int = 0, *, tokenizer=None,
                 max_length: int | None = 512, text_column: str = "text", after: int = 1, keep_last: bool = True):
    """The "evidence far" version of a classification set: ``[CLS]`` + ``filler_tokens`` filler + the text.

    Args:
        dataset: a ``datasets.Dataset`` with a text column ``text_column`` (tokenized here, truncated
            to ``max_length - filler_tokens``), or already tokenized with ``input_ids`` (and maybe
            ``token_type_ids`` / ``attention_mask``), e.g. ``attnviz.prompts.load_task(...).train``.
            For text pairs, tokenize first and pass the tokenized set.
        filler_tokens: N, the number of filler tokens (>= 0).
        filler: ``"the"``, another one-token word, a token id, or ``"random"`` (see :func:`filler_ids`).
        seed: the draw for ``filler="random"``.
        tokenizer: the model's tokenizer (None: the embedded MiniLM's).
        max_length: bound on every row, filler included (None: no bound). MiniLM has 512 positions;
            ``attnviz.models.extend_positions`` gives it more.
        text_column: the raw text column, used when there is no ``input_ids`` column.
        after: leading tokens kept in front of the filler (1: ``[CLS]``).
        keep_last: keep each row's last token (``[SEP]``) when cutting.
    Returns:
        A ``datasets.Dataset`` with unpadded ``input_ids`` and ``token_type_ids`` (and
        ``attention_mask``, all ones, if the input had one), the other columns (``label`` …) kept and
        the text column dropped: what :func:`attnviz.prompts.train_soft_prompt`'s collate pads.
    """
    check_int("filler_tokens", filler_tokens, 0)
    if max_length is not None:
        check_int("max_length", max_length, 1)
    tokenizer = tokenizer if tokenizer is not None else _default_tokenizer()
    fill = filler_ids(tokenizer, filler, filler_tokens, seed)
    cols = dataset.column_names
    tokenized = "input_ids" in cols
    if not tokenized and text_column not in cols:
        raise ValueError(f"the dataset has neither 'input_ids' nor the text column {text_column!r} "
                         f"(columns: {cols}); pass text_column=")
    if not tokenized and max_length is not None and max_length - filler_tokens < 2 + after:
        raise ValueError(f"max_length {max_length} leaves no room for text after {filler_tokens} filler tokens")
    has_mask = "attention_mask" in cols

    def transform(batch):
        if tokenized:
            id_rows = batch["input_ids"]
            masks = batch["attention_mask"] if has_mask else [None] * len(id_rows)
            type_rows = batch["token_type_ids"] if "token_type_ids" in cols else [None] * len(id_rows)
            id_rows = [r if m is None else r[:sum(m)] for r, m in zip(id_rows, masks)]  # drop any right padding
            type_rows = [t if t is None else t[:len(r)] for t, r in zip(type_rows, id_rows)]
        else:
            budget = None if max_length is None else max_length - filler_tokens
            enc = tokenizer(batch[text_column], truncation=budget is not None, max_length=budget)
            id_rows = enc["input_ids"]
            type_rows = enc.get("token_type_ids") or [None] * len(id_rows)
        out_ids, out_types = [], []
        for r, t in zip(id_rows, type_rows):
            new_ids, new_types = _insert_row(list(r), None if t is None else list(t), fill, after, max_length,
                                             keep_last)
            out_ids.append(new_ids)
            out_types.append(new_types if new_types is not None else [0] * len(new_ids))
        out = {"input_ids": out_ids, "token_type_ids": out_types}
        if has_mask:
            out["attention_mask"] = [[1] * len(r) for r in out_ids]
        return out

    drop = [] if tokenized else [text_column]
    return dataset.map(transform, batched=True, remove_columns=drop, keep_in_memory=True,
                       desc=f"evidence far: {filler_tokens} x {filler!r}")


def _place_row(ids: list[int], types: list[int] | None, fill: list[int], before: int, filler_tokens: int,
               article_tokens: int) -> tuple[list[int], list[int]]:
    """``[CLS] fill[:before] body fill[...] [SEP]`` of length ``filler_tokens + article_tokens + 2``."""
    if len(ids) < 3:
        raise ValueError(f"a row of {len(ids)} tokens has no text between its first and last token")
    body = ids[1:-1][:article_tokens]
    after = filler_tokens - before + (article_tokens - len(body))
    new_ids = [ids[0]] + fill[:before] + body + fill[before:before + after] + [ids[-1]]
    t = types[0] if types else 0
    return new_ids, [t] * len(new_ids)


def position_split(position: float, filler_tokens: int) -> int:
    """Filler tokens in front of the article at ``position`` (0 = right after ``[CLS]``, 1 = at the
    end): ``round(position * filler_tokens)``."""
    if not isinstance(position, (int, float)) or isinstance(position, bool) or not 0 <= position <= 1:
        raise ValueError(f"position must be a fraction of the free room in [0, 1], got {position!r}")
    return int(round(position * filler_tokens))


def evidence_at(dataset, position: float, filler_tokens: int = 128, article_tokens: int = 126, filler: str | int = "the",
                seed: int = 0, *, tokenizer=None, text_column: str = "text"):
    """The evidence-position variant: the article at a chosen position inside filler of fixed total length.

    Every row is ``[CLS] + b filler + article + a filler + [SEP]`` with ``b = round(position *
    filler_tokens)``, the article cut to ``article_tokens`` text tokens, and ``a`` filling the rest,
    so every row has exactly ``filler_tokens + article_tokens + 2`` tokens whatever the position
    and the article's length (a short article gets more filler behind it). Position 0 puts the
    article next to the readout ``[CLS]``; position 1 puts it ``filler_tokens`` further away — the
    window analogue of "Lost in the Middle" (the gold document's position among distractors).

    Args:
        dataset: a ``datasets.Dataset`` with raw ``text_column`` or tokenized ``input_ids`` (single
            texts: ``[CLS] text [SEP]``).
        position: fraction of the free room in front of the article, 0 … 1.
        filler_tokens: the free room (filler that is always there).
        article_tokens: text tokens kept per article (cut from its end).
        filler, seed: as in :func:`evidence_far` (``"random"``: ``filler_tokens + article_tokens`` ids
            drawn once; the part in front of the article is the same at every position).
        tokenizer: the model's tokenizer (None: MiniLM's).
    Returns:
        A ``datasets.Dataset`` with ``input_ids`` and ``token_type_ids`` (all 0) rows of equal length,
        the other columns kept and the text dropped.
    """
    check_int("filler_tokens", filler_tokens, 0)
    check_int("article_tokens", article_tokens, 1)
    before = position_split(position, filler_tokens)
    tokenizer = tokenizer if tokenizer is not None else _default_tokenizer()
    fill = filler_ids(tokenizer, filler, filler_tokens + article_tokens, seed)
    cols = dataset.column_names
    tokenized = "input_ids" in cols
    if not tokenized and text_column not in cols:
        raise ValueError(f"the dataset has neither 'input_ids' nor the text column {text_column!r} (columns: {cols})")

    def transform(batch):
        if tokenized:
            id_rows = batch["input_ids"]
            type_rows = batch["token_type_ids"] if "token_type_ids" in cols else [None] * len(id_rows)
        else:
            enc = tokenizer(batch[text_column], truncation=True, max_length=article_tokens + 2)
            id_rows, type_rows = enc["input_ids"], enc.get("token_type_ids") or [None] * len(enc["input_ids"])
        out = [_place_row(list(r), None if t is None else list(t), fill, before, filler_tokens, article_tokens)
               for r, t in zip(id_rows, type_rows)]
        return {"input_ids": [o[0] for o in out], "token_type_ids": [o[1] for o in out]}

    drop = [c for c in cols if c in (text_column, "attention_mask")]
    return dataset.map(transform, batched=True, remove_columns=drop, keep_in_memory=True,
                       desc=f"evidence at {position:g}: {filler_tokens} x {filler!r}")
