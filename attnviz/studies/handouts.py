"""Handouts: every notebook executed and exported to a static HTML page that works from ``file://``.

A workshop needs pages people can open without Python, a kernel or a network. ``make handouts``
(``python -m attnviz.studies.handouts``) runs each ``notebooks/*.ipynb`` top to bottom in a fresh kernel
(``ATTNVIZ_FAST=1`` unless ``--full``) and exports it with nbconvert into an ignored folder::

    handouts/
      lib/require.js  lib/embed-amd.js  lib/anywidget.js     offline JS (attnviz.assets)
      lib/plotly-<sha>.js                                    plotly.js, shared by all pages
      01_attention_windows.ipynb                             the executed notebook
      01_attention_windows.html                              the page
      index.html  durations.json                             what ran, how long, what failed
                                                             (rebuilding some notebooks keeps the others' rows)

Why each piece: plain plotly figures survive the export because :func:`attnviz.notebook.setup`
adds the ``notebook`` renderer (HTML with plotly.js inline; the export moves that 4.8 MB bundle
into one ``lib/plotly-<sha>.js`` that every page loads at the same place). Widgets survive as their saved state
(nbclient stores it in the notebook), drawn by ``@jupyter-widgets/html-manager``'s
``embed-amd.js``, which needs require.js; plotly's ``FigureWidget`` is an anywidget, whose AMD
module ``anywidget`` is mapped to the local copy with ``require.config``. nbconvert's defaults
load all three (and MathJax) from CDNs, so the page would stay blank offline; here every
``<script src>`` is a relative path into ``lib/`` and MathJax is left out (the notebooks use no
TeX; plotly's notebook renderer asks for it from a CDN before every figure, and those tags are
removed). A widget page is a snapshot: controls show their saved state, they do not recompute.

Two adaptations keep pages with plotly ``FigureWidget`` s light and quiet. Each ``FigureWidget``
saves its whole JavaScript (``_esm``, ~5 MB, plotly.js inside) in its widget state, so a notebook
with two live figures carried the same 5 MB twice (an 18 MB page); :func:`export_html` stores each
distinct ``_esm`` once in the page (``<script type="application/json" id="attnviz-esm-<sha256>">``)
and the models refer to it as ``attnviz-esm:<sha256>``. The page's ``lib/anywidget.js`` is the
pinned asset with two marked edits (:data:`ANYWIDGET_PATCHES`): it resolves those references and
imports each distinct module once, and it waits 60 s instead of 2 s for a model to initialise —
parsing 5 MB of JavaScript from a large page takes longer than 2 s on a laptop, and anywidget then
logged "Failed to initialize model" although the figure drew a moment later.
"""

from __future__ import annotations

