"""The megakernel schedule IR: tasks with read/write sets over buffer regions, run by persistent workers.

A `Schedule` is what one persistent kernel launch executes. Each worker (one thread block, resident on one SM for the
whole launch) runs its `program`, a sequence of `Step`s:

- ``run``: execute one task (a tile of one op of the forward pass); its memory effects are its read and write sets,
  and its accumulate set: regions it adds into (``+=``, e.g. one k-slice's partial sums of a split-k projection,
  done with atomic adds). Accumulates into the same element commute, so two of them need no order between them; a
  read or a plain write of that element does, in the reference direction, with every one of them.
- ``signal(counter, n)``: atomically add n to a counter, with release semantics (every earlier write of this worker is
  visible to whoever observes the new value).
- ``wait(counter, n)``: spin until the counter is >= n, with acquire semantics. Counters only grow, so a wait that is
  enabled stays enabled. A wait synchronises with every signal on its counter that happened before it: with several
  producers (a join) and n below their total, which producers it has seen depends on the interleaving.
- ``barrier``: a grid barrier. The k-th barrier of every worker meets the k-th barrier of every other worker.

Buffers live in storages: a buffer is the window [offset, offset + size) of a named storage, so two buffers alias when
their windows overlap. Regions are half-open element ranges in the buffer's own coordinates. Elements are float32
(4 bytes). Task order in `tasks` is the reference order: running the tasks one after another in that order is the
plain forward pass the schedule must reproduce.

The JSON form (`to_json` / `load_schedule`) is the exchange format for `evoforge validate`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.protocols import UserError

FORMAT = "evoforge-megakernel-schedule/1"
STEP_KINDS = ("run", "signal", "wait", "barrier")
ELEMENT_BYTES = 4


@dataclass(frozen=True)
class Buffer:
    """A named window of `size` float32 elements at `offset` in `storage` (buffers sharing a storage may alias)."""

    name: str
    size: int
    storage: str
    offset: int = 0

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class Region:
    """Elements [start, stop) of `buffer` (buffer-local coordinates)."""

    buffer: str
    start: int
    stop: int


@dataclass(frozen=True)
class Task:
    """One tile of one op. `phase` numbers the op instance (layer l's QKV projection, ...) in reference order;
    `flops` counts floating-point operations (a multiply-add is 2); `params` carries what an executor needs
    (layer, row range, head range) as sorted (name, int) pairs so the task stays hashable."""

    name: str
    op: str
    phase: int
    reads: tuple[Region, ...]
    writes: tuple[Region, ...]
    flops: float = 0.0
    params: tuple[tuple[str, int], ...] = ()
    accumulates: tuple[Region, ...] = ()

    def param(self, key: str) -> int:
        return dict(self.params)[key]


@dataclass(frozen=True)
class Step:
    """One step of a worker program: kind in STEP_KINDS; `task` is an index into Schedule.tasks (run);
    `counter` and `count` are used by signal (+count) and wait (>= count)."""

    kind: str
    task: int = -1
    counter: str = ""
    count: int = 0


def run(task: int) -> Step:
    return Step("run", task=task)


def signal(counter: str, n: int = 1) -> Step:
    return Step("signal", counter=counter, count=n)


def wait(counter: str, n: int) -> Step:
    return Step("wait", counter=counter, count=n)


BARRIER = Step("barrier")


@dataclass(frozen=True)
class Schedule:
    """Buffers, tasks, counters and one program per worker. `capacity` is how many workers the device keeps
    co-resident (one per SM for a persistent kernel); `meta` records how the schedule was made (config, tiling)."""

    buffers: tuple[Buffer, ...]
    tasks: tuple[Task, ...]
    counters: tuple[str, ...]
    programs: tuple[tuple[Step, ...], ...]
    capacity: int
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def workers(self) -> int:
        return len(self.programs)

    def buffer(self, name: str) -> Buffer:
        for b in self.buffers:
            if b.name == name:
                return b
        raise KeyError(name)


def structure_errors(s: Schedule) -> list[str]:
    """Everything that makes `s` not a well-formed schedule (empty list when it is). Never raises on a `Schedule`
    built from any field values: semantic rules (races, deadlocks) are the validator's job, not this one's."""
    errors: list[str] = []
    if not isinstance(s.capacity, int) or s.capacity < 1:
        errors.append(f"capacity: must be a positive integer, got {s.capacity!r}")
    if not s.programs:
        errors.append("workers: a schedule needs at least one worker program")
    names = [b.name for b in s.buffers]
    if len(set(names)) != len(names):
        errors.append("buffers: duplicate buffer names")
    sizes = {}
    for b in s.buffers:
        if not isinstance(b.size, int) or not isinstance(b.offset, int) or b.size < 1 or b.offset < 0:
            errors.append(f"buffers.{b.name}: size must be >= 1 and offset >= 0 (integers)")
        sizes[b.name] = b.size
    if len(set(t.name for t in s.tasks)) != len(s.tasks):
        errors.append("tasks: duplicate task names")
    for t in s.tasks:
        for r in (*t.reads, *t.writes, *t.accumulates):
            if r.buffer not in sizes:
                errors.append(f"tasks.{t.name}: region on unknown buffer {r.buffer!r}")
            elif not (isinstance(r.start, int) and isinstance(r.stop, int) and 0 <= r.start < r.stop <= sizes[r.buffer]):
                errors.append(f"tasks.{t.name}: region {r.buffer}[{r.start}:{r.stop}] is empty or outside 0..{sizes[r.buffer]}")
    if len(set(s.counters)) != len(s.counters):
        errors.append("counters: duplicate counter names")
    counters = set(s.counters)
    runs = [0] * len(s.tasks)
    for w, program in enumerate(s.programs):
        for i, step in enumerate(program):
            where = f"workers[{w}][{i}]"
            if step.kind not in STEP_KINDS:
                errors.append(f"{where}: unknown step kind {step.kind!r}")
            elif step.kind == "run":
                if not isinstance(step.task, int) or not 0 <= step.task < len(s.tasks):
                    errors.append(f"{where}: run of unknown task {step.task!r}")
                else:
                    runs[step.task] += 1
            elif step.kind in ("signal", "wait"):
                if step.counter not in counters:
                    errors.append(f"{where}: {step.kind} on undeclared counter {step.counter!r}")
                if not isinstance(step.count, int) or step.count < 1:
                    errors.append(f"{where}: {step.kind} count must be a positive integer, got {step.count!r}")
    for t, n in zip(s.tasks, runs):
        if n != 1:
            errors.append(f"tasks.{t.name}: run {n} times; every task must run exactly once")
    return errors


def to_dict(s: Schedule) -> dict[str, Any]:
    def step(st: Step) -> list[Any]:
        if st.kind == "run":
            return ["run", s.tasks[st.task].name]
        if st.kind == "barrier":
            return ["barrier"]
        return [st.kind, st.counter, st.count]

    def task(t: Task) -> dict[str, Any]:
        out = {"name": t.name, "op": t.op, "phase": t.phase, "flops": t.flops, "params": dict(t.params),
               "reads": [[r.buffer, r.start, r.stop] for r in t.reads],
               "writes": [[r.buffer, r.start, r.stop] for r in t.writes]}
        if t.accumulates:   # optional in the format: schedules without them read and write as before
            out["accumulates"] = [[r.buffer, r.start, r.stop] for r in t.accumulates]
        return out

    return {
        "format": FORMAT,
        "capacity": s.capacity,
        "meta": s.meta,
        "buffers": [{"name": b.name, "size": b.size, "storage": b.storage, "offset": b.offset} for b in s.buffers],
        "tasks": [task(t) for t in s.tasks],
        "counters": list(s.counters),
        "workers": [[step(st) for st in p] for p in s.programs],
    }


def to_json(s: Schedule) -> str:
    return json.dumps(to_dict(s), indent=1)


def _need(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise UserError(f"{where}: {what}")


def _int(v: Any, where: str) -> int:
    _need(isinstance(v, int) and not isinstance(v, bool), where, f"expected an integer, got {v!r}; write a whole number")
    return v


def _str(v: Any, where: str) -> str:
    _need(isinstance(v, str) and v != "", where, f"expected a non-empty string, got {v!r}")
    return v


def _regions(v: Any, where: str) -> tuple[Region, ...]:
    _need(isinstance(v, list), where, "expected a list of [buffer, start, stop]")
    out = []
    for i, r in enumerate(v):
        _need(isinstance(r, list) and len(r) == 3, f"{where}[{i}]", "expected [buffer, start, stop]")
        out.append(Region(_str(r[0], f"{where}[{i}][0]"), _int(r[1], f"{where}[{i}][1]"), _int(r[2], f"{where}[{i}][2]")))
    return tuple(out)


def from_dict(d: Any) -> Schedule:
    """Build a Schedule from the JSON object; raises UserError naming the first malformed field."""
    _need(isinstance(d, dict), "schedule", "expected a JSON object at the top level")
    _need(d.get("format") == FORMAT, "format", f"expected {FORMAT!r}, got {d.get('format')!r}; write schedules with to_json")
    for key in ("capacity", "buffers", "tasks", "counters", "workers"):
        _need(key in d, key, "missing; a schedule has capacity, buffers, tasks, counters and workers")
    _need(isinstance(d["buffers"], list), "buffers", "expected a list")
    _need(isinstance(d["tasks"], list), "tasks", "expected a list")
    _need(isinstance(d["counters"], list), "counters", "expected a list of names")
    _need(isinstance(d["workers"], list), "workers", "expected a list of programs")
    buffers = []
    for i, b in enumerate(d["buffers"]):
        w = f"buffers[{i}]"
        _need(isinstance(b, dict), w, "expected an object with name, size, storage, offset")
        buffers.append(Buffer(_str(b.get("name"), w + ".name"), _int(b.get("size"), w + ".size"),
                              _str(b.get("storage", b.get("name")), w + ".storage"), _int(b.get("offset", 0), w + ".offset")))
    tasks, index = [], {}
    for i, t in enumerate(d["tasks"]):
        w = f"tasks[{i}]"
        _need(isinstance(t, dict), w, "expected an object with name, op, phase, reads, writes (and accumulates)")
        params = t.get("params", {})
        _need(isinstance(params, dict), w + ".params", "expected an object of integers")
        flops = t.get("flops", 0.0)
        _need(isinstance(flops, (int, float)) and not isinstance(flops, bool) and flops >= 0, w + ".flops", "expected a number >= 0")
        task = Task(_str(t.get("name"), w + ".name"), _str(t.get("op"), w + ".op"), _int(t.get("phase", 0), w + ".phase"),
                    _regions(t.get("reads", []), w + ".reads"), _regions(t.get("writes", []), w + ".writes"), float(flops),
                    tuple(sorted((str(k), _int(v, f"{w}.params.{k}")) for k, v in params.items())),
                    _regions(t.get("accumulates", []), w + ".accumulates"))
        index.setdefault(task.name, len(tasks))
        tasks.append(task)
    counters = tuple(_str(c, f"counters[{i}]") for i, c in enumerate(d["counters"]))
    programs = []
    for wi, p in enumerate(d["workers"]):
        _need(isinstance(p, list), f"workers[{wi}]", "expected a list of steps")
        steps = []
        for si, st in enumerate(p):
            w = f"workers[{wi}][{si}]"
            _need(isinstance(st, list) and st and st[0] in STEP_KINDS, w,
                  "expected [\"run\", task] | [\"signal\", counter, n] | [\"wait\", counter, n] | [\"barrier\"]")
            if st[0] == "run":
                _need(len(st) == 2 and isinstance(st[1], str) and st[1] in index, w, f"run of unknown task {st[1:]!r}")
                steps.append(run(index[st[1]]))
            elif st[0] == "barrier":
                _need(len(st) == 1, w, "a barrier takes no arguments")
                steps.append(BARRIER)
            else:
                _need(len(st) == 3, w, f"{st[0]} takes a counter and a count")
                steps.append(Step(st[0], counter=_str(st[1], w), count=_int(st[2], w)))
        programs.append(tuple(steps))
    meta = d.get("meta", {})
    s = Schedule(tuple(buffers), tuple(tasks), counters, tuple(programs), _int(d["capacity"], "capacity"),
                 meta if isinstance(meta, dict) else {})
    errors = structure_errors(s)
    _need(not errors, errors[0].split(":")[0] if errors else "", errors[0].split(": ", 1)[-1] if errors else "")
    return s


def load_schedule(path: str | Path) -> Schedule:
    """Read a schedule JSON file; malformed files raise UserError with the offending field."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"schedule: no file at {str(p)!r}; pass the path of a schedule JSON file")
    try:
        d = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"schedule: {p} is not valid JSON ({e}); fix the file or regenerate it with to_json") from None
    return from_dict(d)
