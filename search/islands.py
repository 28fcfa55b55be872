"""The island model: K populations evolving apart, exchanging their best every few generations.

Each island is an ordinary `EngineState` with its own seed (spawned from the run seed), stepped by the same
`search.engine.step`. Migration is per epoch: every island runs `migration_interval` generations, then each sends
its best `migrants` to its destination (the next island on a ring, or a random derangement drawn from the driver's
seeded generator). Islands live on hosts (Ray actors, or the driver itself) that keep each island's whole state
between epochs and evolve it `migration_interval` generations per call, selection and variation included, so cheap
evaluations pay one round trip per epoch instead of one per generation.

An epoch's call gives back two things. Its summary (the island's emigrants and front, its counts: a few kB) is what
migration waits for: a host's next epoch starts as soon as its own islands and those sending to them are done,
with no barrier across the archipelago. Its details (the island's state without cache, the cache entries the epoch
added, the generation reports: ~150 kB for 32 individuals of 400 bits) are fetched while the hosts work, and keep
the driver's copy of every island in step (what a checkpoint holds and `on_epoch` sees). So

* the result does not depend on how many actors (or machines) host the islands, or on which finishes first: same
  seed, same front (and same island states), Ray or not;
* a slow island delays the islands it sends to, not the whole archipelago, and no population passes through the
  driver on the way from one epoch to the next;
* an actor that dies is restarted by Ray and the epoch is replayed from the driver's copy of its islands (whole
  cache included), which is exactly what the checkpoint on disk holds, so nothing is lost and nothing changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
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


@dataclass(frozen=True)
class EpochSummary:
    """What the migration barrier needs from one island after an epoch: its best `migrants` (emigrants), its
    front, and its generation and evaluation counts."""

    emigrants: list[Individual]
    front: list[Individual]
    generation: int
    evaluations: int


# An island's part of an epoch as the driver's copy takes it in: (state without cache or logbook, the cache entries
# the epoch added, the epoch's generation reports).
Details = tuple[EngineState, list, list[GenerationReport]]


def emigrants(population: list[Individual], objective: Objective, count: int) -> list[Individual]:
    """The `count` best of an island, best first: what it sends at a migration."""
    return [population[j] for j in rank_order(population, objective.directions)[:count]]


def receive(state: EngineState, newcomers: list[Individual], objective: Objective,
            settings: SearchSettings) -> EngineState:
    """The island after a migration: newcomers join it (and its cache), and it keeps its best `population`."""
    for ind in newcomers:
        state.cache.setdefault(ind.key, ind.evaluation)
    population = select_survivors(state.population + newcomers, settings.population, objective.directions)
    return replace(state, population=population)


class IslandHost:
    """Evolves islands for the driver. Holds the space, objective and settings (shipped once) and, between epochs,
    each of its islands' whole state, so that an epoch ships only migrants in and a summary plus details out."""

    def __init__(self, space: Space, objective: Objective, settings: SearchSettings, timeout: float | None,
                 migrants: int = 2):
        self.space, self.objective, self.settings, self.migrants = space, objective, settings, migrants
        self.evaluator = LocalEvaluator(objective, timeout=timeout)
        self.islands: dict[int, EngineState] = {}  # island index -> its state (cache included), as the driver's

    def _out(self, index: int, state: EngineState, before: int, reports: list[GenerationReport],
             ) -> tuple[EpochSummary, Details]:
        self.islands[index] = state
        summary = EpochSummary(emigrants(state.population, self.objective, self.migrants), state.front,
                               state.generation, state.evaluations)
        return summary, (replace(state, cache={}, logbook=[]), list(islice(state.cache.items(), before, None)),
                         reports)

    def start(self, islands: list[tuple[int, int]]) -> tuple[list[EpochSummary], list[Details]]:
        """Generation 0 of each (island index, seed)."""
        out = []
        for index, seed in islands:
            state, report = initialise(self.space, self.objective, self.settings, seed, self.evaluator)
            out.append(self._out(index, replace(state, logbook=[]), 0, [report]))
        return [s for s, _ in out], [d for _, d in out]

    def advance(self, islands: list[tuple[int, EngineState | None, list[Individual] | None]], generations: int,
                ) -> tuple[list[EpochSummary], list[Details]]:
        """Migrate, then step `generations` times, each (island index, whole state or None, newcomers or None).
        A whole state (the driver's copy, cache included: first epoch here, or a replay) replaces what is held;
        newcomers (None: no migration before this epoch) join the island first. Returns summaries and details."""
        out = []
        for index, whole, newcomers in islands:
            if whole is not None:
                state = replace(whole, cache=dict(whole.cache))  # its own cache: the driver's copy stays as it is
            elif index in self.islands:
                state = self.islands[index]
            else:
                raise LookupError(f"island {index} is not held here")  # the driver replays it whole
            if newcomers is not None:
                state = receive(state, newcomers, self.objective, self.settings)
            state, before, reports = replace(state, logbook=[]), len(state.cache), []
            for _ in range(generations):
                state, report = step(state, self.space, self.objective, self.settings, self.evaluator)
                reports.append(report)
            out.append(self._out(index, state, before, reports))
        return [s for s, _ in out], [d for _, d in out]


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


