"""Peak memory of a block of code, net of what was already in use.

A whole-process peak hides what attention itself costs (the model's weights dominate it), so
attnviz measures *net* peaks: the high-water mark during the block minus what was resident before.

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (exact tensor bytes).
* CPU (Linux): the kernel's resident high-water mark ``VmHWM``, reset at entry by writing ``5`` to
  ``/proc/self/clear_refs``. This counts pages, so it includes allocator slack; run with
  ``MALLOC_MMAP_THRESHOLD_=65536`` (as ``benchmarks/`` does in its subprocesses) so that freed
  tensors go back to the kernel and later allocations are not hidden inside retained heap.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


@dataclass
class MemoryReading:
    """Filled in when the ``with peak_memory()`` block exits. ``peak_bytes`` is net of the start."""

    device: str
    peak_bytes: int | None = None
    method: str = ""

    @property
    def peak_mib(self) -> float | None:
        return None if self.peak_bytes is None else self.peak_bytes / 2**20


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def cpu_peak_supported() -> bool:
    """True where the resident high-water mark can be reset (Linux ``/proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        _status_kib("VmHWM")
        return True
    except OSError:
        return False


@contextlib.contextmanager
def peak_memory(device: str | torch.device = "cpu"):
    """Measure the net peak memory of the ``with`` block on ``device`` ("cpu" or a CUDA device).

    Yields a :class:`MemoryReading` whose ``peak_bytes`` is set on exit (None where the platform
    offers no way to measure it).
    """
    device = torch.device(device)
    reading = MemoryReading(device=str(device))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        yield reading
        torch.cuda.synchronize(device)
        reading.peak_bytes = torch.cuda.max_memory_allocated(device) - start
        reading.method = "torch.cuda.max_memory_allocated"
        return
    if device.type != "cpu":
        raise ValueError(f"peak_memory supports 'cpu' and 'cuda' devices, got {device}")
    if not cpu_peak_supported():
        yield reading
        reading.method = "unavailable (no /proc/self/clear_refs)"
        return
    start = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    yield reading
    reading.peak_bytes = max(0, _status_kib("VmHWM") - start) * 1024
    reading.method = "VmHWM - VmRSS (Linux)"
