"""attnviz.studies.sweep: the prompt-reach grid on a tiny BERT and a tiny sentiment set written here."""

from __future__ import annotations

import json

import pytest
import torch

from _prompt_fixtures import sentiment_rows, tiny_tokenizer, write_jsonl
from attnviz import AttentionPattern, PromptPlacement, spread_pattern
from attnviz.cli import main
from attnviz.models import tiny_model
from attnviz.studies.sweep import Cell, SweepConfig, cells, effective_key, run_sweep

LAYERS = 2


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    tok = tiny_tokenizer(root / "tok")
    data = write_jsonl(root / "data.jsonl", sentiment_rows(40, 0))
    return root, tok, data


def _config(data, **kw):
    base = dict(task=str(data), variant="far", windows=(4, 64), global_prompt=(False, True),
                placements=("prefix", "suffix"), n_tokens=2, max_length=24, filler_tokens=8, steps=2, batch_size=4,
                train_size=16, test_size=8, influence_examples=4)
    base.update(kw)
    return SweepConfig(**base)


def test_cells_enumerated_exactly():
    cfg = SweepConfig(windows=(32, 128), placements=("prefix", "scattered"))
    assert [c.key for c in cells(cfg)] == [
        "w32-head-only", "w32-prefix", "w32-prefix-global", "w32-scattered", "w32-scattered-global",
        "w128-head-only", "w128-prefix", "w128-prefix-global", "w128-scattered", "w128-scattered-global",
        "full-prefix", "full-head-only"]
    bare = SweepConfig(windows=(32, None), global_prompt=(True,), placements=("suffix",), references=())
    assert [c.key for c in cells(bare)] == ["w32-suffix-global", "full-suffix-global"]
    # the default grid: 3 windows x (head only + 3 placements x 2) + 2 full-attention references
    assert len(cells(SweepConfig())) == 3 * 7 + 2
    # a window of 2 (L - 1) or more is full attention, where global_prompt changes no mask
    assert effective_key(Cell("prompt", 64, True, "prefix"), 33) == ("prefix", None, False, None)
    assert effective_key(Cell("prompt", 62, True, "prefix"), 33) == ("prefix", 62, True, None)
    assert SweepConfig(n_tokens=20, max_length=256).scatter_every == 12


def test_sweep_runs_resumes_and_writes(setup, monkeypatch):
    root, tok, data = setup
    import attnviz.prompts.training as training

    calls = []
    real = training.train_soft_prompt

    def counting(model, *a, **kw):
        if fail_after[0] is not None and len(calls) >= fail_after[0]:
            raise RuntimeError("killed")
        calls.append(model.describe())
        return real(model, *a, **kw)

    fail_after = [2]   # head-only cells train on cached features, without train_soft_prompt
    monkeypatch.setattr(training, "train_soft_prompt", counting)
    cfg = _config(data)
    out = root / "out"
    base = tiny_model("bert")
    with pytest.raises(RuntimeError, match="killed"):
        run_sweep(cfg, out, model=(base, tok, "tiny"), progress=False)
    saved = json.loads((out / "results.json").read_text())
    assert [r["key"] for r in saved["rows"]] == ["w4-head-only", "w4-prefix", "w4-prefix-global"]

    fail_after[0] = None
    result = run_sweep(cfg, out, model=(base, tok, "tiny"), progress=False)
    keys = [c.key for c in cells(cfg)]
    assert [r["key"] for r in result.rows] == keys
    # 12 cells (one seed); 3 were done; w64 is full attention at this length (21 positions with the prompt),
    # so w64-*-global and the full-attention references are copies: 5 more trainings, 4 of them prompts
    assert result.trained == ["w4-suffix#s0", "w4-suffix-global#s0", "w64-head-only#s0", "w64-prefix#s0",
                              "w64-suffix#s0"]
    assert len(calls) == 2 + 4
    rows = {r["key"]: r for r in result.rows}
    assert rows["w64-prefix-global"]["same_as"] == "w64-prefix"
    assert rows["full-prefix"]["same_as"] == "w64-prefix"
    assert rows["full-head-only"]["same_as"] == "w64-head-only"
    assert rows["full-prefix"]["accuracy"] == rows["w64-prefix"]["accuracy"]

    again = run_sweep(cfg, out, model=(base, tok, "tiny"), progress=False)
    assert again.trained == [] and len(calls) == 6
    assert again.rows == result.rows

    # every row: real numbers in range; the reach is spread_pattern's on the longest input's layout
    # the longest document: [CLS] + 8 filler + 9 words + [SEP] (sentiment_rows: 3..8 filler words + 1 polar word)
    longest = max(r["length"] for r in result.rows if r["kind"] == "head_only")
    assert longest == 19
    for r in result.rows:
        assert r["n_test"] == 8 and 0.0 <= r["accuracy"] <= 1.0
        if r["kind"] == "head_only":
            assert r["reach"] is None and r["influence_cls"] is None
            continue
        pattern = AttentionPattern(window=r["window"], global_prompt=r["global_prompt"])
        layout = PromptPlacement(r["placement"], n_tokens=2).layout(longest - 2)
        s = spread_pattern(pattern, layout, LAYERS)
        assert r["reach"] == s.fraction_reached(LAYERS)
        assert r["length"] == layout.length == 21
        assert r["reaches_readout"] == bool(s.reached[-1, 0])
        assert r["influence_zero_where_unreached"] is True
        assert len(r["influence_cls_by_layer"]) == LAYERS + 1

    # hand-worked: window 4 (2 each side), 2 layers: [CLS] sees positions 0..4 at most. Behind 8 filler
    # tokens its view is [CLS] + filler, the same for every document, so the head alone predicts one
    # class for all 8 (balanced) test documents: accuracy exactly 0.5.
    assert rows["w4-head-only"]["accuracy"] == 0.5
    # a suffix prompt 12+ positions from [CLS] cannot reach it without global attention: influence exactly 0
    assert rows["w4-suffix"]["reaches_readout"] is False and rows["w4-suffix"]["influence_cls"] == 0.0
    assert rows["w4-suffix"]["influence_cls_by_layer"] == [0.0] * (LAYERS + 1)
    assert rows["w4-suffix"]["accuracy"] == 0.5
    # with global attention it reaches [CLS] after one layer, and changes it
    assert rows["w4-suffix-global"]["readout_first_layer"] == 1 and rows["w4-suffix-global"]["influence_cls"] > 0
    # a prefix prompt sits next to [CLS]: reached at layer 1, 2 tokens + 2 per layer each side
    assert rows["w4-prefix"]["readout_first_layer"] == 1
    assert rows["w4-prefix"]["reach"] == pytest.approx((1 + 2 + 2 * LAYERS) / 21)

    md = (out / "results.md").read_text()
    assert md.count("\n| w") == 10 and md.count("\n| full") == 2
    assert "| w4-suffix | 4 | no | suffix | 0.500 | " in md and "Wilson score (95 %, one seed)" in md
    html = (out / "sweep.html").read_text()
    assert html.count('class="figure"') == 4 and "Held-out accuracy (bars: 95 % interval)" in html

    # another configuration in the same folder is refused, not mixed in
    with pytest.raises(ValueError, match="another configuration.*steps: saved 2, now 3"):
        run_sweep(_config(data, steps=3), out, model=(base, tok, "tiny"), progress=False)


