"""PEFT interop, checked against ``peft`` itself: adapters written by attnviz load in PEFT and give
the logits attnviz computes at placement "start"; adapters written by PEFT import into attnviz and
reproduce PEFT's logits; PEFT prompt tuning on Longformer fails without the helper and runs with it."""

import copy
import json

import pytest
import torch
import transformers as tf
from peft import PeftModel, PromptTuningConfig, get_peft_model
from safetensors.torch import load_file, save_file

from attnviz import PromptPlacement, insert_prompt
from attnviz.models import load_model, tiny_config, tiny_model
from attnviz.prompts.peft_interop import (
    ADAPTER_CONFIG, ADAPTER_WEIGHTS, PROMPT_KEY, disable_longformer_prompt_tuning, enable_longformer_prompt_tuning,
    export_peft_adapter, extend_global_attention_mask, import_peft_adapter, model_head, peft_equivalent_inputs,
)

N = 5  # virtual tokens in the tiny tests


def _tiny_bert(seed=0):
    return tiny_model("bert", seed=seed, model_class=tf.AutoModelForSequenceClassification, num_labels=3)


def _tiny_longformer(seed=0):
    cfg = tiny_config("longformer", num_labels=3, initializer_range=0.3)  # larger weights: inputs visibly matter
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = tf.AutoModelForSequenceClassification.from_config(cfg, attn_implementation="eager")
    assert isinstance(model, tf.LongformerForSequenceClassification)
    return model.eval()


def _bert_batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 128, (2, 12), generator=g)
    ids[:, 0] = 2                      # [CLS]
    ids[0, 6], ids[0, -1] = 3, 3       # a pair: [SEP] after each segment
    ids[1, 8], ids[1, 9:] = 3, 0       # second row shorter, right-padded
    attention_mask = (ids != 0).long()
    token_type_ids = torch.zeros_like(ids)
    token_type_ids[0, 7:] = 1
    return ids, attention_mask, token_type_ids


def _attnviz_logits(model, ids, prompt, attention_mask, token_type_ids=None):
    """attnviz's way: PromptPlacement('start', n) + insert_prompt + inputs_embeds, positions 0..L-1."""
    n = prompt.shape[0]
    layout = PromptPlacement("start", n).layout(ids.shape[1] - 2)
    assert layout.prompt_positions == tuple(range(n)) and layout.readout_position == n  # [CLS] moved to n
    embeds = insert_prompt(model.get_input_embeddings()(ids), prompt, layout)
    B, L = ids.shape[0], layout.length
    inputs = dict(inputs_embeds=embeds, position_ids=torch.arange(L).expand(B, L),
                  attention_mask=torch.cat([torch.ones(B, n, dtype=torch.long), attention_mask], 1))
    if token_type_ids is not None:
        inputs["token_type_ids"] = torch.cat([torch.zeros(B, n, dtype=torch.long), token_type_ids], 1)
    with torch.no_grad():
        return model(**inputs).logits


def test_exported_adapter_runs_in_peft_with_attnviz_logits(tmp_path):
    model = _tiny_bert()
    ids, mask, types = _bert_batch()
    prompt = torch.randn(N, 32, generator=torch.Generator().manual_seed(2))
    head = {"classifier.weight": torch.randn(3, 32) * 0.5, "classifier.bias": torch.tensor([0.1, -0.2, 0.3])}
    reference = copy.deepcopy(model)
    reference.classifier.load_state_dict({"weight": head["classifier.weight"], "bias": head["classifier.bias"]})
    want = _attnviz_logits(reference, ids, prompt, mask, types)
    # the same through the helper that spells out PEFT's inputs
    with torch.no_grad():
        assert torch.equal(reference(**peft_equivalent_inputs(reference, ids, prompt, mask, types)).logits, want)
        other = _attnviz_logits(reference, ids, prompt.flip(0), mask, types)
    assert (other - want).abs().max() > 1e-3  # the prompt matters: the equality below is not vacuous

    out = export_peft_adapter(prompt, tmp_path / "adapter", model=model, head=head,
                              placement=PromptPlacement("start", N), tokenizer_name_or_path=tmp_path / "tok")
    cfg = json.loads((out / ADAPTER_CONFIG).read_text())
    assert cfg["peft_type"] == "PROMPT_TUNING" and cfg["num_virtual_tokens"] == N and cfg["token_dim"] == 32
    assert cfg["tokenizer_name_or_path"] == str(tmp_path / "tok")  # a str, never a Path
    assert set(load_file(out / ADAPTER_WEIGHTS)) == {PROMPT_KEY, "base_model.classifier.weight", "base_model.classifier.bias"}
    assert sorted(p.name for p in out.iterdir()) == [ADAPTER_CONFIG, ADAPTER_WEIGHTS]  # no temp files

    peft_model = PeftModel.from_pretrained(model, out).eval()
    with torch.no_grad():
        got = peft_model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    assert torch.allclose(got, want, atol=1e-6, rtol=0)

    back = import_peft_adapter(out, model=model)
    assert torch.equal(back.weight, prompt) and back.placement == PromptPlacement("start", N)
    assert back.head.keys() == head.keys() and all(torch.equal(back.head[k], head[k]) for k in head)


