"""Classification data for prompt training: the NLI task, or a local JSONL / CSV file.

:func:`load_task` returns a :class:`TaskData` with tokenized ``datasets.Dataset`` splits (columns
``input_ids``, ``token_type_ids``, ``label``) and the label names, ready for
:func:`attnviz.prompts.train_soft_prompt` (batched by :func:`attnviz.tasks.batching.collate`).

* ``"nli"``: :func:`attnviz.tasks.nli.load_nli` (premise / hypothesis / label, label names from
  its ``ClassLabel``; ``nli_kwargs`` pass ``source=``, ``balanced=``, ``with_title=``); pairs are
  tokenized as ``[CLS] premise [SEP] hypothesis [SEP]``.
* a ``.jsonl`` / ``.json`` / ``.csv`` file: one example per line / row with a text column
  (``text``, or the pair ``premise`` + ``hypothesis``, ``text`` + ``text_pair``, ``sentence1`` +
  ``sentence2``) and ``label`` (an int, or a string: names are sorted). A ``split`` column
  (``train`` / ``test`` / ``validation``) picks the held-out rows; without one, a seeded 20 % is
  held out.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PAIR_FIELDS = (("premise", "hypothesis"), ("text", "text_pair"), ("sentence1", "sentence2"), ("question", "sentence"))
FILE_SUFFIXES = (".jsonl", ".json", ".csv")


@dataclass
class TaskData:
    """A tokenized classification task.

    Attributes:
        name: ``"nli"`` or the file path.
        train, eval: ``datasets.Dataset`` with ``input_ids``, ``token_type_ids``, ``label``.
        label_names: class names, index = label id.
        text_fields: the raw columns used (one, or two for pairs).
        info: JSON-able description saved with checkpoints.
    """

    name: str
    train: object
    eval: object
    label_names: list[str]
    text_fields: tuple[str, ...]
    info: dict = field(default_factory=dict)


def _read_rows(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    text = path.read_text()
    if path.suffix == ".json" and text.lstrip().startswith("["):
        return json.loads(text)
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{i} is not a JSON object ({exc.msg})") from None
    return rows


def _text_fields(columns) -> tuple[str, ...]:
    for pair in PAIR_FIELDS:
        if all(c in columns for c in pair):
            return pair
    if "text" in columns:
        return ("text",)
    raise ValueError(f"no text column found among {sorted(columns)}; use 'text', or a pair "
                     + ", ".join(f"{a}+{b}" for a, b in PAIR_FIELDS))


def _labels(values: list, names: list[str] | None = None) -> tuple[list[int], list[str]]:
    """Label ids and names from int-like or string labels."""
    def as_int(v):
        try:
            return int(v)
        except (TypeError, ValueError):
            return None

    ints = [as_int(v) for v in values]
    if all(i is not None for i in ints):
        n = max(ints) + 1
        if min(ints) < 0:
            raise ValueError(f"labels must be >= 0, got {min(ints)}")
        return ints, names or [str(i) for i in range(n)]
    names = names or sorted({str(v) for v in values})
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted({str(v) for v in values} - set(index))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the label names {names}")
    return [index[str(v)] for v in values], names


def _from_file(path: Path, seed: int):
    from datasets import Dataset

    rows = _read_rows(path)
    if not rows:
        raise ValueError(f"{path} has no examples")
    columns = set(rows[0])
    fields_ = _text_fields(columns)
    if "label" not in columns:
        raise ValueError(f"{path} has no 'label' column (columns: {sorted(columns)})")
    ids, names = _labels([r["label"] for r in rows])
    data = {f: [str(r[f]) for r in rows] for f in fields_}
    data["label"] = ids
    if "split" in columns:
        split = [str(r["split"]).lower() for r in rows]
        train_idx = [i for i, s in enumerate(split) if s == "train"]
        eval_idx = [i for i, s in enumerate(split) if s in ("test", "validation", "eval", "dev")]
    else:
        order = np.random.default_rng(seed).permutation(len(rows))
        cut = max(1, int(round(0.2 * len(rows))))
        eval_idx, train_idx = sorted(order[:cut].tolist()), sorted(order[cut:].tolist())
    if not train_idx or not eval_idx:
        raise ValueError(f"{path}: need both training and held-out rows (got {len(train_idx)} and {len(eval_idx)})")
    full = Dataset.from_dict(data)
    return full.select(train_idx), full.select(eval_idx), names, fields_


def _from_nli(seed: int, nli_kwargs: dict, train_limit: int | None, eval_limit: int | None):
    try:
        from .nli import load_nli
    except ImportError as exc:
        raise ValueError(f"the NLI task needs attnviz.tasks.nli (load_nli), which is not available here ({exc}); "
                         f"give a local .jsonl / .csv file with premise, hypothesis, label instead") from None

    def one(split, limit):
        kwargs = dict(nli_kwargs)
        kwargs.setdefault("seed", seed)
        if limit is not None:
            kwargs["limit"] = limit
        res = load_nli(split, **kwargs)
        names = None
        if isinstance(res, tuple):
            res, names = res[0], list(res[1])
        if names is None:
            feat = getattr(res, "features", {}).get("label")
            names = list(getattr(feat, "names", []) or []) or None
        if names is None:
            names = list(getattr(res, "label_names", []) or []) or None
        return res, names

    train, names = one("train", train_limit)
    held, names2 = one("test", eval_limit)
    names = names or names2
    if names is None:
        names = [str(i) for i in range(max(train["label"]) + 1)]
    return train, held, names, ("premise", "hypothesis")


def load_task(task: str, tokenizer, *, max_length: int = 128, train_limit: int | None = None,
              eval_limit: int | None = None, seed: int = 0, nli_kwargs: dict | None = None) -> TaskData:
    """Load and tokenize a classification task.

    Args:
        task: ``"nli"`` or a path to a ``.jsonl`` / ``.json`` / ``.csv`` file.
        tokenizer: the model's tokenizer.
        max_length: truncate inputs to this many tokens (special tokens included); the prompt comes
            on top, so ``max_length + n_tokens`` must fit the model's positions.
        train_limit, eval_limit: keep only the first N examples of each split (after a seeded shuffle).
        seed: the shuffle for the limits and the held-out split of files without ``split``.
        nli_kwargs: extra keyword arguments for ``load_nli``.
    """
    path = Path(task)
    if task == "nli":
        train, held, names, fields_ = _from_nli(seed, nli_kwargs or {}, train_limit, eval_limit)
    elif path.suffix in FILE_SUFFIXES:
        if not path.is_file():
            raise ValueError(f"task file {path} does not exist")
        train, held, names, fields_ = _from_file(path, seed)
    else:
        raise ValueError(f"unknown task {task!r}: give 'nli' or a .jsonl / .json / .csv file")

    def limit(ds, n, salt):
        if n is None or n >= len(ds):
            return ds
        order = np.random.default_rng([seed, salt]).permutation(len(ds))[:n]
        return ds.select(sorted(order.tolist()))

    train, held = limit(train, train_limit, 1), limit(held, eval_limit, 2)

    def encode(batch):
        args = [batch[f] for f in fields_]
        enc = tokenizer(*args, truncation=True, max_length=max_length)
        out = {"input_ids": enc["input_ids"], "label": [int(x) for x in batch["label"]]}
        out["token_type_ids"] = enc.get("token_type_ids") or [[0] * len(i) for i in enc["input_ids"]]
        return out

    cols = lambda ds: [c for c in ds.column_names]
    train = train.map(encode, batched=True, remove_columns=cols(train), keep_in_memory=True)
    held = held.map(encode, batched=True, remove_columns=cols(held), keep_in_memory=True)
    info = {"name": task, "label_names": names, "text_fields": list(fields_), "max_length": max_length,
            "train_limit": train_limit, "eval_limit": eval_limit, "seed": seed,
            "n_train": len(train), "n_eval": len(held)}
    return TaskData(task, train, held, names, fields_, info)
