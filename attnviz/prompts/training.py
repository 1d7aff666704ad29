"""Train a soft prompt (and a small head) on a frozen model, on CPU or GPU, without losing the run.

:func:`train_soft_prompt` runs on 🤗 accelerate (device placement, mixed precision; the same code
runs under ``accelerate launch`` on several GPUs, each process taking its share of every batch).
AdamW or Adafactor with separate learning rates for the prompt and the head, linear warm-up then
linear decay (or constant), gradient clipping, evaluation every ``eval_every`` steps, a
``tqdm.auto`` progress bar with loss and accuracy, a callback that can stop the run, and
checkpoints every ``checkpoint_every`` steps and at the end (:mod:`attnviz.prompts.checkpoints`).

``resume=`` continues a run exactly: the data order is a pure function of ``(seed, step)`` (a
fresh permutation of the training set per epoch from ``numpy.random.default_rng([seed, epoch])``),
and the checkpoint carries the prompt, head, optimizer, scheduler and every RNG state, so a run
killed after step ``k`` and resumed ends with the same prompt tensor, bit for bit, as a run that
was never interrupted (tested with a real ``SIGKILL``).

Default learning rates (prompt 3e-2, head 1e-2) are the ones measured to work on a frozen
all-MiniLM-L6-v2 (BBC News, batch 8): a prompt needs a much larger step than fine-tuning because
its vectors start far from where they are useful and nothing else moves.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoints import (
    CheckpointError, _from_json, _jsonable, check_compatible, latest_checkpoint, list_checkpoints, load_checkpoint, optimizer_from_flat,
    optimizer_to_flat, prune_checkpoints, rng_state, save_checkpoint, set_rng_state, step_dir, write_json_atomic)
from ..models.interface import flex_kernel_count, flex_trains_on, flex_training_error
from ..tasks.batching import collate
from .heads import QAHead
from .model import PromptModel

from ..choices import MIXED_PRECISION, OPTIMIZERS, SCHEDULES  # noqa: E402  (defined once, torch-free)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`train_soft_prompt` (saved with every checkpoint).

    Args:
        steps: optimizer steps in total (a resumed run may raise it to train longer).
        batch_size: examples per step and process.
        lr_prompt, lr_head: learning rates of the prompt vectors and of the head.
        weight_decay: AdamW weight decay of the head (the prompt has none).
        optimizer: ``"adamw"`` or ``"adafactor"`` (``torch.optim.Adafactor``, less memory).
        schedule: ``"linear"`` (warm-up, then linear decay to 0) or ``"constant"`` (after warm-up).
        warmup: warm-up length as a fraction of ``steps``.
        max_grad_norm: gradient clipping of prompt and head together (0 = off).
        eval_every: evaluate on the held-out data every N steps (0 = only at the end).
        checkpoint_every: write a checkpoint every N steps (0 = only at the end).
        keep_checkpoints: how many checkpoints to keep (older ones are deleted after a newer one
            is safely written).
        eval_batch_size: batch size of evaluation.
        seed: seeds python / numpy / torch and the data order.
        mixed_precision: ``"no"``, ``"bf16"`` or ``"fp16"`` (accelerate's autocast).
    """

    steps: int = 300
    batch_size: int = 8
    lr_prompt: float = 3e-2
    lr_head: float = 1e-2
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    schedule: str = "linear"
    warmup: float = 0.1
    max_grad_norm: float = 1.0
    eval_every: int = 50
    checkpoint_every: int = 50
    keep_checkpoints: int = 3
    eval_batch_size: int = 32
    seed: int = 0
    mixed_precision: str = "no"

    def __post_init__(self):
        for name in ("steps", "batch_size", "eval_batch_size", "keep_checkpoints"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        for name in ("eval_every", "checkpoint_every", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        for name in ("lr_prompt", "lr_head"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; allowed: {', '.join(SCHEDULES)}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        if self.max_grad_norm < 0:
            raise ValueError(f"max_grad_norm must be >= 0 (0 = no clipping), got {self.max_grad_norm}; "
                             f"try 1.0 (the default) or 0 to turn clipping off")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}; try 0.0 or 0.01")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"unknown mixed_precision {self.mixed_precision!r}; allowed: {', '.join(MIXED_PRECISION)}")


class NonFiniteError(FloatingPointError):
    """The loss or the trained tensors became NaN / inf; the run stopped without writing them.

    Attributes:
        step: the step whose loss (or update) was not finite.
        checkpoint: the last good checkpoint (written before that step), or None.
    """

    def __init__(self, message: str, step: int, checkpoint: Path | None):
        super().__init__(message)
        self.step, self.checkpoint = step, checkpoint


def make_accelerator(mixed_precision: str = "no", **kwargs):
    """An ``accelerate.Accelerator`` with ``mixed_precision`` for this run.

    accelerate keeps one process-wide ``AcceleratorState`` and refuses a second ``Accelerator``
    with another precision ("AcceleratorState has already been initialized and cannot be
    changed"). The precision is a property of the run, not of the process, so its part of the state
    is cleared first when it differs; the process group (``PartialState``: ranks, devices, gloo /
    nccl) is kept. An ``Accelerator`` made earlier with the old precision should not be used after.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if mixed_precision not in MIXED_PRECISION:
        raise ValueError(f"unknown mixed_precision {mixed_precision!r}; allowed: {', '.join(MIXED_PRECISION)}")
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision", mixed_precision) != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(mixed_precision=mixed_precision, **kwargs)


def _finite(tensors) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


@dataclass
class TrainEvent:
    """What the callback gets after every step. Return ``True`` (or ``"stop"``) to stop the run;
    a checkpoint is written first, so the stopped run is usable and resumable.

    Attributes:
        step, steps: steps done, steps planned.
        loss, accuracy: of this step's batch (accuracy None for QA).
        lr_prompt, lr_head: learning rates used in this step.
        eval: held-out metrics if evaluated at this step, else None.
        checkpoint: the checkpoint written at this step, else None.
        seconds: wall time of this step.
        model: the :class:`PromptModel` (read ``model.prompt.weight`` for live plots).
    """

    step: int
    steps: int
    loss: float
    accuracy: float | None
    lr_prompt: float
    lr_head: float
    eval: dict | None
    checkpoint: Path | None
    seconds: float
    model: PromptModel


@dataclass
class TrainResult:
    """What :func:`train_soft_prompt` returns."""

    step: int
    steps: int
    stopped: bool
    history: list[dict] = field(default_factory=list)
    eval: dict | None = None
    checkpoint: Path | None = None
    seconds: float = 0.0
    seconds_per_step: float = 0.0
    resumed_from: Path | None = None
    pruning: str = ""
    trainable: dict = field(default_factory=dict)
    flex_kernels: int | None = None
    """flex only: compiled-kernel signatures this run added (see
    :func:`attnviz.models.interface.flex_kernel_count`); None for other backends."""


# ---- data ---------------------------------------------------------------------------------------
def batch_indices(step: int, n_examples: int, batch_size: int, seed: int, *, world: int = 1, rank: int = 0) -> list[int]:
    """Example indices of step ``step`` (0-based) for process ``rank`` of ``world``.

    The order is an endless concatenation of permutations, one per epoch, each from
    ``numpy.random.default_rng([seed, epoch])``: a pure function of ``(seed, step)``, so a resumed
    run sees exactly the batches the uninterrupted one would have seen.
    """
    if n_examples < 1:
        raise ValueError("the training data is empty")
    start = (step * world + rank) * batch_size
    out, perms = [], {}
    for pos in range(start, start + batch_size):
        epoch, i = divmod(pos, n_examples)
        if epoch not in perms:
            perms[epoch] = np.random.default_rng([seed, epoch]).permutation(n_examples)
        out.append(int(perms[epoch][i]))
    return out


def _examples(data, idx: list[int]) -> list[dict]:
    return [data[i] for i in idx]


def _loss(model: PromptModel, logits, batch) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(loss, correct (B,) bool or None)``."""
    if isinstance(model.head, QAHead):
        start, end = logits
        loss = (F.cross_entropy(start.float(), batch["start_positions"]) + F.cross_entropy(end.float(), batch["end_positions"])) / 2
        correct = (start.argmax(-1) == batch["start_positions"]) & (end.argmax(-1) == batch["end_positions"])
        return loss, correct
    if "labels" not in batch:
        raise ValueError("classification examples need a 'label' (or 'labels') field")
    loss = F.cross_entropy(logits.float(), batch["labels"])
    return loss, logits.argmax(-1) == batch["labels"]


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def _model_inputs(batch: dict) -> dict:
    return {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


@torch.no_grad()
def evaluate(model: PromptModel, data, *, batch_size: int = 32, accelerator=None, progress: bool = False) -> dict:
    """Held-out metrics: ``{"loss", "accuracy", "n"}`` (QA: accuracy = exact start and end match).

    Args:
        model: a :class:`PromptModel` (or the accelerate-wrapped one).
        data: a sequence of tokenized examples (see :func:`collate`).
    """
    inner = _unwrap(model, accelerator)
    device = accelerator.device if accelerator is not None else next(inner.parameters()).device
    was_training = inner.training
    inner.eval()
    total, correct, loss_sum = 0, 0, 0.0
    try:
        starts = range(0, len(data), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="evaluate", leave=False)
        for i in starts:
            batch = _to(collate(_examples(data, list(range(i, min(i + batch_size, len(data)))))), device)
            ctx = accelerator.autocast() if accelerator is not None else _nullcontext()
            with ctx:
                logits = model(**_model_inputs(batch))
            loss, ok = _loss(inner, logits, batch)
            n = batch["input_ids"].shape[0]
            total += n
            loss_sum += float(loss) * n
            correct += int(ok.sum())
    finally:
        inner.train(was_training)
    if total == 0:
        raise ValueError("the evaluation data is empty")
    return {"loss": loss_sum / total, "accuracy": correct / total, "n": total}


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _unwrap(model, accelerator):
    if accelerator is not None:
        model = accelerator.unwrap_model(model)
    return getattr(model, "module", model)


# ---- optimizer and schedule ---------------------------------------------------------------------
def _optimizer(model: PromptModel, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = []
    if model.prompt is not None:
        groups.append({"params": list(model.prompt.parameters()), "lr": cfg.lr_prompt, "weight_decay": 0.0})  # + .deep
    groups.append({"params": [p for p in model.head.parameters() if p.requires_grad], "lr": cfg.lr_head,
                   "weight_decay": cfg.weight_decay})
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups)
    if not hasattr(torch.optim, "Adafactor"):
        raise ValueError(f"optimizer='adafactor' needs torch.optim.Adafactor (torch >= 2.5), not in torch {torch.__version__}")
    return torch.optim.Adafactor(groups)


def _schedule(cfg: TrainConfig) -> Callable[[int], float]:
    warm = int(round(cfg.warmup * cfg.steps))
    steps = cfg.steps

    def factor(step: int) -> float:  # step = optimizer steps done so far
        if warm and step < warm:
            return (step + 1) / (warm + 1)
        if cfg.schedule == "constant":
            return 1.0
        return max(0.0, (steps - step) / max(1, steps - warm))

    return factor


# ---- the loop -----------------------------------------------------------------------------------
def train_soft_prompt(
    model: PromptModel,
    train_data,
    eval_data=None,
    *,
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
    resume: bool | str | Path = False,
    callback: Callable[[TrainEvent], bool | str | None] | None = None,
    accelerator=None,
    progress: bool = True,
    task: dict | None = None,
    **overrides,
) -> TrainResult:
    """Train ``model.prompt`` and ``model.head`` (the base stays frozen); return a :class:`TrainResult`.

    Args:
        model: the :class:`PromptModel` (prompt None = head-only baseline).
        train_data: a sequence (e.g. a ``datasets.Dataset``) of tokenized examples, see :func:`collate`.
        eval_data: held-out examples, evaluated every ``eval_every`` steps and at the end.
        config: :class:`TrainConfig`; ``**overrides`` replace single fields (``steps=50``).
        out_dir: run folder for checkpoints (``checkpoints/step-…``), ``log.jsonl`` and
            ``result.json``. None: nothing is written (and nothing can be resumed).
        resume: ``True`` = continue from the newest undamaged checkpoint in ``out_dir`` (start fresh
            if there is none); a path = continue from that checkpoint folder. Model id, hidden size,
            placement, head, pattern and training settings must match (``steps`` may grow).
        callback: called with a :class:`TrainEvent` after every step; return True / ``"stop"`` to stop.
        accelerator: an ``accelerate.Accelerator``; default a new one with ``config.mixed_precision``
            (:func:`make_accelerator`: each run may use its own precision in one process).
        progress: show a ``tqdm.auto`` bar (loss, accuracy, eval accuracy, whether pruning is on,
            and for flex how many kernel signatures were compiled).
        task: JSON-able description of the task (name, label names, ...) saved with checkpoints.

    Raises:
        NonFiniteError: the loss, the prompt or the head became NaN / inf (fp16 overflow, a
            learning rate too large). Nothing non-finite is ever written: the run stops before the
            optimizer step (a bad loss) or without a checkpoint (a bad update), so the newest
            checkpoint is the last good state.

    Several processes (``torchrun`` / ``accelerate launch``): each takes ``batch_size`` examples of
    every step's global batch, so N processes with ``batch_size=b`` train the same prompt as one
    with ``batch_size=N*b`` (tested to 1e-6). Call ``accelerator.end_training()`` at the end of the
    script (it destroys the process group; without it the process aborts at exit).
    """
    from accelerate.utils import set_seed

    cfg = replace(config or TrainConfig(), **overrides) if overrides else (config or TrainConfig())
    if not isinstance(model, PromptModel):
        raise TypeError(f"model must be a PromptModel, got {type(model).__name__}")
    if len(train_data) == 0:
        raise ValueError("the training data is empty")
    out = Path(out_dir) if out_dir is not None else None
    if resume and out is None and not isinstance(resume, (str, Path)):
        raise ValueError("resume=True needs out_dir= (the run folder to continue)")
    acc = accelerator or make_accelerator(cfg.mixed_precision)
    if model.backend == "flex" and not flex_trains_on(acc.device):
        raise ValueError(flex_training_error(acc.device))
    set_seed(cfg.seed)
    kernels_before = flex_kernel_count()

    resumed_from = None
    if resume:
        resumed_from = Path(resume) if isinstance(resume, (str, Path)) and not isinstance(resume, bool) else latest_checkpoint(out)
        if resumed_from is not None and out is None:
            out = resumed_from.parent.parent
    elif out is not None and list_checkpoints(out):
        raise ValueError(f"{out} already holds checkpoints of a run; pass resume=True to continue it, or choose "
                         f"another out_dir (runs are never overwritten)")
    if out is not None and acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)

    model.to(acc.device)
    optimizer = _optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(cfg))
    start = 0
    history: list[dict] = []
    if resumed_from is not None:
        tensors, meta = load_checkpoint(resumed_from)
        check_compatible(meta, model.config(), where=f"checkpoint {resumed_from}", strict=True)
        _check_train_config(meta.get("train", {}), cfg)
        _load_weights(model, tensors)
        optimizer.load_state_dict(optimizer_from_flat(tensors, meta["optimizer"]))
        scheduler.load_state_dict(_from_json(meta["scheduler"]))
        start = int(meta["step"])
        history = list(meta.get("history", []))
        rng_tensors, rng_meta = tensors, meta["rng"]
    if start >= cfg.steps:
        raise ValueError(f"the checkpoint is at step {start}, the run has steps={cfg.steps}: nothing to do; raise steps")

    wrapped, optimizer = acc.prepare(model, optimizer)
    inner = _unwrap(wrapped, acc)
    trainable = [p for p in inner.parameters() if p.requires_grad]
    world, rank = acc.num_processes, acc.process_index
    if resumed_from is not None:
        set_rng_state(rng_tensors, rng_meta)   # last: nothing may draw random numbers after this

    meta_base = {"model": inner.config(), "train": asdict(cfg), "task": task or {},
                 "trainable": inner.trainable_parameters()}
    bar = None
    if progress and acc.is_local_main_process:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=start, desc="train", dynamic_ncols=True)

    def save(step: int, metrics: dict | None) -> Path | None:
        if out is None:
            return None
        acc.wait_for_everyone()
        path = None
        if acc.is_main_process:
            tensors = {"prompt.weight": inner.prompt.weight} if inner.prompt is not None else {}
            if inner.prompt is not None and inner.prompt.deep is not None:
                tensors["prompt.deep"] = inner.prompt.deep
            tensors.update({f"head.{k}": v for k, v in inner.head.state_dict().items()})
            if not _finite(tensors.values()):   # never reached by the loop's checks; a last guard
                raise NonFiniteError(f"step {step}: the prompt or head holds NaN / inf; not writing a checkpoint "
                                     f"(the last good one is {last_ckpt})", step, last_ckpt)
            opt_t, opt_j = optimizer_to_flat(optimizer.state_dict())
            rng_t, rng_j = rng_state()
            tensors.update(opt_t)
            tensors.update(rng_t)
            meta = dict(meta_base, step=step, optimizer=opt_j, scheduler=_jsonable_sched(scheduler.state_dict()),
                        rng=rng_j, data={"seed": cfg.seed, "examples_seen": step * cfg.batch_size * world,
                                         "n_examples": len(train_data)},
                        metrics=metrics or {}, history=history[-1000:], final=step >= cfg.steps)
            path = save_checkpoint(step_dir(out, step), tensors, meta)
            prune_checkpoints(out, cfg.keep_checkpoints)
        acc.wait_for_everyone()
        return path

    stopped = False
    last_ckpt, last_eval = None, None
    ema_loss = ema_acc = None
    t_start = time.perf_counter()
    step = start
    pruning_note = ""
    inner.train()
    try:
        while step < cfg.steps:
            t0 = time.perf_counter()
            idx = batch_indices(step, len(train_data), cfg.batch_size, cfg.seed, world=world, rank=rank)
            batch = _to(collate(_examples(train_data, idx)), acc.device)
            with acc.autocast():
                logits = wrapped(**_model_inputs(batch))
            loss, ok = _loss(inner, logits, batch)
            if not _all_ranks(acc, bool(torch.isfinite(loss.detach()))):
                raise NonFiniteError(_non_finite_message(step + 1, "the loss", float(loss.detach()), cfg, last_ckpt),
                                     step + 1, last_ckpt)
            acc.backward(loss)
            if cfg.max_grad_norm:
                acc.clip_grad_norm_(trainable, cfg.max_grad_norm)
            lrs = scheduler.get_last_lr()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if not _all_ranks(acc, _finite(trainable)):
                raise NonFiniteError(_non_finite_message(step, "the prompt / head after the update", None, cfg, last_ckpt),
                                     step, last_ckpt)
            info = inner.last_info
            if not pruning_note:
                pruning_note = (f"pruned: {info['computed']} of {info['length']} positions" if info.get("pruned")
                                else info.get("reason", ""))
                if bar is not None and info.get("pruned"):
                    bar.set_description(f"train [pruned {info['computed']}/{info['length']} positions]")
            loss_v = float(loss.detach())
            acc_v = float(ok.float().mean()) if ok is not None else None
            ema_loss = loss_v if ema_loss is None else 0.9 * ema_loss + 0.1 * loss_v
            if acc_v is not None:
                ema_acc = acc_v if ema_acc is None else 0.9 * ema_acc + 0.1 * acc_v
            record = {"step": step, "loss": loss_v, "accuracy": acc_v, "lr_prompt": lrs[0] if inner.prompt is not None else None,
                      "lr_head": lrs[-1], "seconds": time.perf_counter() - t0}
            metrics = None
            if eval_data is not None and len(eval_data) and (
                    (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps):
                metrics = evaluate(wrapped, eval_data, batch_size=cfg.eval_batch_size, accelerator=acc)
                inner.train()
                last_eval = metrics
                record["eval"] = metrics
            history.append(record)
            if out is not None and acc.is_main_process:
                with open(out / "log.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")
            ckpt = None
            if out is not None and ((cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.steps):
                ckpt = last_ckpt = save(step, metrics)
            if bar is not None:
                post = {"loss": f"{ema_loss:.3f}"}
                if inner.backend == "flex":
                    post["flex_kernels"] = flex_kernel_count() - kernels_before
                if ema_acc is not None:
                    post["acc"] = f"{ema_acc:.2f}"
                if last_eval is not None:
                    post["eval_acc"] = f"{last_eval['accuracy']:.3f}"
                bar.set_postfix(post)
                bar.update(1)
            if callback is not None:
                event = TrainEvent(step, cfg.steps, loss_v, acc_v, record["lr_prompt"] or 0.0, record["lr_head"],
                                   metrics, ckpt, record["seconds"], inner)
                answer = callback(event)
                if answer is True or answer == "stop":
                    stopped = True
                    if ckpt is None and out is not None:
                        last_ckpt = save(step, metrics)
                    break
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        where = f"; the last checkpoint is {last_ckpt}" if last_ckpt else ""
        print(f"interrupted at step {step}{where} (resume with resume=True)")
        raise
    except NonFiniteError:
        if out is not None and acc.is_main_process:
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps({"step": step, "stopped": "non-finite", "checkpoint": str(last_ckpt) if last_ckpt else None}) + "\n")
        raise
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t_start
    done = step - start
    result = TrainResult(step=step, steps=cfg.steps, stopped=stopped, history=history, eval=last_eval,
                         checkpoint=last_ckpt, seconds=seconds, seconds_per_step=seconds / max(done, 1),
                         resumed_from=resumed_from, pruning=pruning_note, trainable=inner.trainable_parameters(),
                         flex_kernels=flex_kernel_count() - kernels_before if inner.backend == "flex" else None)
    if out is not None and acc.is_main_process:
        write_json_atomic(out / "result.json", {
            "step": step, "steps": cfg.steps, "stopped": stopped, "eval": last_eval, "seconds": seconds,
            "seconds_per_step": result.seconds_per_step, "checkpoint": str(last_ckpt) if last_ckpt else None,
            "pruning": pruning_note, "trainable": result.trainable, "model": inner.describe()})
    return result


def _all_ranks(acc, flag: bool) -> bool:
    """``flag`` AND-ed over every process (one tiny gather when there are several), so all
    processes stop together instead of one waiting forever for the others."""
    if acc.num_processes == 1:
        return flag
    return bool(acc.gather(torch.tensor([flag], device=acc.device)).all())


def _non_finite_message(step: int, what: str, value, cfg: TrainConfig, last_ckpt) -> str:
    shown = "" if value is None else f" ({value})"
    where = (f"the last good checkpoint is {last_ckpt} (intact; resume=True continues from it)" if last_ckpt
             else "no checkpoint had been written yet")
    return (f"step {step}: {what} is not finite{shown} with mixed_precision={cfg.mixed_precision!r}, "
            f"lr_prompt={cfg.lr_prompt}, lr_head={cfg.lr_head}; the run stopped and wrote nothing of this step; "
            f"{where}. Try a smaller learning rate, max_grad_norm > 0, or mixed_precision='bf16' / 'no' instead of fp16")


def _jsonable_sched(state: dict) -> dict:
    """LambdaLR's state (``lr_lambdas`` is ``[None, ...]`` for plain functions) as JSON."""
    return _jsonable(state)


def _check_train_config(saved: dict, cfg: TrainConfig) -> None:
    now = asdict(cfg)
    diffs = [f"{k}: checkpoint {saved.get(k)!r}, now {now[k]!r}" for k in now
             if k not in ("steps", "eval_every", "checkpoint_every", "keep_checkpoints", "eval_batch_size")
             and saved.get(k) != now[k]]
    if diffs:
        raise CheckpointError("cannot resume exactly with different training settings: " + "; ".join(diffs))


def _load_weights(model: PromptModel, tensors: dict[str, torch.Tensor]) -> None:
    if model.prompt is not None:
        if "prompt.weight" not in tensors:
            raise CheckpointError("the checkpoint has no prompt (a head-only run); build the model with prompt=None")
        saved_deep = "prompt.deep" in tensors
        if saved_deep != model.prompt.is_deep:
            kind = lambda deep: "deep (a prompt per layer)" if deep else "shallow"
            raise CheckpointError(f"the checkpoint's prompt is {kind(saved_deep)}, this model's is "
                                  f"{kind(model.prompt.is_deep)}; build the PromptModel with deep={saved_deep}")
        with torch.no_grad():
            model.prompt.weight.copy_(tensors["prompt.weight"])
        if model.prompt.is_deep:
            model.prompt.add_layers(model.prompt.deep.shape[0], tensors["prompt.deep"])
    head = {k[len("head."):]: v for k, v in tensors.items() if k.startswith("head.")}
    model.head.load_state_dict(head)


def load_into(model: PromptModel, checkpoint: str | Path) -> dict:
    """Load a checkpoint's prompt and head into ``model`` (after checking model id, hidden size,
    placement and head); returns the checkpoint's metadata."""
    tensors, meta = load_checkpoint(Path(checkpoint))
    check_compatible(meta, model.config(), where=f"checkpoint {checkpoint}")
    _load_weights(model, tensors)
    return meta
