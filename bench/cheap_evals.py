"""Cheap evaluations at cluster speed (issue 17): what Ray costs, and whether `backend.mode = "auto"` pays it only
when it pays back.

1. `--part costs`: an embedded Ray's start-up (import, `ray.init` with 2 CPUs, the first task on each worker) and
   one round trip of a task per worker, each start-up in a fresh process; median of `--repeats`.
2. `--part quickstart`: `evoforge run quickstart --quiet`, the default command vs `--local`, same seed, interleaved,
   median of `--repeats`: whole-command seconds and the search seconds evoforge prints.
   Target: default whole command <= --local's, search time no worse.
3. `--part eml`: EML jobs (fit + size, population 200, no target, a fixed number of generations) on CSVs whose row
   count is fixed so that one evaluation takes ~50 us (16 rows, the cheapest the space allows) and ~1 ms (4,000
   rows) on a quiet 2-core machine; the cost is measured and recorded with each job:
   what the default command picks, then islands on 2 Ray workers (`backend.mode = "islands"`) vs `--local` (the
   user's alternative, one population in-process) and vs the same islands in-process (the same search minus
   Ray), interleaved. Evaluations/s after generation 0 (from the run's logbook: generation 0 on Ray includes
   starting the workers and their imports), also over the whole search; whole-command seconds.
   Target: 2 workers >= 1.6x in-process evaluations/s.
4. `--part scaling16` (for a 16-core host; runs standalone with numpy, deap and ray): deceptive-trap bit strings
   (400 bits) whose evaluations spin the CPU for 1 ms and 0.1 ms; a population of 512 as 16 islands of 32 (what
   auto derives for 16 workers; 120 and 400 generations) on 16 Ray actors (median of `--scaling-repeats` runs)
   vs the same islands in-process, same seed (identical evaluations): parallel efficiency = in-process seconds /
   (16 x Ray seconds) after generation 0, and the peer: one population with each generation's evaluations on 16
   Ray workers (the generational mode; 30 and 100 generations) against it in-process.
   Targets: >= 80% at 1 ms, >= 50% at 0.1 ms.

Every part records `uptime`'s load before and after. Writes bench/results/cheap_evals.json (parts merge into it).
    python bench/cheap_evals.py --part costs quickstart eml [--repeats 5]
    python bench/cheap_evals.py --part scaling16 [--max-workers 16]
    taskset -c 0,1 python bench/cheap_evals.py --part scaling16    # the same on 2 quiet cores (key scaling2)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "cheap_evals.json"
STOPPED = re.compile(r"stopped: .*; (\d+) generations, (\d+) evaluations, ([0-9.]+) s")


def load() -> float:
    """The 1-minute load average (what `uptime` prints first)."""
    return round(os.getloadavg()[0], 2)


def usable_cores() -> int:
    """Cores this process may run on (`taskset` and containers limit them below os.cpu_count())."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine() -> str:
    return f"{platform.node()}: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"


def evoforge(*args: str, env: dict | None = None) -> dict:
    """Run the real command line; whole-command seconds, the backend line, and the figures it prints."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "runs.cli", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=900)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"evoforge {' '.join(map(str, args))} failed: {proc.stderr[-2000:]}")
    match = STOPPED.search(proc.stdout)
    backend = [line for line in proc.stderr.splitlines() if line.startswith("backend:")]
    return {"whole_seconds": round(seconds, 3), "generations": int(match[1]), "evaluations": int(match[2]),
            "search_seconds": float(match[3]), "backend": " | ".join(backend) or None,
            "ray_failed_to_start": any("did not start" in line for line in backend)}


# --- 1. Ray's own costs -------------------------------------------------------------------------------------------

RAY_COST_SCRIPT = """
import json, sys, time
sys.path.insert(0, {root!r})
from search.placement import reference_seconds
before = reference_seconds()
t0 = time.perf_counter()
import ray
ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
@ray.remote
def task(x):
    return x
ray.get([task.remote(i) for i in range(2)])
started = time.perf_counter() - t0
trips = []
for _ in range(100):
    s = time.perf_counter()
    ray.get([task.remote(i) for i in range(2)])
    trips.append(time.perf_counter() - s)
ray.shutdown()
reference = (before + reference_seconds()) / 2
print(json.dumps({{"start_seconds": started, "round_trip_seconds": sorted(trips)[50],
                  "reference_seconds": reference}}))
