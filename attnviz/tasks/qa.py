"""Extractive question answering: SQuAD v1.1 dev and SQuADShifts, with or without the hub.

Offline data comes from the BIG-bench source distribution on the package index (the same archive
as the NLI data), prepared once by :func:`prepare_qa` (or ``attnviz data prepare qa``) into
checksummed JSONL files in the cache. Every file is in SQuAD v1.1 format
(``data -> paragraphs -> context, qas -> question, id, answers[text, answer_start]``):

==================  =========  =================================================================
file (domain)       questions  from ``bigbench/benchmark_tasks/squad_shifts/``
==================  =========  =================================================================
``squad``           10,565     ``squaddev_v1.1.json``: the SQuAD v1.1 dev set (Wikipedia)
``new_wiki``        7,936      ``new_wiki_v1.0.json``: new Wikipedia articles
``nyt``             10,056     ``nyt_v1.0.json``: New York Times articles
``reddit``          9,767      ``reddit_v1.0.json``: Reddit posts
``amazon_reviews``  9,877      ``amazon_reviews_v1.0.json``: Amazon product reviews
==================  =========  =================================================================

(BIG-bench dropped questions whose answers its cleaning removed; the ``*_removed.json`` members
list them: 5 fewer SQuAD dev questions than the official 10,570.) Splits: ``train`` is the four
shift domains (37,636 questions), ``test`` is SQuAD v1.1 dev — train on other domains, evaluate
on SQuAD's Wikipedia. ``load_qa(source="hub")`` gives ``datasets.load_dataset("squad")``'s
``train`` / ``validation`` through the same function (online only).

Rows are ``{id, title, context, question, answers: {text: [...], answer_start: [...]}, domain}``
(the hub's ``squad`` columns plus ``domain``). Some answers' ``answer_start`` in the shift sets
do not point at their text (947 in ``amazon_reviews``: the context was cleaned after the offsets
were taken); :func:`prepare_qa` moves each such start to the occurrence of the text nearest to
the given offset, and counts them in the manifest (``realigned``); answers whose text is not in
the context at all keep ``answer_start`` -1 (EM/F1 still use their text).

Tokenization for a span head: :mod:`attnviz.tasks.qa_features`; decoding and exact match / F1:
:mod:`attnviz.tasks.qa_metrics`.

The BIG-bench task files carry a canary line asking that they never appear in training corpora;
the prepared files live in the cache, outside the repository (see ``data/README.md``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from pathlib import Path
from typing import Sequence

from ..checks import check_int
from .sources import Prepared, BIGBENCH, BIGBENCH_TASKS, atomic_write, atomic_write_json, cache_dir, data_dir, bigbench_archive, \
    read_bigbench, read_manifest_file, sha256_file, verify_listed_file

#: Name of the prepared data set: ``<cache>/data/qa``.
NAME = "qa"
MANIFEST = "manifest.json"
FORMAT = 1
#: Domain -> member of the BIG-bench archive under ``benchmark_tasks/``.
MEMBERS = {
    "squad": "squad_shifts/squaddev_v1.1.json",
    "new_wiki": "squad_shifts/new_wiki_v1.0.json",
    "nyt": "squad_shifts/nyt_v1.0.json",
    "reddit": "squad_shifts/reddit_v1.0.json",
    "amazon_reviews": "squad_shifts/amazon_reviews_v1.0.json",
}
DOMAINS = tuple(MEMBERS)
#: The SQuADShifts domains: the offline ``train`` split.
SHIFT_DOMAINS = ("new_wiki", "nyt", "reddit", "amazon_reviews")
#: Split -> domains read for it (offline).
SPLIT_DOMAINS = {"train": SHIFT_DOMAINS, "test": ("squad",)}
SPLITS = ("train", "test")
SOURCES = ("bigbench", "hub")
COLUMNS = ("id", "title", "context", "question", "answers", "domain")
_HUB = ("rajpurkar/squad", {"train": "train", "test": "validation"})
LICENCES = {
    "bigbench": "BIG-bench (github.com/google/BIG-bench): Apache License 2.0 (task code and collection)",
    "squad": "SQuAD v1.1 (Rajpurkar et al., EMNLP 2016): CC BY-SA 4.0 (rajpurkar.github.io/SQuAD-explorer); "
             "contexts are Wikipedia paragraphs",
    "squadshifts": "SQuADShifts (Miller, Krauth, Recht, Schmidt, ICML 2020): CC BY 4.0 per its hub data card "
                   "(ludwigschmidt/squadshifts); the NYT, Reddit and Amazon texts are third-party content",
}


def _file_name(domain: str) -> str:
    return f"{domain}.jsonl"


# ---- parsing ------------------------------------------------------------------------------------
def realign(context: str, text: str, start: int) -> int:
    """The character offset of ``text`` in ``context`` nearest to ``start`` (``start`` itself when it
    points at ``text``); -1 when ``text`` does not occur in ``context``."""
    if 0 <= start and context[start:start + len(text)] == text:
        return start
    hits = [m.start() for m in re.finditer(re.escape(text), context)] if text else []
    return min(hits, key=lambda h: (abs(h - start), h)) if hits else -1


def parse_squad(doc: dict, domain: str) -> tuple[list[dict], dict]:
    """Rows ``{id, title, context, question, answers, domain}`` from a SQuAD-format document, and
    counts ``{"questions", "answers", "realigned", "unfound"}`` of the answer offsets fixed by
    :func:`realign`.

    Raises:
        ValueError: not SQuAD format (no ``data`` list of articles with ``paragraphs``).
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise ValueError(f"{domain}: not a SQuAD-format document (expected a top-level 'data' list), "
                         f"got keys {sorted(doc) if isinstance(doc, dict) else type(doc).__name__}")
    rows, counts = [], {"questions": 0, "answers": 0, "realigned": 0, "unfound": 0}
    for a, article in enumerate(doc["data"]):
        for p, para in enumerate(article.get("paragraphs", ())):
            context = para["context"]
            for qa in para["qas"]:
                texts, starts = [], []
                for ans in qa["answers"]:
                    start = realign(context, ans["text"], int(ans["answer_start"]))
                    counts["answers"] += 1
                    counts["realigned"] += start != int(ans["answer_start"]) and start >= 0
                    counts["unfound"] += start < 0
                    texts.append(ans["text"])
                    starts.append(start)
                rows.append({"id": str(qa["id"]), "title": article.get("title") or "", "context": context,
                             "question": qa["question"], "answers": {"text": texts, "answer_start": starts},
                             "domain": domain})
    counts["questions"] = len(rows)
    return rows, counts


