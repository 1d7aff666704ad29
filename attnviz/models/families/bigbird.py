"""BigBird: block-sparse attention in whole blocks.

``block_size`` b, ``num_random_blocks`` r, ``attention_type``. Block-sparse attends in whole
blocks: the first and last block are global, block i sees blocks i-1..i+1 and r random blocks
(random only in training). :func:`read_pattern` gives ``window=2*b`` (the widest token window
inside the 3-block band; equal at block resolution) and the first and last block as
``global_positions``. Inputs of ``L <= (5 + 2r) * b`` tokens switch the model to full attention,
for good.
"""

from __future__ import annotations

import torch

from ...patterns import AttentionPattern
from ..anatomy import config_of, is_model
from ..finding import Finding
from .common import NativeArgs, length_of, refuse, set_config, split_prompt, uniform, with_updates

MODEL_TYPES = ("big_bird",)
SETTABLE = {"big_bird": {"attention_type", "block_size", "num_random_blocks"}}
GLOBAL_TOKENS = False


def fallback_length(model_or_config) -> int:
    """BigBird switches block-sparse to full attention for inputs of ``L <= (5 + 2 r) * b`` tokens."""
    cfg = config_of(model_or_config)
    return (5 + 2 * cfg.num_random_blocks) * cfg.block_size


def attention_type(model_or_config) -> str:
    """The attention BigBird will run: a model's own ``attention_type`` (it may have switched to
    ``"original_full"`` while ``config.attention_type`` still says ``"block_sparse"``), else the config's."""
    if is_model(model_or_config):
        base = getattr(model_or_config, "base_model", model_or_config)
        if hasattr(base, "attention_type"):
            return base.attention_type
    return config_of(model_or_config).attention_type


