"""Argument types and the parser class of the ``attnviz`` command: one-line errors, exit code 2."""

from __future__ import annotations

import argparse

#: One line per ``attnviz`` command, as ``attnviz --help`` lists them.
COMMAND_HELP = {
    "spread": "how far a soft prompt's information can reach, layer by layer (offline HTML)",
    "sweep": "the prompt-reach experiment: a soft prompt per (window, global prompt, placement) cell",
    "report": "one offline HTML handout of a training run (settings, curves, mask, spread, influence)",
    "train": "train a soft prompt + head on a frozen model under an attention pattern",
    "evaluate": "held-out accuracy of a trained run",
    "data": "prepare task data into the attnviz cache (offline once prepared)",
}


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``attnviz spread: error: ... (see attnviz spread --help)``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# ---- argument types --------------------------------------------------------------------------
def at_least(minimum, kind: type = int, what: str = "an int"):
    """An argparse ``type`` that parses ``kind`` (``int`` or ``float``) and refuses values below
    ``minimum`` (and NaN), naming the value."""
    shown = f"{minimum:g}" if kind is float else str(minimum)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value >= minimum:
            raise argparse.ArgumentTypeError(f"must be {what} >= {shown}, got {text!r}")
        return value
    parse.__name__ = f"{what.split()[-1]} >= {shown}"
    return parse


def int_at_least(minimum: int):
    """``int`` argument ``>= minimum``."""
    return at_least(minimum, int, "an int")


def float_at_least(minimum: float):
    """Number (``float``) argument ``>= minimum``."""
    return at_least(minimum, float, "a number")


def _entry(text: str, what: str, allow_none: bool) -> int | None:
    t = text.strip().lower()
    if allow_none and t in ("none", "full"):
        return None
    try:
        return int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid {what} entry {text.strip()!r}") from None


def window_arg(text: str) -> int | None | tuple[int | None, ...]:
    """``"64"`` -> 64, ``"none"`` / ``"full"`` -> None (full attention), ``"32,32,64"`` -> per layer."""
    try:
        values = [_entry(p, "window", True) for p in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"invalid window {text!r}: give an int (64), 'none' or 'full' for full attention, "
            f"or one entry per layer (32,32,64,64,128,128)") from None
    return values[0] if len(values) == 1 else tuple(values)


def dilation_arg(text: str) -> int | tuple[int, ...]:
    """``"2"`` -> 2, ``"1,1,2,2"`` -> per layer."""
    try:
        values = [_entry(p, "dilation", False) for p in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"invalid dilation {text!r}: give an int >= 1 or one per layer (1,1,2,2)") from None
    return values[0] if len(values) == 1 else tuple(values)


def chunk_arg(text: str) -> int | None | tuple[int | None, ...]:
    """``"64"`` -> 64 (every layer), ``"64,64,full"`` -> per layer (``full`` / ``none``: no chunks)."""
    try:
        values = [_entry(p, "chunk", True) for p in text.split(",")]
    except argparse.ArgumentTypeError:
        values = [0]
    if any(v is not None and v < 1 for v in values):
        raise argparse.ArgumentTypeError(
            f"invalid chunk {text!r}: give a chunk length >= 1 (Llama 4's attention_chunk_size, e.g. 64) or one "
            f"entry per layer with 'full' for unchunked layers (64,64,64,full)")
    return values[0] if len(values) == 1 else tuple(values)


def part_arg(text: str):
    """``"strided:8"`` -> ``attnviz.masks.Strided(8)`` (any part of ``attnviz.masks.MASK_PARTS``)."""
    from ..masks import part_from_text   # torch: imported only when the flag is given

    try:
        return part_from_text(text)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def prefix_arg(text: str) -> int | str:
    """``"prompt"`` -> ``"prompt"`` (the prefix ends with the last prompt token), ``"21"`` -> 21."""
    t = text.strip().lower()
    if t == "prompt":
        return "prompt"
    try:
        value = int(t)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid prefix-LM {text!r}: give a prefix length P >= 1 (positions < P "
                                         f"attend each other both ways) or 'prompt' (up to the last prompt token)")
    return value


def lengths_arg(text: str) -> tuple[int, ...]:
    """``"500,522"`` -> (500, 522): packed document lengths."""
    try:
        values = tuple(_entry(p, "document length", False) for p in text.split(","))
    except argparse.ArgumentTypeError:
        values = (0,)
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"invalid documents {text!r}: give comma-separated document lengths >= 1 "
                                         f"that sum to the sequence length, e.g. 500,522")
    return values


def positions_arg(text: str) -> tuple[int, ...]:
    """``"0,5"`` -> (0, 5); ``""`` -> ()."""
    try:
        return tuple(_entry(p, "position", False) for p in text.split(",") if p.strip())
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"invalid positions {text!r}: give comma-separated ints, e.g. 0,5") from None


def load_model_arg(name: str):
    """:func:`attnviz.models.load_model` for ``--model NAME``: a missing folder or an unreachable
    hub id is bad input (exit 2), and the message says what to type on the command line."""
    from ..models import load_model

    try:
        return load_model(name)
    except OSError as exc:
        reason = str(exc).split(" Offline?")[0].split("; give an existing folder")[0]
        raise ValueError(f"--model {name}: {reason}; use --model default (the embedded all-MiniLM-L6-v2, offline), "
                         f"a local folder saved with save_pretrained, or a hub id while online") from None
