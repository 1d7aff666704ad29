"""attnviz.studies.sweep with seeds, the position variant and per-layer window schedules (tiny BERT)."""

import json

import numpy as np
import pytest

from _prompt_fixtures import sentiment_rows, tiny_tokenizer, write_jsonl

from attnviz.models import tiny_model
from attnviz.stats import BOOTSTRAP, estimate
from attnviz.studies.sweep import Cell, SweepConfig, cells, effective_key, run_sweep


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep_seeds")
    tok = tiny_tokenizer(root / "tok")
    data = write_jsonl(root / "data.jsonl", sentiment_rows(40, 0))
    return root, tok, data


def _config(data, **kw):
    base = dict(task=str(data), variant="far", windows=(4,), global_prompt=(False, True), placements=("prefix",),
                n_tokens=2, max_length=24, filler_tokens=8, steps=2, batch_size=4, train_size=16, test_size=8,
                influence_examples=2, seeds=(0, 1, 2), references=("head_only",))
    base.update(kw)
    return SweepConfig(**base)


def test_seeds_runs_intervals_and_resume(setup):
    root, tok, data = setup
    base = tiny_model("bert")
    out = root / "seeds"
    cfg = _config(data, seeds=(0, 1))
    first = run_sweep(cfg, out, model=(base, tok, "tiny"), progress=False)
    assert [r["run"] for r in first.runs] == ["w4-head-only#s0", "w4-head-only#s1", "w4-prefix#s0", "w4-prefix#s1",
                                              "w4-prefix-global#s0", "w4-prefix-global#s1"]
    # adding a seed trains only the new runs
    more = run_sweep(_config(data), out, model=(base, tok, "tiny"), progress=False)
    assert more.trained == ["w4-head-only#s2", "w4-prefix#s2", "w4-prefix-global#s2"]
    saved = json.loads((out / "results.json").read_text())
    assert len(saved["runs"]) == 9 and all(len(r["correct"]) == 8 for r in saved["runs"])
    for row in more.rows:
        runs = [r for r in saved["runs"] if r["key"] == row["key"]]
        assert row["seeds"] == [0, 1, 2]
        est = estimate([r["correct"] for r in runs])
        assert (row["accuracy"], row["low"], row["high"]) == (est.mean, est.low, est.high)
        assert row["interval"] == BOOTSTRAP
        assert row["accuracy"] == pytest.approx(np.mean([r["accuracy"] for r in runs]))
        assert row["low"] <= row["accuracy"] <= row["high"]
    # the head alone behind 8 filler tokens under window 4 sees the same [CLS] view for every document:
    # one class for all 8 balanced documents, every seed: exactly 0.5, interval collapsed
    head = more.row("w4-head-only")
    assert head["accuracy_by_seed"] == [0.5, 0.5, 0.5]
    md = (out / "results.md").read_text()
    assert "95 % interval" in md and BOOTSTRAP in md and "| w4-head-only | 4 |" in md
    again = run_sweep(_config(data), out, model=(base, tok, "tiny"), progress=False)
    assert again.trained == [] and again.rows == more.rows
    with pytest.raises(ValueError, match="steps: saved 2, now 3"):
        run_sweep(_config(data, steps=3), out, model=(base, tok, "tiny"), progress=False)


def test_position_variant_and_schedules(setup):
    root, tok, data = setup
    cfg = _config(data, variant="position", positions=(0.0, 1.0), windows=((2, 6), 4), global_prompt=(False,),
                  references=(), seeds=(0,), max_length=20, filler_tokens=8)
    assert [c.key for c in cells(cfg)] == ["w2-6-prefix-pos0", "w4-prefix-pos0", "w2-6-prefix-pos1", "w4-prefix-pos1"]
    # a schedule is full attention only when every layer's window spans the input
    assert effective_key(Cell("prompt", (64, 4), True, "prefix"), 20) == ("prefix", (64, 4), True, None)
    assert effective_key(Cell("prompt", (64, 40), True, "prefix"), 20) == ("prefix", None, False, None)
    base = tiny_model("bert")
    result = run_sweep(cfg, root / "pos", model=(base, tok, "tiny"), progress=False)
    assert [r["key"] for r in result.rows] == [c.key for c in cells(cfg)]
    assert {r["length"] for r in result.runs} == {20 + 2}           # every input max_length + the prompt
    assert result.row("w2-6-prefix-pos1")["window"] == [2, 6]
    assert "| w2-6-prefix-pos0 | 2-6 |" in (root / "pos" / "results.md").read_text()
    assert result.row("w4-prefix-pos0")["interval"].startswith("Wilson")   # one seed: Wilson
    html = (root / "pos" / "sweep.html").read_text()
    assert "evidence position" in html
    for bad in (dict(positions=(1.5,)), dict(seeds=()), dict(seeds=(0, 0)), dict(windows=((3, 4),))):
        with pytest.raises((ValueError, TypeError)):
            _config(data, **bad)


def test_cli_parses_seeds_positions_and_schedules():
    from attnviz.cli import build_parser

    args = build_parser().parse_args(["sweep", "--seeds", "0,1,2", "--variant", "position", "--positions", "0,0.5,1",
                                      "--window", "16-32-48-80-96-112,64,full", "--threads", "1", "--out", "x"])
    assert args.seeds == (0, 1, 2) and args.positions == (0.0, 0.5, 1.0) and args.threads == 1
    assert args.window == ((16, 32, 48, 80, 96, 112), 64, None)
