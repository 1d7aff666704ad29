"""PromptPlacement, SequenceLayout, plain_layout, insert_prompt: hand-worked layouts."""

import pytest
import torch
from hypothesis import given, settings, strategies as st

from attnviz import PromptPlacement, Segment, SequenceLayout, insert_prompt, plain_layout
from attnviz.placement import PLACEMENTS

S = Segment


def check(layout, length, prompt, segments, token_index, readout):
    assert layout.length == length
    assert layout.prompt_positions == prompt
    assert layout.segments == tuple(S(*s) for s in segments)
    assert layout.token_index == token_index
    assert layout.readout_position == readout


# ---- one text segment, T = 3, n = 2 (C = [CLS], S = [SEP]) ------------------------------------------
def test_start_is_pefts_placement_before_cls():
    # P P C t t t S
    check(PromptPlacement("start", 2).layout(3), 7, (0, 1),
          [("prompt", 0, 2), ("cls", 2, 3), ("text", 3, 6), ("sep", 6, 7)],
          (-1, -1, 0, 1, 2, 3, 4), readout=2)


def test_prefix_sits_after_cls():
    # C P P t t t S
    check(PromptPlacement("prefix", 2).layout(3), 7, (1, 2),
          [("cls", 0, 1), ("prompt", 1, 3), ("text", 3, 6), ("sep", 6, 7)],
          (0, -1, -1, 1, 2, 3, 4), readout=0)


def test_suffix_sits_before_final_sep():
    # C t t t P P S
    check(PromptPlacement("suffix", 2).layout(3), 7, (4, 5),
          [("cls", 0, 1), ("text", 1, 4), ("prompt", 4, 6), ("sep", 6, 7)],
          (0, 1, 2, 3, -1, -1, 4), readout=0)


def test_infix_splits_the_text():
    # C t0 P P t1 t2 S
    check(PromptPlacement("infix", 2, at=1).layout(3), 7, (2, 3),
          [("cls", 0, 1), ("text", 1, 2), ("prompt", 2, 4), ("text", 4, 6), ("sep", 6, 7)],
          (0, 1, -1, -1, 2, 3, 4), readout=0)
    assert PromptPlacement("infix", 2, at=1).layout(3).positions("text") == (1, 4, 5)


def test_infix_at_zero_is_right_after_cls():
    a = PromptPlacement("infix", 2, at=0).layout(3)
    check(a, 7, (1, 2), [("cls", 0, 1), ("prompt", 1, 3), ("text", 3, 6), ("sep", 6, 7)],
          (0, -1, -1, 1, 2, 3, 4), readout=0)
    assert a == PromptPlacement("prefix", 2).layout(3)


def test_infix_at_end_is_before_final_sep():
    a = PromptPlacement("infix", 2, at=3).layout(3)
    check(a, 7, (4, 5), [("cls", 0, 1), ("text", 1, 4), ("prompt", 4, 6), ("sep", 6, 7)],
          (0, 1, 2, 3, -1, -1, 4), readout=0)
    assert a == PromptPlacement("suffix", 2).layout(3)


def test_infix_beyond_the_text():
    with pytest.raises(ValueError, match=r"infix at=4 is beyond the text \(3 tokens\); allowed 0..3"):
        PromptPlacement("infix", 2, at=4).layout(3)
    with pytest.raises(ValueError, match=r"infix at=6 is beyond the text \(5 tokens\); allowed 0..5"):
        PromptPlacement("infix", 2, at=6).layout(2, 3)


def test_scattered_every_two():
    # C p0 t0 t1 p1 t2 p2 S : p2 would go before t4, past the end, so it waits before [SEP]
    check(PromptPlacement("scattered", 3, every=2).layout(3), 8, (1, 4, 6),
          [("cls", 0, 1), ("prompt", 1, 2), ("text", 2, 4), ("prompt", 4, 5), ("text", 5, 6),
           ("prompt", 6, 7), ("sep", 7, 8)],
          (0, -1, 1, 2, -1, 3, -1, 4), readout=0)


