"""Bit-string benchmark problems: OneMax and Goldberg's deceptive k-trap, with an optional artificial cost.

`work_seconds` spins the CPU for that long per evaluation (not a sleep), so benchmarks of the evaluation backends
measure real parallel work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from search.protocols import Evaluation, Objective


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class OneMax(Objective):
    """Number of ones (maximised). Optimum = length."""

    @dataclass(frozen=True)
    class Config:
        work_seconds: float = 0.0   # CPU time burnt per evaluation, to emulate a costly objective

    names = ("ones",)
    directions = ("max",)

    def evaluate(self, genome) -> Evaluation:
        if self.config.work_seconds:
            _spin(self.config.work_seconds)
        return Evaluation(values=(float(sum(genome)),))


class Trap(Objective):
    """Concatenated deceptive k-traps (Deb and Goldberg 1993): each block of k bits scores k if all ones, else
    k - 1 - ones. Gradient-following search is pulled to all zeros; the optimum (all ones) scores the length."""

    @dataclass(frozen=True)
    class Config:
        k: int = 4                  # block size; the genome length must be a multiple
        work_seconds: float = 0.0

    names = ("trap",)
    directions = ("max",)

    def evaluate(self, genome) -> Evaluation:
        if self.config.work_seconds:
            _spin(self.config.work_seconds)
        blocks = np.asarray(genome).reshape(-1, self.config.k).sum(axis=1)
        k = self.config.k
        return Evaluation(values=(float(np.where(blocks == k, k, k - 1 - blocks).sum()),))