import hashlib
import html as _html
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..assets import asset_path
from ..files import atomic_write, atomic_write_json

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "handouts"
LIB = "lib"
#: (asset name, file name in ``lib/``, how the page asks for it)
LIB_FILES = (("require", "require.js"), ("embed-amd", "embed-amd.js"), ("anywidget", "anywidget.js"))
#: lab template without MathJax (a CDN script; the notebooks use no TeX)
_TEMPLATE = "{%- extends 'lab/index.html.j2' -%}\n{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}\n"
#: plotly's ``notebook`` renderer puts this MathJax CDN tag before every figure (hard-coded in plotly);
#: the figures use no TeX and its config script checks ``window.MathJax`` first, so it is dropped.
_PLOTLY_MATHJAX = re.compile(r'<script src="https://cdnjs\.cloudflare\.com/ajax/libs/mathjax/[^"]*"></script>')
#: plotly's ``notebook`` renderer inlines the whole plotly.js bundle (~4.8 MB) into every page
_PLOTLY_INLINE = re.compile(r"<script>(/\*\*\n\* plotly\.js v[0-9][^\n]*\n.*?)</script>", re.S)
#: ``_esm`` values in a page's widget state are replaced by this prefix + the sha256 of the module text
ESM_REF = "attnviz-esm:"
#: (exact text in anywidget@0.11.0 dist/index.js, replacement) for the handouts' copy; each must match once
ANYWIDGET_PATCHES = (
    ("AbortSignal.timeout(2e3)", "AbortSignal.timeout(6e4) /* attnviz handouts: 2 s is too short for a 5 MB module */"),
    ("async function loadEsm(esm) {",
     "/* attnviz handouts: _esm may be a reference to a module stored once in the page; each distinct\n"
     "   module is imported once and shared by the widgets that use it. */\n"
     "var attnvizModules = new Map();\n"
     "function loadEsm(esm) {\n"
     f"  if (esm.startsWith({json.dumps(ESM_REF)})) {{\n"
     f"    var stored = document.getElementById(\"attnviz-esm-\" + esm.slice({len(ESM_REF)}));\n"
     "    if (!stored) throw new Error(\"[attnviz] the page has no stored module \" + esm);\n"
     "    esm = JSON.parse(stored.textContent);\n"
     "  }\n"
     "  if (!attnvizModules.has(esm)) attnvizModules.set(esm, loadEsmOnce(esm));\n"
     "  return attnvizModules.get(esm);\n"
     "}\n"
     "async function loadEsmOnce(esm) {"),
)
_REMOTE_SCRIPT = re.compile(r"<script[^>]*\ssrc\s*=\s*[\"']?(?:https?:)?//", re.I)


@dataclass(frozen=True)
class Handout:
    """One notebook's result: ``html`` (None if the export failed), wall ``seconds`` of the
    execution, ``error`` (``""`` when every cell ran)."""

    notebook: str
    html: str | None
    seconds: float
    fast: bool
    error: str = ""


def copy_lib(out_dir: str | os.PathLike) -> Path:
    """Copy require.js, embed-amd.js and anywidget.js from :mod:`attnviz.assets` into ``out_dir/lib``.

    Raises ``FileNotFoundError`` naming ``python -m attnviz.assets install`` when they are missing."""
    lib = Path(out_dir) / LIB
    lib.mkdir(parents=True, exist_ok=True)
    for name, filename in LIB_FILES:
        data = asset_path(name).read_bytes()
        if name == "anywidget":
            data = patch_anywidget(data.decode("utf-8")).encode("utf-8")
        atomic_write(lib / filename, data)
    return lib


def patch_anywidget(source: str) -> str:
    """anywidget's ``dist/index.js`` with :data:`ANYWIDGET_PATCHES` applied (see the module doc).
    Raises ``ValueError`` naming the text that is not found exactly once (another anywidget version)."""
    for old, new in ANYWIDGET_PATCHES:
        if source.count(old) != 1:
            raise ValueError(f"anywidget.js: expected {old!r} exactly once, found it {source.count(old)} times; "
                             "the pinned anywidget version changed (attnviz.assets)")
        source = source.replace(old, new)
    return source


def share_esm(nb) -> dict[str, str]:
    """Replace every widget model's ``_esm`` text in notebook ``nb`` (in place) by
    ``attnviz-esm:<sha256>``; return ``{sha256: text}``, each distinct module once."""
    modules: dict[str, str] = {}
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for model in state.values():
        esm = model.get("state", {}).get("_esm")
        if isinstance(esm, str) and not esm.startswith(("http://", "https://", ESM_REF)):
            sha = hashlib.sha256(esm.encode("utf-8")).hexdigest()
            modules[sha] = esm
            model["state"]["_esm"] = ESM_REF + sha
    return modules


def _plotly_to_lib(body: str, lib_dir: Path, lib: str) -> str:
    """Move each inlined plotly.js bundle of ``body`` into ``lib_dir/plotly-<sha256[:16]>.js`` (one
    file shared by every page of the folder) and load it with ``<script src>`` at the same place: the
    same classic script, run at the same moment, without 4.8 MB in every page."""
    def replace(match: re.Match) -> str:
        code = match.group(1)
        name = f"plotly-{hashlib.sha256(code.encode('utf-8')).hexdigest()[:16]}.js"
        target = lib_dir / name
        if not target.is_file() or target.stat().st_size != len(code.encode("utf-8")):
            lib_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(target, code.encode("utf-8"))
        return f'<script src="{lib}/{name}"></script>'

    return _PLOTLY_INLINE.sub(replace, body)