"""


def part_costs(repeats: int) -> dict:
    """Ray's start-up and round trip, also in units of `search.placement.reference_seconds` measured in the same
    process (the units search/placement.py keeps them in)."""
    rows = []
    for _ in range(repeats):
        before = load()
        out = subprocess.run([sys.executable, "-c", RAY_COST_SCRIPT.format(root=str(ROOT))], capture_output=True,
                             text=True, timeout=600)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row.update(start_references=row["start_seconds"] / row["reference_seconds"],
                   round_trip_references=row["round_trip_seconds"] / row["reference_seconds"],
                   load_before=before, load_after=load())
        rows.append(row)
        print(f"ray start {row['start_seconds']:.2f} s = {row['start_references']:.0f} references, round trip "
              f"{1e3 * row['round_trip_seconds']:.2f} ms = {row['round_trip_references']:.2f} references "
              f"(reference {1e3 * row['reference_seconds']:.1f} ms, load {before})", flush=True)
    return {"repeats": rows,
            "median_start_seconds": round(statistics.median(r["start_seconds"] for r in rows), 3),
            "median_round_trip_ms": round(1e3 * statistics.median(r["round_trip_seconds"] for r in rows), 3),
            "median_start_references": round(statistics.median(r["start_references"] for r in rows), 1),
            "median_round_trip_references": round(statistics.median(r["round_trip_references"] for r in rows), 3)}


# --- 2. quickstart --------------------------------------------------------------------------------------------------

def part_quickstart(repeats: int) -> dict:
    rows: dict[str, list] = {"default": [], "local": []}
    with tempfile.TemporaryDirectory(prefix="cheap-evals-") as folder:
        for r in range(repeats):
            for label, extra in (("default", []), ("local", ["--local"])):
                before = load()
                row = evoforge("run", "quickstart", "--quiet", "--seed", "0", "--out", f"{folder}/{label}{r}", *extra)
                rows[label].append({**row, "load_before": before, "load_after": load()})
                print(f"{label:>8} {r}: whole {row['whole_seconds']:.2f} s, search {row['search_seconds']:.2f} s "
                      f"(load {before})", flush=True)
    summary = {label: {"median_whole_seconds": statistics.median(x["whole_seconds"] for x in runs),
                       "median_search_seconds": statistics.median(x["search_seconds"] for x in runs), "runs": runs}
               for label, runs in rows.items()}
    summary["whole_ratio_default_over_local"] = round(summary["default"]["median_whole_seconds"]
                                                      / summary["local"]["median_whole_seconds"], 3)
    summary["search_ratio_default_over_local"] = round(summary["default"]["median_search_seconds"]
                                                       / summary["local"]["median_search_seconds"], 3)
    return summary


# --- 3. EML jobs with ~50 us and ~1 ms evaluations -----------------------------------------------------------------

EML_SPEC = """
seed = 1
[space]
name = "eml"
max_depth = 4
[[objectives]]
name = "fit"
metric = "rmse"
[[objectives]]
name = "size"
[data]
path = "{data}"
target = "y"
[search]
population = 200
generations = {generations}
[backend]
workers = 2
timeout = 10.0
"""


def eml_data(rows: int, path: Path) -> Path:
    """A noisy two-variable target no small EML tree fits exactly, so the population stays diverse."""
    rng = np.random.default_rng(17)
    X = rng.uniform(0.5, 3.0, (rows, 2))
    y = X[:, 0] * np.log(X[:, 1] + 1.0) + 0.3 * np.sin(3 * X[:, 0]) + rng.normal(0, 0.01, rows)
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", header="a,b,y", comments="")
    return path


def eml_eval_seconds(rows: int, folder: Path) -> float:
    """Seconds per evaluation of this job in-process (best of 3 passes over 380 genomes)."""
    from runs.job import build_job
    from runs.spec import load_spec
    from search.evaluation import evaluate_chunk

    spec_path = folder / f"probe{rows}.toml"
    spec_path.write_text(EML_SPEC.format(data=eml_data(rows, folder / f"probe{rows}.csv"), generations=1))
    job = build_job(load_spec(str(spec_path)))
    genomes = job.space.initial(np.random.default_rng(0), 400)
    evaluate_chunk(job.objective, genomes[:20], 10.0)  # warm-up
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        evaluate_chunk(job.objective, genomes[20:], 10.0)
        best = min(best, (time.perf_counter() - start) / (len(genomes) - 20))
    return best


def rate(run: dict) -> float:
    """Evaluations per second after generation 0 (whose time on Ray includes starting the workers and their
    imports), from the run's own logbook."""
    return run["steady_evals_per_s"]


