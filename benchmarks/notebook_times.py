"""Issue 8/9 benchmark: how long each notebook takes to run top to bottom.

Every ``notebooks/*.ipynb`` found at run time is executed in a fresh kernel (nbclient, as the test
suite's ``tests/_notebooks.py`` does) with ``ATTNVIZ_FAST=1`` (the CI / workshop-check mode; the
target is ≤ 3 minutes each on a 2-core laptop) and, with ``full=True``
(``python -m benchmarks notebook_times`` runs fast only; ``run(full=True)`` adds the default
mode), without it. Each notebook runs in its own subprocess with glibc's default allocator (as a
notebook kernel runs). A notebook that fails is a row with its error, not a crash of the benchmark.
"""

from __future__ import annotations

from pathlib import Path

from .common import run_cell, write_results

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
#: Per-notebook limit in fast mode; the target is 180 s.
FAST_TIMEOUT = 900
FULL_TIMEOUT = 3600


def cell(name: str, fast: bool, limit: int) -> dict:
    """Runs in a fresh subprocess: execute ``notebooks/<name>`` and time it."""
    import os
    import time

    import nbformat
    from nbclient import NotebookClient

    os.environ["ATTNVIZ_FAST"] = "1" if fast else "0"
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    cells = sum(c.cell_type == "code" for c in nb.cells)
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=limit, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    except Exception as err:  # noqa: BLE001 - reported in the row
        return {"seconds": time.perf_counter() - start, "cells": cells, "error": f"{type(err).__name__}: "
                f"{str(err).strip().splitlines()[-1] if str(err).strip() else ''}"[:200]}
    return {"seconds": time.perf_counter() - start, "cells": cells}


def run(quick: bool = False, full: bool = False):
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    rows = []
    md = None
    for name in names:
        for fast in ((True, False) if full else (True,)):
            mode = "fast" if fast else "full"
            print(f"   {name} ({mode}) ...", flush=True)
            timeout = FAST_TIMEOUT if fast else FULL_TIMEOUT
            r = run_cell("benchmarks.notebook_times", "cell", timeout=timeout + 120, memory_allocator=False,
                         name=name, fast=fast, limit=timeout)
            row = {"notebook": name, "mode": mode, "seconds": r.get("seconds"), "code cells": r.get("cells"),
                   "≤ 3 min": None if "seconds" not in r or not fast else ("yes" if r["seconds"] <= 180 else "NO"),
                   "error": r.get("error")}
            rows.append(row)
            md = _write(rows, done=len(rows), total=len(names) * (2 if full else 1))  # partial results survive
    return md


def _write(rows, done: int, total: int):
    notes = ("Each notebook executed top to bottom in a fresh python3 kernel (nbclient), in its own subprocess; "
             "'fast' = ATTNVIZ_FAST=1 (what CI and the workshop check run; target ≤ 3 min on a 2-core laptop), "
             "'full' = the default mode (the real results the prose describes). Wall seconds include kernel start. "
             "Notebooks are picked up from notebooks/*.ipynb at run time."
             + ("" if done == total else f" Partial: {done} of {total} runs so far."))
    return write_results("notebook_times", "Notebook execution times", rows,
                         ["notebook", "mode", "seconds", "code cells", "≤ 3 min", "error"], notes)
