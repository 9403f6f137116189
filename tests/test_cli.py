"""The yoloforge command line, as a user drives it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner
from yoloforge.ray_app.cli import app

from tests.conftest import tree_digest

runner = CliRunner()


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input)


def test_init_writes_a_commented_job(tmp_path):
    result = invoke("init", "--data", "shapes", "--task", "segment")
    assert result.exit_code == 0
    text = (tmp_path / "job.yaml").read_text()
    assert "# yoloforge job" in text and yaml.safe_load(text)["task"] == "segment"


def test_init_refuses_to_overwrite(tmp_path):
    (tmp_path / "job.yaml").write_text("mine")
    result = invoke("init")
    assert result.exit_code == 2 and "already exists" in result.output
    assert (tmp_path / "job.yaml").read_text() == "mine"


def test_init_schema_prints_json_schema():
    result = invoke("init", "--schema")
    assert result.exit_code == 0 and "targets" in json.loads(result.output)["properties"]


def test_data_synth_then_check_passes(tmp_path):
    assert invoke("data", "synth", "--out", "ds", "--n-train", "6", "--n-val", "3", "--imgsz", "64").exit_code == 0
    result = invoke("data", "check", "ds", "--out", "report")
    assert result.exit_code == 0, result.output
    assert "OK: 0 error(s)" in result.output
    assert json.loads((tmp_path / "report" / "dataset_report.json").read_text())["ok"] is True


def test_data_synth_refuses_non_empty_folder(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "keep.txt").write_text("precious")
    result = invoke("data", "synth", "--out", "ds")
    assert result.exit_code == 2 and "not empty" in result.output
    assert (tmp_path / "ds" / "keep.txt").read_text() == "precious"


def test_data_check_with_errors_exits_1_and_lists_files(detect_ds):
    (detect_ds / "labels" / "train" / "train_00000.txt").write_text("9 0.5 0.5 0.1 0.1\n")
    import shutil

    shutil.rmtree(detect_ds / "images" / "val")
    shutil.rmtree(detect_ds / "labels" / "val")
    cfg = yaml.safe_load((detect_ds / "data.yaml").read_text())
    del cfg["val"]
    (detect_ds / "data.yaml").write_text(yaml.safe_dump(cfg))
    result = invoke("data", "check", str(detect_ds))
    assert result.exit_code == 1
    assert "ERROR val_missing" in result.output and "train_00000.txt:1: class id 9" in result.output
    assert "Traceback" not in result.output


def test_data_check_clean_writes_copy_and_leaves_source_alone(detect_ds, tmp_path):
    (detect_ds / "images" / "train" / "train_00003.jpg").write_bytes(b"broken")
    before = tree_digest(detect_ds)
    result = invoke("data", "check", str(detect_ds), "--out", "out", "--clean")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "clean" / "data.yaml").is_file()
    assert (tmp_path / "out" / "quarantine" / "images" / "train" / "train_00003.jpg").is_file()
    assert tree_digest(detect_ds) == before


def test_data_check_of_missing_path_is_a_message_not_a_traceback():
    result = invoke("data", "check", "nowhere")
    assert result.exit_code == 2 and "does not exist" in result.output and "Traceback" not in result.output


def test_models_lists_the_zoo():
    result = invoke("models", "--family", "yolo11")
    assert result.exit_code == 0 and "yolo11n-seg.pt" in result.output and "yolov8" not in result.output


def test_models_inspect_yaml():
    result = invoke("models", "inspect", "yolo11n-cls.yaml")
    assert result.exit_code == 0 and "classify" in result.output and "untrained" in result.output


def test_models_inspect_bad_file_is_a_message(tmp_path):
    (tmp_path / "x.pt").write_text("nope")
    result = invoke("models", "inspect", "x.pt")
    assert result.exit_code == 2 and "not a PyTorch checkpoint" in result.output


def test_run_with_invalid_job_names_the_field(tmp_path):
    (tmp_path / "job.yaml").write_text("data: ds\nsearch:\n  generations: 0\n")
    result = invoke("run", "job.yaml")
    assert result.exit_code == 2 and "search.generations" in result.output


def test_run_without_job_or_data_and_no_terminal_explains():
    result = invoke("run", "--yes")
    assert result.exit_code == 2 and "no job.yaml and no --data" in result.output


def test_run_from_flags_writes_job_and_runs_intake(detect_ds, tmp_path):
    result = invoke("run", "--data", str(detect_ds), "--model", "yolo11n.yaml", "--target", "mAP50-95=0.4",
                    "--name", "flags", "--yes", "--until", "intake")
    assert result.exit_code == 0, result.output
    job = yaml.safe_load((tmp_path / "job.yaml").read_text())
    assert job["targets"]["metrics"] == {"mAP50-95": 0.4}
    run_dir = tmp_path / "runs" / "flags"
    assert (run_dir / "dataset_report.json").is_file() and (run_dir / "data" / "clean" / "data.yaml").is_file()
    assert yaml.safe_load((run_dir / "job.yaml").read_text())["task"] == "detect"


def test_run_with_bad_target_syntax_explains(detect_ds):
    result = invoke("run", "--data", str(detect_ds), "--target", "mAP50-95:0.4", "--yes")
    assert result.exit_code == 2 and "METRIC=VALUE" in result.output


def test_run_asks_step_by_step_and_writes_job(detect_ds, tmp_path):
    answers = "\n".join(["yolo11n.yaml", "detect", str(detect_ds), "0.45", "30", "cpu", "asked", "y"]) + "\n"
    result = invoke("run", "--interactive", "--until", "intake", input=answers)
    assert result.exit_code == 0, result.output
    job = yaml.safe_load((tmp_path / "job.yaml").read_text())
    assert job["name"] == "asked" and job["targets"]["fps"] == 30 and job["targets"]["device"] == "cpu"
    assert (tmp_path / "runs" / "asked" / "dataset_report.json").is_file()


def test_run_reasks_for_a_dataset_that_does_not_exist(detect_ds, tmp_path):
    answers = "\n".join(["yolo11n.yaml", "detect", "typo", str(detect_ds), "0.5", "", "auto", "r", "n"]) + "\n"
    result = invoke("run", "--interactive", "--until", "intake", input=answers)
    assert result.exit_code == 0, result.output
    assert "'typo' does not exist" in result.output
    assert not (tmp_path / "runs" / "r").exists()  # answered no to "Start now?"


def test_run_stops_on_dataset_errors_with_exit_1(detect_ds):
    (detect_ds / "labels" / "val").rename(detect_ds / "labels" / "validation")
    result = invoke("run", "--data", str(detect_ds), "--model", "yolo11n.yaml", "--yes")
    assert result.exit_code == 1 and "labels_not_found" in result.output and "the run stops here" in result.output


def test_run_rejects_metric_the_models_task_does_not_measure(detect_ds):
    result = invoke("run", "--data", str(detect_ds), "--model", "yolo11n.yaml", "--target", "top1=0.5", "--yes")
    assert result.exit_code == 2 and "top1 is not measured for task detect" in result.output


def test_unknown_until_stage_is_explained(detect_ds):
    result = invoke("run", "--data", str(detect_ds), "--model", "yolo11n.yaml", "--yes", "--until", "deploy")
    assert result.exit_code == 2
    assert "unknown stage 'deploy'; stages: intake, search, engines, preview, export" in result.output


def test_bench_on_a_folder_that_is_not_a_run_is_explained(tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke("bench", str(tmp_path / "empty"))
    assert result.exit_code == 2 and "not a yoloforge run directory" in result.output


def _intake_only_run(tmp_path: Path, data: Path) -> Path:
    """A run directory where only intake has finished."""
    result = invoke("run", "--data", str(data), "--model", "yolo11n.yaml", "--yes", "--until", "intake",
                    "--name", "early", "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    return tmp_path / "runs" / "early"


def test_bench_before_the_search_finished_says_what_to_run(tmp_path, detect_ds):
    result = invoke("bench", str(_intake_only_run(tmp_path, detect_ds)))
    assert result.exit_code == 2 and "has not produced weights yet" in result.output
    assert "yoloforge resume" in result.output


def test_preview_before_the_search_finished_sends_the_user_to_resume(tmp_path, detect_ds):
    result = invoke("preview", str(_intake_only_run(tmp_path, detect_ds)))
    assert result.exit_code == 2 and "selection.json does not exist" in result.output
    assert "yoloforge resume" in result.output and "yoloforge bench" not in result.output


def test_export_before_the_search_finished_sends_the_user_to_resume(tmp_path, detect_ds):
    result = invoke("export", str(_intake_only_run(tmp_path, detect_ds)))
    assert result.exit_code == 2 and "selection.json does not exist" in result.output
    assert "yoloforge resume" in result.output and "yoloforge bench" not in result.output


def test_export_for_an_unknown_platform_names_the_ones_it_builds_for(tmp_path, detect_ds):
    result = invoke("export", str(_intake_only_run(tmp_path, detect_ds)), "--platform", "linux/riscv64")
    assert result.exit_code == 2 and "internal error" not in result.output, result.output
    assert "platform" in result.output and "linux/arm64" in result.output and "jetson" in result.output


def test_export_after_the_search_before_the_engines_stage_sends_the_user_to_bench(tmp_path, detect_ds):
    run_dir = _intake_only_run(tmp_path, detect_ds)
    (run_dir / "best").mkdir()
    (run_dir / "best" / "best.pt").write_bytes(b"weights")
    result = invoke("export", str(run_dir))
    assert result.exit_code == 2 and f"yoloforge bench {run_dir}" in result.output


def test_installed_entry_point_runs(tmp_path):
    exe = Path(sys.executable).with_name("yoloforge")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "yoloforge.ray_app.cli"]
    out = subprocess.run([*cmd, "--version"], capture_output=True, text=True, env=os.environ, timeout=120)
    assert out.returncode == 0 and "yoloforge 0.1.0" in out.stdout


def test_data_synth_video_writes_videos_with_mot_ground_truth(tmp_path):
    import cv2

    result = invoke("data", "synth", "--video", "--videos", "2", "--frames", "40", "--out", str(tmp_path / "v"))
    assert result.exit_code == 0, result.output
    for name in ("video_00", "video_01"):
        capture = cv2.VideoCapture(str(tmp_path / "v" / f"{name}.mp4"))
        width, height = capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)
        decoded = 0
        while capture.read()[0]:
            decoded += 1
        assert decoded == 40
        rows = [line.split(",") for line in (tmp_path / "v" / name / "gt" / "gt.txt").read_text().splitlines()]
        assert rows and all(len(r) == 9 for r in rows)
        frames, ids = {int(r[0]) for r in rows}, {int(r[1]) for r in rows}
        assert min(frames) >= 1 and max(frames) <= 40 and min(ids) == 1  # MOT: frames and ids count from 1
        for r in rows:
            left, top, w, h, visibility = (float(v) for v in (r[2], r[3], r[4], r[5], r[8]))
            assert left >= 0 and top >= 0 and left + w <= width + 1e-6 and top + h <= height + 1e-6
            assert 0 <= visibility <= 1 and int(r[7]) == 1  # MOT evaluators score class 1 only
        events = json.loads((tmp_path / "v" / name / "events.json").read_text())
        assert {e["id"] for e in events["objects"]} == ids


def test_parallel_synthetic_paths_never_overlap():
    from yoloforge.ray_app.intake.synth_video import _movers

    rng = np.random.default_rng(3)
    movers = _movers(rng, "parallel", 320, 192, 150, 4, np.zeros(3))
    for frame in range(150):
        lanes = [(m.centre(frame)[1], m.radius) for m in movers if frame >= m.start]
        for i, (y1, r1) in enumerate(lanes):
            for y2, r2 in lanes[i + 1:]:
                assert abs(y1 - y2) >= r1 + r2  # separate lanes: the shapes cannot touch


def test_run_with_yes_never_overwrites_an_existing_job_yaml(tmp_path, detect_ds):
    (tmp_path / "job.yaml").write_text("# my edits\nname: mine\n")
    result = invoke("run", "--data", str(detect_ds), "--model", "yolo11n.yaml", "--name", "flags", "--yes",
                    "--until", "intake")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "job.yaml").read_text() == "# my edits\nname: mine\n"
    written = tmp_path / "job-flags.yaml"
    assert yaml.safe_load(written.read_text())["name"] == "flags"
    assert "job.yaml exists and is left as it is" in result.output and "job-flags.yaml" in result.output


def test_run_with_yes_picks_a_new_name_when_job_name_yaml_exists_too(tmp_path, detect_ds):
    for name in ("job.yaml", "job-flags.yaml"):
        (tmp_path / name).write_text("# mine\n")
    result = invoke("run", "--data", str(detect_ds), "--model", "yolo11n.yaml", "--name", "flags", "--yes",
                    "--until", "intake")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "job-flags.yaml").read_text() == "# mine\n"
    assert yaml.safe_load((tmp_path / "job-flags-2.yaml").read_text())["name"] == "flags"


def test_data_check_run_inside_the_dataset_writes_beside_it(detect_ds, monkeypatch):
    before = tree_digest(detect_ds)
    monkeypatch.chdir(detect_ds)
    result = invoke("data", "check", ".")
    assert result.exit_code == 0, result.output
    assert tree_digest(detect_ds) == before
    report = detect_ds.parent / "runs" / "check-detect" / "dataset_report.json"
    assert report.is_file() and str(report.parent) in result.output


def test_data_check_refuses_an_out_inside_the_dataset(detect_ds):
    before = tree_digest(detect_ds)
    result = invoke("data", "check", str(detect_ds), "--out", str(detect_ds / "report"))
    assert result.exit_code == 2 and "inside the dataset" in result.output
    assert tree_digest(detect_ds) == before


# --- the exit-code contract (core/errors.py): one test per code ----------------------------------------------


def test_exit_code_1_when_a_dataset_folder_holds_no_image(tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke("data", "check", "empty")
    assert result.exit_code == 1 and "not a dataset layout" in result.output


def test_exit_code_1_when_a_dataset_zip_is_broken(tmp_path):
    (tmp_path / "ds.zip").write_bytes(b"PK\x03\x04 not really a zip")
    result = invoke("data", "check", "ds.zip")
    assert result.exit_code == 1 and "not a readable zip" in result.output


def test_exit_code_2_when_a_dataset_path_does_not_exist_and_the_hint_names_no_job_yaml():
    result = invoke("data", "check", "nowhere")
    assert result.exit_code == 2 and "does not exist" in result.output and "job.yaml" not in result.output


def test_exit_code_3_on_an_internal_error(monkeypatch, tmp_path):
    import yoloforge.ray_app.exits as exits
    import yoloforge.ray_app.intake.check as check

    monkeypatch.setattr(exits, "CRASH_LOG", tmp_path / "last-error.log")
    monkeypatch.setattr(check, "check_dataset", lambda *a, **k: 1 / 0)
    (tmp_path / "ds").mkdir()
    result = invoke("data", "check", "ds")
    assert result.exit_code == 3 and "This is a bug in yoloforge" in result.output
    assert "ZeroDivisionError" in (tmp_path / "last-error.log").read_text()


def test_exit_code_130_when_interrupted(monkeypatch, tmp_path):
    import yoloforge.ray_app.intake.check as check

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(check, "check_dataset", interrupted)
    (tmp_path / "ds").mkdir()
    result = invoke("data", "check", "ds")
    assert result.exit_code == 130 and "interrupted" in result.output


def test_help_states_the_exit_code_contract():
    from yoloforge.core.errors import EXIT_CODES

    result = invoke("--help")
    assert result.exit_code == 0
    assert " ".join(EXIT_CODES.split()) in " ".join(result.output.replace("│", " ").split())
