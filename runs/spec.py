"""Run specs: a TOML file (or a shipped preset) parsed into typed dataclasses, validated once, here, at the edge.

Every mistake becomes one `SpecError` line naming the field and what is allowed; inner code receives dataclasses,
never raw dicts. A spec looks like::

    description = "recover a formula"     # shown by `evoforge presets`
    seed = 0
    [space]                                # name = a key of spaces.REGISTRY, the rest = that space's Config
    name = "eml"
    [[objectives]]                         # one or more; name = a key of objectives.REGISTRY
    name = "fit"
    [data]                                 # optional CSV, loaded into Context.dataset
    path = "data/example.csv"              # relative to the spec file
    target = "y"
    [search]                               # search.engine.SearchSettings
    population = 64
    [backend]
    kind = "ray"                           # "ray" (embedded unless address/RAY_ADDRESS) or "local"
    workers = 2
    timeout = 30.0                         # seconds per evaluation
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import tomllib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import objectives
import spaces
from search.engine import SearchSettings
from search.islands import IslandSettings
from search.protocols import UserError

PRESETS_DIR = Path(__file__).parent / "presets"
BACKEND_MODES = ("auto", "local", "generational", "islands")
TOP_LEVEL = ("description", "seed", "space", "objectives", "data", "search", "islands", "backend", "stages")
STAGES = ("cheap", "measured")


class SpecError(UserError):
    """A bad run spec; the message names the field."""


@dataclass(frozen=True)
class ComponentSpec:
    """A space or objective: its registry name, its class and its validated Config instance."""

    name: str
    cls: type
    config: Any
    stage: str = "cheap"  # objectives only: "measured" ones run after promotion, on actors (search/fidelity.py)


@dataclass(frozen=True)
class StagesSpec:
    """[stages]: how children reach the measured stage. promote: all | top_fraction | front | halving, with
    fraction, margin, min_history, eta and rungs as in `search.fidelity.Promotion`. devices: measuring actors, one
    per device (an embedded Ray declares this many of each custom resource the measured objective needs).
    remeasure: measure the final front again and record the new median and spread in front.json."""

    promote: str = "front"
    fraction: float = 0.25
    margin: float = 0.1
    min_history: int = 8
    eta: int = 3
    rungs: int = 2
    devices: int = 1
    remeasure: bool = True


@dataclass(frozen=True)
class DataSpec:
    path: Path
    target: str


@dataclass(frozen=True)
class BackendSpec:
    """kind: "ray" or "local". workers: Ray CPUs for an embedded Ray. address: a Ray cluster (ray://host:port
    or host:port); None uses RAY_ADDRESS if set, else starts an embedded Ray. timeout: seconds per evaluation.
    mode: "auto" (measure the job, then run in-process or on Ray, whichever pays; runs/placement.py), "local",
    "generational" (one population, each generation's evaluations on Ray) or "islands" (islands evolving on
    Ray actors)."""

    kind: str = "ray"
    workers: int = 2
    address: str | None = None
    timeout: float | None = 60.0
    mode: str = "auto"


@dataclass(frozen=True)
class RunSpec:
    name: str
    description: str
    seed: int
    space: ComponentSpec
    objectives: tuple[ComponentSpec, ...]
    data: DataSpec | None
    search: SearchSettings
    islands: IslandSettings | None
    backend: BackendSpec
    table: dict[str, Any]  # the validated TOML table with overrides applied, written to the run directory
    stages: StagesSpec | None = None  # set when an objective has stage = "measured"


def _suggest(word: str, allowed: typing.Iterable[str]) -> str:
    allowed = sorted(allowed)
    close = difflib.get_close_matches(word, allowed, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}allowed: {', '.join(allowed) or '(none)'}"


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin in (tuple, list):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return isinstance(value, (list, tuple)) and all(_type_ok(v, args[0]) for v in value) if args else True
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def build_dataclass(cls: type, table: dict[str, Any], where: str) -> Any:
    """Instantiate dataclass `cls` from a TOML table, rejecting unknown keys and wrongly typed values."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in table.items():
        if key not in fields:
            raise SpecError(f"{where}.{key}: unknown field; {_suggest(key, fields)}")
        if not _type_ok(value, hints[key]):
            raise SpecError(f"{where}.{key}: expected {_type_name(hints[key])}, got {value!r}")
        if typing.get_origin(hints[key]) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = float(value) if hints[key] is float else value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # a Config's own __post_init__ check
        raise SpecError(f"{where}: {exc}") from None


