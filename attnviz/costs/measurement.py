"""A real run of one layer's attention op, measured against the analytic model.

:func:`measure` times an op and reads its net peak memory; :func:`measure_isolated` runs it in a
fresh process (``python -m attnviz.costs.measure``, JSON in on stdin and out on stdout), started
with :data:`attnviz.memory.MALLOC_ENV`, so CPU peaks are exact even from a notebook kernel.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from ..checks import is_int
from ..memory import MALLOC_ENV, peak_memory
from ..patterns import AttentionPattern, allowed, mask_mod, pattern_from_dict, pattern_to_dict
from ..placement import SequenceLayout
from .model import (FUSED, MEASURABLE, LayerCost, attention_cost, check_choice, dtype_name, longformer_padded_length,
                    longformer_windows)
from .pairs import as_layout, check_positive

#: What starts the line of results the measuring process writes.
MARKER = "@@MEASURED@@"

@dataclass(frozen=True)
class Measurement:
    """One backend's attention op, measured against its analytic model.

    Attributes:
        backend: one of :data:`MEASURABLE` (costed as the implementation of the same name).
        device, dtype, length, batch, num_heads, head_dim, backward, layer: the configuration run.
        seconds: median wall time of one op (forward, or forward + backward), over ``times``.
        times: every timed run, seconds.
        peak_bytes: measured net peak of one op (max over runs); None where it cannot be measured.
        predicted: the analytic :class:`LayerCost` of this implementation.
        memory_method: how the peak was read (see :mod:`attnviz.memory`).
        note: caveats of this reading, empty when none.
    """

    backend: str
    device: str
    dtype: str
    length: int
    batch: int
    num_heads: int
    head_dim: int
    backward: bool
    layer: int
    seconds: float
    times: tuple[float, ...]
    peak_bytes: int | None
    predicted: LayerCost
    memory_method: str
    note: str = ""

    @property
    def predicted_bytes(self) -> int:
        return self.predicted.op_peak_bytes(self.backward)

    @property
    def ratio(self) -> float | None:
        """Measured / predicted net peak (None without a measurement)."""
        return None if self.peak_bytes is None else self.peak_bytes / self.predicted_bytes

    @property
    def flops(self) -> int:
        p = self.predicted
        return p.flops_forward + (p.flops_backward if self.backward else 0)

    @property
    def flops_per_second(self) -> float:
        return self.flops / self.seconds


@lru_cache(maxsize=None)
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention)


def _float_mask(allowed_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive float ``(L, L)``: 0 where allowed, -inf elsewhere (one ``L²`` allocation)."""
    return torch.full(allowed_mask.shape, float("-inf"), dtype=dtype, device=allowed_mask.device
                      ).masked_fill_(allowed_mask, 0.0)


def _dense_attention(q, k, v, allowed_mask):
    mask = _float_mask(allowed_mask, q.dtype)
    scores = q @ k.transpose(-2, -1)                    # (B, H, L, L)
    scores.mul_(q.shape[-1] ** -0.5).add_(mask)         # in place: still one (B, H, L, L)
    probs = scores.softmax(-1)                          # scores and probs live together here
    del scores
    return probs @ v


def _sdpa_attention(q, k, v, allowed_mask):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=_float_mask(allowed_mask, q.dtype))


