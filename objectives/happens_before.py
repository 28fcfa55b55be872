"""Happens-before of a megakernel schedule as vector clocks, and the conflicting task pairs that decide races.

Why vector clocks: a Llama-3.2-1B schedule has 60k-130k steps on 132-528 workers. Descendant bitsets per step (the
textbook transitive closure) cost O(steps^2) bits; a vector clock per step costs O(steps x workers) integers and
answers "does a happen before b" in O(1): `clock[b][worker(a)] >= index(a)`.

Why adjacent pairs: for one memory location, let the accesses in reference order be W1 r r r W2 r r W3 ... Every
conflicting pair is ordered in the reference direction iff every *adjacent* conflicting pair is (each read after
the write before it, each write after the reads since the previous write, or after that write when there were none):
happens-before is transitive, so the chain orders the rest, and an unordered adjacent pair is itself a conflicting
pair left unordered. Checking adjacent pairs accepts exactly the schedules that checking all pairs accepts, with
O(accesses) pairs instead of O(accesses^2).

Happens-before is program order, grid barriers, and signal -> wait edges that hold in every execution (the
fixpoint rule of objectives/schedule_validator.py). The execution order of the deadlock check's least fixpoint is
one legal execution, so every such edge goes forward in it: it is a topological order of the happens-before graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spaces.megakernel.ir import Schedule


@dataclass
class Clocks:
    """Vector clocks over a schedule's steps, stored once per join point. A step's clock is the row `rows[base[n]]`
    of the last wait or barrier before it on its worker, with its own worker's entry replaced by its own index:
    `rows[base[n]][v]` is the largest step index of worker v that happens before step n (-1: none). Nodes are
    steps numbered worker by worker (`first[w] + i`)."""

    rows: np.ndarray           # (join points, workers) int32
    base: np.ndarray           # node -> row
    first: np.ndarray          # first node of each worker
    worker_of: np.ndarray      # node -> worker
    index_of: np.ndarray       # node -> step index within its worker

    def before(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Elementwise: does step node a happen strictly before step node b?"""
        wa, ia = self.worker_of[a], self.index_of[a]
        same = wa == self.worker_of[b]
        return np.where(same, ia < self.index_of[b], self.rows[self.base[b], wa] >= ia)

    def clock(self, nodes: np.ndarray) -> np.ndarray:
        """Full clock rows of `nodes` (len(nodes), workers)."""
        out = self.rows[self.base[nodes]].copy()
        out[np.arange(len(nodes)), self.worker_of[nodes]] = self.index_of[nodes]
        return out


