"""yoloforge from Python: `import yoloforge`.

    yoloforge.__version__                  the installed version (from the package's metadata: one source)
    yoloforge.load_job("job.yaml")         a validated JobSpec
    yoloforge.run(job, until="engines")    run the pipeline; returns a Run
    yoloforge.open_run("runs/<name>")      a run directory's results as typed objects (Run.trials, .selection, ...)
    yoloforge.GeneticAlgorithm             the search's GA on its own (ask/tell over a SearchSpace of Genes)
    yoloforge.synth_dataset(...)           a synthetic dataset of coloured shapes, to try things out

Importing yoloforge is cheap: the API's names are loaded when first used (every yoloforge.<layer> import runs
this file first)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("yoloforge")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_API = {
    "load_job": "yoloforge.runs", "run": "yoloforge.runs", "open_run": "yoloforge.runs", "Run": "yoloforge.runs",
    "Trial": "yoloforge.runs", "Selection": "yoloforge.runs", "EngineChoice": "yoloforge.runs",
    "Delivery": "yoloforge.runs", "JobSpec": "yoloforge.ray_app.spec", "YoloforgeError": "yoloforge.core.errors",
    "GeneticAlgorithm": "yoloforge.ga.algorithm", "SearchSpace": "yoloforge.ga.space", "Gene": "yoloforge.ga.space",
    "synth_dataset": "yoloforge.ray_app.intake.synth",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'yoloforge' has no attribute {name!r}")
