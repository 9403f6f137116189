"""The stages of a run, in order. Each module declares its inputs (its fingerprint), when its outputs may be kept,
and its run (stages/base.py: Stage); freshness.py alone decides whether inputs changed. Adding a stage means
adding its module and its line here."""

from __future__ import annotations

from yoloforge.ray_app.stages import engines, export, intake, preview, search
from yoloforge.ray_app.stages.base import RunState, Stage

STAGES: tuple[Stage, ...] = (intake.STAGE, search.STAGE, engines.STAGE, preview.STAGE, export.STAGE)
NAMES: tuple[str, ...] = tuple(stage.name for stage in STAGES)

__all__ = ["NAMES", "STAGES", "RunState", "Stage"]
