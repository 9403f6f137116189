"""What the chosen configuration and the search's best weights do beyond the timed rows: test-split accuracy,
per-class accuracy and a gallery."""

from __future__ import annotations

import json
import shutil
from typing import Any

from yoloforge.core import atomic
from yoloforge.core.rundir import RunDir
from yoloforge.engines.accuracy import has_split
from yoloforge.engines.base import EngineConfig
from yoloforge.engines.gallery import GALLERY_CONF
from yoloforge.engines.runner import BackendPool, LocalPool
from yoloforge.engines.selection import Selection
from yoloforge.ray_app.console import console

GALLERY_IMAGES = 6


def inspect_selection(pool: BackendPool | LocalPool, selection: dict[str, Any], run: RunDir, clean_dir: str,
                      task: str, metric: str) -> dict[str, Any]:
    """What the chosen config and the search's best weights (the baseline engine) do beyond the timed rows:
    accuracy on the test split, which neither the search nor the selection saw (selection.json 'test'); per-class
    accuracy and the confusion matrix of the best weights on the validation split (accuracy.json); and a gallery
    of test (else validation) images with labels beside the chosen engine's predictions (gallery/)."""
    baseline, chosen = selection.get("baseline"), Selection(selection).served
    has_test = has_split(clean_dir, task, "test")
    found: dict[str, Any] = {}
    if baseline:
        detail = pool.inspect(EngineConfig.from_dict(baseline), "val", detail=True)
        if isinstance(detail, dict):
            atomic.write_json(run.accuracy, {"engine": baseline["key"], "split": "val", **detail["detail"]})
        else:
            console.print(f"[yellow]per-class accuracy not measured:[/yellow] {detail}", markup=False)
    for role, row in (("baseline", baseline), ("chosen", chosen)):
        if not row or (role == "baseline" and not has_test):
            continue
        gallery = GALLERY_IMAGES if role == "chosen" else 0
        found[role] = pool.inspect(EngineConfig.from_dict(row), "test" if has_test else "val", score=has_test,
                                   gallery=gallery)
    gallery_dir = run.gallery
    shutil.rmtree(gallery_dir, ignore_errors=True)
    if chosen and isinstance(found.get("chosen"), dict) and found["chosen"].get("gallery"):
        gallery_dir.mkdir()
        names = []
        for k, jpeg in enumerate(found["chosen"]["gallery"]):
            (gallery_dir / f"{k:02d}.jpg").write_bytes(jpeg)
            names.append(f"{k:02d}.jpg")
        (gallery_dir / "gallery.json").write_text(json.dumps({"engine": chosen["key"], "split": found["chosen"][
            "split"], "conf": GALLERY_CONF, "images": names}, indent=2))
    if not has_test:
        return {}
    scores = {role: {"key": row["key"], **(found[role]["score"] | {"images": float(found[role]["images"])}
                                           if isinstance(found.get(role), dict) else {"error": found.get(role)})}
              for role, row in (("baseline", baseline), ("chosen", chosen)) if row}
    shown = [f"{'search best' if role == 'baseline' else 'chosen engine'} ({s['key']}) {metric} "
             + (f"{s[metric]:.4f}" if metric in s else f"not scored: {s['error']}") for role, s in scores.items()]
    images = next((int(s["images"]) for s in scores.values() if "images" in s), 0)
    console.print(f"On the test split ({images} images the search never saw): " + "; ".join(shown), markup=False)
    return {"test": scores}
