"""JobSpec: everything a run needs, validated by pydantic, loaded from job.yaml.

Relative paths in a job.yaml are relative to the file itself, so a job folder can be moved as a whole.
Over 300 lines on purpose: the whole schema in one file, since `yoloforge init`, the JSON schema and the
validation messages all come from it.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from yoloforge.core import atomic
from yoloforge.core.errors import SpecError
from yoloforge.core.rundir import RunDir
from yoloforge.ga.space import SearchSpace
from yoloforge.ray_app.search.hyperparameters import yolo_space
from yoloforge.serving.bundle import ServerSettings

Task = Literal["detect", "segment", "classify"]
MetricName = Literal[
    "mAP50", "mAP50-95", "precision", "recall", "mask_mAP50", "mask_mAP50-95", "top1", "top5"
]
EngineName = Literal["pytorch", "onnxruntime", "openvino", "tensorrt"]
Precision = Literal["fp32", "fp16", "int8"]
ComputeCost = Literal["latency_ms", "memory_mb", "gflops", "params_m"]

METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "detect": ("mAP50", "mAP50-95", "precision", "recall"),
    "segment": ("mAP50", "mAP50-95", "precision", "recall", "mask_mAP50", "mask_mAP50-95"),
    "classify": ("top1", "top5"),
}
DEFAULT_FITNESS: dict[str, dict[str, float]] = {
    "detect": {"mAP50": 0.1, "mAP50-95": 0.9},
    "segment": {"mask_mAP50": 0.1, "mask_mAP50-95": 0.9},
    "classify": {"top1": 0.9, "top5": 0.1},
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|\d+(,\d+)*)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataSpec(_Strict):
    """Where the dataset is and how intake may repair it."""

    path: str = Field(description="Dataset folder, .zip, or data.yaml file")
    val_split: float | None = Field(
        None, gt=0, lt=0.9, description="If the dataset has no val split, move this fraction of train to val"
    )
    split_seed: int = Field(0, description="Seed of that split, so it is the same on every run")
    max_bad_fraction: float = Field(
        0.2, ge=0, le=1, description="Stop when more than this fraction of a split's images had to be quarantined"
    )
    allow_name_mismatch: bool = Field(
        False, description="Go on when the dataset's class names are the model's in another order"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


class Targets(_Strict):
    """What the user needs; the run stops searching once every target is met."""

    metrics: dict[MetricName, float] = Field(
        default_factory=dict, description="Minimum validation metrics, e.g. {mAP50-95: 0.6, precision: 0.8}"
    )
    fps: float | None = Field(None, gt=0, description="Minimum throughput in images per second")
    p99_latency_ms: float | None = Field(None, gt=0, description="Maximum p99 latency per request")
    max_memory_mb: float | None = Field(None, gt=0, description="Maximum memory of the inference process")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N, or GPU indices such as 0,1")
    max_accuracy_drop: float = Field(
        0.01, ge=0, le=1, description="Largest mAP50-95 (top1 for classify) an engine may lose vs PyTorch FP32"
    )

    @field_validator("metrics")
    @classmethod
    def _fractions(cls, metrics: dict[str, float]) -> dict[str, float]:
        for name, value in metrics.items():
            if not 0 <= value <= 1:
                raise ValueError(f"target {name}={value} must be a fraction between 0 and 1 (0.6 means 60%)")
        return metrics

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        if not _DEVICE_RE.match(device):
            raise ValueError(f"device '{device}' is not one of: auto, cpu, cuda, cuda:N, or indices like 0,1")
        return device


class GeneOverride(_Strict):
    """Narrow, widen or fix one gene of the search space."""

    low: float | None = None
    high: float | None = None
    value: float | str | None = Field(None, description="Fix the gene to this value (it is not searched)")
    choices: list[float | str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> GeneOverride:
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.value is not None and (self.low is not None or self.high is not None or self.choices):
            raise ValueError("give either value (fixed) or low/high/choices, not both")
        return self


def _training_space(space: dict[str, GeneOverride]) -> SearchSpace:
    # imgsz and batch are searched only when the job lists them; otherwise search.imgsz/batch hold
    base = yolo_space(include_imgsz="imgsz" in space, include_batch="batch" in space)
    return base.with_overrides({name: o.model_dump() for name, o in space.items()})


class SearchSpec(_Strict):
    """Budget and objective of the hyperparameter search."""

    population: int = Field(8, ge=2, le=1024, description="Trials per generation")
    generations: int = Field(5, ge=1, le=1000)
    epochs: int = Field(10, ge=1, le=10000, description="Training epochs per trial")
    imgsz: int = Field(640, ge=32, le=4096, description="Training and inference image size (multiple of 32)")
    batch: int = Field(16, ge=1, le=1024)
    time_budget_min: float | None = Field(None, gt=0, description="Stop the search after this many minutes")
    stagnation: int = Field(3, ge=1, description="Stop after this many generations without improvement")
    seed: int = 0
    mode: Literal["scalar", "pareto"] = Field(
        "scalar", description="scalar: weighted fitness; pareto: NSGA-II front of accuracy vs compute"
    )
    fitness: dict[MetricName, float] | None = Field(
        None, description="Metric weights; default 0.1*mAP50 + 0.9*mAP50-95 (top1/top5 for classify)"
    )
    compute_penalty: dict[ComputeCost, float] = Field(
        default_factory=dict, description="Fitness is lowered by weight * cost, e.g. {latency_ms: 0.001}"
    )
    space: dict[str, GeneOverride] = Field(default_factory=dict, description="Per-gene overrides")
    initial: list[dict[str, float | str]] = Field(
        default_factory=list, description="Hyperparameters to evaluate first, e.g. the ones you use today")

    @field_validator("space")
    @classmethod
    def _known_genes(cls, space: dict[str, GeneOverride]) -> dict[str, GeneOverride]:
        _training_space(space)  # raises ValueError naming the gene and the allowed ones
        return space

    def search_space(self) -> SearchSpace:
        """The GA's search space: the default YOLO genes with this job's overrides applied."""
        return _training_space(self.space)

    @field_validator("imgsz")
    @classmethod
    def _stride(cls, imgsz: int) -> int:
        if imgsz % 32:
            nearest = max(32, round(imgsz / 32) * 32)
            raise ValueError(f"imgsz {imgsz} is not a multiple of 32 (the model's stride); try {nearest}")
        return imgsz


class Resources(_Strict):
    """What one trial gets from Ray; gpu below 1 packs several trials on one GPU."""

    cpu: float = Field(1, gt=0)
    gpu: float = Field(0, ge=0, le=64, description="GPUs per trial; 0.25 lets four trials share one GPU")
    address: str | None = Field(None, description="Ray cluster address (ray://host:10001 or auto); none = local")
    dashboard: bool = Field(True, description="Start the Ray dashboard with a local Ray (its URL is printed)")

    @field_validator("gpu")
    @classmethod
    def _fraction(cls, gpu: float) -> float:
        if gpu > 1 and gpu != int(gpu):
            raise ValueError(f"gpu {gpu}: above 1 it must be a whole number of GPUs")
        return gpu


class EngineSpec(_Strict):
    """Which inference configurations the engine stage benchmarks."""

    backends: list[EngineName] = Field(default_factory=lambda: ["pytorch", "onnxruntime", "openvino", "tensorrt"])
    precisions: list[Precision] = Field(default_factory=lambda: ["fp32", "fp16", "int8"])
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 8])
    threads: list[int] | None = Field(None, description="CPU thread counts to try; none = all cores")
    imgsz: list[int] | None = Field(None, description="Input sizes to try; none = the size the model was trained at")
    max_configs: int = Field(24, ge=1, le=10_000, description="Measure every config up to this many; above it "
                             "the GA searches the space with this many measurements")
    min_time_s: float = Field(2.0, gt=0, le=600, description="Timed seconds per config (after warm-up)")
    val_images: int = Field(64, ge=1, description="Validation images scored per config")
    bundle_candidates: int = Field(3, ge=0, le=16, description="On a CPU, the fastest configs that meet the "
                                   "targets are also measured through the bundle's Go server (about 10 s each) and "
                                   "ranked by what it delivers; 0 ranks by the engine alone")

    @field_validator("imgsz")
    @classmethod
    def _imgsz_stride(cls, sizes: list[int] | None) -> list[int] | None:
        for size in sizes or []:
            if size < 32 or size % 32:
                raise ValueError(f"engines.imgsz {size} is not a multiple of 32 (the model's stride); "
                                 f"try {max(32, round(size / 32) * 32)}")
        return sizes

    @field_validator("batch_sizes", "threads")
    @classmethod
    def _positive(cls, values: list[int] | None) -> list[int] | None:
        if values is not None and (not values or any(v < 1 for v in values)):
            raise ValueError("give at least one value, each 1 or more")
        return values


class PreviewSpec(_Strict):
    """The Ray Serve preview of the selected engine (`yoloforge preview RUN_DIR`)."""

    enabled: bool = Field(False, description="Start the preview during `yoloforge run` (before export)")
    host: str = Field("127.0.0.1", description="Address to listen on (0.0.0.0 to accept other machines)")
    port: int = Field(8000, ge=1, le=65535)
    replicas: int = Field(1, ge=1, le=1024, description="Model replicas (the minimum when autoscaling)")
    max_replicas: int | None = Field(None, ge=1, le=1024, description="Autoscale on queue length up to this many")
    target_ongoing_requests: float = Field(4, gt=0, description="Autoscaling: queued+running requests per replica")
    gpu: float = Field(0, ge=0, le=1, description="GPU share per model replica (0.25: four replicas per GPU)")
    cpu: float = Field(1, gt=0, description="CPUs per model replica")
    max_batch_size: int | None = Field(None, ge=1, le=256,
                                       description="Dynamic batching limit; default: the selected engine's batch")
    batch_wait_ms: float = Field(5, ge=0, le=1000, description="How long a batch waits to fill")
    concurrent_batches: int = Field(2, ge=1, le=16, description="Batches run at once, so the next one is prepared "
                                    "while the engine runs one")
    max_queued_requests: int = Field(64, ge=1, description="Queue bound; beyond it requests get 503 + Retry-After")
    max_body_mb: float = Field(10, gt=0, le=512, description="Largest accepted request body")

    @model_validator(mode="after")
    def _replica_range(self) -> PreviewSpec:
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) is below replicas ({self.replicas})")
        return self


class ExportSpec(_Strict):
    """The deployable bundle's Go server (`yoloforge export RUN_DIR`); the engines stage ranks configurations
    through a bundle made with these same settings."""

    build_image: bool = Field(False, description="Also build the Docker image at the end of `yoloforge run` "
                              "(needs a Docker engine)")
    port: int = Field(8080, ge=1, le=65535, description="The API's port: config.yaml's listen address, the image's "
                      "EXPOSE and docker-compose's published port")
    max_batch: int | None = Field(None, ge=1, le=256, description="Dynamic batching limit of the server; default: "
                                  "the selected engine's batch, at least 8")
    max_wait_ms: float = Field(5, ge=0, le=1000, description="How long a batch waits to fill")
    max_queue: int = Field(64, ge=1, le=100_000, description="Queue bound; beyond it requests get 503 + Retry-After")
    concurrent_batches: int = Field(2, ge=1, le=16, description="Engine workers, so the next batch is prepared "
                                    "while the engine runs one (the preview's rule)")
    max_body_mb: float = Field(10, gt=0, le=512, description="Largest accepted request body")
    cache_ttl_s: int = Field(3600, ge=0, description="Seconds an answer stays in the Redis cache; 0 turns the cache "
                             "off")

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, value: Any) -> Any:
        """`out` and `variant` were written into every job.yaml before anything read them: their old defaults are
        accepted (and dropped) so existing run directories still load; any other value is explained."""
        if not isinstance(value, dict):
            return value
        value = dict(value)
        for key, default, instead in (("out", "bundle", "`yoloforge export RUN_DIR --out DIR`"),
                                      ("variant", "auto", "the bundle follows the selected engine's device "
                                                          "(targets.device)")):
            if key in value:
                if value[key] != default:
                    raise ValueError(f"export.{key} is no longer a setting: use {instead}")
                del value[key]
        return value

    def server(self) -> ServerSettings:
        """The settings the bundle's server is written with (serving/bundle/)."""
        return ServerSettings(port=self.port, max_batch_size=self.max_batch, batch_wait_ms=self.max_wait_ms,
                              max_queue=self.max_queue, concurrent_batches=self.concurrent_batches,
                              max_body_mb=self.max_body_mb, cache_ttl_s=self.cache_ttl_s)