def measure(
    pattern: AttentionPattern | None,
    layout: SequenceLayout | int,
    num_heads: int,
    head_dim: int,
    *,
    batch: int = 1,
    backend: str = "dense",
    backward: bool = False,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype = "float32",
    layer: int = 0,
    repeats: int = 3,
    seed: int = 0,
) -> Measurement:
    """Run one layer's attention op for real and compare it with :func:`attention_cost`.

    Random ``q, k, v`` ``(batch, num_heads, L, head_dim)`` go through ``backend`` (one of
    :data:`MEASURABLE`) with the layer's mask; one warm-up run (thread pools, autograd, compilation),
    then ``repeats`` runs, each timed and wrapped in :func:`attnviz.memory.peak_memory`.

    What is inside the measured op: for ``dense`` and ``sdpa``, building the additive float mask
    from the boolean one (the model holds the boolean mask, as HF models build the float one per
    forward), the attention, and with ``backward`` a backward from ``grad_out = ones``; for
    ``flex`` the ``BlockMask`` is built beforehand (``create_block_mask`` evaluates ``mask_mod`` over
    all pairs, a one-off per length; its tables are tiny) and only the compiled kernel is measured.
    For ``longformer`` the op is transformers' ``LongformerSelfAttention`` (random weights) on random
    hidden states ``(batch, L', num_heads·head_dim)``, padded and masked as ``LongformerModel`` does,
    with the pattern's global tokens; its q, k, v projections are part of the op and of the prediction.

    On CPU, run in a process started with :data:`attnviz.memory.MALLOC_ENV` so freed tensors go back
    to the kernel (``note`` says when it was not). FlexAttention needs ``torch.compile`` (on CPU a
    C++ compiler, ~20 s the first time) and has no backward on CPU.
    """
    pattern = AttentionPattern() if pattern is None else pattern
    check_choice("backend", backend, MEASURABLE)
    dtype = dtype_name(dtype)
    check_positive("repeats", repeats)
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"measure runs on 'cpu' or 'cuda' devices, got {device}")
    if backend == "flex" and backward and device.type == "cpu":
        raise ValueError(f"FlexAttention has no backward on CPU (torch {torch.__version__}); "
                         "use backend='dense' or 'sdpa', backward=False, or a CUDA device")
    layout = as_layout(layout)
    if not is_int(layer) or layer < 0:
        raise ValueError(f"layer must be an int >= 0, got {layer!r}")
    pattern.window_at(layer)  # raises if the layer is outside a per-layer pattern
    layers = pattern.per_layer or layer + 1
    predicted = attention_cost(pattern, layout, layers, num_heads, head_dim, batch=batch, dtype=dtype,
                               implementation=backend, backward=backward).per_layer[layer]
    L = layout.length
    torch_dtype = getattr(torch, dtype)

    generator = torch.Generator(device).manual_seed(seed)
    if backend == "longformer":
        op, inputs = _longformer_op(pattern, layout, layers, layer, num_heads, head_dim, batch, torch_dtype,
                                    device, generator, backward)
    else:
        op = _attention_op(pattern, layout, layer, backend, device)
        inputs = tuple(torch.randn(batch, num_heads, L, head_dim, generator=generator, device=device,
                                   dtype=torch_dtype).requires_grad_(backward) for _ in range(3))

    def run():
        out = op(*inputs)
        if backward:
            out.backward(torch.ones_like(out))
        del out
        for t in inputs:
            t.grad = None
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    try:
        with torch.set_grad_enabled(backward):
            run()  # warm-up
    except Exception as err:
        if backend == "flex":
            raise RuntimeError(f"FlexAttention failed on {device} (torch.compile needs a working compiler; "
                               f"on CPU a C++ toolchain): {type(err).__name__}: {err}") from err
        raise
    times, peaks, method = [], [], ""
    for _ in range(repeats):
        with torch.set_grad_enabled(backward), peak_memory(device) as reading:
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        peaks.append(reading.peak_bytes)
        method = reading.method
    notes = []
    if device.type == "cpu" and any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        notes.append("CPU peak read without attnviz.memory.MALLOC_ENV: retained heap may hide allocations")
    if backend in FUSED:
        notes.append("kernel workspace is not modelled")
    return Measurement(
        backend=backend, device=str(device), dtype=dtype, length=L, batch=batch, num_heads=num_heads,
        head_dim=head_dim, backward=backward, layer=layer, seconds=statistics.median(times),
        times=tuple(times), peak_bytes=None if None in peaks else max(peaks), predicted=predicted,
        memory_method=method, note="; ".join(notes),
    )


