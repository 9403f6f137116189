"""best/hyp.yaml: the best trial's training arguments as a cfg for `yolo train`, and the command on its first lines
(written by the search's summary; read by the console and the report).

The command names a settings folder of its own (YOLO_CONFIG_DIR): Ultralytics' settings as this machine has them,
with its Ray Tune integration off. Ultralytics imports that integration after it seeds a training, and importing
Ray Tune draws from Python's global random numbers; a trial runs inside Ray Tune, where the import is already done
and draws nothing. So a plain `yolo train` on a machine with Ray installed augments its images with other random
numbers than the trial did, and lands elsewhere (0.04 fitness on the tomato export, 3 epochs); with the
integration off it trains exactly as the trial did.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml
from yoloforge.core import atomic

# what a user's own `yolo train` decides (their data, model, device and folders), not the configuration found
NOT_IN_HYP = ("data", "model", "project", "name", "save_dir", "exist_ok", "resume", "device", "workers", "plots",
              "verbose", "amp", "pretrained")
COMMAND_PREFIX = "#   "


def reproduce_command(hyp: Path) -> str | None:
    """The `yolo train` command that best/hyp.yaml's first lines give, or None where there is no such file."""
    try:
        lines = hyp.read_text().splitlines()
    except OSError:
        return None
    return next((line.removeprefix(COMMAND_PREFIX).strip() for line in lines
                 if line.startswith(COMMAND_PREFIX) and " yolo train " in f" {line}"), None)


def reproducible_hyp(train_args: dict[str, Any], path: Path, config_dir: Path) -> str:
    """A trial's training arguments (Ultralytics' args.yaml) as a cfg for `yolo train`, with the command that
    trains it again on the same data and model (Ultralytics' settings from config_dir: write_ultralytics_settings)."""
    hyp = {k: v for k, v in train_args.items() if k not in NOT_IN_HYP}
    return (f"# the search's best trial: train it again with\n"
            f"{COMMAND_PREFIX}YOLO_CONFIG_DIR={_q(config_dir)} yolo train cfg={_q(path)} "
            f"data={_q(train_args.get('data'))} model={_q(train_args.get('model'))}\n"
            "# (YOLO_CONFIG_DIR: your Ultralytics settings without its Ray Tune integration, whose import would\n"
            "# change the random numbers the training draws)\n"
            + yaml.safe_dump(hyp, sort_keys=False))


def _q(value: Any) -> str:
    """A value as a shell reads it back whole (a run folder may hold a space); plain paths stay as they are."""
    return shlex.quote(str(value))


def command_parts(command: str) -> tuple[dict[str, str], list[str]]:
    """The command's environment (YOLO_CONFIG_DIR=...) and its arguments from `yolo` on, as a shell reads them."""
    words = shlex.split(command)
    at = words.index("yolo")
    return dict(w.split("=", 1) for w in words[:at]), words[at:]


def write_ultralytics_settings(config_dir: Path) -> None:
    """Ultralytics' settings as this machine has them, its Ray Tune integration off, where Ultralytics reads them
    under the folder YOLO_CONFIG_DIR names (its Ultralytics/ subfolder)."""
    from ultralytics.utils import SETTINGS

    (config_dir / "Ultralytics").mkdir(parents=True, exist_ok=True)
    atomic.write_text(config_dir / "Ultralytics" / "settings.json",
                      json.dumps({**dict(SETTINGS), "raytune": False}, indent=2))
