"""The AI Feynman benchmark, all 100 equations (bench/feynman100_table.py), noiseless and with 1% noise: evoforge
(the shipped `sr` and `optree` presets; `eml` on request) against pyoperon and gplearn, same data, same wall budget
and one core per (equation, system) run, fixed seeds.

Per equation k: `--train` training and `--test` test points drawn uniformly in the published ranges from
numpy's Generator seeded with (--seed, k); the noisy variant adds Gaussian noise of 1% of the target's RMS to the
training target only (SRBench's convention). Each system gets `--budget` wall seconds (evoforge: the preset's search
with wall_time = budget and no generation limit, local backend; pyoperon: max_time, one thread; gplearn: warm-started
generations until the budget is spent). Every system's formula then goes through the same constant snapping
(`spaces.snapping`, checked against the system's own training data) and simplification. Exact recovery:
`spaces.eml.recovery.check_recovery` on the snapped formula (sympy proves it equal to the truth, else it agrees to
1e-12 relative on 1,000 fresh points, half of them outside the training box). Test R^2: the system's own predictor
on the noise-free test points. Runs go to worker processes (`--workers`, plain multiprocessing, no Ray needed), each
killed if it overruns its budget by `--grace` seconds; finished runs are appended to bench/results/feynman100_runs.jsonl
as they come, so `--resume` continues a killed benchmark. Writes bench/results/feynman100.json.

    python bench/feynman.py --budget 60 --workers 16                  # the full benchmark (4 systems x 200 runs)
    python bench/feynman.py --budget 10 --only I.12.1 II.3.24 --systems sr pyoperon
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing as mp
import os
import signal
import statistics
import sys
import time
import traceback
import warnings
from multiprocessing.connection import wait
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from feynman100_table import EQUATIONS  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "feynman100.json"
RUNS = ROOT / "bench" / "results" / "feynman100_runs.jsonl"
SYSTEMS = ("sr", "optree", "pyoperon", "gplearn")
ALL_SYSTEMS = (*SYSTEMS, "eml")
NOISE_LEVELS = (0.0, 0.01)


# --- problems --------------------------------------------------------------------------------------------------
def equation(name: str):
    """(target sympy expression, positive symbols, lows, highs) of one equation of the table."""
    import sympy as sp

    for eq_id, _, formula, variables in EQUATIONS:
        if eq_id == name:
            symbols = [sp.Symbol(v, positive=True) for v, _, _ in variables]
            local = {s.name: s for s in symbols}
            target = sp.sympify(formula, locals=local)
            return target, symbols, np.array([lo for _, lo, _ in variables], float), \
                np.array([hi for _, _, hi in variables], float)
    raise KeyError(name)


def problem(name: str, noise: float, n_train: int, n_test: int, seed: int):
    """Training inputs, (noisy) training target, test inputs, noise-free test target. Deterministic in the seed."""
    import sympy as sp

    target, symbols, lo, hi = equation(name)
    index = [e[0] for e in EQUATIONS].index(name)
    rng = np.random.default_rng([seed, index])
    X = rng.uniform(lo, hi, (n_train + n_test, len(symbols)))
    with np.errstate(all="ignore"):
        y = np.asarray(sp.lambdify(symbols, target, "numpy")(*X.T), dtype=float) * np.ones(len(X))
    Xtr, ytr, Xte, yte = X[:n_train], y[:n_train].copy(), X[n_train:], y[n_train:]
    noise_rng = np.random.default_rng([seed, index, 1])
    if noise > 0:
        ytr = ytr + noise_rng.normal(0.0, noise * math.sqrt(float(np.mean(ytr ** 2))), len(ytr))
    return Xtr, ytr, Xte, yte


# --- systems -----------------------------------------------------------------------------------------------------
def run_evoforge(preset: str, Xtr, ytr, names, budget, seed):
    """The shipped preset, as `evoforge run PRESET --data ...` would run it, in this process, for `budget` seconds."""
    from runs.job import build_job
    from runs.spec import load_spec
    from search.engine import evolve
    from search.protocols import Dataset

    spec = load_spec(preset, {"seed": seed})
    job = build_job(spec, Dataset(X=Xtr, y=ytr, variables=tuple(names), target="y"))
    settings = dataclasses.replace(spec.search, generations=10**9, max_evaluations=None, wall_time=budget)
    state = evolve(job.space, job.objective, settings, seed=seed)
    best = pick(state.front, float(np.sqrt(np.mean(ytr ** 2))) if job.objective.names[0] == "rmse" else 1.0)
    expr = job.space.to_sympy(best.genome) if preset == "eml" else job.space.exact_sympy(best.genome)
    return expr, (lambda P: np.real(job.space.predict(best.genome, P)))


def pick(front, scale: float):
    """The smallest front member whose error is within 2% (plus 1e-9 of `scale`, the target's RMS for an RMSE) of
    the best: the exact law rather than a bloated tree that fits the noise slightly better."""
    feasible = [ind for ind in front if ind.evaluation.failed is None] or list(front)
    best = min(ind.evaluation.values[0] for ind in feasible)
    close = [ind for ind in feasible if ind.evaluation.values[0] <= best * 1.02 + 1e-9 * scale]
    return min(close, key=lambda ind: (ind.evaluation.values[1] if len(ind.evaluation.values) > 1 else 0,
                                       ind.evaluation.values[0]))


def run_pyoperon(Xtr, ytr, names, budget, seed):
    import sympy as sp
    from pyoperon.sklearn import SymbolicRegressor

    reg = SymbolicRegressor(allowed_symbols="add,sub,mul,div,exp,log,sqrt,sin,cos,constant,variable",
                            max_time=max(1, int(budget)), generations=10**6, max_evaluations=10**9,
                            random_state=seed, n_threads=1)
    reg.fit(Xtr, ytr)
    text = reg.get_model_string(reg.model_, 16, list(names))
    expr = sp.sympify(text, locals={n: sp.Symbol(n, positive=True) for n in names})
    return expr, (lambda P: reg.predict(P))


def run_gplearn(Xtr, ytr, names, budget, seed):
    import sympy as sp
    from gplearn.genetic import SymbolicRegressor

    reg = SymbolicRegressor(population_size=1000, generations=1, function_set=("add", "sub", "mul", "div", "sqrt",
                            "log", "sin", "cos"), random_state=seed, warm_start=True, n_jobs=1)
    start = time.perf_counter()
    generations = 0
    while time.perf_counter() - start < budget:
        generations += 1
        reg.set_params(generations=generations)
        reg.fit(Xtr, ytr)
        if reg._program.raw_fitness_ < 1e-12:
            break
    ops = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
           "div": lambda a, b: a / b, "sqrt": lambda a: sp.sqrt(sp.Abs(a)), "log": lambda a: sp.log(sp.Abs(a)),
           "sin": sp.sin, "cos": sp.cos}
    local = dict(ops, **{f"X{i}": sp.Symbol(n, positive=True) for i, n in enumerate(names)})
    return sp.sympify(str(reg._program), locals=local), (lambda P: reg.predict(P))


def _import_system(system: str) -> None:
    if system in ("sr", "optree", "eml"):
        import runs.job  # noqa: F401
        import search.engine  # noqa: F401
    elif system == "pyoperon":
        import pyoperon.sklearn  # noqa: F401
    else:
        import gplearn.genetic  # noqa: F401


def run_system(system, Xtr, ytr, names, budget, seed):
    if system in ("sr", "optree", "eml"):
        return run_evoforge(system, Xtr, ytr, names, budget, seed)
    if system == "pyoperon":
        return run_pyoperon(Xtr, ytr, names, budget, seed)
    return run_gplearn(Xtr, ytr, names, budget, seed)


# --- one run ---------------------------------------------------------------------------------------------------
def r2(pred, y) -> float:
    pred = np.real(np.asarray(pred, dtype=complex)) * np.ones(len(y))
    if not np.all(np.isfinite(pred)):
        return float("-inf")
    return float(1 - np.mean((pred - y) ** 2) / np.var(y))


def score(expr, target, symbols, Xtr, ytr) -> dict:
    """The snapped, simplified formula of a system's raw expression and whether it is the law (the same for every
    system: snapping is checked against the run's own training data)."""
    import sympy as sp

    from spaces.eml.recovery import check_recovery
    from spaces.snapping import exact_formula

    positive = {sp.Symbol(s.name, real=True): s for s in symbols}
    positive.update({sp.Symbol(s.name): s for s in symbols})
    expr = exact_formula(expr.xreplace(positive), symbols, Xtr, ytr)
    rec = check_recovery(expr, target, symbols, Xtr, ops_limit=60)
    return {"formula": str(expr)[:400], "recovered": rec.recovered, "method": rec.method,
            "max_relative_error": rec.max_relative_error}


def rescore_one(task: dict) -> dict:
    """A finished run scored again from its recorded raw formula with today's snapping and recovery check (the
    search is not re-run). Runs without a complete raw formula (errors, formulas cut at 400 characters) are
    returned as they were."""
    import sympy as sp

    run = dict(task["run"])
    raw = run.get("raw_formula")
    if not raw or len(raw) >= 400 or run.get("seconds") is None:
        return run
    warnings.filterwarnings("ignore")
    target, symbols, _, _ = equation(run["equation"])
    s = run["settings"]
    Xtr, ytr, _, _ = problem(run["equation"], run["noise"], s["train"], s["test"], s["seed"])
    start = time.perf_counter()
    try:
        expr = sp.sympify(raw, locals={sym.name: sym for sym in symbols})
        new = score(expr, target, symbols, Xtr, ytr)
    except Exception as exc:  # noqa: BLE001 - a formula that no longer parses keeps its first score
        return {**run, "rescore": f"{type(exc).__name__}: {exc}"[:200]}
    before = {k: run.get(k) for k in ("formula", "recovered", "error") if k in run}
    if "scoring did not finish" in run.get("error", ""):
        run.pop("error")      # the first scoring ran out of time; this one finished
    return {**run, **new, "score_seconds": round(time.perf_counter() - start, 2), "first_score": before}


def run_one(task: dict, progress=lambda partial: None) -> dict:
    """Run one system on one equation and score it (in a worker process). `progress` gets the result so far once
    the system has finished, so a run killed while scoring still reports its time and R^2."""
    warnings.filterwarnings("ignore")
    name, system, noise = task["equation"], task["system"], task["noise"]
    target, symbols, _, _ = equation(name)
    Xtr, ytr, Xte, yte = problem(name, noise, task["train"], task["test"], task["seed"])
    out = {"equation": name, "system": system, "noise": noise, "truth": str(target)}
    _import_system(system)  # imports are not the system's search time
    start = time.perf_counter()
    try:
        expr, predict = run_system(system, Xtr, ytr, [s.name for s in symbols], task["budget"],
                                   task["seed"] * 1000 + [e[0] for e in EQUATIONS].index(name))
        out["seconds"] = round(time.perf_counter() - start, 2)
        out["raw_formula"] = str(expr)[:400]
        with np.errstate(all="ignore"):
            out["test_r2"] = r2(predict(Xte), yte)
        progress({**out, "recovered": False, "method": "", "error": "scoring did not finish"})
        out.update(score(expr, target, symbols, Xtr, ytr))
    except Exception as exc:  # a system failing on one equation is a result, not a reason to stop
        out.update(seconds=round(time.perf_counter() - start, 2), recovered=False, method="", test_r2=float("-inf"),
                   error=f"{type(exc).__name__}: {exc}"[:300], trace=traceback.format_exc()[-600:])
    out["score_seconds"] = round(time.perf_counter() - start - out["seconds"], 2)
    return out


def _child(task: dict, conn) -> None:
    conn.send(run_one(task, conn.send))
    conn.close()


def run_all(tasks: list[dict], workers: int, grace: float, on_result, stop_at: float = math.inf) -> None:
    """Run tasks in `workers` spawned processes at a time; a run past budget + grace is killed and recorded.
    No run starts after `stop_at` (time.monotonic()); the rest are left for --resume."""
    ctx = mp.get_context("spawn")
    pending = list(tasks)
    running: dict = {}
    while running or (pending and time.monotonic() < stop_at):
        while pending and len(running) < workers and time.monotonic() < stop_at:
            task = pending.pop(0)
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(task, child), daemon=True)
            proc.start()
            child.close()
            running[parent] = [proc, task, time.monotonic() + task["budget"] + grace, None]
        for conn in wait(list(running), timeout=1.0):
            try:
                message = conn.recv()
            except EOFError:  # the worker ended: its last message is the result
                proc, task, _, last = running.pop(conn)
                proc.join()
                on_result(last or {**_key(task), "recovered": False, "method": "", "test_r2": float("-inf"),
                                   "seconds": None, "error": f"worker died (exit code {proc.exitcode})"})
                continue
            running[conn][3] = message
        now = time.monotonic()
        for conn, (proc, task, deadline, last) in list(running.items()):
            if now > deadline:
                proc.kill()
                proc.join()
                running.pop(conn)
                base = last or {**_key(task), "recovered": False, "method": "", "test_r2": float("-inf"),
                                "seconds": None}
                on_result({**base, "error": f"killed after budget + {grace:g} s ({base.get('error', 'searching')})"})


