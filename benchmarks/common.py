"""Shared pieces of the benchmarks: machine description, subprocess cells, JSON + markdown output.

Every benchmark measures its variants side by side in one run on one machine and reports ratios,
never timed asserts. Each cell runs in a fresh subprocess (so peaks do not leak between cells)
with the allocator settings of :data:`attnviz.memory.MALLOC_ENV`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine_info() -> dict:
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {cpu}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": "cpu",
    }
    if torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name(0)
    return info


def run_cell(module: str, function: str, timeout: float = 600, *, memory_allocator: bool = True, **kwargs) -> dict:
    """Run ``module.function(**kwargs)`` in a fresh Python and return its dict result
    (``{"error": ...}`` if it failed or timed out).

    ``memory_allocator``: set :data:`attnviz.memory.MALLOC_ENV` (freed tensors go back to the kernel, so
    peaks are exact) — right for memory benchmarks; False keeps glibc's defaults, as in a notebook
    kernel (with the low mmap threshold every 64 kB temporary is a fresh mmap: latency doubles)."""
    from attnviz.memory import MALLOC_ENV

    code = (
        "import json, sys, importlib; "
        f"fn = getattr(importlib.import_module({module!r}), {function!r}); "
        "print('@@RESULT@@' + json.dumps(fn(**json.loads(sys.argv[1]))))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(MALLOC_ENV if memory_allocator else {}, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    try:
        out = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], capture_output=True,
                             text=True, env=env, timeout=timeout, cwd=root)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in out.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            return json.loads(line[len("@@RESULT@@"):])
    tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
    return {"error": " | ".join(tail) or f"exit {out.returncode}"}


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def write_results(name: str, title: str, rows: list[dict], columns: list[str], notes: str = "") -> Path:
    """Write ``results/<name>.json`` (machine info + rows) and ``results/<name>.md`` (a table)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    payload = {"benchmark": name, "title": title, "machine": info, "rows": rows, "notes": notes}
    tmp = RESULTS / f".{name}.json.tmp"
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(RESULTS / f"{name}.json")
    lines = [f"# {title}", "", f"{info['date']} · {info['machine']} · device {info['device']} · "
             f"torch {info['torch']} · transformers {info['transformers']} · Python {info['python']}", ""]
    if notes:
        lines += [notes, ""]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    md = RESULTS / f"{name}.md"
    tmp = RESULTS / f".{name}.md.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(md)
    return md
