"""attnviz.tasks.evidence.evidence_at: the article at a chosen position inside filler of fixed length."""

import pytest
from datasets import Dataset

from attnviz.tasks.evidence import evidence_at, position_split

from _prompt_fixtures import tiny_tokenizer


def test_article_moves_length_fixed(tmp_path):
    tok = tiny_tokenizer(tmp_path / "tok")
    ds = Dataset.from_dict({"text": ["good film", "bad plot acting service food"], "label": [1, 0]})
    rows = {p: list(evidence_at(ds, p, filler_tokens=4, article_tokens=3, tokenizer=tok)) for p in (0, 0.5, 1)}
    words = lambda r: tok.convert_ids_to_tokens(r["input_ids"])
    assert words(rows[0][0]) == ["[CLS]", "good", "film", "the", "the", "the", "the", "the", "[SEP]"]
    assert words(rows[0.5][0]) == ["[CLS]", "the", "the", "good", "film", "the", "the", "the", "[SEP]"]
    assert words(rows[1][1]) == ["[CLS]", "the", "the", "the", "the", "bad", "plot", "acting", "[SEP]"]
    assert {len(r["input_ids"]) for rs in rows.values() for r in rs} == {4 + 3 + 2}
    assert [r["label"] for r in rows[1]] == [1, 0]
    assert position_split(0.25, 128) == 32 and position_split(1, 128) == 128
    with pytest.raises(ValueError):
        evidence_at(ds, 1.5, tokenizer=tok)
