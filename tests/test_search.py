"""Stage 2 end to end: real Ultralytics training in real Ray Tune trials, driven by the GA."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from ultralytics.cfg import get_cfg
from yoloforge.ray_app.intake.synth import synth_dataset
from yoloforge.ray_app.pipeline import run_job
from yoloforge.ray_app.search.hyp_file import command_parts, reproduce_command, reproducible_hyp
from yoloforge.ray_app.search.tune_io import read_status
from yoloforge.ray_app.search.tune_state import restorable, tune_results
from yoloforge.ray_app.spec import parse_job
from yoloforge.ray_app.stages.base import SearchChoices
from yoloforge.ray_app.zoo import resolve_model

GOOD = {"optimizer": "AdamW", "lr0": 0.002, "mosaic": 0.0, "nbs": 16}  # learns the shapes within a few epochs


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # small: these tests check what the search does with its trials, not what they learn
    return synth_dataset(tmp_path_factory.mktemp("data") / "shapes", "detect", n_train=32, n_val=16, imgsz=128)


def job(tmp_path: Path, data: Path, name: str, **search) -> dict:
    return {"name": name, "model": "yolo11n.yaml", "data": str(data), "runs_dir": str(tmp_path / "runs"),
            "resources": {"cpu": 1, "gpu": 0, "dashboard": False},
            "search": {"population": 2, "generations": 2, "epochs": 5, "imgsz": 128, "batch": 16,
                       "initial": [GOOD], **search},
            # a one-config engines stage: these tests are about the search (tests/test_engines.py covers engines)
            "engines": {"backends": ["onnxruntime"], "precisions": ["fp32"], "batch_sizes": [1], "min_time_s": 0.2,
                        "val_images": 8, "bundle_candidates": 0}}


def rows(run_dir: Path) -> list[dict]:
    return pq.read_table(run_dir / "trials.parquet").to_pylist()


@pytest.mark.slow
def test_search_trains_two_generations_and_keeps_the_best(tmp_path, shapes):
    result = run_job(parse_job(job(tmp_path, shapes, "e2e", epochs=3)), until="search")
    run_dir = tmp_path / "runs" / "e2e"
    trials = rows(run_dir)
    assert len(trials) == 4 and {t["generation"] for t in trials} == {0, 1}
    assert all(t["status"] == "ok" for t in trials)
    best = result.outcome.best
    # what three epochs learn depends on the machine; which trial is kept, and that it is measured, does not
    top = max(trials, key=lambda t: t["fitness"])
    assert best["trial_id"] == top["trial_id"] and best["fitness"] == top["fitness"]
    assert (run_dir / "best" / "best.pt").read_bytes() == (run_dir / top["best_pt"]).read_bytes()
    # best/hyp.yaml trains the best trial again: its hyperparameters, no data or model (given on the command line),
    # and Ultralytics' own configuration check takes it as `yolo train cfg=` does (its keys over the defaults)
    hyp = yaml.safe_load((run_dir / "best" / "hyp.yaml").read_text())
    assert hyp["lr0"] == pytest.approx(top["hp_lr0"]) and hyp["epochs"] == 3 and hyp["seed"] == 0
    assert "data" not in hyp and "model" not in hyp and "yolo train cfg=" in (run_dir / "best" / "hyp.yaml").read_text()
    assert get_cfg(overrides={**hyp, "data": str(shapes), "model": "yolo11n.yaml"}).lr0 == hyp["lr0"]
    assert top["outcome"].startswith("chosen") and sum(t["outcome"].startswith("chosen") for t in trials) == 1
    assert 0 <= best["mAP50"] <= 1 and best["latency_ms"] > 0 and best["params_m"] > 1 and best["gflops"] > 0
    assert len({t["latency_ms"] for t in trials}) == 1  # one architecture at one size: one latency, measured alone
    info = resolve_model(str(run_dir / "best" / "best.pt"), "detect")
    assert info.names == ["circle", "square", "triangle"]
    assert pq.read_table(run_dir / "pareto.parquet").num_rows >= 1
    assert json.loads((run_dir / "search" / "ga_state.json").read_text())["generation"] == 2
    progress = next((run_dir / "search" / "tune").glob("train_trial_*/progress.csv")).read_text().splitlines()
    assert len(progress) - 1 >= 3  # one row per epoch reached Tune, then the final one
    # a later trial trains in an earlier one's process (Tune's reuse_actors; between generations, while the searcher
    # waits for the last result, Tune keeps one idle process, not every one)
    finals = [json.loads(f.read_text().splitlines()[-1]) for f in (run_dir / "search" / "tune").glob("*/result.json")]
    assert len(finals) == 4 and len({r["pid"] for r in finals}) < 4
    assert all((run_dir / t["best_pt"]).with_name("results.csv").is_file() for t in trials)


def test_best_hyp_leaves_out_what_the_user_decides_and_names_the_command_that_trains_it_again(tmp_path):
    path = tmp_path / "best" / "hyp.yaml"
    path.parent.mkdir()
    args = {"task": "detect", "data": "/d/data.yaml", "model": "yolo11n.yaml", "device": "cpu", "project": "/tmp/x",
            "epochs": 3, "lr0": 0.004, "nbs": 16, "seed": 0, "deterministic": True}
    path.write_text(reproducible_hyp(args, path, tmp_path / "ultralytics"))
    hyp = yaml.safe_load(path.read_text())
    assert hyp == {"task": "detect", "epochs": 3, "lr0": 0.004, "nbs": 16, "seed": 0, "deterministic": True}
    assert reproduce_command(path) == (f"YOLO_CONFIG_DIR={tmp_path / 'ultralytics'} yolo train cfg={path} "
                                       "data=/d/data.yaml model=yolo11n.yaml")
    assert reproduce_command(tmp_path / "missing.yaml") is None


def test_the_command_in_best_hyp_reads_back_whole_when_the_run_folder_holds_a_space(tmp_path):
    path = tmp_path / "my runs" / "best" / "hyp.yaml"
    path.parent.mkdir(parents=True)
    args = {"task": "detect", "data": "/my data/data.yaml", "model": "yolo11n.yaml", "epochs": 3}
    path.write_text(reproducible_hyp(args, path, tmp_path / "my runs" / "best" / "ultralytics"))
    env, argv = command_parts(reproduce_command(path) or "")
    assert env == {"YOLO_CONFIG_DIR": str(tmp_path / "my runs" / "best" / "ultralytics")}
    assert argv == ["yolo", "train", f"cfg={path}", "data=/my data/data.yaml", "model=yolo11n.yaml"]


@pytest.mark.slow
def test_target_met_ends_the_search_after_the_first_generation(tmp_path, shapes):
    # a floor every finished trial meets, whatever two epochs give on this machine: meeting it is what is tested
    spec = parse_job({**job(tmp_path, shapes, "target", generations=4, epochs=2),
                      "targets": {"metrics": {"recall": 0.0}}})
    result = run_job(spec, until="search")
    assert result.outcome.target_met and result.outcome.stop_reason == "target"
    assert {t["generation"] for t in rows(tmp_path / "runs" / "target")} == {0}


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory, detector):  # type: ignore[no-untyped-def]
    """A multi-fidelity search fine-tuning the suite's detector: one config keeps it, one wrecks it."""
    import ray
    from yoloforge.ray_app.ray_session import init_options

    tmp_path = tmp_path_factory.mktemp("fine_tuned")

    if not ray.is_initialized():  # the suite's one local Ray (ray_session joins it), asked for its CPUs below
        ray.init(**init_options(None, dashboard=False))
    weights, data = detector
    # a step every batch from the first (at Ultralytics' nbs 64 the first epoch of 3 batches would make none)
    keeps = {"optimizer": "AdamW", "lr0": 1e-5, "warmup_epochs": 0.0, "nbs": 16}  # the trained detector stays
    wrecks = {**keeps, "lr0": 0.1}  # one epoch of this undoes the detector's training
    spec = parse_job({**job(tmp_path, data, "fidelity", population=2, generations=1, epochs=3, initial=[keeps, wrecks],
                            fidelity={"min_epochs": 1, "reduction": 3}),
                      "model": str(weights),
                      # one trial at a time on any machine: the first to reach a rung always goes on (ASHA)
                      "resources": {"cpu": ray.cluster_resources()["CPU"], "gpu": 0, "dashboard": False}})
    return run_job(spec, until="search"), tmp_path / "runs" / "fidelity"


