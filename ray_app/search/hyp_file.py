"""best/hyp.yaml: the best trial's training arguments as a cfg for `yolo train`, and the command on its first lines
(written by the search's summary; read by the console and the report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# what a user's own `yolo train` decides (their data, model, device and folders), not the configuration found
NOT_IN_HYP = ("data", "model", "project", "name", "save_dir", "exist_ok", "resume", "device", "workers", "plots",
              "verbose", "amp", "pretrained")


def reproduce_command(hyp: Path) -> str | None:
    """The `yolo train` command that best/hyp.yaml's first lines give, or None where there is no such file."""
    try:
        lines = hyp.read_text().splitlines()
    except OSError:
        return None
    return next((line.removeprefix("#").strip() for line in lines if line.startswith("#   yolo train")), None)


def reproducible_hyp(train_args: dict[str, Any], path: Path) -> str:
    """A trial's training arguments (Ultralytics' args.yaml) as a cfg for `yolo train`, with the command that
    trains it again on the same data and model."""
    hyp = {k: v for k, v in train_args.items() if k not in NOT_IN_HYP}
    return (f"# the search's best trial: train it again with\n"
            f"#   yolo train cfg={path} data={train_args.get('data')} model={train_args.get('model')}\n"
            + yaml.safe_dump(hyp, sort_keys=False))
