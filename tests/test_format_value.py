"""One formatter for every table attnviz writes (#16: three copies became ``attnviz.notebook.format_value``)."""

import pytest

from attnviz.notebook import format_value, markdown_table


@pytest.mark.parametrize("value, kwargs, text", [
    (None, {}, "—"),
    (True, {}, "yes"),
    (False, {"group_ints": False}, "no"),
    (0.123456, {}, "0.123"),
    (0.123456, {"digits": 4}, "0.1235"),
    (1234.5, {}, "1,234"),            # whole from 1,000 on (round half to even)
    (2e-05, {}, "2e-05"),
    (9999, {}, "9999"),
    (123456, {}, "123,456"),
    (123456, {"group_ints": False}, "123456"),   # the sweep's tables keep plain ints
    ("a|b", {}, "a\\|b"),
])
def test_by_hand(value, kwargs, text):
    assert format_value(value, **kwargs) == text


def test_markdown_table_uses_it():
    table = markdown_table([{"n": 20000, "acc": 0.8934, "ok": True, "w": None}], {"n": "pairs", "acc": "acc", "ok": "ok", "w": "w"})
    assert table.splitlines()[-1] == "| 20,000 | 0.893 | yes | — |"
