"""Checkpoints that never lose a run: safetensors + JSON, atomic, checked, never unpickled.

A checkpoint is a folder ``RUN/checkpoints/step-00000050/`` with two files:

* ``state.safetensors``: every tensor — ``prompt.weight``, ``head.*``, the optimizer's state
  tensors (``optimizer.state.<param>.<key>``), the torch / numpy RNG states;
* ``state.json``: everything else — step, the full config (model id, hidden size, pattern,
  placement, head, task, training settings), optimizer param groups and scalar state, scheduler
  state, python RNG state, data position, metrics, and the SHA-256 of ``state.safetensors``.

The folder is written as ``.tmp-step-…`` and renamed into place (atomic on one file system), so a
run killed at any moment leaves either the old set of checkpoints or the old set plus one complete
new one. Reading verifies the checksum and the JSON before anything is used; a damaged file gives a
:class:`CheckpointError` naming it and touches nothing else. Nothing is ever unpickled (no
``torch.load``): optimizer states go through safetensors tensors + JSON scalars.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..files import atomic_write

FORMAT = "attnviz-prompt-checkpoint"
VERSION = 1
_STEP_DIR = re.compile(r"^step-(\d{8})$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: damaged, incomplete, or from another model / placement."""


# ---- files -------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: dict) -> Path:
    """Write ``data`` as JSON to ``path`` with :func:`attnviz.files.atomic_write` (a temporary file
    and a rename; the temporary file is removed on any error)."""
    return atomic_write(path, json.dumps(data, indent=1, sort_keys=True).encode())


