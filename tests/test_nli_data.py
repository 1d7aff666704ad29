"""NLI data: prepared from a BIG-bench-shaped tarball the tests write themselves, checksummed,
split by claim / evidence group, loaded with ``datasets``. The real sdist is used only by the
``slow`` test, and only if it is already in the cache."""

import argparse
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from attnviz.tasks import nli, sources
from attnviz.cli.data import add_data_commands
from attnviz.tasks.nli import LABELS, load_nli, prepare_nli
from attnviz.tasks.sources import BIGBENCH_TASKS, FetchError, atomic_write, cache_dir

# The real sdist's location, resolved before any test points ATTNVIZ_CACHE elsewhere.
REAL_SDIST = cache_dir() / "downloads" / sources.BIGBENCH.filename
CANARY = "FAKE CANARY for tests"


def _vitaminc_task():
    """8 groups: claim g against two revisions of its evidence (True / False); groups 0-3 also
    have a second claim on the first evidence (Neither). 20 examples: 8 True, 8 False, 4 Neither."""
    examples, expected = [], {}
    for g in range(8):
        title = f"Page-COLON- {g}"
        ev_a, ev_b = f"Evidence {g} says the count is {g}0 .", f"Evidence {g} says the count is {g}5 ."
        claim = f"Claim {g}: the count is {g}0 ."
        pairs = [(ev_a, claim, "True"), (ev_b, claim, "False")]
        if g < 4:
            pairs.append((ev_a, f"Claim {g} about something else .", "Neither"))
        for ev, cl, lab in pairs:
            scores = {"True": 0, "False": 0, "Neither": 0}
            scores[lab] = 1
            examples.append({"input": f"{title}: {ev}\nClaim: {cl}", "target_scores": scores})
            expected[(ev, cl)] = {"True": 0, "Neither": 1, "False": 2}[lab]
    return {"canary": CANARY, "name": "vitaminc_fact_verification", "examples": examples}, expected


def _presupposition_task():
    """5 items x 2 variants (same example_id): 10 examples, labels cycling e / n / c."""
    examples, expected = [], {}
    for i in range(10):
        item = i // 2
        s1, s2 = f"Context {item}, variant {i % 2}. ", f"Statement {item}."
        lab = LABELS[i % 3]
        examples.append({"input": f"Sentence 1: {s1}\nSentence 2: {s2}\n\nThe answer is: ",
                         "target_scores": {name: int(name == lab) for name in LABELS},
                         "comment": {"example_id": str(item)}})
        expected[(s1.strip(), s2)] = LABELS.index(lab)
    return {"canary": CANARY, "name": "presuppositions_as_nli", "examples": examples}, expected


