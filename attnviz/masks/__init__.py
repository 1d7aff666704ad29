"""Mask families as parts, one module each, joined by :data:`MASK_PARTS`.

A new family is one module with a :class:`MaskPart` subclass (see :mod:`attnviz.masks.part` for
the contract) and one entry below; :class:`attnviz.AttentionPattern` takes its instances as
``parts=(...)``, and its reason code is appended to :data:`attnviz.REASONS` in this order.
"""

from .part import ALLOW, RESTRICT, ROLES, MaskPart
from .strided import Strided
from .summary import SummaryColumns

#: name -> mask part class, in reason-code order.
MASK_PARTS = {
    "strided": Strided,
    "summary": SummaryColumns,
}


def part_from_text(text: str) -> MaskPart:
    """``"NAME:SETTINGS"`` (``attnviz spread --part strided:8``) -> the part."""
    name, _, settings = text.partition(":")
    name = name.strip().lower()
    if name not in MASK_PARTS:
        raise ValueError(f"unknown mask part {name!r} in {text!r}; known: {', '.join(MASK_PARTS)} (attnviz.masks)")
    if not settings.strip():
        raise ValueError(f"mask part {text!r} needs its settings after a colon, e.g. {name}:8")
    return MASK_PARTS[name].from_text(settings)


def part_from_dict(d: dict) -> MaskPart:
    """The part ``MaskPart.to_dict`` wrote: ``{"part": name, **settings}``."""
    if not isinstance(d, dict) or d.get("part") not in MASK_PARTS:
        raise ValueError(f"not a saved mask part: {d!r}; expected {{'part': one of {sorted(MASK_PARTS)}, ...}}")
    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k != "part"}
    return MASK_PARTS[d["part"]](**settings)


__all__ = ["ALLOW", "RESTRICT", "ROLES", "MASK_PARTS", "MaskPart", "part_from_dict", "part_from_text",
           *(cls.__name__ for cls in MASK_PARTS.values())]
