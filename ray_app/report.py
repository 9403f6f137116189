"""report.html: one self-contained page (charts inline as SVG, no scripts, no network) that shows what a run
found: the dataset, the search (fitness per generation, Pareto front, every trial), the engines and the
selection's reasoning, and the bundle. Its sections share ray_app/report_style.py's style, chart and table helpers."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from yoloforge.core import atomic
from yoloforge.core.rundir import RunDir, read_json, read_parquet
from yoloforge.engines.selection import Selection, verdicts
from yoloforge.ray_app.outcome import engine_verdict, target_rows
from yoloforge.ray_app.report_style import STYLE, svg, table
from yoloforge.ray_app.search.hyp_file import reproduce_command
from yoloforge.serving.bundle import server_cannot_run


def _dataset_section(report: dict[str, Any] | None) -> str:
    if report is None:
        return '<p class="muted">Intake has not run.</p>'
    splits = report.get("splits", {})
    cards = "".join(
        f'<div class="card kpi">{html.escape(name)}<b>{s.get("images_clean", 0)} images</b>'
        f'<span class="muted">{s.get("instances", 0)} objects · {s.get("backgrounds", 0)} backgrounds · '
        f'{s.get("quarantined", 0)} quarantined</span></div>' for name, s in splits.items())
    problems = report.get("problems", [])
    counts: dict[str, int] = {}
    for p in problems:
        counts[f'{p.get("severity", "?")}: {p.get("code", p.get("kind", "?"))}'] = counts.get(
            f'{p.get("severity", "?")}: {p.get("code", p.get("kind", "?"))}', 0) + 1
    problem_list = "".join(f"<li>{html.escape(k)} × {v}</li>" for k, v in sorted(counts.items())) or \
        "<li>none</li>"
    classes = report.get("class_counts", {})
    class_rows = [{"class": name, **{f"{split}": c.get(split, {}).get("instances") for split in splits}}
                  for name, c in classes.items()]
    class_table = table(class_rows, [("class", "class")] + [(s, f"{s} objects") for s in splits]) if classes else ""
    status = '<span class="ok">usable</span>' if report.get("ok") else '<span class="bad">has errors</span>'
    return (f'<p>{html.escape(str(report.get("dataset", "")))} — task {html.escape(str(report.get("task")))}, '
            f'{len(report.get("names", []))} classes, {status}.</p><div class="grid">{cards}</div>'
            f'<div class="card">Problems found and handled:<ul>{problem_list}</ul></div>{class_table}')


def _search_section(trials: list[dict[str, Any]], pareto: list[dict[str, Any]], best: dict[str, Any] | None,
                    targets: dict[str, Any]) -> str:
    if not trials:
        return '<p class="muted">The search has not run.</p>'
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [t for t in trials if t.get("status") == "ok" and t.get("fitness") is not None]
    failed = sum(t.get("status") == "error" for t in trials)
    stopped = len(trials) - len(ok) - failed
    parts = [f'<p>{len(trials)} trials: {len(ok)} finished, {failed} failed, {stopped} stopped before their last '
             'epoch (the last column says why each ended, and why it was or was not chosen).</p>']
    if ok:
        fig, ax = plt.subplots(figsize=(6.2, 3.2))
        gens = sorted({(t["round"], t["generation"]) for t in ok if t.get("generation") is not None})
        index = {g: i for i, g in enumerate(gens)}
        xs = [index[(t["round"], t["generation"])] + 1 for t in ok if t.get("generation") is not None]
        ys = [t["fitness"] for t in ok if t.get("generation") is not None]
        ax.scatter(xs, ys, s=18, alpha=0.6, label="trial")
        best_per = [max(t["fitness"] for t in ok if (t["round"], t["generation"]) == g) for g in gens]
        running = [max(best_per[: i + 1]) for i in range(len(best_per))]
        ax.plot(range(1, len(gens) + 1), running, color="#067647", label="best so far")
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0.5, len(gens) + 0.5)  # whole generations, even when there is one
        ax.set_xlabel("generation")
        ax.set_ylabel("fitness")
        ax.set_title("Fitness per generation")
        ax.legend(loc="lower right")
        parts.append(f'<div class="card">{svg(fig)}</div>')
        fig, ax = plt.subplots(figsize=(6.2, 3.2))
        lat = [(t.get("latency_ms"), t["fitness"]) for t in ok if t.get("latency_ms") is not None]
        if lat:
            ax.scatter([x for x, _ in lat], [y for _, y in lat], s=18, alpha=0.5, label="trials")
            front = sorted((p.get("latency_ms"), p["fitness"]) for p in pareto if p.get("latency_ms") is not None)
            if front:
                ax.plot([x for x, _ in front], [y for _, y in front], "o-", color="#b54708", label="Pareto front")
            if best and best.get("latency_ms") is not None and best.get("fitness") is not None:
                ax.scatter([best["latency_ms"]], [best["fitness"]], s=160, facecolors="none", edgecolors="#067647",
                           linewidths=2, label="chosen")
            ax.set_xlabel("inference latency (ms, measured per trial)")
            ax.set_ylabel("fitness")
            ax.set_title("Accuracy against latency")
            ax.legend(loc="lower right")
            parts.append(f'<div class="card">{svg(fig)}</div>')
        else:
            plt.close(fig)
    metric_cols = [c for c in ("mAP50", "mAP50-95", "mask_mAP50", "mask_mAP50-95", "top1", "top5")
                   if any(t.get(c) is not None for t in trials)]
    hp_cols = [c for c in ("hp_optimizer", "hp_lr0", "hp_mosaic", "hp_momentum", "hp_weight_decay")
               if any(c in t for t in trials)]
    columns = [("trial_id", "trial"), ("generation", "gen"), ("status", "status"), ("fitness", "fitness"),
               *[(c, c) for c in metric_cols], ("latency_ms", "latency ms"), ("train_time_s", "train s"),
               *[(c, c.removeprefix("hp_")) for c in hp_cols], ("outcome", "why it ended; chosen or not")]
    best_id = best.get("trial_id") if best else None
    shown = [{**t, "generation": t["generation"] + 1 if t.get("generation") is not None else None,
              "outcome": t.get("outcome") or t.get("error")} for t in trials]
    order = {"ok": 0, "stopped early": 1, "error": 2}  # the chosen first, then finished ones by fitness
    parts.append(table(sorted(shown, key=lambda t: (t.get("trial_id") != best_id, order.get(t.get("status"), 1),
                                                     -(t.get("fitness") or -1e9))), columns, best_id, "trial_id"))
    metrics = targets.get("metrics") or {}
    if metrics:
        parts.insert(0, "<p>Target: " + ", ".join(f"{html.escape(k)} ≥ {v}" for k, v in metrics.items()) + "</p>")
    return "".join(parts)


def _reproduce(run: RunDir) -> str:
    command = reproduce_command(run.best_hyp)
    if command is None:
        return ""
    return (f"<p>The best trial's training arguments are in <code>best/hyp.yaml</code>; it trains again, the same "
            f"way, with Ultralytics alone: <code>{html.escape(command)}</code></p>")


def _engines_section(rows: list[dict[str, Any]], selection: dict[str, Any] | None) -> str:
    if not rows or selection is None:
        return '<p class="muted">The engine benchmark has not run.</p>'
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = (selection.get("targets") or {}).get("metric") or "mAP50-95"
    ok = [r for r in rows if r.get("status") == "ok"]
    chosen = (selection.get("chosen") or {}).get("key")
    parts = []
    if ok:
        fig, ax = plt.subplots(figsize=(6.6, max(2.2, 0.28 * len(ok) + 0.8)))
        ordered = sorted(ok, key=lambda r: r["throughput"])
        colours = ["#067647" if r["key"] == chosen else "#98a2b3" for r in ordered]
        ax.barh([r["key"] for r in ordered], [r["throughput"] for r in ordered], color=colours)
        fps = (selection.get("targets") or {}).get("fps")
        if fps:
            ax.axvline(fps, color="#b42318", linestyle="--", label=f"target {fps:g} img/s")
            ax.legend(loc="lower right")
        ax.set_xlabel("images per second")
        ax.set_title("Engine throughput (chosen in green)")
        ax.tick_params(axis="y", labelsize=7)
        parts.append(f'<div class="card">{svg(fig)}</div>')
    columns = [("key", "configuration"), ("status", "status"), ("throughput", "img/s"), ("p50_ms", "p50 ms"),
               ("p99_ms", "p99 ms"), ("peak_rss_mb", "RSS MB"), (metric, metric), ("why", "chosen, or why not")]
    why = verdicts(rows, selection, cannot_run=server_cannot_run)
    shown = [{**r, "why": why.get(r["key"])} for r in rows]
    parts.append(table(sorted(shown, key=lambda r: (r["key"] != chosen, -(r.get("throughput") or 0))), columns,
                        chosen, "key"))
    reasoning = "".join(f"<li>{html.escape(line)}</li>" for line in selection.get("reasoning", []))
    advice = "".join(f"<li>{html.escape(line)}</li>" for line in selection.get("advice", []))
    verdict = '<span class="ok">every target met</span>' if selection.get("met") else \
        '<span class="warn">no configuration meets every target</span>'
    int8 = selection.get("int8")
    int8_part = "" if not int8 else ("<b>INT8</b><ul>" + "".join(
        f"<li>{html.escape(line)}</li>" for line in [*int8["recipes"], int8["verdict"]]) + "</ul>")
    parts.insert(0, f'<div class="card"><b>Selection:</b> {verdict}<ul>{reasoning}</ul>' + int8_part
                    + (f"<b>What would help</b><ul>{advice}</ul>" if advice else "") + "</div>")
    return "".join(parts)


def _accuracy_section(detail: dict[str, Any] | None) -> str:
    """Per-class accuracy and the confusion matrix of the search's best weights (accuracy.json)."""
    if detail is None:
        return '<p class="muted">Measured by the engines stage (<code>yoloforge bench</code>).</p>'
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(detail["names"])
    per_class = [{"class": name, **values} for name, values in detail["per_class"].items()]
    columns = [("class", "class")] + [(k, k) for k in ("AP50", "AP50-95", "top1", "instances", "images")
                                      if any(k in r for r in per_class)]
    parts = [f'<p>{html.escape(detail.get("engine", ""))} on the {html.escape(detail.get("split", "val"))} split '
             f'({detail["images"]} images).</p>', table(per_class, columns)]
    matrix = np.asarray(detail["confusion"], float)
    labels = [*names, "background"]
    size = min(9.0, 2.4 + 0.45 * len(labels))
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    shown = matrix / np.maximum(matrix.sum(axis=0, keepdims=True), 1)  # each true class's column sums to 1
    ax.imshow(shown, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    if len(labels) <= 20:
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                ax.text(j, i, f"{int(count)}", ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > 0.5 else "black")
    threshold = f" (conf >= {detail['conf']:g}, IoU >= {detail['iou']:g})" if "conf" in detail else ""
    ax.set_title("Confusion matrix" + threshold, fontsize=10)
    parts.append(f'<div class="card">{svg(fig)}</div>')
    return "".join(parts)


def _gallery_section(run: RunDir) -> str:
    """Test (else validation) images: labels on the left, the chosen engine's predictions on the right."""
    import base64

    info = read_json(run.gallery / "gallery.json")
    if info is None:
        return '<p class="muted">Drawn by the engines stage (<code>yoloforge bench</code>).</p>'
    figures = []
    for name in info["images"]:
        path = run.gallery / name
        if path.is_file():
            data = base64.b64encode(path.read_bytes()).decode()
            figures.append(f'<img alt="{html.escape(name)}" src="data:image/jpeg;base64,{data}" '
                           'style="max-width:100%;margin:6px 12px 6px 0;display:inline-block">')
    return (f'<p>{len(figures)} {html.escape(info["split"])} images: labels (left) beside the predictions of '
            f'{html.escape(info["engine"])} at conf {info["conf"]:g} (right).</p>'
            f'<div class="card">{"".join(figures)}</div>')


def _bundle_section(run: RunDir) -> str:
    info = read_json(run.bundle / "bundle.json")
    if info is None:
        return '<p class="muted">No bundle yet: <code>yoloforge export</code> writes it.</p>'
    engine = info["config"]["engine"]
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in info.get("notes", []))
    return (f'<div class="card">Bundle in <code>{html.escape(str(run.bundle))}</code>: Go server, ONNX '
            f'Runtime {html.escape(engine["precision"])} on {html.escape(engine["provider"])}, image '
            f'<code>{html.escape(info["image"])}</code>.' + (f"<ul>{notes}</ul>" if notes else "")
            + '<p>Start it: <code>cp .env.example .env &amp;&amp; docker compose up -d --build</code>, then '
              '<code>docker compose exec api /app/yoloforge-server keys create -name me</code>.</p></div>')


