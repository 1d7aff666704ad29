"""The curriculum's promises (issue #8), read from the committed notebooks without running them:
each opens with what you will learn and a measured run time for both modes, ends with exercises,
and the stated default-mode time agrees with the latest measurement in
``benchmarks/results/notebook_times.json`` (``python -m benchmarks.notebook_times --mode full``)."""

import json
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: "**Run time** ... default mode about 12 minutes ... `ATTNVIZ_FAST=1` about 40 seconds"
RUN_TIME = re.compile(r"\*\*Run time\*\*[^\n]*?default mode:? about (\d+(?:\.\d+)?) (minutes?|seconds?)"
                      r"[^\n]*?`ATTNVIZ_FAST=1`:? about (\d+) (seconds?|minutes?)")


def _stated(header: str) -> tuple[float, float]:
    """(default-mode seconds, fast-mode seconds) stated in a header."""
    m = RUN_TIME.search(header)
    assert m, f"no '**Run time** ... default mode about N minutes ... `ATTNVIZ_FAST=1` about N seconds' line in:\n{header[:600]}"
    return (float(m.group(1)) * (60 if m.group(2).startswith("minute") else 1),
            float(m.group(3)) * (60 if m.group(4).startswith("minute") else 1))


def test_there_are_ten_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(10)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_header_states_what_you_learn_and_both_run_times_and_it_ends_with_exercises(path):
    nb = nbformat.read(path, as_version=4)
    first, last = nb.cells[0], nb.cells[-1]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert "What you will learn" in first.source
    full, fast = _stated(first.source)
    assert fast <= 180, f"{path.name}: fast mode stated as {fast:.0f} s; the target is 3 minutes"
    assert full >= fast
    assert last.cell_type == "markdown"
    exercises = re.search(r"^#+ Exercises\s*$(.*)", last.source, re.M | re.S)
    assert exercises, f"{path.name}: the last cell has no '## Exercises' heading"
    assert re.search(r"^1\. ", exercises.group(1), re.M)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stated_times_agree_with_the_latest_measurement(path):
    rows = json.loads((ROOT / "benchmarks" / "results" / "notebook_times.json").read_text())["rows"]
    measured = {r["mode"]: r["seconds"] for r in rows if r["notebook"] == path.name and r.get("seconds")}
    full, fast = _stated(nbformat.read(path, as_version=4).cells[0].source)
    assert "fast" in measured, f"{path.name} has no fast-mode measurement in notebook_times.json"
    # "about": within a factor of 2 either way (timings vary with load); a stale header is off by more
    assert measured["fast"] / 2 <= fast <= measured["fast"] * 2 + 15, (path.name, fast, measured["fast"])
    if "full" in measured:
        assert measured["full"] / 2 <= full <= measured["full"] * 2 + 15, (path.name, full, measured["full"])