def execution_order(s: Schedule) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The least fixpoint of "can occur" as one execution: (steps in the order they ran as (worker, index) with
    (-1, k) marking the release of the k-th grid barrier, steps that never run as (worker, index))."""
    pc = [0] * s.workers
    total: dict[str, int] = {}
    order: list[tuple[int, int]] = []
    released = 0
    progress = True
    while progress:
        progress = False
        for w, p in enumerate(s.programs):
            while pc[w] < len(p):
                st = p[pc[w]]
                if st.kind == "wait" and total.get(st.counter, 0) < st.count:
                    break
                if st.kind == "barrier":
                    break
                if st.kind == "signal":
                    total[st.counter] = total.get(st.counter, 0) + st.count
                order.append((w, pc[w]))
                pc[w] += 1
                progress = True
        at_barrier = [pc[w] < len(p) and p[pc[w]].kind == "barrier" for w, p in enumerate(s.programs)]
        if s.workers and all(at_barrier):
            order.extend((w, pc[w]) for w in range(s.workers))   # every arrival, then the release
            order.append((-1, released))
            released += 1
            pc = [x + 1 for x in pc]
            progress = True
    stuck = [(w, pc[w]) for w in range(s.workers) if pc[w] < len(s.programs[w])]
    return order, stuck


def _layout(s: Schedule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lengths = np.array([len(p) for p in s.programs], dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    worker_of = np.repeat(np.arange(s.workers), lengths)
    return first, worker_of, np.arange(int(lengths.sum())) - first[worker_of]


def _clocks(s: Schedule, order: list[tuple[int, int]], edges: dict[int, np.ndarray]) -> Clocks:
    """Clocks along `order` with program order, barriers and the given signal -> wait edges (wait node -> sources)."""
    W = s.workers
    first, worker_of, index_of = _layout(s)
    base = np.zeros(len(worker_of), dtype=np.int64)
    rows = [np.full(W, -1, dtype=np.int32)]
    current = [0] * W                       # each worker's row so far
    pending: list[np.ndarray | None] = [None] * W   # a barrier's join, applied at the worker's next step
    arrivals: list[int] = []
    joined: dict[bytes, np.ndarray] = {}
    is_wait = {int(first[w] + i) for w, p in enumerate(s.programs) for i, st in enumerate(p) if st.kind == "wait"}
    clocks = Clocks(np.empty((0, W), np.int32), base, first, worker_of, index_of)
    for w, i in order:
        if w < 0:   # release: every worker's next step sees every arrival
            clocks.rows = np.asarray(rows)
            release = clocks.clock(np.array(arrivals)).max(axis=0)
            pending = [release] * W
            arrivals = []
            continue
        node = int(first[w] + i)
        sources = edges.get(node) if node in is_wait else None
        if pending[w] is not None or sources is not None and len(sources):
            row = rows[current[w]].copy()
            row[w] = i
            if pending[w] is not None:
                np.maximum(row, pending[w], out=row)
                pending[w] = None
            if sources is not None and len(sources):
                key = sources.tobytes()
                if key not in joined:
                    clocks.rows = np.asarray(rows)
                    joined[key] = clocks.clock(sources).max(axis=0)
                np.maximum(row, joined[key], out=row)
            rows.append(row)
            current[w] = len(rows) - 1
        base[node] = current[w]
        if s.programs[w][i].kind == "barrier":
            arrivals.append(node)
    clocks.rows = np.asarray(rows)
    return clocks


def happens_before(s: Schedule, order: list[tuple[int, int]]) -> Clocks:
    """Clocks with every signal -> wait edge that holds in every execution, as a monotone fixpoint.

    Signal s precedes wait(c >= n) when the other signals on c that could occur without s (not after the wait, not
    after s) add up to less than n. Edges only ever get added, so the loop ends."""
    first = np.concatenate([[0], np.cumsum([len(p) for p in s.programs])[:-1]]).astype(np.int64)
    signals: dict[str, list[tuple[int, int]]] = {}
    waits: list[tuple[int, str, int]] = []
    for w, p in enumerate(s.programs):
        for i, st in enumerate(p):
            if st.kind == "signal":
                signals.setdefault(st.counter, []).append((int(first[w] + i), st.count))
            elif st.kind == "wait":
                waits.append((int(first[w] + i), st.counter, st.count))
    arrays = {c: (np.array([n for n, _ in v]), np.array([k for _, k in v])) for c, v in signals.items()}
    edges: dict[int, np.ndarray] = {}
    while True:
        clocks = _clocks(s, order, edges)
        changed = False
        for wn, c, n in waits:
            if c not in arrays:
                continue
            nodes, amounts = arrays[c]
            candidate = ~clocks.before(np.full(len(nodes), wn), nodes)   # not after the wait
            cand_nodes, cand_amounts = nodes[candidate], amounts[candidate]
            others = int(cand_amounts.sum()) - cand_amounts
            chosen = [cand_nodes[others < n]]
            for j in np.flatnonzero(others >= n).tolist():   # signals that need s first cannot stand in for it
                after_s = clocks.before(np.full(len(cand_nodes), cand_nodes[j]), cand_nodes)
                if others[j] - int(cand_amounts[after_s].sum()) < n:
                    chosen.append(cand_nodes[j:j + 1])
            old = edges.get(wn, np.empty(0, np.int64))
            merged = np.union1d(old, np.concatenate(chosen)).astype(np.int64)
            if len(merged) != len(old):
                edges[wn] = merged
                changed = True
        if not changed:
            return clocks


@dataclass(frozen=True)
class Conflict:
    """Tasks a < b (reference order) touching overlapping memory of `storage`, at least one writing, that are not
    ordered a-before-b by happens-before. `backwards`: they are ordered, but b before a."""

    a: int
    b: int
    kind: str       # RAW, WAR or WAW (first task's access, then the second's)
    storage: str
    backwards: bool


def unordered_conflicts(s: Schedule, clocks: Clocks, node_of_task: np.ndarray, limit: int = 1000) -> list[Conflict]:
    """Adjacent conflicting accesses (see the module docstring) not ordered in the reference direction.

    Per written storage, accesses are replayed in reference order over elementary segments. Each segment keeps its
    last writer and, as a vector over workers, the latest reader on each worker since that write. A read must come
    after the writer of every segment it touches; a write after every reader since the last write of each segment
    (or after the last writer when there were none). Each check is one vector comparison of clocks."""
    where = {b.name: b for b in s.buffers}
    written = {where[r.buffer].storage for t in s.tasks for r in (*t.writes, *t.accumulates)}
    accesses: dict[str, list[tuple[int, int, int, int]]] = {}
    for t, task in enumerate(s.tasks):
        for regions, write in ((task.reads, 0), (task.writes, 1), (task.accumulates, ACCUMULATE)):
            for r in regions:
                b = where[r.buffer]
                if b.storage in written:
                    accesses.setdefault(b.storage, []).append((t, write, b.offset + r.start, b.offset + r.stop))
    W = s.workers
    task_of_node = {int(n): t for t, n in enumerate(node_of_task.tolist())}
    out: list[Conflict] = []
    for storage in sorted(accesses):
        acc = sorted(accesses[storage])     # reference order; a task's reads before its writes
        if any(a[1] == ACCUMULATE for a in acc):
            out += _accumulate_conflicts(acc, storage, clocks, node_of_task, task_of_node)
            if len(out) >= limit:
                return out[:limit]
            continue
        bounds = np.unique(np.array([x for a in acc for x in a[2:]], dtype=np.int64))
        n_seg = len(bounds) - 1
        writer = np.full(n_seg, -1, dtype=np.int64)          # node of the last writer of each segment
        readers = np.full((n_seg, W), -1, dtype=np.int32)     # latest reader index per worker since that write
        cache: dict[tuple[int, int], np.ndarray] = {}
        version = 0
        for t, write, start, stop in acc:
            lo, hi = int(np.searchsorted(bounds, start)), int(np.searchsorted(bounds, stop))
            node = int(node_of_task[t])
            mine = clocks.clock(np.array([node]))[0]
            w = int(clocks.worker_of[node])
            if not write:
                key = (lo, hi, version)
                if key not in cache:
                    nodes = writer[lo:hi]
                    nodes = np.unique(nodes[nodes >= 0])
                    need = np.full(W, -1, dtype=np.int32)
                    np.maximum.at(need, clocks.worker_of[nodes], clocks.index_of[nodes])
                    cache[key] = need
                bad = np.flatnonzero(cache[key] > mine)
                if len(bad):
                    culprits = writer[lo:hi][np.isin(clocks.worker_of[np.maximum(writer[lo:hi], 0)], bad)
                                            & (writer[lo:hi] >= 0)]
                    out += _report(clocks, task_of_node, np.unique(culprits), node, t, "RAW", storage, mine)
                readers[lo:hi, w] = np.maximum(readers[lo:hi, w], int(clocks.index_of[node]))
                continue
            seen = readers[lo:hi]
            any_reader = (seen >= 0).any(axis=1)
            need = seen[any_reader].max(axis=0) if any_reader.any() else np.full(W, -1, dtype=np.int32)
            previous = writer[lo:hi][~any_reader]
            previous = np.unique(previous[previous >= 0])
            np.maximum.at(need, clocks.worker_of[previous], clocks.index_of[previous])
            need[w] = min(need[w], int(clocks.index_of[node]) - 1) if need[w] >= clocks.index_of[node] else need[w]
            bad = np.flatnonzero(need > mine)
            if len(bad):
                culprit_readers = [int(clocks.first[v] + seen[:, v].max()) for v in bad if (seen[:, v] >= 0).any()]
                out += _report(clocks, task_of_node, np.array(culprit_readers, dtype=np.int64), node, t, "WAR",
                               storage, mine)
                culprit_writers = previous[np.isin(clocks.worker_of[previous], bad)]
                out += _report(clocks, task_of_node, culprit_writers, node, t, "WAW", storage, mine)
            writer[lo:hi] = node
            readers[lo:hi] = -1
            version += 1
            if len(out) >= limit:
                return out[:limit]
    return out


#: access code of an accumulate (reads are 0, writes 1)
ACCUMULATE = 2


def _accumulate_conflicts(acc: list[tuple[int, int, int, int]], storage: str, clocks: Clocks,
                          node_of_task: np.ndarray, task_of_node: dict[int, int]) -> list[Conflict]:
    """`unordered_conflicts` for a storage that some task accumulates into. Per elementary segment, in reference
    order, the last *group* is a write or a run of accumulates with no read or write between them (they commute):
    a read must follow every member of the last group; an accumulate joins a run (following what the run's first
    member had to follow) unless reads came since, which it must then follow; a write must follow the reads since
    the last group, or every member of it when there were none. Every conflicting pair is then ordered through
    these adjacent ones, as in the module docstring.

    A set of accesses is kept per segment as its latest step index per worker (a vector clock's shape): an access
    follows every member of the set iff its own clock is at least that on every worker, so each check is one
    vectorised comparison, not one per member (the 1B schedule has hundreds of tiles accumulating into every
    segment of the MLP accumulator)."""
    bounds = np.unique(np.array([x for a in acc for x in a[2:]], dtype=np.int64))
    n_seg, W = len(bounds) - 1, len(clocks.first)
    none = np.full(W, -1, dtype=np.int64)
    last = np.full((n_seg, W), -1, dtype=np.int64)         # the last group
    run_needs = np.full((n_seg, W), -1, dtype=np.int64)    # what the current run's members must follow
    readers = np.full((n_seg, W), -1, dtype=np.int64)      # reads since the last group
    last_is_run = np.zeros(n_seg, dtype=bool)
    came_after_reads = np.zeros(n_seg, dtype=bool)         # the run's needs are reads (WAR), not writes (WAW)
    out: list[Conflict] = []

    def most(rows: np.ndarray) -> np.ndarray:
        return rows.max(axis=0) if len(rows) else none

    for t, code, start, stop in acc:
        node = int(node_of_task[t])
        mine = clocks.clock(np.array([node]))[0]
        w, i = int(clocks.worker_of[node]), int(clocks.index_of[node])
        sl = slice(int(np.searchsorted(bounds, start)), int(np.searchsorted(bounds, stop)))
        if code == 0:
            needs = {"RAW": most(last[sl])}
            readers[sl, w] = np.maximum(readers[sl, w], i)
        else:
            seen = (readers[sl] >= 0).any(axis=1)
            if code == ACCUMULATE:
                run = last_is_run[sl] & ~seen
                other = ~seen & ~last_is_run[sl]
                after = came_after_reads[sl]
                needs = {"WAR": np.maximum(most(readers[sl][seen]), most(run_needs[sl][run & after])),
                         "WAW": np.maximum(most(run_needs[sl][run & ~after]), most(last[sl][other]))}
                rn, la = run_needs[sl], last[sl]          # views: updated in place below
                rn[seen] = readers[sl][seen]
                rn[other] = la[other]
                la[seen | other] = -1
                la[:, w] = np.maximum(la[:, w], i)
                came_after_reads[sl] = np.where(run, came_after_reads[sl], seen)
                last_is_run[sl] = True
            else:
                needs = {"WAR": most(readers[sl][seen]), "WAW": most(last[sl][~seen])}
                last[sl] = -1
                last[sl, w] = i
                last_is_run[sl] = False
            readers[sl] = -1
        for kind, need in needs.items():
            need = need.copy()
            if need[w] == i:             # the task itself (its read before its own write)
                need[w] = -1
            bad = np.flatnonzero(need > mine)
            if len(bad):
                out += _report(clocks, task_of_node, clocks.first[bad] + need[bad], node, t, kind, storage, mine)
    return out


def _report(clocks: Clocks, task_of_node: dict[int, int], earlier: np.ndarray, node: int, t: int, kind: str,
            storage: str, mine: np.ndarray) -> list[Conflict]:
    """Conflicts of `t` (at `node`) with the earlier accesses at `earlier` nodes that do not happen before it."""
    out = []
    for e in np.unique(earlier).tolist():
        if e == node or clocks.before(np.array([e]), np.array([node]))[0]:
            continue
        backwards = bool(clocks.before(np.array([node]), np.array([e]))[0])
        out.append(Conflict(task_of_node[e], t, kind, storage, backwards))
    return out
