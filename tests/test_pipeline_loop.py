"""The pipeline's loop and resume (ray_app/pipeline.py over stages/freshness.py), every path in milliseconds.

The stages here are test doubles of the Stage protocol that record what the loop asks of them: they stand in for
no part a user runs, only for the five real stages, whose own inputs() are tested in test_stage_inputs.py. The
freshness rules are the real ones, over a real run directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from yoloforge.core import atomic
from yoloforge.core.errors import YoloforgeError
from yoloforge.ray_app import pipeline
from yoloforge.ray_app.spec import dump_job, parse_job
from yoloforge.ray_app.stages.base import RunState


@dataclass
class RecordingStage:
    """A stage whose inputs, keep answer and run result the test sets; it records each call the loop makes."""

    name: str
    inputs_value: dict[str, Any] | None = field(default_factory=lambda: {"v": 1})
    keeps: bool = True  # whether it keeps its outputs when its inputs are current
    finishes: bool = True
    stops: bool = False
    fails: bool = False
    is_enabled: bool = True
    calls: list[tuple[str, str]] = field(default_factory=list)

    def enabled(self, state: RunState) -> bool:
        return self.is_enabled

    def inputs(self, state: RunState) -> dict[str, Any] | None:
        return self.inputs_value

    def keep(self, state: RunState, verdict: str) -> bool:
        self.calls.append(("keep", verdict))
        return self.keeps and verdict == "current"

    def run(self, state: RunState, verdict: str) -> bool:
        self.calls.append(("run", verdict))
        if self.fails:
            raise KeyboardInterrupt  # a kill or Ctrl-C in the middle of the stage
        state.stopped = self.stops
        return self.finishes


NAMES = ("first", "second", "third")


def _stages(**changes: dict[str, Any]) -> list[RecordingStage]:
    return [RecordingStage(name, **changes.get(name, {})) for name in NAMES]


def _state(tmp_path: Path) -> RunState:
    spec = parse_job({"name": "loop", "data": {"path": str(tmp_path / "data")}, "runs_dir": str(tmp_path)})
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    dump_job(spec, spec.run_dir / "job.yaml")
    return RunState(spec)


def _run(tmp_path: Path, stages: list[RecordingStage], **kwargs: Any) -> RunState:
    return pipeline.run_stages(_state(tmp_path), stages[-1].name if "until" not in kwargs else kwargs.pop("until"),
                               stages=stages, **kwargs)


def _verbs(stages: list[RecordingStage]) -> list[list[tuple[str, str]]]:
    return [s.calls for s in stages]


def test_a_new_run_runs_every_stage_once_without_asking_to_keep(tmp_path):
    stages = _stages()
    _run(tmp_path, stages)
    assert _verbs(stages) == [[("keep", "new"), ("run", "new")]] * 3


def test_a_second_run_on_the_same_inputs_keeps_every_stage(tmp_path):
    _run(tmp_path, _stages())
    again = _stages()
    _run(tmp_path, again)
    assert _verbs(again) == [[("keep", "current")]] * 3


def test_a_changed_input_runs_that_stage_and_the_others_keep_theirs(tmp_path):
    _run(tmp_path, _stages())
    again = _stages(second={"inputs_value": {"v": 2}})
    _run(tmp_path, again)
    assert _verbs(again) == [[("keep", "current")], [("keep", "changed"), ("run", "changed")], [("keep", "current")]]


def test_from_a_stage_forces_it_and_every_later_one_without_asking_to_keep(tmp_path):
    _run(tmp_path, _stages())
    again = _stages()
    _run(tmp_path, again, from_stage="second")
    assert _verbs(again) == [[("keep", "current")], [("run", "forced")], [("run", "forced")]]


def test_a_forced_stage_interrupted_is_still_forced_on_the_next_run(tmp_path):
    _run(tmp_path, _stages())
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, _stages(second={"fails": True}), from_stage="second")
    again = _stages()
    _run(tmp_path, again)
    assert _verbs(again) == [[("keep", "current")], [("run", "forced")], [("run", "forced")]]


def test_a_stage_interrupted_on_its_first_run_runs_again_and_the_ones_before_it_are_kept(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, _stages(second={"fails": True}))
    again = _stages()
    _run(tmp_path, again)
    assert _verbs(again) == [[("keep", "current")], [("keep", "new"), ("run", "new")], [("keep", "new"),
                                                                                      ("run", "new")]]


def test_a_stage_that_did_not_finish_is_not_recorded_and_runs_again(tmp_path):
    _run(tmp_path, _stages(first={"finishes": False}))
    again = _stages()
    _run(tmp_path, again)
    assert again[0].calls == [("keep", "new"), ("run", "new")]


def test_a_stage_that_refuses_to_keep_current_outputs_runs_again(tmp_path):
    # e.g. the export stage when its bundle's files are gone, though its inputs did not change
    _run(tmp_path, _stages())
    again = _stages(third={"keeps": False})
    _run(tmp_path, again)
    assert again[2].calls == [("keep", "current"), ("run", "current")]


def test_a_stage_that_stops_the_run_leaves_the_later_ones_alone(tmp_path):
    stages = _stages(second={"stops": True})
    state = _run(tmp_path, stages)
    assert state.stopped and stages[2].calls == []


def test_until_a_stage_runs_none_after_it(tmp_path):
    stages = _stages()
    _run(tmp_path, stages, until="second")
    assert stages[2].calls == []


def test_a_disabled_stage_is_neither_run_nor_recorded(tmp_path):
    _run(tmp_path, _stages(second={"is_enabled": False}))
    again = _stages()
    _run(tmp_path, again)
    assert again[1].calls == [("keep", "new"), ("run", "new")]


def test_a_stage_that_keeps_nothing_runs_every_time(tmp_path):
    # the preview: a check that the endpoint answers, with no outputs to keep
    _run(tmp_path, _stages(second={"inputs_value": None}))
    again = _stages(second={"inputs_value": None})
    _run(tmp_path, again)
    assert again[1].calls == [("keep", "new"), ("run", "new")]


def test_an_unknown_stage_name_is_explained_before_anything_runs(tmp_path):
    stages = _stages()
    with pytest.raises(YoloforgeError, match="unknown --from stage 'fourth'; stages: first, second, third"):
        _run(tmp_path, stages, from_stage="fourth")
    assert _verbs(stages) == [[]] * 3


def test_leftovers_of_a_killed_write_are_removed_before_the_stages_run(tmp_path):
    state = _state(tmp_path)
    leftover = state.run.path / f"{atomic.TEMP_PREFIX}selection.json"
    leftover.write_text("half a file")
    pipeline.run_stages(state, "third", stages=_stages())
    assert not leftover.exists()


def test_resume_reads_the_runs_job_and_tells_the_stages_it_is_resuming(tmp_path, monkeypatch):
    seen: list[bool] = []

    class ResumeAware(RecordingStage):
        def keep(self, state: RunState, verdict: str) -> bool:
            seen.append(state.resuming)
            return super().keep(state, verdict)

    state = _state(tmp_path)
    monkeypatch.setattr(pipeline, "STAGES", tuple(ResumeAware(name) for name in NAMES))
    monkeypatch.setattr(pipeline, "NAMES", NAMES)
    done = pipeline.resume_run(state.run.path)
    assert seen == [True, True, True] and done.spec.name == "loop" and done.run.path == state.run.path
