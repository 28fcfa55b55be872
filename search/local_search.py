"""Coordinate polish: single-change local search from a search's best genome.

Why: a GA with a few dozen measured evaluations over a dozen-plus discrete genes lands near a good kernel but
rarely on it (each missing gene is one flip away). A sweep over the genome's coordinates, moving whenever one
change beats the current point by more than the measurement noise, costs one evaluation per alternative value
and collects those flips. Spaces opt in by defining `neighbourhood(genome)`; single-objective runs only.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from search.protocols import Evaluation


@dataclass
class PolishResult:
    genome: Any
    evaluation: Evaluation
    evaluations: int
    sweeps: int
    moves: list[dict[str, Any]] = field(default_factory=list)


def polish(start: Any, start_eval: Evaluation, neighbourhood: Callable[[Any], Sequence[Sequence[Any]]],
           evaluate: Callable[[list[Any]], list[Evaluation]], key: Callable[[Any], Hashable],
           direction: str = "min", rel_gain: float = 0.004, max_evaluations: int = 32,
           describe: Callable[[Any], str] = repr, cache: dict[Hashable, Evaluation] | None = None) -> PolishResult:
    """Sweep `neighbourhood(current)` (one group of genomes per coordinate, each differing from current in that
    coordinate only): evaluate a group, move to its best member if it beats the current value by more than
    `rel_gain` (relative), go on with the next coordinate from wherever we are. Repeat sweeps until one moves
    nothing or `max_evaluations` is spent. Failed or infeasible evaluations never win. `cache` (key ->
    Evaluation, e.g. the run's) is read and filled: a genome in it costs nothing."""
    if direction not in ("min", "max"):
        raise ValueError(f"direction {direction!r}: use 'min' or 'max'")
    sign = 1.0 if direction == "min" else -1.0
    current, cur = start, start_eval
    seen: dict[Hashable, Evaluation] = cache if cache is not None else {}
    seen.setdefault(key(start), start_eval)
    out = PolishResult(current, cur, 0, 0)

    def score(ev: Evaluation) -> float:
        return sign * ev.values[0] if ev.feasible else float("inf")

    while out.evaluations < max_evaluations:
        out.sweeps += 1
        moved = False
        for i in range(len(neighbourhood(current))):
            group = neighbourhood(current)[i]   # from wherever the sweep has moved to
            fresh = [g for g in group if key(g) not in seen][: max_evaluations - out.evaluations]
            if fresh:
                for g, ev in zip(fresh, evaluate(fresh)):
                    seen[key(g)] = ev
                out.evaluations += len(fresh)
            scored = [(score(seen[key(g)]), i, g) for i, g in enumerate(group) if key(g) in seen]
            if scored:
                best, _, g = min(scored, key=lambda t: (t[0], t[1]))
                if best < score(cur) - rel_gain * abs(score(cur)):
                    out.moves.append({"to": describe(g), "value": seen[key(g)].values[0], "from": cur.values[0]})
                    current, cur, moved = g, seen[key(g)], True
            if out.evaluations >= max_evaluations:
                break
        if not moved:
            break
    out.genome, out.evaluation = current, cur
    return out