def test_scattered_every_one():
    # C p0 t0 p1 t1 p2 t2 t3 t4 S
    lay = PromptPlacement("scattered", 3, every=1).layout(5)
    assert lay.length == 10
    assert lay.prompt_positions == (1, 3, 5)
    assert lay.positions("text") == (2, 4, 6, 7, 8)
    assert lay.token_index == (0, -1, 1, -1, 2, -1, 3, 4, 5, 6)


def test_scattered_text_shorter_than_n_times_every():
    # n * every = 8 > 3: p0 before t0, p1 before t2, p2 and p3 stand together before [SEP]
    check(PromptPlacement("scattered", 4, every=2).layout(3), 9, (1, 4, 6, 7),
          [("cls", 0, 1), ("prompt", 1, 2), ("text", 2, 4), ("prompt", 4, 5), ("text", 5, 6),
           ("prompt", 6, 8), ("sep", 8, 9)],
          (0, -1, 1, 2, -1, 3, -1, -1, 4), readout=0)


def test_scattered_on_empty_text():
    check(PromptPlacement("scattered", 2, every=3).layout(0), 4, (1, 2),
          [("cls", 0, 1), ("prompt", 1, 3), ("sep", 3, 4)], (0, -1, -1, 1), readout=0)


# ---- pairs ---------------------------------------------------------------------------------------
def test_pair_prefix_premise_hypothesis():
    # C P P a a S b b b S
    lay = PromptPlacement("prefix", 2).layout(2, 3)
    check(lay, 10, (1, 2),
          [("cls", 0, 1), ("prompt", 1, 3), ("premise", 3, 5), ("sep", 5, 6), ("hypothesis", 6, 9), ("sep", 9, 10)],
          (0, -1, -1, 1, 2, 3, 4, 5, 6, 7), readout=0)
    assert lay.positions("premise") == (3, 4)
    assert lay.positions("hypothesis") == (6, 7, 8)
    assert lay.positions("sep") == (5, 9)
    assert lay.names() == ("cls", "prompt", "prompt", "premise", "premise", "sep",
                           "hypothesis", "hypothesis", "hypothesis", "sep")


def test_pair_infix_at_first_length_goes_before_second_segment():
    # C a a S P P b b b S
    check(PromptPlacement("infix", 2, at=2).layout(2, 3), 10, (4, 5),
          [("cls", 0, 1), ("premise", 1, 3), ("sep", 3, 4), ("prompt", 4, 6), ("hypothesis", 6, 9), ("sep", 9, 10)],
          (0, 1, 2, 3, -1, -1, 4, 5, 6, 7), readout=0)


def test_pair_infix_inside_second_segment():
    # C a a S b P P b b S  (at=3 = second segment's token 1)
    lay = PromptPlacement("infix", 2, at=3).layout(2, 3)
    assert lay.prompt_positions == (5, 6)
    assert lay.positions("hypothesis") == (4, 7, 8)


def test_pair_suffix_question_context():
    # C q q S c c P P S
    check(PromptPlacement("suffix", 2).layout(2, 2, names=("question", "context")), 9, (6, 7),
          [("cls", 0, 1), ("question", 1, 3), ("sep", 3, 4), ("context", 4, 6), ("prompt", 6, 8), ("sep", 8, 9)],
          (0, 1, 2, 3, 4, 5, -1, -1, 6), readout=0)


def test_pair_scattered_counts_text_tokens_across_both_segments():
    # every=2 over text ordinals a0 a1 | b0 b1: p0 before a0, p1 before b0 (ordinal 2)
    lay = PromptPlacement("scattered", 2, every=2).layout(2, 2)
    # C p0 a0 a1 S p1 b0 b1 S
    assert lay.prompt_positions == (1, 5)
    assert lay.names() == ("cls", "prompt", "premise", "premise", "sep", "prompt",
                           "hypothesis", "hypothesis", "sep")


def test_empty_second_segment_keeps_both_seps_as_separate_segments():
    # C a a S S P : prompt before the final [SEP]; the two [SEP]s are not merged
    lay = PromptPlacement("suffix", 1).layout(2, 0)
    check(lay, 6, (4,), [("cls", 0, 1), ("premise", 1, 3), ("sep", 3, 4), ("prompt", 4, 5), ("sep", 5, 6)],
          (0, 1, 2, 3, -1, 4), readout=0)
    lay = PromptPlacement("prefix", 1).layout(2, 0)   # C P a a S S
    assert lay.segments[-2:] == (S("sep", 4, 5), S("sep", 5, 6))
    assert lay.positions("sep") == (4, 5)


