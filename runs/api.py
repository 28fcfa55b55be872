"""evoforge from Python: run a spec or preset, resume a run, read a run directory's front, emit code, compress.

The same jobs as the `evoforge` command line (which is a thin layer over these functions), without a shell and
without parsing printed text: every function returns a plain dataclass. Mistakes raise `search.protocols.UserError`
with a one-line message naming the field, exactly as the CLI prints them.

    from runs import api
    result = api.run("quickstart", overrides={"search.generations": 10}, out="runs/nernst", local=True)
    result.best["program"], result.stop_reason, result.code     # best formula, why it stopped, emitted file
    api.read_front("runs/nernst").rows                           # the front, as written to front.json
    api.emit("runs/nernst", lang="c").source                     # C source of the best member
    api.resume("runs/nernst")                                    # continue a killed run from its checkpoint
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.protocols import UserError


@dataclass(frozen=True)
class RunResult:
    """One finished (or resumed) run. front: rows as in front.json (rank, program, one value per objective, extras),
    best first by the first objective. elapsed: wall seconds over all sessions of the run. code: the best member's
    emitted code, or None when `emit` was off or nothing feasible was found."""

    path: Path
    name: str
    objectives: tuple[str, ...]
    stop_reason: str | None
    generations: int
    evaluations: int
    elapsed: float
    front: list[dict[str, Any]]
    code: Path | None
    best_rank: int = 0

    @property
    def best(self) -> dict[str, Any] | None:
        """The preferred front row (`search.engine.preferred_rank`: the simplest member meeting the run's targets,
        else rank 0), or None when no feasible program was found."""
        return self.front[self.best_rank] if self.front else None


@dataclass(frozen=True)
class Front:
    """A run directory's front.json: why the run stopped and its rows (rank, program, objective values, extras)."""

    path: Path
    stop_reason: str | None
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class EmittedCode:
    """Source code of one front member, also written to `path` (inside the run's code/ folder)."""

    path: Path
    lang: str
    rank: int
    source: str


@dataclass(frozen=True)
class Preset:
    """A shipped spec, runnable by name."""

    name: str
    description: str
    path: Path


def overrides_for(seed: int | None = None, workers: int | None = None, address: str | None = None,
                  data: str | Path | None = None, target: str | None = None, local: bool = False) -> dict[str, Any]:
    """The dotted-key overrides of the common options (the CLI's --seed, --workers, --address, --data, --target,
    --local); None leaves the spec's value."""
    overrides: dict[str, Any] = {"seed": seed, "backend.workers": workers, "backend.address": address,
                                 "data.target": target}
    if data is not None:
        overrides["data.path"] = str(Path(data).expanduser().resolve())
    if address:
        overrides["backend.kind"] = "ray"
    if local:
        overrides["backend.kind"] = "local"
    return overrides


def run(spec: str | Path | dict[str, Any], overrides: dict[str, Any] | None = None, *,
        out: str | Path | None = None, seed: int | None = None, workers: int | None = None,
        address: str | None = None, data: str | Path | None = None, target: str | None = None,
        local: bool = False, progress: bool = False, emit: bool = True) -> RunResult:
    """Run a spec file, a preset name, or a spec table (a dict shaped like the TOML, named "spec", relative data
    paths from the working directory) to its stopping rule. overrides: dotted keys of the spec, e.g.
    {"search.generations": 5, "space.max_depth": 3}; the keyword options win over them. out: the run directory
    (default evoforge-runs/NAME-TIME). emit: write the best member's code (the space's first language)."""
    from runs.job import start
    from runs.spec import apply_overrides, load_spec, parse_spec

    merged = dict(overrides or {})
    merged.update({k: v for k, v in overrides_for(seed, workers, address, data, target, local).items()
                   if v is not None})
    if isinstance(spec, dict):
        loaded = parse_spec(apply_overrides(spec, merged), "spec", Path.cwd())
    else:
        loaded = load_spec(str(spec), merged)
    job, run_dir, state = start(loaded, Path(out) if out is not None else None, progress)
    return _result(job, run_dir, state, emit)


