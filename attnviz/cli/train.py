"""``attnviz train`` and ``attnviz evaluate``: prompt tuning from the command line.

    attnviz train --task nli --window 64 --global-prompt --placement prefix --n-tokens 20 --steps 300 --out runs/nli-w64
    attnviz train --out runs/nli-w64 --resume --steps 600      # continue (settings come from the run folder)
    attnviz evaluate runs/nli-w64

``attnviz.cli`` wires these in with :func:`add_train_commands`. A run folder holds
``config.json`` (the settings, written first), ``checkpoints/step-…/`` (safetensors + JSON),
``log.jsonl``, ``result.json`` and, after ``evaluate``, ``eval.json``. ``--n-tokens 0`` trains the
head alone: the baseline a prompt has to beat.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: Settings of a run and their defaults (None = unset); ``--resume`` takes unset ones from config.json.
DEFAULTS = {
    "task": None, "model": "default", "window": None, "causal": False, "global_prompt": False,
    "global_positions": [], "dilation": 1, "random_blocks": 0, "block_size": None, "pattern_seed": 0,
    "placement": "prefix", "n_tokens": 20, "at": None, "every": None, "init": "text", "init_text": None,
    "pooling": "cls", "backend": "dense", "prune": True, "steps": 300, "batch_size": 8, "lr_prompt": 3e-2,
    "lr_head": 1e-2, "optimizer": "adamw", "schedule": "linear", "warmup": 0.1, "max_grad_norm": 1.0,
    "eval_every": 50, "checkpoint_every": 50, "seed": 0, "mixed_precision": "no", "max_length": 128,
    "train_limit": None, "eval_limit": None, "nli_source": None, "balanced": False, "deep": False,
}


def add_train_commands(subparsers) -> None:
    """Add ``train`` and ``evaluate`` to an ``argparse`` subparsers object. Each sets ``run`` (the
    function to call with the parsed args, returning an exit code) and ``parser``."""
    from .args import COMMAND_HELP, dilation_arg, float_at_least, int_at_least, positions_arg, window_arg
    from ..choices import BACKENDS, INITS, MIXED_PRECISION, OPTIMIZERS, PLACEMENTS, POOLINGS, SCHEDULES

    def positive_float(text):
        try:
            v = float(text)
        except ValueError:
            v = None
        if v is None or not v > 0:
            raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
        return v

    def fraction(text):
        try:
            v = float(text)
        except ValueError:
            v = None
        if v is None or not 0 <= v < 1:
            raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}")
        return v

    p = subparsers.add_parser(
        "train", help=COMMAND_HELP["train"],
        description="Train a soft prompt and a small head on a frozen model (default: the embedded all-MiniLM-L6-v2) "
                    "under an attention pattern, with checkpoints every --checkpoint-every steps. --resume continues "
                    "a run exactly; settings not given then come from the run folder's config.json.")
    t = p.add_argument_group("task and model")
    t.add_argument("--task", default=None, help="'nli' (attnviz data prepare nli) or a .jsonl / .csv file with text "
                                                "(or premise + hypothesis) and label columns")
    t.add_argument("--model", default=None, help="'default' (embedded MiniLM), a local folder, or a hub id")
    t.add_argument("--max-length", type=int_at_least(2), default=None, help="truncate inputs to N tokens (default 128)")
    t.add_argument("--train-limit", type=int_at_least(1), default=None, metavar="N", help="use N training examples")
    t.add_argument("--eval-limit", type=int_at_least(1), default=None, metavar="N", help="use N held-out examples")
    t.add_argument("--nli-source", default=None, help="NLI source for --task nli (vitaminc, presuppositions, snli, mnli)")
    t.add_argument("--balanced", action="store_true", default=None, help="NLI: the same number of rows per label")
    g = p.add_argument_group("attention pattern")
    g.add_argument("--window", type=window_arg, default=None, metavar="W",
                   help="window width (total, W/2 each side), 'full', or one per layer (default: full attention)")
    g.add_argument("--causal", action="store_true", default=None, help="decoder attention")
    g.add_argument("--global-prompt", action="store_true", default=None, help="every prompt token attends and is attended globally")
    g.add_argument("--global-positions", type=positions_arg, default=None, metavar="P,P", help="absolute global positions, e.g. 0")
    g.add_argument("--dilation", type=dilation_arg, default=None, metavar="D", help="window dilation (default 1)")
    g.add_argument("--random-blocks", type=int_at_least(0), default=None, metavar="R", help="BigBird random blocks")
    g.add_argument("--block-size", type=int_at_least(1), default=None, metavar="B", help="block length for --random-blocks")
    g.add_argument("--pattern-seed", type=int_at_least(0), default=None, help="seed of the random blocks")
    s = p.add_argument_group("prompt and head")
    s.add_argument("--placement", choices=PLACEMENTS, default=None, help="where the prompt goes (default prefix: after [CLS])")
    s.add_argument("--n-tokens", type=int_at_least(0), default=None, metavar="N",
                   help="prompt tokens (default 20; 0 = head only, the baseline)")
    s.add_argument("--at", type=int_at_least(0), default=None, help="infix: the text token the prompt goes before")
    s.add_argument("--every", type=int_at_least(1), default=None, help="scattered: text tokens between prompt tokens")
    s.add_argument("--init", choices=INITS, default=None,
                   help="prompt initialisation (default text: copies of [SEP] + noise, the best start measured)")
    s.add_argument("--init-text", default=None, help="the phrase for --init text")
    s.add_argument("--pooling", choices=POOLINGS, default=None, help="what the head reads (default cls)")
    s.add_argument("--deep", action="store_true", default=None,
                   help="deep prompt (P-tuning v2 style): per-layer prompt vectors added at every layer's input")
    s.add_argument("--backend", choices=BACKENDS, default=None, help="attention backend (default dense; flex trains on a GPU, not on CPU, and pads batches to multiples of 128 tokens)")
    s.add_argument("--no-prune", dest="prune", action="store_false", default=None,
                   help="turn off reach-aware pruning (on by default where exact)")
    o = p.add_argument_group("optimisation")
    o.add_argument("--steps", type=int_at_least(1), default=None, help="optimizer steps (default 300)")
    o.add_argument("--batch-size", type=int_at_least(1), default=None, help="examples per step (default 8)")
    o.add_argument("--lr-prompt", type=positive_float, default=None, help="prompt learning rate (default 3e-2)")
    o.add_argument("--lr-head", type=positive_float, default=None, help="head learning rate (default 1e-2)")
    o.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help="default adamw")
    o.add_argument("--schedule", choices=SCHEDULES, default=None, help="after warm-up: linear decay or constant")
    o.add_argument("--warmup", type=fraction, default=None, help="warm-up fraction of the steps (default 0.1)")
    o.add_argument("--max-grad-norm", type=float_at_least(0), default=None,
                   help="gradient clipping (default 1.0, 0 = off)")
    o.add_argument("--eval-every", type=int_at_least(0), default=None, help="evaluate every N steps (default 50)")
    o.add_argument("--checkpoint-every", type=int_at_least(0), default=None, help="checkpoint every N steps (default 50)")
    o.add_argument("--seed", type=int_at_least(0), default=None, help="seed (default 0)")
    o.add_argument("--mixed-precision", choices=MIXED_PRECISION, default=None, help="accelerate mixed precision")
    r = p.add_argument_group("run")
    r.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, logs, config)")
    r.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run_train, parser=p)

    e = subparsers.add_parser(
        "evaluate", help=COMMAND_HELP["evaluate"],
        description="Load a run folder's newest checkpoint and report held-out accuracy (written to RUN_DIR/eval.json).")
    e.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the --out folder of attnviz train")
    e.add_argument("--checkpoint", type=Path, default=None, help="a checkpoint folder (default: the newest undamaged)")
    e.add_argument("--task", default=None, help="evaluate on this task instead of the run's (same labels)")
    e.add_argument("--eval-limit", type=int_at_least(1), default=None, metavar="N", help="use N held-out examples")
    e.add_argument("--batch-size", type=int_at_least(1), default=32, help="evaluation batch size (default 32)")
    e.set_defaults(run=run_evaluate, parser=e)


# ---- settings -----------------------------------------------------------------------------------
def _settings(args) -> dict:
    given = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k, None) is not None}
    for k in ("window", "dilation", "global_positions"):
        if isinstance(given.get(k), tuple):
            given[k] = list(given[k])
    config_path = args.out / "config.json"
    if args.resume and config_path.is_file():
        stored = json.loads(config_path.read_text())["settings"]
        settings = {**DEFAULTS, **stored, **given}
    else:
        settings = {**DEFAULTS, **given}
    if settings["task"] is None:
        raise ValueError("--task is required: 'nli' or a .jsonl / .csv file")
    return settings


def _pattern(s: dict):
    from ..patterns import AttentionPattern

    tup = lambda v: tuple(v) if isinstance(v, list) else v
    return AttentionPattern(window=tup(s["window"]), causal=bool(s["causal"]), global_prompt=bool(s["global_prompt"]),
                            global_positions=tuple(s["global_positions"] or ()), dilation=tup(s["dilation"]),
                            random_blocks=s["random_blocks"], block_size=s["block_size"], seed=s["pattern_seed"])


def _placement(s: dict):
    from ..placement import PromptPlacement

    if s["n_tokens"] == 0:
        return None
    return PromptPlacement(s["placement"], n_tokens=s["n_tokens"], at=s["at"], every=s["every"])


def _load_task(s: dict, tokenizer, task: str | None = None):
    from ..tasks.loading import load_task

    nli_kwargs = {}
    if s.get("nli_source"):
        nli_kwargs["source"] = s["nli_source"]
    if s.get("balanced"):
        nli_kwargs["balanced"] = True
    return load_task(task or s["task"], tokenizer, max_length=s["max_length"], train_limit=s["train_limit"],
                     eval_limit=s["eval_limit"], seed=s["seed"], nli_kwargs=nli_kwargs)


def build_model(s: dict, loaded, num_labels: int, label_names=None, *, init: bool = True):
    """The :class:`~attnviz.prompts.PromptModel` a run's settings describe (prompt initialised as
    ``s["init"]``, or zeros when ``init=False`` because a checkpoint will fill it)."""
    import torch

    from ..prompts.heads import ClassificationHead
    from ..prompts.model import PromptModel
    from ..prompts.soft_prompt import SoftPrompt

    base, tokenizer, name = loaded
    placement = _placement(s)
    hidden = base.get_input_embeddings().weight.shape[1]
    prompt = None
    if placement is not None:
        if init:
            prompt = SoftPrompt.init(base, tokenizer, placement, s["init"], text=s["init_text"],
                                     labels=label_names if s["init"] == "labels" else None, seed=s["seed"])
        else:
            prompt = SoftPrompt(torch.zeros(placement.n_tokens, hidden), placement)
    torch.manual_seed(s["seed"])
    head = ClassificationHead(hidden, num_labels, pooling=s["pooling"])
    backend = s["backend"]
    return PromptModel(base, head, prompt, _pattern(s), backend=backend, prune="auto" if s["prune"] else False,
                       tokenizer=tokenizer, model_id=name, deep=bool(s.get("deep")) and prompt is not None)


# ---- commands -----------------------------------------------------------------------------------
def run_train(args) -> int:
    from .args import load_model_arg as load_model
    from ..prompts.checkpoints import write_json_atomic
    from ..prompts.training import TrainConfig, train_soft_prompt

    s = _settings(args)
    placement = _placement(s)   # bad placement arguments fail before anything loads
    pattern = _pattern(s)
    if s["backend"] == "flex":  # flex trains where torch has its backward: say so before loading anything
        from accelerate import PartialState

        from ..models.interface import flex_trains_on, flex_training_error

        device = PartialState().device
        if not flex_trains_on(device):
            raise ValueError(flex_training_error(device))
    cfg = TrainConfig(steps=s["steps"], batch_size=s["batch_size"], lr_prompt=s["lr_prompt"], lr_head=s["lr_head"],
                      optimizer=s["optimizer"], schedule=s["schedule"], warmup=s["warmup"],
                      max_grad_norm=s["max_grad_norm"], eval_every=s["eval_every"],
                      checkpoint_every=s["checkpoint_every"], seed=s["seed"], mixed_precision=s["mixed_precision"])
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} exists and is not a folder")
    if not args.resume and (args.out / "checkpoints").is_dir() and any((args.out / "checkpoints").iterdir()):
        raise ValueError(f"--out {args.out} already holds a run; add --resume to continue it, or choose another folder")
    loaded = load_model(s["model"])
    from ..models.anatomy import max_positions

    max_pos = max_positions(loaded.model)
    n = 0 if placement is None else placement.n_tokens
    if s["max_length"] + n > max_pos:
        raise ValueError(f"--max-length {s['max_length']} + --n-tokens {n} = {s['max_length'] + n} positions do not fit "
                         f"the model's {max_pos}; use --max-length {max_pos - n} or fewer prompt tokens")
    task = _load_task(s, loaded.tokenizer)
    model = build_model(s, loaded, len(task.label_names), task.label_names)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "config.json", {"settings": s, "task": task.info, "model": model.config()})
    print(f"{model.describe()}; trainable: {model.trainable_parameters()}; "
          f"{len(task.train)} training / {len(task.eval)} held-out examples of {task.name} ({', '.join(task.label_names)})")
    result = train_soft_prompt(model, task.train, task.eval, config=cfg, out_dir=args.out, resume=args.resume,
                               progress=not args.no_progress, task=task.info)
    acc = f"held-out accuracy {result.eval['accuracy']:.4f} on {result.eval['n']}" if result.eval else "no held-out data"
    note = f"; {result.pruning}" if result.pruning else ""
    print(f"step {result.step}/{result.steps}: {acc}; {result.seconds_per_step:.3f} s/step{note}; "
          f"checkpoint {result.checkpoint}")
    return 0


def run_evaluate(args) -> int:
    from .args import load_model_arg as load_model
    from ..prompts.checkpoints import damaged_checkpoints, latest_checkpoint, write_json_atomic
    from ..prompts.training import evaluate, load_into

    config_path = args.run_dir / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{args.run_dir} is not a run folder (no config.json); give the --out folder of attnviz train")
    stored = json.loads(config_path.read_text())
    s = {**DEFAULTS, **stored["settings"]}
    if args.eval_limit is not None:
        s["eval_limit"] = args.eval_limit
    checkpoint = args.checkpoint or latest_checkpoint(args.run_dir)
    if checkpoint is None:
        damaged = damaged_checkpoints(args.run_dir)
        if damaged:
            why = "; ".join(f"{path.name}: {reason}" for path, reason in damaged)
            raise ValueError(f"{args.run_dir} has {len(damaged)} checkpoint(s) and every one is damaged ({why}); "
                             f"pass --checkpoint PATH of a good copy, or train again into a new --out folder")
        raise ValueError(f"{args.run_dir} has no checkpoint yet")
    loaded = load_model(s["model"])
    task = _load_task(s, loaded.tokenizer, args.task)
    names = stored.get("task", {}).get("label_names") or task.label_names
    if len(task.label_names) != len(names):
        raise ValueError(f"the task has {len(task.label_names)} labels, the run was trained on {len(names)} ({names})")
    model = build_model(s, loaded, len(names), names, init=False)
    meta = load_into(model, checkpoint)
    metrics = evaluate(model, task.eval, batch_size=args.batch_size, progress=True)
    report = {"checkpoint": str(checkpoint), "step": meta["step"], "task": args.task or s["task"], **metrics,
              "model": model.describe()}
    write_json_atomic(args.run_dir / "eval.json", report)
    print(f"{model.describe()}\nstep {meta['step']}: accuracy {metrics['accuracy']:.4f} on {metrics['n']} held-out "
          f"examples (loss {metrics['loss']:.4f}); wrote {args.run_dir / 'eval.json'}")
    return 0
