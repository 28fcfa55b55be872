"""`evoforge report`: the front as a table and the run's convergence as a PNG, from the run directory alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from runs.rundir import RunDirectory
from search.protocols import UserError


def front_rows(run: RunDirectory) -> tuple[list[dict[str, Any]], str | None]:
    if not run.front_path.is_file():
        raise UserError(f"RUNDIR: {run.path} has no front.json yet; finish it with `evoforge resume {run.path}`")
    payload = json.loads(run.front_path.read_text())
    return payload["front"], payload.get("stop_reason")


def front_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    columns = [c for c in (rows[0].keys() if rows else ["rank"]) if c != "key"]
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[f"{row[c]:.6g}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns])
    return table


def convergence_plot(run: RunDirectory, path: Path) -> Path:
    """Best and median of each objective per generation, and evaluations per second, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = run.read_stats()
    if not stats:
        raise UserError(f"RUNDIR: {run.path} has no statistics yet (stats.jsonl is empty)")
    names = sorted({k[len("best_"):] for s in stats for k in s if k.startswith("best_")})
    fig, axes = plt.subplots(len(names) + 1, 1, figsize=(7, 2.6 * (len(names) + 1)), sharex=True, squeeze=False)
    gens = [s["generation"] for s in stats]
    for ax, name in zip(axes[:, 0], names):
        best = [s.get(f"best_{name}") for s in stats]
        median = [s.get(f"median_{name}") for s in stats]
        ax.plot(gens, best, label="best", color="tab:blue")
        ax.plot(gens, median, label="median", color="tab:orange", alpha=0.7)
        positive = [v for v in best + median if v is not None]
        if positive and min(positive) > 0 and max(positive) / min(positive) > 1e3:
            ax.set_yscale("log")
        ax.set_ylabel(name)
        ax.legend(loc="best", fontsize=8)
    rate_ax = axes[-1, 0]
    rate_ax.plot(gens, [s.get("evals_per_s") or 0 for s in stats], color="tab:green")
    rate_ax.set_ylabel("evaluations/s")
    rate_ax.set_xlabel("generation")
    fig.suptitle(f"convergence: {run.path.name}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
