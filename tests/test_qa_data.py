"""QA data: SQuAD v1.1 dev + SQuADShifts prepared from a BIG-bench-shaped tarball the tests write
themselves, checksummed, loaded with ``datasets``; span labels from offsets; EM / F1 as the official
SQuAD v1.1 script. The real sdist is used only by the ``slow`` test, and only if it is in the cache."""

import argparse
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
import torch

from attnviz.tasks import qa, sources
from attnviz.cli.data import add_data_commands
from attnviz.tasks.qa import load_qa, prepare_qa, realign
from attnviz.tasks.qa_features import qa_features, span_labels
from attnviz.tasks.qa_metrics import best_spans, f1_score, normalize_answer, squad_metrics
from attnviz.tasks.sources import BIGBENCH_TASKS, FetchError, cache_dir

REAL_SDIST = cache_dir() / "downloads" / sources.BIGBENCH.filename
CANARY = "FAKE CANARY for tests"
CONTEXT = "The Denver Broncos won Super Bowl 50."


def _doc(domain: str, n_questions: int, version: str = "1.0") -> dict:
    """One article, one paragraph per question; every answer is ``"Broncos"`` (start 11)."""
    paras = []
    for i in range(n_questions):
        paras.append({"context": f"{CONTEXT} ({domain} {i})",
                      "qas": [{"id": f"{domain}-{i}", "question": f"Who won ({i})?",
                               "answers": [{"text": "Broncos", "answer_start": 11},
                                           {"text": "Denver Broncos", "answer_start": 4}]}]})
    return {"data": [{"title": f"{domain} article", "paragraphs": paras}], "version": version, "canary": CANARY}


#: questions per domain in the fixture archive
COUNTS = {"squad": 3, "new_wiki": 2, "nyt": 2, "reddit": 1, "amazon_reviews": 2}


def _write_archive(path: Path) -> None:
    docs = {d: _doc(d, n, "1.1" if d == "squad" else "1.0") for d, n in COUNTS.items()}
    amazon = docs["amazon_reviews"]["data"][0]["paragraphs"]
    amazon[0]["qas"][0]["answers"][0]["answer_start"] = 7      # off by 4: realigned to 11
    amazon[1]["qas"][0]["answers"][1] = {"text": "Chiefs", "answer_start": 3}  # not in the context: -1
    files = {"bigbench-1.0.0/README.md": b"fake",
             BIGBENCH_TASKS + "squad_shifts/task.py": b"# not read"}
    for d, member in qa.MEMBERS.items():
        files[BIGBENCH_TASKS + member] = json.dumps(docs[d]).encode()
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNVIZ_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def fake(cache, tmp_path):
    archive = tmp_path / "bigbench-fake.tar.gz"
    _write_archive(archive)
    return archive


@pytest.fixture(scope="module")
def tokenizer():
    from attnviz.models import load_model

    return load_model("default").tokenizer


def test_prepare_counts_checksums_and_manifest(fake, cache):
    prepared = prepare_qa(progress=False, archive=fake)
    assert prepared.fresh and prepared.directory == cache / "data" / "qa"
    m = prepared.manifest
    assert sorted(m["files"]) == sorted(f"{d}.jsonl" for d in COUNTS)
    for d, n in COUNTS.items():
        entry = m["files"][f"{d}.jsonl"]
        assert entry["rows"] == n and entry["split"] == ("test" if d == "squad" else "train")
        assert entry["sha256"] == sources.sha256_file(cache / "data" / "qa" / f"{d}.jsonl")
        assert m["source"]["answers"][d]["questions"] == n
    assert m["source"]["answers"]["amazon_reviews"] == {"questions": 2, "answers": 4, "realigned": 1, "unfound": 1}
    assert m["source"]["answers"]["squad"]["realigned"] == 0
    assert m["source"]["sha256"] == sources.sha256_file(fake)
    assert m["canary"] == [CANARY] and set(m["licences"]) == {"bigbench", "squad", "squadshifts"}
    assert m["splits"] == {"train": ["new_wiki", "nyt", "reddit", "amazon_reviews"], "test": ["squad"]}
    again = prepare_qa(progress=False, archive=fake)
    assert not again.fresh and again.manifest == m