def global_positions(block_size: int, length: int) -> tuple[int, ...]:
    """Positions in ``[0, L)`` of BigBird's global blocks: the first and the last block of the
    input padded to a multiple of ``block_size``."""
    padded = -(-length // block_size) * block_size
    return tuple(sorted(set(range(min(block_size, length))) | set(range(padded - block_size, length))))


def read_pattern(model_or_config, cfg, layout, *, global_attention_mask, training, known) -> AttentionPattern:
    length = length_of(layout)
    if global_attention_mask is not None:
        raise ValueError("BigBird has no global_attention_mask: its first and last blocks are global")
    if length is None:
        raise ValueError("BigBird's last block is global and short inputs switch it to full attention, so its "
                         "pattern depends on the length: pass layout= (a SequenceLayout or a length)")
    if attention_type(model_or_config) != "block_sparse" or length <= fallback_length(cfg):
        return AttentionPattern(window=None)
    b, r = cfg.block_size, cfg.num_random_blocks
    if training is None:
        training = bool(model_or_config.training) if is_model(model_or_config) else False
    positions, prompt = split_prompt(global_positions(b, length), layout)
    return AttentionPattern(window=2 * b, global_positions=positions, global_prompt=prompt,
                            random_blocks=r if training else 0, block_size=b)


def translate(pattern: AttentionPattern, model_or_config, cfg, layout, n: int, *, known) -> NativeArgs:
    family, length, notes = cfg.model_type, length_of(layout), []
    refuse(pattern, family, causal=False, globals_ok=True, random_ok=True)
    w = uniform(pattern, "block size", family)
    if w is None:
        if pattern.global_positions or pattern.global_prompt or pattern.random_blocks:
            raise ValueError("BigBird full attention (original_full) has no global tokens or random blocks; "
                             "use window=None alone, or window=2*block_size for block-sparse")
        config = {"attention_type": "original_full"}
        return NativeArgs(family, config, {}, AttentionPattern(window=None), ())
    b = pattern.block_size if pattern.block_size is not None else w // 2
    if w != 2 * b:
        raise ValueError(f"BigBird attends in blocks: a query block sees its neighbour blocks, which attnviz writes "
                         f"window=2*block_size; got window={w} with block_size={b}; use window={2 * b} "
                         f"(or block_size={w // 2})")
    config = {"attention_type": "block_sparse", "block_size": b, "num_random_blocks": pattern.random_blocks}
    notes.append(f"BigBird attends in whole blocks of {b}: a query sees all of its own and both neighbour blocks "
                 f"(3*{b} keys), wider than window={w}; the first and last block are always global")
    if pattern.random_blocks:
        notes.append("random blocks are drawn only in training (per head, by numpy); in eval every random slot "
                     "points at block 0")
    if length is not None:
        allowed = set(global_positions(b, length))
        asked = set(pattern.global_mask(layout).nonzero().flatten().tolist())
        if not asked <= allowed:
            raise ValueError(f"BigBird's global tokens are its first and last block ({b} tokens each); positions "
                             f"{sorted(asked - allowed)} cannot be global (move the prompt into the first block "
                             f"or use Longformer's global_attention_mask)")
        cut = (5 + 2 * pattern.random_blocks) * b
        if length <= cut:
            notes.append(f"an input of {length} <= (5 + 2*{pattern.random_blocks})*{b} = {cut} tokens switches "
                         f"BigBird to full attention, and it stays switched")
    elif pattern.global_positions or pattern.global_prompt:
        raise ValueError("BigBird's global blocks depend on the length: pass layout= to check global tokens")
    if length is not None:
        new = with_updates(cfg, config)
        applied = read_pattern(new, new, layout, global_attention_mask=None, training=None, known=known)
    else:
        applied = pattern
    return NativeArgs(family, config, {}, applied, tuple(notes))


def apply(model, cfg, updates) -> dict:
    previous = set_config(cfg, updates)
    previous["attention_type"] = attention_type(model)
    base = model.base_model
    base.block_size = cfg.block_size
    if "attention_type" in updates:
        base.set_attention_type(updates["attention_type"])
    for m in model.modules():
        if hasattr(m, "num_random_blocks") and hasattr(m, "block_size"):
            m.block_size, m.num_random_blocks = cfg.block_size, cfg.num_random_blocks
    return previous


# ---- capture: what BigBird's attention modules really weigh -------------------------------------
def capture_modules(model) -> list[tuple[torch.nn.Module, int]]:
    """(module, output index) to hook: ``BigBirdAttention``, which stays in place when a short
    input swaps its inner module."""
    return [(m, 1) for name, m in model.named_modules()
            if type(m).__name__ == "BigBirdAttention" and "crossattention" not in name]


def effective_probs(module, probs: torch.Tensor, r: int) -> tuple[torch.Tensor, bool]:
    """``(probs, fixed)``: in eval, block-sparse BigBird points all ``r`` random slots at block 0,
    so rows in blocks 1..nb-2 weigh block 0 ``1 + r`` times; ``probs (h, L', L')`` are scaled so."""
    if module.attention_type == "block_sparse" and not module.training and r:
        b = module.self.block_size
        probs = probs.clone()
        probs[:, b : probs.shape[1] - b, :b] *= 1 + r
        return probs, True
    return probs, False


def findings(model, layout, gmask) -> tuple[list[Finding], object]:
    cfg = config_of(model)
    L, b, r = layout.length, cfg.block_size, cfg.num_random_blocks
    cut = fallback_length(cfg)
    now = attention_type(model)
    out = []
    sticky = ("The switch sticks: model.attention_type stays 'original_full' for every later call, long inputs "
              "included, while config.attention_type still says 'block_sparse'. It swaps the attention modules, and "
              "transformers' output_attentions hooks, installed once on the first call that asks for attentions, stay "
              "on the old ones: if that call came before or with the switch, output_attentions returns ().")
    if now == "original_full" and cfg.attention_type == "block_sparse":
        out.append(Finding(
            "bigbird-switched",
            f"this BigBird already switched to full attention (an earlier input had <= {cut} tokens). " + sticky,
            "call model.set_attention_type('block_sparse') (or apply_native(model, {'attention_type': "
            "'block_sparse'})), and keep inputs longer than " + f"{cut} tokens."))
    elif now == "block_sparse" and L <= cut:
        out.append(Finding(
            "bigbird-fallback",
            f"BigBird runs block-sparse attention only for inputs longer than (5 + 2*num_random_blocks)*block_size = "
            f"(5 + 2*{r})*{b} = {cut} tokens; this input has {L}, so it switches to full attention (original_full). "
            + sticky,
            f"use inputs of more than {cut} tokens, or a smaller block_size / num_random_blocks; after a switch, "
            f"model.set_attention_type('block_sparse') switches back."))
    if now == "block_sparse" and L > cut and r and not model.training:
        out.append(Finding(
            "bigbird-eval-random",
            f"in eval BigBird draws no random blocks: all {r} random slots of a query block point at block 0, so the "
            f"rows in blocks 1..nb-2 count block 0 {1 + r} times in their softmax, and the attention_probs it returns "
            f"show one copy (those rows sum to less than 1).",
            "nothing to fix for inference (capture_attention reports the effective weights); random blocks exist only "
            "in training (model.train())."))
    return out, gmask


def padded_length(model_or_config, length: int) -> int:
    return length
