"""attnviz: see and teach how attention-window configuration shapes prompt tuning.

The public API (see DESIGN.md): patterns → layout → masks → spread / models / prompts / influence.
"""

from .patterns import AttentionPattern, build_masks, mask_mod, mask_reasons, REASONS, describe
from .placement import PromptPlacement, SequenceLayout, Segment, insert_prompt, plain_layout
from .spread import Spread, spread

__version__ = "0.1.0"

__all__ = [
    "AttentionPattern", "build_masks", "mask_mod", "mask_reasons", "REASONS", "describe",
    "PromptPlacement", "SequenceLayout", "Segment", "insert_prompt", "plain_layout",
    "Spread", "spread", "with_pattern",
]


def __getattr__(name):
    # with_pattern pulls in transformers; import it only when asked for.
    if name == "with_pattern":
        from .models.interface import with_pattern
        return with_pattern
    raise AttributeError(f"module 'attnviz' has no attribute {name!r}")