def test_load_qa_splits_domains_columns_limit(fake):
    prepare_qa(progress=False, archive=fake)
    train, test = load_qa("train"), load_qa("test")
    assert len(train) == 7 and len(test) == 3
    assert train.column_names == ["id", "title", "context", "question", "answers", "domain"]
    assert sorted(set(train["domain"])) == ["amazon_reviews", "new_wiki", "nyt", "reddit"]
    assert test[0] == {"id": "squad-0", "title": "squad article", "context": f"{CONTEXT} (squad 0)",
                       "question": "Who won (0)?", "domain": "squad",
                       "answers": {"text": ["Broncos", "Denver Broncos"], "answer_start": [11, 4]}}
    amazon = load_qa(domains=["amazon_reviews"])
    assert amazon["answers"] == [{"text": ["Broncos", "Denver Broncos"], "answer_start": [11, 4]},
                                 {"text": ["Broncos", "Chiefs"], "answer_start": [11, -1]}]
    sub = load_qa("train", limit=3, seed=1)
    assert len(sub) == 3 and set(sub["id"]) <= set(train["id"]) and sub["id"] == load_qa("train", limit=3, seed=1)["id"]
    with pytest.raises(ValueError, match="unknown split 'dev'; allowed: train, test"):
        load_qa("dev")
    with pytest.raises(ValueError, match="unknown QA domains.*allowed: squad, new_wiki"):
        load_qa(domains=["wiki"])
    with pytest.raises(ValueError, match="unknown QA source"):
        load_qa(source="squad")


