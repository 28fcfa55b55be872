"""An objective that misbehaves on purpose: it raises on some genomes and hangs on others, deterministically.

Bit strings whose first two bits are 1,1 raise; those starting 0,1,1 hang (sleep far past any timeout).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from search.protocols import Evaluation, Objective


class FaultyOneMax(Objective):
    @dataclass(frozen=True)
    class Config:
        hang_seconds: float = 3600.0

    names = ("ones",)
    directions = ("max",)

    def evaluate(self, genome) -> Evaluation:
        if genome[0] == 1 and genome[1] == 1:
            raise ValueError("refusing genomes that start with 11")
        if genome[0] == 0 and genome[1] == 1 and genome[2] == 1:
            time.sleep(self.config.hang_seconds)
        return Evaluation(values=(float(sum(genome)),))
