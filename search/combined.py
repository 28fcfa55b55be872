"""Several objectives scored as one: names, directions and constraints concatenated in spec order.

A run spec lists objectives separately (`fit`, `size`, ...); the engine sees one `Objective`. If any part fails,
the whole evaluation fails with that part's reason, so a genome is never half-scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from search.evaluation import normalise
from search.protocols import Evaluation, Objective


class CombinedObjective(Objective):
    @dataclass(frozen=True)
    class Config:
        """Built from its parts, never from a spec table."""

    def __init__(self, parts: Sequence[Objective]):
        if not parts:
            raise ValueError("CombinedObjective needs at least one objective")
        super().__init__(self.Config(), parts[0].space, parts[0].context)
        self.parts = list(parts)
        self.names = tuple(n for p in parts for n in p.names)
        self.directions = tuple(d for p in parts for d in p.directions)
        self.constraints = tuple(c for p in parts for c in p.constraints)

    def preflight(self) -> None:
        for part in self.parts:
            part.preflight()

    def evaluate(self, genome: Any) -> Evaluation:
        values: list[float] = []
        violations: list[float] = []
        extras: dict[str, Any] = {}
        for part in self.parts:
            result = normalise(part.evaluate(genome), part)
            if result.failed is not None:
                return Evaluation.failure(f"{'/'.join(part.names)}: {result.failed}", len(self.names),
                                          self.directions)
            values += result.values
            violations += result.violations
            extras.update(result.extras)
        return Evaluation(values=tuple(values), violations=tuple(violations), extras=extras)
