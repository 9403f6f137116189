"""The search's starting points and its GA: what the job asks for, what the model is (pretrained checkpoint or
.yaml from scratch) and what Ultralytics' trainer does with each gene at the trial's budget (hyperparameters.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yoloforge.core.rundir import RunDir
from yoloforge.ga.algorithm import GeneticAlgorithm
from yoloforge.ga.space import SearchSpace
from yoloforge.ga.surrogate import ASSISTED
from yoloforge.ray_app.console import console
from yoloforge.ray_app.search.fidelity import rungs
from yoloforge.ray_app.search.hyperparameters import (
    FINE_TUNE_LR0_CEILING,
    FINE_TUNE_STEP,
    NOMINAL_BATCH,
    ULTRALYTICS_DEFAULTS,
    auto_lr0,
    for_fine_tuning,
    for_training_length,
    is_short_training,
    short_training_starts,
    training_iterations,
    without_inert_genes,
)
from yoloforge.ray_app.search.plan import SearchPlan, estimate_trial_s, plan_search
from yoloforge.ray_app.search.ray_searcher import GASearcher
from yoloforge.ray_app.search.trainable import TrialContext, shared_latency_ms
from yoloforge.ray_app.spec import JobSpec


def dataset_classes(run_dir: Path) -> int | None:
    return len(RunDir(run_dir).read_dataset_report().get("names") or []) or None


def dataset_images(run_dir: Path, split: str) -> int | None:
    """Images in a split of the clean copy, as intake counted them."""
    splits = RunDir(run_dir).read_dataset_report().get("splits") or {}
    return (splits.get(split) or {}).get("images_clean") or None


def dataset_train_images(run_dir: Path) -> int | None:
    return dataset_images(run_dir, "train")


def trial_estimate_s(spec: JobSpec, ctx: TrialContext, run_dir: Path) -> float | None:
    """A whole trial's seconds on this machine, estimated before any trains (plan.estimate_trial_s), from the
    latency measured for CPU trials; None for GPU trials, which measure theirs on their own device."""
    n_train = dataset_train_images(run_dir)
    latency = ctx.latency_ms.get(ctx.imgsz) or max(ctx.latency_ms.values(), default=None)
    if not n_train or latency is None:
        return None
    return estimate_trial_s(spec.search.epochs, n_train, dataset_images(run_dir, "val") or 0, latency)


def _initial_individuals(spec: JobSpec, nc: int | None = None, space: SearchSpace | None = None,
                         task: str = "detect", short_training: bool = False) -> list[dict[str, Any]]:
    """The job's own starting points, then Ultralytics' defaults (and for a short training their screening
    variants, see short_training_starts), each kept only if it fits the space and differs from those before."""
    space = space or spec.search.search_space()
    fitted: list[dict[str, Any]] = []
    defaults = {**ULTRALYTICS_DEFAULTS, **({"lr0": auto_lr0(nc)} if nc else {})}
    variants = short_training_starts(defaults, task) if short_training else []
    for candidate in [*spec.search.initial, defaults, *variants]:
        config = {}
        for gene in space.genes:
            value = candidate.get(gene.name)
            if value is None:
                if gene.name not in ULTRALYTICS_DEFAULTS:
                    break
                value = ULTRALYTICS_DEFAULTS[gene.name]
            if gene.kind == "cat" and value not in gene.choices:
                break
            if gene.kind != "cat" and not gene.low <= value <= gene.high:
                break
            config[gene.name] = value
        else:
            if config not in fitted:  # a variant of a fixed gene is the defaults again
                fitted.append(config)
    return fitted


def build_searcher(spec: JobSpec, task: str, nc: int | None = None, n_train: int | None = None, *,
                   pretrained: bool = False, plan: SearchPlan | None = None) -> GASearcher:
    """The GA for this job. pretrained (a .pt checkpoint) fine-tunes: the first generation is the defaults and
    mutants near them, lr0 moves up by at most FINE_TUNE_LR0_CEILING; from scratch (a .yaml) a short training
    starts from the screening design (short_training_starts) beside the defaults."""
    s = spec.search
    n_obj = 2 if s.mode == "pareto" else 1
    space = s.search_space()
    nbs = int(space.fixed.get("nbs", NOMINAL_BATCH))  # where it is a gene, Ultralytics' default decides
    iterations = training_iterations(n_train, s.epochs, s.batch, nbs) if n_train else None
    # the user's own optimizer choices (in the space or a starting point) are kept as given
    if "optimizer" not in s.space and all(c.get("optimizer") != "SGD" for c in s.initial):
        space = for_training_length(space, iterations)
    space, inert = without_inert_genes(space, task, s.epochs, ULTRALYTICS_DEFAULTS)
    for reason in sorted(set(inert.values())):
        names = ", ".join(n for n, r in inert.items() if r == reason)
        console.print(f"not searched: {names} ({reason})", markup=False)
    if pretrained and "lr0" not in s.space and not any("lr0" in c for c in s.initial):
        space = for_fine_tuning(space, auto_lr0(nc) if nc else ULTRALYTICS_DEFAULTS["lr0"])
    if pretrained:
        console.print("fine-tuning a pretrained checkpoint: the first generation starts at Ultralytics' defaults and "
                      f"mutants near them; lr0 at most {FINE_TUNE_LR0_CEILING:g}x its default", markup=False)
    plan = plan or plan_search(spec, 1, None)
    ga = GeneticAlgorithm(space, pop_size=plan.population, n_obj=n_obj, seed=s.seed,
                          max_generations=plan.generations, stagnation=s.stagnation,
                          time_budget_s=plan.budget_s,
                          initial=_initial_individuals(spec, nc, space, task,
                                                       is_short_training(iterations) and not pretrained),
                          **({"warm_fraction": 1.0, "warm_sigma": FINE_TUNE_STEP} if pretrained else {}),
                          **ASSISTED)
    objectives = [("fitness", "max")] + ([("latency_ms", "min")] if n_obj == 2 else [])
    stops = rungs(spec)  # under ASHA, a trial kept at the first rung may stand in with its latest report
    return GASearcher(ga, objectives, minimums=dict(spec.targets.metrics),
                      provisional_from=("epoch", stops[0]) if stops else None)


def trial_context(spec: JobSpec, task: str, data: str, model: str,
                  latency_ms: dict[int, float] | None = None) -> TrialContext:
    """What every trial shares. latency_ms: the latency per input size when already known; else measured here."""
    space = spec.search.search_space()
    sizes = next((list(g.choices) for g in space.genes if g.name == "imgsz"), [space.fixed.get("imgsz",
                                                                                               spec.search.imgsz)])
    # CPU trials share one latency per input size, measured here before any trial trains; GPU trials measure
    # on their own device; for an edge device, each trial's is estimated from its GFLOPs (nothing to measure)
    edge = spec.targets.edge_device
    latency = latency_ms if latency_ms is not None else (
        shared_latency_ms(model, task, [int(s) for s in sizes]) if not spec.resources.gpu and not edge else {})
    return TrialContext(model=model, data=data, task=task, epochs=spec.search.epochs, imgsz=spec.search.imgsz,
                        batch=spec.search.batch, seed=spec.search.seed, fitness_weights=spec.fitness_weights(task),
                        penalties=dict(spec.search.compute_penalty), fixed=dict(space.fixed), latency_ms=latency,
                        edge_device=edge)

