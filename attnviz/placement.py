"""Where the soft prompt sits in the sequence, and the layout that results.

A :class:`PromptPlacement` says *where* the ``n_tokens`` prompt vectors go relative to the text;
:meth:`PromptPlacement.layout` turns it, for a given text length, into a :class:`SequenceLayout`:
the full sequence length ``L``, the absolute prompt positions and named segments
(``cls`` / ``prompt`` / ``text`` / ``sep``, or ``premise`` / ``hypothesis``, ``question`` /
``context`` for pairs).

Special tokens stay where the tokenizer puts them: a ``prefix`` prompt sits right *after*
``[CLS]``, so a classifier that reads position 0 still reads ``[CLS]``. PEFT's prompt tuning
prepends the virtual tokens *before* ``[CLS]``; that placement is ``"start"``.

Layouts for one text segment of ``T`` tokens and ``n`` prompt tokens (``C`` = [CLS], ``S`` = [SEP]):

============  ==========================================================
``start``     ``P*n C t0 .. tT-1 S``                 (PEFT's placement)
``prefix``    ``C P*n t0 .. tT-1 S``
``infix``     ``C t0 .. t(at-1) P*n t(at) .. S``    (``0 <= at <= T``)
``suffix``    ``C t0 .. tT-1 P*n S``
``scattered`` ``C p0 t0..t(e-1) p1 te .. S``        (prompt token j before text token j*e;
              those past the end of the text stand together before ``S``)
============  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from .checks import check_int

from .choices import PLACEMENTS  # noqa: E402  (defined once, torch-free)
SEGMENT_NAMES = ("text", "premise", "hypothesis", "question", "context")


class Segment(NamedTuple):
    """A named half-open span ``[start, stop)`` of layout positions."""

    name: str
    start: int
    stop: int

    def __len__(self) -> int:  # number of positions
        return self.stop - self.start


@dataclass(frozen=True)
class SequenceLayout:
    """The positions of every token of one sequence after the prompt is inserted.

    Attributes:
        length: ``L``, tokens in the sequence including special and prompt tokens.
        prompt_positions: absolute positions of the prompt tokens, ascending (prompt token ``j``
            sits at ``prompt_positions[j]``).
        segments: ordered named spans that tile ``range(L)`` (``cls``, ``prompt``, ``text``,
            ``sep``, ``premise``, ...). Scattered prompts give many one-token ``prompt`` spans.
        token_index: for each layout position, the index into the tokenizer's ids *without*
            the prompt (special tokens included), or ``-1`` for prompt slots. This is how
            :func:`insert_prompt` builds ``inputs_embeds``.
    """

    length: int
    prompt_positions: tuple[int, ...]
    segments: tuple[Segment, ...]
    token_index: tuple[int, ...]

    def __post_init__(self):
        if len(self.token_index) != self.length:
            raise ValueError(f"token_index has {len(self.token_index)} entries, expected length={self.length}")

    @property
    def n_prompt(self) -> int:
        return len(self.prompt_positions)

    @property
    def n_tokens(self) -> int:
        """Tokens that come from the tokenizer (``length - n_prompt``)."""
        return self.length - self.n_prompt

    def positions(self, name: str) -> tuple[int, ...]:
        """All positions of segments called ``name`` (e.g. ``"text"``, ``"cls"``), ascending."""
        out = [p for s in self.segments if s.name == name for p in range(s.start, s.stop)]
        if not out and name not in {s.name for s in self.segments}:
            known = sorted({s.name for s in self.segments})
            raise ValueError(f"no segment named {name!r} in this layout; it has {known}")
        return tuple(out)

    @property
    def readout_position(self) -> int:
        """Where a classifier reads: ``[CLS]`` if the layout has one, else the last token."""
        cls = [s.start for s in self.segments if s.name == "cls"]
        return cls[0] if cls else self.length - 1

    def names(self) -> tuple[str, ...]:
        """Segment name of each position, length ``L``."""
        out = [""] * self.length
        for s in self.segments:
            for p in range(s.start, s.stop):
                out[p] = s.name
        return tuple(out)

    def prompt_mask(self) -> torch.Tensor:
        """bool ``(L,)``: True at prompt positions."""
        m = torch.zeros(self.length, dtype=torch.bool)
        m[list(self.prompt_positions)] = True
        return m

    def check_fits(self, max_positions: int) -> "SequenceLayout":
        """Raise if the layout is longer than a model's position table; return self otherwise."""
        if self.length > max_positions:
            raise ValueError(
                f"layout length {self.length} ({self.n_tokens} tokens + {self.n_prompt} prompt tokens) "
                f"exceeds the model's {max_positions} positions; shorten the text, use fewer prompt "
                f"tokens, or extend the position table (attnviz.models.extend_positions)"
            )
        return self


