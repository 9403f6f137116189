"""What a stage is, and the state the stages of one run hand to each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from yoloforge.core.rundir import RunDir
from yoloforge.ray_app.spec import JobSpec
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
    """One run in progress: the job, its directory, and what the finished stages produced."""

    spec: JobSpec
    choices: SearchChoices | None = None
    resuming: bool = False  # `yoloforge resume`: intake's outputs are kept whenever they are complete
    model_path: str | None = None  # set by intake
    data: str | None = None  # the clean dataset training is given, set by intake
    outcome: SearchOutcome | None = None
    selection: dict[str, Any] | None = None
    stopped: bool = False  # a stage ended the run early (e.g. no trial produced weights)
    notes: list[str] = field(default_factory=list)

    @property
    def run(self) -> RunDir:
        return RunDir(self.spec.run_dir)

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
