"""The prompt-reach experiment: does the soft prompt reach the text, and does that change accuracy?

    attnviz sweep --task documents --variant far --window 32,128,512 --global-prompt off,on \\
                  --placement prefix,suffix,scattered --out sweeps/docs

For every cell of a grid (window × global prompt on / off × placement) :func:`run_sweep` trains a
soft prompt and a classification head on a frozen model (default: the embedded all-MiniLM-L6-v2,
its position table extended with :func:`attnviz.models.extend_positions` when ``max_length`` needs
more than 512 positions) and records, per cell:

* ``accuracy`` on the held-out documents;
* ``reach``: the share of positions the prompt reaches after the last layer (:func:`attnviz.spread_pattern`
  on the layout of the longest input), and whether / at which layer it reaches the readout ``[CLS]``;
* ``influence_cls``: mean ablation influence (:func:`attnviz.prompt_influence`, dense backend) of the
  trained prompt on the readout token after the last layer, on the first ``influence_examples``
  held-out documents (and per layer, ``influence_cls_by_layer``);
* train and evaluation time.

Reference rows: the head alone (no prompt) under each window, and a prompt under full attention.

Seeds and intervals: every cell runs once per training seed in ``seeds`` (prompt and head
initialisation, data order; the documents drawn stay those of ``seed``, so every seed is scored on
the same held-out documents). ``results.json`` keeps each held-out document's correctness per seed
(``runs``), and each cell's row reports the mean accuracy with a 95 % interval from
:func:`attnviz.stats.estimate`: a percentile bootstrap over held-out documents and seeds (two
seeds or more), the Wilson score interval with one seed; the method is named in the row, the
markdown and the figure.

A window may be a per-layer schedule, e.g. ``(16, 32, 48, 80, 96, 112)`` (increasing with depth),
named ``w16-32-48-80-96-112``.

Three variants of the data (``variant``):

* ``"plain"``: the documents, truncated to ``max_length`` tokens;
* ``"far"``: :func:`attnviz.tasks.evidence_far`, ``[CLS]`` + ``filler_tokens`` identical filler
  tokens + the document (seeded, deterministic, any classification set): under a window ``w`` and
  no global tokens, ``[CLS]`` sees only ``layers * w / 2`` positions to its right after the last
  layer, so if the filler is longer, nothing of the document can reach the classifier — unless the
  prompt relays it.
* ``"position"``: :func:`attnviz.tasks.evidence.evidence_at`, ``[CLS]`` + filler + the document +
  filler + ``[SEP]``, every input ``max_length`` tokens, the document at each of ``positions``
  (fractions of the ``filler_tokens`` free room in front of it: 0 = next to ``[CLS]``, 1 = as far
  as it goes): the evidence-position curve, the window analogue of "Lost in the Middle". Cells
  are named ``…-pos0.5``.

Fast paths, so the default grid runs on a 2-core laptop: reach-aware pruning (a prompt cell
without global tokens computes only the positions that can reach ``[CLS]``), the ``sdpa`` backend,
head-only cells compute the frozen features once per (window, position) and train each seed's head
on them (the prompt-free encoder cannot change with the seed), held-out documents evaluated in length
order (little padding), and cells whose masks are identical at this length (a window wider than
twice the sequence is full attention, where ``global_prompt`` changes nothing) trained once:
the copy says ``same_as``.

Resumable: ``results.json`` is rewritten atomically after every run (cell × seed); a rerun with
the same settings skips finished runs, and may add seeds, positions, windows, placements or
global settings (the grid's axes) to a finished sweep: only the new runs are trained. Outputs in ``out_dir``: ``results.json``, ``results.md`` (a
markdown table) and ``sweep.html`` (offline page of figures).
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from ..files import atomic_write, atomic_write_json
from ..patterns import AttentionPattern, describe
from ..placement import PromptPlacement
from ..spread import spread_pattern
from ..checks import check_int
from ..choices import DOCUMENT_SETS, SWEEP_REFERENCES, SWEEP_VARIANTS
from ..notebook import format_value

#: Data variants: the documents as they are, or behind filler tokens (:func:`attnviz.tasks.evidence_far`).
VARIANTS = SWEEP_VARIANTS
#: Built-in tasks; ``"documents"`` is BBC News. A ``.jsonl`` / ``.json`` / ``.csv`` file (text, label) also works.
TASKS = ("documents", *DOCUMENT_SETS)
#: Placements a sweep can use (``infix`` needs a position per input, so it is not offered).
SWEEP_PLACEMENTS = ("start", "prefix", "suffix", "scattered")
#: Reference rows: the head alone under each window; a prompt under full attention.
REFERENCES = SWEEP_REFERENCES
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
HTML = "sweep.html"
FORMAT = 2
#: Settings that are the grid's axes: a resumed sweep may change these (new runs are added).
AXES = ("windows", "global_prompt", "placements", "references", "seeds", "positions")


@dataclass(frozen=True)
class SweepConfig:
    """One prompt-reach experiment (saved in ``results.json``; a resumed run must match it).

    The defaults are the grid sized for a 2-core laptop (BBC News, evidence far: 128 filler
    tokens, 256 tokens in all, 30 steps of 8 documents, 320 / 100 documents; 22 of its 23 cells are
    trained, ``full-head-only`` is a ``same_as`` copy of ``w512-head-only``). Measured CPU time
    per cell with one thread: 16 s (head only, pruned) to 76 s (global prompt, all 276 positions),
    20.8 CPU-minutes for the whole grid (measured), so at most about 21 minutes of wall time on
    an idle 2-core machine. The issue's full-size setting is ``max_length=492, filler_tokens=256, steps=80, train_size=800, test_size=200``
    (its global-prompt cell: roughly 7 CPU-minutes; 0.93 accuracy, against 0.215 without global).

    Args:
        task: ``"documents"`` / ``"bbc"`` (BBC News, 5 topics), ``"polarity"`` (Pang & Lee
            reviews), or a ``.jsonl`` / ``.json`` / ``.csv`` file with ``text`` and ``label``.
        variant: ``"plain"`` or ``"far"`` (see the module doc).
        windows: the window widths of the grid (bidirectional total width, even, >= 2); ``None``
            = full attention.
        global_prompt: the ``global_prompt`` settings of the grid, e.g. ``(False, True)``.
        placements: prompt placements of the grid (:data:`SWEEP_PLACEMENTS`).
        n_tokens: prompt length.
        max_length: tokens per input, special tokens and filler included (the prompt comes on top).
        filler_tokens, filler: the ``"far"`` variant's filler (count; a one-token word, an id or
            ``"random"``).
        every: text tokens between prompt tokens for ``scattered`` (default: spread the prompt
            evenly over ``max_length``).
        steps, batch_size, lr_prompt, lr_head: training (:class:`attnviz.prompts.TrainConfig`).
        train_size, test_size: documents drawn (seeded) from each split.
        seed: the documents drawn (and a ``"random"`` filler); the same for every training seed.
        seeds: training seeds (prompt and head initialisation, data order): every cell runs once
            per seed, e.g. ``(0, 1, 2)``.
        positions: ``"position"`` variant: where the document sits in the free room, fractions
            0 … 1 (``filler_tokens`` filler in all; the document gets ``max_length - filler_tokens - 2``
            tokens).
        init: prompt initialisation (:meth:`attnviz.prompts.SoftPrompt.init`; ``"text"`` =
            ``[SEP]`` copies + noise, the best start measured).
        backend: ``"sdpa"`` (fast) or ``"dense"`` for training; influence always runs dense.
        references: which reference rows to add (:data:`REFERENCES`).
        influence_examples: held-out documents the influence is measured on (0: skip).
    """

    task: str = "documents"
    variant: str = "far"
    windows: tuple = (32, 128, 512)
    global_prompt: tuple = (False, True)
    placements: tuple = ("prefix", "suffix", "scattered")
    n_tokens: int = 20
    max_length: int = 256
    filler_tokens: int = 128
    filler: str | int = "the"
    every: int | None = None
    steps: int = 30
    batch_size: int = 8
    train_size: int = 320
    test_size: int = 100
    seed: int = 0
    lr_prompt: float = 3e-2
    lr_head: float = 1e-2
    init: str = "text"
    backend: str = "sdpa"
    references: tuple = REFERENCES
    influence_examples: int = 8
    seeds: tuple = (0,)
    positions: tuple = (0.0, 0.5, 1.0)

    def __post_init__(self):
        from ..prompts.soft_prompt import INITS

        if not isinstance(self.task, str) or not self.task:
            raise TypeError(f"task must be a string, got {self.task!r}")
        if self.task not in TASKS and Path(self.task).suffix not in (".jsonl", ".json", ".csv"):
            raise ValueError(f"unknown task {self.task!r}; allowed: {', '.join(TASKS)}, or a .jsonl / .json / .csv "
                             f"file with text and label columns")
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; allowed: {', '.join(VARIANTS)}")
        for name in ("windows", "global_prompt", "placements", "references", "seeds", "positions"):
            value = getattr(self, name)
            if isinstance(value, (str, int, float, bool)) or value is None:
                value = (value,)
            object.__setattr__(self, name, tuple(tuple(v) if isinstance(v, list) else v for v in value))
        if not self.windows:
            raise ValueError("windows is empty; give at least one window, e.g. (32, 128, 512)")
        for entry in self.windows:
            if entry is None:
                continue
            if isinstance(entry, tuple) and not entry:
                raise ValueError("a per-layer window schedule is empty; give one even int per layer")
            for w in (entry if isinstance(entry, tuple) else (entry,)):
                if isinstance(w, bool) or not isinstance(w, int):
                    raise TypeError(f"windows must be ints, per-layer tuples of ints, or None (full attention), got {entry!r}")
                if w <= 0 or w % 2:
                    raise ValueError(f"window must be an even int >= 2 (the total width, w/2 each side) or None for "
                                     f"full attention, got {w}; try {max(2, w + w % 2)}")
        if len(set(self.windows)) != len(self.windows):
            raise ValueError(f"windows has duplicates: {self.windows}")
        if not self.global_prompt or not all(isinstance(g, bool) for g in self.global_prompt):
            raise ValueError(f"global_prompt must be a non-empty tuple of bools, e.g. (False, True), got {self.global_prompt!r}")
        if len(set(self.global_prompt)) != len(self.global_prompt):
            raise ValueError(f"global_prompt has duplicates: {self.global_prompt}")
        if not self.placements:
            raise ValueError(f"placements is empty; allowed: {', '.join(SWEEP_PLACEMENTS)}")
        for p in self.placements:
            if p not in SWEEP_PLACEMENTS:
                raise ValueError(f"unknown placement {p!r}; allowed in a sweep: {', '.join(SWEEP_PLACEMENTS)}")
        if len(set(self.placements)) != len(self.placements):
            raise ValueError(f"placements has duplicates: {self.placements}")
        for r in self.references:
            if r not in REFERENCES:
                raise ValueError(f"unknown reference {r!r}; allowed: {', '.join(REFERENCES)}")
        for name, minimum in (("n_tokens", 1), ("max_length", 4), ("filler_tokens", 0), ("steps", 1),
                              ("batch_size", 1), ("train_size", 1), ("test_size", 1), ("seed", 0),
                              ("influence_examples", 0)):
            check_int(name, getattr(self, name), minimum)
        if self.every is not None:
            check_int("every", self.every, 1)
        if not self.seeds:
            raise ValueError("seeds is empty; give at least one training seed, e.g. (0, 1, 2)")
        for s in self.seeds:
            check_int("seeds", s, 0)
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds has duplicates: {self.seeds}")
        if not self.positions:
            raise ValueError("positions is empty; give fractions of the free room, e.g. (0.0, 0.5, 1.0)")
        for p in self.positions:
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
                raise ValueError(f"positions must be fractions in [0, 1] (0: next to [CLS], 1: after all the filler), "
                                 f"got {p!r}")
        object.__setattr__(self, "positions", tuple(float(p) for p in self.positions))
        if len(set(self.positions)) != len(self.positions):
            raise ValueError(f"positions has duplicates: {self.positions}")
        if self.variant == "position" and self.max_length < self.filler_tokens + 3:
            raise ValueError(f"max_length {self.max_length} leaves no room for the document beside {self.filler_tokens} "
                             f"filler tokens; use max_length >= {self.filler_tokens + 3}")
        if self.variant == "far" and self.max_length < self.filler_tokens + 3:
            raise ValueError(f"max_length {self.max_length} leaves no room for the document after [CLS] and "
                             f"{self.filler_tokens} filler tokens; use max_length >= {self.filler_tokens + 3}, "
                             f"e.g. {2 * self.filler_tokens}")
        for name in ("lr_prompt", "lr_head"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; allowed: {', '.join(INITS)}")
        if self.backend not in ("dense", "sdpa"):
            raise ValueError(f"backend must be 'dense' or 'sdpa' (training runs there; flex cannot train on CPU), "
                             f"got {self.backend!r}")

    @property
    def scatter_every(self) -> int:
        """``every`` of the scattered placement: given, or the prompt spread evenly over ``max_length``."""
        return self.every if self.every is not None else max(1, (self.max_length - 2) // self.n_tokens)

    def to_dict(self) -> dict:
        def plain(v):
            return [plain(x) for x in v] if isinstance(v, tuple) else v
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "SweepConfig":
        def tup(v):
            return tuple(tup(x) for x in v) if isinstance(v, list) else v
        return cls(**{k: tup(v) for k, v in d.items()})

    @property
    def article_tokens(self) -> int:
        """``"position"`` variant: document tokens per input (``max_length - filler_tokens - 2``)."""
        return self.max_length - self.filler_tokens - 2


@dataclass(frozen=True)
class Cell:
    """One cell of the grid.

    Attributes:
        kind: ``"prompt"`` (a trained prompt + head), ``"head_only"`` (the head alone) or ``"full"``
            (a prompt under full attention, the reference).
        window: window width, a per-layer tuple (a schedule), or None for full attention.
        global_prompt: prompt tokens attend and are attended globally.
        placement: the prompt's placement, None for ``head_only``.
        position: ``"position"`` variant: where the document sits (0 … 1); None otherwise.
    """

    kind: str
    window: int | tuple | None
    global_prompt: bool = False
    placement: str | None = None
    position: float | None = None

    @property
    def key(self) -> str:
        """A stable name, e.g. ``"w32-prefix-global"``, ``"w32-head-only"``, ``"full-prefix"``,
        ``"w16-32-48-80-96-112-prefix-global"``, ``"w32-prefix-pos0.5"``."""
        w = window_name(self.window)
        pos = "" if self.position is None else f"-pos{self.position:g}"
        if self.kind == "head_only":
            return f"{w}-head-only{pos}"
        return f"{w}-{self.placement}" + ("-global" if self.global_prompt else "") + pos

    def pattern(self) -> AttentionPattern:
        return AttentionPattern(window=self.window, global_prompt=self.global_prompt)

    def placement_for(self, config: SweepConfig) -> PromptPlacement | None:
        if self.placement is None:
            return None
        every = config.scatter_every if self.placement == "scattered" else None
        return PromptPlacement(self.placement, n_tokens=config.n_tokens, every=every)


def window_name(window) -> str:
    """``"w32"``, ``"w16-32-48"`` (a per-layer schedule) or ``"full"``."""
    if window is None:
        return "full"
    if isinstance(window, tuple):
        return "w" + "-".join(str(w) for w in window)
    return f"w{window}"


def run_key(cell: Cell, seed: int) -> str:
    """The name of one run: the cell's key and the training seed, e.g. ``"w32-prefix-global#s1"``."""
    return f"{cell.key}#s{seed}"