def test_adapter_saved_by_peft_imports_and_reproduces_its_logits(tmp_path):
    model = _tiny_bert(seed=3)
    ids, mask, types = _bert_batch()
    peft_model = get_peft_model(copy.deepcopy(model), PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=N)).eval()
    with torch.no_grad():
        peft_model.prompt_encoder["default"].embedding.weight.normal_(0, 0.3)  # as if trained
        peft_model.base_model.classifier.modules_to_save["default"].weight.normal_(0, 0.5)
        want = peft_model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    peft_model.save_pretrained(tmp_path / "peft")

    imported = import_peft_adapter(tmp_path / "peft", model=model)
    assert imported.placement == PromptPlacement("start", N) and imported.n_tokens == N and imported.hidden_size == 32
    assert set(imported.head) == {"classifier.weight", "classifier.bias"}
    model.load_state_dict(imported.head, strict=False)
    got = _attnviz_logits(model, ids, imported.weight, mask, types)
    assert torch.allclose(got, want, atol=1e-6, rtol=0)
    # the same prompt after [CLS] ("prefix") is another model: PEFT's placement is not attnviz's default
    layout = PromptPlacement("prefix", N).layout(ids.shape[1] - 2)
    with torch.no_grad():
        prefix = model(inputs_embeds=insert_prompt(model.get_input_embeddings()(ids), imported.weight, layout),
                       attention_mask=torch.cat([torch.ones(2, N, dtype=torch.long), mask], 1)).logits
    assert (prefix - want).abs().max() > 1e-4
    # and the head of a PEFT model comes out keyed as in the base model
    assert all(torch.equal(model_head(peft_model)[k], imported.head[k]) for k in imported.head)


def test_minilm_round_trip_equals_peft(tmp_path):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, tokenizer, _ = load_model("default", model_class=tf.AutoModelForSequenceClassification, num_labels=3)
    batch = tokenizer(["A man is playing a guitar on stage.", "Two dogs run."],
                      ["Someone makes music.", "The animals are asleep in the sun today."],
                      padding=True, return_tensors="pt")
    n = 20
    prompt = torch.randn(n, model.config.hidden_size, generator=torch.Generator().manual_seed(4)) * 0.05
    want = _attnviz_logits(model, batch["input_ids"], prompt, batch["attention_mask"], batch["token_type_ids"])
    other = _attnviz_logits(model, batch["input_ids"], prompt.flip(0), batch["attention_mask"], batch["token_type_ids"])
    assert (other - want).abs().max() > 1e-3  # logits ~0.02 here; the prompt moves them visibly

    class Stub(torch.nn.Module):  # the SoftPrompt contract: .weight (n, H) and .placement
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(prompt.clone())
            self.placement = PromptPlacement("start", n)

    out = export_peft_adapter(Stub(), tmp_path / "minilm", model=model)
    assert json.loads((out / ADAPTER_CONFIG).read_text())["base_model_name_or_path"] == model.config._name_or_path
    peft_model = PeftModel.from_pretrained(copy.deepcopy(model), out).eval()
    with torch.no_grad():
        got = peft_model(**batch).logits
    assert torch.allclose(got, want, atol=1e-6, rtol=0)
    assert torch.equal(import_peft_adapter(out, model=model).weight, prompt)