def _module_scripts(modules: dict[str, str]) -> str:
    """``<script type="application/json">`` elements holding ``modules`` as JSON strings; ``</``
    is written ``<\\/`` and ``<!--`` as ``\\u003c!--`` (same string once parsed), so nothing inside a
    module can end the element early."""
    out = []
    for sha, text in modules.items():
        data = json.dumps(text).replace("</", "<\\/").replace("<!--", "\\u003c!--")
        out.append(f'<script type="application/json" id="attnviz-esm-{sha}">{data}</script>')
    return "\n".join(out)


def execute(src: str | os.PathLike, dest: str | os.PathLike, *, fast: bool = True, timeout: int = 600):
    """Run notebook ``src`` top to bottom in a fresh ``python3`` kernel (working directory: its
    folder; ``ATTNVIZ_FAST`` set from ``fast``) and write the executed notebook, widget state
    included, to ``dest`` — also when a cell fails. Returns ``(seconds, error)``; ``error`` is
    ``""`` on success, else the failing cell's error name and message."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    src, dest = Path(src), Path(dest)
    nb = nbformat.read(src, as_version=4)
    old = os.environ.get("ATTNVIZ_FAST")
    os.environ["ATTNVIZ_FAST"] = "1" if fast else "0"
    error = ""
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                       resources={"metadata": {"path": str(src.parent)}}).execute()
    except CellExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue}"
    except TimeoutError as exc:
        error = f"TimeoutError: a cell ran longer than {timeout} s ({exc})"
    finally:
        seconds = time.perf_counter() - start
        if old is None:
            os.environ.pop("ATTNVIZ_FAST", None)
        else:
            os.environ["ATTNVIZ_FAST"] = old
    atomic_write(dest, nbformat.writes(nb).encode("utf-8"))
    return seconds, error


def export_html(executed: str | os.PathLike, html_path: str | os.PathLike, *, lib: str = LIB) -> Path:
    """Export an executed notebook to ``html_path``: figures and saved widget state, with
    require.js, the widget renderer and anywidget loaded from ``lib`` (relative to the page), no
    MathJax, and no script from the network. Written atomically. Returns the path."""
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(extra_loaders=[DictLoader({"attnviz_handout.j2": _TEMPLATE})],
                            template_file="attnviz_handout.j2",
                            require_js_url=f"{lib}/require.js", widget_renderer_url=f"{lib}/embed-amd.js")
    nb = nbformat.read(executed, as_version=4)
    modules = share_esm(nb)
    body, _ = exporter.from_notebook_node(nb)
    tag = f'<script src="{lib}/require.js"></script>'
    if tag not in body:
        raise RuntimeError(f"nbconvert's page has no {tag!r} to hang the anywidget mapping on; "
                           "the lab template changed")
    body = body.replace(tag, tag + f'\n<script>require.config({{paths: {{anywidget: "{lib}/anywidget"}}}});</script>', 1)
    body = _PLOTLY_MATHJAX.sub("", body)
    body = _plotly_to_lib(body, Path(html_path).parent / lib, lib)
    if modules:
        if body.count("</body>") != 1:
            raise RuntimeError("nbconvert's page has no single </body> to put the widgets' modules before")
        body = body.replace("</body>", _module_scripts(modules) + "\n</body>")
    remote = _REMOTE_SCRIPT.search(body)
    if remote:
        raise RuntimeError(f"the exported page still loads a script from the network: {body[remote.start():remote.start() + 120]!r}")
    return atomic_write(html_path, body.encode("utf-8"))


def _index(results: list[Handout]) -> str:
    rows = []
    for r in results:
        name = _html.escape(r.notebook)
        link = f'<a href="{_html.escape(Path(r.html).name)}">{name}</a>' if r.html else name
        state = "ok" if not r.error else "FAILED: " + _html.escape(r.error)
        rows.append(f"<tr><td>{link}</td><td>{r.seconds:.0f} s</td><td>{'fast' if r.fast else 'full'}</td><td>{state}</td></tr>")
    return ("<!doctype html><meta charset='utf-8'><title>attnviz handouts</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.2em 1em;text-align:left}</style>"
            "<h1>attnviz handouts</h1><table><tr><th>notebook</th><th>ran in</th><th>mode</th><th></th></tr>\n"
            + "\n".join(rows) + "\n</table>\n")


def build(notebooks: list[str | os.PathLike] | None = None, out_dir: str | os.PathLike = OUT, *, fast: bool = True,
          timeout: int = 600, progress: bool = True) -> list[Handout]:
    """Execute and export ``notebooks`` (default every ``notebooks/*.ipynb``, sorted) into
    ``out_dir``; write ``index.html`` and ``durations.json``. A failing notebook is exported as far
    as it ran and reported; the others still run."""
    out = Path(out_dir)
    paths = sorted(NOTEBOOKS.glob("*.ipynb")) if not notebooks else [Path(n) for n in notebooks]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"no such notebook: {', '.join(missing)}; available: "
                         f"{', '.join(p.name for p in sorted(NOTEBOOKS.glob('*.ipynb')))}")
    out.mkdir(parents=True, exist_ok=True)
    copy_lib(out)
    results = []
    for path in paths:
        if progress:
            print(f"{path.name}: running ({'fast' if fast else 'full'} mode) ...", flush=True)
        executed = out / path.name
        seconds, error = execute(path, executed, fast=fast, timeout=timeout)
        html = None
        try:
            html = str(export_html(executed, out / f"{path.stem}.html"))
        except Exception as exc:  # the export of one notebook must not stop the others
            error = error or f"export failed: {type(exc).__name__}: {exc}"
        results.append(Handout(path.name, html, round(seconds, 1), fast, error))
        if progress:
            print(f"{path.name}: {seconds:.0f} s, {'ok' if not error else 'FAILED: ' + error}"
                  + (f" -> {html}" if html else ""), flush=True)
    atomic_write(out / "index.html", _index(_merged(out, results)).encode("utf-8"))
    atomic_write_json(out / "durations.json", [asdict(r) for r in _merged(out, results)])
    return results


def _merged(out: Path, results: list[Handout]) -> list[Handout]:
    """``results`` plus the earlier entries of ``out/durations.json`` for notebooks not rebuilt now
    (whose page is still there), sorted by notebook name: rebuilding one notebook keeps the index whole."""
    import json

    fresh = {r.notebook for r in results}
    try:
        earlier = [Handout(**d) for d in json.loads((out / "durations.json").read_text(encoding="utf-8"))]
    except (OSError, ValueError, TypeError):
        earlier = []
    kept = [h for h in earlier if h.notebook not in fresh and h.html and Path(h.html).is_file()]
    return sorted(kept + list(results), key=lambda h: h.notebook)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m attnviz.studies.handouts",
                                     description="Execute the notebooks and export offline HTML handouts.")
    parser.add_argument("notebooks", nargs="*", help="notebook files (default: every notebooks/*.ipynb)")
    parser.add_argument("--out", default=str(OUT), help=f"output folder (default {OUT})")
    parser.add_argument("--full", action="store_true", help="full mode (ATTNVIZ_FAST=0): real results, slower")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = parser.parse_args(argv)
    try:
        results = build(args.notebooks or None, args.out, fast=not args.full, timeout=args.timeout)
    except (FileNotFoundError, ValueError) as exc:
        print(f"attnviz.studies.handouts: {exc}", file=sys.stderr)
        return 1
    failed = [r for r in results if r.error]
    print(f"{len(results) - len(failed)} of {len(results)} notebooks exported to {Path(args.out) / 'index.html'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