class JobSpec(_Strict):
    """One yoloforge run: model + data + what the user needs."""

    name: str = Field("run", description="Run name; outputs go to <runs_dir>/<name>/")
    model: str = Field(
        "yolo11n.pt", description="Official name (yolo11n.pt), a custom .pt path, or a .yaml to train from scratch"
    )
    task: Task | None = Field(None, description="detect, segment or classify; default: the model's task")
    data: DataSpec
    targets: Targets = Field(default_factory=Targets)
    search: SearchSpec = Field(default_factory=SearchSpec)
    resources: Resources = Field(default_factory=Resources)
    engines: EngineSpec = Field(default_factory=EngineSpec)
    export: ExportSpec = Field(default_factory=ExportSpec)
    preview: PreviewSpec = Field(default_factory=PreviewSpec)
    runs_dir: str = Field("runs", description="Folder that holds run directories")

    @field_validator("preview", mode="before")
    @classmethod
    def _preview_flag(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value  # `preview: true` is short for enabled

    @field_validator("name")
    @classmethod
    def _slug(cls, name: str) -> str:
        if not _NAME_RE.match(name):
            raise ValueError(f"name '{name}' must be 1-64 letters, digits, '.', '_' or '-' (it names a folder)")
        return name

    @model_validator(mode="after")
    def _metrics_fit_task(self) -> JobSpec:
        if self.task is None:
            return self
        allowed = METRICS_BY_TASK[self.task]
        for where, names in (("targets.metrics", self.targets.metrics), ("search.fitness", self.search.fitness or {})):
            wrong = [n for n in names if n not in allowed]
            if wrong:
                raise ValueError(
                    f"{where}: {', '.join(wrong)} is not measured for task {self.task}; allowed: {', '.join(allowed)}"
                )
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    def fitness_weights(self, task: str) -> dict[str, float]:
        return dict(self.search.fitness or DEFAULT_FITNESS[task])


# --- loading, saving, error messages -------------------------------------------------------------------


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model that the error location points into (for 'unknown field' messages)."""
    model: Any = JobSpec
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            break
        annotation = model.model_fields[part].annotation
        candidates = [annotation, *get_args(annotation)]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line per problem: the dotted field, what is wrong, the allowed values or keys."""
    lines = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p in ("function-after", "function-before")))
        field = ".".join(str(p) for p in loc) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            msg = "unknown field" + (f" (did you mean '{close[0]}'?)" if close else "")
            msg += f"; allowed here: {', '.join(allowed)}"
        elif e["type"] == "missing":
            msg = "is required"
        lines.append(f"  - {field}: {msg}")
    return f"{source} is not a valid job spec:\n" + "\n".join(lines)


