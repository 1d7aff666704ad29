"""Soft prompts: train ``n`` vectors anywhere in the sequence, under any attention pattern, on a frozen model.

    from attnviz import AttentionPattern, PromptPlacement
    from attnviz.models import load_model
    from attnviz.prompts import SoftPrompt, ClassificationHead, PromptModel, TrainConfig, train_soft_prompt

    base, tokenizer, name = load_model("default")
    prompt = SoftPrompt.init(base, tokenizer, PromptPlacement("prefix", n_tokens=20))   # [SEP] copies + noise
    model = PromptModel(base, ClassificationHead(384, num_labels=3), prompt,
                        AttentionPattern(window=32), tokenizer=tokenizer, model_id=name)
    result = train_soft_prompt(model, train_rows, eval_rows, config=TrainConfig(steps=300), out_dir="runs/x")
"""

from .soft_prompt import INITS, VOCAB_TOP_K, SoftPrompt, frequent_token_ids
from .heads import POOLINGS, ClassificationHead, QAHead, Readout
from .model import PromptModel, PreparedBatch
from .pruning import readout_reach, row_masks
from .checkpoints import CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint
from .training import (
    NonFiniteError, TrainConfig, TrainEvent, TrainResult, batch_indices, collate, evaluate, load_into, make_accelerator,
    train_soft_prompt,
)
from ..tasks.loading import TaskData, load_task
from .peft_interop import (
    PeftPrompt, disable_longformer_prompt_tuning, enable_longformer_prompt_tuning, export_peft_adapter,
    extend_global_attention_mask, import_peft_adapter, peft_equivalent_inputs,
)

__all__ = [
    "INITS", "VOCAB_TOP_K", "SoftPrompt", "frequent_token_ids",
    "POOLINGS", "ClassificationHead", "QAHead", "Readout",
    "PromptModel", "PreparedBatch", "readout_reach", "row_masks",
    "CheckpointError", "latest_checkpoint", "list_checkpoints", "load_checkpoint",
    "TrainConfig", "TrainEvent", "TrainResult", "batch_indices", "collate", "evaluate", "load_into",
    "train_soft_prompt", "make_accelerator", "NonFiniteError", "TaskData", "load_task",
    "PeftPrompt", "export_peft_adapter", "import_peft_adapter", "peft_equivalent_inputs",
    "enable_longformer_prompt_tuning", "disable_longformer_prompt_tuning", "extend_global_attention_mask",
]
