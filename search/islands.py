"""The island model: K populations evolving apart, exchanging their best every few generations.

Each island is an ordinary `EngineState` with its own seed (spawned from the run seed), stepped by the same
`search.engine.step`. Migration is synchronous per epoch: every island runs `migration_interval` generations,
then each sends its best `migrants` to its neighbour (a ring, or a random derangement drawn from the driver's
seeded generator). Islands are hosted by Ray actors that evolve them `migration_interval` generations at a time,
selection and variation included, so cheap evaluations pay one round trip per epoch instead of one per generation.
The driver keeps every island's whole state and sends it in each epoch (the caches only as the entries new since
the last epoch, which the actors keep between epochs), so

* the result does not depend on how many actors (or machines) host the islands: same seed, same front;
* an actor that dies is restarted by Ray and the epoch is replayed from the island's last state (whole cache
  included), which is exactly what the checkpoint on disk holds, so nothing is lost and nothing changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any

import numpy as np

from search.engine import EngineState, GenerationReport, SearchSettings, initialise, step, stop_reason
from search.evaluation import LocalEvaluator
from search.protocols import Objective, Space
from search.selection import Individual, rank_order, select_survivors, update_front

# An island actor that dies is restarted, and its epoch replayed, at most this many times before the driver runs
# that island itself.
MAX_ACTOR_RESTARTS = 3


@dataclass(frozen=True)
class IslandSettings:
    """islands: number of populations (each of `SearchSettings.population`). migration_interval: generations per
    epoch. migrants: individuals each island sends per epoch. topology: "ring" or "random". hosts: Ray actors
    hosting the islands (0 = one per island); it changes speed, never results."""

    islands: int = 4
    migration_interval: int = 5
    migrants: int = 2
    topology: str = "ring"
    hosts: int = 0


@dataclass
class ArchipelagoState:
    """All islands plus the driver's own state: what an island run checkpoints and resumes from. logbook: one line
    per epoch (epoch, generation, evaluations, elapsed wall seconds)."""

    epoch: int
    islands: list[EngineState]
    front: list[Individual]
    rng_state: dict[str, Any]
    elapsed: float = 0.0
    stop_reason: str | None = None
    logbook: list[dict[str, Any]] = field(default_factory=list)

    @property
    def generation(self) -> int:
        return min(s.generation for s in self.islands)

    @property
    def evaluations(self) -> int:
        return sum(s.evaluations for s in self.islands)

    @property
    def population(self) -> list[Individual]:
        return [ind for s in self.islands for ind in s.population]


class IslandHost:
    """Steps islands for the driver. Holds the space, objective and settings (shipped once) and, between epochs, each
    of its islands' evaluation caches, so that an epoch ships only the cache entries that are new on either side."""

    def __init__(self, space: Space, objective: Objective, settings: SearchSettings, timeout: float | None):
        self.space, self.objective, self.settings = space, objective, settings
        self.evaluator = LocalEvaluator(objective, timeout=timeout)
        self.caches: dict[int, dict] = {}  # island index -> its cache, in step with the driver's copy

    def start(self, islands: list[tuple[int, int]]) -> list[tuple[EngineState, list, list[GenerationReport]]]:
        """Generation 0 of each (island index, seed): (state without its cache, the cache's entries, reports)."""
        out = []
        for index, seed in islands:
            state, report = initialise(self.space, self.objective, self.settings, seed, self.evaluator)
            self.caches[index] = state.cache
            out.append((replace(state, cache={}, logbook=[]), list(state.cache.items()), [report]))
        return out

    def advance(self, islands: list[tuple[int, EngineState, list, bool]], generations: int,
                ) -> list[tuple[EngineState, list, list[GenerationReport]]]:
        """Step each (island index, state without cache, cache entries, full) `generations` times. `full`: the
        entries are the whole cache (first epoch here, or a replay); otherwise the ones added since the last epoch
        (migrants). Returns (state without cache or logbook, entries added by this epoch, reports)."""
        out = []
        for index, state, entries, full in islands:
            if not full and index not in self.caches:
                raise LookupError(f"island {index}'s cache is not held here")  # the driver replays with it
            cache = dict(entries) if full else self.caches[index]
            if not full:
                cache.update(entries)
            self.caches[index] = cache
            before = len(cache)
            state = replace(state, cache=cache, logbook=[])
            reports = []
            for _ in range(generations):
                state, report = step(state, self.space, self.objective, self.settings, self.evaluator)
                reports.append(report)
            out.append((replace(state, cache={}, logbook=[]), list(islice(cache.items(), before, None)), reports))
        return out