def test_corrupt_file_is_detected_and_prepare_rebuilds(fake, cache):
    prepare_qa(progress=False, archive=fake)
    path = cache / "data" / "qa" / "nyt.jsonl"
    good = path.read_bytes()
    path.write_bytes(good.replace(b"Broncos", b"Bronkos", 1))
    with pytest.raises(ValueError, match=r"checksum mismatch for .*nyt\.jsonl.*attnviz data prepare qa --force"):
        load_qa("train")
    assert load_qa("test").num_rows == 3  # other files still verify
    rebuilt = prepare_qa(progress=False, archive=fake)
    assert rebuilt.fresh and path.read_bytes() == good
    (cache / "data" / "qa" / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_qa("test")


def test_not_prepared_says_what_to_run(cache):
    with pytest.raises(FileNotFoundError, match="attnviz data prepare qa"):
        load_qa("test")


def test_realign_moves_to_the_nearest_occurrence():
    c = "ab x ab y ab"
    assert realign(c, "ab", 5) == 5 and realign(c, "ab", 6) == 5 and realign(c, "ab", 9) == 10
    assert realign(c, "ab", 0) == 0 and realign(c, "zz", 3) == -1


def test_span_labels_by_hand():
    # [CLS] who ? [SEP] the cat sat [SEP]: context offsets the(0,3) cat(4,7) sat(8,11)
    offsets = [(0, 0), (0, 3), (3, 4), (0, 0), (0, 3), (4, 7), (8, 11), (0, 0)]
    seq = [None, 0, 0, None, 1, 1, 1, None]
    assert span_labels(offsets, seq, 4, 7) == (5, 5)        # "cat"
    assert span_labels(offsets, seq, 4, 11) == (5, 6)       # "cat sat"
    assert span_labels(offsets, seq, 5, 6) == (5, 5)        # inside one token
    assert span_labels(offsets, seq, 0, 11) == (4, 6)
    assert span_labels(offsets, seq, 8, 12) is None          # past the last context token (cut off)
    assert span_labels(offsets, seq, 4, 4) is None and span_labels(offsets, seq, -1, 3) is None


def test_qa_features_labels_offsets_and_truncation(tokenizer):
    from datasets import Dataset

    rows = Dataset.from_list([
        {"id": "a", "question": "Who won?", "context": CONTEXT,
         "answers": {"text": ["Denver Broncos"], "answer_start": [4]}},
        {"id": "b", "question": "Who won?", "context": CONTEXT,
         "answers": {"text": [" Broncos "], "answer_start": [10]}},      # spaces around: stripped
        {"id": "c", "question": "What number?", "context": CONTEXT,
         "answers": {"text": ["Chiefs", "50"], "answer_start": [-1, 34]}},  # first start unknown: the second
    ])
    f = qa_features(rows, tokenizer, max_length=64, min_context=8, drop_outside=False)
    # [CLS] who won ? [SEP] the denver broncos won super bowl 50 . [SEP]
    assert tokenizer.convert_ids_to_tokens(f[0]["input_ids"]) == [
        "[CLS]", "who", "won", "?", "[SEP]", "the", "denver", "broncos", "won", "super", "bowl", "50", ".", "[SEP]"]
    assert (f[0]["start_positions"], f[0]["end_positions"]) == (6, 7)
    assert (f[1]["start_positions"], f[1]["end_positions"]) == (7, 7)
    assert (f[2]["start_positions"], f[2]["end_positions"]) == (11, 11)
    assert f[0]["token_type_ids"] == [0] * 5 + [1] * 9
    assert f[0]["offset_mapping"][:6] == [[-1, -1]] * 5 + [[0, 3]] and f[0]["offset_mapping"][-1] == [-1, -1]
    assert f["in_window"] == [True, True, True] and f["example"] == [0, 1, 2]
    # 10 tokens: [CLS] who won ? [SEP] the denver broncos won [SEP]: "Denver Broncos" fits, "50" is cut off
    cut = qa_features(rows, tokenizer, max_length=10, min_context=4, drop_outside=False)
    assert [len(x) for x in cut["input_ids"]] == [10, 10, 10]
    assert cut["in_window"] == [True, True, False] and (cut[2]["start_positions"], cut[2]["end_positions"]) == (0, 0)
    assert qa_features(rows, tokenizer, max_length=10, min_context=4)["id"] == ["a", "b"]  # drop_outside
    # a long question is cut so the context keeps min_context tokens
    long_q = Dataset.from_list([{"id": "d", "question": "why " * 40, "context": CONTEXT,
                                 "answers": {"text": ["Denver"], "answer_start": [4]}}])
    g = qa_features(long_q, tokenizer, max_length=20, min_context=5, drop_outside=False)
    assert g[0]["token_type_ids"].count(1) == 5 + 1 and len(g[0]["input_ids"]) == 20  # 5 context + [SEP]
    assert (g[0]["start_positions"], g[0]["end_positions"]) == (15, 15)
    with pytest.raises(ValueError, match="min_context"):
        qa_features(rows, tokenizer, max_length=16, min_context=14)


def test_best_spans_by_hand():
    start = torch.tensor([[0.0, 5.0, 1.0, 0.0]])
    end = torch.tensor([[9.0, 0.0, 1.0, 6.0]])
    allowed = torch.tensor([[False, True, True, True]])
    s, e = best_spans(start, end, allowed)
    assert (int(s), int(e)) == (1, 3)                     # 5 + 6; [CLS]'s 9 is not allowed
    s, e = best_spans(start, end, allowed, max_answer_tokens=2)
    assert (int(s), int(e)) == (2, 3)                     # 1 + 6 beats 5 + 1 and 5 + 0
    s, e = best_spans(start, end, torch.zeros(1, 4, dtype=torch.bool))
    assert (int(s), int(e)) == (0, 0)


def test_em_f1_official_normalisation_by_hand():
    assert normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert normalize_answer("An apple a day, the U.S.") == "apple day us"
    assert normalize_answer("theater") == "theater"          # articles only as whole words
    assert f1_score("Denver", "Denver Broncos") == pytest.approx(2 / 3)   # p 1, r 1/2
    assert f1_score("Broncos, Denver", "the Denver Broncos") == 1.0       # bag of tokens
    assert f1_score("the", "a") == 0.0                                    # both normalise to nothing shared
    assert f1_score("Denver won it", "Denver Broncos") == pytest.approx(0.4)  # p 1/3, r 1/2
    preds = {"q1": "the Denver Broncos", "q2": "Denver", "q3": "Panthers"}
    refs = [{"id": "q1", "answers": {"text": ["Denver Broncos"]}},
            {"id": "q2", "answers": {"text": ["Denver Broncos", "Broncos"]}},
            {"id": "q3", "answers": {"text": ["Carolina Panthers", "Panthers"]}},
            {"id": "q4", "answers": {"text": ["x"]}}]                    # no prediction: counts 0
    m = squad_metrics(preds, refs)
    assert m["n"] == 4 and m["missing"] == 1
    assert m["exact_match"] == pytest.approx(100 * 2 / 4)
    assert m["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 + 0) / 4)


def test_cli_prepare_qa_prints_counts_and_checksums(fake, capsys):
    parser = argparse.ArgumentParser(prog="attnviz")
    add_data_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["data", "prepare", "qa", "--archive", str(fake), "--no-progress"])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    manifest = json.loads((cache_dir() / "data" / "qa" / "manifest.json").read_text())
    assert out.startswith("wrote: ")
    for name, entry in manifest["files"].items():
        assert name in out and entry["sha256"] in out and f"{entry['rows']:>7,} questions" in out
    assert args.run(args) == 0 and "already prepared" in capsys.readouterr().out
    bad = parser.parse_args(["data", "prepare", "qa", "--name", "bbc"])
    with pytest.raises(ValueError, match="--name bbc applies to `data prepare documents`"):
        bad.run(bad)


def test_offline_fetch_fails_with_what_to_run(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "BIGBENCH_SUBSET", tmp_path / "not-shipped.tar.xz")   # e.g. a wheel without data/
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no index at all: as offline as it gets
    parser = argparse.ArgumentParser(prog="attnviz")
    add_data_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["data", "prepare", "qa", "--no-progress"])
    with pytest.raises(FetchError, match=(
            r"(?s)bigbench-1\.0\.0\.tar\.gz \(358,249,635 bytes, sha256 1bb398a5"
            r".*no package index is configured.*Offline\? Copy .*downloads.*`attnviz data prepare qa` again")):
        args.run(args)
    assert not (cache / "downloads").exists()


