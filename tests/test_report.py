"""attnviz report on a real tiny run folder: one offline HTML page with the run settings (pattern
description included), the logged losses exactly, mask and spread of the run's pattern, and the
influence map of the trained prompt equal to prompt_influence; the CLI with a model folder, without
influence, with bad input; PNGs through kaleido and the system Chromium."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from attnviz import describe, prompt_influence
from attnviz.cli import main
from attnviz.prompts import load_checkpoint, train_soft_prompt
from attnviz.studies.report import read_run, report_figures, write_report

from _prompt_fixtures import make_run, tiny_tokenizer
from _values import shows

TEXT = "the food was awful but the service was very good"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real tiny run: 6 steps, evaluation every 3, checkpoints every 3; the base model and tokenizer
    saved as a folder (what ``--model`` takes)."""
    root = tmp_path_factory.mktemp("report")
    model, train_rows, eval_rows = make_run(root, n_tokens=4, window=4)
    train_soft_prompt(model, train_rows, eval_rows, out_dir=root / "run", steps=6, batch_size=4, eval_every=3,
                      checkpoint_every=3, progress=False, task={"name": "tiny-sentiment",
                                                                "label_names": ["negative", "positive"]})
    model.base.save_pretrained(root / "model")
    tiny_tokenizer(root / "model")
    return root, model


def _offline(page: str) -> None:
    assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", page), "a script loads from the network"
    assert page.count("<html") == 1


def test_report_page_has_settings_curves_mask_spread_and_influence(run, tmp_path):
    root, model = run
    tok = tiny_tokenizer(tmp_path / "tok")
    out = write_report(root / "run", tmp_path / "report.html", model=model.base, tokenizer=tok, text=TEXT)
    assert out.is_file()
    page = out.read_text()
    _offline(page)
    log = [json.loads(line) for line in (root / "run" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 6
    for r in log:                                            # every logged value, exactly as logged
        assert repr(r["loss"]) in page
    assert repr(log[2]["eval"]["accuracy"]) in page and repr(log[5]["eval"]["loss"]) in page
    assert describe(model.pattern) == "window=4" and "pattern window=4" in page
    assert "tiny-sentiment (negative, positive)" in page and "4-token prefix" in page
    for title in ("Run settings", "Training of run", "How far the prompt reaches", "mask",
                  "How much the prompt changes each token", "Every step as logged"):
        assert title in page, title


def test_report_figures_hold_the_run_numbers(run, tmp_path):
    root, model = run
    tok = tiny_tokenizer(tmp_path / "tok")
    rec = read_run(root / "run")
    assert rec.checkpoint.name == "step-00000006" and rec.num_layers == 2
    assert rec.placement.n_tokens == 4 and rec.pattern == model.pattern
    figs, notes = report_figures(rec, model=model.base, tokenizer=tok, text=TEXT)
    figs = dict(figs)
    assert list(figs) == ["settings", "training", "spread", "mask", "influence", "attention", "prompt words", "log"]
    # what the prompt says: the last column is nearest_tokens of the newest checkpoint's prompt
    from attnviz.prompts.nearest import nearest_tokens

    words = nearest_tokens(load_checkpoint(rec.checkpoint)[0]["prompt.weight"], model.base, tok, k=3)
    heat = figs["prompt words"].data[0]
    assert [row[-1] for row in heat.text] == [t[0] for t in words.tokens]
    assert [row[-1] for row in heat.z] == pytest.approx([float(c) for c in words.cosine[:, 0]])
    assert any(n.startswith("what the prompt says (step 6)") for n in notes)
    assert figs["training"].data[0].y == tuple(r["loss"] for r in rec.history)
    settings = dict(zip(*figs["settings"].data[0].cells.values))
    assert settings["pattern"] == "window=4" and settings["steps"] == "6 of 6"
    assert settings["held-out accuracy"] == f"{rec.result['eval']['accuracy']:.4f} on 16 examples"
    # the influence map is prompt_influence of the checkpoint's prompt on the text
    weight = load_checkpoint(rec.checkpoint)[0]["prompt.weight"]
    enc = tok(TEXT, return_tensors="pt")
    ref = prompt_influence(model.base, weight, {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]},
                           model.pattern, model.placement, tokenizer=tok)
    assert shows(figs["influence"].data[0].customdata, ref.values[0])
    # the attention figure is the last layer's capture with the prompt inserted (short text: dense path)
    from attnviz import capture_attention, insert_prompt, with_pattern

    layout = model.placement.layout(enc["input_ids"].shape[1] - 2)
    embeds = insert_prompt(model.base.get_input_embeddings()(enc["input_ids"]), weight.float(), layout)
    with with_pattern(model.base, model.pattern, layout) as m:
        maps = capture_attention(m, {"inputs_embeds": embeds}, layers=[1])
    assert shows(figs["attention"].data[0].z, maps.values[0].mean(0))
    assert any("attention of layer 1" in n and "(dense path)" in n for n in notes)
    # mask and spread are of the run's layout: max_length unknown -> 126 text tokens + [CLS], [SEP], prompt
    assert rec.layout().length == 126 + 2 + 4
    assert "L=132" in figs["spread"].layout.title.text


def test_cli_report_with_a_model_folder_and_without_influence(run, tmp_path, capsys):
    root, _ = run
    out = tmp_path / "with.html"
    assert main(["report", str(root / "run"), "--out", str(out), "--model", str(root / "model"), "--text", TEXT]) == 0
    assert "wrote" in capsys.readouterr().out
    page = out.read_text()
    _offline(page)
    assert "How much the prompt changes each token" in page
    plain = tmp_path / "without.html"
    assert main(["report", str(root / "run"), "--out", str(plain), "--no-influence"]) == 0
    assert "How much the prompt changes each token" not in plain.read_text()
    # the run's own model id ("tiny-bert") is not loadable here: the page says so instead
    write_report(root / "run", tmp_path / "noted.html")
    assert "not available offline here" in (tmp_path / "noted.html").read_text()


def test_cli_report_refuses_what_is_not_a_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["report", str(tmp_path / "missing")])
    assert e.value.code == 2 and "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit):
        main(["report", str(tmp_path / "empty")])
    assert "not a run folder" in capsys.readouterr().err


