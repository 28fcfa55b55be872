"""Recovery rate across seeds: does a shipped preset find the exact formula with every seed, or only lucky ones?

Runs, seed after seed, in-process (the CLI's `--local`), exactly what a user runs:

    evoforge run optree --data /work/shared/repro/optree-seed3/gaussian.csv --target y --seed S --local
    evoforge run quickstart --seed S --local

and counts a seed as recovered when the member of the final front that the run reports as its best (the simplest
one within the rmse target, `search.engine.preferred_rank`; the lowest rmse when none is), with constants snapped to
exact numbers (`spaces/snapping.py`, the same snapping `describe` and `emit` use), is proved equal to the true law
by sympy (`spaces.eml.recovery.check_recovery`, method "sympy"). The optree law is Feynman I.6.2a,
exp(-theta^2/2)/sqrt(2*pi); the quickstart law is E = E0 - ln Q. Each run keeps its preset's budget (population,
generations, per-evaluation timeout); `--wall` caps one run's seconds as a safety net (a capped run is reported).

The peer is a named variant of the optree preset run in the same invocation (`--peer`, on `--peer-seeds`), by
default the preset without novelty retries and restarts (as before issue 18); the table gives recovered counts and
the ratio of median seconds per run.

    python bench/recovery_seeds.py                                  # optree seeds 0-19, quickstart 0-9
    python bench/recovery_seeds.py --presets optree --seeds 0-4     # a quick look
Writes bench/results/recovery_seeds.json (after every seed, so a killed run keeps what it measured).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import sympy as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runs.job import build_job, make_evaluator  # noqa: E402
from runs.spec import load_spec  # noqa: E402
from search.engine import evolve, preferred_rank  # noqa: E402
from search.guard import SpaceCallFailed, call_space  # noqa: E402
from spaces.eml.compile import raw_sympy  # noqa: E402
from spaces.eml.recovery import check_recovery  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "recovery_seeds.json"
GAUSSIAN = Path("/work/shared/repro/optree-seed3/gaussian.csv")
REPO = Path(__file__).resolve().parents[1]
if not GAUSSIAN.exists():  # a copy travels with the repository for machines without the shared folder
    GAUSSIAN = REPO / "bench" / "data" / "gaussian.csv"


def _laws() -> dict[str, dict]:
    theta = sp.Symbol("theta", positive=True)
    e0, q = sp.Symbol("E0", positive=True), sp.Symbol("Q", positive=True)
    return {
        "optree": {"preset": "optree", "data": str(GAUSSIAN), "target": "y", "symbols": [theta],
                   "truth": sp.exp(-theta ** 2 / 2) / sp.sqrt(2 * sp.pi), "overrides": {}},
        "quickstart": {"preset": "quickstart", "data": None, "target": None, "symbols": [e0, q],
                       "truth": e0 - sp.log(q), "overrides": {}},
    }


def exact_candidate(space, genome, symbols) -> sp.Expr | None:
    """The genome as an exact sympy formula over positive symbols (snapped constants for optree)."""
    if hasattr(space, "exact_sympy"):
        expr = space.exact_sympy(genome)
        by_name = {s.name: s for s in symbols}
        return expr.xreplace({f: by_name[f.name] for f in expr.free_symbols if f.name in by_name})
    return raw_sympy(genome, symbols)


def run_seed(law: dict, seed: int, wall: float, overrides: dict) -> dict:
    merged = {"seed": seed, "backend.kind": "local", **law["overrides"], **overrides}
    if law["data"]:
        merged.update({"data.path": law["data"], "data.target": law["target"]})
    spec = load_spec(law["preset"], merged)
    job = build_job(spec)
    settings = dataclasses.replace(spec.search, wall_time=wall)
    start = time.perf_counter()
    with make_evaluator(spec, job.objective) as evaluator:
        state = evolve(job.space, job.objective, settings, seed=seed, evaluator=evaluator)
    seconds = time.perf_counter() - start
    best = state.front[preferred_rank(state.front, job.objective, settings.targets)]   # what `run` reports as best
    try:
        candidate = call_space("exact", exact_candidate, job.space, best.genome, law["symbols"], seconds=60.0)
    except SpaceCallFailed as exc:
        candidate, note = None, exc.reason
    else:
        note = ""
    X = job.space.context.dataset.X
    verdict = check_recovery(candidate, law["truth"], law["symbols"], X,
                             predict=lambda P: job.space.predict(best.genome, P))
    reached = [s["generation"] for s in state.logbook if s.get("best_rmse", 1.0) <= settings.targets.get("rmse", 0)]
    return {"seed": seed, "recovered": verdict.recovered and verdict.method == "sympy", "method": verdict.method,
            "formula": str(candidate) if candidate is not None else note, "rmse": best.evaluation.values[0],
            "generations": state.generation, "target_generation": reached[0] if reached else None,
            "evaluations": state.evaluations, "seconds": round(seconds, 2), "stop": state.stop_reason,
            "wall_capped": state.stop_reason is not None and state.stop_reason.startswith("wall time")}


def summary(rows: list[dict]) -> dict:
    hits = [r for r in rows if r["recovered"]]
    gens = [r["target_generation"] for r in rows if r["target_generation"] is not None]
    return {"recovered": len(hits), "seeds": len(rows),
            "median_target_generation": statistics.median(gens) if gens else None,
            "median_seconds": statistics.median(r["seconds"] for r in rows) if rows else None,
            "wall_capped": sum(r["wall_capped"] for r in rows)}


def _seeds(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["optree", "quickstart"], choices=["optree", "quickstart"])
    ap.add_argument("--seeds", default="0-19", help="optree seeds, e.g. 0-19")
    ap.add_argument("--quickstart-seeds", default="0-9")
    ap.add_argument("--wall", type=float, default=900.0, help="safety cap on one run, seconds")
    ap.add_argument("--peer", default="plain:search.novelty_tries=0,search.restart_after=0",
                    help="also run this optree variant: NAME:KEY=VALUE[,KEY=VALUE] ('' = none)")
    ap.add_argument("--peer-seeds", default="0-9")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    laws = _laws()
    out = json.loads(args.out.read_text()) if args.out.exists() else {}
    out["machine"] = f"{platform.node()}: {os.cpu_count()} cores, shared; runs niced and sequential"
    jobs = [("optree", s, "optree", {}) for s in _seeds(args.seeds)] if "optree" in args.presets else []
    if "quickstart" in args.presets:
        jobs += [("quickstart", s, "quickstart", {}) for s in _seeds(args.quickstart_seeds)]
    if args.peer and "optree" in args.presets:
        name, _, pairs = args.peer.partition(":")
        over = {k: json.loads(v) for k, v in (p.split("=", 1) for p in pairs.split(",") if p)}
        jobs += [(f"optree[{name}]", s, "optree", over) for s in _seeds(args.peer_seeds)]
    for label, seed, law, over in jobs:
        row = run_seed(laws[law], seed, args.wall, over)
        section = out.setdefault(label, {"overrides": over, "rows": []})
        section["rows"] = [r for r in section["rows"] if r["seed"] != seed] + [row]
        section["rows"].sort(key=lambda r: r["seed"])
        section["summary"] = summary(section["rows"])
        args.out.parent.mkdir(exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1, default=str) + "\n")
        print(f"{label:24s} seed {seed:2d}  {'EXACT' if row['recovered'] else 'miss '}  rmse {row['rmse']:.3g}  "
              f"gen {row['generations']:3d}  {row['seconds']:7.1f} s  {row['formula'][:70]}", flush=True)
    print(f"\n{'preset':24s} {'recovered':>10s} {'median gen':>11s} {'median s':>9s}")
    for label, section in out.items():
        if isinstance(section, dict) and "summary" in section:
            s = section["summary"]
            print(f"{label:24s} {s['recovered']:>4d}/{s['seeds']:<5d} {str(s['median_target_generation']):>11s} "
                  f"{str(s['median_seconds']):>9s}")
    if args.peer and "optree" in out and f"optree[{args.peer.partition(':')[0]}]" in out:
        a, b = out["optree"]["summary"], out[f"optree[{args.peer.partition(':')[0]}]"]["summary"]
        if a["median_seconds"] and b["median_seconds"]:
            print(f"median seconds, preset / {args.peer}: {a['median_seconds'] / b['median_seconds']:.2f}")


if __name__ == "__main__":
    main()
