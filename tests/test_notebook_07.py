"""notebooks/07_question_answering runs top to bottom (fast mode): prepares / loads SQuAD + SQuADShifts,
trains the span head alone and with a prompt, prints the EM / F1 table, and shows the two directions
of prompt <-> answer reach (mirror images under a window, one layer with a global prompt)."""

import re

import pytest

from _notebooks import output_text, run_notebook


@pytest.fixture(scope="module")
def text():
    nb, seconds = run_notebook("07_question_answering.ipynb", timeout=600)
    return output_text(nb)


@pytest.mark.notebook
@pytest.mark.timeout(1200)
def test_data_and_labels(text):
    assert "4 steps of 4, 64 training and 24 test questions, 112 tokens per input" in text
    assert re.search(r"squad\.jsonl\s+10,565 questions \(test\)", text)
    assert re.search(r"nyt\.jsonl\s+10,056 questions \(train\)", text)
    assert re.search(r"train: 64 questions from \[[^\]]+\]; test: 24 from SQuAD dev", text)
    assert re.search(r"labels: start \d+ end \d+ -> \[", text)


@pytest.mark.notebook
@pytest.mark.timeout(1200)
def test_em_f1_table(text):
    rows = dict(re.findall(r"(head only|prompt \+ head)\s+(\d+)\s+4\s+\d+\.\d\s+\d+\.\d\s+\d+", text))
    assert rows == {"head only": "770", "prompt + head": "8450"}   # 384*2+2; + 20*384


@pytest.mark.notebook
@pytest.mark.timeout(1200)
def test_two_directions_of_reach(text):
    lines = re.findall(r"(near|mid|far)\s+answer \(slots \d+\.\.\d+ of \d+\), window 32, global prompt (True|False)\s*: "
                       r"prompt -> answer: (.+?); answer -> prompt: (.+)", text)
    got = {(w, g): (a.strip(), b.strip()) for w, g, a, b in lines}
    assert len(got) == 6
    for which in ("near", "mid", "far"):
        forward, backward = got[(which, "False")]
        assert forward == backward                            # a symmetric window: mirror images
        assert got[(which, "True")] == ("layer 1", "layer 1")  # a global prompt: one layer, both ways
    layer = {w: 99 if got[(w, "False")][0].startswith("never") else int(got[(w, "False")][0].split()[1])
             for w in ("near", "mid", "far")}
    assert layer["near"] <= layer["mid"] <= layer["far"] and layer["near"] < layer["far"]   # further answers, later layers
    assert layer["near"] >= 1
    values = [float(v) for v in re.search(r"layers 0\.\.6: ((?:\S+ ){6}\S+)", text).group(1).split()]
    assert values[0] == 0.0 and all(v > 0 for v in values[1:])   # nothing before the prompt is read
