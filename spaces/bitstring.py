"""Fixed-length bit strings: the classic genetic-algorithm test bed (OneMax, deceptive traps).

Used to measure the engine itself (`bench/engine_overhead.py`) and as the smallest worked example of a space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search.protocols import Space


class BitStringSpace(Space):
    """Genomes are tuples of 0/1 ints; mutation flips each bit with probability `flip_rate` (at least one)."""

    @dataclass(frozen=True)
    class Config:
        length: int = 64           # bits per genome
        flip_rate: float = 0.0     # per-bit flip probability; 0 means 1/length

    emit_languages = ("python", "c")

    def random(self, rng: np.random.Generator) -> tuple[int, ...]:
        return tuple(int(b) for b in rng.integers(0, 2, self.config.length))

    def mutate(self, genome: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        rate = self.config.flip_rate or 1.0 / len(genome)
        flips = rng.random(len(genome)) < rate
        flips[rng.integers(len(genome))] = True
        return tuple(int(b) ^ int(f) for b, f in zip(genome, flips))

    def crossover(self, a, b, rng: np.random.Generator):
        cut = int(rng.integers(1, len(a)))
        return a[:cut] + b[cut:], b[:cut] + a[cut:]

    def neighbourhood(self, genome: tuple[int, ...]) -> list[list[tuple[int, ...]]]:
        """One group per bit, its flip (search.local_search.polish)."""
        return [[genome[:i] + (1 - genome[i],) + genome[i + 1:]] for i in range(len(genome))]

    def key(self, genome: tuple[int, ...]) -> str:
        return "".join(map(str, genome))

    def emit(self, genome: tuple[int, ...], lang: str) -> str:
        bits = ", ".join(map(str, genome))
        if lang == "python":
            return f'"""Bit string found by evoforge."""\n\nBITS = ({bits},)\n\nif __name__ == "__main__":\n    print("".join(map(str, BITS)))\n'
        if lang == "c":
            return f"/* Bit string found by evoforge. */\nconst unsigned char evoforge_bits[{len(genome)}] = {{{bits}}};\n"
        raise self.unsupported(lang)
