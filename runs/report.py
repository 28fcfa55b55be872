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
        table.add_row(*[_cell(row.get(c, "")) for c in columns])
    return table


def _series(stats: list[dict[str, Any]], key: str) -> dict[Any, tuple[list, list]]:
    """Per island (None for a single population): generations and values of `key`."""
    series: dict[Any, tuple[list, list]] = {}
    for line in stats:
        if line.get(key) is not None:
            gens, values = series.setdefault(line.get("island"), ([], []))
            gens.append(line["generation"])
            values.append(line[key])
    return series


def convergence_plot(run: RunDirectory, path: Path) -> Path:
    """Best (and median) of each objective per generation, per island when there are islands; evaluations per
    second against wall time; the Pareto front of the first two objectives. One PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = run.read_stats()
    if not stats:
        raise UserError(f"RUNDIR: {run.path} has no statistics yet (stats.jsonl is empty)")
    names = [k[len("best_"):] for k in stats[-1] if k.startswith("best_")]
    rows, _ = front_rows(run) if run.front_path.is_file() else ([], None)
    panels = len(names) + 1 + (1 if len(names) >= 2 and rows else 0)
    fig, axes = plt.subplots(panels, 1, figsize=(7, 2.6 * panels), squeeze=False)
    axes = axes[:, 0]
    for ax, name in zip(axes, names):
        best = _series(stats, f"best_{name}")
        for island, (gens, values) in sorted(best.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
            ax.plot(gens, values, label="best" if island is None else f"island {island}")
        if len(best) == 1:
            for gens, values in _series(stats, f"median_{name}").values():
                ax.plot(gens, values, label="median", alpha=0.7)
        positive = [v for _, values in best.values() for v in values]
        if positive and min(positive) > 0 and max(positive) / min(positive) > 1e3:
            ax.set_yscale("log")
        ax.set_ylabel(name)
        ax.set_xlabel("generation")
        ax.legend(loc="best", fontsize=7, ncol=2)
    rate_ax = axes[len(names)]
    # Throughput per generation: evaluations done by all populations over the slowest population's step time.
    by_generation: dict[int, list[dict[str, Any]]] = {}
    for line in stats:
        by_generation.setdefault(line["generation"], []).append(line)
    ordered = sorted(by_generation)
    previous = {line.get("island"): line["elapsed"] for line in by_generation[ordered[0]]}
    gens, rates = [], []
    for gen in ordered[1:]:
        lines = by_generation[gen]
        seconds = max(line["elapsed"] - previous.get(line.get("island"), line["elapsed"]) for line in lines)
        previous.update({line.get("island"): line["elapsed"] for line in lines})
        if seconds > 0:
            gens.append(gen)
            rates.append(sum(line["new_evaluations"] for line in lines) / seconds)
    rate_ax.plot(gens, rates, color="tab:green")
    rate_ax.set_ylabel("evaluations/s")
    rate_ax.set_xlabel("generation")
    if len(names) >= 2 and rows:
        ax = axes[-1]
        xs = [r.get(names[0]) for r in rows]
        ys = [r.get(names[1]) for r in rows]
        ax.step(xs, ys, where="post", color="tab:gray", alpha=0.5)
        ax.scatter(xs, ys, color="tab:red", zorder=3)
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.set_title("final front", fontsize=9)
    fig.suptitle(f"convergence: {run.path.name}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def html_report(run: RunDirectory, png: Path, path: Path) -> Path:
    """A self-contained page (table and plot inline) that opens in any browser, offline."""
    import base64
    import html

    rows, reason = front_rows(run)
    columns = [c for c in (rows[0].keys() if rows else []) if c != "key"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows)
    failures = run.read_failures()
    image = base64.b64encode(png.read_bytes()).decode()
    path.write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>evoforge: {html.escape(run.path.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;font-family:monospace}}</style>
</head><body><h1>{html.escape(run.path.name)}</h1><p>stopped: {html.escape(str(reason))}; {len(failures)} failed evaluation(s)</p>
<h2>front</h2><table><tr>{head}</tr>{body}</table><h2>convergence</h2><img src="data:image/png;base64,{image}" alt="convergence"></body></html>
""")
    return path


def _cell(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