def test_export_and_import_refuse_bad_input(tmp_path):
    model = _tiny_bert()
    prompt = torch.zeros(N, 32)
    with pytest.raises(ValueError, match="before \\[CLS\\].*'prefix'.*strict=False"):
        export_peft_adapter(prompt, tmp_path / "a", model=model, placement=PromptPlacement("prefix", N))
    export_peft_adapter(prompt, tmp_path / "a", model=model, placement=PromptPlacement("prefix", N), strict=False)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_peft_adapter(prompt, tmp_path / "a", model=model)
    export_peft_adapter(prompt, tmp_path / "a", model=model, overwrite=True)
    with pytest.raises(ValueError, match="hidden size 16 but the model's hidden size is 32"):
        export_peft_adapter(torch.zeros(N, 16), tmp_path / "b", model=model)
    with pytest.raises(ValueError, match="n_tokens=4 but the prompt has 5"):
        export_peft_adapter(prompt, tmp_path / "b", model=model, placement=PromptPlacement("start", 4))
    for no_head in (None, model.config, tiny_model("bert")):  # no model, a config, a model without classifier
        with pytest.raises(ValueError, match="SEQ_CLS adapter carries the classifier"):
            export_peft_adapter(prompt, tmp_path / "b", model=no_head)
    with pytest.raises(ValueError, match="n_tokens >= 1"):
        export_peft_adapter(torch.zeros(0, 32), tmp_path / "b", model=model)
    with pytest.raises(ValueError, match="task_type"):
        export_peft_adapter(prompt, tmp_path / "b", model=model, task_type="SEQ_2_SEQ_LM")

    with pytest.raises(ValueError, match="another model: hidden size 32 vs the model's 64"):
        import_peft_adapter(tmp_path / "a", model=tiny_model("bert", hidden_size=64, intermediate_size=128))
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        import_peft_adapter(tmp_path / "nothing")
    cfg = json.loads((tmp_path / "a" / ADAPTER_CONFIG).read_text())
    (tmp_path / "a" / ADAPTER_CONFIG).write_text(json.dumps({**cfg, "peft_type": "PREFIX_TUNING"}))
    with pytest.raises(ValueError, match="PROMPT_TUNING adapters only"):
        import_peft_adapter(tmp_path / "a")
    (tmp_path / "a" / ADAPTER_CONFIG).write_text(json.dumps({**cfg, "num_virtual_tokens": 7}))
    with pytest.raises(ValueError, match=r"shape \(5, 32\), the config says num_virtual_tokens=7"):
        import_peft_adapter(tmp_path / "a")
    (tmp_path / "a" / ADAPTER_CONFIG).write_text(json.dumps(cfg))
    (tmp_path / "a" / ADAPTER_WEIGHTS).rename(tmp_path / "a" / "adapter_model.bin")
    with pytest.raises(ValueError, match="never unpickles"):
        import_peft_adapter(tmp_path / "a")
    save_file({"something": torch.zeros(2)}, str(tmp_path / "a" / ADAPTER_WEIGHTS))
    with pytest.raises(ValueError, match="no 'prompt_embeddings'"):
        import_peft_adapter(tmp_path / "a")


# ---- Longformer --------------------------------------------------------------------------------------
def _longformer_batch():
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(5, 128, (2, 20), generator=g)
    ids[:, 0], ids[:, -1] = 0, 2      # <s> ... </s>
    ids[1, 14], ids[1, 15:] = 2, 1    # second row right-padded (pad_token_id=1)
    return ids, (ids != 1).long()


def _peft_longformer():
    model = _tiny_longformer()
    peft_model = get_peft_model(model, PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=N)).eval()
    with torch.no_grad():
        peft_model.prompt_encoder["default"].embedding.weight.normal_(0, 0.5,
                                                                      generator=torch.Generator().manual_seed(6))
    return peft_model


