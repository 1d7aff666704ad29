"""The soft prompt: ``n_tokens`` trainable vectors of the model's hidden size, and where they go.

A :class:`SoftPrompt` is nothing but a ``(n_tokens, hidden)`` parameter called ``weight`` plus the
:class:`~attnviz.PromptPlacement` that says where the vectors sit in the sequence. Everything else
(inserting them into ``inputs_embeds``, position ids, token types, masks) is done by
:class:`attnviz.prompts.PromptModel` from the :class:`~attnviz.SequenceLayout`.

How the vectors start matters more than anything else on a small frozen encoder. Measured on BBC
News (5 classes, 512 tokens, window 32, frozen all-MiniLM-L6-v2, [CLS] readout), accuracy of a
*frozen* prompt + trained head: no prompt 0.88, 20 copies of ``[SEP]`` 0.64, of ``"."`` 0.46,
20 random vocabulary tokens 0.32, random vectors (uniform ±0.5) or ``[MASK]`` 0.20. Trained
(prompt lr 3e-2, head lr 1e-2, batch 8, 80 steps): from ``[SEP]`` copies + noise 0.835, from
random vocabulary 0.59. BERT-style encoders treat ``[SEP]`` as a "no-op" token that many heads
attend to when they have nothing to do (Clark et al. 2019), so a prompt of ``[SEP]`` copies first
disturbs the text little, and training moves on from a working model. Random vectors of
uniform ±0.5 (Lester et al. 2021's choice for T5) are about five times larger than MiniLM's word
embeddings (per-coordinate std 0.056 against 0.29) and swamp the text. Hence the default
``init="text"`` with the tokenizer's separator token and a little noise.

NLI is harder for a prompt than topic classification: a sentence-embedding encoder never trained
to compare two segments gives a prompt little to steer, so compare prompts against a head-only
baseline with mean pooling on such models (measured: ``benchmarks/results/nli_study.md``;
``notebooks/05_nli.ipynb`` walks through it).
"""

from __future__ import annotations

import re
from typing import Sequence

import torch
from torch import nn

from ..placement import PromptPlacement

from ..choices import INITS  # noqa: E402  (defined once, torch-free)

#: Frequent-token pool size for ``init="vocab"`` (Lester et al. sample from the 5,000 most common).
VOCAB_TOP_K = 5000

_WORD = re.compile(r"^[A-Za-z]{2,}$")


def frequent_token_ids(tokenizer, top_k: int = VOCAB_TOP_K) -> list[int]:
    """Ids of up to ``top_k`` frequent whole-word tokens, lowest ids first.

    Why lowest ids: tokenizer vocabularies carry no counts, but WordPiece (BERT, MiniLM) lists
    special and ``[unusedN]`` slots, then single characters, then whole words roughly by corpus
    frequency (bert-base-uncased: ``the``=1996, ``of``, ``and``, ``in``, ``to``, ...). BPE vocabularies
    (GPT-2, RoBERTa) are in merge order, which is also frequency-ordered. So the lowest-id tokens
    that are whole ASCII words of two or more letters (no ``##`` pieces, no special or unused
    tokens; a leading ``Ġ`` / ``▁`` word marker is allowed) are a frequent-word pool.
    """
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    vocab = tokenizer.get_vocab()
    out = []
    for token, idx in sorted(vocab.items(), key=lambda kv: kv[1]):
        if idx in special or token.startswith(("##", "[", "<")):
            continue
        word = token.lstrip("Ġ▁")
        if _WORD.match(word):
            out.append(idx)
            if len(out) >= top_k:
                break
    if not out:
        raise ValueError("the tokenizer's vocabulary has no whole-word tokens to sample from; use init='text' or 'random'")
    return out


def _check_finite(name: str, t: torch.Tensor) -> None:
    """Refuse NaN / inf: one such entry makes every output it reaches NaN, silently."""
    bad = ~torch.isfinite(t.detach())
    if bool(bad.any()):
        rows = sorted({int(r) for r in bad.reshape(-1, t.shape[-1]).any(-1).nonzero().flatten()})
        raise ValueError(f"{name} holds {int(bad.sum())} NaN / inf values (in rows {rows[:10]}"
                         f"{' ...' if len(rows) > 10 else ''}); prompt vectors must be finite: re-initialise with "
                         f"SoftPrompt.init(...) or load the last good checkpoint")