# ---- preparing ----------------------------------------------------------------------------------
def _jsonl(rows) -> bytes:
    return b"".join((json.dumps(r, ensure_ascii=False) + "\n").encode() for r in rows)


def _split_of(domain: str) -> str:
    return next(s for s, ds in SPLIT_DOMAINS.items() if domain in ds)


def prepare_qa(force: bool = False, progress: bool = True, *, archive: str | Path | None = None) -> Prepared:
    """Build ``<cache>/data/qa`` from the BIG-bench sdist: one ``<domain>.jsonl`` per domain
    (:data:`DOMAINS`) and ``manifest.json``.

    Args:
        force: rebuild even if a valid prepared copy is there.
        progress: tqdm bars while reading the archive and writing files.
        archive: a local BIG-bench sdist to read instead of ``<cache>/downloads/bigbench-1.0.0.tar.gz``
            (which is fetched from the package index when missing, and checked against its known sha256).
    Returns:
        :class:`Prepared`. Idempotent: without ``force``, a prepared copy that passes its checksums
        (and came from the same archive, if ``archive`` is given) is reused without reading the archive.
    Raises:
        FetchError (a ``ConnectionError``): the archive is not cached and cannot be fetched (offline);
            the message says what to run.
    Every file is written to a temporary file and renamed, the manifest last, so an interrupted run
    leaves no manifest and :func:`load_qa` says the data is not prepared.
    """
    from tqdm.auto import tqdm

    out = data_dir(NAME)
    if not force:
        try:
            manifest = verify_qa()
        except (OSError, ValueError):
            manifest = None
        if manifest is not None and (archive is None or manifest["source"]["sha256"] == sha256_file(archive)):
            return Prepared(out, manifest, fresh=False, unit="questions")

    path = Path(archive) if archive is not None else bigbench_archive(progress=progress,
                                                                      command="attnviz data prepare qa")
    archive_sha = sha256_file(path)
    members = {d: BIGBENCH_TASKS + m for d, m in MEMBERS.items()}
    raw = read_bigbench(path, list(members.values()), progress=progress)

    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # from here on the old copy is invalid
    files, canaries, counts = {}, set(), {}
    for domain, member in tqdm(members.items(), desc="writing qa", unit="file", disable=not progress):
        doc = json.loads(raw[member])
        if doc.get("canary"):
            canaries.add(doc["canary"])
        rows, counts[domain] = parse_squad(doc, domain)
        data = _jsonl(rows)
        name = _file_name(domain)
        atomic_write(out / name, data)
        files[name] = {"domain": domain, "split": _split_of(domain), "rows": len(rows), "bytes": len(data),
                       "sha256": hashlib.sha256(data).hexdigest(),
                       "version": str(doc.get("version", ""))}

    from .. import __version__

    manifest = {
        "format": FORMAT,
        "name": NAME,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "attnviz_version": __version__,
        "columns": list(COLUMNS),
        "splits": {s: list(ds) for s, ds in SPLIT_DOMAINS.items()},
        "source": {
            "package": BIGBENCH.package, "version": BIGBENCH.version, "archive": path.name,
            "sha256": archive_sha, "bytes": path.stat().st_size,
            "members": {m: hashlib.sha256(raw[m]).hexdigest() for m in members.values()},
            "answers": counts,
        },
        "realign": "an answer_start that does not point at its text is moved to the nearest occurrence of the "
                   "text; -1 if the text is not in the context",
        "canary": sorted(canaries),
        "licences": dict(LICENCES),
        "files": files,
    }
    atomic_write_json(out / MANIFEST, manifest)
    return Prepared(out, manifest, fresh=True, unit="questions")