def _manual_longformer(peft_model, ids, mask, global_mask):
    """inputs_embeds with the prompt prepended + the extended global mask, on the base model."""
    base = peft_model.get_base_model()
    prompt = peft_model.prompt_encoder["default"].embedding.weight
    embeds = torch.cat([prompt.expand(ids.shape[0], -1, -1), base.get_input_embeddings()(ids)], dim=1)
    with torch.no_grad():
        return base(inputs_embeds=embeds, attention_mask=torch.cat([torch.ones(2, N, dtype=torch.long), mask], 1),
                    global_attention_mask=global_mask).logits


def test_peft_prompt_tuning_on_longformer_fails_both_ways_without_the_helper():
    peft_model = _peft_longformer()
    ids, mask = _longformer_batch()
    glob = torch.zeros_like(ids)
    glob[:, 0] = 1
    with pytest.raises(RuntimeError, match=r"size of tensor a \(25\) must match the size of tensor b \(20\)"):
        peft_model(input_ids=ids, attention_mask=mask, global_attention_mask=glob)
    with pytest.raises(TypeError, match=r"zeros_like\(\): argument 'input'.*not NoneType"):
        peft_model(input_ids=ids, attention_mask=mask)


def test_longformer_helper_runs_and_equals_the_manual_computation():
    peft_model = _peft_longformer()
    ids, mask = _longformer_batch()
    ones, zeros = torch.ones(2, N, dtype=torch.long), torch.zeros(2, N, dtype=torch.long)
    cls = torch.zeros_like(ids)
    cls[:, 0] = 1

    assert enable_longformer_prompt_tuning(peft_model) is peft_model
    with torch.no_grad():
        got = peft_model(input_ids=ids, attention_mask=mask).logits  # default: [CLS] global + prompt global
    assert torch.allclose(got, _manual_longformer(peft_model, ids, mask, torch.cat([ones, cls], 1)), atol=1e-6, rtol=0)

    mine = torch.zeros_like(ids)
    mine[:, [0, 3]] = 1                                     # the caller's own (B, T) global mask is extended
    with torch.no_grad():
        got_mine = peft_model(input_ids=ids, attention_mask=mask, global_attention_mask=mine).logits
    assert torch.allclose(got_mine, _manual_longformer(peft_model, ids, mask, torch.cat([ones, mine], 1)),
                          atol=1e-6, rtol=0)
    assert (got_mine - got).abs().max() > 1e-3

    enable_longformer_prompt_tuning(peft_model, global_prompt=False)  # replaces the setting
    with torch.no_grad():
        local = peft_model(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(local, _manual_longformer(peft_model, ids, mask, torch.cat([zeros, cls], 1)), atol=1e-6, rtol=0)
    assert (local - got).abs().max() > 1e-3

    # gradients reach the prompt (the point of prompt tuning)
    peft_model.train()
    enable_longformer_prompt_tuning(peft_model)
    loss = peft_model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 2])).loss
    loss.backward()
    assert peft_model.prompt_encoder["default"].embedding.weight.grad.abs().sum() > 0

    disable_longformer_prompt_tuning(peft_model)
    with pytest.raises(TypeError, match="zeros_like"):
        peft_model(input_ids=ids, attention_mask=mask)


def test_extend_global_attention_mask_and_helper_refusals():
    ext = extend_global_attention_mask(None, 3, batch_size=2, length=4)
    assert ext.tolist() == [[1, 1, 1, 1, 0, 0, 0]] * 2
    assert extend_global_attention_mask(None, 2, batch_size=1, length=3, global_prompt=False, cls_global=False).tolist() == [[0] * 5]
    already = torch.ones(1, 7, dtype=torch.long)
    assert torch.equal(extend_global_attention_mask(already, 3, length=4), already)
    with pytest.raises(ValueError, match="expected 4 .* or 7"):
        extend_global_attention_mask(torch.ones(1, 5), 3, length=4)
    with pytest.raises(ValueError, match="for Longformer"):
        enable_longformer_prompt_tuning(get_peft_model(_tiny_bert(), PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=2)))
    with pytest.raises(TypeError, match="PEFT model"):
        enable_longformer_prompt_tuning(_tiny_longformer())