def _write_archive(path: Path) -> dict:
    vit, vit_expected = _vitaminc_task()
    pre, pre_expected = _presupposition_task()
    files = {
        "bigbench-1.0.0/README.md": b"fake",
        BIGBENCH_TASKS + "vitaminc_fact_verification/task.json": json.dumps(vit).encode(),
        BIGBENCH_TASKS + "other_task/task.json": b"{}",
        BIGBENCH_TASKS + "presuppositions_as_nli/task.json": json.dumps(pre).encode(),
    }
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return {"vitaminc": vit_expected, "presuppositions": pre_expected}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNVIZ_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def fake(tmp_path, cache):
    archive = tmp_path / "bigbench-fake.tar.gz"
    expected = _write_archive(archive)
    return archive, expected


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_prepare_counts_labels_groups_and_manifest(fake, cache):
    archive, expected = fake
    prepared = prepare_nli(progress=False, archive=archive)
    out = cache / "data" / "nli"
    assert prepared.fresh and prepared.directory == out
    # exactly the promised files: no temporary files left behind
    assert sorted(os.listdir(out)) == ["manifest.json", "presuppositions-test.jsonl", "presuppositions-train.jsonl",
                                       "vitaminc-test.jsonl", "vitaminc-train.jsonl"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == prepared.manifest
    assert manifest["source"]["sha256"] == sources.sha256_file(archive)
    assert manifest["source"]["examples"] == {"vitaminc": 20, "presuppositions": 10}
    assert manifest["canary"] == [CANARY] and manifest["labels"] == list(LABELS)

    for source, n in (("vitaminc", 20), ("presuppositions", 10)):
        train, test = (_rows(out / f"{source}-{s}.jsonl") for s in ("train", "test"))
        assert len(train) + len(test) == n and len(train) > len(test) > 0
        for split, rows in (("train", train), ("test", test)):
            entry = manifest["files"][f"{source}-{split}.jsonl"]
            assert entry["rows"] == len(rows)
            assert entry["sha256"] == sources.sha256_file(out / f"{source}-{split}.jsonl")
            assert entry["labels"] == {lab: sum(r["label"] == i for r in rows) for i, lab in enumerate(LABELS)}
        # label mapping: True -> entailment 0, Neither -> neutral 1, False -> contradiction 2
        assert {(r["premise"], r["hypothesis"]): r["label"] for r in train + test} == expected[source]
        # related pairs never straddle the split
        for key in ("premise", "hypothesis"):
            assert not {r[key] for r in train} & {r[key] for r in test}
    # vitaminc titles are kept (de-escaped) for with_title; groups of 3 and 2 rows: test has whole groups
    test = _rows(out / "vitaminc-test.jsonl")
    assert all(r["title"].startswith("Page: ") for r in test)
    assert len(test) == 3 or len(test) == 2  # round(0.1 * 20) = 2 rows wanted: one whole group
    assert nli.TEST_FRACTION == {"vitaminc": 0.1, "presuppositions": 0.2}


def test_split_is_by_connected_component_and_deterministic():
    keys = [(("p", "a"), ("h", "x")), (("p", "b"), ("h", "x")), (("p", "b"), ("h", "y")),
            (("p", "c"), ("h", "z")), (("p", "d"), ("h", "w"))]
    assert nli.group_ids(keys) == [0, 0, 0, 3, 4]  # a-x-b-y chain is one group
    sides = nli.split_by_group(keys, 0.2, seed=0)
    assert sides == nli.split_by_group(list(keys), 0.2, seed=0)
    assert len({sides[0], sides[1], sides[2]}) == 1 and sides.count("test") >= 1
    with pytest.raises(ValueError, match="test_fraction"):
        nli.split_by_group(keys, 1.0)


def test_load_nli_features_limit_balanced_title(fake):
    archive, expected = fake
    prepare_nli(progress=False, archive=archive)
    ds = load_nli("train")
    assert ds.column_names == ["premise", "hypothesis", "label"]
    assert ds.features["label"].names == list(LABELS)
    assert {(r["premise"], r["hypothesis"]): r["label"] for r in ds} == {
        k: v for k, v in expected["vitaminc"].items() if k[0] in set(ds["premise"])}
    assert len(load_nli("train")) + len(load_nli("test")) == 20
    assert len(load_nli("test", source="presuppositions")) + len(load_nli("train", source="presuppositions")) == 10

    five = load_nli("train", limit=5, seed=1)
    assert len(five) == 5 and five["hypothesis"] == load_nli("train", limit=5, seed=1)["hypothesis"]
    bal = load_nli("train", balanced=True, seed=0)
    counts = [list(bal["label"]).count(i) for i in range(3)]
    assert counts[0] == counts[1] == counts[2] >= 1
    assert len(load_nli("train", balanced=True, limit=3)) == 3

    titled = load_nli("train", with_title=True)
    assert all(p.startswith("Page: ") and p.endswith(q) for p, q in zip(titled["premise"], ds["premise"]))
    with pytest.raises(ValueError, match="with_title"):
        load_nli("train", source="presuppositions", with_title=True)
    with pytest.raises(ValueError, match="allowed: train, test"):
        load_nli("dev")
    with pytest.raises(ValueError, match="unknown NLI source"):
        load_nli("train", source="rte")
    with pytest.raises(ValueError, match="limit must be >= 3"):
        load_nli("train", balanced=True, limit=2)


def test_tampered_file_is_refused_and_prepare_rebuilds(fake, cache, monkeypatch):
    archive, _ = fake
    prepare_nli(progress=False, archive=archive)
    path = cache / "data" / "nli" / "vitaminc-train.jsonl"
    path.write_text(path.read_text().replace("Evidence", "Evidenze", 1))
    with pytest.raises(ValueError, match=r"checksum mismatch .*vitaminc-train\.jsonl.*attnviz data prepare nli --force"):
        load_nli("train")
    load_nli("test")  # other files still verify
    path.unlink()
    with pytest.raises(ValueError, match="missing"):
        load_nli("train")
    again = prepare_nli(progress=False, archive=archive)  # an invalid copy is rebuilt without --force
    assert again.fresh and len(load_nli("train")) + len(load_nli("test")) == 20
    (cache / "data" / "nli" / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON.*--force"):
        load_nli("train")


def test_valid_cache_is_reused_without_reading_the_archive(fake, monkeypatch):
    archive, _ = fake
    first = prepare_nli(progress=False, archive=archive)

    def boom(*a, **k):
        raise AssertionError("the archive was read again")

    monkeypatch.setattr(nli, "read_bigbench", boom)
    again = prepare_nli(progress=False, archive=archive)
    assert not again.fresh and again.manifest == first.manifest
    with pytest.raises(AssertionError, match="read again"):
        prepare_nli(progress=False, archive=archive, force=True)


def test_not_prepared_says_what_to_run(cache):
    with pytest.raises(FileNotFoundError, match="attnviz data prepare nli"):
        load_nli("train")


def test_atomic_write_leaves_old_file_and_no_temp_on_failure(tmp_path):
    target = tmp_path / "f.jsonl"
    atomic_write(target, b"old\n")

    def chunks():
        yield b"new part\n"
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, chunks())
    assert target.read_bytes() == b"old\n" and os.listdir(tmp_path) == ["f.jsonl"]


def test_read_members_one_pass_and_missing(fake):
    archive, _ = fake
    want = [BIGBENCH_TASKS + "presuppositions_as_nli/task.json", "bigbench-1.0.0/README.md"]
    got = sources.read_members(archive, want, progress=False)
    assert list(got) == want and got["bigbench-1.0.0/README.md"] == b"fake"
    with pytest.raises(KeyError, match="nope.json"):
        sources.read_members(archive, want + ["nope.json"], progress=False)


def test_offline_fetch_fails_with_what_to_run(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "BIGBENCH_SUBSET", tmp_path / "not-shipped.tar.xz")   # e.g. a wheel without data/
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no index at all: as offline as it gets
    parser = argparse.ArgumentParser(prog="attnviz")
    add_data_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["data", "prepare", "nli", "--no-progress"])
    with pytest.raises(FetchError, match=(
            r"(?s)bigbench-1\.0\.0\.tar\.gz \(358,249,635 bytes, sha256 1bb398a5"
            r".*no package index is configured.*Offline\? Copy .*downloads.*`attnviz data prepare nli` again")):
        args.run(args)
    assert isinstance(FetchError("x"), OSError)  # attnviz's main prints OSErrors as one line, exit 1
    assert not (cache / "downloads").exists()  # nothing half-written: the folder is not even made


