"""Run a notebook from notebooks/ top to bottom in a fresh kernel (ATTNVIZ_FAST=1) and read its outputs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run_notebook(name: str, *, timeout: int = 300, fast: bool = True):
    """Execute ``notebooks/<name>``; return (notebook, seconds). Fails if committed with outputs."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name} is committed with outputs"
    old = os.environ.get("ATTNVIZ_FAST")
    os.environ["ATTNVIZ_FAST"] = "1" if fast else "0"
    try:
        start = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
        return nb, time.perf_counter() - start
    finally:
        if old is None:
            os.environ.pop("ATTNVIZ_FAST", None)
        else:
            os.environ["ATTNVIZ_FAST"] = old


def output_text(nb) -> str:
    """All stream text and rich outputs joined; fails on any error output."""
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            assert o.output_type != "error", f"{o.get('ename')}: {o.get('evalue')}"
            out.append(o.get("text", ""))
            out.extend(str(v) for v in o.get("data", {}).values())
    return "\n".join(out)
