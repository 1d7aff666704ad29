"""The mask zoo (#17) equals the peers' own definitions, evaluated on every (q, k) pair of small L.

transformers' mask functions are imported from the installed ``transformers.masking_utils``.
attention-gym is not a dependency: its definitions are re-typed below from
https://github.com/pytorch-labs/attention-gym/tree/main/attn_gym/masks (``causal.py``,
``prefix_lm.py``, ``sliding_window.py``, ``document_mask.py``), kept as close to the files as the
test allows. Each test counts the pairs it compared in ``COMPARED``.
"""

import pytest
import torch
from torch.nn.attention.flex_attention import and_masks as torch_and, or_masks as torch_or
from transformers import masking_utils as tm

from attnviz import AttentionPattern, build_masks

COMPARED = {}


def pairs(fn, L):
    q, k = torch.arange(L)[:, None], torch.arange(L)[None, :]
    b, h = torch.zeros((), dtype=torch.long), torch.zeros((), dtype=torch.long)
    return fn(b, h, q, k).expand(L, L).bool()


def same(pattern, peer_fn, L, name):
    ours = build_masks(pattern, L, 1)[0]
    theirs = pairs(peer_fn, L)
    assert torch.equal(ours, theirs), (name, (ours ^ theirs).nonzero()[:8].tolist())
    COMPARED[name] = COMPARED.get(name, 0) + L * L


# ---- attention-gym, re-typed ----------------------------------------------------------------------
def gym_causal_mask(b, h, q_idx, kv_idx):                       # attn_gym/masks/causal.py
    return q_idx >= kv_idx


def gym_generate_prefix_lm_mask(prefix_length):                 # attn_gym/masks/prefix_lm.py
    def prefix_mask(b, h, q_idx, kv_idx):
        return kv_idx < prefix_length
    return torch_or(prefix_mask, gym_causal_mask)


def gym_generate_sliding_window(window_size):                   # attn_gym/masks/sliding_window.py
    def sliding_window(b, h, q_idx, kv_idx):
        return q_idx - kv_idx <= window_size
    return torch_and(sliding_window, gym_causal_mask)


def gym_length_to_offsets(lengths):                             # attn_gym/masks/document_mask.py
    return torch.cumsum(torch.tensor([0, *lengths], dtype=torch.int32), dim=-1)


def gym_offsets_to_doc_ids_tensor(offsets):
    counts = offsets[1:] - offsets[:-1]
    return torch.repeat_interleave(torch.arange(len(counts), dtype=torch.int32), counts)


def gym_generate_doc_mask_mod(mask_mod, offsets):
    document_id = gym_offsets_to_doc_ids_tensor(offsets)

    def doc_mask_mod(b, h, q_idx, kv_idx):
        same_doc = document_id[q_idx] == document_id[kv_idx]
        q_logical = q_idx - offsets[document_id[q_idx]]
        kv_logical = kv_idx - offsets[document_id[kv_idx]]
        inner_mask = mask_mod(b, h, q_logical, kv_logical)
        return same_doc & inner_mask
    return doc_mask_mod


# ---- prefix-LM --------------------------------------------------------------------------------------
@pytest.mark.parametrize("L, P", [(1, 1), (9, 1), (17, 5), (40, 40), (64, 13)])
def test_prefix_lm_equals_attention_gym_and_transformers(L, P):
    p = AttentionPattern(causal=True, prefix_lm=P)
    same(p, gym_generate_prefix_lm_mask(P), L, "attention-gym generate_prefix_lm_mask")
    # transformers: a prefix block, bidirectional within itself, over the causal mask (PaliGemma)
    block_ids = torch.where(torch.arange(L) < P, 0, -1)[None]
    same(p, tm.or_masks(tm.causal_mask_function, tm.blockwise_overlay(block_ids)), L,
         "transformers or_masks(causal_mask_function, blockwise_overlay)")


@pytest.mark.parametrize("L, P", [(9, 3), (32, 12), (64, 64)])
def test_globals_differ_from_prefix_lm_exactly_on_the_future_prefix(L, P):
    with_globals = build_masks(AttentionPattern(causal=True, global_positions=tuple(range(P))), L, 1)[0]
    prefix_lm = build_masks(AttentionPattern(causal=True, prefix_lm=P), L, 1)[0]
    q, k = torch.arange(L)[:, None], torch.arange(L)[None, :]
    assert torch.equal(prefix_lm & ~with_globals, (q < k) & (k < P))
    assert not (with_globals & ~prefix_lm).any()
    COMPARED["causal globals vs prefix-LM"] = COMPARED.get("causal globals vs prefix-LM", 0) + L * L


