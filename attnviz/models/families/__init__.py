"""Model families with their own (native) sparse attention, one module per kind, joined by a dict.

Each family module has the same few names: ``MODEL_TYPES``, ``SETTABLE`` (config fields that
can change on loaded weights), ``GLOBAL_TOKENS``, ``read_pattern`` (what the model applies),
``translate`` (a pattern as the family's own arguments), ``apply`` (set them on a loaded model),
``findings`` (what :func:`attnviz.models.diagnose` warns about) and ``padded_length``. A new
family is one module with those names and one entry per model type below.
"""

from . import bigbird
from . import chunked
from . import layer_typed
from . import local_global
from . import longformer
from . import sliding
from .common import NativeArgs

#: model_type -> family module, in the order error messages list them.
FAMILIES = {
    "longformer": longformer, "led": longformer,
    "big_bird": bigbird,
    "mistral": sliding, "qwen2": sliding,
    "gemma2": layer_typed, "gemma3_text": layer_typed, "gpt_oss": layer_typed, "modernbert": layer_typed,
    "llama4_text": chunked,
    "gpt_neo": local_global,
}

#: model types whose attention does not go through transformers' AttentionInterface.
OWN_ATTENTION = ("longformer", "led", "big_bird", "bigbird_pegasus")

__all__ = ["FAMILIES", "OWN_ATTENTION", "NativeArgs",
           *sorted({module.__name__.rsplit(".", 1)[1] for module in FAMILIES.values()})]
