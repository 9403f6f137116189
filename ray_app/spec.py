"""JobSpec: everything a run needs, validated by pydantic, loaded from job.yaml. Its sections are
ray_app/spec_sections.py's; `yoloforge init`, the JSON schema and the validation messages all come from them.

Relative paths in a job.yaml are relative to the file itself, so a job folder can be moved as a whole.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from yoloforge.core import atomic
from yoloforge.core.errors import SpecError
from yoloforge.core.rundir import RunDir
from yoloforge.ray_app.spec_export import ExportSpec
from yoloforge.ray_app.spec_sections import (
    DEFAULT_FITNESS,
    METRICS_BY_TASK,
    NAME_RE,
    DataSpec,
    EngineSpec,
    PreviewSpec,
    Resources,
    SearchSpec,
    Strict,
    Targets,
    Task,
)

__all__ = ["METRICS_BY_TASK", "ExportSpec", "JobSpec", "Targets", "dump_job", "json_schema", "load_job",
           "load_run_job", "parse_job"]


class JobSpec(Strict):
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
        if not NAME_RE.match(name):
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

