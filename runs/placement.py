"""A spec's `backend.mode` resolved into what runs: "auto" measures the job and picks (search/placement.py).

The choice is pinned in the run directory's spec.toml (backend.mode, and an [islands] table when islands were
derived for a one-population spec), so `evoforge resume` continues exactly the search that was started.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Callable
from typing import Any

from runs.spec import RunSpec, SpecError, apply_overrides
from search.engine import EngineState, GenerationReport
from search.islands import IslandSettings
from search.placement import DERIVED_MIGRATION_INTERVAL, choose, measure

# Smallest population of an island derived from a one-population spec (tournaments and migration need a few).
MIN_DERIVED_ISLAND = 8

Warm = tuple[EngineState, GenerationReport]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def say_in_process_instead(reason: str, log: Callable[[str], None] = _stderr) -> None:
    """The one line told when an embedded Ray fails to start and the run goes on in-process (same front)."""
    log(f"backend: in-process instead: the embedded Ray did not start ({reason})")


def cluster_address(spec: RunSpec) -> str | None:
    return spec.backend.address or os.environ.get("RAY_ADDRESS") or None


def pinned_mode(spec: RunSpec) -> str:
    """The mode without measuring: the spec's, or what "auto" meant before it measured (an old run directory):
    in-process for kind = "local", else Ray (islands on actors for an [islands] spec)."""
    if spec.backend.kind == "local" or spec.backend.mode == "local":
        return "local"
    if spec.backend.mode != "auto":
        return spec.backend.mode
    return "islands" if spec.islands else "generational"


def derived_islands(spec: RunSpec, count: int) -> RunSpec:
    """One population of N as `count` islands of ceil(N / count) (at least MIN_DERIVED_ISLAND), migrating every
    DERIVED_MIGRATION_INTERVAL generations; the island count comes from the spec (or the cluster), never timing."""
    search = spec.search
    population = max(MIN_DERIVED_ISLAND, math.ceil(search.population / count))
    offspring = max(MIN_DERIVED_ISLAND, math.ceil(search.offspring / count)) if search.offspring else 0
    islands = IslandSettings(islands=count, migration_interval=DERIVED_MIGRATION_INTERVAL,
                             migrants=min(2, population))
    table = apply_overrides(spec.table, {"search.population": population, "search.offspring": offspring or None,
                                         "islands.islands": islands.islands,
                                         "islands.migration_interval": islands.migration_interval,
                                         "islands.migrants": islands.migrants})
    return dataclasses.replace(spec, search=dataclasses.replace(search, population=population, offspring=offspring),
                               islands=islands, table=table)


def _pin(spec: RunSpec, mode: str) -> RunSpec:
    table = apply_overrides(spec.table, {"backend.mode": mode})
    return dataclasses.replace(spec, backend=dataclasses.replace(spec.backend, mode=mode), table=table)


def _cluster_cpus(spec: RunSpec) -> int:
    import ray

    from runs.job import cluster_runtime_env
    from search.ray_backend import connect

    started = connect(spec.backend.workers, spec.backend.address, cluster_runtime_env(spec.backend.address))
    cpus = max(1, int(ray.cluster_resources().get("CPU", spec.backend.workers)))
    if started:  # the backend connects again; one owner of the connection keeps shutdown simple
        ray.shutdown()
    return cpus


def place(spec: RunSpec, space: Any, objective: Any, log: Callable[[str], None] = _stderr,
          ) -> tuple[RunSpec, Warm | None]:
    """The spec with its backend.mode pinned, and generation 0 when measuring ran it in-process (a run continues
    from it). "auto" with a cluster address never picks in-process; with an embedded Ray it does whenever starting
    Ray would not pay back, and says so in one line."""
    address = cluster_address(spec)
    if spec.backend.mode == "local" and spec.backend.address and spec.backend.kind == "ray":
        raise SpecError("backend.mode: 'local' runs in-process but --address/backend.address names a cluster; "
                        "set backend.mode = \"auto\" (or drop the address)")
    mode = pinned_mode(spec)
    staged = getattr(spec, "stages", None)  # a staged run (search/fidelity.py) keeps its own evaluators
    if spec.backend.mode != "auto" or spec.backend.kind == "local" or staged or objective.resources:
        if mode == "islands" and spec.islands is None:
            spec = derived_islands(spec, _cluster_cpus(spec) if address else spec.backend.workers)
        return _pin(spec, mode), None
    costs, warm = measure(space, objective, spec.search, spec.seed, spec.backend.timeout or None)
    workers = _cluster_cpus(spec) if address else spec.backend.workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    placement = choose(costs, spec.search, workers, cores, cluster=address is not None,
                       islands_in_spec=spec.islands is not None)
    log(placement.reason)
    if placement.mode == "islands" and spec.islands is None:
        spec = derived_islands(spec, workers)
    keep = warm if placement.mode != "islands" and spec.islands is None else None
    return _pin(spec, placement.mode), keep
