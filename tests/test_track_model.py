"""`yoloforge track --model`: tracking with a model given by file or name and no run directory, on the engine a
short engines stage chooses on the video's own frames (speed only: a video has no labels)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner
from yoloforge.engines.base import EngineConfig, EngineUnavailable, ModelFacts
from yoloforge.engines.export import model_file
from yoloforge.ray_app.cli import app
from yoloforge.ray_app.intake.synth_video import synth_video


def onnx_with(tmp_path: Path, metadata: dict[str, str], batch: int = 1, size: int = 64) -> Path:
    """A one-node ONNX model with an input of (batch, 3, size, size) and the given metadata."""
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["output0"])], "g",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, size, size])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, 3, size, size])])
    model = helper.make_model(graph)
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    return path


ULTRALYTICS_METADATA = {"task": "detect", "names": "{0: 'circle', 1: 'square'}", "imgsz": "[64, 64]",
                        "stride": "32", "end2end": "False", "batch": "1"}


# --- the model's facts and files (no training) -----------------------------------------------------------------


def test_an_onnx_models_task_names_and_size_come_from_ultralytics_metadata(tmp_path):
    facts = ModelFacts.from_onnx(onnx_with(tmp_path, ULTRALYTICS_METADATA))
    assert (facts.task, facts.names, facts.imgsz, facts.stride, facts.end2end) == \
        ("detect", ["circle", "square"], 64, 32, False)


def test_an_onnx_without_ultralytics_metadata_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not exported by Ultralytics"):
        ModelFacts.from_onnx(onnx_with(tmp_path, {"author": "someone"}))


def test_a_given_onnx_runs_only_at_the_batch_and_size_it_was_exported_at_and_is_never_rewritten(tmp_path):
    path = onnx_with(tmp_path, ULTRALYTICS_METADATA, batch=1, size=64)
    before = path.read_bytes()
    assert model_file(EngineConfig("onnxruntime", batch=1, imgsz=64), path, tmp_path / "cache", None) == path
    for config in (EngineConfig("onnxruntime", batch=4, imgsz=64), EngineConfig("openvino", batch=1, imgsz=96),
                   EngineConfig("pytorch", batch=1, imgsz=64), EngineConfig("onnxruntime", "int8", 1, 64)):
        with pytest.raises(EngineUnavailable):
            model_file(config, path, tmp_path / "cache", None)
    assert path.read_bytes() == before


def test_a_dynamic_batch_onnx_runs_at_any_batch(tmp_path):
    path = onnx_with(tmp_path, ULTRALYTICS_METADATA, batch="batch", size=64)  # type: ignore[arg-type]
    assert model_file(EngineConfig("onnxruntime", batch=4, imgsz=64), path, tmp_path / "cache", None) == path


# --- the command's refusals (no training) ----------------------------------------------------------------------


def test_track_needs_a_run_directory_or_a_model_and_refuses_both(tmp_path):
    neither = CliRunner().invoke(app, ["track", "--source", "clip.mp4"])
    both = CliRunner().invoke(app, ["track", str(tmp_path), "--model", "yolo11n.pt", "--source", "clip.mp4"])
    for result in (neither, both):
        assert result.exit_code == 2 and "--model" in result.output, result.output


def test_track_refuses_a_model_config_without_weights(tmp_path):
    result = CliRunner().invoke(app, ["track", "--model", "yolo11n.yaml", "--source", "clip.mp4"])
    assert result.exit_code == 2 and "no trained weights" in result.output, result.output


def test_an_official_model_that_cannot_be_downloaded_says_where_to_put_it_or_to_give_a_file(monkeypatch):
    monkeypatch.setenv("YOLOFORGE_WEIGHTS_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    result = CliRunner().invoke(app, ["track", "--model", "yolo11n", "--source", "clip.mp4"])
    said = " ".join(result.output.replace("│", " ").split())  # the message box wraps lines
    assert result.exit_code == 2 and "give --model a local .pt or .onnx file" in said, said
    assert "model:" not in said  # a job's alternatives are not this command's


def test_track_refuses_an_onnx_not_exported_by_ultralytics_with_how_to_export_it(tmp_path):
    path = onnx_with(tmp_path, {})
    result = CliRunner().invoke(app, ["track", "--model", str(path), "--source", "clip.mp4"])
    assert result.exit_code == 2 and "yolo export" in result.output, result.output


# --- on the suite's trained detector ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    # test_streams.py's video: the suite's detector tracks its shapes (on some seeds its scores stay under the
    # tracker's threshold, a training outcome)
    return synth_video(tmp_path_factory.mktemp("clip"), "clip", "parallel", frames=45, fps=15, width=128,
                       height=128, objects=2, seed=3, size=0.3)


def test_track_with_a_pt_and_no_run_directory_writes_tracks_counts_and_fps_under_tracks(detector, clip, tmp_path,
                                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["track", "--model", str(detector[0]), "--source", str(clip),
                                      "--line", "middle=64,0,64,128"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "tracks" / "stream-1"
    counts = json.loads((folder / "counts.json").read_text())
    assert counts["processed"] == 45 and "middle" in counts["counts"]["lines"]
    assert (folder / "tracks.txt").read_text().strip(), "the detector found nothing to track"
    assert "FPS on average" in result.output and "speed only" in result.output
    engines = json.loads((tmp_path / "tracks" / "engines.json").read_text())
    ran = [r for r in engines["rows"] if r["status"] == "ok"]
    assert {r["backend"] for r in ran} >= {"pytorch", "onnxruntime"}
    assert engines["chosen"] == max(ran, key=lambda r: r["throughput"])["key"]


def test_track_with_an_ultralytics_onnx_names_its_classes_from_the_metadata(detector, clip, tmp_path):
    import shutil

    from ultralytics import YOLO

    weights = shutil.copy(detector[0], tmp_path / "detector.pt")  # the exporter writes beside its weights
    exported = Path(YOLO(str(weights)).export(format="onnx", imgsz=128, verbose=False))
    result = CliRunner().invoke(app, ["track", "--model", str(exported), "--source", str(clip), "--classes",
                                      "person", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "circle" in result.output, result.output  # the names the model has
    result = CliRunner().invoke(app, ["track", "--model", str(exported), "--source", str(clip),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    engines = json.loads((tmp_path / "out" / "engines.json").read_text())
    assert {r["backend"] for r in engines["rows"] if r["status"] == "ok"} == {"onnxruntime", "openvino"}
    assert json.loads((tmp_path / "out" / "stream-1" / "counts.json").read_text())["processed"] == 45
