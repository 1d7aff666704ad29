"""A handout page for one training run: ``attnviz report RUN_DIR``.

A run folder of :func:`attnviz.prompts.train_soft_prompt` (or ``attnviz train --out``) holds
``log.jsonl`` (one record per step), ``result.json`` (how it ended), ``checkpoints/step-…/``
(prompt, head and the full configuration in ``state.json``) and, from the CLI, ``config.json``
(the command's settings). :func:`read_run` gathers them into a :class:`RunRecord`;
:func:`report_figures` turns it into figures — run settings, loss / accuracy curves, the mask and
the spread of the run's pattern on its layout and, when the model can be loaded here, the
measured influence of the trained prompt on a text; :func:`write_report` writes them as ONE
self-contained offline HTML page (:func:`attnviz.plots.save_html`, plotly.js inlined) and, with
``png=``, one PNG per figure through kaleido and the system Chromium.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go

from ..notebook import format_value
from ..patterns import AttentionPattern, describe
from ..placement import PromptPlacement, SequenceLayout, plain_layout

#: Text whose influence map the report draws when none is given.
DEFAULT_TEXT = ("The committee met on Tuesday to review the budget. After a long debate, members agreed to "
                "fund the new library, but asked for a detailed plan before any money is spent.")
#: Text length (tokens) of the layout drawn when the run does not record its ``max_length``.
DEFAULT_TEXT_LEN = 126


@dataclass(frozen=True)
class RunRecord:
    """What a run folder says.

    Attributes:
        run_dir: the folder.
        history: per-step records from ``log.jsonl`` in step order (a step logged twice, e.g.
            replayed after a resume, keeps its last record).
        result: ``result.json`` (empty when the run has not finished).
        checkpoint: the newest undamaged checkpoint folder, or None.
        meta: that checkpoint's ``state.json`` (model, pattern, placement, head, training settings, task).
        settings: ``config.json``'s ``settings`` (runs made by ``attnviz train``), else ``{}``.
    """

    run_dir: Path
    history: list
    result: dict
    checkpoint: Path | None
    meta: dict
    settings: dict = field(default_factory=dict)

    @property
    def model_config(self) -> dict:
        return self.meta.get("model") or {}

    @property
    def pattern(self) -> AttentionPattern:
        from ..patterns import pattern_from_dict

        return pattern_from_dict(self.model_config["pattern"])

    @property
    def placement(self) -> PromptPlacement | None:
        from ..prompts.model import placement_from_dict

        return placement_from_dict(self.model_config.get("placement"))

    @property
    def num_layers(self) -> int:
        return int(self.model_config["num_layers"])

    def layout(self, text_len: int | None = None) -> SequenceLayout:
        """The layout of a text of ``text_len`` tokens (default: the run's ``max_length`` minus its
        special tokens, else :data:`DEFAULT_TEXT_LEN`)."""
        cls, sep = (bool(x) for x in self.model_config.get("special_tokens", (True, True)))
        if text_len is None:
            ml = self.settings.get("max_length")
            text_len = int(ml) - int(cls) - int(sep) if ml else DEFAULT_TEXT_LEN
        p = self.placement
        return plain_layout(text_len, cls=cls, sep=sep) if p is None else p.layout(text_len, cls=cls, sep=sep)

    def task_name(self) -> str:
        task = self.meta.get("task") or {}
        name = task.get("name") or self.settings.get("task") or "not recorded"
        labels = task.get("label_names")
        return f"{name} ({', '.join(map(str, labels))})" if labels else str(name)


def read_run(run_dir: str | os.PathLike) -> RunRecord:
    """Read a run folder (see the module docstring). Raises ``ValueError`` naming what is missing."""
    from ..prompts.checkpoints import latest_checkpoint, load_checkpoint

    run = Path(run_dir)
    if not run.is_dir():
        raise ValueError(f"{run} is not a folder; give the out_dir of train_soft_prompt / attnviz train --out")
    log = run / "log.jsonl"
    ckpt = latest_checkpoint(run)
    if not log.is_file() and ckpt is None:
        raise ValueError(f"{run} is not a run folder: it has neither log.jsonl nor checkpoints/step-…")
    by_step: dict[int, dict] = {}
    if log.is_file():
        for i, line in enumerate(log.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{log} line {i} is not JSON (a damaged log?): {line[:80]!r}") from None
            by_step[int(rec["step"])] = rec
    meta = load_checkpoint(ckpt)[1] if ckpt is not None else {}
    if not meta:
        raise ValueError(f"{run} has no checkpoint yet, so its model and pattern are unknown; report after the "
                         f"first checkpoint is written")
    result = json.loads((run / "result.json").read_text()) if (run / "result.json").is_file() else {}
    cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
    history = [by_step[k] for k in sorted(by_step)] or list(meta.get("history", []))
    return RunRecord(run_dir=run, history=history, result=result, checkpoint=ckpt, meta=meta,
                     settings=dict(cfg.get("settings") or {}))


def settings_rows(run: RunRecord) -> list[tuple[str, str]]:
    """``(name, value)`` rows of the run-settings table."""
    mc, train, res = run.model_config, run.meta.get("train") or {}, run.result
    p = run.placement
    where = "none (head only)" if p is None else (
        f"{p.n_tokens}-token {p.kind}" + (f" at {p.at}" if p.at is not None else "")
        + (f" every {p.every}" if p.every is not None else ""))
    head = mc.get("head") or {}
    ev = res.get("eval") or (run.meta.get("metrics") or None)
    rows = [
        ("model", f"{mc.get('model_id', '?')} ({mc.get('family', '?')}, {mc.get('num_layers', '?')} layers, "
                  f"hidden {mc.get('hidden_size', '?')})"),
        ("task", run.task_name()),
        ("pattern", describe(run.pattern)),
        ("prompt placement", where),
        ("head", f"{head.get('task', '?')}, {head.get('pooling', '')} pooling, {head.get('num_labels', '?')} labels"),
        ("backend", str(mc.get("backend", "?"))),
        ("steps", f"{res.get('step', run.meta.get('step', '?'))} of {train.get('steps', '?')}"
                  + (" (stopped early)" if res.get("stopped") else "")),
        ("batch size · learning rates", f"{train.get('batch_size', '?')} · prompt {format_value(train.get('lr_prompt'), 4)}, "
                                        f"head {format_value(train.get('lr_head'), 4)} ({train.get('optimizer', '?')}, "
                                        f"{train.get('schedule', '?')})"),
        ("held-out accuracy", f"{ev['accuracy']:.4f} on {ev.get('n', '?')} examples" if ev and "accuracy" in ev else "—"),
        ("time", f"{format_value(res.get('seconds_per_step'), 4)} s/step, {format_value(res.get('seconds'), 4)} s in all" if res else "—"),
        ("trainable parameters", ", ".join(f"{k} {v}" for k, v in (res.get("trainable") or
                                                                    run.meta.get("trainable") or {}).items()) or "—"),
        ("checkpoint", str(run.checkpoint) if run.checkpoint else "—"),
    ]
    if res.get("pruning"):
        rows.append(("pruning", res["pruning"]))
    return rows


def _table(header: list[str], columns: list[list], title: str, height: int | None = None) -> go.Figure:
    fig = go.Figure(go.Table(header=dict(values=header, align="left", fill_color="#eee", font=dict(size=13)),
                             cells=dict(values=columns, align="left", font=dict(size=13), height=24)))
    n = len(columns[0]) if columns else 0
    fig.update_layout(title=dict(text=title), width=980, height=height or min(900, 90 + 27 * (n + 1)),
                      margin=dict(l=20, r=20, t=50, b=10))
    return fig


def _load(name: str | os.PathLike):
    """``(model, tokenizer)`` when ``name`` can be loaded here without a network, else None."""
    from ..models import load_model

    if str(name) != "default" and not Path(name).expanduser().is_dir():
        return None
    loaded = load_model(name)
    return loaded.model, loaded.tokenizer


def _model_name(run: RunRecord) -> str | None:
    name = run.settings.get("model")
    if name:
        return str(name)
    mid = run.model_config.get("model_id")
    return "default" if mid == "all-MiniLM-L6-v2" else mid


def prompt_run(run: RunRecord, model, tokenizer, text: str = DEFAULT_TEXT, *, layers=(), method: str = "ablation"):
    """The run's trained prompt (newest checkpoint) in ``text`` under the run's pattern, through
    :func:`attnviz.prompt_on_text.prompt_on_text`: influence (and the attention of ``layers``); above
    2,048 positions on the tiled path, O(L·w) memory."""
    from ..prompt_on_text import prompt_on_text
    from ..prompts.checkpoints import load_checkpoint

    if run.placement is None:
        raise ValueError("the run trained no prompt (head only): there is no prompt influence to show")
    tensors, _ = load_checkpoint(run.checkpoint)
    weight = tensors["prompt.weight"].float()
    hidden = model.get_input_embeddings().weight.shape[1]
    if weight.shape[1] != hidden:
        raise ValueError(f"the run's prompt has hidden size {weight.shape[1]}, the model {hidden}: another model")
    return prompt_on_text(model.eval(), tokenizer, text, weight, run.pattern, run.placement, layers=layers,
                          method=method, max_side=256)


def _prompt_words(run: RunRecord, model, tokenizer) -> tuple[list[tuple[str, go.Figure]], list[str]]:
    """What the trained prompt "says": each prompt vector's nearest vocabulary token (cosine over
    the input embeddings) and its norm at every kept checkpoint (:mod:`attnviz.prompts.nearest`)."""
    from ..plots.evidence import prompt_words_figure
    from ..prompts.checkpoints import CheckpointError
    from ..prompts.nearest import drift, nearest_over_checkpoints

    try:
        words = nearest_over_checkpoints(run.run_dir, model, tokenizer, k=3)
    except (ValueError, CheckpointError) as exc:
        return [], [f"nearest tokens left out: {exc}"]
    last, moved = words[-1], drift(words)[-1]
    note = (f"what the prompt says (step {last.step}): nearest tokens "
            + ", ".join(f"{j}: {t[0]} ({float(c):.2f})" for j, (t, c) in enumerate(zip(last.tokens, last.cosine[:, 0])))
            + f"; mean norm {moved['mean_norm']:.2f} (real tokens: {last.embedding_norm:.2f}); "
              f"{moved['changed_top_token']:.0%} of the vectors changed their nearest token since step {words[0].step}")
    return [("prompt words", prompt_words_figure(words))], [note]


def report_figures(run: RunRecord, *, model=None, tokenizer=None, text: str = DEFAULT_TEXT,
                   influence: bool = True, positions: int | None = None) -> tuple[list[tuple[str, go.Figure]], list[str]]:
    """``([(name, figure), ...], notes)``: settings table, curves, spread, mask, per-step table and,
    when a model is given or the run's model loads here (``influence``), the influence map and the
    last layer's attention on ``text`` (pooled, the prompt's rows and columns exact).

    ``positions``: extend the model's position table to this many positions first
    (:func:`attnviz.models.extend_positions`), so a long ``text`` is not truncated; above 2,048
    positions the maps and influence take the tiled path (O(L·w) memory)."""
    from ..plots import influence_figure, mask_figure, spread_figure
    from ..plots.attention import attention_figure
    from ..plots.training import training_figure
    from ..spread import spread_pattern

    notes: list[str] = []
    rows = settings_rows(run)
    figs = [("settings", _table(["setting", "value"], [[r[0] for r in rows], [r[1] for r in rows]], "Run settings"))]
    steps = (run.meta.get("train") or {}).get("steps")
    if run.history:
        figs.append(("training", training_figure(run.history, steps=steps, title=f"Training of {run.run_dir.name}")))
    else:
        notes.append("no log.jsonl: no training curves")
    pattern, n = run.pattern, run.num_layers
    layout = run.layout()
    reach = spread_pattern(pattern, layout, n)
    figs.append(("spread", spread_figure(reach, layout, pattern=pattern)))
    figs.append(("mask", mask_figure(pattern, layout, layer=0, num_layers=n)))
    if influence and run.placement is not None:
        loaded = (model, tokenizer) if model is not None else None
        if loaded is None:
            name = _model_name(run)
            try:
                loaded = _load(name) if name else None
            except (OSError, ValueError) as exc:
                notes.append(f"model {name!r} could not be loaded ({exc}); influence map left out")
                loaded = False
            if loaded is None:
                notes.append(f"model {name!r} is not available offline here (give --model FOLDER); influence map "
                             f"left out")
        if loaded:
            if positions is not None:
                from ..models.positions import extend_positions

                extend_positions(loaded[0], positions, tokenizer=loaded[1])
            last = run.num_layers - 1
            measured = prompt_run(run, loaded[0], loaded[1], text, layers=(last,))
            result = measured.influence
            figs.append(("influence", influence_figure(result, example=0)))
            figs.append(("attention", attention_figure(measured.maps, measured.layout, layer=last)))
            shown = text if len(text) <= 200 else f"{text[:200]}… ({measured.layout.length:,} positions)"
            notes.append(f"influence of the trained prompt and attention of layer {last} on: {shown!r} "
                         f"({measured.backend} path). {result.summary()}")
            figs_words, words_note = _prompt_words(run, loaded[0], loaded[1])
            figs += figs_words
            notes += words_note
    if run.history:
        h = run.history
        figs.append(("log", _table(
            ["step", "loss", "accuracy", "held-out loss", "held-out accuracy"],
            [[r["step"] for r in h], [r["loss"] for r in h], [r.get("accuracy") for r in h],
             [(r.get("eval") or {}).get("loss") for r in h], [(r.get("eval") or {}).get("accuracy") for r in h]],
            "Every step as logged (log.jsonl)", height=min(700, 120 + 26 * (len(h) + 1)))))
    return figs, notes


def write_pngs(figs: list[tuple[str, go.Figure]], folder: str | os.PathLike, scale: float = 2.0) -> list[Path]:
    """``folder/<name>.png`` for each ``(name, figure)``, in one Chromium session
    (:func:`attnviz.plots.export.write_images`). Returns the paths."""
    from ..plots.export import write_images

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"cannot write PNGs into {folder}: not a folder; create it first")
    return write_images([f for _, f in figs], [folder / f"{name}.png" for name, _ in figs], scale=scale)


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *, model=None, tokenizer=None,
                 text: str = DEFAULT_TEXT, influence: bool = True, png: str | os.PathLike | None = None,
                 positions: int | None = None) -> Path:
    """Write the handout page of a run: ONE self-contained offline HTML file (default
    ``RUN_DIR/report.html``), and with ``png=`` a folder of ``<name>.png`` per figure. ``model`` /
    ``tokenizer``: the run's base model when it is not loadable by name here. Returns the HTML path."""
    from ..plots import save_html

    run = read_run(run_dir)
    out = Path(out) if out is not None else run.run_dir / "report.html"
    if not out.parent.is_dir():
        raise ValueError(f"cannot write {out}: folder {out.parent} does not exist")
    if png is not None and not Path(png).is_dir():
        raise ValueError(f"--png {png}: folder does not exist; create it first")
    figs, notes = report_figures(run, model=model, tokenizer=tokenizer, text=text, influence=influence,
                                 positions=positions)
    res = run.result
    ev = res.get("eval")
    said = (f"{run.model_config.get('model_id', '?')} on {run.task_name()}; pattern {describe(run.pattern)}; "
            f"{'no prompt' if run.placement is None else f'{run.placement.n_tokens}-token {run.placement.kind} prompt'}; "
            f"{res.get('step', run.meta.get('step'))} steps"
            + (f", held-out accuracy {ev['accuracy']:.4f}" if ev else "")
            + f". Mask and spread drawn for a {run.layout().length}-position input. " + " ".join(notes))
    path = save_html([f for _, f in figs], out, title=f"attnviz run report — {run.run_dir.name}", text=said)
    if png is not None:
        write_pngs(figs, png)
    return path
