"""Every space, through random genomes and chains of variation: no space method raises and none runs past its bound.

Each step draws a genome by `random`, `mutate` or `crossover` (both children kept) from a pool that the chain keeps
feeding, then calls `key` (which must hash), `describe` and, on every `EMIT_EVERY`-th genome, `emit` in every
language of the space (a `UserError` from `emit` is a refusal, e.g. an uncertified schedule, and allowed). The
expression spaces also start from adversarial genomes (constants 1e308, 5e-324, -1e300,
nested pow and exp) and get them back into the pool.

Genomes per space (each one keyed and described; emitted in every language every EMIT_EVERY-th), default suite:
bitstring 2000, eml 300, optree 150 (+17 adversarial), float32 100, transformer_shapes 2000, megakernel 300,
roughly 14 CPU seconds in all; the `slow` variant runs 10x each (20000, 3000, 1500, 1000, 20000, 3000), another seed.
Bounds are CPU seconds per call (BOUND), so a machine shared with other jobs does not fail the test.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
import pytest

from search.guard import SpaceCallFailed, call_space
from search.protocols import Context, Dataset, UserError

GENOMES = {"bitstring": 2000, "eml": 300, "optree": 150, "float32": 100, "transformer_shapes": 2000,
           "megakernel": 300}
EMIT_EVERY = {"bitstring": 10, "eml": 30, "optree": 30, "float32": 10, "transformer_shapes": 20, "megakernel": 30}
#: CPU seconds one call may take (the engine's own wall-clock limit, SearchSettings.space_time_limit, is 10 s);
#: CPU time, so that a machine shared with other jobs does not fail the test. A call that hangs is stopped after
#: HANG wall seconds and fails it.
BOUND = 2.0
HANG = 60.0

RNG = np.random.default_rng(0)
X2 = RNG.uniform(0.5, 3.0, (64, 2))
DATA = Dataset(X=X2, y=X2[:, 0] * np.exp(-X2[:, 1]), variables=("a", "b"), target="y")

OPTREE_ADVERSARIAL = [
    ("mul", 1e308, "a"), ("div", "a", 5e-324), ("sub", -1e300, 1e300), ("pow", 1e300, "pow", 1e300, "b"),
    ("exp", "exp", "exp", "exp", "exp", 700.0), ("pow", "a", "pow", "b", "pow", "a", "pow", "b", 1e10),
    ("add", 1e-300, "mul", 1.7976931348623157e308, 1.7976931348623157e308), ("log", "sub", "a", "a"),
    ("sqrt", -1e308), ("sin", 1e300), ("pow", -2.0, 0.5), ("div", 0.0, 0.0),
    ("pow", "exp", 1e5, "exp", "exp", 20.0), ("mul", 1e-320, "pow", "a", 1e-320), ("pow", "mul", 1e308, "a", 1e300),
    ("exp", "mul", 1e300, "a"), ("log", "mul", 0.0, "b"),
]


def _space(name: str):
    if name == "bitstring":
        from spaces.bitstring import BitStringSpace
        return BitStringSpace(BitStringSpace.Config(length=48), Context()), []
    if name == "eml":
        from spaces.eml.space import EmlConfig, EmlSpace
        from spaces.eml.tree import EML, ONE, VAR0
        space = EmlSpace(EmlConfig(max_depth=6), Context(seed=0, dataset=DATA))
        chain = (VAR0,)
        for _ in range(6):  # exp(exp(exp(...))) - ln(1): the deepest nest of exponentials the height allows
            chain = (EML, *chain, ONE)
        return space, [chain]
    if name == "optree":
        from spaces.optree import OpTreeConfig, OpTreeSpace
        return OpTreeSpace(OpTreeConfig(), Context(seed=0, dataset=DATA)), list(OPTREE_ADVERSARIAL)
    if name == "float32":
        from spaces.float32.space import Float32Space
        return Float32Space(Float32Space.Config(target="exp", max_ops=12), Context()), []
    if name == "transformer_shapes":
        from spaces.architecture.shapes import TransformerShapeSpace
        return TransformerShapeSpace(TransformerShapeSpace.Config(seq_length=64), Context()), []
    from spaces.megakernel.space import MegakernelSpace
    return MegakernelSpace(MegakernelSpace.Config(), Context()), []


def exercise(name: str, genomes: int, seed: int = 0) -> dict[str, float]:
    """Run the chain; returns the slowest call per method (seconds). Fails on the first raise or overrun."""
    space, adversarial = _space(name)
    rng = np.random.default_rng(seed)
    slowest: dict[str, float] = defaultdict(float)

    def call(method, *args):
        start = time.process_time()
        try:
            out = call_space(method, getattr(space, method), *args, seconds=HANG)
        except SpaceCallFailed as exc:
            refused = method == "emit" and isinstance(exc.__cause__, UserError)
            if not refused:  # a one-line refusal (megakernel: "emit only certified schedules") is behaviour
                pytest.fail(f"{name}: {exc.reason} on {args[0]!r:.300}")
            out = str(exc.__cause__)
        seconds = time.process_time() - start
        assert seconds <= BOUND, f"{name}: space.{method} took {seconds:.2f} CPU s on {args[0]!r:.300}"
        slowest[method] = max(slowest[method], seconds)
        return out

    pool = [call("random", rng) for _ in range(8)] + adversarial
    made = list(adversarial)
    while len(made) < genomes:
        u = rng.random()
        if u < 0.2:
            new = [call("random", rng)]
        elif u < 0.6:
            new = [call("mutate", pool[int(rng.integers(len(pool)))], rng)]
        else:
            new = list(call("crossover", pool[int(rng.integers(len(pool)))], pool[int(rng.integers(len(pool)))], rng))
        for g in new:
            hash(call("key", g))
            assert isinstance(call("describe", g), str)
            if len(made) % EMIT_EVERY[name] == 0:
                for lang in space.emit_languages:
                    assert isinstance(call("emit", g, lang), str)
            pool[int(rng.integers(len(pool)))] = g
            made.append(g)
    for g in adversarial:  # every adversarial genome in every language, not only the sampled ones
        for lang in space.emit_languages:
            assert isinstance(call("emit", g, lang), str)
    return dict(slowest)


@pytest.mark.parametrize("name", list(GENOMES))
def test_no_space_method_raises_or_overruns(name):
    slowest = exercise(name, GENOMES[name])
    assert {"random", "key", "describe", "emit"} <= set(slowest)
    assert max(slowest.values()) <= BOUND


@pytest.mark.slow
@pytest.mark.parametrize("name", list(GENOMES))
def test_no_space_method_raises_or_overruns_at_ten_times_the_count(name):
    slowest = exercise(name, 10 * GENOMES[name], seed=1)
    assert max(slowest.values()) <= BOUND
