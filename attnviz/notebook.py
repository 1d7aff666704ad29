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