def write_report(run_dir: Path) -> Path:
    """Write run_dir/report.html from whatever stages have run."""
    run = RunDir(Path(run_dir))
    selection = run.read_selection()
    spec_targets: dict[str, Any] = {}
    try:
        import yaml

        spec = yaml.safe_load(run.job.read_text()) or {}
        spec_targets = spec.get("targets") or {}
    except OSError:
        spec = {}
    trials = read_parquet(run.trials)
    pareto = read_parquet(run.pareto)
    best = read_json(run.best_metrics)
    engines = read_parquet(run.engines_table)
    summary = _summary(spec_targets, best, Selection.of(selection), read_json(run.delivered))
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>yoloforge report — {html.escape(run.name)}</title><style>{STYLE}</style></head>
<body><main>
<h1>yoloforge report — {html.escape(run.name)}</h1>
<p class="muted">{html.escape(str(spec.get("model", "")))} · {html.escape(str(spec.get("task") or ""))} ·
written {now}</p>
<h2>Summary</h2>{summary}
<h2>Dataset</h2>{_dataset_section(read_json(run.dataset_report))}
<h2>Hyperparameter search</h2>{_search_section(trials, pareto, best, spec_targets)}{_reproduce(run)}
<h2>Inference engines</h2>{_engines_section(engines, selection)}
<h2>The detector at work</h2>{_gallery_section(run)}
<h2>Accuracy per class (best trial)</h2>{_accuracy_section(read_json(run.accuracy))}
<h2>Bundle</h2>{_bundle_section(run)}
</main></body></html>
"""
    atomic.write_text(run.report, page)
    return run.report


def _summary(targets: dict[str, Any], best: dict[str, Any] | None, selection: Selection | None,
             delivered: dict[str, Any] | None) -> str:
    cards = []
    for row in target_rows(targets, best, selection, delivered):
        status = {True: ' class="ok"', False: ' class="bad"', None: ""}[row.met]
        wanted = "no target" if row.target == "-" else f"target {row.target}"
        cards.append(f'<div class="card kpi">{html.escape(row.name)}<b{status}>{html.escape(row.achieved)}</b>'
                     f'<span class="muted">{html.escape(wanted)}</span></div>')
    verdict = engine_verdict(selection)
    if verdict:
        cards.append(f'<div class="card kpi">engine<b>{html.escape(verdict[0])}</b><span class="muted">'
                     f'{"chosen" if verdict[1] else "closest (targets unmet)"}</span></div>')
    return f'<div class="grid">{"".join(cards)}</div>' if cards else '<p class="muted">Nothing measured yet.</p>'
