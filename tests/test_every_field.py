"""Every field of job.yaml has an effect: each one, changed alone, changes what it names — an artefact a stage
writes or the setting a stage hands on (the GA, a trial, Ray, the engine plan, the preview, the bundle's server).
A fingerprint does not count. The table is checked against the schema, so a new field without a row (or a listed
exception with its reason) fails. Nothing is trained: intake runs for real on tiny synthetic data, the preview's
and the bundle's settings are read from a run through its engines stage."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel
from yoloforge.core.errors import YoloforgeError
from yoloforge.ray_app.intake.synth import synth_dataset
from yoloforge.ray_app.spec import JobSpec, dump_job, parse_job

# --- the schema's fields -------------------------------------------------------------------------------------


def leaf_fields(model: type[BaseModel] = JobSpec, prefix: str = "") -> list[str]:
    """Dotted paths of every field a user can write (a mapping such as targets.metrics is one field)."""
    found = []
    for name, info in model.model_fields.items():
        nested = next((t for t in [info.annotation, *get_args(info.annotation)]
                       if isinstance(t, type) and issubclass(t, BaseModel)), None)
        if get_origin(info.annotation) is dict and nested:  # search.space: {gene: {low, high, value, choices}}
            found += leaf_fields(nested, f"{prefix}{name}.*.")
        else:
            found += leaf_fields(nested, f"{prefix}{name}.") if nested else [f"{prefix}{name}"]
    return found


@dataclasses.dataclass(frozen=True)
class Case:
    observe: str  # the name of an observer below
    changed: Any  # the field's new value
    base: dict[str, Any] = dataclasses.field(default_factory=dict)  # other fields this case needs set first
    at: str | None = None  # where the value goes, when the field sits under a mapping (search.space.*.low)


CASES: dict[str, Case] = {
    # intake: the run directory, model.json, dataset_report.json and the clean copy
    "name": Case("intake", "renamed"),
    "runs_dir": Case("intake", "elsewhere"),
    "model": Case("intake", "yolov8n.yaml"),
    "task": Case("intake", "segment"),
    "data.path": Case("intake", "other"),
    "data.val_split": Case("intake", 0.5, {"data.path": "noval", "data.val_split": 0.2}),
    "data.split_seed": Case("intake", 1, {"data.path": "noval", "data.val_split": 0.3}),
    "data.max_bad_fraction": Case("intake", 0.1, {"data.path": "onebad", "data.max_bad_fraction": 0.5}),
    "data.allow_name_mismatch": Case("intake", True, {"model": "reordered.pt"}),
    # the search: the GA, what every trial is given, what Ray reserves and starts
    "search.population": Case("searcher", 4),
    "search.generations": Case("searcher", 9),
    "search.stagnation": Case("searcher", 7),
    "search.time_budget_min": Case("searcher", 30),
    "search.seed": Case("searcher", 5),
    "search.mode": Case("searcher", "pareto"),
    "search.space.*.low": Case("searcher", {"lr0": {"low": 0.0005}}, at="search.space"),
    "search.space.*.high": Case("searcher", {"lr0": {"high": 0.005}}, at="search.space"),
    "search.space.*.value": Case("searcher", {"mosaic": {"value": 0.0}}, at="search.space"),
    "search.space.*.choices": Case("searcher", {"optimizer": {"choices": ["AdamW"]}}, at="search.space"),
    "search.initial": Case("searcher", [{"lr0": 0.003}]),
    "search.fidelity.min_epochs": Case("scheduler", 2, {"search.epochs": 20, "search.fidelity.min_epochs": 1}),
    "search.fidelity.reduction": Case("scheduler", 2, {"search.epochs": 20, "search.fidelity.min_epochs": 1}),
    "targets.metrics": Case("searcher", {"mAP50": 0.7}),
    "search.epochs": Case("trial", 3),
    "search.imgsz": Case("trial", 320),
    "search.batch": Case("trial", 4),
    "search.fitness": Case("trial", {"mAP50": 1.0}),
    "search.compute_penalty": Case("trial", {"latency_ms": 0.001}),
    "resources.cpu": Case("ray", 2),
    "resources.gpu": Case("ray", 0.25),
    "resources.address": Case("ray", "ray://head:10001"),
    "resources.dashboard": Case("ray", False),
    # the engines stage: what it measures and against which targets
    "engines.backends": Case("engines", ["onnxruntime"]),
    "engines.precisions": Case("engines", ["fp32"]),
    "engines.batch_sizes": Case("engines", [1, 4]),
    "engines.threads": Case("engines", [1]),
    "engines.imgsz": Case("engines", [64]),
    "engines.max_configs": Case("engines", 2),
    "engines.min_time_s": Case("engines", 0.5),
    "engines.val_images": Case("engines", 8),
    "engines.int8_budget_s": Case("engines", 30),
    "engines.bundle_candidates": Case("engines", 0),
    "targets.fps": Case("engines", 60),
    "targets.p99_latency_ms": Case("engines", 50),
    "targets.max_memory_mb": Case("engines", 2048),
    "targets.max_accuracy_drop": Case("engines", 0.02),
    "targets.device": Case("device", "cuda:0", {"targets.device": "cpu"}),
    "targets.edge_device": Case("trial", "orin-nano", {"targets.edge_device": "rpi5"}),
    # the preview (Ray Serve) of a run, and the bundle's server, as their stages read them from the run
    "preview.enabled": Case("preview", True),
    "preview.host": Case("preview", "0.0.0.0"),
    "preview.port": Case("preview", 8001),
    "preview.replicas": Case("preview", 2),
    "preview.max_replicas": Case("preview", 3),
    "preview.target_ongoing_requests": Case("preview", 8),
    "preview.cpu": Case("preview", 2),
    "preview.max_batch_size": Case("preview", 16),
    "preview.batch_wait_ms": Case("preview", 9),
    "preview.concurrent_batches": Case("preview", 3),
    "preview.max_queued_requests": Case("preview", 32),
    "preview.max_body_mb": Case("preview", 2),
    "export.port": Case("export", 9090),
    "export.max_batch": Case("export", 16),
    "export.max_wait_ms": Case("export", 9),
    "export.max_queue": Case("export", 32),
    "export.concurrent_batches": Case("export", 1),
    "export.max_body_mb": Case("export", 2),
    "export.cache_ttl_s": Case("export", 60),
    "export.streams": Case("export", False),
    "export.platform": Case("export", "linux/arm64", {"export.platform": "linux/amd64"}),
}

EXCEPTIONS: dict[str, str] = {
    "preview.gpu": "a GPU share per replica is given only where the chosen engine runs on a GPU; the suite's run "
                   "is on a CPU, where the preview rightly reserves none (ray_app/stages/preview.py)",
    "export.build_image": "its effect is a `docker build`, which needs a Docker engine the suite's machines do not "
                          "have; ExportStage.run hands it to stage_export(build=...), whose refusal without an "
                          "engine is tested (tests/test_cli.py)",
}


# --- how each case is observed -------------------------------------------------------------------------------


def with_field(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    *parents, leaf = path.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return raw


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """The datasets and the checkpoint the intake cases read."""
    root = tmp_path_factory.mktemp("fields")
    shapes = synth_dataset(root / "shapes", "detect", n_train=8, n_val=4, imgsz=64, seed=1)
    other = synth_dataset(root / "other", "detect", n_train=5, n_val=3, imgsz=64, seed=2)
    noval = synth_dataset(root / "noval", "detect", n_train=10, n_val=1, imgsz=64, seed=3)
    shutil.rmtree(noval / "images" / "val")
    shutil.rmtree(noval / "labels" / "val")
    config = yaml.safe_load((noval / "data.yaml").read_text())
    del config["val"]
    (noval / "data.yaml").write_text(yaml.safe_dump(config))
    onebad = synth_dataset(root / "onebad", "detect", n_train=8, n_val=5, imgsz=64, seed=4)
    sorted((onebad / "images" / "val").glob("*.jpg"))[0].write_bytes(b"not an image")
    from ultralytics import YOLO

    reordered = YOLO("yolo11n.yaml")
    reordered.model.names = dict(enumerate(reversed(yaml.safe_load((shapes / "data.yaml").read_text())["names"]
                                                    .values())))
    reordered.save(str(root / "reordered.pt"))
    return {"root": root, "shapes": shapes, "other": other, "noval": noval, "onebad": onebad,
            "reordered.pt": root / "reordered.pt"}


def observe_intake(spec: JobSpec, world: dict[str, Path]) -> Any:
    """Where intake wrote, what model.json and dataset_report.json say, and the clean copy's val images."""
    import json

    from yoloforge.core.rundir import RunDir
    from yoloforge.ray_app.stages.base import RunState
    from yoloforge.ray_app.stages.intake import stage_intake

    try:
        stage_intake(RunState(spec))
    except YoloforgeError as err:
        return f"error: {err.message}"
    run = RunDir(spec.run_dir)
    report = run.read_dataset_report()
    clean = run.clean_dir()
    return {"run_dir": str(run.path.relative_to(world["root"])),
            "model": json.loads(run.model_info.read_text())["architecture"], "task": report["task"],
            "splits": {k: v.get("images_clean") for k, v in report["splits"].items()},
            "problems": sorted((p["code"], p["severity"]) for p in report["problems"]),
            "val": sorted(p.name for p in (clean / "images" / "val").glob("*")) if clean else None}