def resume(path: str | Path, *, progress: bool = False, emit: bool = True) -> RunResult:
    """Continue a run directory from its last checkpoint; a finished run comes back as it is."""
    from runs.job import resume as resume_job

    job, run_dir, state = resume_job(Path(path), progress)
    return _result(job, run_dir, state, emit)


def read_front(path: str | Path) -> Front:
    """The front of a finished run directory (its front.json), without rebuilding the job."""
    from runs.report import front_rows
    from runs.rundir import RunDirectory

    run_dir = RunDirectory.open(Path(path))
    rows, reason = front_rows(run_dir)
    return Front(path=run_dir.path, stop_reason=reason, rows=rows)


def emit(path: str | Path, lang: str | None = None, rank: int | None = None) -> EmittedCode:
    """Write front member `rank` of a run directory (0 = best by the first objective; None = the run's best, as
    `evoforge run` printed it: the simplest member within the targets) in `lang` (default: the space's first
    language) into its code/ folder; works on a run that is still going (its last checkpoint)."""
    from runs.job import emit_best, load_run
    from search.engine import preferred_rank

    job, run_dir = load_run(Path(path))
    state = run_dir.load_checkpoint()
    if state is None:
        raise UserError(f"RUNDIR: {path} has no checkpoint yet; let the run finish a generation first")
    if rank is None:
        rank = preferred_rank(state.front, job.objective, job.spec.search.targets)
    lang = lang or job.space.emit_languages[0]
    written = emit_best(job, run_dir, state, lang, rank)
    return EmittedCode(path=written, lang=lang, rank=rank, source=written.read_text())


def presets() -> list[Preset]:
    """The shipped presets (runs/presets/*.toml), by name."""
    from runs.spec import PRESETS_DIR, preset_names, read_table

    out = []
    for name in preset_names():
        path = PRESETS_DIR / f"{name}.toml"
        out.append(Preset(name=name, description=str(read_table(path).get("description", "")), path=path))
    return out


@dataclass(frozen=True)
class Compression:
    """A compressed model: its output folder (student files, or only config.json for a search-only run) and
    report.json as a dict (candidates, sizes in MB = 10^6 bytes, GFLOPs, fidelity and latency figures)."""

    path: Path
    report: dict[str, Any]


def compress(teacher: str, to: str, *, data: str | Path | None = None, out: str | Path | None = None,
             search_only: bool = False, workers: int = 1, settings=None, log=print) -> Compression:
    """`evoforge compress` from Python: a student of at most `to` (e.g. "3MB") distilled from `teacher` (a local
    Hugging Face folder or all-MiniLM-L6-v2). settings: a `runs.compress.CompressSettings` (budgets); log: where
    progress lines go (None: nowhere)."""
    import json

    from runs.compress import CompressSettings
    from runs.compress import compress as compress_model

    path = compress_model(teacher, to, None if data is None else str(data), None if out is None else str(out),
                          search_only, workers, settings or CompressSettings(), log=log or (lambda text: None))
    return Compression(path=Path(path), report=json.loads((Path(path) / "report.json").read_text()))


def _result(job, run_dir, state, emit_code: bool) -> RunResult:
    from runs.job import emit_best
    from search.engine import front_table, preferred_rank

    rank = preferred_rank(state.front, job.objective, job.spec.search.targets)
    code = emit_best(job, run_dir, state, rank=rank) if emit_code and state.front else None
    return RunResult(path=run_dir.path, name=job.spec.name, objectives=tuple(job.objective.names), best_rank=rank,
                     stop_reason=state.stop_reason, generations=state.generation, evaluations=state.evaluations,
                     elapsed=state.elapsed, front=front_table(state.front, job.objective, job.space.describe),
                     code=code)


def describe_best(result: RunResult) -> str:
    """One line: the best program and its objective values (what `evoforge run` prints after `best:`)."""
    row = result.best
    if row is None:
        return "no feasible individual"
    values = ", ".join(f"{n}={(math.inf if row.get(n) is None else row[n]):.6g}" for n in result.objectives)
    return f"{row.get('program', row.get('key'))}  ({values})"
