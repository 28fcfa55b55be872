"""A search job: a validated spec wired to a space, its objectives, a backend and a run directory.

This is the only place that knows all four; `search/` sees a Space, an Objective and an Evaluator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from runs.data import load_csv
from runs.emit import emit_member
from runs.progress import RunProgress
from runs.rundir import RunDirectory
from runs.spec import RunSpec, parse_spec, read_table
from search.combined import CombinedObjective
from search.engine import EngineState, GenerationReport, evolve, front_table
from search.evaluation import Evaluator, LocalEvaluator
from search.protocols import Context, Objective, Space


@dataclass
class Job:
    spec: RunSpec
    space: Space
    objective: Objective


def build_job(spec: RunSpec) -> Job:
    """Instantiate the space and objectives of a spec (loading its data once)."""
    dataset = load_csv(spec.data.path, spec.data.target) if spec.data else None
    context = Context(seed=spec.seed, dataset=dataset)
    space = spec.space.cls(spec.space.config, context)
    parts = [part.cls(part.config, space, context) for part in spec.objectives]
    objective = parts[0] if len(parts) == 1 else CombinedObjective(parts)
    return Job(spec=spec, space=space, objective=objective)


def make_evaluator(spec: RunSpec, objective: Objective) -> Evaluator:
    backend = spec.backend
    timeout = backend.timeout or None
    if backend.kind == "local":
        return LocalEvaluator(objective, timeout=timeout)
    from search.ray_backend import RayEvaluator

    return RayEvaluator(objective, workers=backend.workers, address=backend.address, timeout=timeout)


def default_run_dir(spec: RunSpec) -> Path:
    return Path("evoforge-runs") / f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def execute(job: Job, run: RunDirectory, state: EngineState | None, progress: bool = True) -> EngineState:
    """Run (or continue) the search, logging and checkpointing every generation, then write the front."""
    spec = job.spec

    def on_generation(new_state: EngineState, report: GenerationReport) -> None:
        run.append(run.stats_path, [report.stats])
        run.append(run.failures_path, [dict(generation=new_state.generation, **f) for f in report.failures])
        run.save_checkpoint(new_state)
        bar.update(new_state, report)

    bar = RunProgress(job.objective, spec.search, state.generation if state else 0, enabled=progress)
    try:
        with make_evaluator(spec, job.objective) as evaluator:
            final = evolve(job.space, job.objective, spec.search, seed=spec.seed, evaluator=evaluator, state=state,
                           on_generation=on_generation)
    finally:
        bar.close()
    run.save_checkpoint(final)
    run.write_front(front_table(final.front, job.objective), final.stop_reason)
    return final


def start(spec: RunSpec, out: Path | None, progress: bool = True) -> tuple[Job, RunDirectory, EngineState]:
    job = build_job(spec)
    run = RunDirectory.create(out or default_run_dir(spec), spec.table)
    return job, run, execute(job, run, None, progress)


def load_run(path: Path) -> tuple[Job, RunDirectory]:
    """Rebuild the job of an existing run directory from its own spec.toml."""
    run = RunDirectory.open(path)
    spec = parse_spec(read_table(run.spec_path), run.path.name, run.path.resolve())
    return build_job(spec), run


def resume(path: Path, progress: bool = True) -> tuple[Job, RunDirectory, EngineState]:
    """Continue from the last checkpoint; a finished run is returned as it is."""
    job, run = load_run(path)
    state = run.load_checkpoint()
    if state is not None and state.stop_reason is not None:
        return job, run, state
    run.truncate_logs(state.generation if state else -1)
    return job, run, execute(job, run, state, progress)


def emit_best(job: Job, run: RunDirectory, state: EngineState, lang: str | None = None, rank: int = 0) -> Path:
    return emit_member(job.space, state, run.code_dir, lang, rank)