def test_pair_without_specials():
    lay = PromptPlacement("start", 1).layout(2, 2, cls=False, sep=False)
    check(lay, 5, (0,), [("prompt", 0, 1), ("premise", 1, 3), ("hypothesis", 3, 5)],
          (-1, 0, 1, 2, 3), readout=4)


# ---- decoders: no [CLS], no [SEP] ---------------------------------------------------------------
def test_prefix_without_specials():
    check(PromptPlacement("prefix", 2).layout(3, cls=False, sep=False), 5, (0, 1),
          [("prompt", 0, 2), ("text", 2, 5)], (-1, -1, 0, 1, 2), readout=4)


def test_start_equals_prefix_without_cls():
    assert PromptPlacement("start", 2).layout(3, cls=False) == PromptPlacement("prefix", 2).layout(3, cls=False)


def test_suffix_without_specials_is_at_the_very_end():
    check(PromptPlacement("suffix", 2).layout(3, cls=False, sep=False), 5, (3, 4),
          [("text", 0, 3), ("prompt", 3, 5)], (0, 1, 2, -1, -1), readout=4)


def test_suffix_with_sep_but_no_cls():
    check(PromptPlacement("suffix", 1).layout(2, cls=False), 4, (2,),
          [("text", 0, 2), ("prompt", 2, 3), ("sep", 3, 4)], (0, 1, -1, 2), readout=3)


def test_only_prompt_tokens():
    check(PromptPlacement("prefix", 2).layout(0, cls=False, sep=False), 2, (0, 1),
          [("prompt", 0, 2)], (-1, -1), readout=1)


# ---- SequenceLayout helpers --------------------------------------------------------------------
def test_layout_counts_and_masks():
    lay = PromptPlacement("infix", 3, at=2).layout(4)   # C t t P P P t t S
    assert (lay.length, lay.n_prompt, lay.n_tokens) == (9, 3, 6)
    assert lay.prompt_mask().tolist() == [False, False, False, True, True, True, False, False, False]
    assert len(lay.segments[2]) == 3
    with pytest.raises(ValueError, match=r"no segment named 'premise' in this layout; it has \['cls', 'prompt', 'sep', 'text'\]"):
        lay.positions("premise")


def test_plain_layout():
    lay = plain_layout(3)
    assert lay == SequenceLayout(5, (), (S("cls", 0, 1), S("text", 1, 4), S("sep", 4, 5)), (0, 1, 2, 3, 4))
    assert lay.readout_position == 0 and lay.n_prompt == 0
    bare = plain_layout(3, cls=False, sep=False)
    assert bare == SequenceLayout(3, (), (S("text", 0, 3),), (0, 1, 2))
    assert bare.readout_position == 2


def test_sequence_layout_checks_token_index_length():
    with pytest.raises(ValueError, match=r"token_index has 2 entries, expected length=3"):
        SequenceLayout(3, (), (S("text", 0, 3),), (0, 1))


def test_layout_fits_and_does_not_fit_model_positions():
    p = PromptPlacement("prefix", 20)
    assert p.layout(490, max_positions=512).length == 512
    with pytest.raises(ValueError, match=r"layout length 522 \(502 tokens \+ 20 prompt tokens\) exceeds the model's 512 positions"):
        p.layout(500, max_positions=512)
    lay = p.layout(500)
    assert lay.check_fits(522) is lay
    with pytest.raises(ValueError, match=r"exceeds the model's 521 positions"):
        lay.check_fits(521)


# ---- insert_prompt -------------------------------------------------------------------------------
def test_insert_prompt_puts_vectors_in_the_right_slots():
    lay = PromptPlacement("prefix", 2).layout(3)      # C P P t t t S
    e = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    p = -torch.arange(1, 7, dtype=torch.float32).reshape(2, 3)
    out = insert_prompt(e, p, lay)
    assert out.shape == (2, 7, 3)
    for b in range(2):
        expected = torch.stack([e[b, 0], p[0], p[1], e[b, 1], e[b, 2], e[b, 3], e[b, 4]])
        assert torch.equal(out[b], expected)


