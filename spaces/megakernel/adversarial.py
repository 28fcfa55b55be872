"""Adversarial schedules: one-edit mutations of valid lowerings, of the kinds a schedule author (human or agent)
gets wrong. Each mutation may or may not make the schedule unsafe; the explorer labels it, the validator must never
accept an unsafe one.

`MUTATIONS` maps a class name to a function (schedule, rng) -> mutated schedule, or None when the class does not
apply to that schedule (e.g. no wait with a count above 1 to lower).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from spaces.megakernel.ir import BARRIER, Buffer, Region, Schedule, Step, signal, wait


def _steps(s: Schedule, kind: str) -> list[tuple[int, int]]:
    return [(w, i) for w, p in enumerate(s.programs) for i, st in enumerate(p) if st.kind == kind]


def _pick(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))] if items else None


def _with_program(s: Schedule, w: int, program: list[Step]) -> Schedule:
    return replace(s, programs=s.programs[:w] + (tuple(program),) + s.programs[w + 1:])


def drop_signal(s, rng):
    at = _pick(rng, _steps(s, "signal"))
    if at is None:
        return None
    w, i = at
    return _with_program(s, w, [st for k, st in enumerate(s.programs[w]) if k != i])


def drop_wait(s, rng):
    at = _pick(rng, _steps(s, "wait"))
    if at is None:
        return None
    w, i = at
    return _with_program(s, w, [st for k, st in enumerate(s.programs[w]) if k != i])


def lower_wait(s, rng):
    at = _pick(rng, [(w, i) for w, i in _steps(s, "wait") if s.programs[w][i].count > 1])
    if at is None:
        return None
    w, i = at
    p = list(s.programs[w])
    p[i] = replace(p[i], count=int(rng.integers(1, p[i].count)))
    return _with_program(s, w, p)


def wait_after_use(s, rng):
    """Move a wait past the next task it guarded (and possibly a few more steps)."""
    at = _pick(rng, _steps(s, "wait"))
    if at is None:
        return None
    w, i = at
    p = list(s.programs[w])
    st = p.pop(i)
    runs = [k for k in range(i, len(p)) if p[k].kind == "run"]
    if not runs:
        return None
    k = runs[min(len(runs) - 1, int(rng.integers(0, 3)))]
    p.insert(k + 1, st)
    return _with_program(s, w, p)


def swap_signal_wait(s, rng):
    """Swap a signal with a wait of the same worker."""
    w = _pick(rng, [w for w, p in enumerate(s.programs)
                    if any(x.kind == "signal" for x in p) and any(x.kind == "wait" for x in p)])
    if w is None:
        return None
    p = list(s.programs[w])
    i = _pick(rng, [k for k, x in enumerate(p) if x.kind == "signal"])
    j = _pick(rng, [k for k, x in enumerate(p) if x.kind == "wait"])
    p[i], p[j] = p[j], p[i]
    return _with_program(s, w, p)


def cyclic_dependency(s, rng):
    """Two workers each wait for a fresh counter the other signals later (a cycle when both waits come first)."""
    if s.workers < 2:
        return None
    a, b = (int(x) for x in rng.choice(s.workers, 2, replace=False))
    k = sum(c.startswith("cycle.") for c in s.counters) // 2
    ca, cb = f"cycle.{k}.a", f"cycle.{k}.b"
    pa, pb = list(s.programs[a]), list(s.programs[b])
    ia, ja = sorted(int(x) for x in rng.integers(0, len(pa) + 1, 2))
    ib, jb = sorted(int(x) for x in rng.integers(0, len(pb) + 1, 2))
    if rng.random() < 0.8:  # usually the cyclic order; sometimes a harmless one (signal first)
        pa[ja:ja] = [signal(cb, 1)]
        pa[ia:ia] = [wait(ca, 1)]
        pb[jb:jb] = [signal(ca, 1)]
        pb[ib:ib] = [wait(cb, 1)]
    else:
        pa[ja:ja] = [wait(ca, 1)]
        pa[ia:ia] = [signal(cb, 1)]
        pb[jb:jb] = [wait(cb, 1)]
        pb[ib:ib] = [signal(ca, 1)]
    out = replace(s, counters=s.counters + (ca, cb))
    out = _with_program(out, a, pa)
    return _with_program(out, b, pb)


def extra_writer(s, rng):
    """A task also writes a region that another task accesses."""
    written = [r for t in s.tasks for r in (*t.writes, *t.reads) if not r.buffer.startswith("w_")]
    t = int(rng.integers(len(s.tasks)))
    r = _pick(rng, written)
    if r is None:
        return None
    tasks = list(s.tasks)
    tasks[t] = replace(tasks[t], writes=tasks[t].writes + (Region(r.buffer, r.start, r.stop),))
    return replace(s, tasks=tuple(tasks))


def split_barrier(s, rng):
    """One worker's barrier moves elsewhere, or is doubled, or is dropped."""
    at = _pick(rng, _steps(s, "barrier"))
    if at is None:
        return None
    w, i = at
    p = list(s.programs[w])
    how = rng.random()
    if how < 0.5:
        p.pop(i)
        j = int(np.clip(i + rng.integers(-4, 5), 0, len(p)))
        p.insert(j, BARRIER)
    elif how < 0.75:
        p.insert(int(rng.integers(0, len(p) + 1)), BARRIER)
    else:
        p.pop(i)
    return _with_program(s, w, p)


def oversubscribe(s, rng):
    """Fewer co-resident slots than workers, or one worker's program split over an extra worker."""
    if rng.random() < 0.5 and s.workers > 1:
        return replace(s, capacity=int(rng.integers(1, s.workers)))
    w = int(rng.integers(s.workers))
    p = s.programs[w]
    cut = int(rng.integers(0, len(p) + 1))
    programs = s.programs[:w] + (p[:cut], p[cut:]) + s.programs[w + 1:]
    return replace(s, programs=programs, capacity=min(s.capacity, len(programs) + int(rng.integers(-1, 2))))


def alias_buffers(s, rng):
    """Two activation buffers made to share memory (a too-eager memory plan)."""
    acts = [b for b in s.buffers if not b.name.startswith("w_")]
    if len(acts) < 2:
        return None
    i, j = (int(x) for x in rng.choice(len(acts), 2, replace=False))
    a, b = acts[i], acts[j]
    offset = a.offset + int(rng.integers(0, a.size))
    buffers = tuple(Buffer(x.name, x.size, a.storage, offset) if x.name == b.name else x for x in s.buffers)
    return replace(s, buffers=buffers)


MUTATIONS: dict[str, Callable[[Schedule, np.random.Generator], Schedule | None]] = {
    "drop_signal": drop_signal,
    "drop_wait": drop_wait,
    "lower_wait": lower_wait,
    "wait_after_use": wait_after_use,
    "swap_signal_wait": swap_signal_wait,
    "cyclic_dependency": cyclic_dependency,
    "extra_writer": extra_writer,
    "split_barrier": split_barrier,
    "oversubscribe": oversubscribe,
    "alias_buffers": alias_buffers,
}


def mutate(s: Schedule, kind: str, rng: np.random.Generator) -> Schedule | None:
    return MUTATIONS[kind](s, rng)
