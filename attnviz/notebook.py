"""What every notebook calls first: offline figure rendering and the ``ATTNVIZ_FAST`` switch.

``ATTNVIZ_FAST=1`` (set by the test suite and ``make handouts``) shrinks steps and data so a
notebook runs in well under three minutes on a 2-core laptop; the default gives the real results
that the notebook's prose describes. Notebooks write ``n = by_mode(fast=20, full=300)``.
"""

from __future__ import annotations

import os

FAST_ENV = "ATTNVIZ_FAST"


def fast() -> bool:
    """True when ``ATTNVIZ_FAST`` is set to a true value (``1``, ``true``, ``yes``, ``on``)."""
    return os.environ.get(FAST_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def by_mode(*, fast, full):
    """``fast`` under ``ATTNVIZ_FAST=1``, else ``full`` (e.g. training steps, examples)."""
    return fast if globals()["fast"]() else full


def _quiet_library_progress() -> None:
    """Turn off ``datasets``' "Map" and transformers' "Loading weights" bars: in a notebook (and
    its HTML handout) they are noise; attnviz's own training progress stays."""
    try:
        import datasets

        datasets.disable_progress_bars()
    except ImportError:  # pragma: no cover
        pass
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def setup() -> str:
    """Configure plotly for JupyterLab *and* offline HTML exports, silence library progress bars;
    return a one-line mode banner.

    JupyterLab draws the plotly mimetype (plotly.js bundled with the extension, no network);
    the ``notebook`` renderer adds an HTML copy so figures survive ``nbconvert --to html``.
    """
    import plotly.io as pio

    pio.renderers.default = "plotly_mimetype+notebook"
    _quiet_library_progress()
    mode = "fast (ATTNVIZ_FAST=1: fewer steps and examples)" if fast() else "full"
    return f"attnviz notebook mode: {mode}"


# ---- results files and rendered text (what the notebooks' prose quotes) ------------------------
def results_dir():
    """``benchmarks/results`` of this checkout: the full-mode results the notebooks quote."""
    from pathlib import Path

    return Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def load_results(name: str) -> dict:
    """``benchmarks/results/<name>.json`` as a dict. Raises ``FileNotFoundError`` naming the file
    and the command that writes it (``make bench`` / ``attnviz sweep``)."""
    import json

    path = results_dir() / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no results file {path}; it is written by the full-mode run (see benchmarks/README)")
    return json.loads(path.read_text())


def results_date(data: dict) -> str:
    """The date a results file was measured (``machine.date``, ``updated`` or ``last_run.finished``), YYYY-MM-DD."""
    m = data.get("machine")
    for d in (m.get("date") if isinstance(m, dict) else None, data.get("updated"),
              (data.get("last_run") or {}).get("finished")):
        if d:
            return str(d)[:10]
    return "undated"


def format_value(v, digits: int = 3, *, group_ints: bool = True) -> str:
    """One table cell as text: None as —, booleans as yes / no, floats with ``digits`` significant
    digits (whole, with thousands separators, from 1,000 on), ints from 10,000 on with separators
    (``group_ints``), ``|`` escaped for Markdown. Every table attnviz writes uses this."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int) and group_ints:
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    return str(v).replace("|", "\\|")


def markdown_table(rows, columns) -> str:
    """Rows (dicts) as a Markdown table; ``columns`` is ``{key: header}`` or a list of keys. Floats
    get 3 significant digits, ``None`` shows as —, booleans as yes / no."""
    cols = dict(columns) if isinstance(columns, dict) else {c: c for c in columns}
    out = ["| " + " | ".join(cols.values()) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(format_value(r.get(k)) for k in cols) + " |" for r in rows]
    return "\n".join(out)


def show(markdown_text: str) -> None:
    """Display Markdown as rendered text (wraps at word boundaries, never mid-number)."""
    from IPython.display import Markdown, display

    display(Markdown(markdown_text))


def show_table(rows, columns, *, caption: str | None = None) -> None:
    """Display :func:`markdown_table` rendered, with an optional caption line above it."""
    show((f"{caption}\n\n" if caption else "") + markdown_table(rows, columns))


def live_note(what: str, noise: str) -> None:
    """Label a live cell: in fast mode, a demonstration of the mechanics whose numbers are noise
    (``noise`` says how much); in full mode, what the run is. Displayed as rendered Markdown."""
    if fast():
        show(f"> **Live demonstration (fast mode)** — {what}. It shows the mechanics, not the result: "
             f"{noise}. The numbers the text quotes come from the full run's results above.")
    else:
        show(f"> **Live run (full mode)** — {what}. {noise[:1].upper() + noise[1:]}.")
