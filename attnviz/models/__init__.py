"""Models: loading (embedded default, local folder, hub id), tiny test models, and the bridges
that put an attnviz pattern into a Hugging Face model."""

from .loading import DEFAULT_MODEL, LoadedModel, default_model_path, load_model
from .tiny import FAMILIES, tiny_config, tiny_model
from .interface import BACKENDS, with_pattern

__all__ = ["DEFAULT_MODEL", "LoadedModel", "default_model_path", "load_model", "FAMILIES", "tiny_config", "tiny_model",
           "BACKENDS", "with_pattern"]
