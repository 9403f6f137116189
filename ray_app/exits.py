"""How a yoloforge command ends: the exit-code contract of core/errors.py applied to what a command raised, and
the process's end without native teardown."""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from yoloforge.core.errors import EXIT_BUG, EXIT_INTERRUPTED, YoloforgeError, disk_full
from yoloforge.ray_app.console import console, print_error

F = TypeVar("F", bound=Callable[..., Any])
CRASH_LOG = Path.home() / ".cache" / "yoloforge" / "last-error.log"


def friendly(func: F) -> F:
    """User errors print as a message with a fix (exit 1 or 2, core/errors.py's contract); bugs print one line and
    a log path (exit 3)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except YoloforgeError as err:
            print_error(err)
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/yellow]")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as err:
            full = disk_full(err)
            if full is not None:
                print_error(full)
                raise typer.Exit(full.exit_code) from None
            CRASH_LOG.parent.mkdir(parents=True, exist_ok=True)
            CRASH_LOG.write_text(traceback.format_exc())
            console.print("[red]internal error[/red] ", end="")
            console.print(f"({type(err).__name__}: {err}). This is a bug in yoloforge; the traceback is in "
                          f"{CRASH_LOG}", markup=False)
            raise typer.Exit(EXIT_BUG) from None

    return wrapper  # type: ignore[return-value]


def end_process(code: int) -> None:
    """Run what Python registered for exit (Ray's shutdown, logging's flush, temporary files), flush the
    console, then end without interpreter teardown.

    A command that used Ray, ONNX Runtime, OpenVINO and torch in one process leaves native threads behind
    (Ray's gcs client io and grpc event-engine threads survive ray.shutdown()); C++ static destructors running
    at exit() race them, and `yoloforge demo` once died that way after printing its summary (exit 139). Ray ends
    its own worker processes with os._exit for the same reason. Every file yoloforge writes is closed by then."""
    import atexit
    import os

    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
