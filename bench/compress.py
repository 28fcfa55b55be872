"""Compressor on all-MiniLM-L6-v2: the GA + distillation student against the teacher and two same-size baselines.

For each target size (10, 3, 1 MB by default; MB = 10^6 bytes), in one run:
  evoforge        GA shapes (max GFLOPs under the size limit, one run per vocabulary floor), re-ranked by a short
                  distillation, then the winner distilled for the full budget with teacher-initialised embeddings;
  ga_random_init  the same shape, random weights, no distillation (what the search alone gives);
  hand_picked     one layer, the teacher's head size and 4x feed-forward ratio, as wide as fits the limit, with the
                  winner's vocabulary, distilled the same way (what the search buys over a plain guess).
Each is saved, loaded back from disk and measured against the teacher (the named peer): file size, GFLOPs, CPU
latency ratios at batch 1 and 32 (medians of `latency_repeats` forward passes, one torch thread each), mean cosine
and top-1 retrieval agreement on held-out text (the default corpus: code and English prose, issue 15).

    python bench/compress.py --parallel 3         # on a GPU host: one process per target, about 8 minutes
    python bench/compress.py --targets 3 --final-steps 300   # a quicker look on a CPU

Writes bench/results/compress.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from objectives.distillation import TrainingConfig, prepare_data, train_student  # noqa: E402
from runs.compress import CompressSettings, hand_picked_shape, measure, rerank, search_shapes, teacher_figures  # noqa: E402
from spaces.architecture.corpus import CorpusConfig  # noqa: E402
from spaces.architecture.student import save_student  # noqa: E402

FIELDS = ("file_mb", "gflops", "latency_ratio_b1", "latency_ratio_b32", "mean_cosine", "top1_agreement")


def run_variant(shape, data, settings: CompressSettings, init: str, train: bool, workdir: Path) -> dict:
    config = TrainingConfig(steps=settings.final_steps, batch_size=settings.batch_size,
                            learning_rate=settings.learning_rate, max_length=settings.seq_length,
                            threads=settings.threads, seed=settings.seed)
    student, tokenizer, result = train_student(shape, data, config, init=init, train=train)
    directory = Path(tempfile.mkdtemp(dir=workdir))
    save_student(student, tokenizer, directory, settings.dtype, settings.seq_length, int8=shape.int8)
    row = measure(directory, data, settings)
    row["shape"] = shape.describe()
    row["train_seconds"] = result.seconds if result else 0.0
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=float, nargs="+", default=[3.0, 1.0, 10.0], help="sizes in MB")
    defaults = CompressSettings()
    parser.add_argument("--final-steps", type=int, default=defaults.final_steps)
    parser.add_argument("--rerank-steps", type=int, default=defaults.rerank_steps)
    parser.add_argument("--train-snippets", type=int, default=defaults.train_snippets)
    parser.add_argument("--dtype", default=defaults.dtype)
    parser.add_argument("--teacher", default="", help="a local model directory (default: the packaged MiniLM)")
    parser.add_argument("--parallel", action="store_true", help="one process per target (for a GPU host)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "compress.json"))
    args = parser.parse_args()
    settings = replace(defaults, final_steps=args.final_steps, rerank_steps=args.rerank_steps,
                       train_snippets=args.train_snippets, dtype=args.dtype)
    if args.parallel and len(args.targets) > 1:
        return run_parallel(args)
    began = time.perf_counter()
    data = prepare_data(args.teacher, None, CorpusConfig(max_train=settings.train_snippets,
                                               max_held_out=settings.held_out_snippets), settings.max_length,
                        settings.seed)
    from objectives.distillation import device_for_training

    print(f"training on {device_for_training()}; teacher targets ready: {len(data.corpus.train)} train, {len(data.corpus.held_out)} held-out snippets "
          f"({time.perf_counter() - began:.0f} s)", flush=True)
    results: dict = {"settings": asdict(settings), "device": device_for_training(),
                     "teacher": teacher_figures(data, settings), "targets": {}}
    workdir = Path(tempfile.mkdtemp(prefix="bench-compress-"))
    for target in args.targets:
        candidates, search_seconds = search_shapes(args.teacher, target, data.plan.floor, settings)
        ranked = rerank(candidates, args.teacher, None, settings, 1, data)
        chosen = ranked[0]
        print(f"{target:g} MB: search {search_seconds:.1f} s; chosen {chosen.shape.describe()} "
              f"(re-rank cosine {chosen.fidelity})", flush=True)
        rows = {"evoforge": run_variant(chosen.shape, data, settings, "teacher", True, workdir),
                "ga_random_init": run_variant(chosen.shape, data, settings, "random", False, workdir)}
        hand = hand_picked_shape(args.teacher, target, chosen.shape.vocab, settings)
        rows["hand_picked"] = run_variant(hand, data, settings, "teacher", True, workdir)
        results["targets"][f"{target:g}MB"] = {
            "search_seconds": search_seconds,
            "candidates": [{"shape": c.shape.describe(), "gflops": c.gflops, "size_mb": c.size_mb,
                            "rerank_cosine": c.fidelity} for c in ranked],
            "variants": rows}
        for name, row in rows.items():
            print(f"  {name:15s} {row['shape']:28s} " + "  ".join(f"{k}={row[k]:.4g}" for k in FIELDS), flush=True)
        results["seconds"] = time.perf_counter() - began
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_results(Path(args.out), results)  # after every target: partial runs keep results
    print_table(results)


def run_parallel(args) -> None:
    """One child process per target (the teacher targets are cached first, once), results merged into --out."""
    began = time.perf_counter()
    prepare_data(args.teacher, None, CorpusConfig(max_train=args.train_snippets,
                                        max_held_out=CompressSettings().held_out_snippets),
                 CompressSettings().max_length)
    outs = [Path(tempfile.mkdtemp()) / f"{t:g}.json" for t in args.targets]
    passed = [f"--final-steps={args.final_steps}", f"--rerank-steps={args.rerank_steps}",
              f"--train-snippets={args.train_snippets}", f"--dtype={args.dtype}", f"--teacher={args.teacher}"]
    children = [subprocess.Popen([sys.executable, __file__, "--targets", str(t), "--out", str(o), *passed])
                for t, o in zip(args.targets, outs)]
    if any(child.wait() for child in children):
        raise SystemExit("a target's process failed; see its output above")
    parts = [json.loads(o.read_text()) for o in outs]
    results = {**parts[0], "targets": {k: v for part in parts for k, v in part["targets"].items()},
               "seconds": time.perf_counter() - began, "parallel": True}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_results(Path(args.out), results)
    print_table(results)


def write_results(path: Path, results: dict) -> None:
    """Write `results`, keeping the model2vec comparison (bench/compress_vs_model2vec.py) already in the file."""
    kept = {}
    if path.is_file():
        kept = {k: v for k, v in json.loads(path.read_text()).items() if k == "vs_model2vec"}
    path.write_text(json.dumps({**results, **kept}, indent=2))


def print_table(results: dict) -> None:
    t = results["teacher"]
    print(f"\nteacher all-MiniLM-L6-v2: {t['file_mb']:.1f} MB, {t['gflops']:.3f} GFLOPs at 128 tokens")
    header = f"{'target':>7} {'variant':15s} {'shape':28s} " + " ".join(f"{f:>17s}" for f in FIELDS)
    print(header)
    print("-" * len(header))
    for target, block in results["targets"].items():
        for name, row in block["variants"].items():
            print(f"{target:>7} {name:15s} {row['shape']:28s} " + " ".join(f"{row[f]:17.4f}" for f in FIELDS))
    print(f"total {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