def step_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:08d}"


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write one checkpoint folder atomically (temporary folder, fsync, rename).

    If ``path`` exists already (e.g. a damaged checkpoint at the same step), it is moved aside to
    ``<path>.replaced-<time>``, never deleted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        save_file(tensors, str(tmp / "state.safetensors"), metadata={"format": FORMAT})
        meta = dict(meta, format=FORMAT, version=VERSION, sha256=_sha256(tmp / "state.safetensors"))
        with open(tmp / "state.json", "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        with open(tmp / "state.safetensors", "rb+") as f:
            os.fsync(f.fileno())
        if path.exists():
            os.replace(path, path.with_name(f"{path.name}.replaced-{time.time_ns()}"))
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """``(tensors, meta)`` of a checkpoint folder, after checking it is complete and undamaged.

    Raises:
        CheckpointError: naming the file and what is wrong with it (missing, not JSON, wrong
            format, checksum mismatch, unreadable safetensors).
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"no checkpoint folder at {path}")
    meta_path, tensor_path = path / "state.json", path / "state.safetensors"
    for p in (meta_path, tensor_path):
        if not p.is_file():
            raise CheckpointError(f"checkpoint {path} is incomplete: {p.name} is missing")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint file {meta_path} is damaged (not valid JSON: {exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path} is not an attnviz prompt checkpoint (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("version", 0) > VERSION:
        raise CheckpointError(f"{meta_path} has format version {meta['version']}; this attnviz reads up to {VERSION}")
    digest = _sha256(tensor_path)
    if digest != meta.get("sha256"):
        raise CheckpointError(
            f"checkpoint file {tensor_path} is damaged: its SHA-256 does not match the one recorded in state.json "
            f"(truncated or overwritten?); other checkpoints in {path.parent} are untouched")
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint file {tensor_path} cannot be read as safetensors: {exc}") from None
    return tensors, meta


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint folders of a run, oldest step first (temporary and replaced folders skipped)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name)]
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint that loads cleanly; damaged newer ones are skipped with a warning
    (and left where they are). None if the run has none."""
    for path in reversed(list_checkpoints(run_dir)):
        try:
            load_checkpoint(path)
        except CheckpointError as exc:
            warnings.warn(f"skipping damaged checkpoint: {exc}", RuntimeWarning, stacklevel=2)
            continue
        return path
    return None


def damaged_checkpoints(run_dir: Path) -> list[tuple[Path, str]]:
    """``(path, reason)`` for every checkpoint of the run that does not load cleanly, oldest first."""
    out = []
    for path in list_checkpoints(run_dir):
        try:
            load_checkpoint(path)
        except CheckpointError as exc:
            out.append((path, str(exc)))
    return out


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (never the newest one)."""
    found = list_checkpoints(run_dir)
    for path in found[:-max(keep, 1)]:
        shutil.rmtree(path, ignore_errors=True)


# ---- optimizer / RNG as tensors + JSON -----------------------------------------------------------
def _jsonable(value):
    if isinstance(value, tuple):
        return {"__tuple__": [_jsonable(v) for v in value]}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint's JSON: {value!r}")


def _from_json(value):
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(_from_json(v) for v in value["__tuple__"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def optimizer_to_flat(state_dict: dict, prefix: str = "optimizer") -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into safetensors tensors and a JSON-able dict."""
    tensors, scalars = {}, {}
    for pid, state in state_dict["state"].items():
        entry = {}
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.state.{pid}.{key}"] = value
                entry[key] = {"__tensor__": f"{prefix}.state.{pid}.{key}"}
            else:
                entry[key] = _jsonable(value)
        scalars[str(pid)] = entry
    return tensors, {"state": scalars, "param_groups": _jsonable(state_dict["param_groups"])}


def optimizer_from_flat(tensors: dict[str, torch.Tensor], data: dict) -> dict:
    """Inverse of :func:`optimizer_to_flat`: a ``state_dict`` for ``optimizer.load_state_dict``."""
    state = {}
    for pid, entry in data["state"].items():
        state[int(pid)] = {k: tensors[v["__tensor__"]] if isinstance(v, dict) and "__tensor__" in v else _from_json(v)
                           for k, v in entry.items()}
    return {"state": state, "param_groups": _from_json(data["param_groups"])}


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """The python, numpy and torch (CPU and CUDA) RNG states as tensors + JSON."""
    py = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    tensors = {"rng.torch": torch.get_rng_state(), "rng.numpy": torch.from_numpy(keys.astype(np.int64))}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    data = {"python": _jsonable(py), "numpy": [name, int(pos), int(has_gauss), float(cached)]}
    return tensors, data


def set_rng_state(tensors: dict[str, torch.Tensor], data: dict) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(_from_json(data["python"]))
    name, pos, has_gauss, cached = data["numpy"]
    np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        states = [tensors[k] for k in cuda]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


# ---- compatibility ------------------------------------------------------------------------------
def check_compatible(meta: dict, model_config: dict, *, where: str = "checkpoint", strict: bool = False) -> None:
    """Raise :class:`CheckpointError` if a checkpoint cannot go into this model.

    Always checked: model id, hidden size, placement (kind, ``n_tokens``, ``at``, ``every``) and the
    head. With ``strict`` (resuming): also the pattern, backend, number of layers and special
    tokens (pruning may differ: it does not change the result).
    """
    saved = meta.get("model", {})
    problems = []
    if saved.get("model_id") != model_config.get("model_id") or saved.get("hidden_size") != model_config.get("hidden_size"):
        problems.append(
            f"it was trained on model {saved.get('model_id')!r} (hidden size {saved.get('hidden_size')}), "
            f"this model is {model_config.get('model_id')!r} (hidden size {model_config.get('hidden_size')})")
    if saved.get("placement") != model_config.get("placement"):
        problems.append(f"its placement is {_placement_text(saved.get('placement'))}, "
                        f"this model's is {_placement_text(model_config.get('placement'))}")
    if saved.get("head") != model_config.get("head"):
        problems.append(f"its head is {saved.get('head')}, this model's is {model_config.get('head')}")
    if strict:
        for key in ("pattern", "num_layers", "backend", "special_tokens"):
            if saved.get(key) != model_config.get(key):
                problems.append(f"its {key} is {saved.get(key)!r}, this model's is {model_config.get(key)!r}")
    if problems:
        raise CheckpointError(f"{where} does not fit this model: " + "; ".join(problems))


def _placement_text(p: dict | None) -> str:
    if p is None:
        return "none (head only, 0 prompt tokens)"
    extra = "".join(f", {k}={p[k]}" for k in ("at", "every") if p.get(k) is not None)
    return f"{p['kind']} with n_tokens={p['n_tokens']}{extra}"
