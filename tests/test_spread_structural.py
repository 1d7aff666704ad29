"""spread_pattern (O(L) per layer, from the pattern's structure) equals the dense reference exactly."""

import random

import pytest
import torch

from attnviz import AttentionPattern, PromptPlacement, build_masks, spread
from attnviz.spread import spread_pattern


def _random_case(rng: random.Random):
    causal = rng.random() < 0.4
    layers = rng.randint(1, 4)

    def win():
        w = rng.choice([None, 1, 2, 3, 4, 6, 8, 20])
        return w if w is None or causal or w % 2 == 0 else w + 1

    window = tuple(win() for _ in range(layers)) if rng.random() < 0.5 else win()
    text = rng.randint(0, 40)
    kind = rng.choice(["prefix", "suffix", "infix", "scattered", "start"])
    kw = {"at": rng.randint(0, text)} if kind == "infix" else {"every": rng.randint(1, 5)} if kind == "scattered" else {}
    layout = PromptPlacement(kind, n_tokens=rng.randint(1, 4), **kw).layout(text, cls=not causal, sep=not causal)
    random_blocks = rng.choice([0, 0, 1, 2])
    pattern = AttentionPattern(
        window=window, causal=causal,
        global_positions=tuple(sorted({rng.randrange(layout.length) for _ in range(rng.randint(0, 2))})),
        global_prompt=rng.random() < 0.3,
        dilation=rng.choice([1, 1, 2, 3]),
        random_blocks=random_blocks, block_size=rng.choice([2, 3, 5]) if random_blocks else None,
        seed=rng.randint(0, 9),
    )
    sources = [rng.randrange(layout.length)] if rng.random() < 0.3 else None
    return pattern, layout, layers, sources


@pytest.mark.parametrize("seed", range(6))
def test_structural_spread_equals_dense_reference(seed):
    rng = random.Random(seed)
    for _ in range(60):
        pattern, layout, layers, sources = _random_case(rng)
        dense = spread(build_masks(pattern, layout, layers), layout.prompt_positions if sources is None else sources)
        fast = spread_pattern(pattern, layout, layers, sources)
        assert torch.equal(dense.reached, fast.reached), (pattern, layout.length, sources)
        assert torch.equal(dense.first_layer, fast.first_layer)


def test_structural_spread_hand_worked_long_input():
    # 16k tokens never build (L, L) masks: window 64 (32 each side), prefix prompt of 20 after [CLS].
    layout = PromptPlacement("prefix", n_tokens=20).layout(16_000)
    s = spread_pattern(AttentionPattern(window=64), layout, num_layers=6)
    # The last prompt token is position 20; after l layers the prompt reaches position 20 + 32*l.
    assert [int(s.reached[l].nonzero().max()) for l in range(7)] == [20 + 32 * l for l in range(7)]
    assert s.first_layer[0] == 1 and s.first_layer[20 + 32 * 6] == 6 and s.first_layer[20 + 32 * 6 + 1] == -1
    g = spread_pattern(AttentionPattern(window=64, global_prompt=True), layout, num_layers=6)
    assert bool(g.reached[1].all())
