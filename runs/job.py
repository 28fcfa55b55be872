"""A search job: a validated spec wired to a space, its objectives, a backend and a run directory.

This is the only place that knows all four; `search/` sees a Space, an Objective and an Evaluator.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from runs.data import load_csv
from runs.emit import emit_member
from runs.placement import pinned_mode, place, say_in_process_instead
from runs.progress import RunProgress
from runs.rundir import RunDirectory
from runs.spec import RunSpec, parse_spec, read_table
from runs.stages import finish_stages, resume_stages, staged_evaluator, staged_objective
from search.combined import CombinedObjective
from search.engine import EngineState, GenerationReport, evolve, front_table
from search.evaluation import Evaluator, LocalEvaluator
from search.fidelity import StagedObjective
from search.islands import ArchipelagoState
from search.protocols import Context, Dataset, Objective, Space


@dataclass
class Job:
    spec: RunSpec
    space: Space
    objective: Objective


def build_job(spec: RunSpec, dataset: Dataset | None = None) -> Job:
    """Instantiate the space and objectives of a spec (loading its data once). `dataset` replaces the spec's CSV:
    data already in memory (the scikit-learn estimator, runs/estimator.py)."""
    if dataset is None and spec.data:
        dataset = load_csv(spec.data.path, spec.data.target)
    context = Context(seed=spec.seed, dataset=dataset)
    space = spec.space.cls(spec.space.config, context)
    parts = [part.cls(part.config, space, context) for part in spec.objectives]
    objective = parts[0] if len(parts) == 1 else CombinedObjective(parts)
    if spec.stages:  # a cheap stage on every child, a measured one on promoted children (search/fidelity.py)
        objective = staged_objective(spec, parts)
    return Job(spec=spec, space=space, objective=objective)


REPO_ROOT = Path(__file__).resolve().parents[1]


def cluster_runtime_env(address: str | None) -> dict | None:
    """When joining a cluster from a source checkout, ship the project to the workers (Ray's working_dir)."""
    if not (address or os.environ.get("RAY_ADDRESS")) or not (REPO_ROOT / "pyproject.toml").is_file():
        return None
    return {"working_dir": str(REPO_ROOT),
            "excludes": [".venv", ".git", "evoforge-runs", "bench/results", "**/__pycache__", ".whl", ".gl"]}


def make_evaluator(spec: RunSpec, objective: Objective) -> Evaluator:
    if isinstance(objective, StagedObjective):
        return staged_evaluator(spec, objective, make_evaluator)
    backend = spec.backend
    timeout = backend.timeout or None
    if backend.kind == "local" or backend.mode == "local":
        return LocalEvaluator(objective, timeout=timeout)
    from search.ray_backend import RayEvaluator, RayUnavailable

    try:
        return RayEvaluator(objective, workers=backend.workers, address=backend.address, timeout=timeout,
                            runtime_env=cluster_runtime_env(backend.address))
    except RayUnavailable as exc:  # same front in-process: a run is never lost to Ray not starting
        say_in_process_instead(str(exc))
        return LocalEvaluator(objective, timeout=timeout)


def default_run_dir(spec: RunSpec) -> Path:
    return Path("evoforge-runs") / f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def execute(job: Job, run: RunDirectory, state, progress: bool = True, warm=None):
    """Run (or continue) the search, logging and checkpointing every generation, then write the front. `warm`:
    generation 0 already made in-process (state, report) by runs/placement.py, continued from."""
    final = _execute_islands(job, run, state, progress) if job.spec.islands else _execute_single(job, run, state,
                                                                                                  progress, warm)
    run.save_checkpoint(final)
    run.write_front(front_table(final.front, job.objective, job.space.describe), final.stop_reason)
    return final


def _execute_single(job: Job, run: RunDirectory, state: EngineState | None, progress: bool,
                    warm=None) -> EngineState:
    spec = job.spec

    def on_generation(new_state: EngineState, report: GenerationReport) -> None:
        run.append(run.stats_path, [report.stats])
        run.append(run.failures_path, [dict(generation=new_state.generation, **f) for f in report.failures])
        run.save_checkpoint(new_state)
        bar.update(new_state, report)

    bar = RunProgress(job.objective, spec.search, state.generation if state else 0, enabled=progress)
    if warm is not None and state is None:
        state = warm[0]
        on_generation(*warm)
    try:
        with make_evaluator(spec, job.objective) as evaluator:
            resume_stages(evaluator, state)
            final = evolve(job.space, job.objective, spec.search, seed=spec.seed, evaluator=evaluator, state=state,
                           on_generation=on_generation)
            finish_stages(evaluator, final, spec, run.path)
    finally:
        bar.close()
    return final


def _epoch_summary(state: ArchipelagoState, reports: list[list[GenerationReport]], objective: Objective,
                   seconds: float) -> dict:
    new_evals = sum(r.stats["new_evaluations"] for island in reports for r in island)
    summary = {"generation": state.generation, "evaluations": state.evaluations, "islands": len(state.islands),
               "evals_per_s": round(new_evals / seconds, 3) if seconds > 0 else None}
    for j, name in enumerate(objective.names):
        if state.front:
            values = [ind.evaluation.values[j] for ind in state.front]
            summary[f"best_{name}"] = min(values) if objective.directions[j] == "min" else max(values)
    return summary


def _execute_islands(job: Job, run: RunDirectory, state: ArchipelagoState | None, progress: bool) -> ArchipelagoState:
    from search.islands import evolve_islands

    spec = job.spec
    clock = [time.perf_counter()]

    def on_epoch(new_state: ArchipelagoState, reports: list[list[GenerationReport]]) -> None:
        lines = [dict(island=i, **r.stats) for i, island in enumerate(reports) for r in island]
        failures = [dict(island=i, generation=r.stats["generation"], **f)
                    for i, island in enumerate(reports) for r in island for f in r.failures]
        run.append(run.stats_path, lines)
        run.append(run.failures_path, failures)
        run.save_checkpoint(new_state)
        now = time.perf_counter()
        bar.update(new_state, GenerationReport(_epoch_summary(new_state, reports, job.objective, now - clock[0]), []))
        clock[0] = now

    use_ray = pinned_mode(spec) == "islands"
    started = False
    if use_ray:
        from search.ray_backend import RayUnavailable, connect

        try:
            started = connect(spec.backend.workers, spec.backend.address, cluster_runtime_env(spec.backend.address))
        except RayUnavailable as exc:  # islands give the same front hosted in-process
            say_in_process_instead(str(exc))
            use_ray = False
    bar = RunProgress(job.objective, spec.search, state.generation if state else 0, enabled=progress)
    try:
        return evolve_islands(job.space, job.objective, spec.search, spec.islands, seed=spec.seed, state=state,
                              use_ray=use_ray, timeout=spec.backend.timeout or None, on_epoch=on_epoch)
    finally:
        bar.close()
        if started:
            import ray

            ray.shutdown()


def preflight(spec: RunSpec, objective: Objective) -> None:
    """One error before any work (`Objective.preflight`) when this process will evaluate and cannot: a GPU-timed
    run on a machine without a GPU is a message, not a run directory of identical failures."""
    here = spec.backend.kind == "local" or spec.backend.mode == "local"
    if isinstance(objective, StagedObjective):
        if here:
            objective.cheap.preflight()
        if here or not objective.measured.resources:
            objective.measured.preflight()
    elif here:
        objective.preflight()


def start(spec: RunSpec, out: Path | None, progress: bool = True) -> tuple[Job, RunDirectory, EngineState]:
    job = build_job(spec)
    preflight(spec, job.objective)
    spec, warm = place(spec, job.space, job.objective)  # backend.mode "auto": in-process or Ray, whichever pays
    job = Job(spec=spec, space=job.space, objective=job.objective)
    run = RunDirectory.create(out or default_run_dir(spec), spec.table)
    return job, run, execute(job, run, None, progress, warm)


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
    preflight(job.spec, job.objective)
    run.truncate_logs(state.generation if state else -1)
    return job, run, execute(job, run, state, progress)


def emit_best(job: Job, run: RunDirectory, state: EngineState, lang: str | None = None, rank: int = 0) -> Path:
    return emit_member(job.space, state, run.code_dir, lang, rank)
