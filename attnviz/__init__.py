"""attnviz: see and teach how attention-window configuration shapes prompt tuning.

The public API (see DESIGN.md): patterns → layout → masks → spread / models / prompts / influence.
Every name is imported on first use, so ``import attnviz`` (and ``attnviz --help``) stays light:
torch and transformers load when a name that needs them is touched.
"""

import sys as _sys
import types as _types

__version__ = "0.1.0"

# name -> the module that defines it
_LAZY = {
    **dict.fromkeys(("AttentionPattern", "build_masks", "mask_mod", "mask_reasons", "REASONS", "describe"),
                    "attnviz.patterns"),
    **dict.fromkeys(("PromptPlacement", "SequenceLayout", "Segment", "insert_prompt", "plain_layout"),
                    "attnviz.placement"),
    **dict.fromkeys(("Spread", "spread", "spread_pattern"), "attnviz.spread"),
    "with_pattern": "attnviz.models.interface",
    **dict.fromkeys(("capture_attention", "AttentionMaps", "capture_rows", "AttentionRows"), "attnviz.capture"),
    **dict.fromkeys(("prompt_influence", "InfluenceMap"), "attnviz.influence"),
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value          # later lookups skip this function
        return value
    raise AttributeError(f"module 'attnviz' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


class _Package(_types.ModuleType):
    """``attnviz.spread`` is a function and a submodule of the same name. Importing the submodule
    sets the package attribute to the module; keep the function there (as an eager
    ``from .spread import spread`` did), so ``from attnviz import spread`` is always the function."""

    def __setattr__(self, name, value):
        if name == "spread" and isinstance(value, _types.ModuleType):
            value = value.spread
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
