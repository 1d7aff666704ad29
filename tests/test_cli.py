"""The attnviz command: offline HTML, a summary whose numbers match Spread, clean errors."""

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

from attnviz import AttentionPattern, PromptPlacement, build_masks, spread
from attnviz.cli import main


def _expected_summary(pattern, layers, text_len, n_tokens=20, **placement):
    layout = PromptPlacement(placement.pop("kind", "prefix"), n_tokens=n_tokens, **placement).layout(text_len)
    reach = spread(build_masks(pattern, layout, layers), layout.prompt_positions)
    said = reach.summary(readout=layout.readout_position)
    return said[:1].upper() + said[1:]  # the CLI starts the sentence with a capital


def _offline(page: str) -> bool:
    return not re.search(r"<script[^>]*src=[\"']?(https?:)?//", page)


def test_spread_writes_offline_html_and_prints_the_summary(tmp_path, capsys):
    out = tmp_path / "spread.html"
    assert main(["spread", "--window", "16", "--layers", "3", "--length", "100", "--n-tokens", "5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    expected = _expected_summary(AttentionPattern(window=16), 3, 100, n_tokens=5)
    # by hand: prompt 1-5, 8 positions per layer -> 0..29 reached after 3 layers, 77 of 107 never
    assert "The prompt never reaches token 106 within 3 layers" in expected
    assert "72 % of tokens (77 of 107) are never reached" in expected
    assert expected in printed
    page = out.read_text()
    assert html.escape(expected) in page
    assert _offline(page) and "plotly.js v" in page
    assert page.count('class="plotly-graph-div"') == 2  # spread + mask
    assert f"wrote {out}" in printed


@pytest.mark.parametrize("args, pattern, layers, needle", [
    (["--window", "8,8,full"], AttentionPattern(window=(8, 8, None)), 3, "The prompt reaches token 51 at layer 3"),
    (["--window", "8", "--global-prompt"], AttentionPattern(window=8, global_prompt=True), 6,
     "0 % of tokens (0 of 52) are never reached"),
    (["--window", "none", "--causal", "--layers", "2"], AttentionPattern(window=None, causal=True), 2,
     "it never reaches the readout token 0"),
    # the mask zoo (#17): with a prefix over the prompt, [CLS] sees it after one layer
    (["--window", "none", "--causal", "--layers", "2", "--prefix-lm", "prompt"],
     AttentionPattern(causal=True, prefix_lm="prompt"), 2, "it reaches the readout token 0 at layer 1"),
    (["--window", "4", "--causal", "--sinks", "21", "--layers", "2"],
     AttentionPattern(window=4, causal=True, sinks=21), 2, "The prompt reaches token 51 at layer 1; it never reaches "
                                                           "the readout token 0; 2 % of tokens (1 of 52)"),
    (["--window", "none", "--chunk", "16,16,full"], AttentionPattern(chunk=(16, 16, None)), 3,
     "The prompt reaches token 51 at layer 3"),
    (["--window", "none", "--documents", "30,22", "--layers", "2"], AttentionPattern(documents=(30, 22)), 2,
     "42 % of tokens (22 of 52) are never reached"),
])
def test_spread_options_reach_the_pattern(tmp_path, capsys, args, pattern, layers, needle):
    assert main(["spread", *args, "--length", "30", "--out", str(tmp_path / "s.html")]) == 0
    expected = _expected_summary(pattern, layers, 30)
    assert needle in expected
    assert expected in capsys.readouterr().out


@pytest.mark.parametrize("args, named", [
    (["--window", "63"], "got 63"),
    (["--window", "abc"], "'abc'"),
    (["--window", "32,32", "--layers", "3"], "3"),
    (["--length", "-3"], "'-3'"),
    (["--placement", "middle"], "'middle'"),
    (["--placement", "infix"], "at="),
    (["--global-positions", "0,x"], "'0,x'"),
    (["--out", "/nonexistent-attnviz/x.html"], "/nonexistent-attnviz"),
    (["--prefix-lm", "abc"], "invalid prefix-LM 'abc'"),
    (["--prefix-lm", "0"], "invalid prefix-LM '0'"),
    (["--prefix-lm", "99"], "--prefix-lm: prefix_lm=99 is longer than the layout (42 positions)"),
    (["--sinks", "-1"], "'-1'"),
    (["--chunk", "0"], "invalid chunk '0'"),
    (["--chunk", "8,x"], "invalid chunk '8,x'"),
    (["--chunk", "8,8", "--layers", "3"], "per-layer settings for 2 layers but the model has 3"),
    (["--documents", "20,20"], "--documents: documents=(20, 20) sum to 40 but the layout has 42 positions"),
    (["--documents", "20,-2"], "invalid documents '20,-2'"),
])
def test_bad_input_exits_2_with_one_line_naming_the_value(tmp_path, capsys, args, named):
    argv = ["spread", "--length", "20", "--out", str(tmp_path / "x.html"), *args]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("attnviz spread: error:"), err
    assert named in err
    assert not (tmp_path / "x.html").exists()


def test_missing_subcommand_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_runs_as_a_program(tmp_path):
    out = tmp_path / "p.html"
    run = subprocess.run([sys.executable, "-m", "attnviz.cli", "spread", "--window", "8", "--length", "40",
                          "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert _expected_summary(AttentionPattern(window=8), 6, 40) in run.stdout
    assert out.exists() and _offline(out.read_text())
    script = Path(sys.executable).with_name("attnviz")  # the console script of the installed package
    if script.exists():
        bad = subprocess.run([str(script), "spread", "--window", "63", "--out", str(out)],
                             capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and "got 63" in bad.stderr and "Traceback" not in bad.stderr
