"""What every influence method shares: the inputs checked and grouped into runs (rows with the
same prompt positions run together), the baseline, a runner that puts the prompt into the text's
embeddings and runs the model under the pattern, and the output that attribution explains."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from ..models import anatomy
from ..patterns import AttentionPattern
from ..placement import PromptPlacement, SequenceLayout
from .result import BASELINES


def prompt_and_placement(prompt, placement) -> tuple[torch.Tensor, PromptPlacement]:
    own = getattr(prompt, "placement", None)
    weight = prompt if isinstance(prompt, torch.Tensor) else getattr(prompt, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"prompt must be a tensor (n, H) or have .weight (n, H) (a SoftPrompt), got {type(prompt).__name__}")
    if placement is None:
        placement = own
    if placement is None:
        raise ValueError("no placement: pass placement=PromptPlacement(...) with a plain prompt tensor")
    if not isinstance(placement, PromptPlacement):
        raise TypeError(f"placement must be an attnviz.PromptPlacement, got {type(placement).__name__}")
    if own is not None and own != placement:
        raise ValueError(f"the prompt was made for {own!r} but placement={placement!r}; the batch's layout would "
                         f"differ from the prompt's. Pass placement=None to use the prompt's own")
    if weight.dim() != 2:
        raise ValueError(f"the prompt must be (n_tokens, hidden), got shape {tuple(weight.shape)}")
    if weight.shape[0] != placement.n_tokens:
        raise ValueError(f"the prompt has {weight.shape[0]} vectors but the placement says n_tokens="
                         f"{placement.n_tokens}; the layout would not match the prompt")
    return weight, placement


def resolve_special_tokens(model, tokenizer, special_tokens) -> tuple[bool, bool]:
    """``(cls, sep)``: ``special_tokens`` when given (two booleans), else from the tokenizer or model."""
    if special_tokens is not None:
        if len(special_tokens) != 2:
            raise ValueError(f"special_tokens must be (cls, sep) booleans, got {special_tokens!r}")
        return bool(special_tokens[0]), bool(special_tokens[1])
    return anatomy.special_tokens(tokenizer, model)


@dataclass
class Group:
    """Rows that run together: the same prompt positions, padded to the longest row."""

    rows: torch.Tensor          # long (g,)
    layout: SequenceLayout      # the longest row's layout: masks for the run
    gather: torch.Tensor        # long (g, Lg): source index into cat([tokens (T), prompt (n)])
    anchor: torch.Tensor        # long (g, Lg): tokenizer position whose token type a slot takes
    valid: torch.Tensor         # bool (g, Lg)


def row_groups(batch: Mapping, placement: PromptPlacement, pattern: AttentionPattern, cls: bool, sep: bool,
            max_positions: int | None) -> tuple[list[Group], list[SequenceLayout], torch.Tensor]:
    """Per-row layouts and run groups. Returns ``(groups, layouts, input_ids)``."""
    if not isinstance(batch, Mapping):
        raise TypeError(f"batch must be a dict with input_ids and attention_mask, got {type(batch).__name__}")
    if "inputs_embeds" in batch:
        raise ValueError("batch has inputs_embeds: give the text's input_ids; the prompt is inserted here")
    ids = batch.get("input_ids")
    if ids is None:
        raise ValueError(f"batch needs input_ids (B, T) of the text tokens; it has {sorted(batch)}")
    ids = torch.as_tensor(ids)
    if ids.dim() != 2:
        raise ValueError(f"input_ids must be (B, T), got shape {tuple(ids.shape)}")
    B, T = ids.shape
    if B == 0 or T == 0:
        raise ValueError(f"empty batch: input_ids has shape {tuple(ids.shape)}; give at least one non-empty example")
    am = batch.get("attention_mask")
    am = torch.ones_like(ids) if am is None else torch.as_tensor(am)
    if am.shape != ids.shape:
        raise ValueError(f"attention_mask has shape {tuple(am.shape)}, input_ids {tuple(ids.shape)}")
    lengths = am.long().sum(1)
    if not torch.equal(am.bool(), torch.arange(T, device=am.device)[None, :] < lengths[:, None]):
        raise ValueError("attention_mask must be right padding (1 ... 1 0 ... 0 per row); tokenize with "
                         "padding_side='right'")
    specials = int(cls) + int(sep)
    empty = [b for b in range(B) if int(lengths[b]) <= specials]
    if empty:
        raise ValueError(f"rows {empty} have no text tokens (lengths {[int(lengths[b]) for b in empty]}, "
                         f"{specials} special tokens); drop empty examples")

    per_length: dict[int, SequenceLayout] = {}
    for t in sorted({int(x) for x in lengths.tolist()}):
        try:
            lay = placement.layout(t - specials, cls=cls, sep=sep)
        except ValueError as exc:
            raise ValueError(f"a row of {t} tokens ({t - specials} text tokens) cannot take this prompt: {exc}") from exc
        if max_positions is not None:
            lay.check_fits(max_positions)
        pattern.global_mask(lay)  # raises on global positions outside the row
        per_length[t] = lay
    layouts = [per_length[int(t)] for t in lengths.tolist()]

    # Rows with the same prompt positions share masks on their real positions (no random blocks:
    # BigBird's block table depends on the length), so they can run padded to the longest.
    keys: dict = {}
    for b, lay in enumerate(layouts):
        key = lay if pattern.random_blocks else lay.prompt_positions
        keys.setdefault(key, []).append(b)
    groups = []
    n = placement.n_tokens
    for rows in keys.values():
        lays = [layouts[b] for b in rows]
        lay = max(lays, key=lambda x: x.length)
        Lg = lay.length
        gather = torch.empty(len(rows), Lg, dtype=torch.long)
        anchor = torch.empty(len(rows), Lg, dtype=torch.long)
        valid = torch.zeros(len(rows), Lg, dtype=torch.bool)
        for i, b in enumerate(rows):
            lb, t = layouts[b], int(lengths[b])
            token = torch.tensor(lb.token_index, dtype=torch.long)
            slot = torch.full_like(token, -1)
            slot[list(lb.prompt_positions)] = torch.arange(n)
            gather[i, : lb.length] = torch.where(token >= 0, token, T + slot)
            gather[i, lb.length:] = torch.arange(t, t + Lg - lb.length)       # this row's padding
            # A prompt slot takes the token type of the next token (the previous one at the very end).
            nxt = token.clone()
            for s in range(lb.length - 1, -1, -1):
                if token[s] < 0:
                    nxt[s] = nxt[s + 1] if s + 1 < lb.length else -1
            for s in range(lb.length):
                if nxt[s] < 0:
                    nxt[s] = nxt[s - 1] if s > 0 else 0
            anchor[i, : lb.length] = nxt
            anchor[i, lb.length:] = gather[i, lb.length:]
            valid[i, : lb.length] = True
        groups.append(Group(torch.tensor(rows), lay, gather, anchor, valid))
    return groups, layouts, ids


def baseline_vectors(baseline, prompt: torch.Tensor, embedding: torch.nn.Module) -> tuple[torch.Tensor, str]:
    if isinstance(baseline, torch.Tensor):
        b = baseline.to(prompt)
        if b.shape == prompt.shape[-1:]:
            b = b.expand_as(prompt)
        if b.shape != prompt.shape:
            raise ValueError(f"baseline tensor has shape {tuple(baseline.shape)}; expected {tuple(prompt.shape)} "
                             f"or ({prompt.shape[-1]},)")
        return b, "tensor"
    if baseline == "zeros":
        return torch.zeros_like(prompt), "zeros"
    if baseline == "mean":
        return embedding.weight.detach().mean(0).to(prompt).expand_as(prompt), "mean"
    raise ValueError(f"unknown baseline {baseline!r}; allowed: {', '.join(BASELINES)} or a tensor (n, H) / (H,)")


class Runner:
    """Builds ``inputs_embeds`` for a group of rows and runs the model under the pattern."""

    def __init__(self, model, pattern, backend, ids, token_types):
        self.model, self.pattern, self.backend = model, pattern, backend
        self.words = model.get_input_embeddings()(ids).detach()            # (B, T, H)
        self.token_types = token_types

    def inputs(self, g: Group, prompt_rows: torch.Tensor) -> dict:
        """``prompt_rows`` ``(g, n, H)`` (or ``(n, H)``, shared) -> forward arguments for the group."""
        words = self.words[g.rows]
        if prompt_rows.dim() == 2:
            prompt_rows = prompt_rows.expand(len(g.rows), -1, -1)
        source = torch.cat([words, prompt_rows.to(words.dtype)], 1)
        idx = g.gather.to(words.device)
        embeds = source.gather(1, idx[..., None].expand(-1, -1, words.shape[-1]))
        out = {"inputs_embeds": embeds, "attention_mask": g.valid.long().to(words.device)}
        if self.token_types is not None:
            out["token_type_ids"] = self.token_types[g.rows].gather(1, g.anchor.to(words.device))
        return out

    def __call__(self, g: Group, prompt_rows: torch.Tensor, **kwargs):
        from ..models.interface import with_pattern

        with with_pattern(self.model, self.pattern, g.layout, backend=self.backend) as m:
            return m(**self.inputs(g, prompt_rows), **kwargs)


def relative_change(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``‖a − b‖ / ‖a‖`` over the last axis, float32; 0 where both are equal (even if ‖a‖ = 0)."""
    diff = (a - b).to(torch.float32).norm(dim=-1)
    return torch.where(diff == 0, diff, diff / a.to(torch.float32).norm(dim=-1).clamp(min=1e-30))


