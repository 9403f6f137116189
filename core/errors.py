"""User-facing errors: what is wrong, where, and how to fix it.

The CLI prints these as a message, never a traceback. Anything else that escapes is a bug.
"""

from __future__ import annotations


class YoloforgeError(Exception):
    """An error caused by the user's input or environment, with a suggested fix."""

    def __init__(self, message: str, *, where: str | None = None, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.fix = fix

    def __str__(self) -> str:
        parts = [f"{self.where}: {self.message}" if self.where else self.message]
        if self.fix:
            parts.append(f"How to fix: {self.fix}")
        return "\n".join(parts)


class SpecError(YoloforgeError):
    """The job spec (job.yaml or flags) is invalid."""


class ModelError(YoloforgeError):
    """The model cannot be found, downloaded, loaded or does not fit the job."""


class OfflineError(ModelError):
    """A download was needed but the network is unreachable."""


class DatasetError(YoloforgeError):
    """The dataset cannot be read at all (layout, data.yaml); per-file problems go to the report instead."""
