"""Model zoo: official names, downloads (through a loopback server), custom checkpoints, task checks."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from yoloforge.core.errors import ModelError, OfflineError
from yoloforge.ray_app.intake.synth import synth_dataset
from yoloforge.ray_app.zoo import cache_dir, download_weights, find_official, inspect_checkpoint, resolve_model, zoo


@pytest.fixture(scope="session")
def trained_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Ultralytics checkpoint: yolo11n from its .yaml, trained 1 epoch on synthetic shapes."""
    from ultralytics import YOLO

    root = tmp_path_factory.mktemp("train")
    data = synth_dataset(root / "ds", "detect", n_train=8, n_val=4, imgsz=64)
    model = YOLO("yolo11n.yaml")
    model.train(data=str(data / "data.yaml"), epochs=1, imgsz=64, batch=4, workers=0, device="cpu", plots=False,
                amp=False, val=True, project=str(root / "runs"), name="t", verbose=False, exist_ok=True)
    best = Path(model.trainer.best)
    assert best.is_file()
    return best


@pytest.fixture
def weights_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An HTTP server on loopback standing in for the release host; files placed in the yielded folder."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("YOLOFORGE_WEIGHTS_URL", f"http://127.0.0.1:{server.server_port}")
    yield folder
    server.shutdown()


def test_zoo_names_are_all_published_by_ultralytics():
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

    missing = [e.name for e in zoo() if e.name not in GITHUB_ASSETS_NAMES]
    assert missing == []


def test_zoo_covers_every_generation_and_task():
    families = {e.family for e in zoo()}
    assert {"yolov5u", "yolov8", "yolov9", "yolov10", "yolo11", "yolo12", "yolo26"} <= families
    assert {e.task for e in zoo() if e.family == "yolo11"} == {"detect", "segment", "classify"}


def test_official_name_without_suffix_is_found():
    entry = find_official("yolo11n-seg")
    assert entry and entry.task == "segment" and entry.size == "n"


