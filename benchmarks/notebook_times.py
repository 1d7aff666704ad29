"""Issue 8/9 benchmark: how long each notebook takes to run top to bottom.

Every ``notebooks/*.ipynb`` found at run time is executed in a fresh kernel (nbclient, as the test
suite's ``tests/_notebooks.py`` does) with ``ATTNVIZ_FAST=1`` (the CI / workshop-check mode; the
target is ≤ 3 minutes each on a 2-core laptop) and, with ``full=True``, also without it (the
default mode, whose wall time each notebook's header states). ``python -m benchmarks
notebook_times`` runs fast mode only; a long default-mode run can be done in parts, keeping the
other rows::

    python -m benchmarks.notebook_times --mode full --keep 03_placement_and_global_attention.ipynb

Each notebook runs in its own subprocess with glibc's default allocator (as a
notebook kernel runs). A notebook that fails is a row with its error, not a crash of the benchmark.
"""

from __future__ import annotations

import json
from pathlib import Path

from .common import RESULTS, machine_info, run_cell, write_results

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


def run(quick: bool = False, full: bool = False, names: list[str] | None = None, modes: tuple[str, ...] | None = None,
        keep: bool = False):
    """Time ``names`` (default every notebook) in ``modes`` (default ``("fast",)``, or
    ``("fast", "full")`` with ``full=True``). ``keep=True`` keeps the rows of the previous results
    file for (notebook, mode) pairs not measured now, so a long full-mode run can be done in parts."""
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) if not names else list(names)
    modes = tuple(modes or (("fast", "full") if full else ("fast",)))
    bad = [m for m in modes if m not in ("fast", "full")]
    if bad:
        raise ValueError(f"unknown mode {bad[0]!r}; allowed: fast, full")
    missing = [n for n in names if not (NOTEBOOKS / n).is_file()]
    if missing:
        raise ValueError(f"no notebook {missing[0]!r} in {NOTEBOOKS}")
    earlier = []
    if keep:
        try:
            earlier = json.loads((RESULTS / "notebook_times.json").read_text())["rows"]
        except (OSError, ValueError, KeyError):
            earlier = []
    rows = []
    md = None
    total = len(names) * len(modes)
    for name in names:
        for mode in modes:
            fast = mode == "fast"
            print(f"   {name} ({mode}) ...", flush=True)
            timeout = FAST_TIMEOUT if fast else FULL_TIMEOUT
            r = run_cell("benchmarks.notebook_times", "cell", timeout=timeout + 120, memory_allocator=False,
                         name=name, fast=fast, limit=timeout)
            row = {"notebook": name, "mode": mode, "seconds": r.get("seconds"), "code cells": r.get("cells"),
                   "≤ 3 min": None if "seconds" not in r or not fast else ("yes" if r["seconds"] <= 180 else "NO"),
                   "error": r.get("error"), "measured": machine_info()["date"]}
            rows.append(row)
            measured = {(x["notebook"], x["mode"]) for x in rows}
            kept = [e for e in earlier if (e["notebook"], e["mode"]) not in measured]
            merged = sorted(kept + rows, key=lambda e: (e["notebook"], e["mode"] != "fast"))
            md = _write(merged, done=len(rows), total=total)  # partial results survive
    return md


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(prog="python -m benchmarks.notebook_times", description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="notebook file names (default: all)")
    p.add_argument("--mode", action="append", choices=("fast", "full"), help="fast and/or full (default fast)")
    p.add_argument("--keep", action="store_true", help="keep earlier rows of notebooks/modes not measured now")
    a = p.parse_args(argv)
    print(run(names=a.names, modes=tuple(a.mode or ("fast",)), keep=a.keep))


def _write(rows, done: int, total: int):
    notes = ("Each notebook executed top to bottom in a fresh python3 kernel (nbclient), in its own subprocess; "
             "'fast' = ATTNVIZ_FAST=1 (what CI and the workshop check run; target ≤ 3 min on a 2-core laptop), "
             "'full' = the default mode (the real results the prose describes). Wall seconds include kernel start. "
             "Notebooks are picked up from notebooks/*.ipynb at run time."
             + ("" if done == total else f" Partial: {done} of {total} runs so far."))
    return write_results("notebook_times", "Notebook execution times", rows,
                         ["notebook", "mode", "seconds", "code cells", "≤ 3 min", "error", "measured"], notes)


if __name__ == "__main__":
    main()
