"""The notebooks run top to bottom in a fresh kernel and print what the prose says."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from attnviz import AttentionPattern, PromptPlacement, build_masks, spread

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _run(name: str):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name} is committed with outputs"
    # kernel "python3" is the interpreter running the tests (the venv's ipykernel).
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def _texts(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            assert o.output_type != "error", f"{o.get('ename')}: {o.get('evalue')}"
            out.append(o.get("text", ""))
            out.extend(str(v) for v in o.get("data", {}).values())
    return "\n".join(out)


@pytest.mark.notebook
@pytest.mark.timeout(300)
def test_start_here_runs_and_prints_the_reach():
    text = _texts(_run("00_start_here.ipynb"))
    layout = PromptPlacement("prefix", n_tokens=20).layout(text_len=1000)
    narrow = spread(build_masks(AttentionPattern(window=32), layout, 6), layout.prompt_positions)
    assert narrow.summary(readout=layout.readout_position) in text
    assert "89 % of tokens (905 of 1022) are never reached" in text  # the prose's "about 89 %"
    # side by side: one small-multiples grid, the share reached in each panel's title
    assert "window 32: 11% reached" in text and "window 32 + global prompt: 100% reached" in text
    # bertviz: real attention of the embedded model on a short sentence, prompt tokens labelled
    assert "extra" in text and "&lt;p0&gt;" in text or "<p0>" in text
    assert text.count('class="plotly-graph-div"') >= 5  # figures rendered as HTML (notebook renderer)