@dataclass(frozen=True)
class PromptPlacement:
    """Where ``n_tokens`` soft-prompt vectors go: one of :data:`PLACEMENTS`.

    Args:
        kind: ``"start"`` (before [CLS], as PEFT), ``"prefix"`` (after [CLS]), ``"infix"``
            (before text token ``at``), ``"suffix"`` (before the final [SEP]) or ``"scattered"``
            (prompt token ``j`` before text token ``j * every``).
        n_tokens: number of prompt vectors, >= 1.
        at: infix only, ``0 <= at <= text_len`` counted in text tokens (both segments of a pair,
            in order; ``at == len(first)`` puts the prompt right before the second segment).
        every: scattered only, >= 1.
    """

    kind: str = "prefix"
    n_tokens: int = 20
    at: int | None = None
    every: int | None = None

    def __post_init__(self):
        if self.kind not in PLACEMENTS:
            raise ValueError(f"unknown placement {self.kind!r}; allowed: {', '.join(PLACEMENTS)}")
        check_int("n_tokens", self.n_tokens, 1)
        if self.kind == "infix":
            if self.at is None:
                raise ValueError("infix placement needs at= (the text token the prompt goes before), e.g. at=64")
            check_int("at", self.at, 0)
        elif self.at is not None:
            raise ValueError(f"at={self.at} only applies to placement 'infix', not {self.kind!r}")
        if self.kind == "scattered":
            if self.every is None:
                raise ValueError("scattered placement needs every= (text tokens between prompt tokens), e.g. every=16")
            check_int("every", self.every, 1)
        elif self.every is not None:
            raise ValueError(f"every={self.every} only applies to placement 'scattered', not {self.kind!r}")

    def layout(
        self,
        text_len: int,
        second_len: int | None = None,
        *,
        names: tuple[str, ...] | None = None,
        cls: bool = True,
        sep: bool = True,
        max_positions: int | None = None,
    ) -> SequenceLayout:
        """The :class:`SequenceLayout` for a text of ``text_len`` tokens (special tokens excluded).

        Args:
            text_len: tokens of the (first) text segment, >= 0.
            second_len: tokens of a second segment (pairs: ``[CLS] a [SEP] b [SEP]``), or None.
            names: segment names, default ``("text",)`` or ``("premise", "hypothesis")`` for pairs.
            cls, sep: whether the tokenizer adds ``[CLS]`` at the start / ``[SEP]`` after each segment
                (decoders such as GPT-2 or Mistral add neither: pass ``cls=False, sep=False``).
            max_positions: if given, raise when the layout does not fit the model's positions.
        """
        check_int("text_len", text_len, 0)
        lens = [text_len]
        if second_len is not None:
            check_int("second_len", second_len, 0)
            lens.append(second_len)
        if names is None:
            names = ("text",) if len(lens) == 1 else ("premise", "hypothesis")
        if len(names) != len(lens):
            raise ValueError(f"names={names!r} has {len(names)} entries for {len(lens)} text segments")
        for n in names:
            if n not in SEGMENT_NAMES:
                raise ValueError(f"unknown segment name {n!r}; allowed: {', '.join(SEGMENT_NAMES)}")
        total_text = sum(lens)
        if self.kind == "infix" and self.at > total_text:
            raise ValueError(f"infix at={self.at} is beyond the text ({total_text} tokens); allowed 0..{total_text}")

        # Tokenizer order without prompt: items are (segment name, tokenizer index, text ordinal or None).
        items: list[tuple[str, int, int | None]] = []
        idx = 0
        if cls:
            items.append(("cls", idx, None)); idx += 1
        ordinal = 0
        for name, n in zip(names, lens):
            for _ in range(n):
                items.append((name, idx, ordinal)); idx += 1; ordinal += 1
            if sep:
                items.append(("sep", idx, None)); idx += 1

        # Where each prompt token goes: before the item at `insert_before[j]` (len(items) = at the end).
        n = self.n_tokens
        text_item = [i for i, it in enumerate(items) if it[2] is not None]  # item index of text ordinal o
        last = len(items) - 1 if (sep and items) else len(items)             # before the final [SEP]
        if self.kind == "start":
            before = [0] * n
        elif self.kind == "prefix":
            before = [1 if cls else 0] * n
        elif self.kind == "suffix":
            before = [last] * n
        elif self.kind == "infix":
            before = [text_item[self.at] if self.at < total_text else last] * n
        else:  # scattered
            before = [text_item[j * self.every] if j * self.every < total_text else last for j in range(n)]

        token_index: list[int] = []
        seg_names: list[str] = []
        prompt_positions: list[int] = []
        j = 0
        for i in range(len(items) + 1):
            while j < n and before[j] == i:
                prompt_positions.append(len(token_index))
                token_index.append(-1); seg_names.append("prompt"); j += 1
            if i < len(items):
                token_index.append(items[i][1]); seg_names.append(items[i][0])

        segments: list[Segment] = []
        for p, name in enumerate(seg_names):
            # Merge runs of the same name, but keep consecutive special tokens separate.
            if segments and segments[-1].name == name and name not in ("cls", "sep"):
                segments[-1] = Segment(name, segments[-1].start, p + 1)
            else:
                segments.append(Segment(name, p, p + 1))

        layout = SequenceLayout(
            length=len(token_index),
            prompt_positions=tuple(prompt_positions),
            segments=tuple(segments),
            token_index=tuple(token_index),
        )
        if max_positions is not None:
            layout.check_fits(max_positions)
        return layout


