"""A search round's saved state, as Tune keeps it in the round's experiment folder: which files make it, whether
it can be restored, cut-short files set aside, the trials read back through Tune's own records
(ExperimentAnalysis), and the searcher's and search generator's state made to agree with those records before a
restore.

Tune saves its three state files together in a staging folder, then copies them into the experiment folder in the
background, one at a time. A driver killed mid-copy leaves them from different moments: Tune's trial list may
hold trials the searcher never heard of, or the searcher may wait on trials Tune never started. Either way the
generation never completes and every resume would end as interrupted; reconcile() repairs that.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ray import tune
from yoloforge.core import atomic
from yoloforge.core.rundir import RunDir
from yoloforge.ga.algorithm import GeneticAlgorithm
from yoloforge.ray_app.search.ray_searcher import GASearcher


def searcher_state_file(experiment: Path) -> Path | None:
    """The newest whole one. Tune names each session's file by its start time, so names sort chronologically;
    mtimes would not, since reconcile rewrites an older session's file before restoring. Tune copies
    it into the run directory itself, so a full disk can leave the newest cut short."""
    return next((p for p in sorted(experiment.glob("searcher-state-*.pkl"), reverse=True) if _whole(p)), None)


# the files Tune restores a round from: its experiment state, the search generator's and the searcher's
STATE_FILES = ("experiment_state-*.json", "search_gen_state-*.json", "searcher-state-*.pkl")


def restorable(experiment: Path) -> bool:
    """Tune can restore this round: every kind of its state files is there (after set_aside_unreadable_state,
    all whole). Without one of them Tune's restore starts from nothing."""
    return tune.Tuner.can_restore(str(experiment.resolve())) and all(
        any(experiment.glob(pattern)) for pattern in STATE_FILES)


def _whole(path: Path) -> bool:
    """A state file that was written to its end (a full disk or a kill mid-write cuts one short)."""
    import pickletools

    data = path.read_bytes()
    try:
        if path.name.startswith("search_gen_state-"):  # a pickle despite its name: walk it, build nothing
            for _ in pickletools.genops(data):
                pass
        else:  # Tune's experiment state, and our searcher's (JSON despite its name)
            json.loads(data)
    except Exception:  # pickletools raises ValueError, or others on arbitrary truncations
        return False
    return True


def set_aside_unreadable_state(experiment: Path) -> list[Path]:
    """Tune writes its experiment state in place: a full disk or a kill mid-write leaves the newest file
    truncated, and Tune's restore then starts from nothing. Unreadable state files are moved to
    `unreadable/` (kept, never deleted), so Tune and the searcher restore from the last whole ones."""
    moved = []
    for path in sorted(p for pattern in STATE_FILES for p in experiment.glob(pattern)):
        if not _whole(path):
            aside = experiment / "unreadable" / path.name
            aside.parent.mkdir(exist_ok=True)
            path.rename(aside)
            moved.append(aside)
    return moved


def reconcile(experiment: Path) -> None:
    """Make the searcher's and the search generator's saved state agree with Tune's trial list, the truth about
    what ran: trials Tune finished or failed are settled; trials Tune started that the searcher's state predates
    are placed in their generation (adopted); trials the searcher handed out that Tune never recorded are handed
    out again; and the generator counts the trials Tune has, so it suggests exactly the ones still missing.
    Unfinished trials Tune knows run again."""
    state_file = searcher_state_file(experiment)
    if state_file is None:
        return
    searcher = _read_searcher(state_file)
    trials = tune_results(experiment)
    # what Tune would have told the searcher: a trial it ended (finished, stopped at a rung) with its last report
    settled = {tid: (None if r["error"] else r["metrics"])
               for tid, r in trials.items() if r["status"] in ("TERMINATED", "ERROR")}
    searcher.complete_pending(settled, only_known=True)
    for trial_id in sorted(set(trials) - set(searcher.placements()), key=lambda t: trials[t]["number"]):
        if searcher.adopt(trial_id, trials[trial_id]["config"]):
            searcher.complete_pending(settled, only_known=True)
    searcher.forget_unknown(set(trials))
    searcher.save(str(state_file))
    _count_suggested(experiment, len(trials))


def _count_suggested(experiment: Path, suggested: int) -> None:
    """The search generator's saved state (a cloudpickle, the newest by name as Tune picks it) counts `suggested`
    trials and is not finished: Tune asks the searcher for more until the count reaches its bound."""
    import ray.cloudpickle as cloudpickle

    files = sorted(experiment.glob("search_gen_state-*.json"))
    if not files:
        return
    state = cloudpickle.loads(files[-1].read_bytes())
    if state.get("counter") == suggested and not state.get("finished"):
        return
    state.update(counter=suggested, finished=False)
    atomic.write_bytes(files[-1], cloudpickle.dumps(state))


def load_searcher(run_dir: Path, experiment: str) -> GASearcher | None:
    """The searcher as Tune last saved it in that round's experiment folder."""
    path = searcher_state_file(RunDir(run_dir).search / experiment)
    return _read_searcher(path) if path is not None else None


def _read_searcher(path: Path) -> GASearcher:
    state = json.loads(path.read_text())
    searcher = GASearcher(GeneticAlgorithm.from_state(state["ga"]), [tuple(o) for o in state["objectives"]])
    searcher.set_state(state)
    return searcher


def tune_results(experiment: Path) -> dict[str, dict[str, Any]]:
    """trial id -> {config, metrics (the last report), error (its last line), status (Tune's), number (its place in
    the order Tune created them)} for every started trial, as Tune
    recorded them (ExperimentAnalysis over the experiment's state), including trials that failed before their
    first report. Empty when Tune has not saved the experiment's state yet."""
    import logging

    from ray.tune import ExperimentAnalysis

    # a trial that failed before its first report has no metrics file: ours says so per trial, not Tune's warning
    quiet = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        analysis = ExperimentAnalysis(str(experiment.resolve()))
    except (ValueError, FileNotFoundError, OSError):
        return {}
    finally:
        quiet.setLevel(level)
    out = {}
    for trial in analysis.trials:
        metrics = dict(trial.run_metadata.last_result or {})
        # the copy in the run directory: Tune's `error_file` points into the Ray session that ran the trial,
        # gone once it ended (and asking for it needs a running Ray)
        error_name = trial.run_metadata.error_filename
        error_file = Path(trial.path) / error_name if error_name and trial.path else None
        error_lines = ([ln for ln in error_file.read_text().splitlines() if ln.strip()]
                       if error_file is not None and error_file.is_file() else [])
        if trial.status == "ERROR" and not error_lines:
            error_lines = ["the trial failed (Tune recorded no message)"]
        out[trial.trial_id] = {"config": dict(trial.config), "metrics": metrics,
                               "error": error_lines[-1].strip()[:500] if error_lines else None,
                               "checkpoint": _checkpoint(trial), "status": trial.status,
                               "number": _number(trial)}
    return out


def _number(trial: Any) -> int:
    """Tune tags each trial with its place in the order of creation ("4_box=1.47,..." is the fourth)."""
    found = re.match(r"(\d+)", str(trial.experiment_tag or ""))
    return int(found.group(1)) if found else 0


def _checkpoint(trial: Any) -> Path | None:
    """The folder of the trial's last checkpoint, under the experiment's folder. The trial persists it before it
    reports its final result; a target met by that result stops the experiment before Tune registers it, so the
    trial's folder is looked at when Tune's record has none."""
    if trial.checkpoint is not None:
        return Path(trial.checkpoint.path)
    saved = sorted(Path(trial.path).glob("checkpoint_*")) if trial.path else []
    return saved[-1] if saved else None
