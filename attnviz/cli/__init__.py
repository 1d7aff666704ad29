"""The ``attnviz`` command.

    attnviz spread --window 64 --layers 6 --length 1024 --placement prefix --n-tokens 20 --out spread.html

The package owns every argument parser of the command: :mod:`.args` (argument types and the
parser class), :mod:`.train` (``train`` / ``evaluate``), :mod:`.data` (``data prepare``); this
module holds ``spread``, ``report`` and ``sweep`` and :func:`main`. Each subcommand is one ``_add_<name>`` function that declares its arguments and sets ``run`` to the
function doing the work; add a subcommand by writing a new pair and calling it in :func:`build_parser`.
Bad input ends with a one-line message and exit code 2 (argparse's convention), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..choices import PLACEMENTS
from .args import (COMMAND_HELP, Parser, chunk_arg, dilation_arg, int_at_least, lengths_arg, part_arg, positions_arg,
                   prefix_arg, window_arg)

_Parser = Parser  # the older name

#: Longest sequence the ``spread`` command draws (positions, prompt and special tokens included).
MAX_POSITIONS = 2**17


# ---- attnviz spread ------------------------------------------------------------------------------
def _add_spread(sub) -> None:
    p = sub.add_parser(
        "spread", help=COMMAND_HELP["spread"],
        description="Build the attention masks of a pattern, compute how far the prompt's information can "
                    "travel after each layer (structure only, no model), print a summary and write one "
                    "self-contained HTML page with the spread and the mask figures.")
    g = p.add_argument_group("attention pattern")
    g.add_argument("--window", type=window_arg, default=64, metavar="W",
                   help="window width: an int (bidirectional: total width, W/2 each side, must be even; with "
                        "--causal: the last W tokens), 'none'/'full' for full attention, or one entry per layer "
                        "as a comma list, e.g. 32,32,64,64,128,128 (default: 64)")
    g.add_argument("--layers", type=int_at_least(1), default=None, metavar="N",
                   help="number of layers (default: the length of a per-layer --window list, else 6)")
    g.add_argument("--causal", action="store_true", help="decoder attention: a token sees only earlier tokens")
    g.add_argument("--global-prompt", action="store_true", help="give every prompt token global attention")
    g.add_argument("--global-positions", type=positions_arg, default=(), metavar="P,P",
                   help="absolute positions with global attention, e.g. 0,5 (0 is [CLS])")
    g.add_argument("--dilation", type=dilation_arg, default=1, metavar="D",
                   help="spacing between window keys, an int or one per layer (default: 1)")
    g.add_argument("--random-blocks", type=int_at_least(0), default=0, metavar="R",
                   help="BigBird random key blocks per query block (default: 0)")
    g.add_argument("--block-size", type=int_at_least(1), default=None, metavar="B", help="block length for --random-blocks")
    g.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the random blocks (default: 0)")
    z = p.add_argument_group("mask zoo")
    z.add_argument("--prefix-lm", type=prefix_arg, default=None, metavar="P",
                   help="prefix-LM: positions < P attend each other both ways, even with --causal; 'prompt' = up to "
                        "the last prompt token")
    z.add_argument("--sinks", type=int_at_least(0), default=0, metavar="S",
                   help="attention sinks (StreamingLLM): every query keeps the first S positions (default: 0)")
    z.add_argument("--chunk", type=chunk_arg, default=None, metavar="C",
                   help="chunked attention (Llama 4's attention_chunk_size): the window stays inside chunks of C; "
                        "one per layer with 'full' for unchunked layers, e.g. 64,64,64,full")
    z.add_argument("--documents", type=lengths_arg, default=(), metavar="N,N",
                   help="packed documents: their lengths, summing to the sequence length ([CLS] + prompt + text + "
                        "[SEP]); no attention crosses a document boundary")
    z.add_argument("--part", type=part_arg, action="append", default=[], metavar="NAME:SETTINGS", dest="parts",
                   help="a mask part of attnviz.masks.MASK_PARTS, repeatable; e.g. strided:8 (the Sparse "
                        "Transformer's strided keys, (q - k) %% 8 == 0; one per layer with 'none': 8,8,none). "
                        "An unknown NAME lists the known ones")
    s = p.add_argument_group("sequence")
    s.add_argument("--length", type=int_at_least(0), default=1024, metavar="T",
                   help="text length in tokens, without special tokens and prompt: the layout adds [CLS], [SEP] "
                        "and the prompt, so the sequence has T + 2 + n-tokens positions (default: 1024)")
    s.add_argument("--placement", choices=PLACEMENTS, default="prefix",
                   help="where the prompt goes: start (before [CLS], as PEFT), prefix (after [CLS]), infix (--at), "
                        "suffix (before [SEP]) or scattered (--every) (default: prefix)")
    s.add_argument("--n-tokens", type=int_at_least(1), default=20, metavar="N", help="prompt tokens (default: 20)")
    s.add_argument("--at", type=int_at_least(0), default=None, help="infix: the text token the prompt goes before")
    s.add_argument("--every", type=int_at_least(1), default=None, help="scattered: text tokens between prompt tokens")
    o = p.add_argument_group("output")
    o.add_argument("--mask-layer", type=int_at_least(0), default=0, metavar="L", help="layer whose mask is shown first (default: 0)")
    o.add_argument("--out", type=Path, default=Path("spread.html"), help="HTML file to write (default: spread.html)")
    p.set_defaults(run=_run_spread, parser=p)


def _run_spread(args) -> int:
    from ..patterns import AttentionPattern, describe
    from ..placement import PromptPlacement
    from ..plots import mask_figure, save_html, spread_figure
    from ..spread import spread_pattern

    window = args.window
    per_layer = next((len(v) for v in (window, args.chunk) if isinstance(v, tuple)), None)
    per_layer = per_layer or next((p.num_layers for p in args.parts if p.num_layers is not None), None)
    layers = args.layers if args.layers is not None else (per_layer or 6)
    pattern = AttentionPattern(window=window, causal=args.causal, global_positions=args.global_positions,
                               global_prompt=args.global_prompt, dilation=args.dilation,
                               random_blocks=args.random_blocks, block_size=args.block_size, seed=args.seed,
                               prefix_lm=args.prefix_lm, sinks=args.sinks, chunk=args.chunk, documents=args.documents,
                               parts=tuple(args.parts))
    pattern.check_layers(layers)
    placement = PromptPlacement(args.placement, n_tokens=args.n_tokens, at=args.at, every=args.every)
    layout = placement.layout(text_len=args.length)
    L = layout.length
    for flag, check in (("--prefix-lm", pattern.prefix_length), ("--documents", pattern.document_ids)):
        try:
            check(layout)
        except ValueError as exc:
            raise ValueError(f"{flag}: {exc}") from None
    if L > MAX_POSITIONS:
        raise ValueError(f"--length {args.length} gives {L} positions; at most {MAX_POSITIONS} are supported")
    if not 0 <= args.mask_layer < layers:
        raise ValueError(f"--mask-layer {args.mask_layer} is outside [0, {layers})")
    out = args.out
    if not out.parent.is_dir():
        raise ValueError(f"--out {out}: folder {out.parent} does not exist")

    # From the pattern's structure, O(layers * L): equal to spread(build_masks(...)) (tested).
    result = spread_pattern(pattern, layout, layers)
    said = result.summary(readout=layout.readout_position)
    paragraph = (f"{describe(pattern)}, {layers} layers; a {layout.n_prompt}-token {args.placement} prompt in "
                 f"{L} positions ([CLS], {layout.n_prompt} prompt, {args.length} text tokens, [SEP]). "
                 f"{said[:1].upper()}{said[1:]}")
    figs = [spread_figure(result, layout, pattern=pattern),
            mask_figure(pattern, layout, layer=args.mask_layer, num_layers=layers)]
    path = save_html(figs, out, title=f"attnviz spread — {describe(pattern)}", text=paragraph)
    print(paragraph)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained, works offline)")
    return 0


# ---- attnviz report ------------------------------------------------------------------------------
def _add_report(sub) -> None:
    p = sub.add_parser(
        "report", help=COMMAND_HELP["report"],
        description="Read a run folder (log.jsonl, result.json, checkpoints) and write one self-contained HTML "
                    "page: run settings, loss and accuracy curves, the mask and spread of the run's pattern and, "
                    "when the model loads here, the trained prompt's influence map.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the --out folder of attnviz train")
    p.add_argument("--out", type=Path, default=None, help="HTML file to write (default: RUN_DIR/report.html)")
    p.add_argument("--png", type=Path, default=None, metavar="DIR", help="also write one PNG per figure into DIR "
                   "(kaleido with the system Chromium)")
    p.add_argument("--model", default=None, help="model folder (or 'default') for the influence map, when the "
                   "run's own model is not loadable by name here")
    p.add_argument("--text", default=None, help="text whose influence map is drawn (default: a short paragraph)")
    p.add_argument("--text-file", type=Path, default=None, metavar="FILE",
                   help="read that text from FILE (UTF-8), e.g. a long document")
    p.add_argument("--positions", type=int, default=None, metavar="N",
                   help="extend the model's positions to N first, so a long text is not truncated (above 2,048 "
                        "positions the maps are computed tile by tile, O(L*w) memory)")
    p.add_argument("--no-influence", action="store_true", help="leave the influence map out (no model run)")
    p.set_defaults(run=_run_report, parser=p)


def _run_report(args) -> int:
    from ..studies.report import DEFAULT_TEXT, write_report

    model = tokenizer = None
    if args.model is not None and not args.no_influence:
        from .args import load_model_arg as load_model

        model, tokenizer, _ = load_model(args.model)
    if args.text is not None and args.text_file is not None:
        raise ValueError("give --text or --text-file, not both")
    text = args.text_file.read_text(encoding="utf-8") if args.text_file is not None else args.text
    if args.positions is not None and args.positions < 1:
        raise ValueError(f"--positions must be a number of positions >= 1, got {args.positions}")
    path = write_report(args.run_dir, args.out, model=model, tokenizer=tokenizer, text=text or DEFAULT_TEXT,
                        influence=not args.no_influence, png=args.png, positions=args.positions)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained, works offline)"
          + (f"; PNGs in {args.png}" if args.png else ""))
    return 0


# ---- attnviz sweep ------------------------------------------------------------------------------
def _list_arg(parse_one, what: str, allowed: str):
    def parse(text: str) -> tuple:
        try:
            values = tuple(parse_one(p.strip()) for p in text.split(",") if p.strip())
        except (ValueError, KeyError):
            values = ()
        if not values:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: give a comma list of {allowed}")
        return values
    parse.__name__ = what
    return parse


def _window_entry(t: str):
    """``32``, ``full`` / ``none``, or a per-layer schedule ``16-32-48-80-96-112``."""
    if t.lower() in ("none", "full"):
        return None
    return tuple(int(x) for x in t.split("-")) if "-" in t else int(t)


_ON_OFF = {"on": True, "off": False, "true": True, "false": False, "yes": True, "no": False}


def _add_sweep(sub) -> None:
    from ..studies.sweep import REFERENCES, SWEEP_PLACEMENTS, TASKS, VARIANTS, SweepConfig

    d = SweepConfig()
    p = sub.add_parser(
        "sweep", help=COMMAND_HELP["sweep"],
        description="Train a soft prompt + head on the frozen default model for every cell of a grid of windows, "
                    "global-prompt settings and placements, and report accuracy, the prompt's structural reach, its "
                    "measured influence on [CLS] and the time per cell: results.json, results.md and sweep.html in "
                    "--out. Rerunning with the same settings resumes (finished cells are skipped). The defaults "
                    "finish in about 30 minutes on 2 CPU cores.")
    p.add_argument("--task", default=d.task, help=f"{', '.join(TASKS)} (documents = BBC News) or a .jsonl / .csv "
                                                  f"file with text and label (default: {d.task})")
    p.add_argument("--variant", choices=VARIANTS, default=d.variant,
                   help="plain documents; far: [CLS] + filler + the document; position: the document at each of "
                        "--positions inside filler of fixed total length (default: far)")
    p.add_argument("--window", type=_list_arg(_window_entry, "windows", "even ints, 'full' or per-layer W-W-W"),
                   default=d.windows, metavar="W,W",
                   help="window widths of the grid, e.g. 32,128,512 ('full' = full attention; 16-32-48-80-96-112 = "
                        "one width per layer)")
    p.add_argument("--seeds", type=_list_arg(int, "seeds", "ints >= 0"), default=d.seeds, metavar="S,S",
                   help="training seeds; every cell runs once per seed and reports mean accuracy with a 95 %% "
                        "interval (bootstrap over documents and seeds; Wilson with one seed) (default: 0)")
    p.add_argument("--positions", type=_list_arg(float, "positions", "fractions 0..1"), default=d.positions,
                   metavar="P,P", help="position variant: where the document sits in the filler, 0 = next to [CLS], "
                                       "1 = after all of it (default: 0,0.5,1)")
    p.add_argument("--threads", type=int_at_least(1), default=None,
                   help="torch threads (default: torch's choice; 1 on a shared machine)")
    p.add_argument("--global-prompt", type=_list_arg(lambda t: _ON_OFF[t.lower()], "global-prompt", "on / off"),
                   default=d.global_prompt, metavar="off,on", help="global attention for prompt tokens (default: off,on)")
    p.add_argument("--placement", type=_list_arg(str, "placements", ", ".join(SWEEP_PLACEMENTS)), default=d.placements,
                   metavar="P,P", help=f"placements of the grid, from {', '.join(SWEEP_PLACEMENTS)} "
                                        f"(default: {','.join(d.placements)})")
    p.add_argument("--n-tokens", type=int_at_least(1), default=d.n_tokens, help=f"prompt tokens (default {d.n_tokens})")
    p.add_argument("--max-length", type=int_at_least(4), default=d.max_length, metavar="T",
                   help=f"tokens per document, filler included; above 512 - n-tokens MiniLM's positions are "
                        f"extended by copying (default {d.max_length})")
    p.add_argument("--filler-tokens", type=int_at_least(0), default=d.filler_tokens, metavar="N",
                   help=f"far variant: filler tokens between [CLS] and the document (default {d.filler_tokens})")
    p.add_argument("--steps", type=int_at_least(1), default=d.steps, help=f"training steps per cell (default {d.steps})")
    p.add_argument("--batch-size", type=int_at_least(1), default=d.batch_size, help=f"default {d.batch_size}")
    p.add_argument("--train-size", type=int_at_least(1), default=d.train_size, metavar="N",
                   help=f"training documents (default {d.train_size})")
    p.add_argument("--test-size", type=int_at_least(1), default=d.test_size, metavar="N",
                   help=f"held-out documents (default {d.test_size})")
    p.add_argument("--seed", type=int_at_least(0), default=d.seed, help="the documents drawn (default 0); training seeds: --seeds")
    p.add_argument("--init", default=d.init, help="prompt init: text ([SEP] copies + noise), vocab, labels, random")
    p.add_argument("--backend", default=d.backend, help="training backend: sdpa (default) or dense")
    p.add_argument("--references", type=_list_arg(str, "references", ", ".join(REFERENCES) + " or none"),
                   default=d.references, metavar="R,R",
                   help="reference rows: head_only (per window), full (prompt under full attention), or none")
    p.add_argument("--out", type=Path, default=Path("sweeps/docs"), help="sweep folder (default sweeps/docs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_sweep, parser=p)


def _run_sweep(args) -> int:
    from ..studies.sweep import SweepConfig, run_sweep

    references = () if args.references == ("none",) else args.references
    config = SweepConfig(task=args.task, variant=args.variant, windows=args.window, global_prompt=args.global_prompt,
                         placements=args.placement, n_tokens=args.n_tokens, max_length=args.max_length,
                         filler_tokens=args.filler_tokens, steps=args.steps, batch_size=args.batch_size,
                         train_size=args.train_size, test_size=args.test_size, seed=args.seed, init=args.init,
                         backend=args.backend, references=references, seeds=args.seeds, positions=args.positions)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = run_sweep(config, args.out, progress=not args.no_progress)
    print((result.out_dir / "results.md").read_text())
    print(f"{len(result.trained)} runs (cell x seed) trained in {result.seconds / 60:.1f} min; wrote {result.out_dir / 'results.json'}, "
          f"results.md and sweep.html")
    return 0


# ---- entry point -------------------------------------------------------------------------------
def _add_train(sub) -> None:
    from .train import add_train_commands

    add_train_commands(sub)


def _add_data(sub) -> None:
    from .data import add_data_commands

    add_data_commands(sub)


#: Each command and what adds its full parser (``train`` adds ``evaluate`` too).
_ADDERS = {"spread": _add_spread, "sweep": _add_sweep, "report": _add_report, "train": _add_train,
           "evaluate": _add_train, "data": _add_data}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``attnviz`` parser. ``command``: build only that command's options (the others get their
    name and one-line help, which is all ``attnviz --help`` shows) — building a command's options
    imports what it needs (torch, transformers), so ``attnviz --help`` stays fast. None: all of them."""
    parser = Parser(
        prog="attnviz", description="See how attention-window configuration shapes prompt tuning.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    full = set(_ADDERS) if command is None else ({"train", "evaluate"} if command in ("train", "evaluate")
                                                 else {command})
    done = set()
    for name, add in _ADDERS.items():
        if name in full:
            if add not in done:
                add(sub)
                done.add(add)
        else:
            sub.add_parser(name, help=COMMAND_HELP[name])
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``attnviz`` command line; returns the exit code (bad input exits 2 with a message)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in _ADDERS else "")
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError) as exc:
        args.parser.error(str(exc))  # prints "attnviz spread: error: ..." and exits 2
    except OSError as exc:  # e.g. --out not writable
        print(f"{args.parser.prog}: error: {exc}", file=sys.stderr)
        return 1