def plain_layout(text_len: int, *, cls: bool = True, sep: bool = True) -> SequenceLayout:
    """Layout of a text with no prompt: ``[CLS] t0 .. [SEP]`` (or just the text for decoders)."""
    check_int("text_len", text_len, 0)
    segs, names = [], []
    if cls:
        names.append("cls")
    names += ["text"] * text_len
    if sep:
        names.append("sep")
    for p, name in enumerate(names):
        if segs and segs[-1].name == name == "text":
            segs[-1] = Segment(name, segs[-1].start, p + 1)
        else:
            segs.append(Segment(name, p, p + 1))
    return SequenceLayout(len(names), (), tuple(segs), tuple(range(len(names))))


def insert_prompt(embeds: torch.Tensor, prompt: torch.Tensor, layout: SequenceLayout) -> torch.Tensor:
    """Put prompt vectors into token embeddings at the layout's prompt positions.

    Args:
        embeds: ``(B, T, H)`` token embeddings from the tokenizer's ids, ``T = layout.n_tokens``.
        prompt: ``(n, H)`` prompt vectors, ``n = layout.n_prompt``.
    Returns:
        ``(B, L, H)`` with ``out[:, layout.prompt_positions[j]] = prompt[j]`` and the tokens in order
        elsewhere. Differentiable in both inputs.
    """
    if embeds.dim() != 3:
        raise ValueError(f"embeds must be (B, T, H), got shape {tuple(embeds.shape)}")
    B, T, H = embeds.shape
    if T != layout.n_tokens:
        raise ValueError(f"embeds have {T} tokens, the layout expects {layout.n_tokens} (+{layout.n_prompt} prompt)")
    if prompt.shape != (layout.n_prompt, H):
        raise ValueError(f"prompt has shape {tuple(prompt.shape)}, expected ({layout.n_prompt}, {H})")
    # Gather from [tokens | prompt]: token slots index 0..T-1, prompt token j sits at T + j.
    index = list(layout.token_index)
    for j, p in enumerate(layout.prompt_positions):
        index[p] = T + j
    source = torch.cat([embeds, prompt.to(embeds).expand(B, -1, -1)], dim=1)
    return source[:, torch.tensor(index, dtype=torch.long, device=embeds.device)]
