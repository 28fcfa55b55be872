"""The live progress line of a run: generation, evaluations per second, best objective values, ETA.

On a terminal it is a rich progress bar; elsewhere (CI logs, pipes) one plain line every tenth of the run.
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from search.engine import EngineState, GenerationReport, SearchSettings
from search.protocols import Objective


def _best(stats: dict[str, Any], objective: Objective) -> str:
    parts = [f"{n}={stats[f'best_{n}']:.4g}" for n in objective.names if f"best_{n}" in stats]
    return " ".join(parts) or "no feasible yet"


class RunProgress:
    def __init__(self, objective: Objective, settings: SearchSettings, start_generation: int, enabled: bool = True):
        self.objective = objective
        self.total = settings.generations
        self.console = Console(stderr=True, emoji=False, highlight=False)
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self.every = max(1, self.total // 10)
        if self.live:
            self.progress = Progress(TextColumn("gen"), MofNCompleteColumn(), BarColumn(), TextColumn("{task.fields[rate]}"),
                                     TextColumn("{task.fields[best]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                     TimeRemainingColumn(), console=self.console, transient=False)
            self.task = self.progress.add_task("run", total=self.total, completed=start_generation, rate="", best="")
            self.progress.start()

    def update(self, state: EngineState, report: GenerationReport) -> None:
        if not self.enabled:
            return
        stats = report.stats
        rate = f"{stats['evals_per_s']:.0f} evals/s" if stats.get("evals_per_s") else ""
        best = _best(stats, self.objective)
        if self.live:
            self.progress.update(self.task, completed=state.generation, rate=rate, best=best)
        elif state.generation % self.every == 0:
            print(f"gen {state.generation}/{self.total}  {stats['evaluations']} evals  {rate}  {best}", file=sys.stderr)

    def close(self) -> None:
        if self.live:
            self.progress.stop()
