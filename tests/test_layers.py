"""The import-layer contract, read from the source with ``ast`` (nothing is imported or run).

* core never imports a view: nothing outside ``plots/``, ``widgets/``, ``explore``, ``notebook``,
  the studies (``studies/``: sweep, report, handouts) and the CLI imports those view modules;
* core never imports the studies or the CLI, and the studies never import the CLI;
* task data (``tasks/``) and the model boundary (``models/``) never import the training (``prompts/``);
* no circles among modules (imports inside functions count too);
* no ``_private`` name (or ``_private`` module) is imported from another module, except among the
  files of one sub-package (``plots/*`` sharing ``plots/_style``, say).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "attnviz"

VIEWS = ("attnviz.plots", "attnviz.widgets", "attnviz.explore", "attnviz.notebook")
STUDIES = ("attnviz.studies",)
CLI = ("attnviz.cli",)
#: private names still crossing a package boundary, each with its owner's reason; shrink, never grow.
KNOWN_PRIVATE: set = set()   # none left: the explorers take FigureParts / step_slider from attnviz.plots


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in PKG.rglob("*.py")}


def _is_package(mod: str) -> bool:
    return MODULES.get(mod, Path()).name == "__init__.py"


def _home(mod: str) -> str:
    return mod if _is_package(mod) else mod.rsplit(".", 1)[0]


def _imports(mod: str):
    """``(target module, imported name or None, line)`` for every attnviz import of ``mod``."""
    tree = ast.parse(MODULES[mod].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "attnviz":
                    yield a.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _home(mod).split(".")
                base = base[: len(base) - node.level + 1]
                src = ".".join(base + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            if src.split(".")[0] != "attnviz":
                continue
            for a in node.names:
                sub = f"{src}.{a.name}"
                if sub in MODULES:
                    yield sub, None, node.lineno
                else:
                    yield src, a.name, node.lineno


def _in(mod: str, group) -> bool:
    return any(mod == g or mod.startswith(g + ".") for g in group)


def _graph() -> dict[str, set[str]]:
    graph = {m: set() for m in MODULES}
    for m in MODULES:
        for target, _, _ in _imports(m):
            # a package's __init__ only re-exports: an import of the package is an import of what it names
            if target != m and target in MODULES:
                graph[m].add(target)
    return graph


def test_core_never_imports_views_studies_or_cli():
    bad = []
    for m in MODULES:
        if _in(m, VIEWS + STUDIES + CLI) or m == "attnviz":
            continue
        bad += [f"{m}:{line} imports {t}" for t, _, line in _imports(m) if _in(t, VIEWS + STUDIES + CLI)]
    assert bad == []


#: (lower, upper): task data sits below the training that uses it.
NEVER = [("attnviz.tasks", "attnviz.prompts"), ("attnviz.models", "attnviz.prompts"), ("attnviz.models", "attnviz.tasks")]


def test_lower_rooms_never_import_upper_ones():
    bad = [f"{m}:{line} imports {t}" for low, up in NEVER for m in MODULES if _in(m, (low,))
           for t, _, line in _imports(m) if _in(t, (up,))]
    assert bad == []


def test_views_and_studies_never_import_the_cli():
    bad = [f"{m}:{line} imports {t}" for m in MODULES if _in(m, VIEWS + STUDIES)
           for t, _, line in _imports(m) if _in(t, CLI)]
    assert bad == []


def test_no_circles():
    graph = _graph()
    # a package's __init__ re-exports its modules; its edges to them are no circle of the design
    for m in graph:
        if _is_package(m):
            graph[m] = {t for t in graph[m] if not t.startswith(m + ".")}
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == []


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_private_name_crosses_a_package():
    crossing = set()
    for m in MODULES:
        for target, name, _ in _imports(m):
            parts = target.split(".") + ([name] if name else [])
            if not any(_private(p) for p in parts[1:]):
                continue
            owner = target if name is not None else target.rsplit(".", 1)[0] if not _is_package(target) else target
            same_package = _home(m) == _home(owner) and _home(m) != "attnviz"
            if not same_package:
                crossing.add((m, ".".join(parts)))
    assert crossing - KNOWN_PRIVATE == set()
    assert KNOWN_PRIVATE - crossing == set(), "a known exception is gone: take it off KNOWN_PRIVATE"


def test_the_contract_sees_the_package():
    graph = _graph()
    assert "attnviz.models.anatomy" in graph["attnviz.models.interface"]
    assert "attnviz.cli.train" in MODULES and len(MODULES) > 40