def observe_searcher(spec: JobSpec, world: dict[str, Path]) -> Any:
    from yoloforge.ray_app.search.seeding import build_searcher

    searcher = build_searcher(spec, "detect", nc=3, n_train=64)
    ga = searcher.ga
    return {"pop": ga.pop_size, "n_obj": ga.n_obj, "seed": ga.seed, "generations": ga.max_generations,
            "stagnation": ga.stagnation, "time_budget_s": ga.time_budget_s, "space": ga.space.to_json(),
            "first_generation": ga.ask(), "targets": searcher.minimums}


def observe_trial(spec: JobSpec, world: dict[str, Path]) -> Any:
    from yoloforge.ray_app.search.seeding import trial_context

    return dataclasses.asdict(trial_context(spec, "detect", "data.yaml", spec.model, latency_ms={}))


def observe_scheduler(spec: JobSpec, world: dict[str, Path]) -> Any:
    from yoloforge.ray_app.search.fidelity import rungs

    return rungs(spec)


def observe_ray(spec: JobSpec, world: dict[str, Path]) -> Any:
    from yoloforge.ray_app.ray_session import init_options
    from yoloforge.ray_app.search.tune_io import trial_resources

    return {"trial": trial_resources(spec), "init": init_options(spec.resources.address, spec.resources.dashboard)}


