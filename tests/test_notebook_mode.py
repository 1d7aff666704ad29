"""ATTNVIZ_FAST switches notebooks between fast (CI, handouts) and full (real results) mode."""

import plotly.io as pio
import pytest

from attnviz.notebook import by_mode, fast, setup


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("ON", True), ("0", False),
                                             ("", False), ("no", False)])
def test_fast_reads_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("ATTNVIZ_FAST", value)
    assert fast() is expected
    assert by_mode(fast=20, full=300) == (20 if expected else 300)


def test_unset_means_full_and_setup_configures_offline_rendering(monkeypatch):
    monkeypatch.delenv("ATTNVIZ_FAST", raising=False)
    old = pio.renderers.default
    try:
        assert setup() == "attnviz notebook mode: full"
        assert pio.renderers.default == "plotly_mimetype+notebook"
    finally:
        pio.renderers.default = old
    assert by_mode(fast=1, full=2) == 2


def test_setup_silences_library_progress_bars(monkeypatch):
    import datasets
    from transformers.utils import logging as hf_logging

    monkeypatch.delenv("ATTNVIZ_FAST", raising=False)
    old = pio.renderers.default
    try:
        datasets.enable_progress_bars()
        hf_logging.enable_progress_bar()
        setup()
        assert not datasets.is_progress_bar_enabled()
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        pio.renderers.default = old
        datasets.enable_progress_bars()
        hf_logging.enable_progress_bar()