def test_offline_download_gives_a_clear_message(monkeypatch):
    monkeypatch.setenv("YOLOFORGE_WEIGHTS_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(OfflineError) as err:
        resolve_model("yolo11n.pt")
    assert "cannot download yolo11n.pt: no connection" in err.value.message
    assert "yolo11n.yaml" in err.value.fix and str(cache_dir() / "yolo11n.pt") in err.value.fix
    assert not list(cache_dir().glob("*.part"))


def test_download_is_verified_cached_and_recorded(weights_server, trained_pt):
    (weights_server / "yolo11n.pt").write_bytes(trained_pt.read_bytes())
    path = download_weights("yolo11n.pt")
    assert path.read_bytes() == trained_pt.read_bytes()
    assert "yolo11n.pt" in (cache_dir() / "manifest.json").read_text()
    (weights_server / "yolo11n.pt").unlink()
    assert download_weights("yolo11n.pt") == path  # served from the cache now


def test_corrupt_download_is_refused_and_not_cached(weights_server, trained_pt):
    data = bytearray(trained_pt.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64
    (weights_server / "yolo11n.pt").write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"downloaded yolo11n\.pt is corrupt"):
        download_weights("yolo11n.pt")
    assert not (cache_dir() / "yolo11n.pt").exists()


def test_cached_file_that_changed_is_downloaded_again(weights_server, trained_pt):
    (weights_server / "yolo11n.pt").write_bytes(trained_pt.read_bytes())
    path = download_weights("yolo11n.pt")
    path.write_bytes(b"bit rot")
    assert download_weights("yolo11n.pt").read_bytes() == trained_pt.read_bytes()


def test_missing_release_asset_is_http_error(weights_server):
    with pytest.raises(ModelError, match="HTTP 404"):
        download_weights("yolo11n.pt")


def test_yaml_builds_from_scratch_with_its_task():
    info = resolve_model("yolo11n-seg.yaml")
    assert info.source == "yaml" and info.task == "segment" and info.names is None


def test_custom_checkpoint_round_trip(trained_pt):
    info = resolve_model(str(trained_pt), "detect")
    assert info.source == "custom" and info.task == "detect"
    assert info.names == ["circle", "square", "triangle"] and info.imgsz == 64
    assert info.params > 1e6 and info.gflops > 0


def test_task_mismatch_suggests_the_right_variant():
    with pytest.raises(ModelError) as err:
        resolve_model("yolo11n.yaml", "classify")
    assert "is a detect model but the job asks for task: classify" in err.value.message
    assert "yolo11n-cls.pt" in err.value.fix


def test_custom_checkpoint_task_mismatch(trained_pt):
    with pytest.raises(ModelError, match="detect model but the job asks for task: segment"):
        resolve_model(str(trained_pt), "segment")


def test_non_checkpoint_file_is_refused(tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("these are my notes")
    with pytest.raises(ModelError, match="not a PyTorch checkpoint"):
        inspect_checkpoint(bad)


def test_plain_state_dict_is_not_a_yolo_checkpoint(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save({"layer.weight": torch.zeros(2)}, path)
    with pytest.raises(ModelError, match="not an Ultralytics YOLO checkpoint"):
        inspect_checkpoint(path)


def test_truncated_checkpoint_is_corrupt(tmp_path, trained_pt):
    path = tmp_path / "cut.pt"
    path.write_bytes(trained_pt.read_bytes()[:5000])
    with pytest.raises(ModelError):
        inspect_checkpoint(path)


def test_empty_checkpoint_is_explained(tmp_path):
    (tmp_path / "e.pt").write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        inspect_checkpoint(tmp_path / "e.pt")


def test_missing_model_file_is_explained(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(str(tmp_path / "best.pt"))


def test_unknown_name_is_explained():
    with pytest.raises(ModelError, match="neither an official model name nor a file"):
        resolve_model("yolo99z")


@pytest.mark.parametrize("file_name", ["yolo11n.pt", "best.pt"])
def test_a_checkpoint_is_judged_by_its_contents_not_its_file_name(tmp_path, trained_pt, file_name):
    import shutil

    copy = tmp_path / file_name
    shutil.copy(trained_pt, copy)
    info = resolve_model(str(copy))
    assert info.source == "custom" and info.architecture == "yolo11n.yaml"


def test_a_local_file_with_an_official_name_gets_its_class_change_reported(tmp_path, trained_pt):
    import shutil

    import yaml
    from yoloforge.ray_app.spec import parse_job
    from yoloforge.ray_app.stages.base import RunState
    from yoloforge.ray_app.stages.intake import stage_intake

    shutil.copy(trained_pt, tmp_path / "yolov8n.pt")
    data = synth_dataset(tmp_path / "ds", "detect", n_train=6, n_val=3, imgsz=64)
    config = yaml.safe_load((data / "data.yaml").read_text())
    (data / "data.yaml").write_text(yaml.safe_dump({**config, "names": ["tomato", "leaf", "stem"]}))
    spec = parse_job({"name": "r", "model": str(tmp_path / "yolov8n.pt"), "data": str(data),
                      "runs_dir": str(tmp_path / "runs")})
    report = stage_intake(RunState(spec)).intake.report
    change = next(p for p in report.problems if p.code == "class_names_differ")
    assert "only in model: circle, square, triangle" in change.message and "re-trained" in change.message


def test_a_checkpoint_whose_config_names_no_file_takes_the_architecture_its_training_started_from(tmp_path,
                                                                                                  trained_pt):
    ckpt = torch.load(trained_pt, map_location="cpu", weights_only=False)
    for key in ("model", "ema"):  # as Ultralytics 8.0.0 saved yolov8n.pt: no yaml_file in the model's config
        if ckpt.get(key) is not None:
            ckpt[key].yaml.pop("yaml_file", None)
    ckpt["train_args"] = {**ckpt["train_args"], "model": "yolo11n.yaml"}
    torch.save(ckpt, tmp_path / "best.pt")
    assert resolve_model(str(tmp_path / "best.pt")).architecture == "yolo11n.yaml"