def route(sent: list[list[Individual]], topology: str, rng: np.random.Generator) -> list[list[Individual]]:
    """Newcomers of each island, given what each island sends: in sender order, per `destinations`."""
    targets = destinations(len(sent), topology, rng)
    incoming: list[list[Individual]] = [[] for _ in sent]
    for i, individuals in enumerate(sent):
        incoming[targets[i]] += individuals
    return incoming


def migrate(states: list[EngineState], objective: Objective, settings: SearchSettings, islands: IslandSettings,
            rng: np.random.Generator) -> list[EngineState]:
    """Each island's best `migrants` join its destination, which keeps its best `population` of old + newcomers."""
    incoming = route([emigrants(s.population, objective, islands.migrants) for s in states], islands.topology, rng)
    return [receive(s, newcomers, objective, settings) for s, newcomers in zip(states, incoming)]


@dataclass
class _Share:
    """One host's part of an epoch: its islands, the call, how to rebuild an island's argument whole (for a replay
    from the driver's copy), and the call's two results (Ray object refs, or values when run in-process).
    `summaries` holds the values once they have arrived."""

    host: int
    group: list[int]
    method: str
    extra: tuple
    whole: Callable[[int, list[EngineState] | None], Any]
    summaries: Any = None
    details: Any = None
    done_here: bool = False
    fetched: bool = False
    failures: int = 0


