"""The megakernel schedule space: the GA proposes placements, orders, tile sizes and synchronisation granularity;
the validator rejects unsafe schedules; the cost model (or a GPU) scores the rest.

A genome is a `Genome`: an index into the space's tilings, a `Plan`-like triple for that tiling's tasks (indexed
as in the unfused task graph): the worker of each task, its priority within its worker (ascending), and the
synchronisation in front of each op ("barrier", "join" or "tile"), plus which RMSNorms are fused into their
consumers (redundant work for one synchronisation point less). `schedule(genome)` turns it into the IR; the first population holds the naive
lowering of every tiling (round-robin tiles, one grid barrier between ops) plus its counter-synchronised variants.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from search.protocols import Space, UserError
from spaces.megakernel.ir import Schedule, to_json
from spaces.megakernel.lower import (
    SYNC_MODES,
    LlamaShape,
    Plan,
    Tiling,
    build_schedule,
    dependencies,
    naive_plan,
    norm_count,
    task_graph,
)


@dataclass(frozen=True)
class Genome:
    tiling: int
    worker: tuple[int, ...]
    priority: tuple[int, ...]
    sync: tuple[str, ...]
    fuse: tuple[bool, ...] = ()


class MegakernelSpace(Space):
    @dataclass(frozen=True)
    class Config:
        hidden_size: int = 256          # the decoder searched over (a LlamaConfig's fields)
        intermediate_size: int = 688
        num_hidden_layers: int = 2
        num_attention_heads: int = 8
        num_key_value_heads: int = 4
        vocab_size: int = 1024
        max_position_embeddings: int = 16
        workers: int = 16               # persistent workers (blocks), at most `capacity`
        capacity: int = 132             # co-resident blocks the device allows (H100: 132 SMs)
        rows: tuple[int, ...] = (16, 32, 64)   # tile sizes (output rows per projection task) to choose from
        heads: tuple[int, ...] = (1, 2)        # heads per attention / KV task to choose from

    emit_languages = ("json", "cuda")

    def __init__(self, config, context):
        super().__init__(config, context)
        c = config
        for name in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "vocab_size", "workers", "capacity"):
            if getattr(c, name) < 1:
                raise UserError(f"space.{name}: must be >= 1; use a positive integer")
        if c.num_attention_heads % c.num_key_value_heads or c.hidden_size % c.num_attention_heads:
            raise UserError("space.num_attention_heads: must divide hidden_size and be a multiple of num_key_value_heads")
        if not c.rows or not c.heads or min(c.rows) < 1 or min(c.heads) < 1:
            raise UserError("space.rows/heads: give non-empty lists of positive tile sizes, e.g. rows = [16, 32]")
        self.shape = LlamaShape(c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.num_attention_heads,
                                c.num_key_value_heads, c.vocab_size, c.max_position_embeddings)
        self.tilings = [Tiling(r, h, c.workers, c.capacity) for r, h in itertools.product(c.rows, c.heads)]

    @cached_property
    def _graphs(self):
        return [task_graph(self.shape, t) for t in self.tilings]

    @cached_property
    def _deps(self):
        return [dependencies(g) for g in self._graphs]

    def _fused(self, tiling: int, fuse: tuple[bool, ...]):
        """(graph, dependencies, index of each of its tasks in the unfused graph), cached per fusion pattern."""
        cache = self.__dict__.setdefault("_fused_cache", {})
        key = (tiling, fuse)
        if key not in cache:
            graph = task_graph(self.shape, self.tilings[tiling], fuse or None)
            index = {t.name: i for i, t in enumerate(self._graphs[tiling].tasks)}
            cache[key] = (graph, dependencies(graph), [index[t.name] for t in graph.tasks])
        return cache[key]

    def __getstate__(self):  # caches are rebuilt on the worker
        return {k: v for k, v in self.__dict__.items() if k not in ("_graphs", "_deps", "_fused_cache", "_built")}

    def naive(self, tiling: int, sync: str = "barrier") -> Genome:
        p = naive_plan(self._graphs[tiling], sync)
        return Genome(tiling, p.worker, tuple(range(len(p.worker))), p.sync, (False,) * norm_count(self.shape))

    def schedule(self, g: Genome) -> Schedule:
        """The IR for `g` (the validator and the makespan objective both ask; the last few are kept)."""
        built = self.__dict__.setdefault("_built", {})
        if g not in built:
            if len(built) > 64:
                built.clear()
            graph, deps, index = self._fused(g.tiling, tuple(g.fuse))
            plan = Plan(tuple(g.worker[i] for i in index), tuple(float(g.priority[i]) for i in index), g.sync,
                        self.config.workers)
            built[g] = build_schedule(graph, plan, deps)
        return built[g]

    def random(self, rng):
        g = self.naive(int(rng.integers(len(self.tilings))), SYNC_MODES[int(rng.integers(3))])
        for _ in range(int(rng.integers(1, 8))):
            g = self.mutate(g, rng)
        return g

    def initial(self, rng, size):
        """The naive lowering of every tiling (one barrier between ops), then mutants of them: the search has to
        discover counters, placement and order itself."""
        seeds = [self.naive(t, "barrier") for t in range(len(self.tilings))]
        out = seeds[:size]
        while len(out) < size:
            out.append(self.mutate(seeds[int(rng.integers(len(seeds)))], rng))
        return out

    def mutate(self, g: Genome, rng):
        graph = self._graphs[g.tiling]
        n, W = len(graph.tasks), self.config.workers
        kind = rng.random()
        if kind < 0.1 and len(self.tilings) > 1:
            other = self.naive(int(rng.integers(len(self.tilings))), "barrier")
            return Genome(other.tiling, other.worker, other.priority, g.sync, g.fuse)
        if kind < 0.18:  # fuse or un-fuse one RMSNorm into its consumers
            fuse = list(g.fuse)
            k = int(rng.integers(len(fuse)))
            fuse[k] = not fuse[k]
            return Genome(g.tiling, g.worker, g.priority, g.sync, tuple(fuse))
        if kind < 0.35:  # synchronisation granularity of one op, or of a run of consecutive ops
            a = int(rng.integers(1, graph.phases))
            b = a + 1 if rng.random() < 0.6 else int(rng.integers(a + 1, graph.phases + 1))
            sync = list(g.sync)
            sync[a:b] = [SYNC_MODES[int(rng.integers(3))]] * (b - a)
            return Genome(g.tiling, g.worker, g.priority, tuple(sync), g.fuse)
        if kind < 0.5:  # move one task to another worker
            t = int(rng.integers(n))
            worker = list(g.worker)
            worker[t] = int(rng.integers(W))
            return Genome(g.tiling, tuple(worker), g.priority, g.sync, g.fuse)
        if kind < 0.6:  # co-locate a task with one of its producers: that dependency then needs no sync at all
            t = int(rng.integers(n))
            deps = self._deps[g.tiling][t]
            if deps:
                worker = list(g.worker)
                worker[t] = g.worker[deps[int(rng.integers(len(deps)))]]
                return Genome(g.tiling, tuple(worker), g.priority, g.sync, g.fuse)
        if kind < 0.75:  # rotate one op's tiles over the workers (rebalances where ops are uneven)
            p = int(rng.integers(graph.phases))
            shift = int(rng.integers(1, W))
            worker = tuple((w + shift) % W if graph.tasks[t].phase == p else w for t, w in enumerate(g.worker))
            return Genome(g.tiling, worker, g.priority, g.sync, g.fuse)
        # reorder: move one task earlier or later in priority (lets independent work overlap across ops)
        t = int(rng.integers(n))
        priority = list(g.priority)
        priority[t] += int(rng.integers(-8, 9))
        return Genome(g.tiling, g.worker, tuple(priority), g.sync, g.fuse)

    def crossover(self, a: Genome, b: Genome, rng):
        if a.tiling != b.tiling:
            return a, b
        phases = np.array([t.phase for t in self._graphs[a.tiling].tasks])
        take = rng.random(int(phases.max()) + 1) < 0.5
        mask = take[phases]

        def mix(x, y, m):
            return tuple(xi if mi else yi for xi, yi, mi in zip(x, y, m))

        f = rng.random(len(a.fuse)) < 0.5
        c1 = Genome(a.tiling, mix(a.worker, b.worker, mask), mix(a.priority, b.priority, mask), mix(a.sync, b.sync, take),
                    mix(a.fuse, b.fuse, f))
        c2 = Genome(a.tiling, mix(b.worker, a.worker, mask), mix(b.priority, a.priority, mask), mix(b.sync, a.sync, take),
                    mix(b.fuse, a.fuse, f))
        return c1, c2

    def key(self, g: Genome):
        return g

    def describe(self, g: Genome) -> str:
        t = self.tilings[g.tiling]
        modes = {m: g.sync[1:].count(m) for m in SYNC_MODES}
        return f"rows={t.rows} heads={t.heads} workers={t.workers} sync={modes} fused_norms={sum(g.fuse)}/{len(g.fuse)}"

    def emit(self, g: Genome, lang: str) -> str:
        s = self.schedule(g)
        if lang == "json":
            return to_json(s) + "\n"
        if lang == "cuda":
            from spaces.megakernel.emit_cuda import emit_cuda

            return emit_cuda(s)
        raise self.unsupported(lang)
