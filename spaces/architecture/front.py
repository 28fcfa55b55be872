"""The trade-off a compression offers: students' fidelity against measured batch-1 latency, and the pick rule.

Each point is a finished student (or a peer such as model2vec) with `mean_cosine` (held-out, averaged over
domains) and `latency_ms` (batch 1, text to vector). The front keeps the points no other point beats on both.
`--prefer` picks one point of the front:
  fidelity  the highest mean cosine;
  speed     the lowest latency;
  balanced  the fastest point within `BALANCED_COSINE` of the best mean cosine (a loss a user rarely sees,
            bought with the largest speed-up the front offers).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search.protocols import UserError

PREFERENCES = ("fidelity", "speed", "balanced")
BALANCED_COSINE = 0.02


def check_preference(prefer: str) -> str:
    if prefer not in PREFERENCES:
        raise UserError(f"--prefer: {prefer!r} is not known; choose fidelity, speed or balanced")
    return prefer


def pareto_front(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points not dominated in (higher mean_cosine, lower latency_ms), fastest first."""
    front = [p for p in points
             if not any(q is not p and q["mean_cosine"] >= p["mean_cosine"] and q["latency_ms"] <= p["latency_ms"]
                        and (q["mean_cosine"] > p["mean_cosine"] or q["latency_ms"] < p["latency_ms"])
                        for q in points)]
    return sorted(front, key=lambda p: p["latency_ms"])


def pick(points: Sequence[dict[str, Any]], prefer: str) -> dict[str, Any]:
    """The point `prefer` chooses among `points` (peers excluded by the caller)."""
    front = pareto_front(points)
    if not front:
        raise ValueError("pick: no points")
    check_preference(prefer)
    if prefer == "fidelity":
        return max(front, key=lambda p: p["mean_cosine"])
    if prefer == "speed":
        return front[0]
    best = max(p["mean_cosine"] for p in front)
    return next(p for p in front if p["mean_cosine"] >= best - BALANCED_COSINE)


def plot_front(points: Sequence[dict[str, Any]], chosen: dict[str, Any], path: Path, title: str) -> None:
    """Mean cosine against latency (log scale), the front joined, the chosen point ringed, each point named."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    front = pareto_front([p for p in points if p.get("kind") != "model2vec"])
    for p in points:
        peer = p.get("kind") == "model2vec"
        ax.scatter(p["latency_ms"], p["mean_cosine"], marker="s" if peer else "o",
                   color="tab:orange" if peer else "tab:blue")
        ax.annotate(p["name"], (p["latency_ms"], p["mean_cosine"]), fontsize=7, xytext=(4, 3),
                    textcoords="offset points")
    ax.plot([p["latency_ms"] for p in front], [p["mean_cosine"] for p in front], color="tab:blue", alpha=0.5)
    ax.scatter([chosen["latency_ms"]], [chosen["mean_cosine"]], s=160, facecolors="none", edgecolors="red")
    ax.set_xscale("log")
    ax.set_xlabel("batch-1 latency, text to vector (ms, one thread)")
    ax.set_ylabel("held-out mean cosine to the teacher")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
