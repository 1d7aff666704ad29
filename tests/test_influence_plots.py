"""attnviz.plots.influence: figure data equals the InfluenceMap's numbers."""

import numpy as np
import pytest
import torch

from attnviz import AttentionPattern, PromptPlacement
from attnviz.influence import block_means, distance_profile, prompt_influence
from attnviz.models import tiny_model
from attnviz.plots.influence import attribution_figure, influence_distance_figure, influence_figure
from attnviz.pooling import block_edges
from attnviz.spread import first_layer_of
from _values import shown, shows


@pytest.fixture(scope="module")
def maps():
    model = tiny_model("bert", num_hidden_layers=3, initializer_range=0.2)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 120, (2, 40), generator=g)
    ids[:, 0], ids[:, -1] = 1, 2
    am = torch.ones_like(ids)
    am[1, 30:] = 0
    ids[1, 29], ids[1, 30:] = 2, 0
    batch = dict(input_ids=ids, attention_mask=am)
    prompt = 0.5 * torch.randn(4, 32, generator=g)
    pattern, placement = AttentionPattern(window=4), PromptPlacement("scattered", 4, every=6)
    return {m: prompt_influence(model, prompt, batch, pattern, placement, method=m) for m in ("ablation", "gradient")}


def test_heatmap_equals_the_mean_and_blank_is_exactly_zero(maps):
    r = maps["ablation"]
    fig = influence_figure(r)
    heat = fig.data[0]
    mean = r.mean.numpy()
    z = shown(heat.z, r.mean)
    assert z.shape == (4, r.length)
    assert np.array_equal(np.isnan(z), mean == 0)
    assert np.array_equal(z[~np.isnan(z)], mean[mean != 0])
    assert shows(heat.customdata, r.mean)
    assert np.array_equal(np.asarray(heat.x), np.arange(r.length + 1) - 0.5)
    # blank cells are exactly those the prompt has not reached in any example
    assert np.array_equal(mean == 0, ~r.reached_any.numpy())
    # frontier: the step line sits at first_layer - 0.5 under each token
    frontier = fig.data[2]
    first = first_layer_of(r.reached_any).numpy()
    ys = np.asarray(frontier.y, dtype=float)[::2]
    assert np.array_equal(ys, np.where(first >= 0, first - 0.5, 3.5))
    assert "readout [CLS] at 0" in fig.data[3].name


def test_heatmap_log_one_example_and_pooled(maps):
    r = maps["ablation"]
    fig = influence_figure(r, example=1, log=True)
    v = r.values[1, :, : r.layouts[1].length].numpy().astype(np.float64)
    z = np.array(fig.data[0].z, dtype=np.float64)
    assert z.shape == v.shape
    with np.errstate(divide="ignore"):
        assert np.allclose(z[v > 0], np.log10(v[v > 0]), rtol=0, atol=1e-12)
    assert np.isnan(z[v == 0]).all()
    assert "example 1" in fig.layout.title.text and "log colour" in fig.layout.title.text
    pooled = influence_figure(r, block=4)
    edges = block_edges(r.length, 4, r.layout, min_width=2)
    expected = block_means(r.mean, edges)
    heat = pooled.data[0]
    assert np.array_equal(np.asarray(heat.x), np.asarray(edges) - 0.5)
    assert np.array_equal(shown(heat.customdata, expected)[..., 0], expected.numpy())
    assert "pooled to blocks of 4 tokens" in pooled.layout.title.text
    with pytest.raises(ValueError, match="example must be None .* or in \\[0, 2\\), got 5"):
        influence_figure(r, example=5)


def test_distance_lines_equal_the_profile(maps):
    r = maps["ablation"]
    d, mean, count = distance_profile(r)
    fig = influence_distance_figure(r, log=False, max_distance=int(d.max()))
    assert len(fig.data) == r.num_layers + 1
    for l, tr in enumerate(fig.data):
        assert np.array_equal(np.asarray(tr.x), d.numpy())
        assert shows(tr.y, mean[l])
    log = influence_distance_figure(r)             # log axis: exact zeros left out, x cut past the last non-zero
    far = int(d[(mean != 0).any(0)].max())
    assert max(log.data[0].x) <= far + 2 and f"exactly 0 beyond distance {far}" in log.layout.title.text
    y1 = log.data[1].y
    assert all((v is None) == (m == 0) for v, m in zip(y1, mean[1, : len(y1)].tolist()))
    assert log.layout.yaxis.type == "log"


def test_attribution_bars_equal_per_token_and_mark_unreachable_tokens(maps):
    r = maps["gradient"]
    fig = attribution_figure(r)
    bar = fig.data[0]
    assert shows(bar.y, r.per_token)
    assert list(bar.x) == [f"p{j} @{p}" for j, p in enumerate(r.layout.prompt_positions)]
    cannot = [f"p{j} @{p}" for j, p in enumerate(r.layout.prompt_positions) if not bool(r.can_reach[:, j].any())]
    assert cannot and list(fig.data[1].x) == cannot and fig.data[1].name == "cannot reach the readout"
    a = r.attribution.numpy().astype(np.float64)
    assert np.allclose(np.asarray(bar.error_y.array), a.max(0) - a.mean(0))
    with pytest.raises(ValueError, match="per_token=True"):
        attribution_figure(maps["ablation"])
