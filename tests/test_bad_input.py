"""Bad input named with its value and its fix (issue 16's leftovers of the bad-input table)."""

from __future__ import annotations

import pytest
import torch

from attnviz import AttentionPattern, PromptPlacement
from attnviz.cli import main
from attnviz.models import tiny_model
from attnviz.prompts import SoftPrompt, TrainConfig


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_soft_prompt_refuses_non_finite_vectors(bad):
    weight = torch.zeros(3, 8)
    weight[1, 2] = bad
    with pytest.raises(ValueError, match=r"1 NaN / inf values \(in rows \[1\]\).*SoftPrompt.init"):
        SoftPrompt(weight, PromptPlacement("prefix", n_tokens=3))


def test_soft_prompt_refuses_non_finite_deep_values():
    prompt = SoftPrompt(torch.zeros(2, 4), PromptPlacement("prefix", n_tokens=2))
    values = torch.zeros(3, 2, 4)
    values[2, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"deep prompt values holds 1 NaN / inf"):
        prompt.add_layers(3, values)
    assert prompt.deep is None


def test_soft_prompt_with_the_wrong_row_count_names_both_fixes():
    with pytest.raises(ValueError, match=r"weight has 4 rows but the placement has n_tokens=3; give a \(3, hidden\) "
                                         r"tensor or PromptPlacement\(\.\.\., n_tokens=4\)"):
        SoftPrompt(torch.zeros(4, 8), PromptPlacement("prefix", n_tokens=3))


def test_window_and_dilation_tuples_of_different_lengths_name_both():
    with pytest.raises(ValueError, match=r"different lengths \[2, 3\] \(window=\(4, 4, 4\), dilation=\(1, 2\)\); "
                                         r"give one entry per layer"):
        AttentionPattern(window=(4, 4, 4), dilation=(1, 2)).check_layers(3)


def test_unknown_tiny_model_setting_names_value_and_close_names():
    with pytest.raises(ValueError, match=r"BertConfig has no setting 'hidden_sise' \(got hidden_sise=8\); "
                                         r"did you mean hidden_size"):
        tiny_model("bert", hidden_sise=8)


def test_negative_max_grad_norm_names_value_and_fix():
    with pytest.raises(ValueError, match=r"max_grad_norm must be >= 0 \(0 = no clipping\), got -1.*try 1.0"):
        TrainConfig(max_grad_norm=-1)


def _exit(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code, capsys.readouterr().err


def test_cli_max_grad_norm_below_zero_exits_2(tmp_path, capsys):
    code, err = _exit(["train", "--out", str(tmp_path / "run"), "--max-grad-norm", "-1"], capsys)
    assert code == 2 and "--max-grad-norm: must be a number >= 0, got '-1'" in err


def _task(tmp_path) -> str:
    path = tmp_path / "task.jsonl"
    path.write_text('{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n')
    return str(path)


def test_cli_missing_model_folder_exits_2_and_says_what_to_type(tmp_path, capsys):
    code, err = _exit(["train", "--out", str(tmp_path / "run"), "--model", str(tmp_path / "missing"),
                       "--task", _task(tmp_path), "--steps", "1"], capsys)
    assert code == 2
    assert f"--model {tmp_path / 'missing'}: no model folder at {tmp_path / 'missing'}" in err
    assert "use --model default" in err and "load_model(" not in err


def test_cli_offline_hub_id_suggests_the_cli_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = _exit(["train", "--out", str(tmp_path / "run"), "--model", "someone/not-cached-model-xyz",
                       "--task", _task(tmp_path), "--steps", "1"], capsys)
    assert code == 2
    assert "--model someone/not-cached-model-xyz: could not load" in err
    assert "use --model default" in err and "load_model('default')" not in err


def test_evaluate_names_every_damaged_checkpoint(tmp_path, capsys):
    import json

    run = tmp_path / "run"
    for step in (1, 2):
        d = run / "checkpoints" / f"step-{step:08d}"
        d.mkdir(parents=True)
        (d / "state.json").write_text("{not json")
    (run / "config.json").write_text(json.dumps({"settings": {}}))
    code, err = _exit(["evaluate", str(run)], capsys)
    assert code == 2
    assert "has 2 checkpoint(s) and every one is damaged" in err
    assert "step-00000001:" in err and "step-00000002:" in err and "no checkpoint yet" not in err
