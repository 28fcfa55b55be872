"""The static schedule validator: certifies deadlock-freedom and race-freedom of a megakernel schedule without
running it, and explains every rejection (rule, tasks, buffer).

Frozen rules (the semantics are in spaces/megakernel/ir.py):

- malformed: the schedule does not parse or is structurally wrong (unknown task, counter, region...).
- capacity: more workers than the device keeps co-resident; a persistent kernel would hang or fail to launch.
- barrier-count: workers reach different numbers of grid barriers.
- deadlock: some step can never execute. Decided as the least fixpoint of "can occur": a step can occur when its
  program predecessor can, a wait when the signals that can occur reach its count, a barrier when every worker's
  matching barrier can be reached. Counters only grow, so this fixpoint is exact.
- race: two tasks on different workers touch overlapping memory (one writes), including through different buffers
  that share a storage (write-after-read and write-after-write on reused memory are rejected, not warned about), and
  neither happens-before the other.
- order: two conflicting tasks are ordered, but opposite to the reference order, so a read sees the wrong value.
- clobber: in reference order, a read through one buffer sees a value last written through another buffer sharing
  its storage: the memory plan reuses memory that is still live (no schedule can make that correct).

Happens-before (objectives/happens_before.py, vector clocks) is program order, grid barriers, and signal -> wait
edges that are *guaranteed*: signal s precedes
wait(c >= n) in every execution when the other signals on c that could occur without s (not after the wait, not after
s) add up to less than n. A partial wait on a counter with several producers (a join) therefore orders none of them,
and the conflicting accesses behind it are reported as races. Computed as a monotone fixpoint, it never adds an
edge that some execution lacks, so every accepted schedule is safe (false rejects are possible, false accepts not).

`validate(schedule_or_json)` is pure and deterministic and never raises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from objectives.happens_before import execution_order, happens_before, unordered_conflicts
from search.protocols import Evaluation, Objective
from spaces.megakernel.ir import Schedule, from_dict, structure_errors


@dataclass(frozen=True)
class Rejection:
    rule: str
    tasks: tuple[str, ...]
    buffer: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message}"


@dataclass(frozen=True)
class Verdict:
    rejections: tuple[Rejection, ...]

    @property
    def accepted(self) -> bool:
        return not self.rejections

    @property
    def rules(self) -> frozenset[str]:
        return frozenset(r.rule for r in self.rejections)

    def report(self, limit: int = 20) -> str:
        if self.accepted:
            return "ACCEPT: deadlock-free and race-free"
        lines = [f"REJECT: {len(self.rejections)} violation(s)"] + [f"  {r}" for r in self.rejections[:limit]]
        if len(self.rejections) > limit:
            lines.append(f"  ... and {len(self.rejections) - limit} more")
        return "\n".join(lines)


def validate(schedule: Any) -> Verdict:
    """Accept or reject `schedule` (a Schedule, a JSON dict, or JSON text). Never raises."""
    try:
        if isinstance(schedule, (str, bytes)):
            schedule = json.loads(schedule)
        if isinstance(schedule, dict):
            schedule = from_dict(schedule)
        if not isinstance(schedule, Schedule):
            return Verdict((Rejection("malformed", (), "", f"not a schedule: {type(schedule).__name__}"),))
        errors = structure_errors(schedule)
        if errors:
            return Verdict(tuple(Rejection("malformed", (), "", e) for e in errors))
        return Verdict(tuple(_check(schedule)))
    except Exception as e:  # the validator's contract: a malformed input is a rejection, never a crash
        return Verdict((Rejection("malformed", (), "", f"{type(e).__name__}: {e}".splitlines()[0]),))


def _step_text(s: Schedule, step) -> str:
    if step.kind == "run":
        return f"run {s.tasks[step.task].name}"
    if step.kind == "barrier":
        return "barrier"
    return f"{step.kind}({step.counter}{'+' if step.kind == 'signal' else '>='}{step.count})"


def _check(s: Schedule) -> list[Rejection]:
    out: list[Rejection] = []
    if s.workers > s.capacity:
        out.append(Rejection("capacity", (), "", f"{s.workers} workers but only {s.capacity} can be co-resident; "
                             "a persistent kernel's blocks would wait for SMs that never free up"))
    nbar = [sum(st.kind == "barrier" for st in p) for p in s.programs]
    if len(set(nbar)) > 1:
        out.append(Rejection("barrier-count", (), "", f"workers reach different numbers of grid barriers {nbar}; "
                             "the extra barriers never complete"))
    order, stuck = execution_order(s)
    for w, i in stuck:
        step = s.programs[w][i]
        nxt = next((s.tasks[x.task].name for x in s.programs[w][i:] if x.kind == "run"), "")
        if step.kind == "wait":
            why = f"the signals on {step.counter} that can ever happen add up to {_reachable_total(s, stuck, step.counter)}"
        else:
            why = "some worker never reaches the matching barrier"
        out.append(Rejection("deadlock", (nxt,) if nxt else (), "",
                             f"worker {w} blocks forever at step {i} ({_step_text(s, step)}) before {nxt or 'its end'}: {why}"))
    clobbers = _clobbers(s)
    if out:  # races are only meaningful once every step is known to run
        return out + clobbers
    return _races(s, order) + clobbers


def _clobbers(s: Schedule) -> list[Rejection]:
    """Reads that, in reference order, see a value last written through another buffer sharing the storage."""
    where = {b.name: b for b in s.buffers}
    written = {where[r.buffer].storage for t in s.tasks for r in (*t.writes, *t.accumulates)}
    size: dict[str, int] = {}
    ids = {name: k for k, name in enumerate(where)}
    for b in s.buffers:
        size[b.storage] = max(size.get(b.storage, 0), b.end)
    last = {st: np.full(n, -1, dtype=np.int64) for st, n in size.items() if st in written}
    out = []
    for t in s.tasks:
        for r in (*t.reads, *t.accumulates):     # an accumulate reads the value it adds to
            b = where[r.buffer]
            if b.storage not in last:
                continue
            seen = last[b.storage][b.offset + r.start:b.offset + r.stop]
            bad = (seen != -1) & (seen != ids[r.buffer])
            if bad.any():
                other = list(where)[int(seen[bad][0])]
                out.append(Rejection("clobber", (t.name,), b.storage,
                                     f"{t.name} reads {r.buffer}[{r.start}:{r.stop}] after {other} overwrote that memory "
                                     f"(storage {b.storage}); the memory plan reuses live data"))
        for r in (*t.writes, *t.accumulates):
            b = where[r.buffer]
            last[b.storage][b.offset + r.start:b.offset + r.stop] = ids[r.buffer]
    return out


def _reachable_total(s: Schedule, stuck: list[tuple[int, int]], counter: str) -> int:
    stop = dict(stuck)
    return sum(st.count for w, p in enumerate(s.programs) for i, st in enumerate(p)
               if st.kind == "signal" and st.counter == counter and i < stop.get(w, len(p)))


def _races(s: Schedule, order: list[tuple[int, int]]) -> list[Rejection]:
    clocks = happens_before(s, order)
    where = {}
    for w, p in enumerate(s.programs):
        for i, st in enumerate(p):
            if st.kind == "run":
                where[st.task] = (w, i)
    node_of_task = np.array([clocks.first[where[t][0]] + where[t][1] for t in range(len(s.tasks))], dtype=np.int64)
    aliases: dict[str, list[str]] = {}
    for b in s.buffers:
        aliases.setdefault(b.storage, []).append(b.name)
    out = []
    for c in unordered_conflicts(s, clocks, node_of_task):
        ta, tb = s.tasks[c.a].name, s.tasks[c.b].name
        via = f"storage {c.storage}" + (f" (aliased by {', '.join(aliases[c.storage])})" if len(aliases[c.storage]) > 1 else "")
        if c.backwards:
            out.append(Rejection("order", (ta, tb), c.storage,
                                 f"{c.kind} on {via}: {tb} is ordered before {ta}, but the reference runs {ta} first"))
            continue
        wa, wb = where[c.a][0], where[c.b][0]
        out.append(Rejection("race", (ta, tb), c.storage,
                             f"{c.kind} on {via}: {ta} (worker {wa}) and {tb} (worker {wb}) are not ordered by "
                             f"happens-before{_partial_hint(s, where[c.b])}"))
    return out


def _partial_hint(s: Schedule, at: tuple[int, int]) -> str:
    w, i = at
    totals: dict[str, tuple[int, int]] = {}
    for p in s.programs:
        for st in p:
            if st.kind == "signal":
                n, k = totals.get(st.counter, (0, 0))
                totals[st.counter] = (n + st.count, k + 1)
    for st in s.programs[w][:i]:
        if st.kind == "wait" and st.counter in totals and totals[st.counter][1] > 1 and st.count < totals[st.counter][0]:
            return (f"; wait({st.counter}>={st.count}) is a partial wait on a join of {totals[st.counter][1]} "
                    f"signals (total {totals[st.counter][0]}), so it orders none of them")
    return ""


class ScheduleValidator(Objective):
    """The validator as a hard constraint: violation = number of rejections (0 = certified safe)."""

    @dataclass(frozen=True)
    class Config:
        max_reasons: int = 3  # rejection reasons kept in Evaluation.extras

    names = ()
    directions = ()
    constraints = ("unsafe",)

    def evaluate(self, genome: Any) -> Evaluation:
        # a space whose genomes share schedules (kernel genes that only change the compiled code) says which
        # genomes do through `schedule_key`: each schedule is validated once per process
        key = self.space.schedule_key(genome) if hasattr(self.space, "schedule_key") else None
        verdicts = self.__dict__.setdefault("_verdicts", {})
        if key is None or key not in verdicts:
            schedule = self.space.schedule(genome) if hasattr(self.space, "schedule") else genome
            verdict = validate(schedule)
            if key is not None:
                verdicts[key] = verdict
        else:
            verdict = verdicts[key]
        return Evaluation(values=(), violations=(float(len(verdict.rejections)),),
                          extras={"rejections": [str(r) for r in verdict.rejections[: self.config.max_reasons]]})
