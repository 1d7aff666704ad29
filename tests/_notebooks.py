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


def figures(nb) -> list[dict]:
    """The plotly figures an executed notebook shows (its ``application/vnd.plotly.v1+json``
    outputs), in output order, as dicts with ``data`` (traces) and ``layout``."""
    return [o["data"]["application/vnd.plotly.v1+json"] for cell in nb.cells for o in cell.get("outputs", [])
            if "application/vnd.plotly.v1+json" in o.get("data", {})]


def array(value):
    """A trace's ``x`` / ``y`` / ``z`` as a numpy array: plotly 7 writes numpy data as
    ``{"dtype", "bdata" (base64), "shape"}``, plain lists stay lists."""
    import base64

    import numpy as np

    if isinstance(value, dict) and "bdata" in value:
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return out.reshape([int(n) for n in str(value.get("shape", out.size)).split(",")])
    return np.asarray(value)


def notebook_fixtures(name: str, *, timeout: int = 600):
    """Module-scoped pytest fixtures ``(executed, text)`` for ``notebooks/<name>``, run once (fast
    mode): ``executed, text = notebook_fixtures("05_nli.ipynb")`` at a test module's top level."""
    import pytest

    @pytest.fixture(scope="module")
    def executed():
        return run_notebook(name, timeout=timeout)[0]

    @pytest.fixture(scope="module")
    def text(executed):
        return output_text(executed)

    return executed, text
