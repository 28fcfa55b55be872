"""`evoforge compress all-MiniLM-L6-v2 --to 3MB` as a user runs it: wall time, CPU time and fidelity per domain.

The command runs in a child process with an empty teacher-target cache (a first run: the teacher's pass over the
corpus is counted), so the wall time is what a new user waits. On a shared machine the wall time depends on the
other jobs, so the load average (1 minute, before and after) and the child's CPU seconds (user + system) are
recorded next to it: CPU seconds / cores is what the run would take alone. The named peer is model2vec's static
model of the same size, measured in the same run (the report's `peer` row) when model2vec is installed.

    python bench/compress_cli.py                     # writes bench/results/compress_cli_3MB.json
    python bench/compress_cli.py --to 1MB --extra --prefer=speed
    python bench/compress_cli.py --to 3MB --compare-only  # model2vec comparison of an existing run -> compress.json

Issue 15's targets: wall <= 600 s on 2 cores, held-out mean cosine >= 0.85 on code and on English prose.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WALL_TARGET_S = 600.0
COSINE_TARGET = 0.85


def run_cli(to: str, extra: list[str]) -> dict:
    """Run the command in a fresh cache and output folder; its report plus wall, CPU seconds and load."""
    work = Path(tempfile.mkdtemp(prefix="compress-cli-"))
    out = work / "student"
    shown = ["evoforge", "compress", "all-MiniLM-L6-v2", "--to", to, *extra]
    command = [str(Path(sys.executable).parent / "evoforge"), *shown[1:], "--out", str(out)]
    env = {**os.environ, "EVOFORGE_CACHE": str(work / "cache")}
    load_before = os.getloadavg()
    began = time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=Path(__file__).resolve().parents[1])
    wall = time.perf_counter() - began
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = json.loads((out / "report.json").read_text())
    shutil.rmtree(work, ignore_errors=True)
    return {"command": " ".join(shown),
            "wall_seconds": wall, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024, "cores": os.cpu_count(),
            "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]},
            "report": report}


def summary(run: dict) -> dict:
    """The issue's figures: per-domain cosine and top-1 of the written student and of every point of the front."""
    report = run["report"]
    chosen = report["student"]
    rows = report["students"] + ([report["peer"]] if report.get("peer") else [])
    return {
        "wall_seconds": run["wall_seconds"], "cpu_seconds": run["cpu_seconds"],
        "load_average_1min": run["load_average_1min"], "timings": report["timings"],
        "chosen": chosen["name"], "file_mb": chosen["file_mb"],
        "domains": chosen["domains"], "latency_ms": chosen["latency_ms"],
        "teacher_latency_ms": report["teacher_figures"]["latency_ms"],
        "meets_targets": {"wall": run["wall_seconds"] <= WALL_TARGET_S,
                          **{f"cosine_{d}": v["mean_cosine"] >= COSINE_TARGET for d, v in chosen["domains"].items()}},
        "rows": [{"name": r["name"], "kind": r["kind"], "file_mb": r["file_mb"], "latency_ms": r["latency_ms"],
                  **{f"{k}_{d}": v[k] for d, v in r["domains"].items() for k in ("mean_cosine", "top1_agreement")}}
                 for r in rows]}


def versus_model2vec(figures: dict) -> dict:
    """The command's own front against its model2vec row (same run, held-out sets and measures): which of our
    students Pareto-dominate it (mean over the domains of cosine and of top-1 higher, batch-1 latency no higher)."""
    def means(r: dict) -> tuple[float, float]:
        domains = sorted({k.split("_")[-1] for k in r if k.startswith("mean_cosine_")})
        return (sum(r[f"mean_cosine_{d}"] for d in domains) / len(domains),
                sum(r[f"top1_agreement_{d}"] for d in domains) / len(domains))

    peers = [r for r in figures["rows"] if r["kind"] == "model2vec"]
    if not peers:
        return {"model2vec": None, "dominating": []}
    peer = peers[0]
    pc, pt = means(peer)
    ours = [r for r in figures["rows"] if r["kind"] != "model2vec"]
    return {"model2vec": peer, "ours": ours, "chosen": figures["chosen"],
            "dominating": [r["name"] for r in ours
                           if means(r)[0] > pc and means(r)[1] > pt and r["latency_ms"] <= peer["latency_ms"]]}


def merge_into_compress_json(size: str, figures: dict, path: Path) -> None:
    """compress.json["command_vs_model2vec"][size]: issue 15's model2vec comparison from the command's own run."""
    existing = json.loads(path.read_text()) if path.is_file() else {}
    existing.setdefault("command_vs_model2vec", {})[size] = versus_model2vec(figures)
    path.write_text(json.dumps(existing, indent=2))


def print_table(figures: dict) -> None:
    load = figures["load_average_1min"]
    print(f"\nwall {figures['wall_seconds']:.0f} s (target <= {WALL_TARGET_S:.0f}), CPU {figures['cpu_seconds']:.0f} s,"
          f" load average {load['before']:.1f} -> {load['after']:.1f}; chosen {figures['chosen']} "
          f"({figures['file_mb']:.3f} MB)")
    print("timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in figures["timings"].items()))
    domains = list(figures["domains"])
    header = f"{'student':32s} {'MB':>6s} {'ms':>7s} " + " ".join(f"{'cos ' + d:>11s} {'top1 ' + d:>11s}"
                                                                   for d in domains)
    print(header)
    print("-" * len(header))
    for r in figures["rows"]:
        print(f"{r['name']:32s} {r['file_mb']:6.3f} {r['latency_ms']:7.3f} " + " ".join(
            f"{r[f'mean_cosine_{d}']:11.4f} {r[f'top1_agreement_{d}']:11.3f}" for d in domains))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--to", default="3MB")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more options for the command")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/compress_cli_SIZE.json)")
    parser.add_argument("--compare-only", action="store_true",
                        help="no run: merge the model2vec comparison of an existing compress_cli_SIZE.json into "
                             "compress.json")
    args = parser.parse_args()
    results = Path(__file__).parent / "results"
    out = Path(args.out or results / f"compress_cli_{args.to}.json")
    if args.compare_only:
        figures = json.loads(out.read_text())["summary"]
    else:
        run = run_cli(args.to, args.extra)
        figures = summary(run)
        out.write_text(json.dumps({"summary": figures, **run}, indent=2, default=str))
    merge_into_compress_json(args.to, figures, results / "compress.json")
    print_table(figures)
    print(f"dominating model2vec: {versus_model2vec(figures)['dominating'] or 'none'}")


if __name__ == "__main__":
    main()
