"""Ground truth for small schedules: run the workers under every interleaving and report what can go wrong.

An explicit-state search over (program counter per worker); counter values follow from the counters. Semantics
(the same as spaces/megakernel/ir.py, implemented independently of the validator):

- a worker starts only when fewer than `capacity` started workers are unfinished (blocks wait for a free SM), in any
  order;
- run and signal steps are always enabled; wait(c, n) when c >= n; the grid barrier when every worker is at one.

Reported:
- deadlock: a reachable state where no step is enabled but some worker is unfinished;
- race: a reachable state where two workers are both about to run tasks whose memory overlaps (one writing). Two
  accesses unordered by happens-before can always be brought to such a state, and two that can be there are
  unordered, so this is exactly the set of unordered conflicting pairs;
- order: some interleaving runs two conflicting tasks opposite to the reference order;
- clobber: in reference order, a read through buffer b sees a value last written through another buffer that shares
  its storage (the memory plan reuses memory that is still live).

Partial-order reduction: a signal, an enabled wait or a ready barrier is taken alone (an ample set of one). Those
steps are never disabled by others, only enable others, and are invisible to the race check (the worker is not
about to run a task), so every deadlock and every racing pair of the full state space is still reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spaces.megakernel.ir import Schedule


class StateLimit(Exception):
    """The state space is larger than the explorer was allowed to visit: no verdict."""


@dataclass
class Exploration:
    deadlock: bool = False
    races: set[tuple[str, str]] = field(default_factory=set)
    order: set[tuple[str, str]] = field(default_factory=set)
    clobbers: set[str] = field(default_factory=set)
    states: int = 0

    @property
    def unsafe(self) -> bool:
        return self.deadlock or bool(self.races) or bool(self.order) or bool(self.clobbers)


def _footprints(s: Schedule) -> tuple[list[set[tuple[str, int]]], ...]:
    """Physical (storage, element) sets read, written and accumulated into by each task."""
    where = {b.name: b for b in s.buffers}

    def cells(regions):
        return {(where[r.buffer].storage, where[r.buffer].offset + i) for r in regions for i in range(r.start, r.stop)}

    written = set().union(*(cells(t.writes) | cells(t.accumulates) for t in s.tasks)) if s.tasks else set()
    reads = [cells(t.reads) & written for t in s.tasks]  # read-only memory (weights) can never conflict
    writes = [cells(t.writes) for t in s.tasks]
    adds = [cells(t.accumulates) for t in s.tasks]
    return reads, writes, adds


def _conflict(a: int, b: int, reads, writes, adds) -> bool:
    """Do tasks a and b touch a common element, one writing it? Two accumulates into it commute: no conflict."""
    return bool(writes[a] & (reads[b] | writes[b] | adds[b]) or writes[b] & (reads[a] | adds[a])
                or adds[a] & reads[b] or adds[b] & reads[a])


def _clobbers(s: Schedule) -> set[str]:
    where = {b.name: b for b in s.buffers}
    last: dict[tuple[str, int], str] = {}
    bad = set()
    for t in s.tasks:
        for r in (*t.reads, *t.accumulates):
            b = where[r.buffer]
            for i in range(r.start, r.stop):
                if last.get((b.storage, b.offset + i), r.buffer) != r.buffer:
                    bad.add(t.name)
        for r in (*t.writes, *t.accumulates):
            b = where[r.buffer]
            for i in range(r.start, r.stop):
                last[(b.storage, b.offset + i)] = r.buffer
    return bad


def explore(s: Schedule, max_states: int = 200_000, reduce: bool = True) -> Exploration:
    """Explore every interleaving of `s` (which must be structurally valid) up to `max_states` states;
    `reduce=False` turns partial-order reduction off (every enabled step of every worker is branched on)."""
    reads, writes, adds = _footprints(s)
    T = len(s.tasks)
    conflict = [[_conflict(a, b, reads, writes, adds) for b in range(T)] for a in range(T)]
    position = {}
    for w, p in enumerate(s.programs):
        for i, st in enumerate(p):
            if st.kind == "run":
                position[st.task] = (w, i)
    later_conflicts = [[position[u] for u in range(a + 1, T) if conflict[a][u]] for a in range(T)]
    result = Exploration(clobbers=_clobbers(s))
    W = s.workers
    programs = s.programs
    counters = {c: k for k, c in enumerate(s.counters)}
    start = tuple([-1] * W)
    seen = {start}
    stack = [(start, tuple([0] * len(counters)))]
    while stack:
        pcs, values = stack.pop()
        result.states += 1
        if result.states > max_states:
            raise StateLimit(f"more than {max_states} states")
        pending = []  # (worker, task) about to run
        ample = None
        running = 0
        barrier_ready = True
        moves = []
        for w in range(W):
            pc = pcs[w]
            if pc == -1:
                barrier_ready = False
                continue
            if pc == len(programs[w]):
                barrier_ready = False
                continue
            running += 1
            st = programs[w][pc]
            if st.kind != "barrier":
                barrier_ready = False
            if st.kind == "run":
                pending.append((w, st.task))
            elif st.kind == "signal" or (st.kind == "wait" and values[counters[st.counter]] >= st.count):
                if ample is None:
                    ample = w
                if not reduce:
                    moves.append(w)
        for i in range(len(pending)):
            for j in range(i + 1, len(pending)):
                a, b = pending[i][1], pending[j][1]
                if conflict[a][b]:
                    result.races.add((s.tasks[min(a, b)].name, s.tasks[max(a, b)].name))
        successors = []
        if barrier_ready:
            successors.append((tuple(pc + 1 for pc in pcs), values))
        elif ample is not None and reduce:
            st = programs[ample][pcs[ample]]
            v = values
            if st.kind == "signal":
                v = list(values)
                v[counters[st.counter]] += st.count
                v = tuple(v)
            successors.append((pcs[:ample] + (pcs[ample] + 1,) + pcs[ample + 1:], v))
        else:
            for w, t in pending:
                for (u_w, u_i) in later_conflicts[t]:
                    if pcs[u_w] > u_i:
                        result.order.add((s.tasks[t].name, s.tasks[programs[u_w][u_i].task].name))
                moves.append(w)
            if running < s.capacity:
                moves += [w for w in range(W) if pcs[w] == -1]
            for w in moves:
                v = values
                if pcs[w] >= 0 and programs[w][pcs[w]].kind == "signal":
                    st = programs[w][pcs[w]]
                    v = list(values)
                    v[counters[st.counter]] += st.count
                    v = tuple(v)
                successors.append((pcs[:w] + (pcs[w] + 1,) + pcs[w + 1:], v))
        if not successors and any(pc != len(programs[w]) for w, pc in enumerate(pcs)):
            result.deadlock = True
        for nxt in successors:
            if nxt[0] not in seen:
                seen.add(nxt[0])
                stack.append(nxt)
    return result
