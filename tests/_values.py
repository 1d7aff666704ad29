"""Read a figure's numbers back in the dtype of the tensor they were computed from.

A plot stores float32 results in whatever form plotly and numpy choose (float32 arrays, Python
floats, shortest decimal strings); how a float32 prints and parses back through float64 depends on
their versions (0.43791075 vs 0.43791074). Read back as float32, every such form equals the tensor
exactly, so "the figure shows the computed value" stays an exact equality on any version.
"""

import numpy as np
import torch


def shown(values, like: torch.Tensor) -> np.ndarray:
    """``values`` (figure data: list, tuple or array) as a numpy array of ``like``'s dtype."""
    return np.asarray(values, dtype=torch.empty((), dtype=like.dtype).numpy().dtype)


def shows(values, tensor: torch.Tensor) -> bool:
    """The figure's ``values`` equal ``tensor`` exactly, compared in the tensor's dtype (NaN equals NaN)."""
    want = tensor.detach().cpu().numpy()
    got = shown(values, tensor)
    return got.shape == want.shape and bool(np.array_equal(got, want, equal_nan=True))
