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

Tokenization for a span head (:func:`qa_features`): ``[CLS] question [SEP] context [SEP]``, one
window per question, at most ``max_length`` tokens. Truncation policy: the context is cut at the
end (the question is cut only if it alone would leave fewer than ``min_context`` context tokens).
A question whose first answer lies (partly) beyond the cut gets start = end = 0 (``[CLS]``) and
``in_window`` False; :func:`qa_features` drops those from training data by default (``drop_outside``),
and evaluation keeps them, so EM/F1 are over every question (a cut-off answer counts as missed).

:func:`squad_metrics` computes exact match and F1 as the official SQuAD v1.1 evaluation script
does (lower case, punctuation and the articles a / an / the removed, whitespace collapsed; the best
score over the gold answers; percentages).

The BIG-bench task files carry a canary line asking that they never appear in training corpora;
the prepared files live in the cache, outside the repository (see ``data/README.md``).
"""

from __future__ import annotations

import collections
import datetime as _dt
import hashlib
import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import torch

from ..checks import check_int
from .sources import BIGBENCH, BIGBENCH_TASKS, atomic_write, atomic_write_json, cache_dir, data_dir, fetch_sdist, \
    read_manifest_file, read_members, sha256_file, verify_listed_file

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
@dataclass(frozen=True)
class Prepared:
    """What :func:`prepare_qa` left in the cache.

    Attributes:
        directory: ``<cache>/data/qa``.
        manifest: the manifest as written (``files`` -> domain, rows, bytes, sha256).
        fresh: True if the files were written by this call, False if a valid cache was reused.
    """

    directory: Path
    manifest: dict
    fresh: bool

    def summary(self) -> str:
        """One line per file: name, questions, sha256."""
        return "\n".join(f"{name:<22} {f['rows']:>7,} questions ({f['split']})  sha256 {f['sha256']}"
                         for name, f in sorted(self.manifest["files"].items()))


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
            return Prepared(out, manifest, fresh=False)

    path = Path(archive) if archive is not None else fetch_sdist(BIGBENCH, progress=progress,
                                                                 command="attnviz data prepare qa")
    archive_sha = sha256_file(path)
    members = {d: BIGBENCH_TASKS + m for d, m in MEMBERS.items()}
    raw = read_members(path, list(members.values()), progress=progress)

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
    return Prepared(out, manifest, fresh=True)


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


# ---- tokenization for a span head ---------------------------------------------------------------
def span_labels(offsets: Sequence[Sequence[int]], sequence_ids: Sequence[int | None], start_char: int,
                end_char: int) -> tuple[int, int] | None:
    """Token labels ``(start, end)`` of the character span ``[start_char, end_char)`` of the context.

    Args:
        offsets: ``(T, 2)`` character offsets of each token in its own text (the tokenizer's
            ``offset_mapping``).
        sequence_ids: 0 for question tokens, 1 for context tokens, None for special tokens.
        start_char, end_char: the answer's characters in the context (end exclusive).
    Returns:
        ``(start, end)`` token indices (inclusive): the first context token that ends after
        ``start_char`` and the last context token that starts before ``end_char``; None when the
        span is not wholly inside the context tokens (cut off by truncation) or empty.
    """
    ctx = [i for i, s in enumerate(sequence_ids) if s == 1]
    if not ctx or end_char <= start_char or start_char < 0:
        return None
    if start_char < offsets[ctx[0]][0] or end_char > offsets[ctx[-1]][1]:
        return None
    start = next((i for i in ctx if offsets[i][1] > start_char), None)
    end = next((i for i in reversed(ctx) if offsets[i][0] < end_char), None)
    if start is None or end is None or end < start:
        return None
    return start, end


def _answer_chars(context: str, answers: dict) -> tuple[int, int] | None:
    """The first answer with a known start, its surrounding whitespace removed: ``(start, end)``."""
    for text, start in zip(answers["text"], answers["answer_start"]):
        if start is None or start < 0 or not text.strip():
            continue
        lead = len(text) - len(text.lstrip())
        return start + lead, start + lead + len(text.strip())
    return None


def qa_features(dataset, tokenizer, *, max_length: int = 256, min_context: int | None = None, drop_outside: bool = True,
                progress: bool = False):
    """Tokenize questions + contexts for a span head, with start / end labels from the answer offsets.

    ``[CLS] question [SEP] context [SEP]``, at most ``max_length`` tokens, one window per question;
    the context is cut at the end, the question only if it alone would leave fewer than
    ``min_context`` context tokens. The label is the first answer with a known start.

    Args:
        dataset: rows of :func:`load_qa` (``question``, ``context``, ``answers``).
        tokenizer: a fast tokenizer (offsets are needed).
        max_length: tokens per input, special tokens included (the prompt comes on top).
        min_context: context tokens the question may never squeeze out (default ``max_length // 2``).
        drop_outside: drop questions whose answer is not inside the window (for training); keep
            False for evaluation so every question is scored.
    Returns:
        ``datasets.Dataset`` with ``input_ids``, ``token_type_ids``, ``start_positions``,
        ``end_positions`` (0 = ``[CLS]`` when the answer is outside the window), ``in_window``,
        ``offset_mapping`` (``[-1, -1]`` on non-context tokens), ``example`` (row index in
        ``dataset``), and the row's ``id``, ``context`` and ``answers`` for :func:`predict_spans`.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(f"qa_features needs a fast tokenizer (character offsets), got {type(tokenizer).__name__}")
    check_int("max_length", max_length, 4)
    if min_context is None:
        min_context = max_length // 2
    check_int("min_context", min_context, 1)
    if min_context > max_length - 3:
        raise ValueError(f"min_context ({min_context}) must leave room for [CLS], [SEP], [SEP] in max_length "
                         f"({max_length}); at most {max_length - 3}")
    max_question = max_length - 3 - min_context

    def encode(batch, indices):
        questions = [q.strip() for q in batch["question"]]
        q_ids = tokenizer(questions, add_special_tokens=False)["input_ids"]
        long_q = [i for i, ids in enumerate(q_ids) if len(ids) > max_question]
        for i in long_q:  # cut the question at a token boundary, so the context keeps min_context tokens
            enc = tokenizer(questions[i], add_special_tokens=False, return_offsets_mapping=True)
            questions[i] = questions[i][:enc["offset_mapping"][max_question - 1][1]]
        enc = tokenizer(questions, batch["context"], truncation="only_second", max_length=max_length,
                        return_offsets_mapping=True)
        out = collections.defaultdict(list)
        for b in range(len(questions)):
            seq = enc.sequence_ids(b)
            offsets = enc["offset_mapping"][b]
            chars = _answer_chars(batch["context"][b], batch["answers"][b])
            span = span_labels(offsets, seq, *chars) if chars is not None else None
            out["input_ids"].append(enc["input_ids"][b])
            out["token_type_ids"].append(enc["token_type_ids"][b] if "token_type_ids" in enc
                                         else [0 if s != 1 else 1 for s in seq])
            out["start_positions"].append(span[0] if span else 0)
            out["end_positions"].append(span[1] if span else 0)
            out["in_window"].append(span is not None)
            out["offset_mapping"].append([list(o) if s == 1 else [-1, -1] for o, s in zip(offsets, seq)])
            out["example"].append(indices[b])
        return dict(out)

    keep = ["id", "context", "answers"]
    feats = dataset.map(encode, batched=True, with_indices=True, keep_in_memory=True,
                        remove_columns=[c for c in dataset.column_names if c not in keep],
                        desc="tokenize questions + contexts" if progress else None)
    if drop_outside:
        feats = feats.filter(lambda w: w, input_columns=["in_window"], keep_in_memory=True)
    return feats


# ---- decoding and scoring -----------------------------------------------------------------------
def best_spans(start_logits: torch.Tensor, end_logits: torch.Tensor, allowed: torch.Tensor,
               max_answer_tokens: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """The highest-scoring spans ``start <= end < start + max_answer_tokens`` inside ``allowed``.

    Args:
        start_logits, end_logits: ``(B, T)``.
        allowed: bool ``(B, T)``: tokens a span may use (the context tokens).
    Returns:
        ``(start (B,), end (B,))`` long; score = ``start_logits[start] + end_logits[end]``. A row
        with no allowed token gets ``(0, 0)``.
    """
    T = start_logits.shape[-1]
    i = torch.arange(T, device=start_logits.device)
    band = (i[None, :] >= i[:, None]) & (i[None, :] < i[:, None] + max_answer_tokens)      # (T, T): [s, e]
    ok = band[None] & allowed[:, :, None] & allowed[:, None, :]
    scores = start_logits.float()[:, :, None] + end_logits.float()[:, None, :]
    scores = scores.masked_fill(~ok, float("-inf")).flatten(1)
    best = scores.argmax(-1)
    best = torch.where(ok.flatten(1).any(-1), best, torch.zeros_like(best))
    return best // T, best % T


@dataclass(frozen=True)
class QAResult:
    """What :func:`evaluate_qa` returns.

    Attributes:
        exact_match, f1: percentages over ``n`` questions (the official SQuAD v1.1 script's numbers).
        n: questions scored.
        predictions: ``{id: answer text}``.
        in_window: share of questions whose answer was inside the tokenized window.
    """

    exact_match: float
    f1: float
    n: int
    predictions: dict
    in_window: float

    def summary(self) -> str:
        return f"EM {self.exact_match:.1f}  F1 {self.f1:.1f}  ({self.n:,} questions, {100 * self.in_window:.0f} % answers in window)"


@torch.no_grad()
def predict_spans(model, features, *, batch_size: int = 32, max_answer_tokens: int = 30,
                  progress: bool = False) -> dict[str, str]:
    """``{id: predicted answer text}`` for tokenized questions (:func:`qa_features`).

    ``model`` is an ``attnviz.prompts.PromptModel`` with a ``QAHead`` (or anything that maps
    ``input_ids``, ``attention_mask``, ``token_type_ids`` to ``(start (B, T), end (B, T))``); the span
    is chosen among context tokens (:func:`best_spans`) and cut from the context by its offsets.
    """
    from .batching import collate

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = {}
    starts = range(0, len(features), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="predict spans", leave=False)
    try:
        for i in starts:
            rows = features.select(range(i, min(i + batch_size, len(features)))) if hasattr(features, "select") \
                else features[i:i + batch_size]
            rows = [rows[j] for j in range(len(rows))]
            batch = collate(rows)
            start, end = model(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                               batch["token_type_ids"].to(device))
            T = start.shape[1]
            allowed = torch.zeros(len(rows), T, dtype=torch.bool)
            for b, r in enumerate(rows):
                allowed[b, :len(r["offset_mapping"])] = torch.tensor([o[0] >= 0 for o in r["offset_mapping"]])
            s, e = best_spans(start.cpu(), end.cpu(), allowed, max_answer_tokens)
            for b, r in enumerate(rows):
                off = r["offset_mapping"]
                si, ei = int(s[b]), int(e[b])
                out[r["id"]] = r["context"][off[si][0]:off[ei][1]] if off[si][0] >= 0 else ""
    finally:
        model.train(was_training)
    return out


def normalize_answer(s: str) -> str:
    """The official SQuAD v1.1 normalisation: lower case, drop punctuation (``string.punctuation``),
    drop the articles a / an / the, collapse whitespace."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match_score(prediction: str, truth: str) -> bool:
    """Normalised strings equal (official SQuAD v1.1)."""
    return normalize_answer(prediction) == normalize_answer(truth)


def f1_score(prediction: str, truth: str) -> float:
    """Token-level F1 of the normalised strings (official SQuAD v1.1: bag of tokens, 0 if nothing is shared)."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    common = collections.Counter(pred) & collections.Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(predictions: dict[str, str], references: Iterable[dict]) -> dict:
    """Exact match and F1 as the official SQuAD v1.1 evaluation script computes them.

    Args:
        predictions: ``{id: answer text}``.
        references: rows with ``id`` and ``answers`` (``{"text": [...]}``), e.g. :func:`load_qa`'s.
            A reference without a prediction counts 0 (the official script does the same, with a message).
    Returns:
        ``{"exact_match": %, "f1": %, "n": questions, "missing": references without a prediction}``;
        each question scores the best over its gold answers.
    """
    em = f1 = 0.0
    n = missing = 0
    for ref in references:
        n += 1
        if ref["id"] not in predictions:
            missing += 1
            continue
        pred = predictions[ref["id"]]
        golds = ref["answers"]["text"]
        em += max(exact_match_score(pred, g) for g in golds)
        f1 += max(f1_score(pred, g) for g in golds)
    if n == 0:
        raise ValueError("no references to score")
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n, "n": n, "missing": missing}


def evaluate_qa(model, features, *, batch_size: int = 32, max_answer_tokens: int = 30,
                progress: bool = False) -> QAResult:
    """EM / F1 of ``model`` on tokenized questions (:func:`qa_features` with ``drop_outside=False``)."""
    predictions = predict_spans(model, features, batch_size=batch_size, max_answer_tokens=max_answer_tokens,
                                progress=progress)
    refs = [{"id": i, "answers": a} for i, a in zip(features["id"], features["answers"])]
    m = squad_metrics(predictions, refs)
    inside = features["in_window"]
    return QAResult(m["exact_match"], m["f1"], m["n"], predictions, sum(inside) / max(len(inside), 1))