class SoftPrompt(nn.Module):
    """``n_tokens`` trainable vectors and their placement.

    Attributes:
        weight: ``nn.Parameter`` ``(n_tokens, hidden)``; prompt token ``j`` goes to
            ``layout.prompt_positions[j]`` (this name is the contract with PEFT interop).
        placement: the :class:`~attnviz.PromptPlacement` (its ``n_tokens`` equals ``weight.shape[0]``).
        init_info: how the vectors were initialised (JSON-able dict, saved with checkpoints).
        deep: None, or ``nn.Parameter`` ``(layers, n_tokens, hidden)`` after :meth:`add_layers`
            (a deep prompt: per-layer additions to the prompt's hidden states; not a PEFT
            prompt-tuning adapter, so it cannot be exported as one).
    """

    def __init__(self, weight: torch.Tensor, placement: PromptPlacement, init_info: dict | None = None):
        super().__init__()
        if not isinstance(placement, PromptPlacement):
            raise TypeError(f"placement must be a PromptPlacement, got {type(placement).__name__}")
        if weight.dim() != 2:
            raise ValueError(f"weight must be (n_tokens, hidden), got shape {tuple(weight.shape)}")
        if weight.shape[0] != placement.n_tokens:
            raise ValueError(f"weight has {weight.shape[0]} rows but the placement has n_tokens={placement.n_tokens}; "
                             f"give a ({placement.n_tokens}, hidden) tensor or PromptPlacement(..., "
                             f"n_tokens={weight.shape[0]})")
        _check_finite("weight", weight)
        self.weight = nn.Parameter(weight.detach().clone().float())
        self.placement = placement
        self.init_info = dict(init_info or {})
        self.deep: nn.Parameter | None = None

    def add_layers(self, num_layers: int, values: torch.Tensor | None = None) -> "SoftPrompt":
        """Make this a deep prompt (P-tuning v2 style): one more ``(n_tokens, hidden)`` set per layer.

        ``deep`` ``(num_layers, n_tokens, hidden)`` is added to the prompt positions' hidden states
        at the input of every transformer layer (:class:`~attnviz.prompts.PromptModel` does it
        with ``deep=True``). It starts at zero, so a fresh deep prompt computes exactly what the
        shallow prompt computes: the start that matters most on a small frozen encoder (see the
        module doc) is kept, and training then moves every layer's prompt states on their own.
        ``values`` fills it (a checkpoint); a prompt that is already deep only checks the layer count.
        """
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers must be an int >= 1, got {num_layers!r}")
        shape = (num_layers, self.n_tokens, self.hidden_size)
        if values is not None and tuple(values.shape) != shape:
            raise ValueError(f"deep prompt values have shape {tuple(values.shape)}, expected {shape}")
        if values is not None:
            _check_finite("deep prompt values", values)
        if self.deep is not None:
            if tuple(self.deep.shape) != shape:
                raise ValueError(f"this prompt is already deep over {self.deep.shape[0]} layers, not {num_layers}")
            if values is not None:
                with torch.no_grad():
                    self.deep.copy_(values)
            return self
        start = torch.zeros(shape) if values is None else values.detach().clone().float()
        self.deep = nn.Parameter(start.to(self.weight.device))
        return self

    @property
    def is_deep(self) -> bool:
        return self.deep is not None

    @property
    def n_tokens(self) -> int:
        return self.weight.shape[0]

    @property
    def hidden_size(self) -> int:
        return self.weight.shape[1]

    def forward(self) -> torch.Tensor:
        """The prompt vectors ``(n_tokens, hidden)``."""
        return self.weight

    def extra_repr(self) -> str:
        deep = f", deep over {self.deep.shape[0]} layers" if self.deep is not None else ""
        return f"n_tokens={self.n_tokens}, hidden={self.hidden_size}, placement={self.placement}{deep}"

    @classmethod
    def init(
        cls,
        model,
        tokenizer,
        placement: PromptPlacement,
        init: str = "text",
        *,
        text: str | None = None,
        labels: Sequence[str] | None = None,
        noise: float | None = None,
        seed: int = 0,
    ) -> "SoftPrompt":
        """A prompt for ``model``, initialised one of four ways (see the module doc for measurements).

        Args:
            model: the (frozen) transformers model; its input embedding matrix ``(V, H)`` is read.
            tokenizer: the model's tokenizer (``vocab``, ``text`` and ``labels`` need it).
            placement: where the prompt goes; ``placement.n_tokens`` vectors are made.
            init:
                * ``"text"`` (default): the token embeddings of ``text``, repeated / truncated to
                  ``n_tokens``. ``text=None`` means the separator token (``[SEP]``): copies of it
                  are the best starting point measured on a frozen MiniLM (see module doc).
                * ``"vocab"``: embeddings of tokens drawn without replacement from
                  :func:`frequent_token_ids` (Lester et al.'s "sampled vocabulary").
                * ``"labels"``: the embeddings of the class-label words (a multi-piece label is the
                  mean of its pieces), in order; the remaining vectors as ``"vocab"`` (Lester et al.).
                * ``"random"``: uniform in ``[-0.5, 0.5]`` (Lester et al.); on MiniLM this is far
                  larger than real word embeddings and the worst start measured.
            text: the init phrase for ``"text"``.
            labels: the class names for ``"labels"``, e.g. ``["entailment", "neutral", "contradiction"]``.
            noise: Gaussian noise added to every vector, in units of the embedding matrix's std
                (breaks the symmetry between copies of one token). Default: 0.1 for ``"text"``
                (so copies of ``[SEP]`` differ), 0 otherwise.
            seed: makes ``vocab``, ``labels`` and ``noise`` reproducible (a private generator; the
                global RNG is not touched).
        """
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; allowed: {', '.join(INITS)}")
        if not isinstance(placement, PromptPlacement):
            raise TypeError(f"placement must be a PromptPlacement, got {type(placement).__name__}")
        table = model.get_input_embeddings().weight.detach().float()
        V, H = table.shape
        n = placement.n_tokens
        gen = torch.Generator().manual_seed(int(seed))
        info: dict = {"init": init, "seed": int(seed)}

        def need_tokenizer():
            if tokenizer is None:
                raise ValueError(f"init={init!r} needs the model's tokenizer; pass tokenizer= or use init='random'")

        def sample_vocab(k: int) -> list[int]:
            pool = [i for i in frequent_token_ids(tokenizer) if i < V]
            if k > len(pool):
                picks = torch.randint(len(pool), (k,), generator=gen).tolist()
            else:
                picks = torch.randperm(len(pool), generator=gen)[:k].tolist()
            return [pool[i] for i in picks]

        if init == "random":
            if text is not None or labels is not None:
                raise ValueError("init='random' takes neither text= nor labels=")
            weight = torch.rand(n, H, generator=gen) - 0.5
        elif init == "vocab":
            need_tokenizer()
            ids = sample_vocab(n)
            weight = table[ids]
            info["token_ids"] = ids
        elif init == "text":
            need_tokenizer()
            if text is None:
                if getattr(tokenizer, "sep_token", None) is None:
                    raise ValueError("init='text' without text= uses the separator token, but this tokenizer has none; "
                                     "give text=, e.g. text='Classify the topic of this article'")
                ids = [tokenizer.sep_token_id]
                info["text"] = tokenizer.sep_token
            else:
                if not isinstance(text, str) or not text.strip():
                    raise ValueError(f"text must be a non-empty string, got {text!r}")
                ids = tokenizer(text, add_special_tokens=False)["input_ids"]
                if not ids:
                    raise ValueError(f"text {text!r} gives no tokens")
                info["text"] = text
            ids = (ids * (n // len(ids) + 1))[:n]
            weight = table[ids]
            info["token_ids"] = ids
        else:  # labels
            need_tokenizer()
            if not labels or isinstance(labels, str):
                raise ValueError(f"init='labels' needs labels=, a list of class names, got {labels!r}")
            vectors = []
            for name in labels[:n]:
                ids = tokenizer(str(name).replace("_", " "), add_special_tokens=False)["input_ids"]
                if not ids:
                    raise ValueError(f"label {name!r} gives no tokens")
                vectors.append(table[ids].mean(0))
            rest = n - len(vectors)
            extra = sample_vocab(rest) if rest > 0 else []
            weight = torch.cat([torch.stack(vectors), table[extra]]) if extra else torch.stack(vectors)
            info["labels"] = [str(x) for x in labels]
            info["token_ids_rest"] = extra
        if noise is None:
            noise = 0.1 if init == "text" else 0.0
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        if noise:
            weight = weight + noise * float(table.std()) * torch.randn(n, H, generator=gen)
        info["noise"] = float(noise)
        return cls(weight, placement, info)
