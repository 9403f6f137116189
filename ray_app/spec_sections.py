"""The sections of job.yaml (data:, targets:, search:, resources:, engines:, preview:, export:), one pydantic
model each; ray_app/spec.py puts them together as JobSpec and loads it."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from yoloforge.ga.space import SearchSpace
from yoloforge.ray_app.search.hyperparameters import yolo_space

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
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|\d+(,\d+)*)$")


class Strict(BaseModel):
    # defaults are validated too, so a default reads as its type does when written back (5 as 5.0 for a float):
    # a job read back from its job.yaml then has the fingerprint it had when it ran
    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)


class DataSpec(Strict):
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


class Targets(Strict):
    """What the user needs; the run stops searching once every target is met."""

    metrics: dict[MetricName, float] = Field(
        default_factory=dict, description="Minimum validation metrics, e.g. {mAP50-95: 0.6, precision: 0.8}"
    )
    fps: float | None = Field(None, gt=0, description="Minimum throughput in images per second")
    p99_latency_ms: float | None = Field(None, gt=0, description="Maximum p99 latency per request")
    max_memory_mb: float | None = Field(None, gt=0, description="Maximum memory of the inference process")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N, or GPU indices such as 0,1")
    edge_device: Literal["rpi5", "orin-nano"] | None = Field(
        None, description="The edge board it will run on: its speed is estimated from published figures scaled by "
        "the model's GFLOPs (labelled so), the search's latency cost uses that estimate, and the engines stage says "
        "whether fps is in reach there. `targets.device` still says where yoloforge itself runs")
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


class GeneOverride(Strict):
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


class FidelitySpec(Strict):
    """Multi-fidelity: Ray Tune's ASHA under the GA (ray_app/search/fidelity.py): at each rung a trial below the
    top 1/reduction of those that reached it is stopped; its fitness there still informs the GA."""

    min_epochs: int = Field(ge=1, description="The first rung: epochs every trial trains before it can be stopped")
    reduction: int = Field(3, ge=2, description="Keep the top 1/reduction at each rung; rungs at min_epochs x "
                                                  "reduction^k below search.epochs")


class SearchSpec(Strict):
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
    fidelity: FidelitySpec | None = Field(
        None, description="Stop weak trials early (ASHA); none: every trial trains all its epochs")

    @model_validator(mode="after")
    def _rungs_fit(self) -> SearchSpec:
        if self.fidelity is not None:
            if self.fidelity.min_epochs >= self.epochs:
                raise ValueError(f"fidelity.min_epochs ({self.fidelity.min_epochs}) must be below search.epochs "
                                 f"({self.epochs}): a trial can only be stopped before its last epoch")
            if self.mode == "pareto":
                raise ValueError("fidelity ranks trials by their fitness alone; mode pareto has two objectives: "
                                 "drop fidelity or use mode scalar")
        return self

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


class Resources(Strict):
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


class EngineSpec(Strict):
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
    int8_budget_s: float = Field(120, ge=0, le=7200, description="Seconds per int8 backend (ONNX Runtime, "
                                 "OpenVINO) and input size to search for the quantisation recipe that keeps "
                                 "accuracy: calibration method, calibration images and the layers kept in float, "
                                 "chosen on half the validation images and checked on the other half; cached, so a "
                                 "re-run is free. 0: one fixed recipe (MinMax, 32 images)")
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


class PreviewSpec(Strict):
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
