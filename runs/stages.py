"""Staged runs wired from a spec: the cheap and measured objectives, their evaluators, and the end-of-run steps
(re-measuring the front, calibrating the proxy) that `runs/job.py` calls. Used only when an objective of the
spec has stage = "measured" (see runs/spec.py's StagesSpec).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from runs.spec import RunSpec
from search.calibration import calibrate_run
from search.combined import CombinedObjective
from search.engine import EngineState
from search.evaluation import Evaluator, LocalEvaluator
from search.fidelity import AtBudget, Promotion, StagedEvaluator, StagedObjective
from search.protocols import Objective


def _one(parts: Sequence[Objective]) -> Objective:
    return parts[0] if len(parts) == 1 else CombinedObjective(parts)


def staged_objective(spec: RunSpec, parts: Sequence[Objective]) -> StagedObjective:
    """Cheap parts then measured parts (each in spec order), as one objective. Several measured parts must ask for
    the same resources: they share one measuring actor per device."""
    cheap = [p for p, c in zip(parts, spec.objectives) if c.stage == "cheap"]
    measured = [p for p, c in zip(parts, spec.objectives) if c.stage == "measured"]
    combined = _one(measured)
    if len(measured) > 1:
        combined.resources = measured[0].resources
    return StagedObjective(_one(cheap), combined)


def staged_evaluator(spec: RunSpec, objective: StagedObjective,
                     plain: Callable[[RunSpec, Objective], Evaluator]) -> StagedEvaluator:
    """The measured stage on actors holding its resources (started first, so an embedded Ray declares them), the
    cheap stage on the spec's ordinary backend (`plain`); in-process both when backend.kind = "local"."""
    stages, backend = spec.stages, spec.backend
    timeout = backend.timeout or None
    at_budget = AtBudget(objective.measured)
    if backend.kind == "local" or not objective.measured.resources:
        measured: Evaluator = LocalEvaluator(at_budget, timeout=timeout)
    else:
        from runs.job import cluster_runtime_env
        from search.hardware import HardwareEvaluator

        measured = HardwareEvaluator(at_budget, devices=stages.devices, timeout=timeout, workers=backend.workers,
                                     address=backend.address, runtime_env=cluster_runtime_env(backend.address))
    promotion = Promotion(stages.promote, stages.fraction, stages.margin, stages.min_history, stages.eta,
                          stages.rungs)
    return StagedEvaluator(objective, plain(spec, objective.cheap), measured, promotion)


def resume_stages(evaluator: Evaluator, state: EngineState | None) -> None:
    """Give a resumed run's staged evaluator the measurements already made (the "front" rule predicts from them)."""
    if isinstance(evaluator, StagedEvaluator) and state is not None:
        evaluator.restore((None, ev) for ev in state.cache.values())


def finish_stages(evaluator: Evaluator, state: EngineState, spec: RunSpec, run_path) -> dict[str, Any] | None:
    """Re-measure the front (when stages.remeasure) and write `stages.json` to the run directory: promotions per
    generation and the proxy's calibration (Spearman before/after). Returns what it wrote, or None."""
    if not isinstance(evaluator, StagedEvaluator):
        return None
    if spec.stages.remeasure and state.front:
        state.front = evaluator.remeasure(state.front)
    calibration = calibrate_run(evaluator.objective.cheap, [h for h in evaluator.history if h[0] is not None],
                                np.random.default_rng(spec.seed))
    summary = {"promote": spec.stages.promote, "measured": sum(p for _, p in evaluator.promoted),
               "cheap_feasible": sum(f for f, _ in evaluator.promoted),
               "promoted_per_call": [list(p) for p in evaluator.promoted],
               "calibration": calibration.as_dict() if calibration else None}
    (run_path / "stages.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