def test_a_multi_fidelity_search_stops_a_weak_trial_at_its_rung_and_the_ga_learns_from_it(fine_tuned):
    result, run_dir = fine_tuned
    kept, stopped = sorted(rows(run_dir), key=lambda t: t["hp_lr0"])
    assert kept["status"] == "ok" and kept["best_pt"]
    assert stopped["status"] == "stopped early" and stopped["epoch"] == 1 and stopped["best_pt"] is None
    assert result.outcome.best["trial_id"] == kept["trial_id"]
    # the stopped trial's fitness at its rung reached the GA (and its surrogate), not a failure
    told = json.loads((run_dir / "search" / "ga_state.json").read_text())
    assert len(told["archive_F"]) == 2
    assert np.isfinite(np.array(told["archive_F"], dtype=float)).all()
    assert np.isfinite(np.array(told["archive_cv"], dtype=float)).all()


def test_the_command_in_best_hyp_trains_exactly_as_the_trial_did(fine_tuned, tmp_path):
    # Ultralytics imports its Ray Tune integration after seeding, and that import draws from Python's random
    # numbers; the trial ran inside Ray Tune. Each batch's losses follow from the images the augmentation drew.
    import shutil
    import subprocess

    _, run_dir = fine_tuned
    kept = min(rows(run_dir), key=lambda t: t["hp_lr0"])
    command = reproduce_command(run_dir / "best" / "hyp.yaml")
    assert command and shutil.which("yolo")
    env, argv = command_parts(command)
    train = [shutil.which("yolo"), *argv[1:], "plots=False", "workers=0", "device=cpu",
             f"project={tmp_path}", "name=again", "exist_ok=True"]
    again = subprocess.run(train, env={**os.environ, **env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]

    def losses(results: Path) -> list[float]:  # every epoch's training losses, in order
        rows = csv.DictReader(results.open())
        return [float(v) for r in rows for k, v in r.items() if k.strip().startswith("train/")]

    trial = (run_dir / kept["best_pt"]).parent / "results.csv"  # kept in the checkpoint beside the weights
    assert losses(tmp_path / "again" / "results.csv") == pytest.approx(losses(trial), rel=1e-4)


@pytest.mark.slow
def test_crashed_trial_is_recorded_with_its_reason_and_the_search_goes_on(tmp_path, shapes):
    # lr0 above 1 passes our widened space but Ultralytics refuses it inside the trial: a real crash
    spec = parse_job(job(tmp_path, shapes, "crash", generations=1, epochs=2,
                         space={"lr0": {"low": 1e-5, "high": 5.0}},
                         initial=[{"optimizer": "SGD", "lr0": 3.0}, GOOD]))
    result = run_job(spec, until="search")
    trials = {t["status"]: t for t in rows(tmp_path / "runs" / "crash")}
    assert set(trials) == {"ok", "error"}
    assert "lr0" in trials["error"]["error"] and trials["error"]["hp_lr0"] == pytest.approx(3.0)
    assert result.outcome.failed == 1 and result.outcome.best["trial_id"] == trials["ok"]["trial_id"]


def finished_trials(experiment: Path) -> dict[str, str]:
    """Trial folder -> its result.json, for trials whose final report is written and that Tune's saved state
    records as ended (one that finished after Tune's last save rightly runs again on resume)."""
    ended = {t for t, r in tune_results(experiment).items() if r["status"] == "TERMINATED"}
    return {p.parent.name: p.read_text() for p in experiment.glob("*/result.json")
            if '"final": true' in p.read_text() and any(f"_{t}_" in p.parent.name for t in ended)}


@pytest.mark.slow
def test_resume_after_killing_the_driver_does_not_rerun_finished_trials(tmp_path, shapes):
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump(job(tmp_path, shapes, "killed", epochs=3)))
    cli = [sys.executable, "-m", "yoloforge.ray_app.cli"]
    env = {**os.environ, "COLUMNS": "200"}
    driver = subprocess.Popen([*cli, "run", str(job_file), "--yes"], cwd=tmp_path, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    experiment = tmp_path / "runs" / "killed" / "search" / "tune"
    deadline = time.monotonic() + 300
    # killed once a trial finished and Tune has saved its state at least once: a search killed before Tune's first
    # save rightly starts again (on a loaded machine a trial can finish before it)
    while not (restorable(experiment) and finished_trials(experiment)) and time.monotonic() < deadline \
            and driver.poll() is None:
        time.sleep(0.2)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started, as a closed laptop lid would
    driver.wait()
    before = finished_trials(experiment)
    assert 1 <= len(before) < 4
    assert json.loads((tmp_path / "runs" / "killed" / "search" / "status.json").read_text())["state"] == "running"

    resumed = subprocess.run([*cli, "resume", str(tmp_path / "runs" / "killed"), "--yes"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    after = finished_trials(experiment)
    assert all(after[name] == text for name, text in before.items())  # finished trials were not run again
    trials = rows(tmp_path / "runs" / "killed")
    assert len(trials) == 4 and all(t["status"] == "ok" for t in trials)
    assert "resuming the search" in resumed.stdout
    selection = json.loads((tmp_path / "runs" / "killed" / "selection.json").read_text())  # then stage 3 ran
    assert selection["chosen"]["backend"] == "onnxruntime"


@pytest.fixture(scope="module")
def continued(tmp_path_factory, shapes):  # type: ignore[no-untyped-def]
    """A search whose target was not met, continued for one more generation as round tune-2."""
    tmp_path = tmp_path_factory.mktemp("continued")
    spec = parse_job({**job(tmp_path, shapes, "more", generations=1, epochs=2),
                      "targets": {"metrics": {"mAP50-95": 0.99}}})
    result = run_job(spec, SearchChoices(more_generations=1), until="search")
    return spec, result, tmp_path / "runs" / "more"


@pytest.mark.slow
def test_unmet_target_continues_for_more_generations_as_the_same_search(continued):
    _, result, run_dir = continued
    assert read_status(run_dir)["rounds"] == ["tune", "tune-2"]
    trials = rows(run_dir)
    assert [(t["round"], t["generation"]) for t in trials] == [("tune", 0)] * 2 + [("tune-2", 1)] * 2
    assert not result.outcome.target_met and result.outcome.stop_reason == "max_generations"
    assert json.loads((run_dir / "search" / "ga_state.json").read_text())["generation"] == 2


@pytest.mark.slow
def test_a_continued_round_without_tunes_state_runs_again_alone(continued, capsys):
    """Killed (or stopped by a full disk) before Tune first saved round tune-2: only that round runs again, from
    the end of round tune; round tune's trials are kept."""
    import shutil

    from yoloforge.ray_app.search.tune_io import write_status

    spec, _, run_dir = continued
    first_round = [t for t in rows(run_dir) if t["round"] == "tune"]
    write_status(run_dir, state="running", experiment="tune-2")
    shutil.rmtree(run_dir / "search" / "tune-2")
    run_job(spec, until="search")
    assert "round tune-2 starts again from the end of tune" in capsys.readouterr().out
    assert read_status(run_dir)["rounds"] == ["tune", "tune-2"] and read_status(run_dir)["state"] == "done"
    trials = rows(run_dir)
    assert [t for t in trials if t["round"] == "tune"] == first_round
    assert [(t["round"], t["generation"]) for t in trials if t["round"] == "tune-2"] == [("tune-2", 1)] * 2


@pytest.mark.slow
def test_ctrl_c_leaves_a_resumable_search_and_says_how_to_resume(tmp_path, shapes):
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump(job(tmp_path, shapes, "ctrlc", epochs=3)))
    driver = subprocess.Popen([sys.executable, "-m", "yoloforge.ray_app.cli", "run", str(job_file), "--yes"],
                              cwd=tmp_path,
                              env={**os.environ, "COLUMNS": "200"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    experiment = tmp_path / "runs" / "ctrlc" / "search" / "tune"
    deadline = time.monotonic() + 300
    while not finished_trials(experiment) and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.5)
    driver.send_signal(signal.SIGINT)
    out, _ = driver.communicate(timeout=120)
    assert driver.returncode == 130, out[-3000:]
    assert f"yoloforge resume {tmp_path / 'runs' / 'ctrlc'}" in out
    assert json.loads((tmp_path / "runs" / "ctrlc" / "search" / "status.json").read_text())["state"] == "running"


def test_ultralytics_defaults_start_the_search_as_its_trainer_resolves_them(tmp_path, shapes):
    from yoloforge.ray_app.search.seeding import _initial_individuals

    spec = parse_job(job(tmp_path, shapes, "defaults", initial=[]))
    (start,) = _initial_individuals(spec, nc=3)
    assert start["optimizer"] == "AdamW" and start["lr0"] == pytest.approx(0.01 / 7, abs=1e-6)
    assert start["momentum"] == 0.9



def _trial_dirs(run_dir: Path) -> set[str]:
    return {p.name for p in (run_dir / "search").rglob("train_trial_*") if p.is_dir()}


def test_a_rerun_keeps_the_intake_until_a_label_changes_even_at_the_same_size(tmp_path, shapes):
    import shutil

    data = shutil.copytree(shapes, tmp_path / "mine")
    base = job(tmp_path, data, "intake-rerun")
    report = tmp_path / "runs" / "intake-rerun" / "dataset_report.json"
    run_job(parse_job(base), until="intake")
    checked = report.stat().st_mtime_ns

    run_job(parse_job(base), until="intake")
    assert report.stat().st_mtime_ns == checked, "unchanged inputs were checked again"

    label = sorted((Path(shapes) / "labels" / "train").glob("*.txt"))[0]  # data.yaml's path: the original
    text = label.read_text()
    counts = json.loads(report.read_text())["class_counts"]
    label.write_text(("1" if text[0] == "0" else "0") + text[1:])  # another class, the same size
    try:
        run_job(parse_job(base), until="intake")
        assert json.loads(report.read_text())["class_counts"] != counts, "an edited label was not checked"
    finally:
        label.write_text(text)  # the dataset is shared by this module's tests
    run_job(parse_job(base), until="intake")
    clean = report.parent / "data" / "clean" / "data.yaml"  # rewritten by every check, kept otherwise
    checked = clean.stat().st_mtime_ns
    run_job(parse_job(base), until="intake")
    assert clean.stat().st_mtime_ns == checked

    run_job(parse_job(base), until="intake", from_stage="intake")
    assert clean.stat().st_mtime_ns != checked, "--from intake did not check again"


@pytest.mark.slow
def test_a_rerun_repeats_only_the_stages_whose_inputs_changed_or_from_the_stage_asked(tmp_path, shapes):
    base = job(tmp_path, shapes, "rerun", population=2, generations=1, epochs=1)
    run_job(parse_job(base), until="engines")
    run_dir = tmp_path / "runs" / "rerun"
    trials, selection = _trial_dirs(run_dir), (run_dir / "selection.json").stat().st_mtime_ns

    run_job(parse_job(base), until="engines")  # nothing changed: nothing re-runs
    assert _trial_dirs(run_dir) == trials and (run_dir / "selection.json").stat().st_mtime_ns == selection

    run_job(parse_job(base), until="engines", from_stage="engines")  # --from engines: that stage runs again
    assert _trial_dirs(run_dir) == trials
    assert (run_dir / "selection.json").stat().st_mtime_ns != selection
    selection = (run_dir / "selection.json").stat().st_mtime_ns

    run_job(parse_job({**base, "engines": {**base["engines"], "min_time_s": 0.3}}), until="engines")
    assert _trial_dirs(run_dir) == trials, "an engines setting re-ran the search"
    assert (run_dir / "selection.json").stat().st_mtime_ns != selection

    changed = {**base, "engines": {**base["engines"], "min_time_s": 0.3},
               "search": {**base["search"], "epochs": 2}}
    run_job(parse_job(changed), until="search")
    previous = list((run_dir / "previous").glob("*/trials.parquet"))
    assert len(previous) == 1, "the old search is kept, not deleted"
    assert all(t["status"] == "ok" for t in rows(run_dir)) and _trial_dirs(run_dir) != trials


def test_a_short_search_starts_from_the_defaults_and_their_learning_rate_and_mosaic_variants(tmp_path, shapes):
    from yoloforge.ray_app.search.seeding import build_searcher

    spec = parse_job(job(tmp_path, shapes, "screen", population=4, initial=[], epochs=25))
    first = build_searcher(spec, "detect", nc=3, n_train=64).ga.ask()
    lr0, faster = pytest.approx(0.001429), pytest.approx(0.001429 * 10**0.5)  # auto lr0 for 3 classes
    assert [(c["lr0"], c["mosaic"]) for c in first] == [(lr0, 1.0), (faster, 0.0), (faster, 1.0), (lr0, 0.0)]
    # the defaults step every 64 images as Ultralytics' do; the design's cells every 16, as they were measured
    assert [c["nbs"] for c in first] == [64, 16, 16, 16]
    assert all(c["box"] == 7.5 and c["optimizer"] == "AdamW" for c in first)  # the rest stays at the defaults


def test_genes_the_trainer_ignores_at_the_budget_are_not_searched_and_no_start_repeats(tmp_path, shapes):
    from yoloforge.ray_app.search.seeding import build_searcher

    spec = parse_job(job(tmp_path, shapes, "inert", population=4, initial=[], epochs=8))  # <= close_mosaic (10)
    searcher = build_searcher(spec, "detect", nc=3, n_train=64)
    assert not {"mosaic", "mixup"} & set(searcher.ga.space.names)
    first = searcher.ga.ask()
    effective = [tuple(sorted((k, str(v)) for k, v in c.items())) for c in first]
    assert len(set(effective)) == len(first) == 4  # no candidate re-trains another under another mosaic value
    lr0, faster = pytest.approx(0.001429), pytest.approx(0.001429 * 10**0.5)
    assert [c["lr0"] for c in first[:2]] == [lr0, faster] and all(c["mosaic"] == 1.0 for c in first)


def test_a_pretrained_checkpoint_fine_tunes_from_the_defaults_and_points_near_them(tmp_path, shapes):
    from yoloforge.ray_app.search.seeding import build_searcher

    spec = parse_job(job(tmp_path, shapes, "fine", population=8, initial=[], epochs=25))
    searcher = build_searcher(spec, "detect", nc=3, n_train=64, pretrained=True)
    first = searcher.ga.ask()
    default = 0.001429  # auto lr0 for 3 classes
    assert first[0]["lr0"] == pytest.approx(default) and first[0]["mosaic"] == 1.0
    assert all(c["lr0"] <= 2 * default + 1e-12 for c in first)  # no large jump up: it wrecks pretrained weights
    assert not [c for c in first[1:] if c["lr0"] == pytest.approx(default * 10**0.5)]  # no screening design
    near = searcher.ga.space.encode(first[1:]) - searcher.ga.space.encode(first[:1])
    assert np.median(np.abs(near)) < 0.1  # mutants of the defaults, not samples spread over the whole space


def test_a_long_search_starts_from_the_defaults_without_short_training_variants(tmp_path, shapes):
    from yoloforge.ray_app.search.seeding import build_searcher

    spec = parse_job(job(tmp_path, shapes, "long", population=4, initial=[]))
    first = build_searcher(spec, "detect", nc=3, n_train=200_000).ga.ask()  # 5 epochs x 3,125 steps of 64
    assert first[0]["mosaic"] == 1.0
    variants = [c for c in first[1:] if c["mosaic"] == 0.0 or c["lr0"] == pytest.approx(0.001429 * 10**0.5)]
    assert not variants


def test_a_short_search_leaves_sgd_out_unless_the_job_names_it(tmp_path, shapes):
    from yoloforge.ray_app.search.seeding import build_searcher, dataset_train_images

    short_spec = parse_job(job(tmp_path, shapes, "short"))
    run_job(short_spec, until="intake")
    n_train = dataset_train_images(short_spec.run_dir)
    assert n_train == 32
    short = build_searcher(short_spec, "detect", 3, n_train)
    assert "SGD" not in next(g for g in short.ga.space.genes if g.name == "optimizer").choices
    mine = build_searcher(parse_job(job(tmp_path, shapes, "mine", initial=[{"optimizer": "SGD", "lr0": 0.01}])),
                          "detect", 3, n_train)
    assert "SGD" in next(g for g in mine.ga.space.genes if g.name == "optimizer").choices


def test_the_live_table_shows_each_running_trials_epoch_accuracy_and_time_left():
    from rich.console import Console
    from yoloforge.ray_app.search.progress import Progress

    progress = Progress(population=2, generations=2, target={"mAP50": 0.5}, epochs=50)
    progress.running = {"a_00001": {"epoch": 12, "epochs": 50, "mAP50": 0.1234, "fitness": 0.05, "eta_s": 150.0}}
    screen = Console(record=True, width=120)
    screen.print(progress._table())
    row = next(line for line in screen.export_text().splitlines() if "a_00001" in line)
    assert "12/50" in row and "0.123" in row and "2.5 min" in row
