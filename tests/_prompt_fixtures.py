"""Shared helpers of the prompt tests: a tiny WordPiece tokenizer matching tiny_model("bert"), a tiny
separable classification set, and a deterministic tiny run (also used by the kill-and-resume child)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from transformers import BertTokenizerFast

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["good", "bad", "great", "awful", "fine", "poor", "the", "a", "film", "food", "was", "is", "very",
         "not", "and", "but", "it", "this", "that", "plot", "acting", "service", "yes", "no", "maybe",
         "entailment", "neutral", "contradiction", "positive", "negative", ".", ","]
FILLER = ["the", "a", "film", "food", "was", "is", "very", "and", "it", "this", "plot", "acting", "service"]


def tiny_tokenizer(folder: Path, vocab_size: int = 128) -> BertTokenizerFast:
    """A WordPiece tokenizer with ids < ``vocab_size`` ([PAD]=0, [CLS]=2, [SEP]=3), saved in ``folder``."""
    extra = [f"w{i}" for i in range(vocab_size - len(SPECIAL) - len(WORDS))]
    vocab = SPECIAL + WORDS + extra
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    Path(folder).mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(folder)  # a folder load_model / AutoTokenizer can read
    return tok


def batch(tok, texts, pairs=None):
    enc = tok(texts, pairs, padding=True, return_tensors="pt") if pairs else tok(texts, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]


def sentiment_rows(n: int, seed: int) -> list[dict]:
    """Raw rows ``{"text", "label"}``: one polar word (label 1 good/great/fine, 0 bad/awful/poor) among filler."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 8))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(["good", "great", "fine"] if label else ["bad", "awful", "poor"]))
        rows.append({"text": " ".join(words), "label": label})
    return rows


def encode(tok, rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        enc = tok(r["text"])
        out.append({"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"], "label": r["label"]})
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def make_run(folder: Path, *, window=None, placement: str = "prefix", n_tokens: int = 4, pooling: str = "mean",
             backend: str = "dense"):
    """A deterministic tiny setup: ``(model, train_rows, eval_rows)`` (same call, same tensors)."""
    from attnviz import AttentionPattern, PromptPlacement
    from attnviz.models import tiny_model
    from attnviz.prompts import ClassificationHead, PromptModel, SoftPrompt

    tok = tiny_tokenizer(Path(folder) / "tokenizer")
    base = tiny_model("bert", num_hidden_layers=2)
    prompt = SoftPrompt.init(base, tok, PromptPlacement(placement, n_tokens=n_tokens), seed=0) if n_tokens else None
    torch.manual_seed(0)
    head = ClassificationHead(32, 2, pooling=pooling)
    model = PromptModel(base, head, prompt, AttentionPattern(window=window), backend=backend, tokenizer=tok,
                        model_id="tiny-bert")
    return model, encode(tok, sentiment_rows(48, 0)), encode(tok, sentiment_rows(16, 1))