# ---- verifying and loading ------------------------------------------------------------------------
def _fix() -> str:
    return "run `attnviz data prepare qa --force` (or attnviz.tasks.prepare_qa(force=True)) to rebuild it"


def read_manifest() -> dict:
    """The manifest of ``<cache>/data/qa`` (no checksums checked).

    Raises:
        FileNotFoundError: not prepared yet (says what to run).
        ValueError: the manifest is unreadable or of another format.
    """
    return read_manifest_file(
        data_dir(NAME) / MANIFEST, fmt=FORMAT, what=f"an attnviz QA manifest of format {FORMAT}", fix=_fix(),
        missing=(f"the offline QA data is not prepared ({data_dir(NAME) / MANIFEST} is missing); run `attnviz data "
                 f"prepare qa` (or attnviz.tasks.prepare_qa()): it reads SQuAD v1.1 dev and SQuADShifts from the "
                 f"BIG-bench sdist (358 MB, fetched once from the package index into {data_dir(NAME).parent.parent / 'downloads'})"))


def verify_file(name: str, manifest: dict | None = None) -> Path:
    """Path of prepared file ``name`` (e.g. ``"nyt.jsonl"``) after checking its sha256 against the manifest.

    Raises:
        ValueError: the file is missing, unlisted, or its checksum differs (edited, truncated, damaged).
    """
    manifest = manifest if manifest is not None else read_manifest()
    return verify_listed_file(data_dir(NAME), name, manifest, label="QA", fix=_fix())


