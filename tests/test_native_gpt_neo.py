"""A model family added as one module + one FAMILIES entry (#16): GPT-Neo's local / global layers
(``attnviz/models/families/local_global.py``). Nothing else in attnviz names GPT-Neo: pattern_of,
to_native, apply_native and with_pattern's refusal follow from the module.

Exactness is read from the model itself: under eager attention, GPT-Neo's attention probabilities
are exactly 0.0 wherever its mask blocks (``torch.where(mask, weights, finfo.min)`` then softmax),
so the pairs with a non-zero probability are the pairs the model allows.
"""

import pytest
import torch
from transformers import GPTNeoConfig, GPTNeoModel

from attnviz import AttentionPattern, build_masks
from attnviz.models import apply_native, pattern_of, to_native, with_pattern
from attnviz.models.families import FAMILIES, local_global


def tiny_gpt_neo(**overrides):
    settings = dict(num_layers=4, attention_types=[[["global", "local"], 2]], window_size=3, hidden_size=32,
                    num_heads=2, max_position_embeddings=64, vocab_size=100, intermediate_size=64,
                    bos_token_id=0, eos_token_id=0)
    settings.update(overrides)
    config = GPTNeoConfig(**settings)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    return GPTNeoModel(config).eval()


def allowed_by_the_model(model, L=12):
    """bool (layers, L, L): pairs with a non-zero attention probability in every head."""
    ids = torch.randint(1, 100, (1, L), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        att = model(input_ids=ids, output_attentions=True).attentions
    return torch.stack([a[0].ne(0).all(0) for a in att])


def test_registered():
    assert FAMILIES["gpt_neo"] is local_global


def test_pattern_of_reads_local_and_global_layers():
    model = tiny_gpt_neo()
    pattern = pattern_of(model)
    assert pattern == AttentionPattern(window=(None, 3, None, 3), causal=True)
    assert torch.equal(allowed_by_the_model(model), build_masks(pattern, 12, 4))
    # by hand, layer 1 (local, window 3): query 5 sees keys 3, 4, 5
    assert allowed_by_the_model(model)[1, 5].nonzero().flatten().tolist() == [3, 4, 5]


def test_to_native_and_apply_on_loaded_weights():
    model = tiny_gpt_neo()
    wanted = AttentionPattern(window=(5, 5, None, 5), causal=True)
    native = to_native(wanted, model)
    assert native.config == {"attention_types": [[["local", "local", "global", "local"], 1]], "window_size": 5}
    assert native.pattern == wanted
    previous = apply_native(model, native)
    assert pattern_of(model) == wanted
    assert torch.equal(allowed_by_the_model(model), build_masks(wanted, 12, 4))
    apply_native(model, previous)                                    # restored
    assert pattern_of(model) == AttentionPattern(window=(None, 3, None, 3), causal=True)
    assert torch.equal(allowed_by_the_model(model), build_masks(pattern_of(model), 12, 4))


@pytest.mark.parametrize("pattern, words", [
    (AttentionPattern(window=(2, 4, None, 4), causal=True), r"one window_size for all its local layers; got windows \[2, 4\]"),
    (AttentionPattern(window=4), "gpt_neo is a decoder"),
    (AttentionPattern(window=4, causal=True, global_positions=(0,)), "gpt_neo has no global tokens"),
    (AttentionPattern(window=4, causal=True, sinks=2), "cannot express sinks=2 natively"),
])
def test_refuses_what_it_cannot_express(pattern, words):
    with pytest.raises(ValueError, match=words):
        to_native(pattern, tiny_gpt_neo())


def test_with_pattern_points_to_native():
    with pytest.raises(ValueError, match="gpt_neo is a native family: translate the pattern with attnviz.models.native"):
        with with_pattern(tiny_gpt_neo(), AttentionPattern(window=4, causal=True)):
            pass
