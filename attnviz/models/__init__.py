"""Models: loading (embedded default, local folder, hub id), tiny test models, and the bridges
that put an attnviz pattern into a Hugging Face model (``with_pattern`` through transformers'
AttentionInterface; ``native`` for Longformer / BigBird / LED / Mistral / Gemma / ModernBERT)."""

from .loading import DEFAULT_MODEL, LoadedModel, default_model_path, load_model
from .tiny import FAMILIES, tiny_config, tiny_model
from .interface import BACKENDS, with_pattern
from .native import NativeArgs, apply_native, pattern_of, to_native
from .diagnose import Finding, diagnose
from .positions import extend_positions, position_table

__all__ = [
    "DEFAULT_MODEL", "LoadedModel", "default_model_path", "load_model",
    "FAMILIES", "tiny_config", "tiny_model",
    "BACKENDS", "with_pattern",
    "NativeArgs", "apply_native", "pattern_of", "to_native",
    "Finding", "diagnose",
    "extend_positions", "position_table",
]
