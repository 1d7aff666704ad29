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

Two variants of the data (``variant``):

* ``"plain"``: the documents, truncated to ``max_length`` tokens;
* ``"far"``: :func:`attnviz.tasks.evidence_far`, ``[CLS]`` + ``filler_tokens`` identical filler
  tokens + the document (seeded, deterministic, any classification set): under a window ``w`` and
  no global tokens, ``[CLS]`` sees only ``layers * w / 2`` positions to its right after the last
  layer, so if the filler is longer, nothing of the document can reach the classifier — unless the
  prompt relays it.

Fast paths, so the default grid runs on a 2-core laptop: reach-aware pruning (a prompt cell
without global tokens computes only the positions that can reach ``[CLS]``), the ``sdpa`` backend,
head-only cells need no backward pass through the model, held-out documents evaluated in length
order (little padding), and cells whose masks are identical at this length (a window wider than
twice the sequence is full attention, where ``global_prompt`` changes nothing) trained once:
the copy says ``same_as``.

Resumable: ``results.json`` is rewritten atomically after every cell; a rerun with the same
configuration skips finished cells. Outputs in ``out_dir``: ``results.json``, ``results.md`` (a
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

#: Data variants: the documents as they are, or behind filler tokens (:func:`attnviz.tasks.evidence_far`).
VARIANTS = ("plain", "far")
#: Built-in tasks; ``"documents"`` is BBC News. A ``.jsonl`` / ``.json`` / ``.csv`` file (text, label) also works.
TASKS = ("documents", "bbc", "polarity")
#: Placements a sweep can use (``infix`` needs a position per input, so it is not offered).
SWEEP_PLACEMENTS = ("start", "prefix", "suffix", "scattered")
#: Reference rows: the head alone under each window; a prompt under full attention.
REFERENCES = ("head_only", "full")
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
HTML = "sweep.html"
FORMAT = 1


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
        seed: data draw, head and prompt initialisation, data order.
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

    def __post_init__(self):
        from ..prompts.soft_prompt import INITS

        if not isinstance(self.task, str) or not self.task:
            raise TypeError(f"task must be a string, got {self.task!r}")
        if self.task not in TASKS and Path(self.task).suffix not in (".jsonl", ".json", ".csv"):
            raise ValueError(f"unknown task {self.task!r}; allowed: {', '.join(TASKS)}, or a .jsonl / .json / .csv "
                             f"file with text and label columns")
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; allowed: {', '.join(VARIANTS)}")
        for name in ("windows", "global_prompt", "placements", "references"):
            value = getattr(self, name)
            if isinstance(value, (str, int, bool)) or value is None:
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        if not self.windows:
            raise ValueError("windows is empty; give at least one window, e.g. (32, 128, 512)")
        for w in self.windows:
            if w is None:
                continue
            if isinstance(w, bool) or not isinstance(w, int):
                raise TypeError(f"windows must be ints or None (full attention), got {w!r}")
            if w <= 0 or w % 2:
                raise ValueError(f"window must be an even int >= 2 (the total width, w/2 each side) or None for full "
                                 f"attention, got {w}; try {max(2, w + w % 2)}")
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
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "SweepConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@dataclass(frozen=True)
class Cell:
    """One cell of the grid.

    Attributes:
        kind: ``"prompt"`` (a trained prompt + head), ``"head_only"`` (the head alone) or ``"full"``
            (a prompt under full attention, the reference).
        window: window width, None for full attention.
        global_prompt: prompt tokens attend and are attended globally.
        placement: the prompt's placement, None for ``head_only``.
    """

    kind: str
    window: int | None
    global_prompt: bool = False
    placement: str | None = None

    @property
    def key(self) -> str:
        """A stable name, e.g. ``"w32-prefix-global"``, ``"w32-head-only"``, ``"full-prefix"``."""
        w = "full" if self.window is None else f"w{self.window}"
        if self.kind == "head_only":
            return f"{w}-head-only"
        return f"{w}-{self.placement}" + ("-global" if self.global_prompt else "")

    def pattern(self) -> AttentionPattern:
        return AttentionPattern(window=self.window, global_prompt=self.global_prompt)

    def placement_for(self, config: SweepConfig) -> PromptPlacement | None:
        if self.placement is None:
            return None
        every = config.scatter_every if self.placement == "scattered" else None
        return PromptPlacement(self.placement, n_tokens=config.n_tokens, every=every)


def cells(config: SweepConfig) -> list[Cell]:
    """The cells of ``config``'s grid, in run order: per window the head-only reference (if asked),
    then placement × global_prompt; then the full-attention references (a prompt at the first
    placement, and the head alone), unless the grid has ``None`` among its windows already."""
    out: list[Cell] = []
    for w in config.windows:
        if "head_only" in config.references:
            out.append(Cell("head_only", w))
        for p in config.placements:
            for g in config.global_prompt:
                out.append(Cell("prompt", w, g, p))
    if "full" in config.references and None not in config.windows:
        out.append(Cell("full", None, False, config.placements[0]))
        if "head_only" in config.references:
            out.append(Cell("head_only", None))
    return out


def effective_key(cell: Cell, length: int) -> tuple:
    """What decides a cell's result at sequence length ``length``: a window of ``w >= 2 (length - 1)``
    lets every token see every other (full attention), and under full attention ``global_prompt``
    changes no mask. Cells with equal keys are trained once."""
    window = cell.window
    if window is not None and window // 2 >= length - 1:
        window = None
    glob = cell.global_prompt if window is not None else False
    return (cell.placement, window, glob)


# ---- data -----------------------------------------------------------------------------------------
def _rows(ds) -> list[dict]:
    cols = ds.column_names
    return [{"input_ids": list(r["input_ids"]), "token_type_ids": list(r["token_type_ids"]) if "token_type_ids" in cols
             else [0] * len(r["input_ids"]), "label": int(r["label"])} for r in ds]


def load_sweep_data(config: SweepConfig, tokenizer, *, progress: bool = False) -> tuple[list[dict], list[dict], list[str]]:
    """``(train rows, test rows, label names)``: tokenized (``input_ids``, ``token_type_ids``,
    ``label``), at most ``max_length`` tokens each, in ``config.variant``. Test rows come sorted
    by length (evaluation pads less; accuracy does not depend on the order)."""
    from ..tasks.evidence import evidence_far

    far = config.variant == "far"
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
    if far:
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


def run_cell(cell: Cell, config: SweepConfig, loaded, train: list[dict], test: list[dict], num_labels: int) -> dict:
    """Train and measure one cell; returns its result row (JSON-able)."""
    from ..prompts import ClassificationHead, PromptModel, SoftPrompt
    from ..prompts.training import TrainConfig, evaluate, train_soft_prompt

    base, tokenizer, name = loaded
    hidden = base.get_input_embeddings().weight.shape[1]
    placement = cell.placement_for(config) if cell.kind != "head_only" else None
    pattern = cell.pattern()
    prompt = (SoftPrompt.init(base, tokenizer, placement, config.init, seed=config.seed)
              if placement is not None else None)
    torch.manual_seed(config.seed)
    head = ClassificationHead(hidden, num_labels)
    model = PromptModel(base, head, prompt, pattern, backend=config.backend, tokenizer=tokenizer, model_id=name)
    train_cfg = TrainConfig(steps=config.steps, batch_size=config.batch_size, lr_prompt=config.lr_prompt,
                            lr_head=config.lr_head, eval_every=0, checkpoint_every=0, seed=config.seed)
    cpu0 = time.process_time()
    result = train_soft_prompt(model, train, None, config=train_cfg, out_dir=None, progress=False)
    train_cpu = time.process_time() - cpu0
    t0 = time.perf_counter()
    metrics = evaluate(model, test, batch_size=32)
    eval_seconds = time.perf_counter() - t0
    model.eval()

    longest = max(len(r["input_ids"]) for r in test)
    layout = model.layout(longest)
    num_layers = model.num_layers
    row = {"key": cell.key, "kind": cell.kind, "window": cell.window, "global_prompt": cell.global_prompt,
           "placement": cell.placement, "n_tokens": model.n_tokens, "pattern": describe(pattern),
           "accuracy": metrics["accuracy"], "eval_loss": metrics["loss"], "n_test": metrics["n"],
           "length": layout.length, "train_seconds": result.seconds, "seconds_per_step": result.seconds_per_step,
           "eval_seconds": eval_seconds, "train_cpu_seconds": train_cpu, "pruning": result.pruning, "same_as": None}
    def finish(row):
        row["cpu_seconds"] = time.process_time() - cpu0  # all threads; wall time depends on the machine's load
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
        rows: one dict per cell, in :func:`cells` order (see ``results.json``).
        trained: cells trained by this call (the rest came from an earlier run or a ``same_as`` copy).
        seconds: wall time of this call.
        out_dir: where ``results.json``, ``results.md`` and ``sweep.html`` are.
    """

    rows: list[dict]
    trained: list[str] = field(default_factory=list)
    seconds: float = 0.0
    out_dir: Path | None = None

    def row(self, key: str) -> dict:
        for r in self.rows:
            if r["key"] == key:
                return r
        raise KeyError(f"no cell {key!r}; cells: {[r['key'] for r in self.rows]}")


def _load_previous(path: Path, config: SweepConfig) -> dict:
    import json

    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT or data.get("config") != config.to_dict():
        saved = data.get("config", {})
        diffs = [f"{k}: saved {saved.get(k)!r}, now {v!r}" for k, v in config.to_dict().items() if saved.get(k) != v]
        raise ValueError(f"{path} holds a sweep with another configuration ({'; '.join(diffs) or 'other format'}); "
                         f"use another out_dir, or delete it to start over")
    return {r["key"]: r for r in data.get("rows", [])}


def run_sweep(config: SweepConfig | None = None, out_dir: str | os.PathLike = "sweeps/docs", *, model=None,
              progress: bool = True, html: bool = True) -> SweepResult:
    """Run (or resume) the grid of ``config``; write ``results.json`` after every cell, then
    ``results.md`` and ``sweep.html``.

    Args:
        config: the :class:`SweepConfig` (default: the 30-minute default grid).
        out_dir: the sweep folder (created). A folder holding a sweep with another configuration
            is refused (ValueError), never overwritten.
        model: ``None`` / ``"default"`` (embedded MiniLM), a model name for :func:`attnviz.models.load_model`,
            or ``(model, tokenizer[, name])``, e.g. a tiny model for tests. Its position table is
            extended in place if ``max_length + n_tokens`` needs more positions.
        progress: a ``tqdm.auto`` bar over the cells.
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
    train, test, names = load_sweep_data(config, tokenizer, progress=progress)
    grid = cells(config)
    longest = max(len(r["input_ids"]) for r in train + test)

    header = {"format": FORMAT, "config": config.to_dict(), "model": name, "positions_extended_to": extended,
              "label_names": names, "n_train": len(train), "n_test": len(test), "longest_input": longest,
              "machine": _machine()}
    rows: dict[str, dict] = dict(previous)
    trained: list[str] = []
    by_effect: dict[tuple, str] = {}
    for c in grid:
        if c.key in rows and rows[c.key].get("same_as") is None:
            by_effect.setdefault(effective_key(c, longest + (0 if c.kind == "head_only" else config.n_tokens)), c.key)

    def save():
        ordered = [rows[c.key] for c in grid if c.key in rows]
        atomic_write_json(out / RESULTS_JSON, dict(header, rows=ordered, updated=_now()))

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(grid), initial=sum(c.key in rows for c in grid), desc="sweep", dynamic_ncols=True)
    try:
        for c in grid:
            if c.key in rows:
                continue
            eff = effective_key(c, longest + (0 if c.kind == "head_only" else config.n_tokens))
            if bar is not None:
                bar.set_postfix_str(c.key)
            if eff in by_effect and by_effect[eff] in rows:
                src = rows[by_effect[eff]]
                row = dict(src, key=c.key, kind=c.kind, window=c.window, global_prompt=c.global_prompt,
                           placement=c.placement, pattern=describe(c.pattern()), same_as=src["key"],
                           train_seconds=0.0, eval_seconds=0.0, influence_seconds=0.0, cpu_seconds=0.0,
                           train_cpu_seconds=0.0)
            else:
                row = run_cell(c, config, loaded, train, test, len(names))
                trained.append(c.key)
                by_effect[eff] = c.key
            rows[c.key] = row
            save()
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    ordered = [rows[c.key] for c in grid]
    header["last_run"] = {"seconds": time.perf_counter() - t_start, "cpu_seconds": time.process_time() - cpu_start,
                          "trained": trained, "finished": _now(), "machine_at_end": _machine()}
    save()
    atomic_write(out / RESULTS_MD, markdown_table(ordered, config, header).encode())
    if html:
        from ..plots.html import save_html

        save_html(sweep_figures(ordered, config, longest, num_layers=_num_layers(base)), out / HTML,
                  title=f"attnviz sweep — {config.task}, {config.variant}", text=summary(ordered))
    return SweepResult(ordered, trained, time.perf_counter() - t_start, out)


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
def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def markdown_table(rows: list[dict], config: SweepConfig, header: dict | None = None) -> str:
    """The results as a markdown table, one row per cell, with the configuration above it."""
    cfg = config.to_dict()
    lines = [f"# Prompt-reach sweep: {config.task}, variant {config.variant}", ""]
    if header:
        lines.append(f"Model {header.get('model')}"
                     + (f" (positions extended to {header['positions_extended_to']})" if header.get("positions_extended_to") else "")
                     + f"; {header.get('n_train')} training / {header.get('n_test')} held-out documents, "
                       f"{header.get('longest_input')} tokens at most; labels: {', '.join(header.get('label_names', []))}.")
        if header.get("machine"):
            lines.append(f"Machine: {header['machine']}.")
    lines.append("Settings: " + ", ".join(f"{k}={v}" for k, v in cfg.items()) + ".")
    total = sum(r.get("train_seconds", 0) + r.get("eval_seconds", 0) + r.get("influence_seconds", 0) for r in rows)
    cpu = sum(r.get("cpu_seconds", 0) for r in rows)
    cpu_text = f", {cpu / 60:.1f} min CPU (all threads)" if any("cpu_seconds" in r for r in rows) else ""
    lines.append(f"Time in cells: {total / 60:.1f} min wall{cpu_text}. `reach`: share of positions the prompt reaches after the last "
                 f"layer (spread_pattern); `[CLS] at`: first layer the prompt reaches the readout; `infl. [CLS]`: mean "
                 f"ablation influence on the readout after the last layer; `same as`: trained once, masks identical.")
    lines.append("")
    cols = [("cell", "key"), ("window", "window"), ("global", "global_prompt"), ("placement", "placement"),
            ("accuracy", "accuracy"), ("reach", "reach"), ("[CLS] at", "readout_first_layer"),
            ("infl. [CLS]", "influence_cls"), ("train s", "train_seconds"), ("s/step", "seconds_per_step"),
            ("same as", "same_as")]
    lines.append("| " + " | ".join(c for c, _ in cols) + " |")
    lines.append("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        vals = []
        for _, k in cols:
            v = r.get(k)
            if k == "window" and v is None:
                v = "full"
            if k == "global_prompt" and r.get("kind") == "head_only":
                v = None
            if k == "placement" and r.get("kind") == "head_only":
                v = "head only"
            vals.append(_fmt(v))
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def summary(rows: list[dict]) -> str:
    """One paragraph: best cell, head-only baselines, and global on vs off."""
    best = max(rows, key=lambda r: r["accuracy"])
    parts = [f"Best cell {best['key']}: accuracy {best['accuracy']:.3f}."]
    heads = [r for r in rows if r["kind"] == "head_only"]
    if heads:
        parts.append("Head only: " + ", ".join(f"{r['key']} {r['accuracy']:.3f}" for r in heads) + ".")
    pairs = []
    for r in rows:
        if r["kind"] == "prompt" and r["global_prompt"]:
            off = next((o for o in rows if o["kind"] == "prompt" and not o["global_prompt"]
                        and o["window"] == r["window"] and o["placement"] == r["placement"]), None)
            if off is not None:
                pairs.append(r["accuracy"] - off["accuracy"])
    if pairs:
        parts.append(f"Global prompt on minus off, over {len(pairs)} (window, placement) pairs: mean "
                     f"{sum(pairs) / len(pairs):+.3f}, from {min(pairs):+.3f} to {max(pairs):+.3f}.")
    return " ".join(parts)


def sweep_figures(rows: list[dict], config: SweepConfig, longest: int, *, num_layers: int = 6) -> list:
    """The figures of ``sweep.html`` (drawn by :mod:`attnviz.plots.sweep` and :func:`attnviz.plots.spread_figure`): accuracy per cell, influence on ``[CLS]`` by layer, and the
    structural spread of the smallest window's first placement with global prompt off and on."""
    from ..plots.spread import spread_figure
    from ..plots.sweep import influence_by_layer_figure, sweep_accuracy_figure

    figs = [sweep_accuracy_figure(rows), influence_by_layer_figure(rows)]
    windows = [w for w in config.windows if w is not None]
    if windows:
        w = min(windows)
        for g in config.global_prompt:
            cell = Cell("prompt", w, g, config.placements[0])
            layout = cell.placement_for(config).layout(max(0, longest - 2))
            pattern = cell.pattern()
            figs.append(spread_figure(spread_pattern(pattern, layout, num_layers), layout, pattern=pattern,
                                      title=f"Where the prompt can reach: {cell.key} ({describe(pattern)})"))
    return figs
