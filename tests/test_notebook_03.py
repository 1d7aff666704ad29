"""notebooks/03_placement_and_global_attention runs top to bottom (fast mode): structure, influence,
training and the frozen-prompt pitfall, with the library's numbers."""

import re

import pytest

from _notebooks import output_text, run_notebook
from attnviz import AttentionPattern, PromptPlacement, spread_pattern
from attnviz.models.diagnose import readout_reach


def _section(text: str, header: str) -> str:
    """The printed table that starts with ``header``, up to the next blank-separated header."""
    start = text.index(header)
    return text[start:start + 2000]


def _row(text: str, name: str) -> list[str]:
    m = re.search(rf"^{re.escape(name)} {{2,}}(\S.*)$", text, re.M)
    assert m, f"no row {name!r}"
    return m.group(1).split()


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_placement_notebook():
    nb, seconds = run_notebook("03_placement_and_global_attention.ipynb", timeout=600)
    text = output_text(nb)

    # 1. the structure table equals spread_pattern / readout_reach, row by row
    placements = {"prefix": PromptPlacement("prefix", n_tokens=20), "infix": PromptPlacement("infix", n_tokens=20, at=245),
                  "suffix": PromptPlacement("suffix", n_tokens=20),
                  "scattered": PromptPlacement("scattered", n_tokens=20, every=24)}
    rows = []
    for window in (32, 128):
        for glob in (False, True):
            pattern = AttentionPattern(window=window, global_prompt=glob)
            for name, placement in placements.items():
                layout = placement.layout(text_len=490)
                r = spread_pattern(pattern, layout, 6)
                first = int(r.first_layer[0])
                text_in = int(readout_reach(pattern, layout, 6)[list(layout.positions("text"))].sum())
                rows.append(f"{name:10s} {window:6d} {str(glob):>6s}  {r.fraction_reached():7.1%}  "
                            f"{first if first >= 0 else 'never':>14}  {text_in:28d}")
    for row in rows:
        assert row in text
    # pitfall 1 in numbers: the prefix prompt takes 20 of the 96 places that can reach [CLS]
    assert "prefix         32  False    22.9%               1                            76" in text
    assert "suffix         32  False    22.9%           never                            96" in text

    # 3. influence: the suffix prompt without global attention cannot touch [CLS]: exactly zero
    influence = _section(text, "arm (window 32)     at [CLS]")
    assert _row(influence, "suffix")[0] == "0.000"
    assert float(_row(influence, "suffix + global")[0]) > 0.0 and float(_row(influence, "prefix")[0]) > 0.0

    # 4. training runs: every arm reports an accuracy in [0, 1] and whether pruning ran
    training = _section(text, "arm (window 32)    accuracy")
    assert _row(training, "prefix")[2:] == "pruned: 97 of 148 positions".split()
    for arm in ("head only", "prefix", "suffix", "suffix + global"):
        assert 0.0 <= float(_row(training, arm)[0]) <= 1.0
    # what the prose says of the live runs, true in fast mode too: the pruned suffix run *is* the head alone
    assert _row(training, "suffix")[0] == _row(training, "head only")[0]
    assert "Live demonstration (fast mode)" in text
    # accuracies quoted in the prose come from the 3-seed table, dated, as a table and a chart with intervals;
    # the rendered table prints exactly the numbers the prose quotes
    assert "Placement × global prompt at window 128 (2026-12-04, 3 seeds × 200 articles)" in text
    assert "`placement_global_w128.md`, measured 2026-12-04" in text
    for cell, acc, interval, seeds in (("w128-prefix-global", "0.863", "0.762–0.945", "0.750 / 0.925 / 0.915"),
                                       ("w128-scattered-global", "0.810", "0.702–0.900", "0.695 / 0.880 / 0.855"),
                                       ("w128-suffix-global", "0.447", "0.190–0.860", "0.235 / 0.870 / 0.235"),
                                       ("w128-suffix", "0.257", "0.190–0.322", "0.235 / 0.300 / 0.235")):
        assert f"| {cell} | {acc} | {interval} | {seeds} |" in text
    prose = "".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "prefix 0.863 > scattered 0.810 > suffix 0.447" in prose
    for old in ("0.83", "0.91", "0.86 ", "0.76–0.91", "Full sweep"):   # the superseded single-seed numbers
        assert old not in prose, old
    assert "Placement × window × global prompt" in text     # the 16 arms as one small-multiples grid

    # 5. frozen prompts: the far (suffix) prompt leaves [CLS]'s features bit for bit unchanged
    frozen = _section(text, "frozen prompt (window 32)")
    assert _row(frozen, "random vectors, suffix") == _row(frozen, "no prompt")
    # the ordering the prose states: [SEP] copies cost least, real words and random vectors more
    sep = float(_row(frozen, "[SEP] copies")[0])
    assert all(sep > float(_row(frozen, arm)[0]) for arm in ('"." copies', "random vocabulary", "random vectors"))
    assert "chance = 0.20" in text
    assert text.count('class="plotly-graph-div"') == 5
    for word in ("issue #", "the seed's", "the issue's"):
        assert word not in "".join(c.source for c in nb.cells)
    print(f"03 ran in {seconds:.0f} s")