def test_plain_variant_truncates(setup):
    root, tok, data = setup
    base = tiny_model("bert")
    cfg = _config(data, variant="plain", windows=(None,), global_prompt=(False,), placements=("prefix",),
                  max_length=6, references=(), influence_examples=2)
    result = run_sweep(cfg, root / "plain", model=(base, tok, "tiny"), progress=False, html=False)
    (row,) = result.rows
    assert row["key"] == "full-prefix" and row["length"] == 6 + 2
    assert row["reach"] == 1.0 and row["readout_first_layer"] == 1
    assert not (root / "plain" / "sweep.html").exists()


def test_positions_extended_when_needed(setup):
    root, tok, data = setup
    base = tiny_model("bert", max_position_embeddings=16)
    cfg = _config(data, windows=(4,), global_prompt=(True,), placements=("prefix",), references=())
    result = run_sweep(cfg, root / "ext", model=(base, tok, "tiny"), progress=False, html=False)
    assert base.config.max_position_embeddings == 32   # 24 + 2 positions needed: two copies of 16
    assert json.loads((root / "ext" / "results.json").read_text())["positions_extended_to"] == 32
    assert torch.equal(base.embeddings.position_embeddings.weight[16:], base.embeddings.position_embeddings.weight[:16])
    assert result.rows[0]["length"] == 21


@pytest.mark.parametrize("kw, message", [
    (dict(task="imdb"), "unknown task 'imdb'; allowed: documents, bbc, polarity"),
    (dict(windows=(0,)), "window must be an even int >= 2.*got 0"),
    (dict(windows=(-4,)), "window must be an even int >= 2.*got -4"),
    (dict(windows=(33,)), "got 33; try 34"),
    (dict(windows=()), "windows is empty"),
    (dict(placements=("middle",)), "unknown placement 'middle'; allowed in a sweep: start, prefix, suffix, scattered"),
    (dict(placements=("infix",)), "unknown placement 'infix'"),
    (dict(variant="near"), "unknown variant 'near'; allowed: plain, far"),
    (dict(max_length=100, filler_tokens=128), "max_length 100 leaves no room.*max_length >= 131"),
    (dict(global_prompt=("on",)), "global_prompt must be a non-empty tuple of bools"),
    (dict(references=("prompt",)), "unknown reference 'prompt'"),
    (dict(backend="flex"), "backend must be 'dense' or 'sdpa'"),
    (dict(steps=0), "steps must be >= 1, got 0"),
])
def test_bad_input(kw, message):
    with pytest.raises(ValueError, match=message):
        SweepConfig(**kw)


def test_bad_input_cli(capsys):
    for argv, message in [(["--task", "imdb"], "unknown task 'imdb'"), (["--window", "0"], "got 0"),
                          (["--placement", "prefix,middle"], "unknown placement 'middle'"),
                          (["--global-prompt", "maybe"], "invalid global-prompt 'maybe'"),
                          (["--window", "32,abc"], "invalid windows '32,abc'")]:
        with pytest.raises(SystemExit) as exc:
            main(["sweep", *argv, "--out", "unused"])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