def test_insert_prompt_scattered_and_start():
    e = torch.arange(5 * 2, dtype=torch.float32).reshape(1, 5, 2)
    p = 100 + torch.arange(3 * 2, dtype=torch.float32).reshape(3, 2)
    out = insert_prompt(e, p, PromptPlacement("scattered", 3, every=2).layout(3))  # C p0 t0 t1 p1 t2 p2 S
    assert torch.equal(out[0], torch.stack([e[0, 0], p[0], e[0, 1], e[0, 2], p[1], e[0, 3], p[2], e[0, 4]]))
    out = insert_prompt(e, p, PromptPlacement("start", 3).layout(3))               # P P P C t t t S
    assert torch.equal(out[0], torch.cat([p, e[0]]))


def test_insert_prompt_without_prompt_is_identity():
    e = torch.randn(2, 5, 4)
    assert torch.equal(insert_prompt(e, torch.zeros(0, 4), plain_layout(3)), e)


def test_insert_prompt_only_prompt_tokens():
    p = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    out = insert_prompt(torch.zeros(3, 0, 2), p, PromptPlacement("prefix", 2).layout(0, cls=False, sep=False))
    assert torch.equal(out, p.expand(3, 2, 2))


def test_insert_prompt_casts_prompt_to_embedding_dtype():
    e = torch.zeros(1, 5, 2, dtype=torch.float32)
    out = insert_prompt(e, torch.full((2, 2), 0.5, dtype=torch.float64), PromptPlacement("suffix", 2).layout(3))
    assert out.dtype == torch.float32
    assert out[0, 4].tolist() == [0.5, 0.5] and out[0, 5].tolist() == [0.5, 0.5]


def test_gradients_flow_to_the_prompt_and_the_tokens():
    lay = PromptPlacement("infix", 2, at=1).layout(3)  # C t0 P P t1 t2 S
    e = torch.randn(2, 5, 3, requires_grad=True)
    p = torch.randn(2, 3, requires_grad=True)
    weights = torch.arange(2 * 7 * 3, dtype=torch.float32).reshape(2, 7, 3)
    (insert_prompt(e, p, lay) * weights).sum().backward()
    assert torch.equal(p.grad, weights[:, 2:4].sum(0))     # prompt j at position 2 + j, summed over batch
    assert torch.equal(e.grad, weights[:, [0, 1, 4, 5, 6]])


def test_insert_prompt_bad_shapes():
    lay = PromptPlacement("prefix", 2).layout(3)
    with pytest.raises(ValueError, match=r"embeds have 4 tokens, the layout expects 5 \(\+2 prompt\)"):
        insert_prompt(torch.zeros(1, 4, 3), torch.zeros(2, 3), lay)
    with pytest.raises(ValueError, match=r"prompt has shape \(3, 3\), expected \(2, 3\)"):
        insert_prompt(torch.zeros(1, 5, 3), torch.zeros(3, 3), lay)
    with pytest.raises(ValueError, match=r"prompt has shape \(2, 4\), expected \(2, 3\)"):
        insert_prompt(torch.zeros(1, 5, 3), torch.zeros(2, 4), lay)
    with pytest.raises(ValueError, match=r"embeds must be \(B, T, H\), got shape \(5, 3\)"):
        insert_prompt(torch.zeros(5, 3), torch.zeros(2, 3), lay)


# ---- bad input -----------------------------------------------------------------------------------
def test_unknown_placement():
    with pytest.raises(ValueError, match=r"unknown placement 'middle'; allowed: start, prefix, infix, suffix, scattered"):
        PromptPlacement("middle", 4)


@pytest.mark.parametrize("n", [0, -3])
def test_non_positive_n_tokens(n):
    with pytest.raises(ValueError, match=rf"n_tokens must be >= 1, got {n}"):
        PromptPlacement("prefix", n)


@pytest.mark.parametrize("n", [True, 2.0, "4"])
def test_n_tokens_wrong_type(n):
    with pytest.raises(TypeError, match=rf"n_tokens must be an int, got {n!r}"):
        PromptPlacement("prefix", n)