@pytest.mark.slow
def test_png_handouts_through_kaleido_and_system_chromium(run, tmp_path):
    pytest.importorskip("kaleido")
    if shutil.which("chromium") is None and not __import__("os").path.exists("/usr/bin/chromium"):
        pytest.skip("no system Chromium")
    root, _ = run
    (tmp_path / "png").mkdir()
    assert main(["report", str(root / "run"), "--out", str(tmp_path / "r.html"), "--no-influence",
                 "--png", str(tmp_path / "png")]) == 0
    names = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert names == ["log.png", "mask.png", "settings.png", "spread.png", "training.png"]
    for p in (tmp_path / "png").iterdir():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_cli_report_of_a_long_document_takes_the_tiled_path(run, tmp_path, capsys):
    """--positions extends the model, --text-file gives a 5,000-token document: above 2,048 positions the
    influence map and the attention figure are computed tile by tile, pooled with the prompt exact."""
    from attnviz.studies.report import read_run, report_figures
    from attnviz.models import load_model

    root, _ = run
    doc = tmp_path / "long.txt"
    doc.write_text(" ".join(["the film was very good and the food was poor"] * 560))   # 5,040 words
    out = tmp_path / "long.html"
    assert main(["report", str(root / "run"), "--out", str(out), "--model", str(root / "model"),
                 "--text-file", str(doc), "--positions", "6000"]) == 0
    page = out.read_text()
    length = int(re.search(r"\(([\d,]+) positions\)&#x27; \(tiled path\)", page).group(1).replace(",", ""))
    assert 5000 < length <= 6000
    model, tok, _ = load_model(str(root / "model"))
    from attnviz.models import extend_positions

    extend_positions(model, 6000, tokenizer=tok)
    figs, notes = report_figures(read_run(root / "run"), model=model, tokenizer=tok, text=doc.read_text())
    att = dict(figs)["attention"]
    assert len(att.data[0].z) < length and "prompt kept exact" in att.layout.title.text
    with pytest.raises(SystemExit):
        main(["report", str(root / "run"), "--text", "a", "--text-file", str(doc)])
    assert "give --text or --text-file, not both" in capsys.readouterr().err
