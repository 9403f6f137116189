"""User-facing errors: what is wrong, where, and how to fix it, and the exit code each one ends a command with.

The CLI prints these as a message, never a traceback. Anything else that escapes is a bug.
"""

from __future__ import annotations

# The one exit-code contract of every command (the CLI's help and README print EXIT_CODES).
EXIT_OK = 0
EXIT_INPUT_HAS_ERRORS = 1  # the input was read and has errors (a dataset that is not usable)
EXIT_CANNOT_RUN = 2  # the command could not run as asked (bad arguments, a missing file, a bad job spec)
EXIT_BUG = 3  # an internal error: a bug in yoloforge
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_CODES = (f"Exit codes: {EXIT_OK} ok; {EXIT_INPUT_HAS_ERRORS} the input was read and has errors (a dataset "
              f"that is not usable); {EXIT_CANNOT_RUN} the command could not run as asked (bad arguments, a missing "
              f"file, a bad job spec); {EXIT_BUG} a bug (internal error); {EXIT_INTERRUPTED} interrupted.")


class YoloforgeError(Exception):
    """An error caused by the user's input or environment, with a suggested fix."""

    exit_code = EXIT_CANNOT_RUN

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
    """The dataset was found but is not usable (its layout, data.yaml, or errors in the report)."""

    exit_code = EXIT_INPUT_HAS_ERRORS


class MissingInput(YoloforgeError):
    """A file or folder the command was given does not exist."""


class DiskFull(YoloforgeError):
    """A write failed because the disk (or the user's quota) is full."""


def disk_full(err: BaseException) -> DiskFull | None:
    """The DiskFull an exception comes down to, or None: Ray and Tune wrap an OSError of a worker or of their own
    bookkeeping in their own errors, so the whole chain of causes is looked at."""
    import errno

    seen: BaseException | None = err
    while seen is not None:
        full = isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT)
        if full or "No space left on device" in str(seen) or "Disk quota exceeded" in str(seen):
            where = getattr(seen, "filename", None)
            return DiskFull("the disk is full (no space left on device)", where=str(where) if where else None,
                            fix="free space on that disk (`df -h` shows it) or point runs_dir at a larger one, then "
                                "continue with `yoloforge resume RUN_DIR`: finished stages and trials are kept")
        seen = seen.__cause__ or seen.__context__
    return None
