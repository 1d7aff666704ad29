"""Natural language inference data: premise / hypothesis / label, with or without the hub.

Offline sources come from the BIG-bench source distribution on the package index, prepared once
by :func:`prepare_nli` (or ``attnviz data prepare nli``) into checksummed JSONL files in the cache:

===================  ========  ===================================================================
source               pairs     from
===================  ========  ===================================================================
``vitaminc``         54,668    ``vitaminc_fact_verification``: Wikipedia evidence + claim,
                               True / False / Neither -> entailment / contradiction / neutral
``presuppositions``  735       ``presuppositions_as_nli``: Sentence 1 / Sentence 2, 3-way
``snli``, ``mnli``   hub       ``datasets.load_dataset`` of the hub datasets (online only);
                               mnli's ``test`` is ``validation_matched`` (its test labels are hidden)
===================  ========  ===================================================================

Labels are ints ``0 entailment, 1 neutral, 2 contradiction`` (SNLI / MNLI's order); the
``ClassLabel`` feature carries the names.

Splits. BIG-bench gives no train/test split. VitaminC claims come in contrastive pairs (one claim
against two revisions of the evidence, one evidence against several claims), so the split is by
*group*: connected components of rows that share a claim or an evidence text (presuppositions: that
share a sentence or an ``example_id``). Components are ordered by a seeded hash of their content and
filled into ``test`` until :data:`TEST_FRACTION` of the rows is reached, so related pairs never
straddle the split and the split does not depend on file order. No premise and no hypothesis
appears in both splits.

The BIG-bench task files carry a canary line asking that they never appear in training corpora;
the prepared files live in the cache, outside the repository (see ``data/README.md``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from pathlib import Path
from typing import Callable, Sequence

from ..checks import check_int
from .sources import Prepared, BIGBENCH, BIGBENCH_TASKS, assign_test_groups, atomic_write, atomic_write_json, cache_dir, data_dir, \
    bigbench_archive, read_bigbench, read_manifest_file, sha256_file, verify_listed_file

LABELS = ("entailment", "neutral", "contradiction")
SOURCES = ("vitaminc", "presuppositions", "snli", "mnli")
#: Sources prepared from the BIG-bench archive (no hub needed).
OFFLINE_SOURCES = ("vitaminc", "presuppositions")
SPLITS = ("train", "test")
#: Fields of each prepared JSONL row; ``load_nli`` returns premise / hypothesis / label.
COLUMNS = ("premise", "hypothesis", "label", "title")
#: Share of rows (by group) that goes to ``test``.
TEST_FRACTION = {"vitaminc": 0.1, "presuppositions": 0.2}
#: Seed of the group hash that decides the split (fixed: the split is part of the data).
SPLIT_SEED = 0
#: Name of the prepared data set: ``<cache>/data/nli``.
NAME = "nli"
MANIFEST = "manifest.json"
FORMAT = 1

#: Member of the BIG-bench archive, under ``benchmark_tasks/``, for each offline source.
MEMBERS = {
    "vitaminc": "vitaminc_fact_verification/task.json",
    "presuppositions": "presuppositions_as_nli/task.json",
}
_HUB = {  # source: (dataset id, config, {split: hub split})
    "snli": ("stanfordnlp/snli", None, {"train": "train", "test": "test"}),
    "mnli": ("nyu-mll/glue", "mnli", {"train": "train", "test": "validation_matched"}),
}
_VITAMINC_LABELS = {"True": "entailment", "False": "contradiction", "Neither": "neutral"}
_PRESUPPOSITION = re.compile(r"\ASentence 1: (.*)\nSentence 2: (.*?)\n\nThe answer is: ?\Z", re.S)
LICENCES = {
    "bigbench": "BIG-bench (github.com/google/BIG-bench): Apache License 2.0 (the sdist's PKG-INFO says "
                "'License: UNKNOWN'; its setup.py carries the Apache 2.0 header)",
    "vitaminc": "VitaminC (Schuster et al., NAACL 2021): its authors' DATA_LICENSE says the annotations incorporate "
                "Wikipedia material and are available under the applicable Wikipedia article pages' terms, or "
                "otherwise CC BY-SA 3.0",
    "presuppositions": "presuppositions_as_nli: no source or licence is named inside the sdist; covered by "
                       "BIG-bench's Apache 2.0 as far as the package says",
}


# ---- parsing ----------------------------------------------------------------------------------
def _one_label(scores: dict, mapping: dict | None, where: str) -> int:
    positive = [k for k, v in scores.items() if v == 1]
    if len(positive) != 1 or set(scores) - set(mapping or dict.fromkeys(LABELS)):
        raise ValueError(f"{where}: expected exactly one positive target among "
                         f"{sorted(mapping or LABELS)}, got target_scores={scores}")
    name = mapping[positive[0]] if mapping else positive[0]
    return LABELS.index(name)


def parse_vitaminc(task: dict) -> list[dict]:
    """Rows ``{premise, hypothesis, label, title, keys}`` from BIG-bench's ``vitaminc_fact_verification``.

    ``input`` is ``"<page title>: <evidence>\\nClaim: <claim>"``; premise = evidence, hypothesis =
    claim, title = the Wikipedia page (titles write ``:`` as ``-COLON-``, so the first ``": "`` ends
    the title; ``-COLON-``, ``-LRB-``, ``-RRB-`` are written back as ``:``, ``(``, ``)``).
    ``keys`` tie rows that must stay on one side of the split: the claim and the evidence.
    """
    rows = []
    for i, ex in enumerate(task["examples"]):
        context, sep, claim = ex["input"].partition("\nClaim: ")
        title, colon, evidence = context.partition(": ")
        if not sep or not colon:
            raise ValueError(f"vitaminc example {i}: input is not '<title>: <evidence>\\nClaim: <claim>': {ex['input'][:120]!r}")
        label = _one_label(ex["target_scores"], _VITAMINC_LABELS, f"vitaminc example {i}")
        rows.append({"premise": evidence, "hypothesis": claim, "label": label, "title": _untoken(title),
                     "keys": (("premise", evidence), ("hypothesis", claim))})
    return rows


def parse_presuppositions(task: dict) -> list[dict]:
    """Rows from BIG-bench's ``presuppositions_as_nli``: ``input`` is
    ``"Sentence 1: <premise>\\nSentence 2: <hypothesis>\\n\\nThe answer is: "``; labels are the NLI names.
    Rows sharing a sentence or a ``comment.example_id`` (variants of one item) form a group."""
    rows = []
    for i, ex in enumerate(task["examples"]):
        m = _PRESUPPOSITION.match(ex["input"])
        if not m:
            raise ValueError(f"presuppositions example {i}: unexpected input {ex['input'][:120]!r}")
        premise, hypothesis = m.group(1).strip(), m.group(2).strip()
        keys = [("premise", premise), ("hypothesis", hypothesis)]
        example_id = (ex.get("comment") or {}).get("example_id")
        if example_id is not None:
            keys.append(("example_id", str(example_id)))
        rows.append({"premise": premise, "hypothesis": hypothesis, "title": "",
                     "label": _one_label(ex["target_scores"], None, f"presuppositions example {i}"),
                     "keys": tuple(keys)})
    return rows


def _untoken(title: str) -> str:
    for token, char in (("-COLON-", ":"), ("-LRB-", "("), ("-RRB-", ")"), ("-LSB-", "["), ("-RSB-", "]")):
        title = title.replace(token, char)
    return title


_PARSERS: dict[str, Callable[[dict], list[dict]]] = {"vitaminc": parse_vitaminc, "presuppositions": parse_presuppositions}


# ---- splitting --------------------------------------------------------------------------------
def group_ids(keys: Sequence[Sequence]) -> list[int]:
    """Connected components of rows that share any key: ``out[i]`` is the smallest row index of
    row ``i``'s component (union-find over the keys)."""
    parent = list(range(len(keys)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict = {}
    for i, row_keys in enumerate(keys):
        for k in row_keys:
            j = first.setdefault(k, i)
            a, b = find(i), find(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return [find(i) for i in range(len(keys))]


def split_by_group(keys: Sequence[Sequence], test_fraction: float, seed: int = SPLIT_SEED) -> list[str]:
    """``"train"`` / ``"test"`` for each row; whole groups (:func:`group_ids`) go to one side.

    Groups are ordered by ``sha256(seed, first row's keys)`` and put into ``test`` until at least
    ``round(test_fraction * rows)`` rows are there. Deterministic, independent of file order."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    groups = group_ids(keys)
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)

    out = ["train"] * len(keys)
    assign_test_groups(out, members, seed, key=lambda g: keys[g], want=round(test_fraction * len(keys)))
    return out


# ---- preparing ----------------------------------------------------------------------------------
def _file_name(source: str, split: str) -> str:
    return f"{source}-{split}.jsonl"


def _jsonl(rows) -> bytes:
    return b"".join((json.dumps(r, ensure_ascii=False) + "\n").encode() for r in rows)


def prepare_nli(force: bool = False, progress: bool = True, *, archive: str | Path | None = None) -> Prepared:
    """Build ``<cache>/data/nli`` from the BIG-bench sdist: ``vitaminc-{train,test}.jsonl``,
    ``presuppositions-{train,test}.jsonl`` and ``manifest.json``.

    Args:
        force: rebuild even if a valid prepared copy is there.
        progress: tqdm bars while reading the archive and writing files.
        archive: a local BIG-bench sdist to read instead of ``<cache>/downloads/bigbench-1.0.0.tar.gz``
            (which is fetched from the package index when missing, and checked against its known sha256).
    Returns:
        :class:`Prepared`. Without ``force``, a prepared copy that passes its checksums (and came
        from the same archive, if ``archive`` is given) is reused without reading the archive.
    Raises:
        FetchError (a ``ConnectionError``): the archive is not cached and cannot be fetched (offline);
            the message says what to run.
    Every file is written to a temporary file and renamed; the manifest goes last, so an interrupted
    run leaves no manifest and loaders say the data is not prepared.
    """
    from tqdm.auto import tqdm

    out = data_dir(NAME)
    if not force:
        try:
            manifest = verify_nli()
        except (OSError, ValueError):
            manifest = None
        if manifest is not None and (archive is None or manifest["source"]["sha256"] == sha256_file(archive)):
            return Prepared(out, manifest, fresh=False)

    path = Path(archive) if archive is not None else bigbench_archive(progress=progress)
    archive_sha = sha256_file(path)
    members = {source: BIGBENCH_TASKS + m for source, m in MEMBERS.items()}
    raw = read_bigbench(path, list(members.values()), progress=progress)

    (out / MANIFEST).unlink(missing_ok=True)  # from here on the old copy is invalid
    files, canaries, counts = {}, set(), {}
    bar = tqdm(total=2 * len(members), desc="writing nli", unit="file", disable=not progress)
    for source, member in members.items():
        task = json.loads(raw[member])
        if task.get("canary"):
            canaries.add(task["canary"])
        rows = _PARSERS[source](task)
        sides = split_by_group([r["keys"] for r in rows], TEST_FRACTION[source])
        counts[source] = len(rows)
        for split in SPLITS:
            chosen = [{k: r[k] for k in COLUMNS}
                      for r, s in zip(rows, sides) if s == split]
            name = _file_name(source, split)
            data = _jsonl(chosen)
            atomic_write(out / name, data)
            files[name] = {
                "source": source, "split": split, "rows": len(chosen), "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "labels": {lab: sum(r["label"] == i for r in chosen) for i, lab in enumerate(LABELS)},
            }
            bar.update(1)
    bar.close()

    from .. import __version__

    manifest = {
        "format": FORMAT,
        "name": NAME,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "attnviz_version": __version__,
        "labels": list(LABELS),
        "columns": list(COLUMNS),
        "source": {
            "package": BIGBENCH.package, "version": BIGBENCH.version, "archive": path.name,
            "sha256": archive_sha, "bytes": path.stat().st_size,
            "members": {m: hashlib.sha256(raw[m]).hexdigest() for m in members.values()},
            "examples": counts,
        },
        "split": {"method": "connected components of rows sharing a premise or hypothesis (presuppositions: "
                            "or example_id), ordered by seeded sha256, filled into test up to the fraction",
                  "seed": SPLIT_SEED, "test_fraction": dict(TEST_FRACTION)},
        "canary": sorted(canaries),
        "licences": dict(LICENCES),
        "files": files,
    }
    atomic_write_json(out / MANIFEST, manifest)
    return Prepared(out, manifest, fresh=True)


# ---- verifying and loading ------------------------------------------------------------------------
def _fix() -> str:
    return "run `attnviz data prepare nli --force` (or attnviz.tasks.prepare_nli(force=True)) to rebuild it"


def read_manifest() -> dict:
    """The manifest of ``<cache>/data/nli`` (no checksums checked).

    Raises:
        FileNotFoundError: not prepared yet (says what to run).
        ValueError: the manifest is unreadable or of another format.
    """
    return read_manifest_file(
        data_dir(NAME) / MANIFEST, fmt=FORMAT, what=f"an attnviz NLI manifest of format {FORMAT}", fix=_fix(),
        missing=(f"the offline NLI data is not prepared ({data_dir(NAME) / MANIFEST} is missing); run `attnviz data "
                 f"prepare nli` (or attnviz.tasks.prepare_nli()): it reads the BIG-bench sdist (358 MB, fetched once "
                 f"from the package index into {data_dir(NAME).parent.parent / 'downloads'}) and writes the JSONL files"))


def verify_file(name: str, manifest: dict | None = None) -> Path:
    """Path of prepared file ``name`` after checking its sha256 against the manifest.

    Raises:
        ValueError: the file is missing, or its checksum differs (edited, truncated, damaged).
    """
    manifest = manifest if manifest is not None else read_manifest()
    return verify_listed_file(data_dir(NAME), name, manifest, label="NLI", fix=_fix())


def verify_nli() -> dict:
    """Check every prepared file against the manifest; returns the manifest."""
    manifest = read_manifest()
    for name in manifest["files"]:
        verify_file(name, manifest)
    return manifest


def nli_features(title: bool = False):
    """``datasets.Features``: premise, hypothesis (str), label (ClassLabel of :data:`LABELS`)
    [, title (str): the prepared files' extra field]."""
    from datasets import ClassLabel, Features, Value

    cols = {"premise": Value("string"), "hypothesis": Value("string"), "label": ClassLabel(names=list(LABELS))}
    if title:
        cols["title"] = Value("string")
    return Features(cols)


def load_nli(split: str = "train", source: str = "vitaminc", limit: int | None = None,
             balanced: bool = False, seed: int = 0, *, with_title: bool = False):
    """Premise / hypothesis / label pairs as a ``datasets.Dataset``.

    Args:
        split: ``"train"`` or ``"test"`` (mnli: ``test`` is ``validation_matched``).
        source: ``"vitaminc"`` or ``"presuppositions"`` (offline, from :func:`prepare_nli`'s cache,
            checksums verified on every load), ``"snli"`` or ``"mnli"`` (hub, online).
        limit: at most this many rows, drawn at random with ``seed`` (None: all rows, in file order).
        balanced: the same number of rows per label: ``min(smallest class, limit // 3)`` each,
            shuffled with ``seed``.
        seed: seed of the shuffling for ``limit`` / ``balanced``.
        with_title: vitaminc only: premise = ``"<Wikipedia page title>: <evidence>"`` (BIG-bench's
            form). Evidence sentences often say "the show" or "it" and only the title names the
            subject the claim is about.
    Returns:
        ``datasets.Dataset`` with columns ``premise`` (str), ``hypothesis`` (str), ``label``
        (``ClassLabel``: 0 entailment, 1 neutral, 2 contradiction).
    Raises:
        FileNotFoundError: offline source not prepared (says to run ``attnviz data prepare nli``).
        ValueError: a prepared file fails its checksum (says to rerun with ``--force``); bad arguments.
        ConnectionError: ``snli`` / ``mnli`` while the hub cannot be reached (points to the offline sources).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    if source not in SOURCES:
        raise ValueError(f"unknown NLI source {source!r}; allowed: {', '.join(SOURCES)} "
                         f"(offline: {', '.join(OFFLINE_SOURCES)})")
    if limit is not None:
        check_int("limit", limit, 3 if balanced else 1, none_ok=True)
    check_int("seed", seed, 0)
    import datasets

    if with_title and source != "vitaminc":
        raise ValueError(f"with_title=True applies to source='vitaminc' only, not {source!r}")
    if source in OFFLINE_SOURCES:
        path = verify_file(_file_name(source, split))
        ds = datasets.load_dataset("json", data_files=str(path), split="train", features=nli_features(title=True),
                                   cache_dir=str(cache_dir() / "datasets"))
        ds = _subset(ds, limit, balanced, seed)
        if with_title:
            ds = ds.map(lambda ps, ts: {"premise": [f"{t}: {p}" if t else p for p, t in zip(ps, ts)]},
                        input_columns=["premise", "title"], batched=True, batch_size=10_000,
                        desc="premise = title: evidence")
        return ds.remove_columns("title")
    return _subset(_load_hub(source, split, nli_features()), limit, balanced, seed)


def _load_hub(source: str, split: str, features):
    import datasets

    repo, config, splits = _HUB[source]
    try:
        ds = datasets.load_dataset(repo, config, split=splits[split])
    except (OSError, ValueError) as exc:  # ConnectionError, offline mode, not found in an empty cache
        raise ConnectionError(
            f"could not load {source} ({repo}{'/' + config if config else ''}, split {splits[split]!r}) from the "
            f"Hugging Face hub: {type(exc).__name__}: {str(exc)[:200]}. Offline? Use source='vitaminc' or "
            f"'presuppositions', prepared from a package with `attnviz data prepare nli`") from exc
    ds = ds.filter(lambda label: label >= 0, input_columns="label")  # SNLI: -1 = no gold label
    return ds.select_columns(["premise", "hypothesis", "label"]).cast(features)


def _subset(ds, limit: int | None, balanced: bool, seed: int):
    if not balanced:
        if limit is None or limit >= len(ds):
            return ds if limit is None else ds.shuffle(seed=seed)
        return ds.shuffle(seed=seed).select(range(limit))
    ds = ds.shuffle(seed=seed)
    labels = list(ds["label"])
    counts = [labels.count(i) for i in range(len(LABELS))]
    per = min(counts) if limit is None else min(min(counts), limit // len(LABELS))
    if per == 0:
        raise ValueError(f"balanced=True needs every label; counts here are "
                         f"{dict(zip(LABELS, counts))}")
    seen = [0] * len(LABELS)
    keep = []
    for i, label in enumerate(labels):
        if seen[label] < per:
            seen[label] += 1
            keep.append(i)
    return ds.select(keep)