def test_hub_source_offline_points_to_the_offline_one(cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(cache / "hf"))
    with pytest.raises(ConnectionError, match="source='bigbench'.*attnviz data prepare qa"):
        load_qa("test", source="hub")


@pytest.mark.slow
def test_real_bigbench_tasks(cache):
    prepared = prepare_qa(progress=False)        # the task files shipped in data/, members pinned by sha256
    assert prepared.manifest["source"]["archive"] == sources.BIGBENCH_SUBSET.name
    answers = prepared.manifest["source"]["answers"]
    assert {d: a["questions"] for d, a in answers.items()} == {
        "squad": 10_565, "new_wiki": 7_936, "nyt": 10_056, "reddit": 9_767, "amazon_reviews": 9_877}
    assert answers["amazon_reviews"]["realigned"] == 947 and all(a["unfound"] == 0 for a in answers.values())
    assert len(prepared.manifest["canary"]) == 1 and "NEVER APPEAR IN TRAINING CORPORA" in prepared.manifest["canary"][0]
    train, test = load_qa("train"), load_qa("test")
    assert len(train) == 37_636 and len(test) == 10_565
    assert test[0]["question"] == "Which NFL team represented the AFC at Super Bowl 50?"
    assert test[0]["answers"]["text"][0] == "Denver Broncos"