def island_seeds(seed: int, count: int) -> list[int]:
    """Independent per-island seeds derived from the run seed (numpy SeedSequence spawning)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(count)]


def destinations(count: int, topology: str, rng: np.random.Generator) -> list[int]:
    """Where island i sends its migrants: the next island on a ring, or a random derangement (no self-loops)."""
    if count < 2:
        return [0] * count
    if topology == "ring":
        return [(i + 1) % count for i in range(count)]
    while True:
        perm = rng.permutation(count)
        if all(int(p) != i for i, p in enumerate(perm)):
            return [int(p) for p in perm]


def migrate(states: list[EngineState], objective: Objective, settings: SearchSettings, islands: IslandSettings,
            rng: np.random.Generator) -> list[EngineState]:
    """Each island's best `migrants` join its destination, which keeps its best `population` of old + newcomers."""
    targets = destinations(len(states), islands.topology, rng)
    incoming: list[list[Individual]] = [[] for _ in states]
    for i, state in enumerate(states):
        order = rank_order(state.population, objective.directions)
        incoming[targets[i]] += [state.population[j] for j in order[: islands.migrants]]
    migrated = []
    for state, newcomers in zip(states, incoming):
        cache = state.cache
        for ind in newcomers:
            cache.setdefault(ind.key, ind.evaluation)
        population = select_survivors(state.population + newcomers, settings.population, objective.directions)
        migrated.append(replace(state, population=population, cache=cache))
    return migrated


class _Hosts:
    """Runs `IslandHost` calls in-process or on Ray actors (island i on host i mod count), replaying a host's share
    of an epoch, with whole caches, when its actor dies."""

    def __init__(self, space, objective, settings, islands: IslandSettings, timeout, use_ray: bool):
        self.use_ray = use_ray
        self.args = (space, objective, settings, timeout)
        count = islands.hosts or islands.islands
        self.count = max(1, min(count, islands.islands))
        self.held: set[int] = set()  # islands whose cache a host holds, in step with the driver's
        if use_ray:
            import ray

            remote = ray.remote(max_restarts=MAX_ACTOR_RESTARTS, max_task_retries=0)(IslandHost)
            refs = [ray.put(a) for a in self.args]  # shipped through the object store once, not per actor
            self.actors = [remote.remote(*refs) for _ in range(self.count)]
        self.local = IslandHost(*self.args)

    def call(self, method: str, islands: int, parcel: Callable[[int, bool], Any], *extra) -> list[Any]:
        """`method` for islands 0..islands-1; `parcel(i, full)` is island i's argument, `full` when its host does
        not hold its cache. Results in island order."""
        return self.collect(self.submit(method, islands, parcel, *extra))

    def submit(self, method: str, islands: int, parcel: Callable[[int, bool], Any], *extra) -> dict[str, Any]:
        """Start `call`'s work and return at once (on Ray; in-process it is done here); `collect` waits for it, so
        the driver can checkpoint the last epoch while the hosts run the next."""
        groups = {h: list(range(h, islands, self.count)) for h in range(self.count)}
        groups = {h: g for h, g in groups.items() if g}
        job = {"method": method, "islands": islands, "parcel": parcel, "extra": extra, "groups": groups}
        if not self.use_ray:
            results: list[Any] = [None] * islands
            for group in groups.values():
                out = getattr(self.local, method)([parcel(i, i not in self.held) for i in group], *extra)
                for i, r in zip(group, out):
                    results[i] = r
                self.held.update(group)
            job["results"] = results
            return job
        job["refs"] = {h: getattr(self.actors[h], method).remote([parcel(i, i not in self.held) for i in g], *extra)
                       for h, g in groups.items()}
        return job

    def collect(self, job: dict[str, Any]) -> list[Any]:
        if "results" in job:
            return job["results"]
        import ray

        method, parcel, extra = job["method"], job["parcel"], job["extra"]
        results: list[Any] = [None] * job["islands"]
        for h, ref in job["refs"].items():
            group, out = job["groups"][h], None
            for _ in range(MAX_ACTOR_RESTARTS + 1):
                try:
                    out = ray.get(ref)
                    break
                except ray.exceptions.RayError:  # the actor died (Ray restarts it): replay with whole caches
                    self.held.difference_update(group)
                    ref = getattr(self.actors[h], method).remote([parcel(i, True) for i in group], *extra)
            if out is None:  # restarts exhausted: the driver runs this host's islands itself
                out = getattr(self.local, method)([parcel(i, True) for i in group], *extra)
                self.held.difference_update(group)
            else:
                self.held.update(group)
            for i, r in zip(group, out):
                results[i] = r
        return results

    def close(self):
        if self.use_ray:
            import ray

            for actor in self.actors:
                ray.kill(actor, no_restart=True)


