"""Accumulate regions (split-k partial sums added with atomics): accumulates into one element commute, any read or
write of it must be ordered with every one of them. The validator and the explorer agree on small schedules."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from objectives.schedule_validator import validate
from search.protocols import UserError
from spaces.megakernel.explorer import explore
from spaces.megakernel.ir import Buffer, Region, Schedule, Task, from_dict, run, signal, to_dict, wait


def _schedule(tasks, programs, counters=("c",)):
    buffers = (Buffer("w", 8, "w"), Buffer("acc", 4, "acc"), Buffer("out", 4, "out"))
    return Schedule(buffers, tuple(tasks), tuple(counters), tuple(tuple(p) for p in programs), capacity=8)


def _add(name, phase, rows=(0, 4)):   # a k-slice of a projection, added into acc[rows]
    return Task(name, "matvec_partial", phase, (Region("w", 0, 8),), (), 1.0, (),
                accumulates=(Region("acc", *rows),))


def _read(name, phase):
    return Task(name, "consume", phase, (Region("acc", 0, 4),), (Region("out", 0, 4),))


def _zero(name, phase):
    return Task(name, "zero", phase, (), (Region("acc", 0, 4),))


def verdict(s):
    v, e = validate(s), explore(s)
    assert v.accepted == (not e.unsafe), (v.report(), e)
    return v


def test_two_workers_accumulating_at_once_then_a_joined_reader_is_accepted():
    s = _schedule([_add("k0", 1), _add("k1", 1), _read("use", 2)],
                  [[run(0), signal("c")], [run(1), signal("c")], [wait("c", 2), run(2)]])
    assert verdict(s).accepted


def test_a_reader_that_does_not_wait_for_every_accumulate_races():
    s = _schedule([_add("k0", 1), _add("k1", 1), _read("use", 2)],
                  [[run(0), signal("c")], [run(1)], [wait("c", 1), run(2)]])
    v = verdict(s)
    assert not v.accepted
    assert any(r.rule == "race" and set(r.tasks) == {"k1", "use"} and r.buffer == "acc" for r in v.rejections)


def test_an_accumulate_concurrent_with_the_plain_write_before_it_races():
    s = _schedule([_zero("zero", 0), _add("k0", 1), _add("k1", 1)],
                  [[run(0), signal("c")], [wait("c", 1), run(1)], [run(2)]])
    v = verdict(s)
    assert not v.accepted and any(set(r.tasks) == {"zero", "k1"} for r in v.rejections)


def test_a_read_between_two_accumulate_runs_splits_them():
    # reference order: k0 adds, mid reads, k1 adds: k1 must not run before mid has read
    s = _schedule([_add("k0", 1), _read("mid", 2), _add("k1", 3)],
                  [[run(0), signal("c")], [wait("c", 1), run(1)], [run(2)]])
    v = verdict(s)
    assert not v.accepted and any(set(r.tasks) == {"mid", "k1"} and "WAR" in r.message for r in v.rejections)
    ok = _schedule([_add("k0", 1), _read("mid", 2), _add("k1", 3)],
                   [[run(0), signal("c")], [wait("c", 1), run(1), signal("d")], [wait("d", 1), run(2)]],
                   counters=("c", "d"))
    assert verdict(ok).accepted


def test_accumulates_on_disjoint_rows_need_nothing_and_round_trip_through_json():
    s = _schedule([_add("k0", 1, (0, 2)), _add("k1", 1, (2, 4)), _read("use", 2)],
                  [[run(0), signal("c")], [run(1), signal("c")], [wait("c", 2), run(2)]])
    assert verdict(s).accepted
    back = from_dict(to_dict(s))
    assert back.tasks[0].accumulates == (Region("acc", 0, 2),)
    assert "accumulates" not in to_dict(_schedule([_read("use", 0)], [[run(0)]]))["tasks"][0]   # format unchanged
    bad = to_dict(s)
    bad["tasks"][0]["accumulates"] = [["acc", 3, 9]]
    with pytest.raises(UserError, match="outside"):
        from_dict(bad)


@st.composite
def _random_schedules(draw):
    """2-5 tasks on 2-3 workers, each reading, writing or accumulating into acc[0:2] or acc[1:3] (or neither),
    with random signal/wait edges between them."""
    n, workers = draw(st.integers(2, 5)), draw(st.integers(2, 3))
    tasks, placed = [], []
    for i in range(n):
        kind = draw(st.sampled_from(["read", "write", "add", "none"]))
        lo = draw(st.integers(0, 1))
        region = (Region("acc", lo, lo + 2),)
        tasks.append(Task(f"t{i}", "op", i, region if kind == "read" else (), region if kind == "write" else (),
                          1.0, (), region if kind == "add" else ()))
        placed.append(draw(st.integers(0, workers - 1)))
    programs = [[] for _ in range(workers)]
    for i in range(n):
        earlier = [j for j in range(i) if placed[j] != placed[i]]
        if earlier and draw(st.booleans()):
            programs[placed[i]].append(wait(f"c{draw(st.sampled_from(earlier))}", 1))
        programs[placed[i]].append(run(i))
        programs[placed[i]].append(signal(f"c{i}"))
    return _schedule(tasks, programs, counters=tuple(f"c{i}" for i in range(n)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_random_schedules())
def test_validator_and_explorer_agree_on_random_schedules_with_accumulates(s):
    v, e = validate(s), explore(s)
    assert v.accepted == (not e.unsafe), (v.report(), e)