def hidden_states(out) -> tuple[torch.Tensor, ...]:
    hs = getattr(out, "hidden_states", None)
    if hs is None:
        hs = getattr(out, "encoder_hidden_states", None)
    if hs is None:
        raise ValueError(f"{type(out).__name__} has no hidden_states; the model must support output_hidden_states=True")
    return hs


class OutputScalar:
    """``scalar(model_outputs, rows) -> (g,)``: the output that attribution explains, per example.

    Default (no ``output``, no ``classifier``): the readout token's *displacement*
    ``‖h_last[ro] − h_last,baseline[ro]‖`` — how far the prompt moves the readout's final state from
    where the baseline prompt leaves it (0 for the baseline itself). Not the plain norm
    ``‖h_last[ro]‖``: under a final LayerNorm (BERT, MiniLM) that norm is nearly constant, and its
    gradient vanishes (attributions of ~1e-8 on a tiny BERT).
    """

    def __init__(self, output, classifier, target, readout: torch.Tensor, B: int):
        if output is not None and classifier is not None:
            raise ValueError("give output= or classifier=, not both")
        if output is not None and not callable(output):
            raise TypeError(f"output must be a callable model_outputs -> (B,), got {type(output).__name__}")
        if classifier is not None and not callable(classifier):
            raise TypeError(f"classifier must be a callable (B, H) -> (B, C), got {type(classifier).__name__}")
        self.target = None
        if target is not None:
            t = torch.as_tensor(target, dtype=torch.long)
            if t.dim() > 1 or (t.dim() == 1 and t.shape[0] != B):
                raise ValueError(f"target must be an int or ({B},) class indices, got shape {tuple(t.shape)}")
            self.target = t.expand(B).clone()
        self.output, self.classifier, self.readout = output, classifier, readout
        self.needs_target = classifier is not None and target is None
        self.needs_reference = output is None and classifier is None
        self.reference: torch.Tensor | None = None     # (B, H) readout states with the baseline prompt

    @property
    def description(self) -> str:
        if self.output is not None:
            return "the given output(model_outputs)"
        if self.classifier is not None:
            return "the classifier's logit of " + ("each example's predicted class" if self.needs_target else "the target class")
        return "the readout token's displacement ‖h_last − h_last(baseline)‖ at the readout position"

    def prepare(self, runner: Runner, g: Group, weight, base_vec, out_with=None, out_base=None) -> None:
        """Fix what the output needs before attribution: the predicted class (with the prompt) or
        the readout state with the baseline prompt. Reuses given runs, else runs the model."""
        with torch.no_grad():
            if self.needs_target:
                out_with = out_with if out_with is not None else runner(g, weight, output_hidden_states=True)
                if self.target is None:
                    self.target = torch.zeros(len(self.readout), dtype=torch.long)
                self.target[g.rows] = self.classifier(self._at_readout(out_with, g.rows)).argmax(-1).cpu()
            if self.needs_reference:
                out_base = out_base if out_base is not None else runner(g, base_vec, output_hidden_states=True)
                h = self._at_readout(out_base, g.rows).to(torch.float32)
                if self.reference is None:
                    self.reference = h.new_zeros(len(self.readout), h.shape[-1])
                self.reference[g.rows.to(h.device)] = h

    def _at_readout(self, out, rows):
        h = hidden_states(out)[-1]
        return h[torch.arange(h.shape[0], device=h.device), self.readout[rows].to(h.device)]

    def __call__(self, out, rows: torch.Tensor) -> torch.Tensor:
        if self.output is not None:
            o = self.output(out)
        elif self.classifier is not None:
            logits = self.classifier(self._at_readout(out, rows))
            if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
                raise ValueError(f"classifier must map (B, H) -> (B, C), got {getattr(logits, 'shape', logits)}")
            t = self.target[rows].to(logits.device)
            o = logits.gather(1, t[:, None])[:, 0]
        else:
            h = self._at_readout(out, rows).to(torch.float32)
            o = (h - self.reference[rows.to(h.device)]).norm(dim=-1)
        if not isinstance(o, torch.Tensor) or o.shape != (len(rows),):
            shape = tuple(o.shape) if isinstance(o, torch.Tensor) else type(o).__name__
            raise ValueError(f"output must give one scalar per example, shape ({len(rows)},); got {shape}")
        return o


@dataclass
class Run:
    """What every method's ``run_group`` reads: the model's base, the runner, the prompt and its
    baseline on the model's device (float32 ``(n, H)``), each row's readout position, the output
    that attribution explains, and the options of :func:`attnviz.influence.prompt_influence`."""

    base: torch.nn.Module
    runner: Runner
    weight: torch.Tensor
    base_vec: torch.Tensor
    n: int
    readout: torch.Tensor
    scalar: OutputScalar
    per_token: bool
    integrated: bool
    steps: int
    backend: str