def _key(task: dict) -> dict:
    return {"equation": task["equation"], "system": task["system"], "noise": task["noise"]}


# --- summary ---------------------------------------------------------------------------------------------------
def summarise(runs: list[dict], systems, noises) -> dict:
    out = {}
    for system in systems:
        for noise in noises:
            rows = [r for r in runs if r["system"] == system and r["noise"] == noise]
            if not rows:
                continue
            won = [r for r in rows if r["recovered"]]
            r2s = [r["test_r2"] if r.get("test_r2") is not None and math.isfinite(r["test_r2"]) else -1e9 for r in rows]
            out[f"{system}@{noise:g}"] = {
                "system": system, "noise": noise, "equations": len(rows), "exact": len(won),
                "median_seconds_to_recovery": statistics.median(r["seconds"] for r in won) if won else None,
                "median_test_r2": statistics.median(r2s), "errors": sum(1 for r in rows if r.get("error"))}
    return out


def print_table(summary: dict, budget: float, peer: str = "pyoperon") -> None:
    print(f"\nbudget {budget:g} s per equation and system, one core each")
    print(f"{'system':<10} {'noise':>6} {'exact':>9} {'median s to exact':>18} {'median test R^2':>16} {'errors':>7}")
    for s in summary.values():
        secs = "-" if s["median_seconds_to_recovery"] is None else f"{s['median_seconds_to_recovery']:.1f}"
        print(f"{s['system']:<10} {s['noise']:>6g} {s['exact']:>4}/{s['equations']:<4} {secs:>18} "
              f"{s['median_test_r2']:>16.6f} {s['errors']:>7}")
    for s in summary.values():
        other = summary.get(f"{peer}@{s['noise']:g}")
        if s["system"] != peer and other and other["exact"]:
            print(f"{s['system']} / {peer} exact recoveries at noise {s['noise']:g}: {s['exact'] / other['exact']:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=60.0, help="wall seconds per equation and system")
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=ALL_SYSTEMS)
    ap.add_argument("--only", nargs="+", default=None, help="equation ids (default: all 100)")
    ap.add_argument("--every", type=int, default=1, help="every N-th equation of the table (a representative subset)")
    ap.add_argument("--noise", nargs="+", type=float, default=list(NOISE_LEVELS), help="noise levels (fraction)")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 0))
    ap.add_argument("--train", type=int, default=500)
    ap.add_argument("--test", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grace", type=float, default=120.0, help="seconds a run may overrun its budget (scoring)")
    ap.add_argument("--resume", action="store_true", help=f"skip runs already in {RUNS.name}")
    ap.add_argument("--deadline", type=float, default=math.inf,
                    help="seconds after which no new run starts (the summary covers the runs done; --resume goes on)")
    ap.add_argument("--runs", type=Path, default=RUNS, help="JSONL of finished runs")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--rescore", action="store_true",
                    help="score the runs in --runs again from their raw formulas (snapping or checks changed); "
                         "no search is run; the file is rewritten")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # exit through atexit: the daemonic workers die too
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # one core per run: the children inherit this before they import numpy
    ids = [e[0] for e in EQUATIONS]
    unknown = [n for n in args.only or [] if n not in ids]
    if unknown:
        sys.exit(f"error: --only: unknown equation {unknown[0]!r}; ids are like {ids[0]}, {ids[-1]}")
    names = (args.only or ids)[:: max(1, args.every)]
    settings = {"budget": args.budget, "train": args.train, "test": args.test, "seed": args.seed}
    if args.rescore:
        rescore(args, names, ids)
        return
    done = []
    if args.resume and args.runs.is_file():
        done = [json.loads(line) for line in args.runs.read_text().splitlines() if line.strip()]
        done = [r for r in done if all(r.get("settings", {}).get(k) == v for k, v in settings.items())]
    have = {(r["equation"], r["system"], r["noise"]) for r in done}
    tasks = [{"equation": n, "system": s, "noise": z, **settings} for z in args.noise for n in names
             for s in args.systems if (n, s, z) not in have]
    args.runs.parent.mkdir(parents=True, exist_ok=True)
    if not args.resume:
        args.runs.write_text("")
    runs = list(done)
    print(f"{len(tasks)} runs ({len(done)} resumed), {args.workers} workers, budget {args.budget:g} s", flush=True)

    def record(result: dict) -> None:
        result["settings"] = settings
        runs.append(result)
        with open(args.runs, "a") as handle:
            handle.write(json.dumps(result, default=str) + "\n")
        mark = "EXACT" if result["recovered"] else ("error" if result.get("error") else "-")
        print(f"{result['equation']:>10} {result['system']:>9} noise {result['noise']:<5g} {mark:>5} "
              f"{result.get('seconds') or 0:>6.1f}s R2 {result.get('test_r2', float('nan')):.6f}  "
              f"{result.get('formula', result.get('error', ''))[:90]}", flush=True)

    run_all(tasks, args.workers, args.grace, record, time.monotonic() + args.deadline)
    write_summary(args, runs, names, ids, settings,
                  {"workers": args.workers, "machine": f"{os.cpu_count()} logical CPUs"})


