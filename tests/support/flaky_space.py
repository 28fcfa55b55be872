"""A bit-string space whose own methods misbehave on purpose, deterministically, one switch per method.

`describe` raises on strings starting 1,0; `mutate` raises on strings starting 0,0; `key` raises on strings
ending 1,1,1; `hang_describe` makes `describe` spin for an hour on strings starting 1,0; `broken` makes every
`mutate` and `crossover` raise. Registered in a subprocess as space "flaky" for the CLI test.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from spaces.bitstring import BitStringSpace


class FlakySpace(BitStringSpace):
    @dataclass(frozen=True)
    class Config:
        length: int = 24
        flip_rate: float = 0.0
        bad_describe: bool = False
        bad_mutate: bool = False
        bad_key: bool = False
        hang_describe: bool = False
        broken: bool = False

    def describe(self, genome):
        if (self.config.bad_describe or self.config.hang_describe) and genome[:2] == (1, 0):
            if self.config.hang_describe:
                end = time.monotonic() + 3600
                while time.monotonic() < end:  # Python code spinning: what a runaway simplification looks like
                    pass
            raise ValueError("describe bug on 10...")
        return super().describe(genome)

    def mutate(self, genome, rng):
        if self.config.broken or (self.config.bad_mutate and genome[:2] == (0, 0)):
            raise RuntimeError("mutate bug on 00...")
        return super().mutate(genome, rng)

    def crossover(self, a, b, rng):
        if self.config.broken:
            raise RuntimeError("crossover bug")
        return super().crossover(a, b, rng)

    def key(self, genome):
        if self.config.bad_key and genome[-3:] == (1, 1, 1):
            raise KeyError("key bug on ...111")
        return super().key(genome)
