"""A run killed (kill -9) during the engines stage or the export, or stopped by a full disk during the search, is
finished by `yoloforge resume` without redoing finished stages, and nothing half-written is ever trusted.
The full disk is a small tmpfs (root only; skipped elsewhere).

Each test drives the installed CLI in its own process group, as a user's shell would, and kills the group
(the driver and the Ray processes it started) at the moment named."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

pytestmark = pytest.mark.slow

ENV = {**os.environ, "COLUMNS": "200", "YOLO_VERBOSE": "False"}


def job(tmp: Path, data: Path, runs: Path) -> Path:
    """The smallest real job: 2 trials of 1 epoch at 64 px, ONNX Runtime fp32 only, a bundle at the end."""
    path = tmp / "job.yaml"
    path.write_text(yaml.safe_dump({
        "name": "faults", "model": "yolo11n.yaml", "data": {"path": str(data)}, "runs_dir": str(runs),
        "targets": {"metrics": {"mAP50": 0.99}},
        "search": {"population": 2, "generations": 1, "epochs": 1, "imgsz": 64, "batch": 8, "stagnation": 5},
        "resources": {"cpu": 1, "gpu": 0, "dashboard": False},
        "engines": {"backends": ["onnxruntime"], "precisions": ["fp32"], "batch_sizes": [1], "min_time_s": 0.2,
                    "val_images": 8, "bundle_candidates": 0}}))
    return path


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "yoloforge.ray_app.cli", *args], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def kill_when(args: list[str], moment: Callable[[str], bool], timeout: float = 600) -> str:
    """Start the CLI; SIGKILL its whole process group as soon as `moment(output so far)` holds."""
    proc = subprocess.Popen([sys.executable, "-m", "yoloforge.ray_app.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=ENV, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while not moment("".join(lines)):
            assert proc.poll() is None, f"it ended before the moment to kill it:\n{''.join(lines)[-3000:]}"
            assert time.monotonic() < deadline, "the moment to kill it never came"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(60)
        reader.join(10)
    assert proc.returncode == -signal.SIGKILL
    time.sleep(1)  # Ray's processes follow their driver (fate sharing) and release the session
    return "".join(lines)


def stages(run: Path) -> dict:
    path = run / "stages.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def finished(run: Path, stage: str) -> bool:
    return "inputs" in stages(run).get(stage, {})


def trusted_files_are_whole(run: Path) -> None:
    """Every result a later stage reads parses; no temporary file of an interrupted write is left beside them."""
    for name in ("selection.json", "stages.json", "dataset_report.json", "model.json", "delivered.json"):
        if (run / name).exists():
            json.loads((run / name).read_text())
    for name in ("trials.parquet", "engines.parquet"):
        if (run / name).exists():
            pq.read_table(run / name)


@pytest.fixture(scope="module")
def searched_run(tmp_path_factory) -> Path:
    """A run whose intake and search have finished (the search is what each fault below must not redo)."""
    from yoloforge.ray_app.intake.synth import synth_dataset

    tmp = tmp_path_factory.mktemp("faults")
    data = synth_dataset(tmp / "shapes", "detect", n_train=16, n_val=8, imgsz=64, seed=0)
    out = cli("run", str(job(tmp, data, tmp / "runs")), "--until", "search")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return tmp / "runs" / "faults"


def test_kill_during_the_engines_stage_then_resume_finishes_without_searching_again(searched_run):
    run = searched_run
    trials = (run / "trials.parquet").stat().st_mtime_ns
    # killed while it measures: the first configuration's line is printed, the stage is not done
    kill_when(["resume", str(run), "--from", "engines"], lambda out: "img/s  p50" in out)
    trusted_files_are_whole(run)
    assert not finished(run, "engines"), "a killed stage is not recorded as finished"
    out = cli("resume", str(run))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (run / "trials.parquet").stat().st_mtime_ns == trials, "the finished search ran again"
    assert finished(run, "engines") and finished(run, "export")
    trusted_files_are_whole(run)
    assert json.loads((run / "selection.json").read_text())["chosen"]["backend"] == "onnxruntime"
    assert (run / "bundle" / "bin" / "yoloforge-server").is_file()


def test_kill_during_the_export_then_resume_leaves_a_whole_bundle_and_keeps_the_engines(searched_run):
    run = searched_run

    def exporting(out: str) -> bool:  # the bundle being written, or written and not yet checked under load
        return "5 export" in out and (any(run.glob(".bundle-*")) or "Bundle written" in out)

    kill_when(["resume", str(run), "--from", "export"], exporting)
    trusted_files_are_whole(run)
    engines = (run / "engines.parquet").stat().st_mtime_ns
    out = cli("resume", str(run))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (run / "engines.parquet").stat().st_mtime_ns == engines, "the finished engines stage ran again"
    assert finished(run, "export")
    bundle = run / "bundle"
    assert json.loads((bundle / "bundle.json").read_text())["config"]
    assert (bundle / "bin" / "yoloforge-server").is_file() and (bundle / "docker-compose.yml").is_file()
    assert not list(run.glob(".bundle-*")), "the interrupted export's temporary folder was left behind"
    trusted_files_are_whole(run)


@contextlib.contextmanager
def small_disk(path: Path, size_mb: int) -> Iterator[Callable[[int], None]]:
    """A tmpfs of size_mb at path (root only); yields a function that resizes it. Skips where mounting is not
    allowed (no root, or a container without CAP_SYS_ADMIN)."""
    path.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip() or mounted.returncode}")

    def resize(mb: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={mb}m", str(path)], check=True)

    try:
        yield resize
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_full_disk_during_the_search_stops_with_a_message_and_resume_finishes(tmp_path):
    from yoloforge.ray_app.intake.synth import synth_dataset

    data = synth_dataset(tmp_path / "shapes", "detect", n_train=16, n_val=8, imgsz=64, seed=0)
    with small_disk(tmp_path / "disk", 12) as resize:  # room for intake, not for two trials' checkpoints
        out = cli("run", str(job(tmp_path, data, tmp_path / "disk")), "--until", "search")
        said = out.stdout + out.stderr
        assert out.returncode == 2, said[-3000:]
        assert "DiskFull" in said and "yoloforge resume" in said and "internal error" not in said, said[-3000:]
        run = tmp_path / "disk" / "faults"
        trusted_files_are_whole(run)
        resize(400)  # the user frees space
        out = cli("resume", str(run))
        said = out.stdout + out.stderr
        assert out.returncode == 0, said[-3000:]
        assert "intake: the dataset, its settings and the model are those already checked; kept" in said
        trials = pq.read_table(run / "trials.parquet").to_pylist()
        assert len(trials) == 2 and all(t["status"] == "ok" for t in trials)
        assert finished(run, "search") and finished(run, "export")
        trusted_files_are_whole(run)


def test_a_run_directory_moved_elsewhere_still_resumes_reports_and_exports(searched_run, tmp_path):
    import shutil

    run = searched_run
    trials = pq.read_table(run / "trials.parquet").to_pylist()
    best = json.loads((run / "best" / "metrics.json").read_text())
    for recorded in [best["best_pt"], *(t["best_pt"] for t in trials if t["status"] == "ok")]:
        # produced files are recorded relative to the run directory, never in Ray's temporary folder
        assert not Path(recorded).is_absolute() and (run / recorded).is_file(), recorded
    moved = tmp_path / "elsewhere" / "faults"
    moved.parent.mkdir()
    shutil.move(run, moved)
    try:
        out = cli("resume", str(moved))
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert finished(moved, "engines") and finished(moved, "export") and "Bundle answered" in out.stdout
        for name in ("selection.json", "dataset_report.json", "best/metrics.json", "delivered.json"):
            assert str(run) not in (moved / name).read_text(), f"{name} names the old location"
        out = cli("report", str(moved))
        assert out.returncode == 0 and (moved / "report.html").is_file(), out.stdout[-3000:] + out.stderr[-3000:]
        out = cli("export", str(moved))
        assert out.returncode == 0 and "Bundle answered" in out.stdout, out.stdout[-3000:] + out.stderr[-3000:]
    finally:
        shutil.move(moved, run)  # the module's other tests use it where it was


def test_a_search_whose_trials_died_of_a_full_disk_is_said_to_be_a_full_disk(tmp_path):
    # Tune ends a search whose trial could not write its checkpoint with "Trials did not complete", the OSError
    # left in the trial's log, and by then what the failed trials wrote is gone: a small write fits again, and the
    # run ended as an internal error (exit 3) instead of a full disk (exit 2)
    from ray.tune.error import TuneError
    from yoloforge.core.errors import disk_full
    from yoloforge.ray_app.search.tune_io import fit_or_disk_full

    def trials_did_not_complete() -> None:
        raise TuneError("Trials did not complete: [train_trial_b97cb09f, train_trial_273aa14e]")

    run = tmp_path / "disk"
    with small_disk(run, 4):
        checkpoint = run / "search" / "tune" / "train_trial_1" / "last.pt"  # a finished trial's, 1.5 MB
        checkpoint.parent.mkdir(parents=True)
        checkpoint.write_bytes(b"\0" * (3 << 19))
        filler = run / "filler"
        with contextlib.suppress(OSError), open(filler, "wb") as out:
            while True:
                out.write(b"\0" * 65536)
        os.truncate(filler, filler.stat().st_size - (1 << 19))  # 512 KB free: room for a log, not a checkpoint
        with pytest.raises(OSError) as raised:
            fit_or_disk_full(trials_did_not_complete, run)
    assert disk_full(raised.value) is not None
    with pytest.raises(TuneError):  # with room on the disk, Tune's own error is left as it is
        fit_or_disk_full(trials_did_not_complete, tmp_path)
