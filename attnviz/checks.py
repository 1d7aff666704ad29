"""Argument checks shared by the whole package: one answer to "is this an int?"."""

from __future__ import annotations

import numpy as np


def is_int(x) -> bool:
    """True for Python and numpy integers, False for bools (``True`` is not a count)."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def check_int(name: str, value, minimum: int, *, none_ok: bool = False) -> None:
    """Raise ``TypeError`` unless ``value`` is an int (numpy ints too, bools not; ``None`` where
    ``none_ok``), and ``ValueError`` if it is below ``minimum``; both name the value."""
    if none_ok and value is None:
        return
    if not is_int(value):
        what = "an int or None" if none_ok else "an int"
        raise TypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