def _epoch_line(state: ArchipelagoState) -> dict[str, Any]:
    return {"epoch": state.epoch, "generation": state.generation, "evaluations": state.evaluations,
            "elapsed": round(state.elapsed, 6)}


def _merge(state: EngineState, light: EngineState, entries: list, reports: list[GenerationReport]) -> EngineState:
    """The driver's full island state: a host's state without cache, plus the driver's cache and logbook."""
    cache = state.cache if state is not None else {}
    cache.update(entries)
    logbook = (list(state.logbook) if state is not None else []) + [r.stats for r in reports]
    return replace(light, cache=cache, logbook=logbook)


def evolve_islands(space: Space, objective: Objective, settings: SearchSettings, islands: IslandSettings,
                   seed: int = 0, state: ArchipelagoState | None = None, use_ray: bool = False,
                   timeout: float | None = None,
                   on_epoch: Callable[[ArchipelagoState, list[list[GenerationReport]]], None] | None = None,
                   ) -> ArchipelagoState:
    """Run K islands to a stopping rule (generations per island, total evaluations, wall time, target on the
    global front). Same seed and settings give the same global front whatever `use_ray` and `islands.hosts`.

    The driver keeps every island's whole state (what a checkpoint holds); hosts keep each island's cache between
    epochs, so an epoch ships populations and only the cache entries new on either side."""
    hosts = _Hosts(space, objective, settings, islands, timeout, use_ray)
    try:
        if state is None:
            start = time.perf_counter()
            seeds = island_seeds(seed, islands.islands)
            started = hosts.call("start", islands.islands, lambda i, full: (i, seeds[i]))
            states = [_merge(None, light, entries, reports) for light, entries, reports in started]
            front = update_front([], [ind for s in states for ind in s.front], objective.directions,
                                 settings.hall_of_fame)
            rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(islands.islands + 1)[-1])
            state = ArchipelagoState(epoch=0, islands=states, front=front, rng_state=rng.bit_generator.state,
                                     elapsed=time.perf_counter() - start)
            state.logbook.append(_epoch_line(state))
            if on_epoch:
                on_epoch(state, [r for _, _, r in started])

        def launch(state: ArchipelagoState, synced: list[int]) -> tuple[dict[str, Any], int]:
            """Submit the next epoch; a host holding island i's cache has its first synced[i] entries."""
            generations = min(islands.migration_interval, settings.generations - state.generation)
            current = state.islands

            def parcel(i: int, full: bool):
                items = current[i].cache.items()
                entries = list(items) if full else list(islice(items, synced[i], None))
                return i, replace(current[i], cache={}, logbook=[]), entries, full

            return hosts.submit("advance", len(current), parcel, generations), generations

        mark, pending, synced = time.perf_counter(), None, [len(s.cache) for s in state.islands]
        while (reason := stop_reason(state, objective, settings)) is None:
            job, generations = pending or launch(state, synced)
            advanced = hosts.collect(job)
            states = [_merge(s, light, entries, reports)
                      for s, (light, entries, reports) in zip(state.islands, advanced)]
            synced = [len(s.cache) for s in states]  # migrants, added next, reach the hosts as new entries
            rng = np.random.default_rng()
            rng.bit_generator.state = state.rng_state
            if state.generation + generations < settings.generations:
                states = migrate(states, objective, settings, islands, rng)
            newcomers = [ind for s in states for ind in s.front]
            front = update_front(state.front, newcomers, objective.directions, settings.hall_of_fame)
            now = time.perf_counter()
            state = ArchipelagoState(epoch=state.epoch + 1, islands=states, front=front,
                                     rng_state=rng.bit_generator.state, elapsed=state.elapsed + now - mark,
                                     logbook=state.logbook + [])
            state.logbook.append(_epoch_line(state))
            mark = now
            # On Ray the next epoch starts before this one is checkpointed: the actors work while the driver writes.
            pending = launch(state, synced) if use_ray and stop_reason(state, objective, settings) is None else None
            if on_epoch:
                on_epoch(state, [r for _, _, r in advanced])
    finally:
        hosts.close()
    state.stop_reason = reason
    return state