def resolve_class(registry: dict[str, str], name: Any, where: str) -> type:
    if not isinstance(name, str) or name not in registry:
        raise SpecError(f"{where}.name: unknown {where.split('[')[0]} {name!r}; {_suggest(str(name), registry)}")
    module, _, attr = registry[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def _component(registry: dict[str, str], table: Any, where: str) -> ComponentSpec:
    if not isinstance(table, dict):
        raise SpecError(f"{where}: expected a table with a 'name' key, got {table!r}")
    params = dict(table)
    name = params.pop("name", None)
    if name is None:
        raise SpecError(f"{where}.name: missing; {_suggest('', registry)}")
    cls = resolve_class(registry, name, where)
    return ComponentSpec(name=name, cls=cls, config=build_dataclass(cls.Config, params, where))


def _objective(table: Any, where: str) -> ComponentSpec:
    """An [[objectives]] table; its optional `stage` key says which stage it belongs to (default: "measured" for
    an objective that declares hardware resources, else "cheap")."""
    stage = table.pop("stage", None) if isinstance(table, dict) else None
    part = _component(objectives.REGISTRY, table, where)
    stage = stage if stage is not None else ("measured" if part.cls.resources else "cheap")
    if stage not in STAGES:
        raise SpecError(f"{where}.stage: unknown stage {stage!r}; allowed: {', '.join(STAGES)}")
    return dataclasses.replace(part, stage=stage)


def _check_stages(stages: StagesSpec, parts: tuple[ComponentSpec, ...], islands: bool, mode: str) -> None:
    from search.fidelity import Promotion

    if not any(p.stage == "measured" for p in parts):
        raise SpecError('stages: no objective has stage = "measured"; add it to the [[objectives]] table that '
                        "measures, or remove [stages]")
    if not any(p.stage == "cheap" for p in parts):
        raise SpecError('objectives: every objective has stage = "measured"; add a cheap one (the proxy, e.g. ops or '
                        'gflops) with stage = "cheap", or set stage = "cheap" on this one to measure every child')
    if islands:
        raise SpecError('islands: not available with measured objectives (stage = "measured"); remove [islands]')
    if mode == "islands":
        raise SpecError('backend.mode: "islands" is not available with measured objectives (stage = "measured"); '
                        'use "auto" or "generational"')
    if stages.devices < 1:
        raise SpecError(f"stages.devices: must be a positive integer, got {stages.devices}")
    try:
        Promotion(stages.promote, stages.fraction, stages.margin, stages.min_history, stages.eta, stages.rungs)
    except UserError as exc:  # its own one-line message, as a spec error
        raise SpecError(str(exc)) from None


def _check_search(settings: SearchSettings, objective_names: list[str]) -> None:
    positive = {"population": settings.population, "generations": settings.generations,
                "tournament": settings.tournament, "hall_of_fame": settings.hall_of_fame}
    for name, value in positive.items():
        if value < 1:
            raise SpecError(f"search.{name}: must be a positive integer, got {value}")
    for name in ("offspring", "max_evaluations"):
        value = getattr(settings, name)
        if value is not None and value < 0:
            raise SpecError(f"search.{name}: must be >= 0 (0 = default), got {value}")
    if settings.wall_time is not None and settings.wall_time < 0:
        raise SpecError(f"search.wall_time: must be >= 0 seconds, got {settings.wall_time}")
    if settings.polish < 0:
        raise SpecError(f"search.polish: must be >= 0 evaluations (0 = off), got {settings.polish}")
    if settings.polish and len(objective_names) != 1:
        raise SpecError(f"search.polish: the coordinate polish needs exactly one objective, the spec has "
                        f"{len(objective_names)}; set polish = 0")
    if not 0.0 <= settings.polish_gain < 1.0:
        raise SpecError(f"search.polish_gain: must be within [0, 1), got {settings.polish_gain}")
    for name in ("novelty_tries", "restart_after"):
        if getattr(settings, name) < 0:
            raise SpecError(f"search.{name}: must be >= 0 (0 = off), got {getattr(settings, name)}")
    if not 0.0 <= settings.restart_gain < 1.0:
        raise SpecError(f"search.restart_gain: must be within [0, 1), got {settings.restart_gain}")
    if settings.space_time_limit < 0:
        raise SpecError(f"search.space_time_limit: must be >= 0 seconds (0 = no limit), got {settings.space_time_limit}")
    for name in ("crossover_prob", "mutation_prob"):
        if not 0.0 <= getattr(settings, name) <= 1.0:
            raise SpecError(f"search.{name}: must be within [0, 1], got {getattr(settings, name)}")
    if settings.crossover_prob + settings.mutation_prob > 1.0 + 1e-12:
        raise SpecError("search.crossover_prob + search.mutation_prob: must be <= 1 (the rest are copies), got "
                        f"{settings.crossover_prob + settings.mutation_prob:g}")
    for name, value in settings.targets.items():
        if name not in objective_names:
            raise SpecError(f"search.targets.{name}: not an objective of this run; {_suggest(name, objective_names)}")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise SpecError(f"search.targets.{name}: expected a number, got {value!r}")


def _check_islands(islands: IslandSettings, population: int) -> None:
    for name in ("islands", "migration_interval"):
        if getattr(islands, name) < 1:
            raise SpecError(f"islands.{name}: must be a positive integer, got {getattr(islands, name)}")
    if not 0 <= islands.migrants <= population:
        raise SpecError(f"islands.migrants: must be within 0..search.population ({population}), got {islands.migrants}")
    if islands.topology not in ("ring", "random"):
        raise SpecError(f"islands.topology: unknown topology {islands.topology!r}; allowed: random, ring")
    if islands.hosts < 0:
        raise SpecError(f"islands.hosts: must be >= 0 (0 = one Ray actor per island), got {islands.hosts}")


def _check_backend(backend: BackendSpec) -> None:
    if backend.kind not in ("ray", "local"):
        raise SpecError(f"backend.kind: unknown backend {backend.kind!r}; allowed: local, ray")
    if backend.workers < 1:
        raise SpecError(f"backend.workers: must be a positive integer, got {backend.workers}")
    if backend.timeout is not None and backend.timeout < 0:
        raise SpecError(f"backend.timeout: must be >= 0 seconds (0 = none), got {backend.timeout}")
    if backend.mode not in BACKEND_MODES:
        raise SpecError(f"backend.mode: unknown mode {backend.mode!r}; {_suggest(backend.mode, BACKEND_MODES)}")


def apply_overrides(table: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys (`backend.workers`, `seed`) in a copy of the table; None values are skipped."""
    table = {k: (dict(v) if isinstance(v, dict) else v) for k, v in table.items()}
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        node = table
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return table


def parse_spec(table: dict[str, Any], name: str, base_dir: Path) -> RunSpec:
    """Validate a spec table; relative data paths resolve against `base_dir` (the spec file's folder)."""
    for key in table:
        if key not in TOP_LEVEL:
            raise SpecError(f"{key}: unknown top-level field; {_suggest(key, TOP_LEVEL)}")
    seed = table.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise SpecError(f"seed: expected a non-negative integer, got {seed!r}")
    if "space" not in table:
        raise SpecError(f"space: missing; add a [space] table with name = one of {', '.join(sorted(spaces.REGISTRY))}")
    space = _component(spaces.REGISTRY, table["space"], "space")
    raw_objectives = table.get("objectives")
    if not raw_objectives or not isinstance(raw_objectives, list):
        raise SpecError("objectives: missing; add one or more [[objectives]] tables with name = one of "
                        f"{', '.join(sorted(objectives.REGISTRY))}")
    parts = tuple(_objective(dict(t) if isinstance(t, dict) else t, f"objectives[{i}]")
                  for i, t in enumerate(raw_objectives))
    names = [n for p in parts for n in p.cls.names]
    if len(set(names)) != len(names):
        raise SpecError(f"objectives: objective names repeat ({', '.join(names)}); list each objective once")
    data = None
    if "data" in table:
        raw = table["data"]
        if not isinstance(raw, dict):
            raise SpecError(f"data: expected a table with path and target, got {raw!r}")
        extra = set(raw) - {"path", "target"}
        if extra:
            raise SpecError(f"data.{sorted(extra)[0]}: unknown field; allowed: path, target")
        if not isinstance(raw.get("path"), str):
            raise SpecError("data.path: missing; give the CSV file (or --data FILE.csv)")
        if not isinstance(raw.get("target"), str):
            raise SpecError("data.target: missing; give the name of the column to predict (or --target NAME)")
        path = Path(raw["path"]).expanduser()
        data = DataSpec(path=path if path.is_absolute() else (base_dir / path).resolve(), target=raw["target"])
    search = build_dataclass(SearchSettings, _table(table, "search"), "search")
    _check_search(search, names)
    islands = None
    if "islands" in table:
        islands = build_dataclass(IslandSettings, _table(table, "islands"), "islands")
        _check_islands(islands, search.population)
        if search.polish:
            raise SpecError("search.polish: not available with [islands] (the islands step their own populations); "
                            "set polish = 0 or remove [islands]")
    backend = build_dataclass(BackendSpec, _table(table, "backend"), "backend")
    _check_backend(backend)
    stages = None
    if "stages" in table or any(p.stage == "measured" for p in parts):
        stages = build_dataclass(StagesSpec, _table(table, "stages"), "stages")
        _check_stages(stages, parts, islands is not None, backend.mode)
    if backend.mode == "generational" and islands is not None:
        raise SpecError("backend.mode: 'generational' runs one population but the spec has [islands]; use "
                        "\"islands\", \"auto\" or \"local\", or remove the [islands] table")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise SpecError(f"description: expected a string, got {description!r}")
    resolved = apply_overrides(table, {"data.path": str(data.path) if data else None})
    return RunSpec(name=name, description=description, seed=seed, space=space, objectives=parts, data=data,
                   search=search, islands=islands, backend=backend, table=resolved, stages=stages)


def _table(table: dict[str, Any], key: str) -> dict[str, Any]:
    value = table.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(f"{key}: expected a table, got {value!r}")
    return value


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def locate(spec_or_preset: str) -> Path:
    """A spec file path, or the shipped preset of that name."""
    path = Path(spec_or_preset).expanduser()
    if path.is_file():
        return path
    preset = PRESETS_DIR / f"{spec_or_preset}.toml"
    if preset.is_file():
        return preset
    raise SpecError(f"SPEC: {spec_or_preset!r} is neither a file nor a preset; {_suggest(spec_or_preset, preset_names())}")


def read_table(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML ({exc}); fix the syntax at that line") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start} is 0x{exc.object[exc.start]:02x}); save the spec "
                        "as UTF-8") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror})") from None


def load_spec(spec_or_preset: str, overrides: dict[str, Any] | None = None) -> RunSpec:
    path = locate(spec_or_preset)
    table = apply_overrides(read_table(path), overrides or {})
    return parse_spec(table, path.stem, path.parent.resolve())
