"""What buys a small student fidelity: training snippets, word-level loss, steps, shape and save dtype.

Each run distils one fixed shape from the packaged MiniLM teacher and scores held-out mean cosine and top-1
retrieval agreement (the figures `evoforge compress` reports). Meant for a GPU (runs go in parallel processes);
on a CPU use --runs to pick a few. Results: bench/results/compress_sweep.json (or --out).

    python bench/compress_sweep.py --teacher DIR --parallel 6
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from objectives.distillation import TrainingConfig, prepare_data, train_student  # noqa: E402
from spaces.architecture.corpus import CorpusConfig  # noqa: E402
from spaces.architecture.fidelity import fidelity  # noqa: E402
from spaces.architecture.shapes import Shape  # noqa: E402
from spaces.architecture.student import embed  # noqa: E402

SHAPES = {  # name: (shape, dtype it fits 3 MB in)
    "fp32_L1H96": (Shape(1, 96, 3, 1536, 3312, 128), "float32"),
    "fp16_L1H192": (Shape(1, 192, 6, 1472, 3312, 128), "float16"),
    "fp16_L5H80": (Shape(5, 80, 4, 1280, 3312, 128), "float16"),
    "fp16_L1H256": (Shape(1, 256, 8, 1536, 828, 128), "float16"),
    "fp16_L2H160": (Shape(2, 160, 5, 1024, 3312, 128), "float16"),
    "fp16_L1H160V5000": (Shape(1, 160, 5, 1024, 5000, 128), "float16"),
    "fp16_L1H224": (Shape(1, 224, 7, 768, 3312, 128), "float16"),
}
# (shape, training snippets, word weight, steps, init, learning rate, batch size)
FIRST = [  # first sweep: data, word loss, steps, shape (all: init "teacher", lr 2e-3, batch 32)
    ("fp32_L1H96", 6000, 0.0, 1500), ("fp32_L1H96", 6000, 1.0, 1500),
    ("fp32_L1H96", 24000, 0.0, 1500), ("fp32_L1H96", 24000, 1.0, 1500),
    ("fp16_L1H192", 24000, 0.0, 1500), ("fp16_L1H192", 24000, 1.0, 1500),
    ("fp32_L1H96", 24000, 1.0, 6000), ("fp16_L1H192", 24000, 1.0, 6000),
    ("fp16_L1H192", 48000, 1.0, 6000), ("fp16_L5H80", 24000, 1.0, 6000),
    ("fp16_L1H256", 24000, 1.0, 6000), ("fp16_L2H160", 24000, 1.0, 6000),
]
SECOND = [  # second sweep: layer inheritance, learning rate, batch, more data, other 3 MB fp16 shapes
    ("fp16_L1H192", 48000, 0.0, 6000, "teacher", 2e-3, 32),
    ("fp16_L1H192", 48000, 0.0, 6000, "teacher_layers", 2e-3, 32),
    ("fp16_L1H192", 48000, 0.0, 6000, "teacher", 4e-3, 32),
    ("fp16_L1H192", 48000, 0.0, 3000, "teacher", 4e-3, 64),
    ("fp16_L1H192", 96000, 0.0, 6000, "teacher", 2e-3, 32),
    ("fp16_L1H192", 24000, 0.0, 6000, "teacher_layers", 2e-3, 32),
    ("fp16_L2H160", 48000, 0.0, 6000, "teacher_layers", 2e-3, 32),
    ("fp16_L1H160V5000", 48000, 0.0, 6000, "teacher", 2e-3, 32),
    ("fp16_L1H224", 48000, 0.0, 6000, "teacher_layers", 2e-3, 32),
    ("fp16_L5H80", 48000, 0.0, 6000, "teacher_layers", 2e-3, 32),
    ("fp16_L1H192", 48000, 0.0, 12000, "teacher_layers", 2e-3, 32),
    ("fp32_L1H96", 48000, 0.0, 6000, "teacher_layers", 2e-3, 32),
]
RUNS = [(*r, "teacher", 2e-3, 32) for r in FIRST] + SECOND
HELD_OUT = 500


def data_for(teacher: str, snippets: int):
    return prepare_data(teacher, None, CorpusConfig(max_train=snippets, max_held_out=HELD_OUT), 96, words=True)


def run_one(index: int, teacher: str) -> dict:
    name, snippets, word_weight, steps, init, learning_rate, batch_size = RUNS[index]
    shape, dtype = SHAPES[name]
    data = data_for(teacher, snippets)
    config = TrainingConfig(steps=steps, batch_size=batch_size, learning_rate=learning_rate, max_length=128,
                            threads=2, word_weight=word_weight)
    student, tokenizer, result = train_student(shape, data, config, init)
    if dtype != "float32":  # score what the saved file holds
        import torch

        student.to(getattr(torch, dtype)).float()
    scores = fidelity(lambda t: embed(student, tokenizer, t, 128), lambda t: data.teacher.embed(t, 96),
                      data.corpus.held_out, data.held_out_targets)
    return {"run": index, "shape": name, "describe": shape.describe(), "dtype": dtype, "snippets": snippets,
            "word_weight": word_weight, "steps": steps, "init": init, "train_seconds": result.seconds,
            "final_loss": result.final_loss, "mean_cosine": scores.mean_cosine,
            "top1_agreement": scores.top1_agreement, "config": asdict(config)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="")
    parser.add_argument("--runs", default="all", help="comma-separated run indices, or all")
    parser.add_argument("--parallel", type=int, default=1, help="processes (one GPU can hold several)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "compress_sweep.json"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    indices = list(range(len(RUNS))) if args.runs == "all" else [int(i) for i in args.runs.split(",")]
    if args.worker:
        for i in indices:
            print(json.dumps(run_one(i, args.teacher)), flush=True)
        return
    began = time.perf_counter()
    for snippets in sorted({RUNS[i][1] for i in indices}):
        data_for(args.teacher, snippets)  # fill the target cache once, before the workers read it
    print(f"targets: {time.perf_counter() - began:.0f} s", flush=True)
    groups = [indices[k::args.parallel] for k in range(args.parallel) if indices[k::args.parallel]]
    workers = [subprocess.Popen([sys.executable, __file__, "--worker", "--teacher", args.teacher, "--runs",
                                 ",".join(map(str, g))], stdout=subprocess.PIPE, text=True) for g in groups]
    rows = []
    for w in workers:
        for line in w.stdout:
            if line.startswith("{"):
                rows.append(json.loads(line))
                r = rows[-1]
                print(f"{r['shape']:12} N={r['snippets']:6} w={r['word_weight']} steps={r['steps']:5} "
                      f"{r['init']:14} lr={r['config']['learning_rate']} b={r['config']['batch_size']} "
                      f"cos={r['mean_cosine']:.4f} top1={r['top1_agreement']:.3f} {r['train_seconds']:.0f}s",
                      flush=True)
        w.wait()
    rows.sort(key=lambda r: r["run"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"seconds": time.perf_counter() - began, "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