def observe_engines(spec: JobSpec, world: dict[str, Path]) -> Any:
    from yoloforge.ray_app.benchmark.plan import engine_plan, engine_targets

    plan = engine_plan(spec, 128, "cpu")
    return {**dataclasses.asdict(plan), "configs": [c.key for c in plan.configs],
            "targets": engine_targets(spec, "detect").__dict__}


def observe_device(spec: JobSpec, world: dict[str, Path]) -> Any:
    from yoloforge.ray_app.benchmark.plan import resolve_device

    try:
        return resolve_device(spec.targets.device)
    except YoloforgeError as err:
        return f"error: {err.message}"


def observe_preview(spec: JobSpec, served_run: Path) -> Any:
    """What the preview is started with (host, port, Serve's options), read from the run as `yoloforge preview`
    reads it, and whether `yoloforge run` starts it."""
    from yoloforge.core.rundir import RunDir
    from yoloforge.ray_app.stages.base import RunState
    from yoloforge.ray_app.stages.preview import STAGE, preview_options

    dump_job(spec, RunDir(served_run).job)
    return {"options": preview_options(RunState.open(served_run)), "runs": STAGE.enabled(RunState(spec))}


def observe_export(spec: JobSpec, served_run: Path) -> Any:
    """What the bundle's server is written with and built for, read from the run as `yoloforge export` reads it
    (the files those settings reach are tests/test_gateway.py's and tests/test_edge_bundle.py's)."""
    from yoloforge.core.rundir import RunDir
    from yoloforge.ray_app.stages.base import RunState

    run = RunDir(served_run)
    dump_job(spec, run.job)
    export = RunState.open(run.path).spec.export
    return {**dataclasses.asdict(export.server()), "platform": export.target_platform().name}