def write_summary(args, runs: list[dict], names, ids, settings: dict, where: dict) -> None:
    runs = [r for r in runs if r["equation"] in names and r["system"] in args.systems and r["noise"] in args.noise]
    summary = summarise(runs, args.systems, args.noise)
    print_table(summary, args.budget)
    payload = {"benchmark": "AI Feynman, 100 equations (Udrescu & Tegmark 2020)", **settings, **where,
               "cores_per_run": 1, "equations": len(names), "noise_levels": args.noise, "summary": summary,
               "runs": sorted(runs, key=lambda r: (r["noise"], ids.index(r["equation"]), r["system"]))}
    args.out.write_text(json.dumps(payload, indent=1, default=str))
    print(f"wrote {args.out}")


_RESCORE_LIMIT = 60.0


def _rescore_worker_init(limit: float) -> None:
    global _RESCORE_LIMIT
    _RESCORE_LIMIT = limit


def _rescore_in_worker(task: dict) -> dict:
    """rescore_one in a long-lived pool worker (imports paid once), stopped by SIGALRM after the limit."""
    def give_up(*_):
        raise TimeoutError

    signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, _RESCORE_LIMIT)
    try:
        return rescore_one(task)
    except TimeoutError:
        return {**task["run"], "error_rescore": "killed"}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def rescore(args, names, ids) -> None:
    """--rescore: every selected run of --runs scored again from its raw formula (in a pool of worker processes,
    each scoring stopped after --grace s: such a run keeps its first score); the runs file is rewritten and the
    summary written."""
    runs = [json.loads(line) for line in args.runs.read_text().splitlines() if line.strip()]
    picked = [i for i, r in enumerate(runs) if r["equation"] in names and r["system"] in args.systems
              and r["noise"] in args.noise]
    index = {(r["equation"], r["system"], r["noise"]): i for i, r in enumerate(runs)}
    print(f"rescoring {len(picked)} of {len(runs)} runs, {args.workers} workers", flush=True)
    changed = 0

    def record(result: dict) -> None:
        nonlocal changed
        i = index[(result["equation"], result["system"], result["noise"])]
        if "first_score" not in result:       # unchanged, or the rescoring did not finish in time
            runs[i] = {**runs[i], **({"rescore": "did not finish"} if "error_rescore" in result else {})}
            return
        if result["recovered"] != runs[i]["recovered"]:
            changed += 1
            print(f"{result['equation']:>10} {result['system']:>9} noise {result['noise']:<5g} "
                  f"{'now EXACT' if result['recovered'] else 'no longer exact'}: {result['formula'][:90]}", flush=True)
        runs[i] = result
        done[0] += 1
        if done[0] % 25 == 0:          # a killed rescoring keeps what it has done
            args.runs.write_text("".join(json.dumps(r, default=str) + "\n" for r in runs))

    done = [0]
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.workers, initializer=_rescore_worker_init, initargs=(args.grace,)) as pool:
        for result in pool.imap_unordered(_rescore_in_worker, [{"run": runs[i]} for i in picked]):
            record(result)
    args.runs.write_text("".join(json.dumps(r, default=str) + "\n" for r in runs))
    print(f"{changed} runs changed their verdict")
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    settings = {"budget": args.budget, "train": args.train, "test": args.test, "seed": args.seed}
    where = {k: previous[k] for k in ("workers", "machine", "hosts") if k in previous}
    where["rescored"] = (f"{time.strftime('%Y-%m-%d')}: runs at noise {args.noise} scored again from their raw "
                         "formulas (bench/feynman.py --rescore)")
    args.noise = sorted({r["noise"] for r in runs}, reverse=True)      # the summary covers every run in the file
    args.systems = [s for s in ALL_SYSTEMS if any(r["system"] == s for r in runs)]
    write_summary(args, runs, names, ids, settings, where)


if __name__ == "__main__":
    main()
