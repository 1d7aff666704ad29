"""spread(): structural reach of sources across layers, worked out by hand."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings

from attnviz import AttentionPattern, PromptPlacement, Spread, build_masks, spread

from test_patterns import cases

NEVER = -1


def rows(reach: Spread) -> list[set[int]]:
    return [set(torch.nonzero(r).flatten().tolist()) for r in reach.reached]


# ---- chains worked out by hand -------------------------------------------------------------------
def test_window_two_chain_moves_one_token_per_layer():
    masks = build_masks(AttentionPattern(window=2), 8, 3)
    reach = spread(masks, [0])
    assert reach.reached.shape == (4, 8) and reach.reached.dtype == torch.bool
    assert rows(reach) == [{0}, {0, 1}, {0, 1, 2}, {0, 1, 2, 3}]
    assert reach.first_layer.dtype == torch.int64
    assert reach.first_layer.tolist() == [0, 1, 2, 3, NEVER, NEVER, NEVER, NEVER]
    assert reach.num_layers == 3


def test_window_four_chain_from_the_middle():
    reach = spread(build_masks(AttentionPattern(window=4), 10, 2), [3])
    assert rows(reach) == [{3}, {1, 2, 3, 4, 5}, set(range(8))]
    assert reach.first_layer.tolist() == [2, 1, 1, 0, 1, 1, 2, 2, NEVER, NEVER]


def test_causal_chain_only_moves_forward():
    reach = spread(build_masks(AttentionPattern(window=2, causal=True), 6, 3), [2])
    assert rows(reach) == [{2}, {2, 3}, {2, 3, 4}, {2, 3, 4, 5}]
    assert reach.first_layer.tolist() == [NEVER, NEVER, 0, 1, 2, 3]


def test_dilated_window_reaches_only_same_parity():
    reach = spread(build_masks(AttentionPattern(window=2, dilation=2), 9, 2), [4])
    assert rows(reach) == [{4}, {2, 4, 6}, {0, 2, 4, 6, 8}]


def test_per_layer_windows():
    reach = spread(build_masks(AttentionPattern(window=(2, 6)), 12, 2), [0])
    assert rows(reach) == [{0}, {0, 1}, {0, 1, 2, 3, 4}]
    assert reach.first_layer.tolist() == [0, 1, 2, 2, 2] + [NEVER] * 7


def test_full_attention_reaches_all_in_one_layer():
    reach = spread(build_masks(AttentionPattern(window=None), 9, 2), [7])
    assert reach.first_layer.tolist() == [1] * 7 + [0] + [1]


# ---- global tokens relay ---------------------------------------------------------------------------
def test_global_source_reaches_all_in_layer_one():
    reach = spread(build_masks(AttentionPattern(window=2, global_positions=(0,)), 12, 2), [0])
    assert bool(reach.reached[1].all())
    assert reach.first_layer.tolist() == [0] + [1] * 11


def test_source_next_to_global_reaches_all_by_layer_two():
    masks = build_masks(AttentionPattern(window=2, global_positions=(6,)), 12, 3)
    reach = spread(masks, [5])
    assert rows(reach)[1] == {4, 5, 6}
    assert bool(reach.reached[2].all())
    assert reach.first_layer.tolist() == [2, 2, 2, 2, 1, 0, 1, 2, 2, 2, 2, 2]


def test_global_prompt_relays_the_prompt_everywhere_in_one_layer():
    layout = PromptPlacement("prefix", 2).layout(20)
    masks = build_masks(AttentionPattern(window=2, global_prompt=True), layout, 2)
    reach = spread(masks, layout.prompt_positions)
    assert bool(reach.reached[1].all())
    without = spread(build_masks(AttentionPattern(window=2), layout, 2), layout.prompt_positions)
    assert rows(without) == [{1, 2}, {0, 1, 2, 3}, {0, 1, 2, 3, 4}]


def test_causal_global_only_relays_forward():
    masks = build_masks(AttentionPattern(window=2, causal=True, global_positions=(4,)), 10, 2)
    reach = spread(masks, [4])
    assert rows(reach) == [{4}, {4, 5, 6, 7, 8, 9}, {4, 5, 6, 7, 8, 9}]
    assert reach.first_layer.tolist() == [NEVER] * 4 + [0] + [1] * 5


# ---- sources in every form ---------------------------------------------------------------------------
def test_sources_as_list_tuple_range_tensor_mask_and_numpy_agree():
    masks = build_masks(AttentionPattern(window=2), 10, 3)
    mask = torch.zeros(10, dtype=torch.bool)
    mask[[2, 3]] = True
    forms = [[2, 3], (2, 3), range(2, 4), torch.tensor([2, 3]), mask, np.array([2, 3]),
             mask.numpy(), mask.tolist(), [3, 2, 2], [np.int64(2), np.int64(3)]]
    expected = spread(masks, [2, 3])
    assert rows(expected)[0] == {2, 3}
    for form in forms:
        got = spread(masks, form)
        assert torch.equal(got.reached, expected.reached), form
        assert torch.equal(got.first_layer, expected.first_layer), form


def test_residual_stream_keeps_reached_tokens_without_self_attention():
    # hand-built masks with no diagonal: token 0 attends nobody, token 1 attends 0 in layer 0,
    # token 2 attends 1 in layer 1; what a token carried stays with it through the residual stream
    masks = torch.zeros(2, 3, 3, dtype=torch.bool)
    masks[0, 1, 0] = True
    masks[1, 2, 1] = True
    reach = spread(masks, [0])
    assert rows(reach) == [{0}, {0, 1}, {0, 1, 2}]
    assert reach.first_layer.tolist() == [0, 1, 2]


def test_no_sources_reach_nothing():
    reach = spread(build_masks(AttentionPattern(window=None), 5, 2), [])
    assert not bool(reach.reached.any())
    assert reach.first_layer.tolist() == [NEVER] * 5


# ---- summary ---------------------------------------------------------------------------------------
def test_summary_and_fractions_of_the_chain():
    reach = spread(build_masks(AttentionPattern(window=2), 8, 3), [0])
    assert reach.fraction_reached(0) == 1 / 8
    assert reach.fraction_reached(1) == 2 / 8
    assert reach.fraction_reached(2) == 3 / 8
    assert reach.fraction_reached() == 4 / 8
    assert reach.summary() == (
        "the prompt never reaches token 7 within 3 layers; 50 % of tokens (4 of 8) are never reached. "
        "Share of tokens reached after layers 1..3: 25 %, 38 %, 50 %.")
    assert reach.summary(readout=2) == (
        "the prompt never reaches token 7 within 3 layers; it reaches the readout token 2 at layer 2; "
        "50 % of tokens (4 of 8) are never reached. Share of tokens reached after layers 1..3: 25 %, 38 %, 50 %.")
    assert "it never reaches the readout token 5;" in reach.summary(readout=5)


def test_summary_when_the_last_token_is_reached():
    reach = spread(build_masks(AttentionPattern(window=2), 4, 3), [0])
    assert reach.summary(readout=3) == (
        "the prompt reaches token 3 at layer 3; 0 % of tokens (0 of 4) are never reached. "
        "Share of tokens reached after layers 1..3: 50 %, 75 %, 100 %.")


# ---- properties --------------------------------------------------------------------------------------
def bfs_reference(masks: torch.Tensor, sources: set[int]) -> list[set[int]]:
    """R_{l+1} = R_l ∪ {q : masks[l, q, k] for some k in R_l}, in plain Python."""
    layers, L, _ = masks.shape
    m = masks.tolist()
    out = [set(sources)]
    for layer in range(layers):
        cur = out[-1]
        out.append(cur | {q for q in range(L) if any(m[layer][q][k] for k in cur)})
    return out


@settings(max_examples=40, deadline=None)
@given(cases())
def test_spread_matches_bfs_and_is_consistent(case):
    pattern, layout, L, n = case
    masks = build_masks(pattern, layout, n)
    sources = {0, L // 2} if isinstance(layout, int) else set(layout.prompt_positions)
    reach = spread(masks, sorted(sources))
    assert reach.reached.shape == (n + 1, L)
    assert rows(reach) == bfs_reference(masks, sources)
    r = reach.reached
    assert bool((r[:-1] <= r[1:]).all())  # monotone: once reached, always reached
    for t in range(L):
        hit = torch.nonzero(r[:, t]).flatten().tolist()
        assert reach.first_layer[t].item() == (hit[0] if hit else NEVER)
    assert torch.equal(r[0], torch.tensor([t in sources for t in range(L)]))


# ---- bad input ---------------------------------------------------------------------------------------
MASKS = build_masks(AttentionPattern(window=2), 8, 2)


def test_masks_must_be_layers_by_L_by_L():
    with pytest.raises(ValueError, match=r"masks must be \(layers, L, L\), got shape \(8, 8\)"):
        spread(MASKS[0], [0])
    with pytest.raises(ValueError, match=r"got shape \(2, 8, 5\)"):
        spread(MASKS[:, :, :5], [0])


def test_masks_must_be_bool():
    with pytest.raises(TypeError, match=r"masks must be torch.bool \(True = may attend\), got torch.float32"):
        spread(MASKS.float(), [0])


@pytest.mark.parametrize("bad", [[8], [-1], [0, 9]])
def test_sources_outside_the_sequence(bad):
    with pytest.raises(ValueError, match=rf"source positions \[{bad[-1]}\] are outside \[0, 8\)"):
        spread(MASKS, bad)


def test_bool_source_mask_of_wrong_length():
    with pytest.raises(ValueError, match=r"a boolean sources mask must have shape \(8,\), got \(7,\)"):
        spread(MASKS, torch.zeros(7, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"must have shape \(8,\), got \(3,\)"):
        spread(MASKS, [True, False, True])


def test_sources_of_the_wrong_kind():
    with pytest.raises(TypeError, match=r"got a torch.float32 tensor of shape \(1,\)"):
        spread(MASKS, torch.tensor([0.5]))
    with pytest.raises(ValueError, match=r"sources must be 1-D positions .*got shape \(1, 1\)"):
        spread(MASKS, torch.tensor([[0]]))
    with pytest.raises(TypeError, match=r"got 0"):
        spread(MASKS, 0)
    with pytest.raises(TypeError, match=r"got '01'"):
        spread(MASKS, "01")
    with pytest.raises(TypeError, match=r"source positions must be ints in \[0, 8\), got \[1.5\]"):
        spread(MASKS, [0, 1.5])
    with pytest.raises(TypeError, match=r"got \[True\]"):
        spread(MASKS, [0, True])
