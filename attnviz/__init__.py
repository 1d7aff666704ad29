"""attnviz: see and teach how attention-window configuration shapes prompt tuning.

The public API (see DESIGN.md): patterns → layout → masks → spread / models / prompts / influence.
"""

from .patterns import AttentionPattern, build_masks, mask_mod, mask_reasons, REASONS, describe
from .placement import PromptPlacement, SequenceLayout, Segment, insert_prompt, plain_layout
from .spread import Spread, spread, spread_pattern

__version__ = "0.1.0"

__all__ = [
    "AttentionPattern", "build_masks", "mask_mod", "mask_reasons", "REASONS", "describe",
    "PromptPlacement", "SequenceLayout", "Segment", "insert_prompt", "plain_layout",
    "Spread", "spread", "spread_pattern", "with_pattern", "capture_attention", "AttentionMaps",
    "capture_rows", "AttentionRows", "prompt_influence", "InfluenceMap",
]

# Names that pull in transformers are imported only when first used (keeps `import attnviz` light).
_LAZY = {
    "with_pattern": "attnviz.models.interface",
    "capture_attention": "attnviz.capture",
    "AttentionMaps": "attnviz.capture",
    "capture_rows": "attnviz.capture",
    "AttentionRows": "attnviz.capture",
    "prompt_influence": "attnviz.influence",
    "InfluenceMap": "attnviz.influence",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'attnviz' has no attribute {name!r}")