def cells(config: SweepConfig) -> list[Cell]:
    """The cells of ``config``'s grid, in run order: per position (``"position"`` variant, in the
    order given) and per window the head-only reference (if asked), then placement × global_prompt;
    then the full-attention references (a prompt at the first placement, and the head alone),
    unless the grid has ``None`` among its windows already."""
    out: list[Cell] = []
    for pos in (config.positions if config.variant == "position" else (None,)):
        for w in config.windows:
            if "head_only" in config.references:
                out.append(Cell("head_only", w, position=pos))
            for p in config.placements:
                for g in config.global_prompt:
                    out.append(Cell("prompt", w, g, p, pos))
        if "full" in config.references and None not in config.windows:
            out.append(Cell("full", None, False, config.placements[0], pos))
            if "head_only" in config.references:
                out.append(Cell("head_only", None, position=pos))
    return out


def effective_key(cell: Cell, length: int) -> tuple:
    """What decides a cell's result at sequence length ``length``: a window of ``w >= 2 (length - 1)``
    lets every token see every other (full attention), and under full attention ``global_prompt``
    changes no mask. Cells with equal keys are trained once."""
    window = cell.window
    widths = window if isinstance(window, tuple) else (window,)
    if window is not None and all(w // 2 >= length - 1 for w in widths):
        window = None
    glob = cell.global_prompt if window is not None else False
    return (cell.placement, window, glob, cell.position)


# ---- data -----------------------------------------------------------------------------------------
def _rows(ds) -> list[dict]:
    cols = ds.column_names
    return [{"input_ids": list(r["input_ids"]), "token_type_ids": list(r["token_type_ids"]) if "token_type_ids" in cols
             else [0] * len(r["input_ids"]), "label": int(r["label"])} for r in ds]


def load_sweep_data(config: SweepConfig, tokenizer, *, progress: bool = False,
                    position: float | None = None) -> tuple[list[dict], list[dict], list[str]]:
    """``(train rows, test rows, label names)``: tokenized (``input_ids``, ``token_type_ids``,
    ``label``), at most ``max_length`` tokens each, in ``config.variant``. Test rows come sorted
    by length (evaluation pads less; accuracy does not depend on the order). ``position``: the
    ``"position"`` variant's document position (default: ``config.positions[0]``)."""
    from ..tasks.evidence import evidence_at, evidence_far

    far = config.variant in ("far", "position")
    if config.task in TASKS:
        from ..tasks.documents import load_documents, prepare_documents

        name = "polarity" if config.task == "polarity" else "bbc"
        prepare_documents(name, progress=progress)  # idempotent: reuses a verified cache
        train = load_documents(name, "train", limit=config.train_size, seed=config.seed)
        test = load_documents(name, "test", limit=config.test_size, seed=config.seed)
        names = list(train.features["label"].names)
        if not far:
            enc = lambda b: tokenizer(b["text"], truncation=True, max_length=config.max_length)
            train = train.map(enc, batched=True, remove_columns=["text"], keep_in_memory=True)
            test = test.map(enc, batched=True, remove_columns=["text"], keep_in_memory=True)
    else:
        from ..tasks.loading import load_task

        task = load_task(config.task, tokenizer, max_length=config.max_length, train_limit=config.train_size,
                         eval_limit=config.test_size, seed=config.seed)
        train, test, names = task.train, task.eval, list(task.label_names)
    if config.variant == "position":
        pos = config.positions[0] if position is None else position
        kw = dict(filler_tokens=config.filler_tokens, article_tokens=config.article_tokens, filler=config.filler,
                  seed=config.seed, tokenizer=tokenizer)
        train, test = evidence_at(train, pos, **kw), evidence_at(test, pos, **kw)
    elif far:
        kw = dict(filler_tokens=config.filler_tokens, filler=config.filler, seed=config.seed, tokenizer=tokenizer,
                  max_length=config.max_length)
        train, test = evidence_far(train, **kw), evidence_far(test, **kw)
    train_rows, test_rows = _rows(train), _rows(test)
    test_rows.sort(key=lambda r: len(r["input_ids"]))
    return train_rows, test_rows, names


# ---- one cell -------------------------------------------------------------------------------------
def _as_loaded(model):
    from ..models import load_model

    if model is None or isinstance(model, str):
        return load_model(model or "default")
    base, tokenizer, *name = model
    return base, tokenizer, (name[0] if name else getattr(base.config, "_name_or_path", "") or type(base).__name__)


def _ensure_positions(base, tokenizer, needed: int) -> int | None:
    """Extend ``base``'s learned positions (copies, Longformer's recipe) when ``needed`` exceeds them;
    returns the new number of positions, or None when nothing changed."""
    from ..models.anatomy import max_positions
    from ..models.positions import extend_positions

    have = max_positions(base)
    if have is None or needed <= have:
        return None
    target = -(-needed // have) * have  # whole copies of the table
    extend_positions(base, target)
    return target


def _readout_influence(model, rows: list[dict], pattern, tokenizer) -> dict:
    from ..influence import prompt_influence
    from ..tasks.batching import collate

    batch = collate(rows)
    inf = prompt_influence(model.base, model.prompt, {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")},
                           pattern, method="ablation", backend="dense", tokenizer=tokenizer)
    at_readout = inf.values[torch.arange(inf.batch_size), :, inf.readout]       # (B, layers + 1)
    per_layer = at_readout.mean(0)
    tokens = (inf.values[:, -1] * inf.valid).sum(1) / inf.valid.sum(1)          # (B,)
    return {"influence_cls": float(per_layer[-1]), "influence_cls_by_layer": [float(v) for v in per_layer],
            "influence_tokens": float(tokens.mean()), "influence_n": inf.batch_size,
            "influence_zero_where_unreached": bool((inf.values[~inf.reached] == 0).all())}


def _evaluate_rows(model, test: list[dict], batch_size: int = 32) -> dict:
    """Held-out metrics and each document's correctness, in ``test`` order:
    ``{"accuracy", "loss", "n", "correct": [0 / 1 per document]}``."""
    import torch.nn.functional as F

    from ..tasks.batching import collate

    was = model.training
    model.eval()
    correct: list[int] = []
    loss_sum = 0.0
    try:
        with torch.no_grad():
            for i in range(0, len(test), batch_size):
                batch = collate(test[i:i + batch_size])
                logits = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
                loss_sum += float(F.cross_entropy(logits.float(), batch["labels"], reduction="sum"))
                correct += (logits.argmax(-1) == batch["labels"]).long().tolist()
    finally:
        model.train(was)
    n = len(correct)
    return {"accuracy": sum(correct) / n, "loss": loss_sum / n, "n": n, "correct": correct}


def frozen_features(model, rows: list[dict], batch_size: int = 32) -> torch.Tensor:
    """The pooled vectors a prompt-free :class:`~attnviz.prompts.PromptModel`'s head reads, float
    (N, hidden): the frozen encoder under the model's pattern, computed once (no gradient)."""
    from ..tasks.batching import collate

    was = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for i in range(0, len(rows), batch_size):
                b = collate(rows[i:i + batch_size])
                prepared = model.prepare(b["input_ids"], b["attention_mask"], b.get("token_type_ids"))
                out.append(model.head.pool(model.hidden_states(prepared), prepared.readout).float())
    finally:
        model.train(was)
    return torch.cat(out)


def _train_head_on_features(head, feats: torch.Tensor, labels: torch.Tensor, cfg) -> dict:
    """The head-only training of :func:`attnviz.prompts.train_soft_prompt` (AdamW, warm-up + linear
    schedule, gradient clipping, the same batches from ``batch_indices``) on cached features."""
    import torch.nn.functional as F

    from ..prompts.training import batch_indices

    warm, steps = int(round(cfg.warmup * cfg.steps)), cfg.steps

    def factor(step: int) -> float:   # train_soft_prompt's schedule: warm-up, then linear (or constant)
        if warm and step < warm:
            return (step + 1) / (warm + 1)
        return 1.0 if cfg.schedule == "constant" else max(0.0, (steps - step) / max(1, steps - warm))

    params = [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": params, "lr": cfg.lr_head, "weight_decay": cfg.weight_decay}])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    head.train()
    t0 = time.perf_counter()
    for step in range(cfg.steps):
        idx = torch.tensor(batch_indices(step, len(labels), cfg.batch_size, cfg.seed))
        logits = head.classifier(head.dropout(feats[idx]))
        loss = F.cross_entropy(logits, labels[idx])
        opt.zero_grad()
        loss.backward()
        if cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step()
        sched.step()
    head.eval()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "seconds_per_step": seconds / cfg.steps}


def run_cell(cell: Cell, config: SweepConfig, loaded, train: list[dict], test: list[dict], num_labels: int,
             seed: int | None = None, features: dict | None = None) -> dict:
    """Train and measure one cell with one training seed; returns its result row (JSON-able), with
    ``correct``: each held-out document's correctness (0 / 1, in ``test`` order).

    Args:
        seed: the training seed (default ``config.seeds[0]``).
        features: a cache for head-only cells, ``{(window, position): (train feats, test feats)}``;
            filled on first use, so further seeds train only the head.
    """
    from ..prompts import ClassificationHead, PromptModel, SoftPrompt
    from ..prompts.training import TrainConfig, train_soft_prompt

    seed = config.seeds[0] if seed is None else seed
    base, tokenizer, name = loaded
    hidden = base.get_input_embeddings().weight.shape[1]
    placement = cell.placement_for(config) if cell.kind != "head_only" else None
    pattern = cell.pattern()
    prompt = (SoftPrompt.init(base, tokenizer, placement, config.init, seed=seed)
              if placement is not None else None)
    torch.manual_seed(seed)
    head = ClassificationHead(hidden, num_labels)
    model = PromptModel(base, head, prompt, pattern, backend=config.backend, tokenizer=tokenizer, model_id=name)
    train_cfg = TrainConfig(steps=config.steps, batch_size=config.batch_size, lr_prompt=config.lr_prompt,
                            lr_head=config.lr_head, eval_every=0, checkpoint_every=0, seed=seed)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    if prompt is None:
        cache_key = (cell.window, cell.position)
        cache = features if features is not None else {}
        if cache_key not in cache:
            cache[cache_key] = (frozen_features(model, train), frozen_features(model, test))
        f_train, f_test = cache[cache_key]
        info = _train_head_on_features(head, f_train, torch.tensor([r["label"] for r in train]), train_cfg)
        train_seconds, per_step, pruning = time.perf_counter() - t0, info["seconds_per_step"], "cached features"
        train_cpu = time.process_time() - cpu0
        t0 = time.perf_counter()
        with torch.no_grad():
            logits = head.classifier(f_test)
            labels = torch.tensor([r["label"] for r in test])
            loss = float(torch.nn.functional.cross_entropy(logits, labels))
            correct = (logits.argmax(-1) == labels).long().tolist()
        metrics = {"accuracy": sum(correct) / len(correct), "loss": loss, "n": len(correct), "correct": correct}
    else:
        result = train_soft_prompt(model, train, None, config=train_cfg, out_dir=None, progress=False)
        train_seconds, per_step, pruning = result.seconds, result.seconds_per_step, result.pruning
        train_cpu = time.process_time() - cpu0
        t0 = time.perf_counter()
        metrics = _evaluate_rows(model, test)
    eval_seconds = time.perf_counter() - t0
    model.eval()

    longest = max(len(r["input_ids"]) for r in test)
    layout = model.layout(longest)
    num_layers = model.num_layers
    row = {"key": cell.key, "run": run_key(cell, seed), "seed": seed, "kind": cell.kind,
           "window": list(cell.window) if isinstance(cell.window, tuple) else cell.window,
           "global_prompt": cell.global_prompt, "placement": cell.placement, "position": cell.position,
           "n_tokens": model.n_tokens, "pattern": describe(pattern),
           "accuracy": metrics["accuracy"], "eval_loss": metrics["loss"], "n_test": metrics["n"],
           "length": layout.length, "train_seconds": train_seconds, "seconds_per_step": per_step,
           "eval_seconds": eval_seconds, "train_cpu_seconds": train_cpu, "pruning": pruning, "same_as": None}

    def finish(row):
        row["cpu_seconds"] = time.process_time() - cpu0  # all threads; wall time depends on the machine's load
        row["correct"] = metrics["correct"]
        return row

    if prompt is None:
        row.update(reach=None, reaches_readout=None, readout_first_layer=None, influence_cls=None,
                   influence_cls_by_layer=None, influence_tokens=None)
        return finish(row)
    reach = spread_pattern(pattern, layout, num_layers)
    first = int(reach.first_layer[layout.readout_position])
    row.update(reach=reach.fraction_reached(num_layers), reaches_readout=first >= 0,
               readout_first_layer=first if first >= 0 else None)
    if config.influence_examples:
        t0 = time.perf_counter()
        row.update(_readout_influence(model, test[:config.influence_examples], pattern, tokenizer))
        row["influence_seconds"] = time.perf_counter() - t0
    return finish(row)


# ---- the sweep --------------------------------------------------------------------------------------
@dataclass
class SweepResult:
    """What :func:`run_sweep` returns.

    Attributes:
        rows: one dict per cell, in :func:`cells` order: the seeds pooled (:func:`aggregate`:
            mean accuracy, 95 % interval ``low`` / ``high`` and its ``interval`` method).
        runs: one dict per (cell, seed) run, with ``correct`` per held-out document.
        trained: runs trained by this call (the rest came from an earlier run or a ``same_as`` copy).
        seconds: wall time of this call.
        out_dir: where ``results.json``, ``results.md`` and ``sweep.html`` are.
    """

    rows: list[dict]
    trained: list[str] = field(default_factory=list)
    seconds: float = 0.0
    out_dir: Path | None = None
    runs: list[dict] = field(default_factory=list)

    def row(self, key: str) -> dict:
        for r in self.rows:
            if r["key"] == key:
                return r
        raise KeyError(f"no cell {key!r}; cells: {[r['key'] for r in self.rows]}")


def _load_previous(path: Path, config: SweepConfig) -> dict:
    """Finished runs of an earlier call in the same folder, by run key. The settings must match;
    the grid's axes (:data:`AXES`) may differ (runs are added or left out)."""
    import json

    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    now = config.to_dict()
    saved = data.get("config", {})
    same = {k: v for k, v in now.items() if k not in AXES} == {k: v for k, v in saved.items() if k not in AXES}
    if data.get("format") != FORMAT or not same:
        diffs = [f"{k}: saved {saved.get(k)!r}, now {v!r}" for k, v in now.items()
                 if k not in AXES and saved.get(k) != v]
        raise ValueError(f"{path} holds a sweep with another configuration ({'; '.join(diffs) or 'other format'}); "
                         f"use another out_dir, or delete it to start over")
    return {r["run"]: r for r in data.get("runs", [])}


def aggregate(cell: Cell, runs: list[dict]) -> dict:
    """One cell's row from its runs (one per seed): mean accuracy over seeds and held-out documents,
    the 95 % interval of :func:`attnviz.stats.estimate` (``low``, ``high``, ``interval`` = the
    method), per-seed accuracies, mean influence on ``[CLS]`` (and per seed), summed times."""
    from ..stats import estimate

    first = runs[0]
    est = estimate([r["correct"] for r in runs])
    row = {k: first.get(k) for k in ("key", "kind", "window", "global_prompt", "placement", "position", "n_tokens",
                                     "pattern", "length", "reach", "reaches_readout", "readout_first_layer",
                                     "pruning", "n_test")}
    row.update(seeds=[r["seed"] for r in runs], accuracy=est.mean, low=est.low, high=est.high, interval=est.method,
               accuracy_by_seed=[r["accuracy"] for r in runs],
               same_as=first.get("same_as"))
    mean = lambda xs: sum(xs) / len(xs)
    if first.get("influence_cls") is not None:
        row["influence_cls"] = mean([r["influence_cls"] for r in runs])
        row["influence_cls_by_seed"] = [r["influence_cls"] for r in runs]
        layers = [r["influence_cls_by_layer"] for r in runs]
        row["influence_cls_by_layer"] = [mean(v) for v in zip(*layers)]
        row["influence_zero_where_unreached"] = all(r.get("influence_zero_where_unreached", True) for r in runs)
    else:
        row.update(influence_cls=None, influence_cls_by_layer=None)
    for k in ("train_seconds", "eval_seconds", "influence_seconds", "cpu_seconds", "train_cpu_seconds"):
        row[k] = sum(r.get(k) or 0.0 for r in runs)
    row["seconds_per_step"] = mean([r.get("seconds_per_step") or 0.0 for r in runs])
    return row


def run_sweep(config: SweepConfig | None = None, out_dir: str | os.PathLike = "sweeps/docs", *, model=None,
              progress: bool = True, html: bool = True) -> SweepResult:
    """Run (or resume) the grid of ``config`` × its seeds; write ``results.json`` after every run,
    then ``results.md`` and ``sweep.html``.

    Args:
        config: the :class:`SweepConfig` (default: the 30-minute default grid).
        out_dir: the sweep folder (created). A folder holding a sweep with other settings is
            refused (ValueError), never overwritten; other axes (:data:`AXES`) add runs.
        model: ``None`` / ``"default"`` (embedded MiniLM), a model name for :func:`attnviz.models.load_model`,
            or ``(model, tokenizer[, name])``, e.g. a tiny model for tests. Its position table is
            extended in place if ``max_length + n_tokens`` needs more positions.
        progress: a ``tqdm.auto`` bar over the runs.
        html: write ``sweep.html``.
    """
    config = config or SweepConfig()
    if not isinstance(config, SweepConfig):
        raise TypeError(f"config must be a SweepConfig, got {type(config).__name__}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} exists and is not a folder")
    previous = _load_previous(out / RESULTS_JSON, config)
    out.mkdir(parents=True, exist_ok=True)
    t_start, cpu_start = time.perf_counter(), time.process_time()
    loaded = _as_loaded(model)
    base, tokenizer, name = loaded
    extended = _ensure_positions(base, tokenizer, config.max_length + config.n_tokens)
    grid = cells(config)
    data: dict = {}

    def data_for(position):
        if position not in data:
            data[position] = load_sweep_data(config, tokenizer, progress=progress, position=position)
        return data[position]

    train, test, names = data_for(grid[0].position)
    longest = max(len(r["input_ids"]) for r in train + test)

    header = {"format": FORMAT, "config": config.to_dict(), "model": name, "positions_extended_to": extended,
              "label_names": names, "n_train": len(train), "n_test": len(test), "longest_input": longest,
              "machine": _machine()}
    runs: dict[str, dict] = dict(previous)
    trained: list[str] = []
    by_effect: dict[tuple, str] = {}
    plan = [(c, s) for c in grid for s in config.seeds]

    def eff_of(c, s):
        return effective_key(c, longest + (0 if c.kind == "head_only" else config.n_tokens)) + (s,)

    for c, s in plan:
        r = runs.get(run_key(c, s))
        if r is not None and r.get("same_as") is None:
            by_effect.setdefault(eff_of(c, s), run_key(c, s))

    def save():
        done = [runs[run_key(c, s)] for c, s in plan if run_key(c, s) in runs]
        atomic_write_json(out / RESULTS_JSON, dict(header, rows=_cell_rows(), runs=done, updated=_now()))

    def _cell_rows():
        rows = []
        for c in grid:
            rs = [runs[run_key(c, s)] for s in config.seeds if run_key(c, s) in runs]
            if rs:
                rows.append(aggregate(c, rs))
        return rows

    features: dict = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan), initial=sum(run_key(c, s) in runs for c, s in plan), desc="sweep", dynamic_ncols=True)
    try:
        for c, s in plan:
            key = run_key(c, s)
            if key in runs:
                continue
            eff = eff_of(c, s)
            if bar is not None:
                bar.set_postfix_str(key)
            if eff in by_effect and by_effect[eff] in runs:
                src = runs[by_effect[eff]]
                row = dict(src, key=c.key, run=key, kind=c.kind,
                           window=list(c.window) if isinstance(c.window, tuple) else c.window,
                           global_prompt=c.global_prompt, placement=c.placement, pattern=describe(c.pattern()),
                           same_as=src["key"], train_seconds=0.0, eval_seconds=0.0, influence_seconds=0.0,
                           cpu_seconds=0.0, train_cpu_seconds=0.0)
            else:
                tr, te, _ = data_for(c.position)
                row = run_cell(c, config, loaded, tr, te, len(names), seed=s, features=features)
                trained.append(key)
                by_effect[eff] = key
            runs[key] = row
            save()
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    ordered = _cell_rows()
    done = [runs[run_key(c, s)] for c, s in plan]
    header["last_run"] = {"seconds": time.perf_counter() - t_start, "cpu_seconds": time.process_time() - cpu_start,
                          "trained": trained, "finished": _now(), "machine_at_end": _machine()}
    save()
    atomic_write(out / RESULTS_MD, markdown_table(ordered, config, header).encode())
    if html:
        from ..plots.html import save_html

        save_html(sweep_figures(ordered, config, longest, num_layers=_num_layers(base)), out / HTML,
                  title=f"attnviz sweep — {config.task}, {config.variant}", text=summary(ordered))
    return SweepResult(ordered, trained, time.perf_counter() - t_start, out, done)


def _num_layers(base) -> int:
    from ..models.anatomy import num_layers

    return num_layers(base)


def _machine() -> str:
    """Cores, CPU, torch version and the load average when the sweep started (timings depend on it)."""
    import platform

    cpu = platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                   if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = ", load average at start %.1f / %.1f / %.1f (1 / 5 / 15 min)" % os.getloadavg()
    return f"{os.cpu_count()} cores, {cpu}, torch {torch.__version__}, {torch.get_num_threads()} threads{load}"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ---- reports ----------------------------------------------------------------------------------------
def markdown_table(rows: list[dict], config: SweepConfig, header: dict | None = None) -> str:
    """The results as a markdown table, one row per cell (seeds pooled: mean accuracy and its 95 %
    interval, the method named), with the configuration above it."""
    cfg = config.to_dict()
    lines = [f"# Prompt-reach sweep: {config.task}, variant {config.variant}", ""]
    if header:
        lines.append(f"Model {header.get('model')}"
                     + (f" (positions extended to {header['positions_extended_to']})" if header.get("positions_extended_to") else "")
                     + f"; {header.get('n_train')} training / {header.get('n_test')} held-out documents, "
                       f"{header.get('longest_input')} tokens at most; labels: {', '.join(header.get('label_names', []))}.")
        if header.get("machine"):
            lines.append(f"Machine: {header['machine']}.")
        if header.get("last_run", {}).get("finished"):
            lines.append(f"Finished {header['last_run']['finished']}.")
    lines.append("Settings: " + ", ".join(f"{k}={v}" for k, v in cfg.items()) + ".")
    methods = sorted({r["interval"] for r in rows if r.get("interval")})
    lines.append(f"Seeds: {', '.join(str(s) for s in config.seeds)} (training: prompt / head initialisation and data "
                 f"order; every seed is scored on the same held-out documents). Accuracy: mean over seeds and "
                 f"documents; 95 % interval: {'; '.join(methods) or '—'}.")
    total = sum(r.get("train_seconds", 0) + r.get("eval_seconds", 0) + r.get("influence_seconds", 0) for r in rows)
    cpu = sum(r.get("cpu_seconds", 0) for r in rows)
    cpu_text = f", {cpu / 60:.1f} min CPU (all threads)" if any("cpu_seconds" in r for r in rows) else ""
    lines.append(f"Time in cells: {total / 60:.1f} min wall{cpu_text}. `reach`: share of positions the prompt reaches after the last "
                 f"layer (spread_pattern); `[CLS] at`: first layer the prompt reaches the readout; `infl. [CLS]`: mean "
                 f"ablation influence on the readout after the last layer (mean over seeds); `same as`: trained once, "
                 f"masks identical.")
    lines.append("")
    cols = [("cell", "key"), ("window", "window"), ("global", "global_prompt"), ("placement", "placement")]
    if config.variant == "position":
        cols.append(("position", "position"))
    cols += [("accuracy", "accuracy"), ("95 % interval", "_interval"), ("per seed", "accuracy_by_seed"),
             ("reach", "reach"), ("[CLS] at", "readout_first_layer"), ("infl. [CLS]", "influence_cls"),
             ("train s", "train_seconds"), ("s/step", "seconds_per_step"), ("same as", "same_as")]
    lines.append("| " + " | ".join(c for c, _ in cols) + " |")
    lines.append("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        vals = []
        for _, k in cols:
            v = r.get(k)
            if k == "window":
                v = "full" if v is None else ("-".join(str(x) for x in v) if isinstance(v, (list, tuple)) else v)
            if k == "global_prompt" and r.get("kind") == "head_only":
                v = None
            if k == "placement" and r.get("kind") == "head_only":
                v = "head only"
            if k == "_interval":
                v = f"{r['low']:.3f}–{r['high']:.3f}" if r.get("low") is not None else None
            if k == "accuracy_by_seed" and v is not None:
                v = " / ".join(f"{x:.3f}" for x in v)
            if k == "accuracy" and v is not None:
                v = f"{v:.3f}"
            vals.append(format_value(v, group_ints=False))
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def summary(rows: list[dict]) -> str:
    """One paragraph: best cell, head-only baselines, and global on vs off."""
    best = max(rows, key=lambda r: r["accuracy"])
    parts = [f"Best cell {best['key']}: accuracy {best['accuracy']:.3f} (95 % {best['low']:.3f}–{best['high']:.3f})."]
    heads = [r for r in rows if r["kind"] == "head_only"]
    if heads:
        parts.append("Head only: " + ", ".join(f"{r['key']} {r['accuracy']:.3f}" for r in heads) + ".")
    pairs = []
    for r in rows:
        if r["kind"] == "prompt" and r["global_prompt"]:
            off = next((o for o in rows if o["kind"] == "prompt" and not o["global_prompt"] and o["window"] == r["window"]
                        and o["placement"] == r["placement"] and o.get("position") == r.get("position")), None)
            if off is not None:
                pairs.append(r["accuracy"] - off["accuracy"])
    if pairs:
        parts.append(f"Global prompt on minus off, over {len(pairs)} cell pairs: mean "
                     f"{sum(pairs) / len(pairs):+.3f}, from {min(pairs):+.3f} to {max(pairs):+.3f}.")
    return " ".join(parts)


def sweep_figures(rows: list[dict], config: SweepConfig, longest: int, *, num_layers: int = 6) -> list:
    """The figures of ``sweep.html``: accuracy per cell with its 95 % interval
    (:func:`attnviz.plots.evidence.interval_figure`), the evidence-position curve for the
    ``"position"`` variant (:func:`attnviz.plots.evidence.position_figure`), influence on ``[CLS]``
    by layer, and the structural spread of the smallest window's first placement with global
    prompt off and on."""
    from ..plots.evidence import interval_figure, position_figure
    from ..plots.spread import spread_figure
    from ..plots.sweep import influence_by_layer_figure

    figs = [interval_figure(rows)]
    if config.variant == "position" and len(config.positions) > 1:
        figs.append(position_figure(rows))
    named = [dict(r, window=None if r["window"] is None else
                  ("-".join(str(w) for w in r["window"]) if isinstance(r["window"], list) else str(r["window"])))
             for r in rows]   # schedules and plain windows side by side: one name each
    figs.append(influence_by_layer_figure(named))
    windows = [w for w in config.windows if w is not None]
    if windows:
        w = min(windows, key=lambda x: sum(x) if isinstance(x, tuple) else x * num_layers)
        for g in config.global_prompt:
            cell = Cell("prompt", w, g, config.placements[0])
            layout = cell.placement_for(config).layout(max(0, longest - 2))
            pattern = cell.pattern()
            figs.append(spread_figure(spread_pattern(pattern, layout, num_layers), layout, pattern=pattern,
                                      title=f"Where the prompt can reach: {cell.key} ({describe(pattern)})"))
    return figs
