"""Model zoo: official Ultralytics weights by name, custom .pt checkpoints, and .yaml configs built from scratch.

Official weights are downloaded once into a cache. A download is written to a .part file, checked (size as
announced, every zip member's CRC, since torch checkpoints are zip archives) and only then moved into place; its
SHA-256 is recorded so a cached file that later goes bad is noticed rather than loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from yoloforge.core.cache import cache_root
from yoloforge.core.errors import ModelError, OfflineError

TASKS = ("detect", "segment", "classify")
TASK_SUFFIX = {"detect": "", "segment": "-seg", "classify": "-cls"}
WEIGHTS_RELEASE = "https://github.com/ultralytics/assets/releases/download/v8.4.0"

# family -> (file stem pattern, {task: sizes}); what Ultralytics publishes for each generation
_FAMILIES: dict[str, tuple[str, dict[str, str]]] = {
    "yolov5u": ("yolov5{size}u", {"detect": "nsmlx"}),
    "yolov8": ("yolov8{size}", {"detect": "nsmlx", "segment": "nsmlx", "classify": "nsmlx"}),
    "yolov9": ("yolov9{size}", {"detect": "tsmce", "segment": "ce"}),
    "yolov10": ("yolov10{size}", {"detect": "nsmblx"}),
    "yolo11": ("yolo11{size}", {"detect": "nsmlx", "segment": "nsmlx", "classify": "nsmlx"}),
    "yolo12": ("yolo12{size}", {"detect": "nsmlx"}),
    "yolo26": ("yolo26{size}", {"detect": "nsmlx", "segment": "nsmlx", "classify": "nsmlx"}),
}


@dataclass(frozen=True)
class ZooEntry:
    name: str  # file name, e.g. yolo11n-seg.pt
    family: str
    size: str
    task: str


def zoo() -> list[ZooEntry]:
    """Every official variant yoloforge can download."""
    entries = []
    for family, (pattern, tasks) in _FAMILIES.items():
        for task, sizes in tasks.items():
            for size in sizes:
                entries.append(ZooEntry(pattern.format(size=size) + TASK_SUFFIX[task] + ".pt", family, size, task))
    return entries


def find_official(name: str) -> ZooEntry | None:
    """The zoo entry for 'yolo11n', 'yolo11n.pt' or 'yolo11n-seg.pt'."""
    wanted = name if name.endswith(".pt") else f"{name}.pt"
    return next((e for e in zoo() if e.name == wanted), None)


def cache_dir() -> Path:
    return cache_root() / "weights"


# --- download -------------------------------------------------------------------------------------------


def _manifest_path(folder: Path) -> Path:
    return folder / "manifest.json"


def _read_manifest(folder: Path) -> dict[str, str]:
    try:
        return json.loads(_manifest_path(folder).read_text())
    except (OSError, ValueError):
        return {}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify_archive(path: Path) -> str | None:
    """None if the file is an intact zip archive (every member's CRC checks), else what is wrong."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError) as err:
        return f"not a valid checkpoint archive ({err})"
    return f"member {bad} fails its CRC check" if bad else None


def download_weights(
    name: str, folder: Path | None = None, *, timeout: float = 30, progress: Callable[[int, int], None] | None = None,
    otherwise: str | None = None,
) -> Path:
    """Download an official weights file into the cache (or return the verified cached copy). otherwise: what else
    the user can do when offline (default: a job's alternatives)."""
    folder = folder or cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    manifest = _read_manifest(folder)
    if target.is_file() and manifest.get(name) == _sha256(target):
        return target  # a file with unknown or changed bytes is downloaded again rather than trusted
    base = os.environ.get("YOLOFORGE_WEIGHTS_URL", WEIGHTS_RELEASE).rstrip("/")
    url = f"{base}/{name}"
    part = target.with_suffix(target.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, part.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while block := response.read(1 << 20):
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
    except urllib.error.HTTPError as err:
        part.unlink(missing_ok=True)
        raise ModelError(f"download of {name} failed: HTTP {err.code} from {url}",
                         fix="check the model name with `yoloforge models`") from None
    except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as err:
        part.unlink(missing_ok=True)
        reason = getattr(err, "reason", err)
        raise OfflineError(
            f"cannot download {name}: no connection to {url} ({reason})",
            fix=f"on a machine with internet, download {url} and copy it to {target}; or "
                + (otherwise or f"set model: to a local .pt file; or train from scratch with model: "
                                f"{Path(name).stem}.yaml")) from None
    if total and done != total:
        part.unlink(missing_ok=True)
        raise ModelError(f"download of {name} was cut short: {done} of {total} bytes", fix="run the command again")
    problem = _verify_archive(part)
    if problem:
        part.unlink(missing_ok=True)
        raise ModelError(f"downloaded {name} is corrupt: {problem}", fix="run the command again")
    part.replace(target)
    manifest[name] = _sha256(target)
    _manifest_path(folder).write_text(json.dumps(manifest, indent=2))
    return target


# --- loading and inspecting -------------------------------------------------------------------------------


@dataclass
class ModelInfo:
    """What yoloforge knows about a model before training it."""

    source: str  # official | custom | yaml
    path: str  # what YOLO() is given
    task: str
    names: list[str] | None  # None when built from a .yaml (no trained classes yet)
    imgsz: int
    params: int
    gflops: float
    architecture: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _load_yolo(path: str) -> Any:
    from ultralytics import YOLO

    return YOLO(path)


def _architecture(net: Any, train_args: dict[str, Any] | None) -> str:
    """The architecture a model's contents name, never its file name (a best.pt is often a yolo11n): the config it
    was built from, else the model its training started from, else 'unknown'."""
    yaml_file = str((getattr(net, "yaml", {}) or {}).get("yaml_file") or "")
    if yaml_file:
        return Path(yaml_file).name
    started = Path(str((train_args or {}).get("model") or ""))
    if started.suffix in (".yaml", ".yml"):
        return started.name
    if started.suffix == ".pt" and find_official(started.name):  # fine-tuned from an official checkpoint
        return f"{started.stem}.yaml"
    return "unknown"


def _describe(model: Any, source: str, path: str, imgsz: int | None,
              train_args: dict[str, Any] | None = None) -> ModelInfo:
    from ultralytics.utils.torch_utils import get_flops

    net = model.model
    task = model.task
    if task not in TASKS:
        raise ModelError(f"{Path(path).name} is a {task} model; yoloforge handles detect, segment and classify",
                         fix="choose a model from `yoloforge models`")
    names = None if source == "yaml" else [str(v) for _, v in sorted(net.names.items())]
    args = getattr(net, "args", {}) or {}
    trained = args.get("imgsz") if isinstance(args, dict) else None
    trained = max(trained) if isinstance(trained, list | tuple) else trained
    imgsz = int(imgsz or trained or (224 if task == "classify" else 640))
    arch = Path(path).name if source == "yaml" else _architecture(net, train_args)
    return ModelInfo(source=source, path=path, task=task, names=names, imgsz=imgsz,
                     params=int(sum(p.numel() for p in net.parameters())),
                     gflops=round(float(get_flops(net, imgsz) or 0.0), 2), architecture=arch)


def inspect_checkpoint(path: str | Path) -> ModelInfo:
    """Validate a custom .pt: it loads, is an Ultralytics YOLO model of a supported task, and names its classes."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist",
                         fix="check the path, or use a name from `yoloforge models`")
    if path.stat().st_size == 0:
        raise ModelError(f"{path} is empty (0 bytes)", fix="copy or export the checkpoint again")
    if zipfile.is_zipfile(path):
        problem = _verify_archive(path)
        if problem:
            raise ModelError(f"{path} is corrupt: {problem}", fix="copy or export the checkpoint again")
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for foreign or damaged files
        raise ModelError(f"{path} is not a PyTorch checkpoint ({type(err).__name__}: {str(err)[:200]})",
                         fix="give a .pt saved by Ultralytics (runs/.../weights/best.pt)") from None
    if not isinstance(ckpt, dict) or not (ckpt.get("model") or ckpt.get("ema")):
        kind = type(ckpt).__name__ if not isinstance(ckpt, dict) else f"dict with keys {sorted(ckpt)[:6]}"
        raise ModelError(f"{path} is a PyTorch file but not an Ultralytics YOLO checkpoint (it holds a {kind})",
                         fix="give a .pt saved by Ultralytics training; plain state_dicts cannot be used")
    try:
        model = _load_yolo(str(path))
    except Exception as err:
        raise ModelError(f"{path} cannot be loaded by Ultralytics: {str(err)[:300]}",
                         fix="re-export it with the Ultralytics version yoloforge pins") from None
    train_args = ckpt.get("train_args") if isinstance(ckpt.get("train_args"), dict) else {}
    imgsz = train_args.get("imgsz")
    return _describe(model, "custom", str(path), max(imgsz) if isinstance(imgsz, list | tuple) else imgsz, train_args)


def build_from_yaml(cfg: str) -> ModelInfo:
    """A model built from an Ultralytics .yaml (packaged name like yolo11n.yaml, or a file)."""
    try:
        model = _load_yolo(cfg)
    except FileNotFoundError:
        raise ModelError(f"model config {cfg} not found", fix="use e.g. yolo11n.yaml, or the path of a .yaml") from None
    except Exception as err:
        raise ModelError(f"cannot build a model from {cfg}: {str(err)[:300]}",
                         fix="check the .yaml against Ultralytics' model configs") from None
    return _describe(model, "yaml", cfg, None)


def resolve_model(spec_model: str, task: str | None = None, *, download: bool = True,
                  otherwise: str | None = None) -> ModelInfo:
    """Turn job.yaml's model: into a loadable model, and check it can do the task asked for (otherwise: what
    else the user can do when an official model cannot be downloaded)."""
    value = spec_model.strip()
    suffix = Path(value).suffix.lower()
    if suffix in (".yaml", ".yml"):
        info = build_from_yaml(value)
    elif Path(value).expanduser().is_file():
        info = inspect_checkpoint(value)  # a file the user gave is theirs whatever its name: "custom"
    elif (entry := find_official(value)) is not None:
        if not download:
            raise OfflineError(f"{entry.name} is not in the cache", fix="run without --no-download")
        info = inspect_checkpoint(download_weights(entry.name, otherwise=otherwise))
        info.source = "official"
    elif suffix == ".pt" or "/" in value:
        raise ModelError(f"model file {value} does not exist",
                         fix="check the path, or use an official name from `yoloforge models`")
    else:
        raise ModelError(f"'{value}' is neither an official model name nor a file",
                         fix="see `yoloforge models` for names, or give a .pt/.yaml path")
    check_task(info, task)
    return info


def check_task(info: ModelInfo, task: str | None) -> None:
    if task and task != info.task:
        stem = Path(info.architecture).stem.replace("-seg", "").replace("-cls", "")
        hint = f"{stem}{TASK_SUFFIX[task]}" if find_official(f"{stem}{TASK_SUFFIX[task]}") else None
        raise ModelError(
            f"{Path(info.path).name} is a {info.task} model but the job asks for task: {task}",
            fix=f"use a {task} model" + (f" such as {hint}.pt (or {hint}.yaml)" if hint else "")
            + f", or set task: {info.task}")
