"""novelty_tries (children that re-make evaluated programs are mutated again) and the preferred front member."""

from objectives.bit_problems import OneMax, Trap
from search.combined import CombinedObjective
from search.engine import SearchSettings, evolve, preferred_rank, stagnant
from search.protocols import Context, Evaluation
from search.selection import Individual
from spaces.bitstring import BitStringSpace


def onemax(length=24):
    space = BitStringSpace(BitStringSpace.Config(length=length), Context())
    return space, OneMax(OneMax.Config(), space, Context())


def test_novelty_tries_turn_duplicate_children_into_new_programs():
    space, objective = onemax()
    # a converging population: without novelty most children are programs already evaluated (free cache hits)
    plain = evolve(space, objective, SearchSettings(population=30, generations=15), seed=1)
    novel = evolve(space, objective, SearchSettings(population=30, generations=15, novelty_tries=4), seed=1)
    fresh_plain = sum(s["new_evaluations"] for s in plain.logbook[1:])
    fresh_novel = sum(s["new_evaluations"] for s in novel.logbook[1:])
    assert fresh_plain < 0.85 * 15 * 30      # a quarter of the plain run's children were re-made programs
    assert fresh_novel >= 0.95 * 15 * 30     # nearly every child is a new program (and never more than one each)
    assert fresh_novel <= 15 * 30
    again = evolve(space, objective, SearchSettings(population=30, generations=15, novelty_tries=4), seed=1)
    assert [s["best_ones"] for s in again.logbook] == [s["best_ones"] for s in novel.logbook]   # still seeded


def _ind(values, key):
    return Individual(genome=key, evaluation=Evaluation(values=values), key=key)


def test_preferred_rank_is_the_simplest_member_within_the_targets():
    space = BitStringSpace(BitStringSpace.Config(length=8), Context())
    objective = CombinedObjective([OneMax(OneMax.Config(), space, Context()), Trap(Trap.Config(), space, Context())])
    # a front sorted by the first objective; names: ones (max), trap (max)
    front = [_ind((8.0, 1.0), "a"), _ind((7.0, 5.0), "b"), _ind((6.0, 9.0), "c")]
    assert preferred_rank(front, objective, {}) == 0                    # no targets: rank 0
    assert preferred_rank(front, objective, {"ones": 7}) == 1           # within the target, best trap
    assert preferred_rank(front, objective, {"ones": 6}) == 2
    assert preferred_rank(front, objective, {"ones": 9}) == 0           # none meets it: rank 0


def test_stagnant_reads_the_logbook_since_the_last_restart():
    space, objective = onemax()     # maximised: best_ones
    log = [{"best_ones": v} for v in (3, 5, 6, 6, 6, 6)]
    assert stagnant(log, objective, window=3, gain=0.01)          # no gain in the last 3 generations
    assert not stagnant(log, objective, window=4, gain=0.01)      # 5 -> 6 within the last 4
    assert not stagnant(log, objective, window=0, gain=0.01)      # off
    log[4]["restarted"] = True
    assert not stagnant(log, objective, window=3, gain=0.01)      # too few generations since the restart


def test_restarts_keep_the_front_and_the_seed_fixes_them():
    space = BitStringSpace(BitStringSpace.Config(length=20), Context())
    trap = Trap(Trap.Config(), space, Context())     # deceptive: populations settle on the wrong optimum
    settings = SearchSettings(population=12, generations=30, restart_after=3)
    a = evolve(space, trap, settings, seed=5)
    b = evolve(space, trap, settings, seed=5)
    restarts = [s["generation"] for s in a.logbook if s.get("restarted")]
    assert restarts and restarts == [s["generation"] for s in b.logbook if s.get("restarted")]
    assert [f.key for f in a.front] == [f.key for f in b.front]
    best = [s["best_trap"] for s in a.logbook]
    # the archive keeps the best seen: the front is never worse than any generation's population best
    assert a.front[0].evaluation.values[0] >= max(best)
