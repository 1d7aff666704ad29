"""What a trained prompt says: train a 10-token prefix prompt on plain BBC News (frozen MiniLM,
full attention, 128 tokens) with a checkpoint every 5 steps, then read each prompt vector's nearest
vocabulary tokens and norm at every checkpoint (attnviz.prompts.nearest).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/prompt_words.py --out sweeps/issue15/words [--init vocab]

Writes RUN/prompt_words.json (every checkpoint), RUN/prompt_words.md and RUN/prompt_words.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="sweeps/issue15/words")
    p.add_argument("--init", default="vocab")
    p.add_argument("--steps", type=int, default=40)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from attnviz import AttentionPattern, PromptPlacement
    from attnviz.models import load_model
    from attnviz.plots.evidence import prompt_words_figure
    from attnviz.plots.export import write_images
    from attnviz.prompts import ClassificationHead, PromptModel, SoftPrompt, TrainConfig, train_soft_prompt
    from attnviz.prompts.nearest import drift, nearest_over_checkpoints
    from attnviz.tasks.documents import load_documents, prepare_documents

    base, tok, name = load_model("default")
    prepare_documents("bbc")
    rows = []
    for split, n in (("train", 320), ("test", 100)):
        ds = load_documents("bbc", split, limit=n, seed=0)
        enc = tok(list(ds["text"]), truncation=True, max_length=128)
        rows.append([{"input_ids": i, "token_type_ids": t, "label": l}
                     for i, t, l in zip(enc["input_ids"], enc["token_type_ids"], list(ds["label"]))])
    names = load_documents("bbc", "train", limit=4, seed=0).features["label"].names
    prompt = SoftPrompt.init(base, tok, PromptPlacement("prefix", n_tokens=10), args.init, seed=0)
    torch.manual_seed(0)
    model = PromptModel(base, ClassificationHead(384, len(names)), prompt, AttentionPattern(window=None),
                        backend="sdpa", tokenizer=tok, model_id=name)
    out = Path(args.out)
    cfg = TrainConfig(steps=args.steps, batch_size=8, lr_prompt=3e-2, lr_head=1e-2, eval_every=0, checkpoint_every=5,
                      keep_checkpoints=1000, seed=0)
    result = train_soft_prompt(model, rows[0], rows[1], config=cfg, out_dir=out, progress=False)
    words = nearest_over_checkpoints(out, base, tok, k=5)
    # the starting point (step 0) is not a checkpoint: read the init directly
    from attnviz.prompts.nearest import nearest_tokens

    start = nearest_tokens(SoftPrompt.init(base, tok, PromptPlacement("prefix", n_tokens=10), args.init, seed=0),
                           base, tok, k=5, step=0)
    words = [start] + words
    (out / "prompt_words.json").write_text(json.dumps({"init": args.init, "steps": args.steps, "eval": result.eval,
        "checkpoints": [w.to_dict() for w in words], "drift": drift(words)}, indent=1))
    md = [f"# What a trained prompt says (init {args.init}, {args.steps} steps, plain BBC News, full attention)", "",
          f"Held-out (100 articles): {result.eval}. Command: OMP_NUM_THREADS=1 nice -n 10 python benchmarks/prompt_words.py "
          f"--out {args.out} --init {args.init} --steps {args.steps}", ""]
    for w in (words[0], words[-1]):
        md += [f"## step {w.step}", "", w.table(k=3)]
    md += ["## drift", "", "| step | mean norm | mean cosine to nearest | changed nearest token |", "|---|---|---|---|"]
    md += [f"| {d['step']} | {d['mean_norm']:.3f} | {d['mean_top_cosine']:.3f} | {d['changed_top_token']:.0%} |"
           for d in drift(words)]
    (out / "prompt_words.md").write_text("\n".join(md) + "\n")
    write_images([prompt_words_figure(words)], [out / "prompt_words.png"])
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
