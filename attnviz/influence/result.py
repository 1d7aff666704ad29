"""The result of :func:`attnviz.influence.prompt_influence` and what is read off it: per-distance
means (:func:`distance_profile`) and per-block means (:func:`block_means`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch

from ..patterns import AttentionPattern
from ..placement import SequenceLayout
from ..spread import Spread, spread_pattern

#: A method of :func:`attnviz.influence.prompt_influence` (one module each); the choices are
#: defined here once and read by the CLI and the explorers through :data:`METHODS`.
Method = Literal["ablation", "rollout", "gradient"]
METHODS: tuple[str, ...] = get_args(Method)
#: A named baseline that replaces the prompt (or a tensor).
Baseline = Literal["zeros", "mean"]
BASELINES: tuple[str, ...] = get_args(Baseline)


# ---- the result ---------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class InfluenceMap:
    """Result of :func:`attnviz.influence.prompt_influence`.

    Attributes:
        values: float32 ``(B, layers + 1, L)``: influence of the prompt on token ``t`` after
            ``l`` layers, per example (row 0 = embeddings). ``0.0`` at padding.
        valid: bool ``(B, L)``: real positions of each example (False = padding).
        reached: bool ``(B, layers + 1, L)``: the structural reach (:func:`attnviz.spread_pattern`)
            on each example's own layout; influence is exactly 0 wherever this is False.
        attribution: float32 ``(B, n_prompt)`` per-prompt-token attribution to the output, or None.
        can_reach: bool ``(B, n_prompt)``: prompt token ``j`` can reach the example's readout
            position within the model's layers (structurally); where False, gradient and
            rollout attribution are exactly 0.
        readout: long ``(B,)``: the readout position of each example (``[CLS]`` or the last token).
        layout: the layout of the longest example: the axis of :attr:`mean`.
        layouts: each example's own layout.
        pattern: the attention pattern the model ran under.
        method: ``"ablation"``, ``"rollout"`` or ``"gradient"``.
        baseline: what the prompt was replaced by (``"zeros"``, ``"mean"`` or ``"tensor"``).
        notes: what was assumed or adjusted, in plain words.
    """

    values: torch.Tensor
    valid: torch.Tensor
    reached: torch.Tensor
    attribution: torch.Tensor | None
    can_reach: torch.Tensor
    readout: torch.Tensor
    layout: SequenceLayout
    layouts: tuple[SequenceLayout, ...]
    pattern: AttentionPattern
    method: str
    baseline: str
    notes: tuple[str, ...] = ()

    @property
    def batch_size(self) -> int:
        return self.values.shape[0]

    @property
    def num_layers(self) -> int:
        return self.values.shape[1] - 1

    @property
    def length(self) -> int:
        return self.values.shape[2]

    @property
    def n_prompt(self) -> int:
        return self.layout.n_prompt

    @property
    def same_layout(self) -> bool:
        """True when every example has the layout :attr:`layout` (so :attr:`mean` compares like with like)."""
        return all(l == self.layout for l in self.layouts)

    @property
    def mean(self) -> torch.Tensor:
        """float32 ``(layers + 1, L)``: :attr:`values` averaged over the examples that have each
        position (padding does not count). With rows of different layouts (e.g. a suffix prompt
        and different lengths) positions are aligned by index; see :attr:`same_layout`."""
        w = self.valid[:, None, :].to(self.values.dtype)
        return (self.values * w).sum(0) / w.sum(0).clamp(min=1)

    @property
    def reached_any(self) -> torch.Tensor:
        """bool ``(layers + 1, L)``: reached in at least one example; :attr:`mean` is exactly 0 elsewhere."""
        return self.reached.any(0)

    @property
    def per_token(self) -> torch.Tensor | None:
        """float32 ``(n_prompt,)``: :attr:`attribution` averaged over the examples, or None."""
        return None if self.attribution is None else self.attribution.mean(0)

    @property
    def spread(self) -> Spread:
        """The structural reach on :attr:`layout` (the longest example)."""
        return spread_pattern(self.pattern, self.layout, self.num_layers)

    def summary(self) -> str:
        """One paragraph in words (e.g. for the CLI)."""
        m = self.mean
        ro = int(self.readout[0])
        zero_unreached = bool((self.values[~self.reached] == 0).all())
        parts = [f"{self.method} influence of {self.n_prompt} prompt tokens on {self.batch_size} example(s), "
                 f"L={self.length}, {self.num_layers} layers"]
        parts.append(f"after the last layer: mean {float(m[-1][self.valid.any(0)].mean()):.3g} over tokens, "
                     f"{float(m[-1, ro]):.3g} at the readout position {ro}")
        parts.append("exactly 0 wherever the prompt has not arrived" if zero_unreached else
                     "NOT zero everywhere the prompt has not arrived (sdpa / flex rounding?)")
        if self.attribution is not None:
            top = int(self.per_token.abs().argmax())
            parts.append(f"largest attribution: prompt token {top} ({float(self.per_token[top]):.3g})")
        return "; ".join(parts) + "."


def distance_profile(result: InfluenceMap) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Influence against distance from the prompt.

    Distance of a position = tokens to the nearest prompt position of its example's layout
    (0 = a prompt token). Averages :attr:`InfluenceMap.values` over every real (example, position)
    pair at each distance.

    Returns:
        ``(distance (D,), mean (layers + 1, D), count (D,))``: distances that occur, ascending;
        mean influence per layer at each; how many (example, position) pairs each mean covers.
    """
    B, rows, L = result.values.shape
    dist = torch.full((B, L), -1, dtype=torch.long)
    for b, lay in enumerate(result.layouts):
        pos = torch.arange(lay.length)
        prompt = torch.tensor(lay.prompt_positions, dtype=torch.long)
        dist[b, : lay.length] = (pos[:, None] - prompt[None, :]).abs().min(1).values
    ok = result.valid & (dist >= 0)
    d = dist[ok]                                   # (N,)
    v = result.values.permute(1, 0, 2)[:, ok]      # (rows, N)
    distances, inverse = torch.unique(d, return_inverse=True)
    count = torch.bincount(inverse, minlength=len(distances))
    total = torch.zeros(rows, len(distances), dtype=v.dtype).index_add_(1, inverse, v)
    return distances, total / count.clamp(min=1), count


def block_means(values: torch.Tensor, edges) -> torch.Tensor:
    """``values`` ``(..., L)`` averaged over the blocks ``[e_i, e_{i+1})`` of ``edges``
    (``0 = e_0 < ... < e_n = L``, e.g. from :func:`attnviz.pooling.block_edges`) -> ``(..., n)``."""
    e = torch.as_tensor(list(edges), dtype=torch.long)
    L = values.shape[-1]
    if len(e) < 2 or int(e[0]) != 0 or int(e[-1]) != L or bool((e[1:] <= e[:-1]).any()):
        raise ValueError(f"edges must rise strictly from 0 to L={L}, got {tuple(e.tolist())[:8]}")
    unit = torch.repeat_interleave(torch.arange(len(e) - 1), e[1:] - e[:-1])
    out = values.new_zeros(values.shape[:-1] + (len(e) - 1,)).index_add_(-1, unit, values)
    return out / (e[1:] - e[:-1]).to(values.dtype)