def _attention_op(pattern, layout, layer, backend, device):
    """``op(q, k, v)`` of a dense / sdpa / flex layer (mask built here, outside the measured op)."""
    L = layout.length
    idx = torch.arange(L)
    rows = max(1, (1 << 22) // L)  # the rule on CPU in row chunks: its int64 temporaries stay small
    allowed_mask = torch.cat([allowed(pattern, layout, layer, idx[i:i + rows, None], idx[None, :])
                              for i in range(0, L, rows)]).to(device)
    if backend == "flex":
        from torch.nn.attention.flex_attention import create_block_mask

        block_mask = create_block_mask(mask_mod(pattern, layout, layer, device), B=None, H=None,
                                       Q_LEN=L, KV_LEN=L, device=device)
        del allowed_mask
        kernel = _compiled_flex()

        def op(q, k, v):
            return kernel(q, k, v, block_mask=block_mask)
    else:
        attend = _dense_attention if backend == "dense" else _sdpa_attention

        def op(q, k, v):
            return attend(q, k, v, allowed_mask)

    return op


def _longformer_op(pattern, layout, num_layers, layer, num_heads, head_dim, batch, dtype, device, generator,
                   backward):
    """``op(hidden)`` running transformers' ``LongformerSelfAttention`` for ``layer`` as
    ``LongformerModel`` runs it (input padded to ``L'``, padding masked, global tokens marked),
    and its input: random hidden states ``(batch, L', num_heads · head_dim)``."""
    import transformers
    from transformers.models.longformer.modeling_longformer import LongformerSelfAttention

    windows = longformer_windows(pattern, num_layers)
    Lp = longformer_padded_length(layout.length, windows)
    config = transformers.LongformerConfig(hidden_size=num_heads * head_dim, num_attention_heads=num_heads,
                                           num_hidden_layers=num_layers, attention_window=list(windows),
                                           attention_probs_dropout_prob=0.0)
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=device)))
    module = LongformerSelfAttention(config, layer).to(device=device, dtype=dtype).eval()
    mask = torch.zeros(batch, Lp, device=device, dtype=dtype)
    mask[:, layout.length:] = -10000.0                                     # padding
    mask[:, :layout.length][:, pattern.global_mask(layout).to(device)] = 10000.0   # global tokens
    kw = dict(attention_mask=mask, is_index_masked=mask < 0, is_index_global_attn=mask > 0,
              is_global_attn=bool((mask > 0).any()))
    hidden = torch.randn(batch, Lp, num_heads * head_dim, generator=generator, device=device, dtype=dtype)

    def op(x):
        return module(x, **kw)[0]

    return op, (hidden.requires_grad_(backward),)


def measure_isolated(runs: list[dict], *, timeout: float = 600) -> list[Measurement]:
    """:func:`measure` for each of ``runs`` (its keyword arguments: ``pattern`` an
    :class:`AttentionPattern` or None, ``layout`` a length, ...) in one fresh Python process started
    with :data:`attnviz.memory.MALLOC_ENV`, so CPU peaks are exact even when called from a notebook
    kernel (whose heap keeps freed memory and would hide allocations). Raises ``RuntimeError`` with
    the child's last lines if it fails."""
    payload = []
    for run in runs:
        run = dict(run)
        pattern = run.get("pattern")
        if pattern is not None and not isinstance(pattern, AttentionPattern):
            raise TypeError(f"pattern must be an AttentionPattern or None, got {type(pattern).__name__}")
        run["pattern"] = None if pattern is None else pattern_to_dict(pattern)
        if not is_int(run.get("layout")):
            raise TypeError(f"measure_isolated takes plain lengths as layout, got {run.get('layout')!r}")
        if "dtype" in run:
            run["dtype"] = dtype_name(run["dtype"])
        payload.append(run)
    root = str(Path(__file__).resolve().parents[2])     # the folder holding the attnviz package
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(MALLOC_ENV)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "attnviz.costs.measure"], input=json.dumps(payload),
                          capture_output=True, text=True, env=env, timeout=timeout)
    line = next((x for x in proc.stdout.splitlines() if x.startswith(MARKER)), None)
    if proc.returncode or line is None:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"measure in a fresh process failed (exit {proc.returncode}): {tail}")
    out = []
    for d in json.loads(line[len(MARKER):]):
        d["predicted"] = LayerCost(**d["predicted"])
        d["times"] = tuple(d["times"])
        out.append(Measurement(**d))
    return out


def main(stdin=None, stdout=None) -> None:
    """What ``python -m attnviz.costs.measure`` runs: reads a JSON list of :func:`measure` keyword
    arguments (``pattern`` as :func:`attnviz.patterns.pattern_to_dict` writes it, or null) from ``stdin``
    and writes one line, :data:`MARKER` followed by the JSON list of the measurements, to ``stdout``
    (the marker keeps it apart from anything a library prints)."""
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    out = []
    for run in json.load(stdin):
        pattern = run.pop("pattern")
        m = measure(None if pattern is None else pattern_from_dict(pattern), **run)
        out.append(dataclasses.asdict(m))
    stdout.write(MARKER + json.dumps(out) + "\n")