OBSERVERS: dict[str, Callable[[JobSpec, Any], Any]] = {
    "intake": observe_intake, "searcher": observe_searcher, "trial": observe_trial, "ray": observe_ray,
    "scheduler": observe_scheduler,
    "engines": observe_engines, "device": observe_device, "preview": observe_preview, "export": observe_export}


def job(world: dict[str, Path], fields: dict[str, Any]) -> JobSpec:
    raw: dict[str, Any] = {"name": "r", "model": "yolo11n.yaml", "task": "detect", "data": {"path": "shapes"},
                           "runs_dir": str(world["root"] / "runs"), "search": {"imgsz": 64},
                           "resources": {"dashboard": True}}
    for path, value in fields.items():
        raw = with_field(raw, path, value)
    data = raw["data"]["path"]
    raw = with_field(raw, "data.path", str(world.get(data, data)))
    raw["model"] = str(world.get(raw["model"], raw["model"]))
    if not Path(raw["runs_dir"]).is_absolute():
        raw["runs_dir"] = str(world["root"] / raw["runs_dir"])
    return parse_job(raw)


# --- the tests -------------------------------------------------------------------------------------------------


def test_the_table_names_every_field_of_the_schema_once():
    fields = set(leaf_fields())
    assert not set(CASES) & set(EXCEPTIONS)
    assert set(CASES) | set(EXCEPTIONS) == fields, (
        f"without a row: {sorted(fields - set(CASES) - set(EXCEPTIONS))}; "
        f"not in the schema: {sorted((set(CASES) | set(EXCEPTIONS)) - fields)}")


@pytest.mark.parametrize("path", sorted(p for p, c in CASES.items() if c.observe not in ("preview", "export")))
def test_changing_a_field_changes_what_it_names(path, world):
    case = CASES[path]
    observe = OBSERVERS[case.observe]
    before = observe(job(world, case.base), world)
    after = observe(job(world, {**case.base, case.at or path: case.changed}), world)
    assert before != after, f"{path}: {case.changed!r} changed nothing the stages use ({before})"


@pytest.fixture(scope="module")
def served_copy(tmp_path_factory, served_run) -> Path:
    """The suite's shared served run, copied: each case writes its job.yaml into it."""
    import shutil

    return Path(shutil.copytree(served_run, tmp_path_factory.mktemp("served") / served_run.name))


@pytest.mark.parametrize("path", sorted(p for p, c in CASES.items() if c.observe in ("preview", "export")))
def test_changing_a_serving_field_changes_what_its_server_is_given(path, world, served_copy):
    served_run = served_copy
    from yoloforge.core.rundir import RunDir
    from yoloforge.ray_app.spec import load_run_job

    case = CASES[path]
    observe = OBSERVERS[case.observe]
    raw = load_run_job(RunDir(served_run)).model_dump(mode="json")
    for field, value in case.base.items():
        raw = with_field(raw, field, value)
    before = observe(parse_job(raw), served_run)
    after = observe(parse_job(with_field(raw, case.at or path, case.changed)), served_run)
    assert before != after, f"{path}: {case.changed!r} changed nothing the server is given ({before})"
