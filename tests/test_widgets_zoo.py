"""#17 item 3: the pattern explorer offers the mask zoo (prefix-LM, sinks, chunk, documents); every
control redraws with the numbers of the dense reference, and bad values are named in the UI."""

import re

import numpy as np
import pytest

import attnviz
from attnviz import build_masks, mask_reasons, spread
from attnviz.patterns import REASONS
from attnviz.widgets import PatternExplorer, PatternSettings, pattern_view


def _small(**kw) -> PatternExplorer:
    start = dict(text_len=40, n_tokens=4, window=8, num_layers=3, causal=True)
    start.update(kw)
    return PatternExplorer(**start)


def _check_against_dense(ex: PatternExplorer) -> None:
    assert ex.error is None, ex.error
    s = ex.settings()
    pattern, layout = s.pattern(), s.layout()
    masks = build_masks(pattern, layout, s.num_layers)
    reach = spread(masks, layout.prompt_positions)
    heat, bars = ex.figures["spread"].data[0], ex.figures["spread"].data[1]
    r, f = reach.reached.numpy(), reach.first_layer.numpy()
    assert np.array_equal(np.asarray(heat.z), np.where(r, f[None, :] + 2, np.where(f[None, :] >= 0, 1, 0)))
    assert bars.x == tuple(reach.fraction_reached(l) for l in range(s.num_layers + 1))
    text = np.asarray(ex.figures["mask"].data[0].text, dtype=object)
    codes = mask_reasons(pattern, layout, s.layer).numpy()
    assert np.array_equal(text, np.asarray(REASONS, dtype=object)[codes])
    assert np.array_equal(np.char.startswith(text.astype(str), "allowed"), masks[s.layer].numpy())
    assert attnviz.describe(pattern) in ex.figures["spread"].layout.title.text


@pytest.mark.parametrize("values, reason", [
    (dict(prefix_lm="prompt", window=None), "allowed: prefix (bidirectional)"),
    (dict(prefix_lm="10"), "allowed: prefix (bidirectional)"),
    (dict(sinks=3, placement="infix"), "allowed: attention sink"),
    (dict(chunk="8", window=None), "blocked: outside the chunk"),
    (dict(chunk="8,full,8", window=None, layer=1), None),            # layer 1 unchunked: no chunk reason
    (dict(documents="20,26", window=None), "blocked: other document"),
])
def test_each_zoo_control_redraws_with_the_dense_numbers(values, reason):
    ex = _small()
    ex.set(**values)
    _check_against_dense(ex)
    text = set(np.asarray(ex.figures["mask"].data[0].text, dtype=object).ravel())
    if reason is not None:
        assert reason in text
    else:
        assert "blocked: outside the chunk" not in text and ex.result.pattern.chunk == (8, None, 8)


def test_zoo_controls_start_values_and_describe():
    ex = PatternExplorer(text_len=40, n_tokens=4, num_layers=2, window=None, causal=True, prefix_lm="prompt",
                         sinks=2, chunk="16", documents="26,20")
    assert ex.result.pattern == attnviz.AttentionPattern(causal=True, prefix_lm="prompt", sinks=2, chunk=16,
                                                         documents=(26, 20))
    assert "prefix-LM over the prompt, 2 sinks, chunk=16, 2 packed documents" in ex.summary.value
    _check_against_dense(ex)


@pytest.mark.parametrize("values, message", [
    (dict(prefix_lm="abc"), "prefix-LM: 'abc' is not a length; give a length P"),
    (dict(prefix_lm="0"), "prefix_lm must be an int >= 1"),
    (dict(prefix_lm="99"), r"prefix_lm=99 is longer than the layout \(46 positions\)"),
    (dict(chunk="8,8"), r"chunk: 2 entries \(8,8\) for 3 layers"),
    (dict(chunk="x"), "chunk: 'x' is not a number"),
    (dict(chunk="0"), "chunk: 0 is below 1"),
    (dict(documents="20,20"), r"documents=\(20, 20\) sum to 40 but the layout has 46 positions; give lengths that "
                              r"sum to 46"),
    (dict(documents="20,-1"), "documents: -1 is below 1"),
])
def test_bad_zoo_values_are_named_in_the_ui_and_by_pattern_view(values, message):
    ex = _small()
    ex.set(**values)
    assert ex.error is not None and re.search(message, ex.error), ex.error
    assert "Cannot draw this" in ex.message.value
    with pytest.raises((ValueError, TypeError), match=message):
        pattern_view(PatternSettings(**{**dict(text_len=40, n_tokens=4, window=8, num_layers=3, causal=True),
                                        **values}))
    ex.set(prefix_lm="", chunk="", documents="")          # back to a good state: the error goes away
    assert ex.error is None and ex.message.value == ""