def test_cli_prepare_prints_counts_and_checksums(fake, capsys):
    archive, _ = fake
    parser = argparse.ArgumentParser(prog="attnviz")
    add_data_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["data", "prepare", "nli", "--archive", str(archive), "--no-progress"])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    manifest = json.loads((cache_dir() / "data" / "nli" / "manifest.json").read_text())
    assert out.startswith("wrote: ")
    for name, entry in manifest["files"].items():
        assert name in out and entry["sha256"] in out and f"{entry['rows']:>7,} rows" in out
    assert args.run(args) == 0 and "already prepared" in capsys.readouterr().out


def test_hub_sources_offline_point_to_the_offline_ones(cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(cache / "hf"))
    with pytest.raises(ConnectionError, match="source='vitaminc' or 'presuppositions'"):
        load_nli("train", source="snli")


@pytest.mark.slow
def test_real_bigbench_tasks(cache):
    # an empty cache, no network: the BIG-bench task files shipped in data/ (each member's sha256
    # pinned; the 358 MB sdist left the package index on 2026-12-04)
    prepared = prepare_nli(progress=False)
    assert prepared.manifest["source"]["archive"] == sources.BIGBENCH_SUBSET.name
    assert not (cache / "downloads").exists()                        # nothing was downloaded
    files = prepared.manifest["files"]
    assert prepared.manifest["source"]["examples"] == {"vitaminc": 54_668, "presuppositions": 735}
    vit = {lab: files["vitaminc-train.jsonl"]["labels"][lab] + files["vitaminc-test.jsonl"]["labels"][lab]
           for lab in LABELS}
    assert vit == {"entailment": 27_242, "neutral": 7_257, "contradiction": 20_169}
    assert files["presuppositions-train.jsonl"]["rows"] + files["presuppositions-test.jsonl"]["rows"] == 735
    assert len(prepared.manifest["canary"]) == 1 and "NEVER APPEAR IN TRAINING CORPORA" in prepared.manifest["canary"][0]
    train, test = load_nli("train"), load_nli("test")
    assert len(train) + len(test) == 54_668 and 0.09 < len(test) / 54_668 < 0.11
    assert not set(train["premise"]) & set(test["premise"])
    assert not set(train["hypothesis"]) & set(test["hypothesis"])


def test_shipped_bigbench_members_are_pinned_and_checked(tmp_path, monkeypatch):
    raw = sources.read_bigbench(sources.BIGBENCH_SUBSET, list(sources.BIGBENCH_MEMBER_SHA256), progress=False)
    assert {m: __import__("hashlib").sha256(b).hexdigest() for m, b in raw.items()} == sources.BIGBENCH_MEMBER_SHA256
    if REAL_SDIST.is_file():   # the full sdist, where a cache still has it: byte-identical members
        assert sources.read_members(REAL_SDIST, list(raw), progress=False) == raw
    # a damaged shipped file is named, with the fix
    import tarfile, io
    bad = tmp_path / sources.BIGBENCH_SUBSET.name
    member = next(iter(sources.BIGBENCH_MEMBER_SHA256))
    with tarfile.open(bad, "w:xz") as tf:
        info = tarfile.TarInfo(member); info.size = 3
        tf.addfile(info, io.BytesIO(b"bad"))
    monkeypatch.setattr(sources, "BIGBENCH_SUBSET", bad)
    with pytest.raises(ValueError, match="the shipped file is damaged; restore it with git checkout"):
        sources.read_bigbench(bad, [member], progress=False)