# ---- attention sinks (StreamingLLM) -------------------------------------------------------------------
@pytest.mark.parametrize("L, S, W", [(16, 1, 2), (48, 4, 8), (64, 4, 1), (33, 40, 5)])
def test_sinks_equal_transformers_parts(L, S, W):
    # StreamingLLM keeps the first S tokens and the last W: transformers' causal sliding window, or'ed
    # with the sink columns, under causality
    def sink(b, h, q_idx, kv_idx):
        return kv_idx < S
    peer = tm.and_masks(tm.or_masks(tm.sliding_window_overlay(W), sink), tm.causal_mask_function)
    same(AttentionPattern(causal=True, window=W, sinks=S), peer, L, "transformers sliding_window_overlay | sinks")
    # attention-gym's sliding window counts the query apart: window_size = W - 1
    peer = torch_or(gym_generate_sliding_window(W - 1), torch_and(sink, gym_causal_mask))
    same(AttentionPattern(causal=True, window=W, sinks=S), peer, L, "attention-gym generate_sliding_window | sinks")


# ---- chunked attention (Llama 4) ----------------------------------------------------------------------
@pytest.mark.parametrize("L, C", [(10, 1), (17, 4), (64, 8), (50, 64)])
def test_chunk_equals_transformers_chunked_causal(L, C):
    no_padding = torch.zeros(1, dtype=torch.long)
    same(AttentionPattern(causal=True, chunk=C), tm.chunked_causal_mask_function(C, no_padding), L,
         "transformers chunked_causal_mask_function")
    # with a sliding window inside the chunks
    peer = tm.and_masks(tm.chunked_overlay(C, no_padding), tm.sliding_window_causal_mask_function(3))
    same(AttentionPattern(causal=True, chunk=C, window=3), peer, L,
         "transformers chunked_overlay & sliding_window_causal_mask_function")


# ---- document packing ----------------------------------------------------------------------------------
@pytest.mark.parametrize("lengths", [(5,), (3, 4), (10, 1, 20, 9), (1, 1, 1, 30)])
def test_documents_equal_attention_gym_and_transformers(lengths):
    L = sum(lengths)
    offsets = gym_length_to_offsets(lengths)
    same(AttentionPattern(causal=True, documents=lengths), gym_generate_doc_mask_mod(gym_causal_mask, offsets), L,
         "attention-gym generate_doc_mask_mod(causal_mask)")
    same(AttentionPattern(causal=True, window=4, documents=lengths),
         gym_generate_doc_mask_mod(gym_generate_sliding_window(3), offsets), L,
         "attention-gym generate_doc_mask_mod(generate_sliding_window)")
    same(AttentionPattern(documents=lengths),
         gym_generate_doc_mask_mod(lambda b, h, q, k: q >= 0, offsets), L,
         "attention-gym generate_doc_mask_mod(noop_mask)")
    # transformers: the packed-sequence ids it finds from position_ids that restart at 0
    position_ids = torch.cat([torch.arange(n) for n in lengths])[None]
    packed = tm.find_packed_sequence_indices(position_ids)
    if packed is None:                                           # one document: transformers finds no packing
        packed = torch.zeros(1, L, dtype=torch.long)
    same(AttentionPattern(causal=True, documents=lengths),
         tm.and_masks(tm.causal_mask_function, tm.packed_sequence_mask_function(packed)), L,
         "transformers packed_sequence_mask_function & causal_mask_function")
    same(AttentionPattern(causal=True, window=4, chunk=6, documents=lengths),
         tm.and_masks(tm.sliding_window_causal_mask_function(4), tm.chunked_overlay(6, torch.zeros(1, dtype=torch.long)),
                      tm.packed_sequence_mask_function(packed)), L,
         "transformers sliding window & chunked & packed")


def test_report_pairs_compared():
    # runs last in this file: the number of pairs each peer definition was compared on
    print("\npairs compared:", COMPARED)
    assert sum(COMPARED.values()) > 20_000
