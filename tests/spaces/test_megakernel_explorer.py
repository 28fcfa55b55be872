"""The explicit-state explorer (ground truth): known verdicts on hand-made schedules, and partial-order reduction
that changes the number of states but never the verdict."""

from dataclasses import replace

import numpy as np
import pytest

from spaces.megakernel.adversarial import MUTATIONS
from spaces.megakernel.explorer import StateLimit, explore
from spaces.megakernel.ir import BARRIER, Buffer, Region, Schedule, Task, run, signal, wait

BUFS = (Buffer("a", 4, "a"), Buffer("b", 4, "b"))


def producer_consumer(*programs, capacity=8, counters=("c",)):
    tasks = (Task("produce", "x", 0, (), (Region("a", 0, 4),)), Task("consume", "x", 1, (Region("a", 0, 4),), (Region("b", 0, 4),)))
    return Schedule(BUFS, tasks, counters, tuple(tuple(p) for p in programs), capacity)


def test_signal_wait_orders_producer_and_consumer():
    e = explore(producer_consumer([run(0), signal("c")], [wait("c", 1), run(1)]))
    assert not e.unsafe


def test_missing_wait_is_a_race_and_reversed_wait_is_an_order_error():
    assert explore(producer_consumer([run(0), signal("c")], [run(1)])).races == {("produce", "consume")}
    e = explore(producer_consumer([wait("c", 1), run(0)], [run(1), signal("c")]))
    assert e.order == {("produce", "consume")} and not e.races and not e.deadlock


def test_wait_that_cannot_be_met_deadlocks():
    assert explore(producer_consumer([run(0), signal("c")], [wait("c", 2), run(1)])).deadlock


def test_grid_barrier_orders_and_uneven_barriers_deadlock():
    assert not explore(producer_consumer([run(0), BARRIER], [BARRIER, run(1)])).unsafe
    assert explore(producer_consumer([run(0), BARRIER, BARRIER], [BARRIER, run(1)])).deadlock


def test_oversubscription_deadlocks_only_when_a_resident_worker_waits_on_a_queued_one():
    # the consumer may be admitted first and spin, holding the only slot: some admission order hangs
    assert explore(producer_consumer([run(0), signal("c")], [wait("c", 1), run(1)], capacity=1)).deadlock
    assert not explore(producer_consumer([run(0), run(1)], [], capacity=1)).unsafe


def test_clobber_of_live_memory_through_an_alias():
    s = producer_consumer([run(0), signal("c")], [wait("c", 1), run(1)])
    tasks = s.tasks + (Task("late", "x", 2, (Region("a", 0, 4),), ()),)
    aliased = replace(s, buffers=(BUFS[0], Buffer("b", 4, "a")), tasks=tasks,
                      programs=(s.programs[0], s.programs[1] + (run(2),)))
    assert explore(aliased).clobbers == {"late"}


def test_state_limit_is_reported():
    s = producer_consumer([run(0)] + [signal("c")] * 30, [run(1)] + [signal("c")] * 30)
    with pytest.raises(StateLimit):
        explore(s, max_states=50)


@pytest.mark.parametrize("seed", range(12))
def test_partial_order_reduction_keeps_every_verdict(seed):
    from spaces.megakernel.lower import LlamaShape, Tiling, lower

    rng = np.random.default_rng(seed)
    base = lower(LlamaShape(hidden_size=8, intermediate_size=16, vocab_size=8, num_attention_heads=2,
                            num_key_value_heads=1, max_position_embeddings=2),
                 Tiling(rows=4, heads=1, workers=3), ["barrier", "join", "tile"][seed % 3])
    kind = sorted(MUTATIONS)[seed % len(MUTATIONS)]
    s = MUTATIONS[kind](base, rng) or base
    full, reduced = explore(s, reduce=False), explore(s)
    assert (full.deadlock, full.races, full.order) == (reduced.deadlock, reduced.races, reduced.order)
    assert reduced.states <= full.states
