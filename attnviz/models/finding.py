"""One diagnosis finding: what goes wrong, with the numbers, and the fix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """One problem: ``kind`` (a short code), ``message`` (what happens, with the numbers), ``fix``."""

    kind: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.message} Fix: {self.fix}"
