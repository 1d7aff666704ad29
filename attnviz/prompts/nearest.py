"""What a trained prompt "says": each prompt vector's nearest vocabulary tokens and its norm.

A soft prompt lives in the model's input-embedding space but is not made of tokens. The usual
reading (Lester et al. 2021, section 7) is the cosine nearest neighbours of each prompt vector
among the rows of the input embedding matrix, together with the vector's norm: a prompt
initialised from token embeddings starts exactly on those tokens (cosine 1) and a trained one
drifts away — the neighbours say where to, the cosine says how far, the norm says whether the
vector grew beyond the scale of real tokens (the median MiniLM token embedding has norm ~1.1).

* :func:`nearest_tokens` — one prompt, (n_tokens, hidden) → :class:`PromptWords`.
* :func:`nearest_over_checkpoints` — the same for every checkpoint of a run
  (``RUN/checkpoints/step-*/state.safetensors``, read through :mod:`attnviz.prompts.checkpoints`,
  never unpickled): how the words move during training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..checks import check_int


@dataclass(frozen=True)
class PromptWords:
    """Nearest vocabulary tokens of each prompt vector.

    Attributes:
        ids: long (n_tokens, k): token ids, nearest first (cosine over the input embeddings).
        tokens: ``n_tokens`` lists of ``k`` token strings.
        cosine: float (n_tokens, k): their cosine similarity to the prompt vector.
        norm: float (n_tokens,): the prompt vector's L2 norm.
        embedding_norm: the median L2 norm of the candidate vocabulary rows (the scale of real tokens).
        step: training step (from a checkpoint), or None.
    """

    ids: torch.Tensor
    tokens: list
    cosine: torch.Tensor
    norm: torch.Tensor
    embedding_norm: float
    step: int | None = None

    def to_dict(self) -> dict:
        return {"step": self.step, "tokens": self.tokens, "ids": self.ids.tolist(),
                "cosine": [[round(float(c), 4) for c in row] for row in self.cosine],
                "norm": [round(float(v), 4) for v in self.norm], "embedding_norm": round(self.embedding_norm, 4)}

    def table(self, k: int | None = None) -> str:
        """A markdown table: prompt token, norm, its nearest tokens with cosines."""
        k = self.ids.shape[1] if k is None else min(k, self.ids.shape[1])
        lines = ["| prompt token | norm | nearest tokens (cosine) |", "|---|---|---|"]
        for j, toks in enumerate(self.tokens):
            near = ", ".join(f"`{t}` {float(c):.2f}" for t, c in zip(toks[:k], self.cosine[j, :k]))
            lines.append(f"| {j} | {float(self.norm[j]):.2f} | {near} |")
        return "\n".join(lines) + "\n"


def _embedding_matrix(model_or_matrix) -> torch.Tensor:
    if isinstance(model_or_matrix, torch.Tensor):
        emb = model_or_matrix
    elif hasattr(model_or_matrix, "get_input_embeddings"):
        emb = model_or_matrix.get_input_embeddings().weight
    else:
        raise TypeError(f"need a model with get_input_embeddings() or an embedding matrix (vocab, hidden), "
                        f"got {type(model_or_matrix).__name__}")
    if emb.dim() != 2:
        raise ValueError(f"the embedding matrix must be (vocab, hidden), got shape {tuple(emb.shape)}")
    return emb.detach().float().cpu()


def _prompt_matrix(prompt) -> torch.Tensor:
    w = getattr(prompt, "weight", prompt)
    if not isinstance(w, torch.Tensor) or w.dim() != 2:
        raise TypeError(f"prompt must be a SoftPrompt or a (n_tokens, hidden) tensor, got {type(prompt).__name__} "
                        f"{tuple(getattr(w, 'shape', ()))}")
    return w.detach().float().cpu()


def nearest_tokens(prompt, model_or_embeddings, tokenizer=None, *, k: int = 5, skip_special: bool = True,
                   step: int | None = None) -> PromptWords:
    """The ``k`` vocabulary tokens nearest (by cosine) to each prompt vector, and each vector's norm.

    Args:
        prompt: a :class:`~attnviz.prompts.SoftPrompt` or float (n_tokens, hidden).
        model_or_embeddings: the frozen model (its input embeddings) or the matrix (vocab, hidden).
        tokenizer: turns ids into strings (None: ids as strings) and names the special tokens.
        k: neighbours per prompt vector (1 .. vocabulary size).
        skip_special: leave the tokenizer's special tokens (``[CLS]``, ``[SEP]`` …) out of the
            candidates. A prompt initialised from ``[SEP]`` copies sits on ``[SEP]``; keep them
            (``False``) to see that.
        step: stored in the result (a checkpoint's step).
    Returns:
        :class:`PromptWords`.
    """
    emb = _embedding_matrix(model_or_embeddings)
    w = _prompt_matrix(prompt)
    if w.shape[1] != emb.shape[1]:
        raise ValueError(f"prompt hidden size {w.shape[1]} != embedding hidden size {emb.shape[1]}")
    candidates = torch.arange(emb.shape[0])
    if skip_special and tokenizer is not None:
        special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        candidates = candidates[~torch.isin(candidates, special)]
    check_int("k", k, 1)
    if k > len(candidates):
        raise ValueError(f"k={k} exceeds the {len(candidates)} candidate tokens")
    cand = emb[candidates]
    cos = torch.nn.functional.normalize(w, dim=1) @ torch.nn.functional.normalize(cand, dim=1).T   # (n, V')
    idx = cos.topk(k, dim=1).indices
    # the k winners' cosines again in float64 (a vector equal to a token row reads exactly 1.0, not
    # 0.99999994), nearest first
    w64, top = w.double(), cand[idx].double()                                                     # (n, H), (n, k, H)
    exact = (torch.einsum("nh,nkh->nk", w64, top) / (w64.norm(dim=1, keepdim=True) * top.norm(dim=2))
             .clamp_min(torch.finfo(torch.float64).tiny))
    exact, order = exact.sort(dim=1, descending=True)
    values, ids = exact.float(), candidates[idx.gather(1, order)]
    if tokenizer is not None:
        tokens = [tokenizer.convert_ids_to_tokens(row.tolist()) for row in ids]
    else:
        tokens = [[str(i) for i in row.tolist()] for row in ids]
    return PromptWords(ids=ids, tokens=tokens, cosine=values, norm=w.norm(dim=1),
                       embedding_norm=float(cand.norm(dim=1).median()), step=step)


def nearest_over_checkpoints(run_dir: str | Path, model_or_embeddings, tokenizer=None, *, k: int = 5,
                             skip_special: bool = True) -> list[PromptWords]:
    """:func:`nearest_tokens` of ``prompt.weight`` in every checkpoint of ``run_dir``, oldest step first.

    Only the checkpoints the run kept are there (``TrainConfig.keep_checkpoints``); keep them all
    (and ``checkpoint_every`` small) to watch the words move. Damaged checkpoints raise
    :class:`~attnviz.prompts.CheckpointError` naming the file.
    """
    from .checkpoints import list_checkpoints, load_checkpoint

    paths = list_checkpoints(Path(run_dir))
    if not paths:
        raise ValueError(f"no checkpoints in {run_dir} (expected {Path(run_dir) / 'checkpoints'}/step-*/)")
    out = []
    for p in paths:
        tensors, meta = load_checkpoint(p)
        if "prompt.weight" not in tensors:
            raise ValueError(f"checkpoint {p} holds no prompt (a head-only run)")
        out.append(nearest_tokens(tensors["prompt.weight"], model_or_embeddings, tokenizer, k=k,
                                  skip_special=skip_special, step=int(meta.get("step", 0))))
    return out


def drift(words: list[PromptWords]) -> list[dict]:
    """Per checkpoint: mean norm, mean cosine to the nearest token, and the share of prompt vectors
    whose nearest token differs from the first checkpoint's — the movement in one row per step."""
    if not words:
        return []
    first = words[0].ids[:, 0]
    return [{"step": w.step, "mean_norm": float(w.norm.mean()), "mean_top_cosine": float(w.cosine[:, 0].mean()),
             "changed_top_token": float((w.ids[:, 0] != first).float().mean())} for w in words]
