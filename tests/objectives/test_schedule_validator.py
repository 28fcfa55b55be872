"""The static validator: accepts real lowerings, never accepts what the explorer finds unsafe, explains rejections,
and never raises."""

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from objectives.schedule_validator import validate
from spaces.megakernel.adversarial import MUTATIONS
from spaces.megakernel.explorer import explore
from spaces.megakernel.ir import Buffer, signal, to_dict, wait
from spaces.megakernel.lower import SYNC_MODES, LlamaShape, Tiling, lower

CFG = LlamaShape(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                 num_key_value_heads=1, vocab_size=16, max_position_embeddings=4)
GQA2 = LlamaShape(hidden_size=24, intermediate_size=24, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=16, max_position_embeddings=4)
BASES = [lower(c, Tiling(rows=r, heads=h, workers=w), s, fuse)
         for c in (CFG, GQA2) for (r, h, w) in ((8, 1, 2), (8, 2, 3)) for s in SYNC_MODES for fuse in (False, True)]


@pytest.mark.parametrize("i", range(len(BASES)))
def test_every_real_lowering_is_accepted(i):
    v = validate(BASES[i])
    assert v.accepted, v.report()
    assert not explore(BASES[i]).unsafe


def _drop_wait_before(s, task_name):
    t = next(i for i, x in enumerate(s.tasks) if x.name == task_name)
    for w, p in enumerate(s.programs):
        for i, st_ in enumerate(p):
            if st_.kind == "run" and st_.task == t:
                assert p[i - 1].kind == "wait"
                programs = list(s.programs)
                programs[w] = p[: i - 1] + p[i:]
                return replace(s, programs=tuple(programs))
    raise AssertionError


def test_dropped_wait_is_a_race_naming_tasks_and_buffer():
    s = lower(CFG, Tiling(rows=8, heads=1, workers=2), "tile")
    bad = _drop_wait_before(s, "L0.o_proj[8:16]")  # it reads attn, written by the attention tile on worker 0
    v = validate(bad)
    races = [r for r in v.rejections if r.rule == "race"]
    assert races and any(r.buffer == "attn" and "L0.o_proj[8:16]" in r.tasks for r in races)
    assert explore(bad).races


def test_partial_wait_on_a_join_is_a_race_and_says_so():
    s = lower(CFG, Tiling(rows=8, heads=1, workers=2), "join")
    w, i = next((w, i) for w, p in enumerate(s.programs) for i, x in enumerate(p) if x.kind == "wait" and x.count > 1)
    programs = list(s.programs)
    programs[w] = programs[w][:i] + (wait(programs[w][i].counter, 1),) + programs[w][i + 1:]
    v = validate(replace(s, programs=tuple(programs)))
    assert not v.accepted
    assert any("partial wait" in r.message for r in v.rejections if r.rule == "race")


def test_war_through_aliased_buffers_is_rejected_not_warned():
    s = lower(CFG, Tiling(rows=8, heads=1, workers=2), "tile")
    # qkv placed over xn: one QKV tile overwrites the input the other tiles are still reading
    aliased = replace(s, buffers=tuple(Buffer(b.name, b.size, "xn", 0) if b.name == "qkv" else b for b in s.buffers))
    v = validate(aliased)
    assert not v.accepted
    assert any(r.buffer == "xn" and "WAR" in r.message and "aliased by xn, qkv" in r.message
               for r in v.rejections if r.rule == "race")
    assert explore(aliased).unsafe


def test_cycle_is_a_deadlock():
    s = lower(CFG, Tiling(rows=8, heads=1, workers=2), "barrier")
    p0 = (wait("a", 1), signal("b", 1)) + s.programs[0]
    p1 = (wait("b", 1), signal("a", 1)) + s.programs[1]
    v = validate(replace(s, counters=("a", "b"), programs=(p0, p1)))
    assert v.rules == {"deadlock"} and len(v.rejections) == 2
    assert explore(replace(s, counters=("a", "b"), programs=(p0, p1))).deadlock


def test_uneven_barriers_and_oversubscription_are_rejected():
    s = lower(CFG, Tiling(rows=8, heads=1, workers=3), "barrier")
    last = max(i for i, x in enumerate(s.programs[0]) if x.kind == "barrier")
    uneven = replace(s, programs=(s.programs[0][:last] + s.programs[0][last + 1:],) + s.programs[1:])
    assert "barrier-count" in validate(uneven).rules
    assert explore(uneven).deadlock
    assert "capacity" in validate(replace(s, capacity=2)).rules
    assert explore(replace(s, capacity=2)).deadlock


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.integers(0, len(BASES) - 1), st.sampled_from(sorted(MUTATIONS)), st.integers(0, 2**32 - 1), st.integers(1, 3))
def test_no_false_accepts_on_mutated_lowerings(base, kind, seed, edits):
    rng = np.random.default_rng(seed)
    s = BASES[base]
    for _ in range(edits):
        s = MUTATIONS[kind](s, rng) or s
    if validate(s).accepted:
        assert not explore(s).unsafe


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.integers() | st.text(max_size=4) | st.floats(),
                    lambda x: st.lists(x, max_size=3) | st.dictionaries(st.text(max_size=8), x, max_size=3), max_leaves=10))
def test_validator_never_raises_on_garbage(obj):
    v = validate(obj)
    assert not v.accepted and v.rules == {"malformed"}


def test_validator_is_deterministic_and_reads_json_text():
    s = BASES[7]
    assert validate(json.dumps(to_dict(s))) == validate(s) == validate(s)
