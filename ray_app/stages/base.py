"""What a stage is, and the state the stages of one run hand to each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError
from yoloforge.core.errors import SpecError
from yoloforge.core.rundir import RunDir
from yoloforge.engines.selection import Selection
from yoloforge.ray_app.spec import JobSpec, format_validation_error, load_run_job
from yoloforge.ray_app.stages.freshness import Verdict

if TYPE_CHECKING:
    from yoloforge.ray_app.search.tables import SearchOutcome


@dataclass
class SearchChoices:
    """How the user answers the question after a search; flags make it non-interactive."""

    interactive: bool = False
    more_generations: int = 0  # without a terminal: continue this many generations once if the target is unmet


@dataclass
class RunState:
    """One run in progress: the job (read once; a stage that changes it, e.g. intake filling in the task, replaces
    it here), its directory, and what the finished stages produced. Every stage_* function takes it."""

    spec: JobSpec
    run: RunDir = field(default=None)  # type: ignore[assignment]  # the spec's run_dir unless given
    choices: SearchChoices = field(default_factory=SearchChoices)
    resuming: bool = False  # `yoloforge resume`: intake's outputs are kept whenever they are complete
    model_path: str | None = None  # set by intake
    data: str | None = None  # the clean dataset training is given, set by intake
    outcome: SearchOutcome | None = None
    selection: Selection | None = None
    stopped: bool = False  # a stage ended the run early (e.g. no trial produced weights)

    def __post_init__(self) -> None:
        if self.run is None:
            self.run = RunDir(self.spec.run_dir)

    @classmethod
    def open(cls, run_dir: Path) -> RunState:
        """An existing run directory, its job.yaml read (for the commands that take RUN_DIR)."""
        run = RunDir.open(run_dir)
        return cls(load_run_job(run), run)

    def override(self, section: str, **values: Any) -> None:
        """A command's flags over the job's settings (e.g. `export --max-batch`), in memory: job.yaml is not
        rewritten. None leaves a setting as the job has it."""
        given = {k: v for k, v in values.items() if v is not None}
        if given:
            part = getattr(self.spec, section)
            try:
                changed = part.model_validate({**part.model_dump(), **given})
            except ValidationError as err:  # a flag's value the setting it overrides does not take
                problems = format_validation_error(err, "").splitlines()[1:]
                raise SpecError(f"the command's options for {section}: are not valid:\n" + "\n".join(problems),
                                fix="see the command's --help for the values each option takes") from None
            self.spec = self.spec.model_copy(update={section: changed})

    @property
    def task(self) -> str:
        return self.spec.task or "detect"


class Stage(Protocol):
    """One step of the pipeline. The pipeline asks each stage in order for its inputs, compares them with what the
    stage last finished on (freshness.verdict), lets the stage keep its outputs, else runs it and records its
    inputs when it finished."""

    name: str

    def enabled(self, state: RunState) -> bool:
        """Whether the job uses this stage at all (e.g. the preview is optional)."""
        ...

    def inputs(self, state: RunState) -> dict[str, Any] | None:
        """What the stage's outputs depend on (fingerprinted); None when it keeps nothing between runs."""
        ...

    def keep(self, state: RunState, verdict: Verdict) -> bool:
        """Keep the outputs already there (load them into state, say so) instead of running; never called
        for a forced stage."""
        ...

    def run(self, state: RunState, verdict: Verdict) -> bool:
        """Run the stage; True when it finished (its inputs are then recorded)."""
        ...