def test_infix_needs_at():
    with pytest.raises(ValueError, match=r"infix placement needs at="):
        PromptPlacement("infix", 2)
    with pytest.raises(ValueError, match=r"at must be >= 0, got -1"):
        PromptPlacement("infix", 2, at=-1)
    with pytest.raises(ValueError, match=r"at=3 only applies to placement 'infix', not 'prefix'"):
        PromptPlacement("prefix", 2, at=3)


@pytest.mark.parametrize("every", [0, -1])
def test_scattered_every_below_one(every):
    with pytest.raises(ValueError, match=rf"every must be >= 1, got {every}"):
        PromptPlacement("scattered", 2, every=every)


def test_scattered_needs_every():
    with pytest.raises(ValueError, match=r"scattered placement needs every="):
        PromptPlacement("scattered", 2)
    with pytest.raises(ValueError, match=r"every=4 only applies to placement 'scattered', not 'suffix'"):
        PromptPlacement("suffix", 2, every=4)
    with pytest.raises(TypeError, match=r"every must be an int, got True"):
        PromptPlacement("scattered", 2, every=True)


def test_bad_text_lengths_and_names():
    p = PromptPlacement("prefix", 2)
    with pytest.raises(ValueError, match=r"text_len must be >= 0, got -1"):
        p.layout(-1)
    with pytest.raises(TypeError, match=r"text_len must be an int, got '3'"):
        p.layout("3")
    with pytest.raises(ValueError, match=r"second_len must be >= 0, got -2"):
        p.layout(3, -2)
    with pytest.raises(ValueError, match=r"names=\('text',\) has 1 entries for 2 text segments"):
        p.layout(3, 2, names=("text",))
    with pytest.raises(ValueError, match=r"unknown segment name 'body'; allowed: text, premise, hypothesis, question, context"):
        p.layout(3, names=("body",))


# ---- properties ----------------------------------------------------------------------------------
@st.composite
def placements(draw):
    kind = draw(st.sampled_from(PLACEMENTS))
    text_len, second = draw(st.integers(0, 20)), draw(st.none() | st.integers(0, 10))
    extra = {}
    if kind == "infix":
        extra["at"] = draw(st.integers(0, text_len + (second or 0)))
    if kind == "scattered":
        extra["every"] = draw(st.integers(1, 8))
    p = PromptPlacement(kind, draw(st.integers(1, 6)), **extra)
    return p, text_len, second, draw(st.booleans()), draw(st.booleans())


@settings(max_examples=80, deadline=None)
@given(placements())
def test_layout_invariants(case):
    p, text_len, second, cls, sep = case
    lay = p.layout(text_len, second, cls=cls, sep=sep)
    segs = 1 if second is None else 2
    n_tok = text_len + (second or 0) + int(cls) + segs * int(sep)
    assert (lay.length, lay.n_prompt, lay.n_tokens) == (n_tok + p.n_tokens, p.n_tokens, n_tok)
    # segments tile range(L), in order
    assert lay.segments[0].start == 0 and lay.segments[-1].stop == lay.length
    for a, b in zip(lay.segments, lay.segments[1:]):
        assert a.stop == b.start and len(a) >= 1
    names = lay.names()
    assert lay.positions("prompt") == lay.prompt_positions == tuple(i for i, s in enumerate(names) if s == "prompt")
    # tokens keep their order; prompt slots are exactly the -1 entries
    assert [t for t in lay.token_index if t >= 0] == list(range(n_tok))
    assert tuple(i for i, t in enumerate(lay.token_index) if t < 0) == lay.prompt_positions
    if cls:
        assert names[0] == ("prompt" if p.kind == "start" else "cls")
    if cls:
        assert lay.readout_position == names.index("cls")
        assert lay.token_index[lay.readout_position] == 0
    else:
        assert lay.readout_position == lay.length - 1
    if sep:
        assert names[-1] == "sep"
    # insert_prompt follows the layout exactly
    e = torch.arange(n_tok, dtype=torch.float32).reshape(1, n_tok, 1)
    pr = -1 - torch.arange(p.n_tokens, dtype=torch.float32).reshape(-1, 1)
    out = insert_prompt(e, pr, lay)[0, :, 0].tolist()
    assert out == [float(t) if t >= 0 else -1.0 - lay.prompt_positions.index(i) for i, t in enumerate(lay.token_index)]
