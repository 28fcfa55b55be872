"""Formula size as an objective (minimised): the space's node count, so the front trades error against size."""

from __future__ import annotations

from dataclasses import dataclass

from search.protocols import Context, Evaluation, Objective, Space, UserError


@dataclass(frozen=True)
class SizeConfig:
    """No settings: the size is whatever the space's `size(genome)` counts (nodes, leaves included)."""


class SizeObjective(Objective):
    Config = SizeConfig
    names = ("size",)
    directions = ("min",)

    def __init__(self, config: SizeConfig, space: Space, context: Context):
        super().__init__(config, space, context)
        if not hasattr(space, "size"):
            raise UserError(f"objectives.size: space {type(space).__name__} has no size(); drop this objective")

    def evaluate(self, genome) -> Evaluation:
        return Evaluation(values=(float(self.space.size(genome)),))
