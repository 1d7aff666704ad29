"""Tables of issue #15's studies: read the sweep folders of benchmarks/evidence_studies.py and write
benchmarks/results/{evidence_far_seeds, placement_global_w128, window_schedules, evidence_position}.{json,md}
and their figures (PNG, through kaleido + the system Chromium).

    python benchmarks/evidence_tables.py [--sweeps sweeps/issue15] [--no-png]

Every accuracy is the mean over seeds and held-out articles with a 95 % percentile bootstrap over
articles and seeds (attnviz.stats.estimate). An ordering "holds" when the paired bootstrap interval
of the difference (attnviz.stats.difference: the same resampled seeds and articles for both cells,
which were scored on the same articles) excludes 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from evidence_studies import COMMON, INCREASING, STUDIES, command  # noqa: E402


def _load(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def _correct(data: dict, key: str) -> list[list[int]]:
    return [r["correct"] for r in data["runs"] if r["key"] == key]


def _pct(x: float) -> str:
    return f"{x:.3f}"


def _row_md(r: dict, label: str) -> str:
    infl = r.get("influence_cls")
    return (f"| {label} | {_pct(r['accuracy'])} | {_pct(r['low'])}–{_pct(r['high'])} | "
            f"{' / '.join(_pct(a) for a in r['accuracy_by_seed'])} | "
            f"{'—' if infl is None else f'{infl:.3g}'} |")


HEAD = "| cell | accuracy | 95 % interval | per seed (0 / 1 / 2) | infl. [CLS] |\n|---|---|---|---|---|"


def _diff(data_a, key_a, data_b, key_b) -> dict:
    from attnviz.stats import difference

    a, b = _correct(data_a, key_a), _correct(data_b, key_b)
    n = min(len(a), len(b))
    d, lo, hi = difference(a[:n], b[:n])
    verdict = ("holds (a > b)" if lo > 0 else "holds (a < b)" if hi < 0 else
               "no difference (the same answers)" if lo == hi == 0 else "not shown (interval includes 0)")
    return {"a": key_a, "b": key_b, "difference": d, "low": lo, "high": hi, "seeds": n, "verdict": verdict}


def _diff_md(ds: list[dict]) -> list[str]:
    out = ["| a − b | difference | 95 % interval (paired bootstrap) | ordering |", "|---|---|---|---|"]
    for d in ds:
        out.append(f"| {d['a']} − {d['b']} | {d['difference']:+.3f} | {d['low']:+.3f} … {d['high']:+.3f} | {d['verdict']} |")
    return out


def _header(data: dict, title: str, cmds: list[str]) -> list[str]:
    from attnviz.stats import BOOTSTRAP

    finished = (data.get("last_run") or {}).get("finished") or data.get("updated")
    return [f"# {title}", "",
            f"Measured {finished} (UTC) with `attnviz sweep` ({data['model']}, frozen; BBC News, 5 topics), "
            f"{data['n_train']} training / {data['n_test']} held-out articles, seeds "
            f"{', '.join(map(str, data['config']['seeds']))} (training seed: prompt / head initialisation and data "
            f"order; every seed scored on the same {data['n_test']} articles), {data['config']['steps']} steps of "
            f"{data['config']['batch_size']}, 20-token prompt (`[SEP]` copies + noise).",
            f"Machine: {data['machine']}; run at `nice -n 10`, one torch thread, sharing the 2 cores with other jobs.",
            f"Input: `[CLS]` + {data['config']['filler_tokens']} filler tokens (\"the\") with the article "
            f"({data['config']['max_length'] - data['config']['filler_tokens'] - 2} tokens at most) placed at the "
            f"given position + `[SEP]`, {data['config']['max_length']} tokens in all (variant `position`; position 1 = "
            f"the article after all the filler: evidence far). Chance: 0.235 (the largest class among the held-out "
            f"articles).",
            f"Interval: {BOOTSTRAP}, 2,000 resamples. An ordering holds when the paired bootstrap interval of the "
            f"difference excludes 0. Small samples: 3 seeds × {data['n_test']} articles.",
            "", "Made by:", "", "```"] + cmds + ["python benchmarks/evidence_tables.py", "```", ""]


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--sweeps", default="sweeps/issue15")
    p.add_argument("--no-png", action="store_true")
    args = p.parse_args(argv)
    root = Path(args.sweeps)
    cmd = {name: command(name, folder, kw, args.sweeps) for name, folder, kw in STUDIES}
    figures = []

    # ---- evidence far ---------------------------------------------------------------------------
    far = _load(root / "far")
    rows = {r["key"]: r for r in far["rows"]}
    pos1 = [r for r in far["rows"] if r.get("position") == 1.0]
    md = _header(far, "Evidence far, with seeds and intervals (window 32 / 128 × head only / prompt / global prompt)",
                 [cmd["far"]])
    md += [HEAD] + [_row_md(r, r["key"].replace("-pos1", "")) for r in pos1] + [""]
    diffs = []
    for w in (32, 128):
        k = f"w{w}-prefix-global-pos1"
        if k in rows and f"w{w}-prefix-pos1" in rows:
            diffs.append(_diff(far, k, far, f"w{w}-prefix-pos1"))
        if k in rows and f"w{w}-head-only-pos1" in rows:
            diffs.append(_diff(far, k, far, f"w{w}-head-only-pos1"))
        if f"w{w}-prefix-pos1" in rows and f"w{w}-head-only-pos1" in rows:
            diffs.append(_diff(far, f"w{w}-prefix-pos1", far, f"w{w}-head-only-pos1"))
    if "w32-prefix-global-pos1" in rows and "w128-prefix-global-pos1" in rows:
        diffs.append(_diff(far, "w128-prefix-global-pos1", far, "w32-prefix-global-pos1"))
    md += _diff_md(diffs)
    out = {"title": "evidence far with seeds", "command": cmd["far"], "machine": far["machine"],
           "config": far["config"], "rows": pos1, "differences": diffs, "interval": pos1[0]["interval"] if pos1 else None}
    (RESULTS / "evidence_far_seeds.json").write_text(json.dumps(out, indent=1))
    (RESULTS / "evidence_far_seeds.md").write_text("\n".join(md) + "\n")
    from attnviz.plots.evidence import interval_figure, position_figure

    figures.append((interval_figure([dict(r, key=r["key"].replace("-pos1", "")) for r in pos1], chance=0.235,
                                    title="Evidence far: accuracy, 3 seeds × 200 articles"), "evidence_far_seeds.png"))

    # ---- placement x global at 128 --------------------------------------------------------------
    if (root / "placement" / "results.json").exists():
        pl = _load(root / "placement")
        prow = [rows[k] for k in ("w128-prefix-pos1", "w128-prefix-global-pos1") if k in rows] + pl["rows"]
        md = _header(pl, "Placement × global prompt at window 128, with seeds and intervals", [cmd["far"], cmd["placement"]])
        md.append("Prefix rows come from the evidence-far folder (same settings, same articles and seeds).")
        md += ["", HEAD] + [_row_md(r, r["key"].replace("-pos1", "")) for r in prow] + [""]
        src = lambda k: far if k in rows else pl
        diffs = []
        for plc in ("prefix", "suffix", "scattered"):
            a, b = f"w128-{plc}-global-pos1", f"w128-{plc}-pos1"
            if any(r["key"] == a for r in prow) and any(r["key"] == b for r in prow):
                diffs.append(_diff(src(a), a, src(b), b))
        glob = [f"w128-{p}-global-pos1" for p in ("prefix", "suffix", "scattered")]
        for i in range(3):
            for j in range(i + 1, 3):
                a, b = glob[i], glob[j]
                if any(r["key"] == a for r in prow) and any(r["key"] == b for r in prow):
                    diffs.append(_diff(src(a), a, src(b), b))
        md += _diff_md(diffs)
        (RESULTS / "placement_global_w128.json").write_text(json.dumps(
            {"title": "placement x global at window 128", "commands": [cmd["far"], cmd["placement"]],
             "machine": pl["machine"], "config": pl["config"], "rows": prow, "differences": diffs}, indent=1))
        (RESULTS / "placement_global_w128.md").write_text("\n".join(md) + "\n")
        figures.append((interval_figure([dict(r, key=r["key"].replace("-pos1", "")) for r in prow], chance=0.235,
                                        title="Window 128: placement × global prompt"), "placement_global_w128.png"))

    # ---- schedules --------------------------------------------------------------------------------
    if (root / "schedules" / "results.json").exists():
        from attnviz import AttentionPattern, PromptPlacement
        from attnviz.costs import allowed_pairs
        from attnviz.spread import spread_pattern

        sc = _load(root / "schedules")
        L_text = COMMON["max_length"] - 2
        layout = PromptPlacement("prefix", n_tokens=20).layout(L_text)
        art0 = 1 + 20 + COMMON["filler_tokens"]          # first article position (prefix prompt after [CLS])
        structural = {}
        for r in sc["rows"]:
            w = tuple(r["window"]) if isinstance(r["window"], list) else r["window"]
            off = AttentionPattern(window=w)
            pairs = sum(allowed_pairs(AttentionPattern(window=w, global_prompt=True), layout, l) for l in range(6))
            s = spread_pattern(off, layout, 6, sources=list(range(art0, layout.length - 1)))
            first = int(s.first_layer[0])
            structural[r["key"]] = {"pairs_all_layers": pairs, "schedule": w,
                                    "cls_reached_from_article_at_layer_without_global": first if first >= 0 else None,
                                    "article_reach_by_layer_without_global": [float(s.reached[l].float().mean())
                                                                              for l in range(7)]}
        names = {"w16-32-48-80-96-112": "increasing", "w64": "uniform", "w112-96-80-48-32-16": "decreasing"}
        md = _header(sc, "Window schedules at equal attention cost (prefix + global prompt, evidence far)", [cmd["schedules"]])
        md += ["| schedule | per-layer windows | pairs (6 layers) | [CLS] reached from the article without global, layer | accuracy | 95 % interval | per seed | infl. [CLS] |",
               "|---|---|---|---|---|---|---|---|"]
        for r in sc["rows"]:
            base = r["key"].replace("-prefix-global-pos1", "")
            st = structural[r["key"]]
            w = st["schedule"]
            md.append(f"| {names.get(base, base)} | {w if isinstance(w, tuple) else (w,) * 6} | {st['pairs_all_layers']:,} | "
                      f"{st['cls_reached_from_article_at_layer_without_global'] or 'never'} | {_pct(r['accuracy'])} | "
                      f"{_pct(r['low'])}–{_pct(r['high'])} | {' / '.join(_pct(a) for a in r['accuracy_by_seed'])} | "
                      f"{r['influence_cls']:.3g} |")
        keys = {names.get(r["key"].replace("-prefix-global-pos1", "")): r["key"] for r in sc["rows"]}
        diffs = [_diff(sc, keys[a], sc, keys[b]) for a, b in (("increasing", "uniform"), ("uniform", "decreasing"),
                                                                ("increasing", "decreasing")) if a in keys and b in keys]
        md += [""] + _diff_md(diffs)
        (RESULTS / "window_schedules.json").write_text(json.dumps(
            {"title": "window schedules at equal cost", "command": cmd["schedules"], "machine": sc["machine"],
             "config": sc["config"], "rows": sc["rows"], "structural": structural, "differences": diffs}, indent=1))
        (RESULTS / "window_schedules.md").write_text("\n".join(md) + "\n")
        figures.append((interval_figure([dict(r, key=names.get(r["key"].replace("-prefix-global-pos1", ""), r["key"]))
                                         for r in sc["rows"]], chance=0.235,
                                        title="Window schedules at equal cost (prefix + global prompt)"),
                        "window_schedules.png"))

    # ---- evidence position ----------------------------------------------------------------------
    positions = sorted({r["position"] for r in far["rows"]})
    if len(positions) > 1:
        md = _header(far, "The evidence-position curve (window × global prompt, prefix prompt)", [cmd["position"]])
        md += ["| window | prompt | " + " | ".join(f"position {p:g}" for p in positions) + " |",
               "|---|---|" + "---|" * len(positions)]
        lines = {}
        for r in far["rows"]:
            arm = "head only" if r["kind"] == "head_only" else ("global" if r["global_prompt"] else "no global")
            lines.setdefault((r["window"], arm), {})[r["position"]] = r
        for (w, arm), by in lines.items():
            cells_ = []
            for p_ in positions:
                r = by.get(p_)
                cells_.append("—" if r is None else f"{_pct(r['accuracy'])} ({_pct(r['low'])}–{_pct(r['high'])})"
                              + ("" if r.get("influence_cls") is None else f", infl. {r['influence_cls']:.2g}"))
            md.append(f"| {w} | {arm} | " + " | ".join(cells_) + " |")
        diffs = []
        for (w, arm), by in lines.items():
            if 0.0 in by and 1.0 in by:
                diffs.append(_diff(far, by[0.0]["key"], far, by[1.0]["key"]))
        for p_ in positions:
            for w in (32, 128):
                a, b = f"w{w}-prefix-global-pos{p_:g}", f"w{w}-prefix-pos{p_:g}"
                if a in rows and b in rows:
                    diffs.append(_diff(far, a, far, b))
        md += ["", "Cells: accuracy (95 % interval), infl. = the trained prompt's mean ablation influence on [CLS] "
                   "after the last layer (8 articles per seed, mean over seeds).", ""] + _diff_md(diffs)
        (RESULTS / "evidence_position.json").write_text(json.dumps(
            {"title": "evidence-position curve", "command": cmd["position"], "machine": far["machine"],
             "config": far["config"], "rows": far["rows"], "differences": diffs}, indent=1))
        (RESULTS / "evidence_position.md").write_text("\n".join(md) + "\n")
        figures.append((position_figure(far["rows"]), "evidence_position.png"))

    if not args.no_png:
        from attnviz.plots.export import write_images

        write_images([f for f, _ in figures], [RESULTS / n for _, n in figures])
    print("wrote", ", ".join(n for _, n in figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