class _Hosts:
    """Runs `IslandHost` calls in-process or on Ray actors (island i on host i mod count). `held`: islands whose
    whole state their host holds, in step with the driver's copy; the others are sent whole."""

    def __init__(self, space, objective, settings, islands: IslandSettings, timeout, use_ray: bool):
        self.use_ray = use_ray
        args = (space, objective, settings, timeout, islands.migrants)
        count = max(1, min(islands.hosts or islands.islands, islands.islands))
        self.groups = [list(range(h, islands.islands, count)) for h in range(count)]
        self.held: set[int] = set()
        self.local = IslandHost(*args)
        if use_ray:
            import ray

            remote = ray.remote(max_restarts=MAX_ACTOR_RESTARTS, max_task_retries=0)(IslandHost)
            refs = [ray.put(a) for a in args]  # shipped through the object store once, not per actor
            self.actors = [remote.remote(*refs) for _ in range(count)]

    def holds(self, host: int) -> bool:
        return all(i in self.held for i in self.groups[host])

    def start(self, seeds: list[int]) -> list[_Share]:
        """Generation 0 of every island (seeds[i] for island i)."""
        return [self._submit(h, "start", lambda i: (i, seeds[i]), lambda i, mirror: (i, seeds[i]))
                for h in range(len(self.groups))]

    def advance(self, host: int, newcomers: dict[int, list[Individual] | None], generations: int,
                mirror: list[EngineState] | None) -> _Share:
        """One epoch of `host`'s islands: held islands get `newcomers[i]`; the others their whole state from
        `mirror` (the driver's copy, which must then be the island at the start of this epoch, newcomers in)."""
        def whole(i: int, copy: list[EngineState] | None) -> tuple:
            if copy is None:
                raise RuntimeError(f"island {i} must be sent whole, but the driver's copy is not up to date")
            return i, copy[i], None

        return self._submit(host, "advance", lambda i: (i, None, newcomers[i]) if i in self.held else whole(i, mirror),
                            whole, generations)

    def _submit(self, host: int, method: str, parcel: Callable[[int], Any],
                whole: Callable[[int, list[EngineState] | None], Any], *extra) -> _Share:
        share = _Share(host, self.groups[host], method, extra, whole)
        self._call(share, [parcel(i) for i in share.group], here=not self.use_ray)
        if not self.use_ray:
            self.held.update(share.group)
        return share

    def _call(self, share: _Share, parcels: list, here: bool) -> None:
        if here:
            share.summaries, share.details = getattr(self.local, share.method)(parcels, *share.extra)
            share.done_here = True
        else:
            method = getattr(self.actors[share.host], share.method)
            share.summaries, share.details = method.options(num_returns=2).remote(parcels, *share.extra)

    def arrivals(self, shares: list[_Share], mirror: list[EngineState] | None) -> Iterator[_Share]:
        """Each share once its summaries have arrived, in the order they arrive (`summaries` then holds them). A
        share whose actor died is replayed whole from `mirror`, the driver's copy at the start of the epoch."""
        if not self.use_ray:
            yield from shares
            return
        import ray

        waiting = {share.summaries: share for share in shares if not share.done_here}
        yield from (share for share in shares if share.done_here)
        while waiting:
            ready, _ = ray.wait(list(waiting), num_returns=1)  # blocks in Ray's core worker: no polling here
            share = waiting.pop(ready[0])
            try:
                share.summaries = ray.get(share.summaries)
            except ray.exceptions.RayError:  # the actor died (Ray restarts it): replay with whole states
                self.held.difference_update(share.group)
                share.failures += 1
                last = share.failures > MAX_ACTOR_RESTARTS  # restarts spent: the driver runs the share itself
                self._call(share, [share.whole(i, mirror) for i in share.group], here=last)
                if not last:
                    waiting[share.summaries] = share
                    continue
            else:
                self.held.update(share.group)
            yield share

    def fetch(self, share: _Share, mirror: list[EngineState] | None) -> None:
        """Bring a share's details here (after its summaries arrived). One whose object was lost with its node is
        recomputed in-process from `mirror`, the driver's copy at the start of the epoch."""
        if share.done_here or share.fetched:
            return
        import ray

        try:
            share.details = ray.get(share.details)
        except ray.exceptions.RayError:  # the actor still holds its islands: it made the summary
            self._call(share, [share.whole(i, mirror) for i in share.group], here=True)
        share.fetched = True

    def details(self, shares: list[_Share], mirror: list[EngineState] | None) -> list[Details]:
        """Every island's details, in island order (after `arrivals`)."""
        for share in shares:
            self.fetch(share, mirror)
        return _in_order(shares, [s.details for s in shares])

    def close(self):
        if self.use_ray:
            import ray

            for actor in self.actors:
                ray.kill(actor, no_restart=True)


def _in_order(shares: list[_Share], results: list[list[Any]]) -> list[Any]:
    """Per-host result lists back in island order."""
    out: list[Any] = [None] * sum(len(s.group) for s in shares)
    for share, result in zip(shares, results):
        for i, r in zip(share.group, result):
            out[i] = r
    return out


@dataclass(frozen=True)
class _Progress:
    """The archipelago as the barrier sees it, before the details arrive: enough for `stop_reason`."""

    front: list[Individual]
    generation: int
    evaluations: int
    elapsed: float


def _epoch_line(state: ArchipelagoState) -> dict[str, Any]:
    return {"epoch": state.epoch, "generation": state.generation, "evaluations": state.evaluations,
            "elapsed": round(state.elapsed, 6)}


def _incoming(j: int, sources: list[list[int]], summaries: list[EpochSummary | None]) -> list[Individual]:
    """Island j's newcomers: the emigrants of the islands sending to it, in their order (as `route` gives)."""
    return [ind for i in sources[j] for ind in summaries[i].emigrants]