def steady_evals_per_s(run_dir: Path) -> float:
    from runs.rundir import RunDirectory

    logbook = RunDirectory(run_dir).load_checkpoint().logbook  # per generation, or per epoch for islands
    first, last = logbook[0], logbook[-1]
    return (last["evaluations"] - first["evaluations"]) / (last["elapsed"] - first["elapsed"])


def part_eml(repeats: int, generations: dict[str, int], rows: dict[str, int]) -> dict:
    """Per cost level: what the default command chooses (once), then `repeats` interleaved rounds of islands on 2
    Ray workers (backend.mode = "islands", what auto runs for such a job when it is long enough to repay Ray's
    start-up), `--local`, and the same islands in-process."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="cheap-evals-") as tmp:
        folder = Path(tmp)
        for label in ("50us", "1ms"):
            cost = eml_eval_seconds(rows[label], folder)  # measured now: a loaded machine makes it larger
            text = EML_SPEC.format(data=eml_data(rows[label], folder / f"eml{label}.csv"),
                                   generations=generations[label])
            spec, forced = folder / f"eml{label}.toml", folder / f"eml{label}-islands.toml"
            spec.write_text(text)
            forced.write_text(text + 'mode = "islands"\n')
            before = load()
            default = {**evoforge("run", spec, "--quiet", "--out", folder / f"a{label}"), "load_before": before,
                       "load_after": load()}
            print(f"{label}: default command: {default['backend']}", flush=True)
            runs: dict[str, list] = {"islands_2_workers": [], "local": [], "same_islands_in_process": []}
            for r in range(repeats):
                commands = {"islands_2_workers": (forced, []), "local": (spec, ["--local"]),
                            "same_islands_in_process": (folder / f"i{label}0" / "spec.toml", ["--local"])}
                for name, (path, extra) in commands.items():
                    before = load()
                    row = evoforge("run", path, "--quiet", "--out", folder / f"{name[0]}{label}{r}", *extra)
                    runs[name].append({**row, "steady_evals_per_s": steady_evals_per_s(folder / f"{name[0]}{label}{r}"),
                                       "whole_search_evals_per_s": row["evaluations"] / row["search_seconds"],
                                       "load_before": before, "load_after": load()})
                print(f"{label} {r}: islands on 2 workers {rate(runs['islands_2_workers'][-1]):.0f} evals/s, local "
                      f"{rate(runs['local'][-1]):.0f}, same islands in-process "
                      f"{rate(runs['same_islands_in_process'][-1]):.0f} (load {before})", flush=True)
            summary = {"rows": rows[label], "eval_seconds": cost, "generations": generations[label], "default": default}
            for name, items in runs.items():
                summary[name] = {"median_evals_per_s": round(statistics.median(rate(x) for x in items), 1),
                                 "median_whole_search_evals_per_s": round(statistics.median(
                                     x["whole_search_evals_per_s"] for x in items), 1),
                                 "median_whole_seconds": statistics.median(x["whole_seconds"] for x in items),
                                 "median_search_seconds": statistics.median(x["search_seconds"] for x in items),
                                 "runs": items}
            summary["islands_runs_where_ray_failed_to_start"] = sum(x["ray_failed_to_start"]
                                                                    for x in runs["islands_2_workers"])
            islands = summary["islands_2_workers"]["median_evals_per_s"]
            summary["speedup_vs_local"] = round(islands / summary["local"]["median_evals_per_s"], 3)
            summary["speedup_vs_same_islands_in_process"] = round(
                islands / summary["same_islands_in_process"]["median_evals_per_s"], 3)
            out[label] = summary
    return out


# --- 4. scaling on a 16-core host -----------------------------------------------------------------------------------

def trap_job(work_seconds: float):
    from objectives.bit_problems import Trap
    from search.protocols import Context
    from spaces.bitstring import BitStringSpace

    space = BitStringSpace(BitStringSpace.Config(length=400), Context())
    return space, Trap(Trap.Config(k=4, work_seconds=work_seconds), space, Context())


def timed_islands(work_seconds: float, workers: int, total: int, generations: int, use_ray: bool,
                  repeats: int = 1) -> dict:
    """Islands as auto derives them for `workers`; seconds from the end of generation 0 (actors started, first
    population evaluated) to the end, and the evaluations made in that span; on Ray the median of `repeats` runs
    in one Ray session (every run must give the same front). island_step_seconds: the islands' own step time in
    that span, summed (on Ray: what the actors spent evolving, the rest of workers x seconds is waiting and
    shipping)."""
    from search.engine import SearchSettings
    from search.islands import IslandSettings, evolve_islands
    from search.placement import DERIVED_MIGRATION_INTERVAL
    from search.ray_backend import connect

    space, objective = trap_job(work_seconds)
    settings = SearchSettings(population=math.ceil(total / workers), generations=generations)
    islands = IslandSettings(islands=workers, migration_interval=DERIVED_MIGRATION_INTERVAL, migrants=2)
    runs = []
    started = connect(workers) if use_ray else False
    try:
        for _ in range(repeats):
            marks: list[tuple[float, int, float]] = []  # per epoch: wall clock, evaluations, islands' step seconds

            def mark(archipelago, reports, marks=marks):
                marks.append((time.perf_counter(), archipelago.evaluations,
                              sum(i.elapsed for i in archipelago.islands)))

            begin = time.perf_counter()
            state = evolve_islands(space, objective, settings, islands, seed=0, use_ray=use_ray, on_epoch=mark)
            end = time.perf_counter()
            runs.append({"seconds": round(end - marks[0][0], 3), "evaluations": state.evaluations - marks[0][1],
                         "seconds_with_start": round(end - begin, 3), "epochs": state.epoch,
                         "island_step_seconds": round(sum(i.elapsed for i in state.islands) - marks[0][2], 3),
                         "front": [f.key for f in state.front]})
    finally:
        if started:
            import ray

            ray.shutdown()
    assert all(r["front"] == runs[0]["front"] for r in runs), "same seed: the same front in every run"
    median = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    return {**median, "all_seconds": [r["seconds"] for r in runs]}


def timed_generational(work_seconds: float, workers: int, total: int, generations: int, use_ray: bool) -> dict:
    from search.engine import SearchSettings, evolve
    from search.evaluation import LocalEvaluator
    from search.ray_backend import RayEvaluator

    space, objective = trap_job(work_seconds)
    settings = SearchSettings(population=total, generations=generations)
    evaluator = RayEvaluator(objective, workers=workers) if use_ray else LocalEvaluator(objective)
    marks: list[tuple[float, int]] = []
    try:
        evolve(space, objective, settings, seed=0, evaluator=evaluator,
               on_generation=lambda s, r: marks.append((time.perf_counter(), s.evaluations)))
    finally:
        evaluator.close()
    return {"seconds": round(marks[-1][0] - marks[0][0], 3), "evaluations": marks[-1][1] - marks[0][1]}


def auto_choice(work_seconds: float, workers: int, total: int, generations: int) -> str:
    from search.engine import SearchSettings
    from search.placement import choose, measure

    space, objective = trap_job(work_seconds)
    settings = SearchSettings(population=total, generations=generations)
    costs, _ = measure(space, objective, settings, seed=0, timeout=None)
    return choose(costs, settings, workers, usable_cores(), cluster=False, islands_in_spec=False).reason


# (label, seconds an evaluation spins, island generations, generations of the one-population peer). The island
# runs are long enough (4-6 s on 16 Ray actors) that the first epoch and the last details fetch are a small part.
SCALING_LEVELS = (("1ms", 1e-3, 120, 30), ("0.1ms", 1e-4, 400, 100))


def part_scaling(workers: int, total: int, repeats: int) -> dict:
    out = {}
    for label, work, generations, gen_generations in SCALING_LEVELS:
        before = load()
        choice = auto_choice(work, workers, total, generations)
        local = timed_islands(work, workers, total, generations, use_ray=False)
        ray_run = timed_islands(work, workers, total, generations, use_ray=True, repeats=repeats)
        assert ray_run["front"] == local["front"], "same seed, same islands: the front must not depend on hosting"
        efficiency = local["seconds"] / (workers * ray_run["seconds"])
        gen_local = timed_generational(work, workers, total, gen_generations, use_ray=False)
        gen_ray = timed_generational(work, workers, total, gen_generations, use_ray=True)
        gen_efficiency = gen_local["seconds"] / (workers * gen_ray["seconds"])
        out[label] = {
            "auto_choice": choice, "workers": workers, "population": total, "generations": generations,
            "islands_in_process": {k: v for k, v in local.items() if k != "front"},
            "islands_on_ray": {k: v for k, v in ray_run.items() if k != "front"},
            "islands_efficiency": round(efficiency, 3),
            # where the Ray run's workers x seconds went: the islands' own steps (slower than in-process when
            # actors are preempted), the rest waiting for migrants and shipping states
            "ray_step_share": round(ray_run["island_step_seconds"] / (workers * ray_run["seconds"]), 3),
            "step_seconds_ray_over_in_process": round(ray_run["island_step_seconds"] / local["island_step_seconds"], 3),
            "islands_evals_per_s": round(ray_run["evaluations"] / ray_run["seconds"], 1),
            "in_process_evals_per_s": round(local["evaluations"] / local["seconds"], 1),
            "peer_generational": {"generations": gen_generations, "in_process": gen_local, "on_ray": gen_ray,
                                  "efficiency": round(gen_efficiency, 3)},
            "load_before": before, "load_after": load(),
        }
        print(f"{label}: islands on {workers} Ray workers {out[label]['islands_evals_per_s']:.0f} evals/s vs "
              f"in-process {out[label]['in_process_evals_per_s']:.0f}: efficiency {100 * efficiency:.1f}% (median "
              f"of {repeats}: {ray_run['all_seconds']} s; steps {100 * out[label]['ray_step_share']:.1f}% of the "
              f"actors' time, {out[label]['step_seconds_ray_over_in_process']:.2f}x their in-process time); "
              f"generational peer {100 * gen_efficiency:.1f}%  [{choice}]", flush=True)
    return out


def table(results: dict) -> None:
    print("\n| measure | evoforge default | peer | ratio |\n|---|---|---|---|")
    if "quickstart" in results:
        q = results["quickstart"]
        print(f"| quickstart whole command (median) | {q['default']['median_whole_seconds']:.2f} s | --local "
              f"{q['local']['median_whole_seconds']:.2f} s | {q['whole_ratio_default_over_local']}x |")
        print(f"| quickstart search (median) | {q['default']['median_search_seconds']:.2f} s | --local "
              f"{q['local']['median_search_seconds']:.2f} s | {q['search_ratio_default_over_local']}x |")
    for row in results.get("eml", {}).values():
        print(f"| EML {row['eval_seconds'] * 1e6:.0f} us evals, evals/s | islands on 2 workers "
              f"{row['islands_2_workers']['median_evals_per_s']} | --local {row['local']['median_evals_per_s']}; "
              f"same islands in-process {row['same_islands_in_process']['median_evals_per_s']} | "
              f"{row['speedup_vs_local']}x; {row['speedup_vs_same_islands_in_process']}x |")
    for key in [k for k in results if k.startswith("scaling") and not k.endswith("_machine")]:
        for label, row in results[key].items():
            print(f"| {label} evals, {row['workers']} workers, efficiency | islands "
                  f"{100 * row['islands_efficiency']:.1f}% | generational {100 * row['peer_generational']['efficiency']:.1f}%"
                  f" | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", default=["costs", "quickstart", "eml"],
                        choices=["costs", "quickstart", "eml", "scaling16"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--eml-repeats", type=int, default=3)
    parser.add_argument("--generations-50us", type=int, default=300)
    parser.add_argument("--generations-1ms", type=int, default=60)
    parser.add_argument("--rows-50us", type=int, default=16, help="CSV rows of the cheap EML job (its cheapest)")
    parser.add_argument("--rows-1ms", type=int, default=4000, help="CSV rows of the ~1 ms EML job (2-core, quiet)")
    parser.add_argument("--max-workers", type=int, default=16)
    parser.add_argument("--scaling-repeats", type=int, default=3, help="Ray island runs per level (median)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = json.loads(args.results.read_text()) if args.results.exists() else {}
    if "costs" in args.part:
        results["costs"] = {**part_costs(min(args.repeats, 3)), "machine": machine()}
    if "quickstart" in args.part:
        results["quickstart"] = {**part_quickstart(args.repeats), "machine": machine()}
    if "eml" in args.part:
        results["eml"] = part_eml(args.eml_repeats, {"50us": args.generations_50us, "1ms": args.generations_1ms},
                                  {"50us": args.rows_50us, "1ms": args.rows_1ms})
        results["eml_machine"] = machine()
    if "scaling16" in args.part:
        workers = min(args.max_workers, usable_cores())
        key = f"scaling{workers}"  # scaling16 on the 16-core host; scaling2 under `taskset -c 0,1` (2 quiet cores)
        results[key] = part_scaling(workers, total=32 * workers, repeats=args.scaling_repeats)
        results[f"{key}_machine"] = f"{machine()}, {usable_cores()} cores usable"
    table(results)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {args.results}")


if __name__ == "__main__":
    main()