def parse_job(data: Any, source: str = "job spec") -> JobSpec:
    if not isinstance(data, dict):
        raise SpecError(f"{source} must be a mapping of fields (name:, model:, data:, ...), not {type(data).__name__}",
                        fix="run `yoloforge init` for a commented example")
    try:
        return JobSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_validation_error(err, source),
                        fix="see `yoloforge init --schema` for every field and its allowed values") from None


def load_job(path: str | Path) -> JobSpec:
    """Read and validate a job.yaml; relative paths in it become relative to its folder."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"job file {path} does not exist", fix="create one with `yoloforge init` or check the path")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise SpecError(f"YAML syntax error: {err.problem}", where=where,
                        fix="check indentation and quoting on that line") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise SpecError(f"cannot read YAML: {err}", where=str(path)) from None
    spec = parse_job(data, str(path))
    return resolve_paths(spec, path.parent)


def load_run_job(run: RunDir) -> JobSpec:
    """A run directory's own job.yaml, placed where the run directory is now: a run moved (or copied) elsewhere
    works on itself, never on the folder it was written in."""
    spec = load_job(run.job)
    return spec.model_copy(update={"runs_dir": str(run.path.resolve().parent), "name": run.path.resolve().name})


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.startswith(".")


def resolve_paths(spec: JobSpec, base: Path) -> JobSpec:
    """Make data, model (when it is a file) and runs_dir absolute relative to base."""
    base = base.resolve()
    update: dict[str, Any] = {}
    data_path = Path(spec.data.path).expanduser()
    if not data_path.is_absolute():
        update["data"] = spec.data.model_copy(update={"path": os.path.normpath(base / data_path)})
    model = Path(spec.model).expanduser()
    if not model.is_absolute() and (_looks_like_path(spec.model) or (base / model).is_file()):
        update["model"] = os.path.normpath(base / model)
    runs = Path(spec.runs_dir).expanduser()
    if not runs.is_absolute():
        update["runs_dir"] = os.path.normpath(base / runs)
    return spec.model_copy(update=update)


def dump_job(spec: JobSpec, path: str | Path) -> Path:
    path = Path(path)
    body = yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    atomic.write_text(path, "# resolved by yoloforge: every default filled in\n" + body)
    return path


def json_schema() -> dict[str, Any]:
    return JobSpec.model_json_schema()

