"""Tracking quality against MOT ground truth, through trackers.eval (TrackEval's matching and metrics; chosen
over py-motmetrics, whose 1.4 release breaks on NumPy 2)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from yoloforge.serving.streams.outputs import TRACKS


def score(gt_dir: Path, out_dir: Path, names: list[str]) -> dict[str, Any]:
    """HOTA, MOTA, IDF1, ID switches of the streams `names` (out_dir/<name>/tracks.txt, as `yoloforge track`
    writes them) against gt_dir/<name>/gt/gt.txt (the MOT Challenge layout), combined over the sequences and
    per sequence. A stream that tracked nothing scores as such (plus one false positive, see below)."""
    from trackers.eval import evaluate_mot_sequences

    with tempfile.TemporaryDirectory() as tmp:
        trackers_dir = Path(tmp) / "tracks"
        trackers_dir.mkdir()
        for name in names:
            copy = trackers_dir / f"{name}.txt"
            shutil.copy(out_dir / name / TRACKS, copy)
            if not copy.read_text().strip():
                # nothing tracked: trackers.eval refuses an empty file, so it gets one 1x1 box off the frame,
                # which matches nothing (one false positive more than the truth; every object a miss)
                copy.write_text("1,1,-10,-10,1,1,0.01,-1,-1,-1\n")
        seqmap = Path(tmp) / "seqmap.txt"
        seqmap.write_text("name\n" + "\n".join(names) + "\n")
        result = evaluate_mot_sequences(gt_dir, trackers_dir, seqmap=seqmap, metrics=["CLEAR", "HOTA", "Identity"])

    def figures(r: Any) -> dict[str, float]:
        return {"HOTA": r.HOTA.HOTA, "DetA": r.HOTA.DetA, "AssA": r.HOTA.AssA, "MOTA": r.CLEAR.MOTA,
                "IDF1": r.Identity.IDF1, "IDSW": int(r.CLEAR.IDSW), "FP": int(r.CLEAR.CLR_FP),
                "FN": int(r.CLEAR.CLR_FN)}

    return {"combined": figures(result.aggregate),
            "sequences": {name: figures(r) for name, r in result.sequences.items()}}
