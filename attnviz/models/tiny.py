"""Tiny random models built from configs, for tests and for showing mechanics offline.

No long-context weights can be downloaded here, so the mechanics of Longformer, BigBird, LED,
Mistral, Llama 4 (text) and GPT-2 are shown on small random models (same code paths, seconds to run). Weights are
seeded: the same call gives the same model.
"""

from __future__ import annotations

import difflib

import torch
import transformers as tf

FAMILIES = ("bert", "gpt2", "mistral", "llama4", "longformer", "bigbird", "led")

_COMMON = dict(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=64, max_position_embeddings=512)


def tiny_config(family: str, **overrides):
    """The config of :func:`tiny_model` (eager attention, dropout off), with ``overrides`` applied."""
    if family == "bert":
        cfg = tf.BertConfig(**_COMMON, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    elif family == "gpt2":
        cfg = tf.GPT2Config(vocab_size=128, bos_token_id=0, eos_token_id=0, n_embd=32, n_layer=2, n_head=4, n_positions=512,
                            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    elif family == "mistral":
        cfg = tf.MistralConfig(**_COMMON, num_key_value_heads=2, sliding_window=None, head_dim=8)
    elif family == "llama4":  # 4 layers: 0-2 chunked (RoPE), 3 full (NoPE); attention_chunk_size=8192 unless set
        cfg = tf.Llama4TextConfig(**{**_COMMON, "num_hidden_layers": 4}, num_key_value_heads=2, head_dim=8,
                                  intermediate_size_mlp=64, num_local_experts=2, num_experts_per_tok=1)
    elif family == "longformer":
        cfg = tf.LongformerConfig(**_COMMON, attention_window=[4, 4], hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0, pad_token_id=1, bos_token_id=0,
                                  eos_token_id=2, sep_token_id=2)
        cfg.max_position_embeddings = 514  # RoBERTa-style offset of padding_idx + 1
    elif family == "bigbird":
        cfg = tf.BigBirdConfig(**_COMMON, attention_type="block_sparse", block_size=4, num_random_blocks=2,
                               hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    elif family == "led":
        cfg = tf.LEDConfig(vocab_size=128, d_model=32, encoder_layers=2, decoder_layers=2,
                           encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                           decoder_ffn_dim=64, max_encoder_position_embeddings=512,
                           max_decoder_position_embeddings=512, attention_window=[4, 4], dropout=0.0,
                           attention_dropout=0.0, activation_dropout=0.0)
    else:
        raise ValueError(f"unknown tiny model family {family!r}; allowed: {', '.join(FAMILIES)}")
    for key, value in overrides.items():
        if not hasattr(cfg, key):
            close = difflib.get_close_matches(key, [k for k in cfg.to_dict() if not k.startswith("_")], n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see the config's to_dict() for its settings"
            raise ValueError(f"{type(cfg).__name__} has no setting {key!r} (got {key}={value!r}){hint}")
        setattr(cfg, key, value)
    cfg._attn_implementation = "eager"
    return cfg


def tiny_model(family: str, *, seed: int = 0, model_class=None, **overrides):
    """A small random ``family`` model (2 layers, hidden 32, 4 heads, vocab 128) in eval mode.

    Args:
        family: one of :data:`FAMILIES`.
        seed: weights are drawn under ``torch.manual_seed(seed)`` (global RNG state is restored).
        model_class: defaults to the base model (``AutoModel``); e.g. ``AutoModelForCausalLM``.
        **overrides: config attributes, e.g. ``num_hidden_layers=4`` or ``attention_window=[2, 6]``.
    """
    cfg = tiny_config(family, **overrides)
    cls = model_class or tf.AutoModel
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # Auto classes have from_config; concrete model classes (e.g. LongformerForSequenceClassification) _from_config.
        build = cls.from_config if hasattr(cls, "from_config") else cls._from_config
        model = build(cfg, attn_implementation="eager")
    return model.eval()
