"""Influence by gradients: a forward-mode estimate of the ablation map, and grad × input (or
integrated gradients) per prompt token.

Grad × input of the task output with respect to each prompt vector,
``Σ_h ∂o/∂p_jh · (p_jh − b_jh)`` (first-order estimate of how much ablating token ``j``
changes the output ``o``), or integrated gradients (``integrated=True``, needs ``captum``).
The map is the same first-order estimate of the ablation map, computed in one forward-mode
pass (Jacobian · (prompt − baseline)).
"""

from __future__ import annotations

import importlib

import torch

from .runs import Group, Run, Runner, hidden_states


def jvp_group(runner: Runner, g: Group, weight, base_vec) -> torch.Tensor:
    """``‖J_l (prompt − baseline)‖ / ‖h_l‖`` per layer and token, one forward-mode pass."""
    import torch.autograd.forward_ad as fwAD

    with torch.no_grad(), fwAD.dual_level():
        dual = fwAD.make_dual(weight, weight - base_vec)
        out = runner(g, dual, output_hidden_states=True)
        rows = []
        for h in hidden_states(out):
            primal, tangent = fwAD.unpack_dual(h)
            if tangent is None:
                tangent = torch.zeros_like(primal)
            diff = tangent.to(torch.float32).norm(dim=-1)
            rows.append(torch.where(diff == 0, diff, diff / primal.to(torch.float32).norm(dim=-1).clamp(min=1e-30)))
    return torch.stack(rows, 1)


def grad_x_input_group(runner: Runner, g: Group, weight, base_vec, scalar) -> torch.Tensor:
    """``Σ_h ∂o_b/∂p_bjh · (p − baseline)_jh`` with a per-example copy of the prompt: ``(g, n)``."""
    leaf = weight.detach().expand(len(g.rows), -1, -1).clone().requires_grad_(True)
    with torch.enable_grad():
        o = scalar(runner(g, leaf, output_hidden_states=True), g.rows)
        (grad,) = torch.autograd.grad(o.sum(), leaf)
    return (grad * (weight - base_vec)[None]).sum(-1).detach()


def integrated_group(runner: Runner, g: Group, weight, base_vec, scalar, steps: int) -> torch.Tensor:
    """Integrated gradients with captum (optional dependency): ``(g, n)``."""
    try:
        attr = importlib.import_module("captum.attr")
    except ImportError as exc:
        raise ImportError("integrated=True needs captum (pip install captum); or use integrated=False for "
                          "grad × input") from exc
    k = len(g.rows)

    def forward(prompt_rows: torch.Tensor) -> torch.Tensor:
        # captum stacks the interpolation steps along the batch axis: (k * s, n, H).
        s = prompt_rows.shape[0] // k
        outs = []
        for i in range(s):
            chunk = prompt_rows[i * k:(i + 1) * k]
            outs.append(scalar(runner(g, chunk, output_hidden_states=True), g.rows))
        return torch.cat(outs)

    ig = attr.IntegratedGradients(forward)
    inputs = weight.detach().expand(k, -1, -1).clone()
    baselines = base_vec.detach().expand(k, -1, -1).clone()
    with torch.enable_grad():
        a = ig.attribute(inputs, baselines=baselines, n_steps=steps, internal_batch_size=k)
    return a.sum(-1).detach()


def check(backend: str) -> None:
    if backend == "flex":
        raise ValueError("gradient needs a backward pass; backend='flex' has none on CPU. Use 'dense' or 'sdpa'")


def run_group(run: Run, g: Group) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(values (g, layers + 1, Lg), attribution (g, n) or None)`` for one group of rows."""
    values = jvp_group(run.runner, g, run.weight, run.base_vec).cpu()
    if not run.per_token:
        return values, None
    run.scalar.prepare(run.runner, g, run.weight, run.base_vec)
    if run.integrated:
        return values, integrated_group(run.runner, g, run.weight, run.base_vec, run.scalar, run.steps).cpu()
    return values, grad_x_input_group(run.runner, g, run.weight, run.base_vec, run.scalar).cpu()


def notes(run: Run) -> list[str]:
    out = ["values: first-order (Jacobian · (prompt − baseline)) estimate of the ablation map, ‖J_l δ‖ / ‖h_l‖"]
    if run.per_token:
        out.append("attribution: " + (f"integrated gradients (captum, {run.steps} steps)" if run.integrated
                                      else "grad × (prompt − baseline)") + " of " + run.scalar.description)
    return out