def verify_qa() -> dict:
    """Check every prepared file against the manifest; returns the manifest."""
    manifest = read_manifest()
    for name in manifest["files"]:
        verify_file(name, manifest)
    return manifest


def qa_features_schema():
    """``datasets.Features`` of :func:`load_qa`'s rows (the hub ``squad`` columns + ``domain``)."""
    from datasets import Features, Sequence as Seq, Value

    return Features({"id": Value("string"), "title": Value("string"), "context": Value("string"),
                     "question": Value("string"),
                     "answers": Seq({"text": Value("string"), "answer_start": Value("int32")}),
                     "domain": Value("string")})


def load_qa(split: str = "train", source: str = "bigbench", limit: int | None = None, seed: int = 0, *,
            domains: Sequence[str] | None = None):
    """Questions, contexts and answers as a ``datasets.Dataset``.

    Args:
        split: ``"train"`` (offline: the four SQuADShifts domains; hub: SQuAD train) or ``"test"``
            (SQuAD v1.1 dev; hub: ``validation``).
        source: ``"bigbench"`` (offline, from :func:`prepare_qa`'s cache, checksums verified on every
            load) or ``"hub"`` (``datasets.load_dataset("rajpurkar/squad")``, online).
        limit: at most this many questions, drawn at random with ``seed`` (None: all, in file order).
        seed: seed of the draw for ``limit``.
        domains: offline only: read these domains instead of the split's (any of :data:`DOMAINS`),
            e.g. ``domains=["nyt"]``.
    Returns:
        ``datasets.Dataset`` with ``id``, ``title``, ``context``, ``question``, ``answers``
        (``{"text": [str], "answer_start": [int]}``) and ``domain``.
    Raises:
        FileNotFoundError: offline data not prepared (says to run ``attnviz data prepare qa``).
        ValueError: a prepared file fails its checksum (says to rerun with ``--force``); bad arguments.
        ConnectionError: ``source="hub"`` while the hub cannot be reached (points to the offline source).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    if source not in SOURCES:
        raise ValueError(f"unknown QA source {source!r}; allowed: {', '.join(SOURCES)}")
    if limit is not None:
        check_int("limit", limit, 1)
    check_int("seed", seed, 0)
    import datasets

    if source == "hub":
        if domains is not None:
            raise ValueError("domains= selects offline files; the hub source has one domain (SQuAD)")
        ds = _load_hub(split)
    else:
        chosen = SPLIT_DOMAINS[split] if domains is None else tuple(domains)
        unknown = [d for d in chosen if d not in DOMAINS]
        if unknown or not chosen:
            raise ValueError(f"unknown QA domains {unknown or chosen}; allowed: {', '.join(DOMAINS)}")
        manifest = read_manifest()
        paths = [str(verify_file(_file_name(d), manifest)) for d in chosen]
        ds = datasets.load_dataset("json", data_files=paths, split="train", features=qa_features_schema(),
                                   cache_dir=str(cache_dir() / "datasets"))
    if limit is not None and limit < len(ds):
        ds = ds.shuffle(seed=seed).select(range(limit))
    return ds


def _load_hub(split: str):
    import datasets

    repo, splits = _HUB
    try:
        ds = datasets.load_dataset(repo, split=splits[split])
    except (OSError, ValueError) as exc:  # ConnectionError, offline mode, not found in an empty cache
        raise ConnectionError(
            f"could not load {repo} (split {splits[split]!r}) from the Hugging Face hub: {type(exc).__name__}: "
            f"{str(exc)[:200]}. Offline? Use source='bigbench', prepared from a package with "
            f"`attnviz data prepare qa`") from exc
    ds = ds.select_columns(["id", "title", "context", "question", "answers"])
    return ds.add_column("domain", ["squad"] * len(ds)).cast(qa_features_schema())