def _merge(state: EngineState | None, details: Details) -> EngineState:
    """The driver's copy of an island: a host's state without cache, plus the driver's cache and logbook."""
    light, entries, reports = details
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

    On Ray there is no global barrier: a host starts its next epoch as soon as its own islands and the islands
    sending them migrants have finished this one (the destinations are drawn before the epoch ends), so a slow
    island delays its neighbours, not the archipelago. The stopping rules are checked once every island is in; an
    epoch started by then is dropped if the run stops (its result would not be used either way). The driver
    brings its copy of the islands up to date and calls `on_epoch` (a checkpoint) while the hosts work."""
    hosts, count = _Hosts(space, objective, settings, islands, timeout, use_ray), islands.islands
    try:
        if state is None:
            begin = time.perf_counter()
            shares = hosts.start(island_seeds(seed, count))
            for _ in hosts.arrivals(shares, None):
                pass
            summaries = _in_order(shares, [s.summaries for s in shares])
            details = hosts.details(shares, None)
            front = update_front([], [ind for s in summaries for ind in s.front], objective.directions,
                                 settings.hall_of_fame)
            rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(count + 1)[-1])
            state = ArchipelagoState(epoch=0, islands=[_merge(None, d) for d in details], front=front,
                                     rng_state=rng.bit_generator.state, elapsed=time.perf_counter() - begin)
            state.logbook.append(_epoch_line(state))
            if on_epoch:
                on_epoch(state, [d[2] for d in details])
        rng = np.random.default_rng()
        rng.bit_generator.state = state.rng_state
        # `newcomers[i]`: what island i takes in before its next epoch (None: no migration); the driver's copy has
        # them already, the hosts get them with that epoch's call.
        mark, newcomers, following = time.perf_counter(), [None] * count, {}
        reason = stop_reason(state, objective, settings)
        while reason is None:
            generations = min(islands.migration_interval, settings.generations - state.generation)
            after = min(islands.migration_interval, settings.generations - state.generation - generations)
            migrating = after > 0
            shares = [following.get(h) or hosts.advance(h, dict(enumerate(newcomers)), generations, state.islands)
                      for h in range(len(hosts.groups))]
            targets = destinations(count, islands.topology, rng) if migrating else []
            sources = [[i for i in range(count) if targets[i] == j] for j in range(count)] if migrating else []
            summaries: list[EpochSummary | None] = [None] * count
            following = {}
            for share in hosts.arrivals(shares, state.islands):
                for i, summary in zip(share.group, share.summaries):
                    summaries[i] = summary
                for h, group in enumerate(hosts.groups):  # hosts whose next epoch has all it needs: start it
                    if use_ray and migrating and h not in following and hosts.holds(h) and all(
                            summaries[k] is not None for i in group for k in [i, *sources[i]]):
                        following[h] = hosts.advance(h, {i: _incoming(i, sources, summaries) for i in group},
                                                     after, None)
                hosts.fetch(share, state.islands)  # while the others finish
            newcomers = [_incoming(j, sources, summaries) if migrating else None for j in range(count)]
            front = update_front(state.front, [ind for s in summaries for ind in s.front], objective.directions,
                                 settings.hall_of_fame)
            now = time.perf_counter()
            progress = _Progress(front, min(s.generation for s in summaries), sum(s.evaluations for s in summaries),
                                 state.elapsed + now - mark)
            reason = stop_reason(progress, objective, settings)
            details = hosts.details(shares, state.islands)
            states = [_merge(s, d) for s, d in zip(state.islands, details)]
            if migrating:
                states = [receive(s, n, objective, settings) for s, n in zip(states, newcomers)]
            state = ArchipelagoState(epoch=state.epoch + 1, islands=states, front=front,
                                     rng_state=rng.bit_generator.state, elapsed=progress.elapsed,
                                     logbook=state.logbook + [])
            state.logbook.append(_epoch_line(state))
            mark = now
            if reason is None and use_ray:  # the rest of the next epoch starts before the checkpoint
                following.update({h: hosts.advance(h, dict(enumerate(newcomers)), after, state.islands)
                                  for h in range(len(hosts.groups)) if h not in following})
            if on_epoch:
                on_epoch(state, [d[2] for d in details])
    finally:
        hosts.close()
    state.stop_reason = reason
    return state
